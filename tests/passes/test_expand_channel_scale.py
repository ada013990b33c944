"""expand_channel_scale: what it rewrites keeps onnxruntime's CPU in its blocked conv layout (the reason
for the pass, checked on onnxruntime's own optimized graph), with the same outputs; what it leaves alone
is every case where the Resize would only add work or cannot be told apart from a broadcast."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import check_source, runtime
from archdsl.passes import PassContext, all_passes

from ..ort_graph import ort_ops as _ort_ops

PASS = next(p for p in all_passes() if p.name == "expand_channel_scale")


def _se(act: str, conv: str = "conv2d(32, 3, padding=1)", x: str = "float32[B, 3, 8, 8]",
        gate: str = "h -> global_avgpool -> conv2d(8, 1) as fc1 -> relu -> conv2d(32, 1) as fc2 -> sigmoid") -> str:
    mid = f" -> {act}" if act else ""
    return (f"model m(x: {x}) -> y {{\n    h = x -> {conv} as conv{mid}\n    s = {gate}\n"
            f"    y = h * s -> conv2d(16, 1) as proj\n}}\n")


def _rewrites(src: str, ctx: PassContext = PassContext()) -> bool:
    g = check_source(src)
    changed = PASS.fn(g, ctx)
    assert changed == any(n.op == "upsample" for n in g.nodes)
    return changed


def _reorders(model) -> int:
    """The layout changes onnxruntime's CPU runs for a model, into its blocked layout and out."""
    ops = _ort_ops(model)
    return ops.count("ReorderInput") + ops.count("ReorderOutput")


def _blocks_convs() -> bool:
    return "ReorderOutput" in _ort_ops(archdsl.compile_source(_se("relu")))


ACTS = ["", "relu", "sigmoid", "tanh", "silu", "relu -> batchnorm as bn", "leaky_relu(0.1)", "relu6",
        "hardsigmoid"]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("conv", ["conv2d(32, 3, padding=1)",
                                  "conv2d(32, 1) as pw -> conv2d(32, 3, padding=1, groups=32)"])  # depthwise
def test_the_scaled_map_stays_blocked_in_onnxruntime(act, conv):
    """With the pass, onnxruntime reorders nothing back into its blocked layout (no ReorderInput: the product
    goes straight into the projection conv); without it, the broadcast Mul sends the map out and back."""
    if not _blocks_convs():
        pytest.skip("this CPU's onnxruntime has no blocked (NCHWc) conv layout")
    src = _se(act, conv)
    on = archdsl.compile_source(src)
    off = archdsl.compile_source(src, disabled_passes=("expand_channel_scale",))
    assert [n.op_type for n in on.graph.node].count("Resize") == 1
    assert "ReorderInput" not in _ort_ops(on)
    assert "ReorderInput" in _ort_ops(off)
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    np.testing.assert_array_equal(runtime.session(on).run(None, x)[0], runtime.session(off).run(None, x)[0])


@pytest.mark.parametrize("src", [
    _se("relu", conv="relu", x="float32[B, 32, 8, 8]"),                # no conv: onnxruntime keeps NCHW
    _se("relu", conv="conv2d(24, 3, padding=1)",                         # 24 channels: not block-aligned
        gate="h -> global_avgpool -> conv2d(8, 1) -> relu -> conv2d(24, 1) -> sigmoid"),
    _se("relu", conv="conv2d(32, 3, padding=1, groups=2)", x="float32[B, 16, 8, 8]"),  # grouped
    _se("relu", x="float32[B, 12, 8, 8]"),                               # 12 input channels: not aligned
    _se("gelu"),                                                         # an activation it does not block
    _se("relu", gate="parameter([1, 32, 1, 1], init=\"ones\") as g"),   # a constant scale: folded into the conv
    _se("relu", x="float32[2, 3, 8, 8]", gate="parameter([2, 32, 1, 1], init=\"ones\") as g"),  # also per sample
    _se("relu").replace("h = x", "h = concat([x, x], axis=0)"),         # batch 2*B: unnamed in the ONNX
    _se("relu", x="float32[B, 3, H, W]"),                                # spatial size unknown: no Resize scale
    _se("relu", x="float32[B, 3, 1, 1]", conv="conv2d(32, 1)"),          # a 1x1 map: nothing to broadcast
    _se("relu", x="float16[B, 3, 8, 8]"),                                 # blocked layout is float32 only
])
def test_left_alone(src):
    assert not _rewrites(src)


def test_leaky_relu_on_a_conv_read_twice_is_left_alone():
    """onnxruntime fuses an activation other than relu/sigmoid/tanh into the conv only when the conv's output
    has no other reader; otherwise the activation runs in NCHW."""
    src = ("model m(x: float32[B, 16, 8, 8]) -> (y, c) {\n    c = x -> conv2d(32, 3, padding=1) as conv\n"
           "    h = c -> leaky_relu(0.1)\n    s = h -> global_avgpool -> conv2d(32, 1) as fc -> sigmoid\n"
           "    y = h * s -> conv2d(16, 1) as proj\n}\n")
    assert not _rewrites(src)
    assert _rewrites(src.replace("leaky_relu(0.1)", "relu"))


_READERS = ("model m(x: float32[B, {c}, 8, 8]) -> y {{\n    h = x -> conv2d(32, 3, padding=1) as conv -> relu\n"
            "    s = h -> global_avgpool -> conv2d(8, 1) as fc1 -> relu -> conv2d(32, 1) as fc2 -> sigmoid\n"
            "    p = h * s\n{tail}\n}}\n")


@pytest.mark.parametrize("c, tail", [
    (3, "    y = p"),                                                      # a graph output: reordered out anyway
    (32, "    y = relu(p + x) -> conv2d(16, 1) as proj"),                  # a residual from the NCHW input
    (3, "    y = p -> leaky_relu(0.1) -> conv2d(16, 1) as proj"),          # runs in NCHW unless fused into a conv
    (3, "    y = p -> conv2d(32, 3, padding=1, groups=4) as g"),           # 8 channels a group: not blocked
], ids=["output", "residual_input", "leaky_relu", "groups_of_8"])
def test_a_product_read_outside_the_blocked_layout_is_left_alone(c, tail):
    """onnxruntime would reorder the product out instead of the map: the Resize was extra work (an SE-ResNet
    whose residual is the model's input ran 1.3-2.5% slower with the pass: o2regress hunt)."""
    assert not _rewrites(_READERS.format(c=c, tail=tail))


@pytest.mark.parametrize("tail", [
    "    r = x -> conv2d(32, 1) as sc\n    y = relu(p + r) -> conv2d(16, 1) as proj",  # a conv's residual
    "    y = relu(p + h) -> conv2d(16, 1) as proj",
    "    y = p -> maxpool2d(2) -> conv2d(16, 1) as proj",
    "    y = concat([p, h], axis=1) -> conv2d(16, 1) as proj",
    "    y = p -> silu -> conv2d(32, 3, padding=1, groups=32) as dw",
    "    y = (p -> conv2d(16, 1) as a) + (p -> conv2d(16, 1) as b)",
    "    y = p -> gelu -> conv2d(32, 3, padding=1, groups=2) as g",  # 16 channels a group
    "    y = p -> hardswish -> conv2d(16, 1) as proj",
], ids=["residual_conv", "residual_relu", "maxpool", "concat", "silu_depthwise", "two_readers", "gelu_groups_of_16",
        "hardswish"])
def test_a_product_read_in_the_blocked_layout_is_rewritten_and_saves_reorders(tail):
    src = _READERS.format(c=3, tail=tail)
    assert _rewrites(src)
    if not _blocks_convs():
        pytest.skip("this CPU's onnxruntime has no blocked (NCHWc) conv layout")
    on = archdsl.compile_source(src)
    off = archdsl.compile_source(src, disabled_passes=("expand_channel_scale",))
    assert _reorders(on) <= _reorders(off) - 2  # the map out and the product back in


def test_train_graphs_are_left_alone():
    assert not _rewrites(_se("relu"), PassContext(inference=False))
    assert _rewrites(_se("relu"))


def test_scale_on_the_left():
    assert _rewrites(_se("relu").replace("y = h * s", "y = s * h"))


def test_a_map_that_is_not_square_is_rewritten_with_its_own_scales():
    """Only square maps were tested: a Resize with H and W swapped would not type-check and the pass would
    silently stop firing on an 8x6 map."""
    src = _se("relu", x="float32[B, 3, 8, 6]")
    assert _rewrites(src)
    on = archdsl.compile_source(src)
    off = archdsl.compile_source(src, disabled_passes=("expand_channel_scale",))
    x = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 6)).astype(np.float32)}
    np.testing.assert_array_equal(runtime.session(on).run(None, x)[0], runtime.session(off).run(None, x)[0])


_SE_RESNET = """param n = 3
block se(x) {
    s = x -> global_avgpool -> conv2d(8, 1) as fc1 -> relu -> conv2d(channels(x), 1) as fc2 -> sigmoid
    return x * s
}
model net(x: float32[B, CIN, 8, 8]) -> y {
    h = x STEM
    for i in range(n) {
        y = h -> conv2d(32, 3, padding=1) as "b{i}.conv" -> se as "b{i}.se"
        h = relu(y + h)
    }
    y = h -> conv2d(16, 1) as head
}
"""


def test_an_se_resnets_residual_stream_stays_blocked_from_a_conv_stem():
    """Each block's product is added to the stream; from a conv stem the stream is blocked (a sum of blocked
    maps, then relu) and every block is rewritten; from the model's NCHW input none is (the first sum reorders
    the product out, and so the stream stays NCHW)."""
    stem = _SE_RESNET.replace("CIN", "3").replace("STEM", "-> conv2d(32, 3, padding=1) as stem -> relu")
    g = check_source(stem)
    assert PASS.fn(g, PassContext()) and sum(n.op == "upsample" for n in g.nodes) == 3
    assert not _rewrites(_SE_RESNET.replace("CIN", "32").replace("STEM", ""))
    if not _blocks_convs():
        pytest.skip("this CPU's onnxruntime has no blocked (NCHWc) conv layout")
    assert _reorders(archdsl.compile_source(stem)) < \
        _reorders(archdsl.compile_source(stem, disabled_passes=("expand_channel_scale",)))


def test_a_residual_stream_longer_than_the_recursion_limit():
    """The stream is walked with a stack of its own: 1,100 blocks (past Python's recursion limit of 1,000)."""
    src = _SE_RESNET.replace("CIN", "3").replace("STEM", "-> conv2d(32, 3, padding=1) as stem -> relu")
    g = check_source(src.replace("param n = 3", "param n = 1100").replace("8, 8]", "2, 2]"))
    assert PASS.fn(g, PassContext()) and sum(n.op == "upsample" for n in g.nodes) == 1100


def test_a_stream_read_twice_at_every_step_is_walked_once(monkeypatch):
    """h = h + h * gate(h), n times: each sum reads h twice, and without remembering answers the walk doubled
    at every step (24 steps took 47 s to compile: review86). Counted, not timed."""
    from archdsl.passes import expand_channel_scale as ecs
    calls = []
    made = ecs._Layout._made_blocked
    monkeypatch.setattr(ecs._Layout, "_made_blocked", lambda self, v: calls.append(v) or made(self, v))
    src = ("model m(x: float32[B, 16, 4, 4]) -> y {\n    h = x -> conv2d(16, 3, padding=1) as stem\n"
           "    for i in range(16) { h = h + h * (h -> conv2d(16, 1) as \"g{i}\" -> sigmoid) }\n"
           "    r = h -> conv2d(16, 3, padding=1) as conv -> relu\n"
           "    s = r -> global_avgpool -> conv2d(4, 1) as fc1 -> relu -> conv2d(16, 1) as fc2 -> sigmoid\n"
           "    y = (h + r * s) -> conv2d(8, 1) as proj\n}\n")
    g = check_source(src)
    assert PASS.fn(g, PassContext()) and len(calls) < 10 * 16  # 131,070 when not remembered


@pytest.mark.parametrize("src", [
    # a depthwise conv with a channel multiplier (groups 16 of 16 inputs, 32 outputs): not a depthwise conv
    # onnxruntime blocks (mutpasses2 hunt, E8)
    _se("relu", conv="conv2d(16, 1) as pw -> conv2d(32, 3, padding=1, groups=16)"),
    # the product joins a concat on the batch axis: onnxruntime concatenates blocked maps on channels only (E5)
    _se("relu").replace("y = h * s -> conv2d(16, 1) as proj",
                        "y = concat([h * s, h], axis=0) -> conv2d(16, 1) as proj"),
])
def test_left_alone_where_onnxruntime_reorders_anyway(src):
    assert not _rewrites(src)
