"""Pools at the edges of what ONNX and onnxruntime compute as torch does: ceil_mode windows before opset 22
(ONNX's shape inference counts one torch drops), dilated windows whose end padding passes the kernel, a map of
-inf alone."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError

from .core_harness import b, close, rand


@pytest.mark.parametrize("kind,include", [("max", True), ("avg", True), ("avg", False)])
@pytest.mark.parametrize("k,stride,p,dil", [(2, 3, 1, 1), (1, 2, 0, 1), (1, 3, 0, 1), (3, 2, 1, 1), (2, 3, 1, 2),
                                            (3, 1, 1, 1)])
@pytest.mark.parametrize("opset", [17, 21])
def test_a_ceil_mode_pool_before_opset_22_runs_beside_a_tensor_of_the_length_onnx_inferred(kind, include, k, stride,
                                                                                          p, dil, opset):
    """ONNX's shape inference before opset 22 counts a ceil_mode window that starts in the right padding, which the
    kernel leaves out (torch's length): onnxruntime reused the pool's buffer for a later tensor of the inferred
    size and failed ("Shape mismatch attempting to re-use buffer": a pool, a concat and a linear of that size;
    difffuzz hunt). The pool is a floor one over torch's end padding there, and matches torch."""
    torch = pytest.importorskip("torch")
    if kind == "avg" and dil > 1:
        return
    extra = f", count_include_pad={b(include)}" if kind == "avg" else f", dilation={dil}"
    rows = 1 if dil == 1 else 5  # a dilated window over one row would read the padding alone (REFERENCE's lowest)
    src = (f"model m(x: float32[B, 4, {rows}, 4]) -> (h, y) {{\n    h = {kind}pool2d(x, {k}, stride={stride}, "
           f"padding={p}, ceil_mode=true{extra})\n    y = concat([h, h], 2) -> linear(3) as fc\n}}\n")
    x = rand(2, 4, rows, 4)
    h, y = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x})
    t, fn = torch.from_numpy(x).double(), torch.nn.functional
    want = fn.max_pool2d(t, k, stride, p, dilation=dil, ceil_mode=True) if kind == "max" else \
        fn.avg_pool2d(t, k, stride, p, ceil_mode=True, count_include_pad=include)
    close(h, want.numpy())
    assert y.shape == (2, 4, 2 * h.shape[2], 3)


@pytest.mark.filterwarnings("ignore:.*linear acts on the last dim")  # a linear over W, as the failing model had
@pytest.mark.parametrize("opset", [17, 21, 22])
def test_a_dilated_ceil_mode_max_pool_with_an_end_pad_past_its_kernel_runs_beside_another_dims_cut(opset):
    """H: kernel 2 dilated by 3 needs an end pad of 2, which onnxruntime's pools refuse (not under the kernel);
    W: a window ONNX's shape inference before opset 22 counts and torch drops. The node kept ceil_mode for
    both and onnxruntime reused its buffer for the inferred length ("Shape mismatch attempting to re-use
    buffer", review72 hunt): H's end is a Pad of -inf now."""
    torch = pytest.importorskip("torch")
    src = ("model m(x: float32[B, 4, 3, 4]) -> (h, y) {\n    h = maxpool2d(x, [2, 1], stride=[2, 2], padding=[1, 0], "
           "dilation=[3, 1], ceil_mode=true)\n    y = h -> linear(3) as fc\n}\n")
    x = rand(2, 4, 3, 4)
    h, y = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x})
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x).double(), [2, 1], [2, 2], [1, 0], dilation=[3, 1],
                                          ceil_mode=True)
    close(h, want.numpy())
    assert y.shape == (2, 4, 2, 3)


@pytest.mark.parametrize("opset", [17, 18, runtime.newest_opset()])
def test_global_maxpool_of_a_map_of_minus_infinity_is_minus_infinity(opset):
    """onnxruntime's GlobalMaxPool starts from the lowest float: a masked max over time of an empty sequence
    gave -3.4e38, which a later isinf test missed (specials hunt); torch's is -inf."""
    x = rand(2, 3, 4)
    x[0] = -np.inf
    for keep in (True, False):
        src = f"model m(x: float32[B, 3, 4]) -> y {{\n    y = global_maxpool(x, keepdims={b(keep)})\n}}\n"
        (y,) = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x})
        np.testing.assert_array_equal(y, x.max(axis=2, keepdims=keep))


@pytest.mark.parametrize("call", ["maxpool2d(x, 3, padding=2)", "avgpool1d(x3, 2, padding=2)",
                                  "maxpool2d(x, [3, 5], padding=[1, 3])"])
def test_pool_padding_past_half_the_kernel_is_refused_as_torch(call):
    """torch: "pad should be at most half of effective kernel size"; onnxruntime would run it."""
    with pytest.raises(ArchError) as e:
        archdsl.check_source(f"model m(x: float32[B, 2, 8, 8], x3: float32[B, 2, 8]) -> y {{\n    y = {call}\n}}\n")
    assert "must be at most half the kernel" in e.value.message


@pytest.mark.parametrize("level", [0, 2])
def test_a_ceil_mode_pool_over_a_symbolic_size_is_the_strided_slices_size(level):
    """maxpool2d(2, ceil_mode=true) of [B, C, H, W] is [B, C, (H+1)//2, (W+1)//2], the size of x[:, :, ::2, ::2]
    (SqueezeNet's and GoogLeNet's pools): the two add, and match torch at odd and even sizes (mutelab2 hunt: the
    window count at the boundary pad//2 + stride == kernel made it a min() no other size equals)."""
    torch = pytest.importorskip("torch")
    src = ("model m(x: float32[B, 4, H, W]) -> y {\n"
           "    y = (x -> maxpool2d(2, ceil_mode=true)) + x[:, :, ::2, ::2]\n}\n")
    assert str(archdsl.check_source(src).outputs[0][1].type) == "float32[B, 4, ((H+1)//2), ((W+1)//2)]"
    sess = runtime.session(archdsl.compile_source(src, opt_level=level), "cpu", 1)
    for h, w in ((7, 5), (6, 4)):
        x = rand(2, 4, h, w)
        t = torch.from_numpy(x)
        want = torch.nn.functional.max_pool2d(t, 2, ceil_mode=True) + t[:, :, ::2, ::2]
        close(sess.run(None, {"x": x})[0], want.numpy())
