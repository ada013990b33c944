"""Core ops, property-based: a one-op model compiled at -O0 runs in onnxruntime; the output shape equals
our shape rule's and the values equal a reference (torch.nn.functional where torch is installed, numpy
for the simple ops) fed the same seeded weights a build gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.lower import initial_weights
from archdsl.runtime import session

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DT = {np.float32: "float32", np.int64: "int64", np.bool_: "bool"}


def run_op(expr: str, **inputs: np.ndarray):
    """Compile `y = expr` over the given inputs; return (onnxruntime output, seeded weights)."""
    decl = ", ".join(f"{k}: {_DT[v.dtype.type]}[{', '.join(map(str, v.shape))}]" for k, v in inputs.items())
    text = f"model m({decl}) -> y {{\n    y = {expr}\n}}\n"
    g = archdsl.check_source(text)
    weights = initial_weights(g, seed=0)
    model = archdsl.compile_source(text, seed=0, opt_level=0)
    out = session(model, provider="cpu", threads=1).run(None, inputs)[0]
    rule = tuple(g.outputs[0][1].type.shape)
    assert out.shape == rule, f"{expr}: onnxruntime gives {out.shape}, shape rule says {rule}"
    return out, weights


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(got, want, rtol=1e-4, atol=1e-5):
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _torch():
    return pytest.importorskip("torch")


dim = st.integers(1, 4)


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), out=st.integers(1, 5), bias=st.booleans())
def test_linear(shape, out, bias):
    x = rand(*shape, 3)
    y, w = run_op(f"x -> linear({out}, bias={str(bias).lower()}) as fc", x=x)
    want = x @ w["fc.weight"].T + (w["fc.bias"] if bias else 0)
    close(y, want)


@st.composite
def conv_case(draw, nd: int):
    groups = draw(st.sampled_from([1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    dil = draw(st.integers(1, 2))
    same = draw(st.booleans())
    stride = 1 if same else draw(st.integers(1, 2))
    pad = "same" if same else draw(st.integers(0, 2))
    size = draw(st.integers(dil * (k - 1) + 1, 7))
    return cin, cout, k, stride, pad, dil, groups, size, draw(st.booleans())


def _conv(nd, case):
    torch = _torch()
    F = torch.nn.functional
    cin, cout, k, stride, pad, dil, groups, size, bias = case
    x = rand(2, cin, *([size] * nd))
    p = '"same"' if pad == "same" else pad
    y, w = run_op(f"x -> conv{nd}d({cout}, {k}, stride={stride}, padding={p}, dilation={dil}, groups={groups}, "
                  f"bias={str(bias).lower()}) as c", x=x)
    fn = F.conv1d if nd == 1 else F.conv2d
    want = fn(torch.from_numpy(x), torch.from_numpy(w["c.weight"]),
              torch.from_numpy(w["c.bias"]) if bias else None, stride=stride, padding=pad, dilation=dil, groups=groups)
    close(y, want)


@SETTINGS
@given(case=conv_case(1))
def test_conv1d(case):
    _conv(1, case)


@SETTINGS
@given(case=conv_case(2))
def test_conv2d(case):
    _conv(2, case)


@SETTINGS
@given(n=st.integers(1, 3), c=dim, hw=st.lists(dim, min_size=0, max_size=2))
def test_batchnorm_inference(n, c, hw):
    torch = _torch()
    x = rand(n, c, *hw)
    y, w = run_op("x -> batchnorm as bn", x=x)
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    want = torch.nn.functional.batch_norm(torch.from_numpy(x), t["bn.running_mean"], t["bn.running_var"],
                                          t["bn.weight"], t["bn.bias"], training=False, eps=1e-5)
    close(y, want)


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), last=st.integers(2, 5), two=st.booleans(),
       eps=st.sampled_from([1e-5, 1e-3]))
def test_layernorm(shape, last, two, eps):
    torch = _torch()
    x = rand(*shape, last)
    norm = [shape[-1], last] if two and len(shape) >= 2 else [last]
    y, w = run_op(f"x -> layernorm(normalized_shape={norm}, eps={eps}) as ln", x=x)
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), norm, torch.from_numpy(w["ln.weight"]),
                                          torch.from_numpy(w["ln.bias"]), eps=eps)
    close(y, want)


_ACTS = {
    "relu": lambda F, t: F.relu(t),
    "leaky_relu(negative_slope=0.2)": lambda F, t: F.leaky_relu(t, 0.2),
    "gelu": lambda F, t: F.gelu(t),
    'gelu(approximate="tanh")': lambda F, t: F.gelu(t, approximate="tanh"),
    "silu": lambda F, t: F.silu(t),
    "sigmoid": lambda F, t: torch_sigmoid(t),
    "tanh": lambda F, t: t.tanh(),
    "softmax": lambda F, t: F.softmax(t, dim=-1),
    "softmax(axis=1)": lambda F, t: F.softmax(t, dim=1),
}


def torch_sigmoid(t):
    return t.sigmoid()


@SETTINGS
@given(act=st.sampled_from(sorted(_ACTS)), shape=st.lists(dim, min_size=2, max_size=4), seed=st.integers(0, 9))
def test_activations(act, shape, seed):
    torch = _torch()
    x = rand(*shape, seed=seed) * 3
    y, _ = run_op(f"x -> {act}", x=x)
    close(y, _ACTS[act](torch.nn.functional, torch.from_numpy(x)))


@st.composite
def pool_case(draw):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k // 2))
    size = draw(st.integers(k, 7))
    return k, stride, pad, size, draw(st.booleans()), draw(st.booleans())


@SETTINGS
@given(case=pool_case(), nd=st.sampled_from([1, 2]), kind=st.sampled_from(["max", "avg"]))
def test_pools(case, nd, kind):
    torch = _torch()
    F = torch.nn.functional
    k, stride, pad, size, ceil, include = case
    x = rand(2, 3, *([size] * nd))
    extra = f", count_include_pad={str(include).lower()}" if kind == "avg" else ""
    y, _ = run_op(f"x -> {kind}pool{nd}d({k}, stride={stride}, padding={pad}, ceil_mode={str(ceil).lower()}{extra})",
                  x=x)
    t = torch.from_numpy(x)
    if kind == "max":
        want = (F.max_pool1d if nd == 1 else F.max_pool2d)(t, k, stride, pad, ceil_mode=ceil)
    else:
        want = (F.avg_pool1d if nd == 1 else F.avg_pool2d)(t, k, stride, pad, ceil_mode=ceil, count_include_pad=include)
    close(y, want)


@SETTINGS
@given(spatial=st.lists(dim, min_size=1, max_size=3), keep=st.booleans(), kind=st.sampled_from(["avg", "max"]))
def test_global_pools(spatial, keep, kind):
    x = rand(2, 3, *spatial)
    y, _ = run_op(f"x -> global_{kind}pool(keepdims={str(keep).lower()})", x=x)
    axes = tuple(range(2, x.ndim))
    want = (x.mean if kind == "avg" else x.max)(axis=axes, keepdims=keep)
    close(y, want)


@SETTINGS
@given(shape=st.lists(dim, min_size=2, max_size=4), data=st.data())
def test_shape_ops(shape, data):
    x = rand(*shape)
    r = len(shape)
    start = data.draw(st.integers(0, r - 1))
    end = data.draw(st.integers(start, r - 1))
    y, _ = run_op(f"x -> flatten(start_dim={start}, end_dim={end})", x=x)
    close(y, x.reshape(shape[:start] + [-1] + shape[end + 1:]))
    perm = data.draw(st.permutations(range(r)))
    y, _ = run_op(f"x -> permute({list(perm)})", x=x)
    close(y, x.transpose(perm))
    d0, d1 = data.draw(st.integers(-r, r - 1)), data.draw(st.integers(-r, r - 1))
    y, _ = run_op(f"x -> transpose({d0}, {d1})", x=x)
    close(y, np.swapaxes(x, d0, d1))
    y, _ = run_op("x.T", x=x)
    close(y, np.swapaxes(x, -1, -2))
    new = [int(np.prod(shape[:-1])), -1]
    y, _ = run_op(f"x -> reshape({new})", x=x)
    close(y, x.reshape(new))


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       data=st.data())
def test_concat_and_split(shape, sizes, data):
    axis = data.draw(st.integers(0, len(shape)))
    parts = [rand(*shape[:axis], s, *shape[axis:], seed=i) for i, s in enumerate(sizes)]
    names = [f"x{i}" for i in range(len(parts))]
    y, _ = run_op(f"concat([{', '.join(names)}], axis={axis})", **dict(zip(names, parts)))
    whole = np.concatenate(parts, axis=axis)
    close(y, whole)
    k = data.draw(st.integers(0, len(sizes) - 1))
    y, _ = run_op(f"split(x, {sizes}, axis={axis})[{k}]", x=whole)
    close(y, parts[k])


def _broadcast_pair(draw):
    out = draw(st.lists(dim, min_size=1, max_size=3))
    a = [d if draw(st.booleans()) else 1 for d in out]
    b = [d if draw(st.booleans()) else 1 for d in out][draw(st.integers(0, len(out) - 1)):]
    return a, b


@SETTINGS
@given(data=st.data(), op=st.sampled_from(["+", "-", "*", "/"]))
def test_broadcasting_arithmetic(data, op):
    a_shape, b_shape = _broadcast_pair(data.draw)
    a, b = rand(*a_shape, seed=1), rand(*b_shape, seed=2)
    if op == "/":
        b = np.abs(b) + 0.5
    y, _ = run_op(f"a {op} b", a=a, b=b)
    close(y, {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op])
    y, _ = run_op(f"a {op} 2.5", a=a)
    close(y, {"+": a + 2.5, "-": a - 2.5, "*": a * 2.5, "/": a / 2.5}[op])


@SETTINGS
@given(batch_a=st.lists(st.integers(1, 2), max_size=2), batch_b=st.lists(st.integers(1, 2), max_size=2),
       m=dim, k=dim, n=dim)
def test_matmul_broadcasting(batch_a, batch_b, m, k, n):
    if len(batch_a) == len(batch_b):
        batch_b = [1 if x != y else y for x, y in zip(batch_a, batch_b)]
    else:
        batch_b = batch_b[:0] if len(batch_b) < len(batch_a) else batch_b
    try:
        np.broadcast_shapes(tuple(batch_a), tuple(batch_b))
    except ValueError:
        batch_b = []
    a, b = rand(*batch_a, m, k, seed=1), rand(*batch_b, k, n, seed=2)
    y, _ = run_op("a @ b", a=a, b=b)
    close(y, a @ b)


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), num=st.integers(1, 6), edim=st.integers(1, 4), seed=st.integers(0, 9))
def test_embedding(shape, num, edim, seed):
    ids = np.random.default_rng(seed).integers(0, num, size=shape).astype(np.int64)
    y, w = run_op(f"ids -> embedding({num}, {edim}) as emb", ids=ids)
    close(y, w["emb.weight"][ids])


def _index_item(draw, size: int) -> tuple[str, object]:
    kind = draw(st.sampled_from(["int", "slice", "all"]))
    if kind == "int":
        i = draw(st.integers(-size, size - 1))
        return str(i), i
    if kind == "all":
        return ":", slice(None)
    lo = draw(st.one_of(st.none(), st.integers(-size, size)))
    hi = draw(st.one_of(st.none(), st.integers(-size, size)))
    step = draw(st.one_of(st.none(), st.integers(1, 2)))
    text = f"{'' if lo is None else lo}:{'' if hi is None else hi}" + ("" if step is None else f":{step}")
    return text, slice(lo, hi, step)


@SETTINGS
@given(shape=st.lists(st.integers(2, 4), min_size=1, max_size=3), data=st.data(), ellipsis=st.booleans())
def test_getitem(shape, data, ellipsis):
    x = rand(*shape)
    n = data.draw(st.integers(1, len(shape)))
    dims = shape[-n:] if ellipsis else shape[:n]
    items = [_index_item(data.draw, s) for s in dims]
    texts, keys = [t for t, _ in items], [k for _, k in items]
    if ellipsis:
        texts, keys = ["..."] + texts, [Ellipsis] + keys
    want = x[tuple(keys)]
    if 0 in want.shape:
        return  # empty results are not interesting here
    y, _ = run_op(f"x[{', '.join(texts)}]", x=x)
    close(y, want)


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data(), keep=st.booleans())
def test_unsqueeze_squeeze_expand_reduce(shape, data, keep):
    x = rand(*shape)
    r = len(shape)
    d = data.draw(st.integers(-r - 1, r))
    y, _ = run_op(f"x -> unsqueeze({d})", x=x)
    close(y, np.expand_dims(x, d))
    y, _ = run_op("x -> squeeze", x=x)
    close(y, np.squeeze(x))
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones:
        y, _ = run_op(f"x -> squeeze(dim=[{ones[0]}])", x=x)
        close(y, np.squeeze(x, ones[0]))
    target = [s if s != 1 else data.draw(st.integers(1, 3)) for s in shape]
    y, _ = run_op(f"x -> expand(shape={target})", x=x)
    close(y, np.broadcast_to(x, target))
    axes = sorted(set(data.draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r))))
    for fn, ref in (("mean", np.mean), ("sum", np.sum)):
        y, _ = run_op(f"x -> {fn}(dim={axes}, keepdim={str(keep).lower()})", x=x)
        close(y, ref(x, axis=tuple(axes), keepdims=keep))
        y, _ = run_op(f"x -> {fn}", x=x)
        close(y, np.asarray(ref(x)))


@SETTINGS
@given(data=st.data())
def test_where(data):
    a_shape, b_shape = _broadcast_pair(data.draw)
    c = np.random.default_rng(3).random(a_shape) > 0.5
    a, b = rand(*a_shape, seed=1), rand(*b_shape, seed=2)
    y, _ = run_op("where(c, a, b)", c=c, a=a, b=b)
    close(y, np.where(c, a, b))


@SETTINGS
@given(t=st.integers(1, 4), s=st.integers(1, 4), lead=st.lists(st.integers(1, 2), max_size=2))
def test_causal_mask(t, s, lead):
    s = max(s, t)
    x = rand(*lead, t, s)
    y, _ = run_op("x -> causal_mask", x=x)
    i = np.arange(t)[:, None]
    j = np.arange(s)[None, :]
    want = np.where(j > i + s - t, -np.inf, x).astype(np.float32)
    close(y, want)
