"""Every gradient rule against central finite differences in float64 (see gradcheck.py), over shapes and
attributes drawn by hypothesis. Inputs are random normal, so kinks (relu at 0, max ties) are never hit."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archdsl import ops
from archdsl.diagnostics import ShapeError
from archdsl.types import DType, TensorType

from . import gradcheck
from .gradcheck import FAST, check_grad, dims, normal, positive, shapes

_run_model = gradcheck.run_model


def _valid(op, arrays, attrs) -> bool:
    """Whether the op's own shape rule accepts these inputs (hypothesis draws some it rejects)."""
    d = ops.get(op)
    a = {**d.defaults(), **{k: ops.coerce_attr(d, d.attr_index[k], v) for k, v in attrs.items()}}
    ts = [TensorType(DType.float64 if x.dtype.kind == "f" else DType.int64, x.shape) for x in arrays]
    try:
        if d.params is not None:
            specs = d.params(ts, a)
            ts = ts + [TensorType(DType.float64, s.shape) for s in specs]
            arrays += [normal(7 + i, *s.shape) for i, s in enumerate(specs)]
        d.infer(ts, a)
        return True
    except ShapeError:
        return False


def check_layer(op, x, attrs, seed=0):
    arrays = [x]
    if not _valid(op, arrays, attrs):
        return
    check_grad(op, arrays, attrs, seed=seed)


@pytest.mark.parametrize("op", ["relu", "sigmoid", "tanh", "silu", "neg", "exp", "erf", "abs"])
@FAST
@given(shape=shapes, seed=st.integers(0, 99))
def test_pointwise(op, shape, seed):
    check_grad(op, [normal(seed, *shape)], seed=seed)


@pytest.mark.parametrize("op", ["log", "sqrt", "reciprocal", "rsqrt"])
@FAST
@given(shape=shapes, seed=st.integers(0, 99))
def test_pointwise_positive(op, shape, seed):
    check_grad(op, [positive(seed, *shape)], seed=seed)


@FAST
@given(shape=shapes, slope=st.floats(0.01, 0.5), approx=st.sampled_from(["none", "tanh"]), seed=st.integers(0, 9))
def test_leaky_relu_gelu(shape, slope, approx, seed):
    check_grad("leaky_relu", [normal(seed, *shape)], {"negative_slope": slope}, seed=seed)
    check_grad("gelu", [normal(seed, *shape)], {"approximate": approx}, seed=seed)


# scaled so that values fall on both sides of every kink; normal draws never land within eps of one
_MOBILE = [("clamp", {"min": -1.0, "max": 2.0}, 3), ("clamp", {"min": 0.5}, 3), ("clamp", {"max": -0.5}, 3),
           ("hardtanh", {}, 3), ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, 3), ("relu6", {}, 5),
           ("hardsigmoid", {}, 5), ("hardswish", {}, 5), ("elu", {}, 2), ("elu", {"alpha": 0.3}, 2),
           ("softplus", {}, 3), ("softplus", {"beta": 2.0, "threshold": 1.5}, 3), ("softplus", {}, 30),
           ("mish", {}, 3), ("sin", {}, 3), ("cos", {}, 3)]


@pytest.mark.parametrize("op, attrs, scale", _MOBILE, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(_MOBILE)])
@FAST
@given(shape=shapes, seed=st.integers(0, 99))
def test_mobile_activations(op, attrs, scale, shape, seed):
    check_grad(op, [normal(seed, *shape) * scale], attrs, seed=seed)


@pytest.mark.parametrize("op", ["minimum", "maximum"])
@FAST
@given(data=st.data(), seed=st.integers(0, 99))
def test_minimum_maximum_broadcast(op, data, seed):
    sa, sb = _broadcast_pair(data.draw)
    check_grad(op, [normal(seed, *sa), normal(seed + 1, *sb)], seed=seed)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@FAST
@given(shape=shapes, axis=st.integers(-1, 0), seed=st.integers(0, 99))
def test_softmax(op, shape, axis, seed):
    check_grad(op, [normal(seed, *shape)], {"axis": axis}, seed=seed)


def _broadcast_pair(draw):
    out = draw(st.lists(dims, min_size=1, max_size=3))
    a = [d if draw(st.booleans()) else 1 for d in out]
    b = [d if draw(st.booleans()) else 1 for d in out][draw(st.integers(0, len(out))):]
    return tuple(a), tuple(b)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
@FAST
@given(data=st.data(), seed=st.integers(0, 99))
def test_binary_broadcast(op, data, seed):
    sa, sb = _broadcast_pair(data.draw)
    a = positive(seed, *sa) if op == "pow" else normal(seed, *sa)
    b = positive(seed + 1, *sb) if op == "div" else normal(seed + 1, *sb)
    check_grad(op, [a, b], seed=seed)


@FAST
@given(batch=st.lists(st.integers(1, 3), max_size=2), m=dims, k=dims, n=dims, ra=st.integers(1, 3),
       rb=st.integers(1, 3), seed=st.integers(0, 99))
def test_matmul(batch, m, k, n, ra, rb, seed):
    sa = (k,) if ra == 1 else tuple(batch[len(batch) - max(ra - 2, 0):]) + (m, k)
    sb = (k,) if rb == 1 else tuple(batch[len(batch) - max(rb - 2, 0):]) + (k, n)
    check_grad("matmul", [normal(seed, *sa), normal(seed + 1, *sb)], seed=seed)


@FAST
@given(lead=st.lists(dims, max_size=2), fin=dims, fout=dims, bias=st.booleans(), seed=st.integers(0, 99))
def test_linear(lead, fin, fout, bias, seed):
    arrays = [normal(seed, *lead, fin), normal(seed + 1, fout, fin)] + ([normal(seed + 2, fout)] if bias else [])
    check_grad("linear", arrays, {"out_features": fout, "bias": bias}, seed=seed)


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
def test_pool(kind, n, k, s, p, ceil, include, dil, seed):
    attrs = {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil}
    size = (7, 6, 5)[:n]
    eff = dil * (k - 1) + 1 if kind == "max" else k
    if ceil and any(-(-(d + 2 * p - eff) // s) * s >= d + p for d in size):
        return  # torch drops a last window that starts in the padding; ONNX's shape inference keeps it
    if kind == "avg":
        attrs["count_include_pad"] = include
    else:
        attrs["dilation"] = dil
    x = normal(seed, 2, 2, *size)
    if _valid(f"{kind}pool{n}d", [x], attrs):
        check_grad(f"{kind}pool{n}d", [x], attrs, seed=seed, linear=kind == "avg")


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


@FAST
@given(rank=st.integers(3, 5), c=st.integers(1, 3), affine=st.booleans(), seed=st.integers(0, 99))
def test_instance_norm(rank, c, affine, seed):
    arrays = [normal(seed, 2, c, *(3, 2, 2)[:rank - 2])] + ([positive(seed + 1, c), normal(seed + 2, c)] if affine
                                                            else [])
    check_grad("instance_norm", arrays, {"affine": affine}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=2, max_size=4), affine=st.booleans(), seed=st.integers(0, 99))
def test_batchnorm_inference_form(shape, affine, seed):
    c = shape[1]
    arrays = [normal(seed, *shape)] + ([positive(seed + 1, c), normal(seed + 2, c)] if affine else []) + \
        [normal(seed + 3, c), positive(seed + 4, c)]
    check_grad("batchnorm", arrays, {"affine": affine}, wrt=[0, 1, 2] if affine else [0], seed=seed)


@FAST
@given(lead=st.lists(dims, min_size=1, max_size=2), norm=st.lists(st.integers(2, 4), min_size=1, max_size=2),
       affine=st.booleans(), bias=st.booleans(), seed=st.integers(0, 99))
def test_layernorm(lead, norm, affine, bias, seed):
    arrays = [normal(seed, *lead, *norm)]
    if affine:
        arrays.append(positive(seed + 1, *norm))
        if bias:
            arrays.append(normal(seed + 2, *norm))
    check_grad("layernorm", arrays, {"normalized_shape": norm, "elementwise_affine": affine, "bias": bias},
               seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=2, max_size=4), data=st.data(), seed=st.integers(0, 99))
def test_layout_ops(shape, data, seed):
    x = normal(seed, *shape)
    r = len(shape)
    perm = data.draw(st.permutations(range(r)))
    check_grad("permute", [x], {"dims": list(perm)}, seed=seed)
    check_grad("transpose", [x], {"dim0": data.draw(st.integers(-r, r - 1)), "dim1": data.draw(st.integers(-r, r - 1))},
               seed=seed)
    start = data.draw(st.integers(0, r - 1))
    check_grad("flatten", [x], {"start_dim": start, "end_dim": data.draw(st.integers(start, r - 1))}, seed=seed)
    check_grad("reshape", [x], {"shape": [-1]}, seed=seed)
    check_grad("unsqueeze", [x], {"dim": data.draw(st.integers(-r - 1, r))}, seed=seed)
    check_grad("squeeze", [normal(seed, 1, *shape, 1)], {"dim": [0, -1]}, seed=seed)
    check_grad("expand", [normal(seed, 1, *shape[1:])], {"shape": [2, 3, *shape[1:]]}, seed=seed)
    rolled = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=2, unique_by=lambda a: a % r))
    check_grad("roll", [x], {"shifts": [data.draw(st.integers(-5, 5)) for _ in rolled], "dims": rolled}, seed=seed)


@FAST
@given(sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), axis=st.integers(0, 1), seed=st.integers(0, 99))
def test_concat_split(sizes, axis, seed):
    xs = [normal(seed + i, *((s, 2) if axis == 0 else (2, s))) for i, s in enumerate(sizes)]
    check_grad("concat", xs, {"axis": axis}, seed=seed)
    check_grad("split", [normal(seed, *((sum(sizes), 2) if axis == 0 else (2, sum(sizes))))],
               {"sizes": sizes, "axis": axis}, seed=seed)


@FAST
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), chunks=st.integers(1, 4), data=st.data(),
       seed=st.integers(0, 99))
def test_chunk_unbind(shape, chunks, data, seed):
    """The pieces' gradients joined (chunk) or stacked (unbind) again; with only some pieces differentiated,
    the others give zeros."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    x = normal(seed, *shape)
    n_chunks = len(range(0, shape[d], -(-shape[d] // chunks)))
    for op, attrs, n in (("chunk", {"chunks": chunks, "dim": d}, n_chunks), ("unbind", {"dim": d}, shape[d])):
        check_grad(op, [x], attrs, seed=seed, linear=True)
        check_grad(op, [x], attrs, seed=seed, linear=True, outputs=[n - 1])


@pytest.mark.parametrize("op", ["floor", "ceil", "round", "sign"])
@FAST
@given(shape=shapes, seed=st.integers(0, 99))
def test_steps_have_zero_gradient(op, shape, seed):
    """torch's gradient of floor, ceil, round and sign is zero: so are the finite differences between steps
    (normal draws, spread over several steps, never land within eps of one)."""
    check_grad(op, [normal(seed, *shape) * 3], seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_cumsum(shape, data, seed):
    r = len(shape)
    check_grad("cumsum", [normal(seed, *shape)], {"dim": data.draw(st.integers(-r, r - 1))}, seed=seed)


@pytest.mark.parametrize("op", ["tril", "triu"])
@FAST
@given(shape=st.lists(dims, min_size=2, max_size=4), k=st.integers(-3, 3), seed=st.integers(0, 99))
def test_tril_triu(op, shape, k, seed):
    check_grad(op, [normal(seed, *shape)], {"diagonal": k}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=0, max_size=3), n=st.integers(1, 3), data=st.data(), seed=st.integers(0, 99))
def test_stack(shape, n, data, seed):
    r = len(shape)
    check_grad("stack", [normal(seed + i, *shape) for i in range(n)], {"dim": data.draw(st.integers(-r - 1, r))},
               seed=seed)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin"])
@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), keep=st.booleans(), seed=st.integers(0, 99))
def test_reductions(op, shape, data, keep, seed):
    r = len(shape)
    dim = data.draw(st.none() | st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda d: d % r))
    check_grad(op, [normal(seed, *shape)], {"dim": dim, "keepdim": keep}, seed=seed)


@FAST
@given(data=st.data(), seed=st.integers(0, 99))
def test_getitem(data, seed):
    shape = data.draw(st.lists(st.integers(2, 5), min_size=1, max_size=3))
    index = []
    for d in shape:
        kind = data.draw(st.sampled_from(["i", "s", "full"]))
        if kind == "i":
            index.append(("i", data.draw(st.integers(-d, d - 1))))
        elif kind == "s":
            lo = data.draw(st.none() | st.integers(-d, d - 1))
            hi = data.draw(st.none() | st.integers(-d, d))
            index.append(("s", lo, hi, data.draw(st.sampled_from([None, 1, 2, -1]))))
        else:
            index.append(("s", None, None, None))
    x = normal(seed, *shape)
    if x[tuple(e[1] if e[0] == "i" else slice(*e[1:]) for e in index)].size == 0:
        return
    check_grad("getitem", [x], {"index": tuple(index)}, seed=seed)


@FAST
@given(ids=st.lists(dims, min_size=1, max_size=2), vocab=st.integers(2, 6), dim=dims, seed=st.integers(0, 99))
def test_embedding(ids, vocab, dim, seed):
    idx = np.random.default_rng(seed).integers(0, vocab, ids)  # repeats: rows are summed
    check_grad("embedding", [idx, normal(seed, vocab, dim)], {"num_embeddings": vocab, "embedding_dim": dim},
               seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=2, max_size=3), seed=st.integers(0, 99))
def test_masks(shape, seed):
    rng = np.random.default_rng(seed)
    x, y = normal(seed, *shape), normal(seed + 1, *shape[1:])
    cond = rng.random(shape) > 0.5
    check_grad("where", [cond, x, y], seed=seed)
    check_grad("masked_fill", [x, cond[0]], {"value": 0.5}, seed=seed)
    check_grad("causal_mask", [x], {"value": -2.0}, seed=seed)


def test_cast_and_positions():
    check_grad("cast", [normal(0, 3, 4)], {"dtype": "float64"})
    check_grad("dropout", [normal(0, 3, 4)], {"p": 0.3})  # the inference form: identity


# ops deliberately without a rule; on a path from a parameter to the loss they are a diagnostic
WITHOUT = {
    "heaviside": "a step: zero gradient almost everywhere (torch has no gradient for it either)",
    "eq": "bool output, never differentiated",
    **{c: "bool output, never differentiated" for c in ("ne", "lt", "le", "gt", "ge")},
    "sinusoidal_embedding": "reads timesteps or positions, which are data",
    "floordiv": "a step function: zero gradient almost everywhere (index arithmetic)",
    "remainder": "index arithmetic on integers (torch's gradient, 1 and -floor(a/b), is not provided)",
    "argmax": "int64 output (an index), never differentiated",
    "argmin": "int64 output (an index), never differentiated",
    "one_hot": "int64 output of integer ids, never differentiated",
    "argsort": "int64 output (indices), never differentiated; sort's values have a rule",
    "eye": "a constant: no tensor input to differentiate",
}


@pytest.mark.parametrize("op", sorted(o.name for o in ops.all_ops()))
def test_every_op_has_a_gradient_rule_or_a_reason(op):
    """A new op gets a rule, or a line in WITHOUT saying why not."""
    assert ops.get(op).grad is not None or op in WITHOUT, f"{op} has no gradient rule"


@FAST
@given(shape=st.lists(st.integers(2, 4), min_size=2, max_size=4), seed=st.integers(0, 99))
def test_batchnorm_train_mode(shape, seed):
    """The training form (batch statistics); its running-stat outputs are never differentiated."""
    c = shape[1]
    arrays = [normal(seed, *shape), positive(seed + 1, c), normal(seed + 2, c), normal(seed + 3, c),
              positive(seed + 4, c)]
    check_grad("autodiff.batchnorm_train", arrays, {"eps": 1e-5, "momentum": 0.1}, wrt=[0, 1, 2], outputs=[0],
               seed=seed)


@FAST
@given(lead=st.lists(dims, min_size=1, max_size=2), classes=st.integers(2, 5), smooth=st.sampled_from([0.0, 0.1]),
       reduction=st.sampled_from(["mean", "sum", "none"]), ignore=st.sampled_from([None, 0]), seed=st.integers(0, 99))
def test_losses(lead, classes, smooth, reduction, ignore, seed):
    rng = np.random.default_rng(seed)
    logits = normal(seed, *lead, classes)
    labels = rng.integers(0, classes, lead)
    labels.flat[0] = 1  # one label that counts, whatever ignore_index
    check_grad("cross_entropy", [logits, labels], {"axis": len(lead), "label_smoothing": smooth,
                                                   "reduction": reduction, "ignore_index": ignore}, seed=seed)
    check_grad("bce_with_logits", [logits, rng.random(logits.shape)], {"reduction": reduction}, wrt=[0, 1],
               seed=seed)


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


@FAST
@given(groups=st.sampled_from([1, 2, 4]), affine=st.booleans(), rank=st.integers(3, 4), seed=st.integers(0, 99))
def test_group_norm(groups, affine, rank, seed):
    arrays = [normal(seed, 2, 4, *(3, 2)[:rank - 2])] + ([positive(seed + 1, 4), normal(seed + 2, 4)] if affine else [])
    check_grad("group_norm", arrays, {"num_groups": groups, "affine": affine}, seed=seed)


@FAST
@given(lead=st.lists(dims, min_size=1, max_size=2), last=st.integers(2, 5), affine=st.booleans(),
       seed=st.integers(0, 99))
def test_rms_norm(lead, last, affine, seed):
    arrays = [normal(seed, *lead, last)] + ([positive(seed + 1, last)] if affine else [])
    check_grad("rms_norm", arrays, {"elementwise_affine": affine, "eps": 1e-6}, seed=seed)


@FAST
@given(mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       pad=st.lists(st.integers(0, 2), min_size=2, max_size=4).filter(lambda p: len(p) % 2 == 0),
       seed=st.integers(0, 99))
def test_pad_and_take(mode, pad, seed):
    x = normal(seed, 2, 4, 5)
    check_grad("pad", [x], {"pad": pad, "mode": mode, "value": 1.5}, seed=seed)
    idx = np.random.default_rng(seed).integers(0, 4, (3, 2))  # repeats: summed
    check_grad("take", [x, idx], {"axis": 1}, seed=seed)


@FAST
@given(mode=st.sampled_from(["nearest", "nearest-exact", "linear", "bicubic"]),
       scale=st.sampled_from([2, 3, 1.5, 1.3, 1.2]),
       align=st.booleans(), seed=st.integers(0, 99))
@example(mode="linear", scale=1.2, align=False, seed=0)  # every size unchanged (4, 3, 2): a copy, whatever the scale
@example(mode="linear", scale=1.3, align=False, seed=1)  # bilinear 4 -> 5 but 3 -> 3: interpolated along both
@example(mode="bicubic", scale=1.3, align=False, seed=0)
@example(mode="bicubic", scale=2, align=True, seed=0)
def test_upsample(mode, scale, align, seed):
    rank = 3
    if mode == "linear":
        mode = ["linear", "bilinear", "trilinear"][seed % 3]
        rank = {"linear": 3, "bilinear": 4, "trilinear": 5}[mode]
    elif mode == "bicubic":
        rank = 4
    elif align:
        return
    interpolating = "linear" in mode or mode == "bicubic"
    x = normal(seed, 1, 2, *(4, 3, 2)[:rank - 2])
    check_grad("upsample", [x], {"scale_factor": scale, "mode": mode, "align_corners": align and interpolating},
               seed=seed, linear=True)


@FAST
@given(m=dims, k=dims, n=dims, bias=st.sampled_from([None, "row", "full", "scalar"]), seed=st.integers(0, 99))
def test_gemm(m, k, n, bias, seed):
    arrays = [normal(seed, m, k), normal(seed + 1, k, n)]
    if bias:
        arrays.append(normal(seed + 2, *{"row": (n,), "full": (m, n), "scalar": ()}[bias]))
    check_grad("gemm", arrays, seed=seed)


def _run_rnn_in_reference(model, feeds):
    """onnxruntime has no float64 LSTM/GRU kernel and says so only at run time: the float64 models run on
    onnx's reference evaluator (an implementation independent of the decomposition the rule differentiates)."""
    if any(n.op_type in ("LSTM", "GRU") for n in model.graph.node) and \
            any(v.dtype == np.float64 for v in feeds.values()):
        from onnx.reference import ReferenceEvaluator
        return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]
    return _run_model(model, feeds)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(1, 2), t=st.integers(1, 4), f=st.integers(1, 3), h=st.integers(2, 4), layers=st.integers(1, 2),
       bidirectional=st.booleans(), bias=st.booleans(), batch_first=st.booleans(), with_state=st.booleans(),
       return_state=st.booleans(), seed=st.integers(0, 99))
def test_recurrent(cell, b, t, f, h, layers, bidirectional, bias, batch_first, with_state, return_state, seed):
    """The gradient of the unrolled recurrence (torch's equations) against finite differences of ONNX's own
    LSTM/GRU: x, every weight and bias of every layer and direction, and the initial states."""
    attrs = {"hidden_size": h, "num_layers": layers, "bidirectional": bidirectional, "bias": bias,
             "batch_first": batch_first, "return_state": return_state}
    dirs = 2 if bidirectional else 1
    data = [normal(seed, b, t, f) if batch_first else normal(seed, t, b, f)]
    if with_state:
        data += [normal(seed + 1 + k, layers * dirs, b, h) for k in range(2 if cell == "lstm" else 1)]
    d = ops.get(cell)
    full = {**d.defaults(), **{k: ops.coerce_attr(d, d.attr_index[k], v) for k, v in attrs.items()}}
    specs = d.params([TensorType(DType.float64, data[0].shape)], full)
    params = [normal(seed + 10 + i, *s.shape) * 0.7 for i, s in enumerate(specs)]
    with mock.patch.object(gradcheck, "run_model", _run_rnn_in_reference):
        check_grad(cell, data + params, attrs, seed=seed)


# ---- one value in several inputs of a composite rule (b.vjp): its gradient was counted once per position ----

def test_lstm_with_one_initial_state_for_h_and_c():
    attrs = {"hidden_size": 3, "num_layers": 1, "bidirectional": False, "bias": True, "batch_first": True,
             "return_state": False}
    data = [normal(1, 2, 3, 2), normal(2, 1, 2, 3), normal(2, 1, 2, 3)]
    d = ops.get("lstm")
    full = {**d.defaults(), **{k: ops.coerce_attr(d, d.attr_index[k], v) for k, v in attrs.items()}}
    specs = d.params([TensorType(DType.float64, data[0].shape)], full)
    params = [normal(10 + i, *s.shape) * 0.7 for i, s in enumerate(specs)]
    with mock.patch.object(gradcheck, "run_model", _run_rnn_in_reference):
        check_grad("lstm", data + params, attrs, tied={2: 1})


# ---- pow where the plain formulas give 0 * inf (torch's conventions) ----

def test_pow_exponent_gradient_is_zero_at_base_zero():
    """relu(x) ** p with a learnable p (GeM pooling): d/dp = x^p log x was NaN at x = 0."""
    x = np.array([[0.0, 0.5, 1.5], [0.0, 2.0, 0.0]])
    check_grad("pow", [x, np.array([1.5, 2.0, 3.0])], wrt=[1])


def test_pow_base_gradient_is_zero_where_the_exponent_is_zero():
    """x ** 0 is 1: d/dx = 0 * x^-1 was NaN at x = 0."""
    x = np.array([[0.0, 0.5, -1.5], [0.0, 2.0, 1.0]])
    check_grad("pow", [x, np.array([0.0, 2.0, 0.0])], wrt=[0])


def test_pow_by_a_constant_zero_has_a_zero_gradient():
    from archdsl import driver
    from archdsl.autodiff import gradients
    g = driver.check_source("model m(x: float32[3]) -> y { y = x ** 0.0 }")
    x = g.inputs[0]
    loss = g.add_node("sum", [g.outputs[0][1]], {"dim": None, "keepdim": False}, "s").outputs[0]
    (gx,) = gradients(g, loss, [x])
    g.set_output("gx", gx)
    from archdsl.lower import lower_graph
    (y, got) = gradcheck.run_model(lower_graph(g, opset=gradcheck.OPSET32).model,
                                   {"x": np.array([0.0, 1.0, -2.0], np.float32)})
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0])
