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
           "    y = h * s\n}\n")
    assert not _rewrites(src)
    assert _rewrites(src.replace("leaky_relu(0.1)", "relu"))


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
