"""The train-step form of a conv (autodiff/conv_train.py: im2col GEMMs in channels-last layout): its
gradients against finite differences in float64 over the geometries a conv can have, its forward against
onnxruntime's Conv, and which convs take it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from archdsl.autodiff.conv_train import conv_gemm_fits
from archdsl.types import DType, TensorType

from .gradcheck import check_grad

# (x shape, cout, kernel, stride, dilation, pads (begins + ends), order)
CASES = [
    ((2, 3, 7, 6), 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "kc"),
    ((2, 3, 7, 6), 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "ck"),
    ((2, 3, 9, 8), 5, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "kc"),  # stride 2, odd input
    ((2, 3, 9, 8), 5, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "ck"),
    ((1, 2, 10, 9), 3, (3, 2), (2, 3), (2, 1), (2, 0, 1, 3), "kc"),  # mixed, asymmetric pads, dilation
    ((2, 4, 8, 8), 3, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), "kc"),  # 1x1 stride 2 (a ResNet shortcut)
    ((2, 4, 5, 5), 3, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), "ck"),  # 1x1: col is x itself
    ((2, 3, 5, 5), 2, (5, 5), (1, 1), (1, 1), (0, 0, 0, 0), "kc"),  # one output position
    ((2, 3, 11), 4, (3,), (2,), (2,), (2, 1), "kc"),  # 1-D
    ((2, 3, 11), 4, (4,), (3,), (1,), (0, 0), "ck"),  # 1-D, input tail never read
    ((1, 2, 4, 5, 4), 3, (2, 3, 2), (1, 2, 1), (1, 1, 2), (1, 0, 1, 0, 1, 1), "kc"),  # 3-D
    ((1, 2, 4, 5, 4), 3, (3, 3, 3), (2, 1, 2), (1, 1, 1), (1, 1, 1, 1, 1, 1), "ck"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c[0]) - 2}d-k{c[2]}-s{c[3]}-d{c[4]}-p{c[5]}-{c[6]}")
@pytest.mark.parametrize("bias", [False, True])
def test_conv_gemm_gradients_match_finite_differences(case, bias):
    shape, cout, k, s, d, p, order = case
    rng = np.random.default_rng(len(shape) + cout)
    arrays = [rng.standard_normal(shape), rng.standard_normal((cout, shape[1]) + k)]
    if bias:
        arrays.append(rng.standard_normal(cout))
    check_grad("autodiff.conv_gemm", arrays, {"kernel": k, "stride": s, "dilation": d, "pads": p, "order": order},
               outputs=[0])


def _run_onnx_conv(x, w, strides, dilations, pads):
    from onnx import helper

    from .gradcheck import run_model
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=strides, dilations=dilations, pads=pads)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, list(x.shape)),
                                        helper.make_tensor_value_info("w", 1, list(w.shape))],
                          [helper.make_tensor_value_info("y", 1, None)])
    return run_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), {"x": x, "w": w})[0]


def _run_internal(op, x, w, attrs):
    from archdsl import ops
    from archdsl.ir import Graph, check
    from archdsl.lower import lower_graph

    from .gradcheck import run_model
    g = Graph("g")
    xi = g.add_input("x", TensorType(DType.float32, x.shape))
    wi = g.add_input("w", TensorType(DType.float32, w.shape))
    node = g.add_node(op, [xi, wi], {**ops.get(op).defaults(), **attrs}, "c")
    g.set_output("y", node.outputs[0])
    check(g)
    model = lower_graph(g, opset=21).model
    onnx.checker.check_model(model, full_check=True)
    return run_model(model, {"x": x, "w": w})[0]


@pytest.mark.parametrize("case", CASES[::2], ids=lambda c: f"{len(c[0]) - 2}d-k{c[2]}-s{c[3]}")
def test_conv_gemm_forward_is_onnx_conv(case):
    """The GEMM form computes what ONNX's Conv computes (float32, onnxruntime), in both column orders."""
    shape, cout, k, s, d, p, order = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((cout, shape[1]) + k).astype(np.float32)
    ref = _run_onnx_conv(x, w, list(s), list(d), list(p))
    for o in ("kc", "ck"):
        ours = _run_internal("autodiff.conv_gemm", x, w, {"kernel": k, "stride": s, "dilation": d, "pads": p,
                                                           "order": o})
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


WINO = [((2, 3, 6, 6), (1, 1, 1, 1)), ((2, 3, 7, 5), (1, 0, 2, 1)), ((1, 2, 3, 4), (0, 0, 0, 0)),
        ((1, 2, 9, 10), (2, 2, 0, 1))]


@pytest.mark.parametrize("case", WINO, ids=lambda c: f"{c[0]}-p{c[1]}")
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("m", [2, 4])
def test_winograd_conv_gradients_match_finite_differences(case, bias, m):
    shape, pads = case
    rng = np.random.default_rng(shape[2])
    arrays = [rng.standard_normal(shape), rng.standard_normal((4, shape[1], 3, 3))]
    if bias:
        arrays.append(rng.standard_normal(4))
    check_grad("autodiff.conv_wino", arrays, {"pads": pads, "m": m}, outputs=[0])


@pytest.mark.parametrize("case", WINO + [((3, 64, 16, 16), (1, 1, 1, 1))], ids=lambda c: f"{c[0]}-p{c[1]}")
@pytest.mark.parametrize("m", [2, 4])
def test_winograd_forward_is_onnx_conv(case, m):
    """float32 on onnxruntime, 64 channels included: F(4x4, 3x3) rounds more than F(2x2, 3x3) (its transforms
    have entries up to 8 and 1/24) but stays within 1e-4 of the largest output."""
    shape, pads = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((5, shape[1], 3, 3)).astype(np.float32)
    ours = _run_internal("autodiff.conv_wino", x, w, {"pads": pads, "m": m})
    ref = _run_onnx_conv(x, w, [1, 1], [1, 1], list(pads))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def test_which_convs_take_the_gemm_form():
    f32 = lambda *s: TensorType(DType.float32, s)
    assert conv_gemm_fits(f32(8, 64, 16, 16), (64, 64, 3, 3), 1)
    assert not conv_gemm_fits(f32(8, 64, 16, 16), (64, 32, 3, 3), 2), "grouped convs keep Conv"
    assert not conv_gemm_fits(f32(8, 3, 64, 64), (64, 3, 7, 7), 1), "few input channels keep Conv"
    assert not conv_gemm_fits(f32(8, 64, 512, 512), (64, 64, 3, 3), 1), "a window matrix too large keeps Conv"


@pytest.mark.parametrize("op,attrs", [
    ("autodiff.conv_gemm", {"kernel": (3, 3), "stride": (1, 1), "dilation": (1, 1), "pads": (1, 1, 1, 1)}),
    ("autodiff.conv_wino", {"pads": (1, 1, 1, 1), "m": 2}),
    ("autodiff.conv_wino", {"pads": (1, 1, 1, 1), "m": 4}),
], ids=["gemm", "winograd2", "winograd4"])
def test_float32_rounding_at_resnet_size(op, attrs):
    """float32 gradients of a 64-channel 16x16 layer against the same graph in float64. Measured relative
    errors: direct 2e-7 (dx, dw), F(2x2,3x3) 3e-7 / 5e-7, F(4x4,3x3) 2e-6 / 2.5e-6 (the torch float32 loss
    itself is 2.5e-6 off here)."""
    from archdsl.types import DType as D

    from .gradcheck import _build, run_model
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 64, 16, 16)), rng.standard_normal((64, 64, 3, 3)) * 0.05
    r = rng.standard_normal((4, 64, 16, 16))
    types = [TensorType(D.float64, x.shape), TensorType(D.float64, w.shape)]

    def grads(dt, opset):
        model, _ = _build(op, types, attrs, dt, [r, None, None], [0, 1], opset)
        return run_model(model, {"in0": x.astype(dt.np), "in1": w.astype(dt.np)})[1:]

    for g32, g64 in zip(grads(D.float32, 21), grads(D.float64, 19)):
        assert np.linalg.norm(g32 - g64) <= 1e-5 * np.linalg.norm(g64)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_overlap_add_never_repeats_a_scatter_target(m):
    """onnxruntime runs ScatterND's rows in parallel without guarding repeated targets (reduction add races),
    so every ScatterND of the input gradient must have distinct indices."""
    from onnx import numpy_helper

    from archdsl.types import DType as D

    from .gradcheck import _build
    shape = (2, 3, 13, 11)
    types = [TensorType(D.float32, shape), TensorType(D.float32, (4, 3, 3, 3))]
    r = np.ones((2, 4, 13, 11))
    model, _ = _build("autodiff.conv_wino", types, {"pads": (1, 1, 1, 1), "m": m}, D.float32, [r, None, None],
                      [0], 21)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scatters = [n for n in model.graph.node if n.op_type == "ScatterND"]
    assert scatters
    for n in scatters:
        idx = inits[n.input[1]].reshape(-1)
        assert len(np.unique(idx)) == idx.size, n.name

