"""Gradient rules of the convolutions (layers and functional conv / conv_transpose, padding modes, the im2col
weight gradient) and the pools against central finite differences in float64, as test_grad_rules.py does for
the other core ops (see gradcheck.py)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archdsl.types import DType, TensorType

from . import gradcheck
from .gradcheck import FAST, _build, check_grad, normal, run_model
from .gradcheck import valid as _valid


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), g=st.integers(1, 2), cin=st.integers(1, 2), cout=st.integers(1, 2),
       k=st.integers(1, 3), s=st.integers(1, 2), d=st.integers(1, 2), pad=st.sampled_from([0, 1, "same"]),
       bias=st.booleans(), seed=st.integers(0, 99))
def test_conv(n, g, cin, cout, k, s, d, pad, bias, seed):
    if pad == "same":
        s = 1
    size = (6, 5, 4)[:n] if n < 3 else (4, 3, 4)
    x = normal(seed, 2, cin * g, *size)
    w = normal(seed + 1, cout * g, cin, *([k] * n))
    attrs = {"out_channels": cout * g, "kernel_size": k, "stride": s, "padding": pad, "dilation": d, "groups": g,
             "bias": bias}
    arrays = [x, w] + ([normal(seed + 2, cout * g)] if bias else [])
    if _valid(f"conv{n}d", [x], attrs):
        check_grad(f"conv{n}d", arrays, attrs, seed=seed)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), g=st.integers(1, 2), k=st.integers(1, 3), s=st.integers(1, 2), d=st.integers(1, 2),
       pad=st.sampled_from([0, 1, "same"]), mode=st.sampled_from(["zeros", "reflect"]), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_functional_conv(n, g, k, s, d, pad, mode, bias, seed):
    """conv(x, weight, bias=): the layer's rule with the weight and bias as inputs of the graph."""
    if pad == "same":
        s = 1
    x = normal(seed, 2, 2 * g, *(5, 4, 3)[:n])
    arrays = [x, normal(seed + 1, 2 * g, 2, *([k] * n))] + ([normal(seed + 2, 2 * g)] if bias else [])
    attrs = {"stride": s, "padding": pad, "dilation": d, "groups": g, "padding_mode": mode}
    if _valid("conv", list(arrays), attrs):
        check_grad("conv", arrays, attrs, seed=seed)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), g=st.integers(1, 2), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1),
       op=st.integers(0, 1), bias=st.booleans(), seed=st.integers(0, 99))
def test_functional_conv_transpose(n, g, k, s, p, op, bias, seed):
    """conv_transpose(x, weight, bias=): the layer's rule with the weight and bias as inputs of the graph."""
    x = normal(seed, 2, 2 * g, *(4, 3)[:n])
    arrays = [x, normal(seed + 1, 2 * g, 2, *([k] * n))] + ([normal(seed + 2, 2 * g)] if bias else [])
    attrs = {"stride": s, "padding": p, "output_padding": min(op, s - 1), "groups": g, "dilation": 1}
    if _valid("conv_transpose", list(arrays), attrs):
        check_grad("conv_transpose", arrays, attrs, seed=seed, linear=True, rtol=3e-4)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), k=st.integers(1, 3), s=st.integers(1, 2), d=st.integers(1, 2), p=st.integers(0, 2),
       seed=st.integers(0, 99))
def test_conv_wide(n, k, s, d, p, seed):
    """16+ input channels: the weight gradient is the im2col MatMul (autodiff/conv_grad.py)."""
    x = normal(seed, 2, 16, *(7, 6)[:n])
    attrs = {"out_channels": 3, "kernel_size": k, "stride": s, "padding": p, "dilation": d}
    if _valid(f"conv{n}d", [x], attrs):
        check_grad(f"conv{n}d", [x, normal(seed + 1, 3, 16, *([k] * n)), normal(seed + 2, 3)], attrs, seed=seed)


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["reflect", "replicate", "circular"]), n=st.integers(1, 3), g=st.integers(1, 2),
       k=st.integers(1, 3), s=st.integers(1, 2), d=st.integers(1, 2), pad=st.sampled_from([1, 2, [2, 1], "same"]),
       wide=st.booleans(), bias=st.booleans(), opset17=st.booleans(), seed=st.integers(0, 99))
@example(mode="reflect", n=1, g=1, k=3, s=1, d=1, pad=2, wide=False, bias=True, opset17=False, seed=0)
@example(mode="replicate", n=2, g=2, k=3, s=2, d=1, pad=[2, 1], wide=False, bias=False, opset17=False, seed=1)
@example(mode="circular", n=2, g=1, k=2, s=1, d=2, pad="same", wide=True, bias=True, opset17=True, seed=2)
@example(mode="circular", n=1, g=1, k=3, s=2, d=1, pad=2, wide=False, bias=False, opset17=True, seed=3)
def test_conv_padding_mode(mode, n, g, k, s, d, pad, wide, bias, opset17, seed):
    """padding_mode: the pad's own rule (every padded element's gradient added back where it was read) composed
    with the conv's; 16 channels take the im2col weight gradient; circular at opset 17 is Slice/Concat."""
    if pad == "same":
        s = 1
    elif isinstance(pad, list):
        pad = pad[:n] + [1] * (n - len(pad))
    cin = 16 if wide else 2
    g = 1 if wide else g
    size = (5, 4, 3)[:n]
    x = normal(seed, 2, cin, *size)
    attrs = {"out_channels": 2 * g, "kernel_size": k, "stride": s, "padding": pad, "dilation": d, "groups": g,
             "bias": bias, "padding_mode": mode}
    arrays = [x, normal(seed + 1, 2 * g, cin // g, *([k] * n))] + ([normal(seed + 2, 2 * g)] if bias else [])
    if not _valid(f"conv{n}d", [x], attrs):
        return
    with mock.patch.object(gradcheck._build, "__defaults__", (17 if opset17 else gradcheck.OPSET64, None)):
        check_grad(f"conv{n}d", arrays, attrs, seed=seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["max", "avg"]), n=st.integers(1, 3), k=st.integers(1, 3), s=st.integers(1, 3),
       p=st.integers(0, 1), ceil=st.booleans(), include=st.booleans(), dil=st.integers(1, 2), seed=st.integers(0, 99))
@example(kind="max", n=2, k=2, s=1, p=1, ceil=False, include=False, dil=2, seed=0)
# the last ceil_mode window of 6, [5, 8), passes the padded end 7: torch divides it by 2, not by 3
@example(kind="avg", n=2, k=3, s=2, p=1, ceil=True, include=True, dil=1, seed=0)
def test_pool(kind, n, k, s, p, ceil, include, dil, seed):
    attrs = {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil}
    size = (7, 6, 5)[:n]
    if kind == "avg":
        attrs["count_include_pad"] = include
    else:
        attrs["dilation"] = dil
    x = normal(seed, 2, 2, *size)
    if kind == "max":  # the draw's ranks over evenly spaced values: no two within the differences' step (a draw
        x = np.linspace(-3, 3, x.size)[np.argsort(np.argsort(x.ravel()))].reshape(x.shape)  # 8e-7 apart failed)
    if _valid(f"{kind}pool{n}d", [x], attrs):
        check_grad(f"{kind}pool{n}d", [x], attrs, seed=seed, linear=kind == "avg")


@pytest.mark.parametrize("n", [2, 3])
def test_dilated_ceil_mode_max_pool_whose_end_padding_passes_the_kernel(n):
    """Kernel 2 dilated by 3 needs an end pad of 2 (onnxruntime's pools take pads under the kernel) while
    another dim drops a window ONNX's shape inference before opset 22 counts: the first as a Pad of -inf
    (ceil_mode kept for the whole node let the second's extra window through; review72 hunt). Its gradient
    scatters over the padded tensor and cuts the Pad's part off."""
    attrs = {"kernel_size": [2, 1, 1][:n], "stride": [2, 2, 2][:n], "padding": [1, 0, 0][:n],
             "dilation": [3, 1, 1][:n], "ceil_mode": True}
    x = normal(5, 2, 2, 3, 4, 4)[..., 0] if n == 2 else normal(5, 2, 2, 3, 4, 4)
    x = np.linspace(-3, 3, x.size)[np.argsort(np.argsort(x.ravel()))].reshape(x.shape)
    check_grad(f"maxpool{n}d", [x], attrs, seed=5)


@pytest.mark.parametrize("ceil", [False, True])
def test_a_dilated_max_pool_window_of_padding_alone_has_no_gradient(ceil):
    """Kernel 2 dilated by 3 over 2 rows padded by 1: a window's taps are rows -1 and 2, padding both. Its output
    is the dtype's lowest whatever x is; onnxruntime's index for it is negative, and the scatter wrapped it onto
    x[n, c-1, 0, 3] (review73 hunt)."""
    attrs = {"kernel_size": [2, 3], "stride": [2, 1], "padding": [1, 1], "dilation": [3, 2], "ceil_mode": ceil}
    x = normal(7, 2, 3, 2, 4).astype(np.float32)
    for opset in (21, 22):
        model, _ = _build("maxpool2d", [TensorType(DType.float32, x.shape)], attrs, DType.float32,
                          [np.ones((2, 3, 1, 2))], [0], opset)
        _, grad = run_model(model, {"in0": x})
        np.testing.assert_array_equal(grad, np.zeros_like(x))  # every window here reads padding alone


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("opset", [21, 22])
def test_a_dilated_max_pool_window_of_padding_alone_has_no_gradient_at_run_time_sizes(ceil, opset):
    """The same windows over [B, 3, H, W]: known only when the model runs, they are found by a pool of zeros (0
    where a window reads the input, the lowest value where it reads padding alone; review74 hunt). At H = 5 the
    windows read rows -1, 2 and 1, 4: each keeps its gradient, one to the window's maximum (torch's)."""
    torch = pytest.importorskip("torch")
    from archdsl import ops
    from archdsl.autodiff import gradients
    from archdsl.ir import Graph
    from archdsl.lower import lower_graph
    from archdsl.types import Sym
    attrs = {"kernel_size": [2, 3], "stride": [2, 1], "padding": [1, 1], "dilation": [3, 2], "ceil_mode": ceil}
    opdef = ops.get("maxpool2d")
    full = {**opdef.defaults(), **{k: ops.coerce_attr(opdef, opdef.attr_index[k], v) for k, v in attrs.items()}}
    g = Graph("g")
    x_in = g.add_input("x", TensorType(DType.float32, (Sym("B"), 3, Sym("H"), Sym("W"))))
    y = g.add_node("maxpool2d", [x_in], full, "pool").outputs[0]
    loss = g.add_node("sum", [y], {"dim": None, "keepdim": False}, "s").outputs[0]
    g.set_output("loss", loss)
    g.set_output("grad", gradients(g, loss, [x_in])[0])
    model = lower_graph(g, opset=opset).model
    for h in (2, 5):
        x = np.linspace(-3, 3, 2 * 3 * h * 4)[np.random.default_rng(h).permutation(2 * 3 * h * 4)]
        x = x.reshape(2, 3, h, 4).astype(np.float32)
        _, grad = run_model(model, {"x": x})
        if h == 2:  # every window reads padding alone (torch's 2-D backward over such windows can abort)
            np.testing.assert_array_equal(grad, np.zeros_like(x))
            continue
        t = torch.from_numpy(x).requires_grad_()
        torch.nn.functional.max_pool2d(t, [2, 3], [2, 1], [1, 1], dilation=[3, 2], ceil_mode=ceil).sum().backward()
        np.testing.assert_array_equal(grad, t.grad.numpy())



@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("n", [1, 2])
def test_pool_window_larger_than_the_input(kind, n):
    """ceil_mode's one window over a 2-long input with a 3-window (the part inside it pooled)."""
    attrs = {"kernel_size": 3, "stride": 2, "padding": 0, "ceil_mode": True}
    attrs.update({"count_include_pad": False} if kind == "avg" else {"dilation": 1})
    check_grad(f"{kind}pool{n}d", [normal(3, 2, 2, *(2, 2)[:n])], attrs, seed=3, linear=kind == "avg")


@pytest.mark.parametrize("op", ["global_avgpool", "global_maxpool"])
@FAST
@given(keep=st.booleans(), rank=st.integers(3, 4), seed=st.integers(0, 99))
def test_global_pool(op, keep, rank, seed):
    check_grad(op, [normal(seed, 2, 3, *(4, 3)[:rank - 2])], {"keepdims": keep}, seed=seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["max", "avg"]), n=st.integers(1, 2), data=st.data(), seed=st.integers(0, 99))
def test_adaptive_pool(kind, n, data, seed):
    """Windows that tile the dims, overlap (7 into 3), outnumber them (3 into 5), whole dims and kept ones."""
    size = (7, 6)[:n]
    out = [data.draw(st.sampled_from([1, 2, 3, 5] + ([None] if n > 1 else []))) for _ in range(n)]
    check_grad(f"adaptive_{kind}pool{n}d", [normal(seed, 2, 2, *size)], {"output_size": out}, seed=seed,
               linear=kind == "avg")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), g=st.integers(1, 2), k=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 1),
       op=st.integers(0, 1), d=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 99))
@example(n=2, g=1, k=3, s=1, p=0, op=1, d=2, bias=True, seed=0)  # output_padding >= stride (< dilation)
@example(n=1, g=2, k=2, s=1, p=1, op=1, d=2, bias=False, seed=1)
def test_conv_transpose(n, g, k, s, p, op, d, bias, seed):
    attrs = {"out_channels": 2 * g, "kernel_size": k, "stride": s, "padding": p, "output_padding": op,
             "dilation": d, "groups": g, "bias": bias}
    x = normal(seed, 2, 2 * g, *(4, 3)[:n])
    if not _valid(f"conv_transpose{n}d", [x], attrs):
        return
    arrays = [x, normal(seed + 1, 2 * g, 2, *([k] * n))] + ([normal(seed + 2, 2 * g)] if bias else [])
    # float32 finite differences: at seed 80 (n=2, g=2, k=2, s=2, d=2) cancellation put them 1.5e-4 off the
    # gradient, which torch in float64 gives to 1e-13
    check_grad(f"conv_transpose{n}d", arrays, attrs, seed=seed, linear=True, rtol=3e-4)

