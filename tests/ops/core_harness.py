"""What the core-op property tests share: the one-op harness (compile, full check, ONNX shape agreement,
run, shape/dtype against our rule), the coverage record, and numpy references written from each op's
definition (torch semantics)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import onnx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import archdsl
from archdsl import runtime
from archdsl.lower import lower_graph
from archdsl.types import dim_size

from ..lower.shape_agreement import assert_shapes_agree

NEWEST = runtime.newest_opset()
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=6)  # for tests parametrized over many ops
OPSET = st.sampled_from([17, NEWEST])
SYM = st.booleans()
CORE_MODULES = ("activation", "adaptive_pool", "bitwise", "cdist", "conv", "ctc", "cumprod", "detach", "einsum",
                "elementwise", "embedding", "eye", "filled", "finite", "gamma", "grid_sample", "index", "indexing",
                "instance_norm", "linear",
                "local_response_norm", "logexp", "logical", "losses", "more_activations", "more_math", "norm", "pool",
                "random", "rearrange", "reductions", "repeat_interleave", "scatter", "shape_ops", "sorting",
                "split_ops", "tensor_ops", "trig", "unfold", "vector_norm")
COVERED: set[str] = set()
_DT = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64", np.dtype(np.int32): "int32",
       np.dtype(np.bool_): "bool"}
dim = st.integers(1, 4)


def covers(*names: str):
    """Record which ops a test exercises: test_every_core_op_is_covered compares with the registry."""
    COVERED.update(names)
    return lambda f: f


def concrete(shape, env: dict) -> tuple:
    """Our shape rule's dims with the symbols (`B`, `(B-2)//2+1`) evaluated for the sizes fed."""
    out = tuple(dim_size(d, env) for d in shape)
    assert None not in out, f"{shape}: a dim our sizes {env} do not give"
    return out


def run_op(expr: str, *, opset: int = NEWEST, sym: bool | str = False, **inputs: np.ndarray):
    """Compile `y = expr` over the inputs, check, run; return (y, weights). sym=True declares dim 0 as `B`;
    sym="all" declares every dim of the first input symbolic too (`B, D1, D2, ...`)."""
    first = next(iter(inputs.values()))
    names = ["B"] + [f"D{i}" for i in range(1, first.ndim)] if sym == "all" else ["B"] if sym else []

    def decl(v):
        dims = [str(d) for d in v.shape]
        for i, n in enumerate(names if v is first else names[:1]):
            dims[i] = n
        return f"{_DT[v.dtype]}[{', '.join(dims)}]"
    sig = ", ".join(f"{k}: {decl(v)}" for k, v in inputs.items())
    g = archdsl.check_source(f"model m({sig}) -> y {{\n    y = {expr}\n}}\n", file="op.arch")
    rng = np.random.default_rng(7)
    weights = {name: (rng.uniform(0.5, 2.0, v.type.shape) if name.endswith("running_var")
                      else rng.standard_normal(v.type.shape)).astype(np.float32) for name, v in g.params.items()}
    res = lower_graph(g, opset=opset, weights=weights)
    onnx.checker.check_model(res.model, full_check=True)
    assert_shapes_agree(g, res)
    read = {i for n in res.model.graph.node for i in n.input}  # onnxruntime warns of an unread one at each load
    assert [t.name for t in res.model.graph.initializer if t.name not in read] == [], expr
    out = runtime.session(res.model, provider="cpu", threads=1).run(None, inputs)[0]
    t = g.outputs[0][1].type
    rule = concrete(t.shape, {n: first.shape[i] for i, n in enumerate(names)})
    assert out.shape == rule, f"{expr}: onnxruntime gives {out.shape}, our shape rule says {rule}"
    assert out.dtype == np.dtype(t.dtype.np), f"{expr}: onnxruntime gives {out.dtype}, we say {t.dtype}"
    return out, weights


def grads_of(src: str, feeds: dict, r: np.ndarray, wrt: list[str]):
    """The gradients of sum(y * r) with respect to the named inputs, from archdsl's reverse mode."""
    from archdsl import driver
    from archdsl.autodiff import gradients
    from archdsl.ir import check
    g = driver.elaborate_model(driver.load(text=src, file="g.arch"), "m")
    y = g.outputs[0][1]
    loss = g.add_node("sum", [g.add_node("mul", [y, g.add_const(r)], {}, "w").outputs[0]],
                      {"dim": None, "keepdim": False}, "s").outputs[0]
    ins = {v.name: v for v in g.inputs}
    for name, gv in zip(wrt, gradients(g, loss, [ins[k] for k in wrt])):
        g.set_output(f"d_{name}", gv)
    check(g)
    model = lower_graph(g, opset=NEWEST).model
    outs = runtime.session(model, provider="cpu", threads=1).run([f"d_{k}" for k in wrt], feeds)
    return dict(zip(wrt, outs))


def as_torch(a, double: bool = False):
    """A torch tensor of an array: a copy (contiguous, and 0-d stays 0-d); double=True in float64, where the
    references are computed."""
    import torch
    t = torch.from_numpy(np.array(a))
    return t.double() if double else t


def refused(src: str, match: str) -> None:
    """The source is refused at check time with a diagnostic whose message matches `match` (re.search; a
    pattern may anchor at the message's start, which str(e) puts after the place)."""
    import re

    import pytest
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(src)
    assert re.search(match, e.value.message), e.value.message


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(got, want, rtol=1e-4, atol=1e-5):
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want.astype(got.dtype) if got.dtype != bool else want, rtol=rtol, atol=atol)


def b(v: bool) -> str:
    return "true" if v else "false"


# ---------------- numpy references ----------------

def conv_ref(x, w, bias, stride, pads, dil, groups):
    """Direct convolution: one einsum per kernel offset over the strided window of the padded input."""
    n = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(pads))
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - dil[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    cin_g, cout_g = x.shape[1] // groups, w.shape[0] // groups
    y = np.zeros((x.shape[0], w.shape[0], *out_sp))
    for g in range(groups):
        xg = xp[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g].astype(np.float64)
        for off in itertools.product(*[range(ki) for ki in k]):
            win = tuple(slice(off[i] * dil[i], off[i] * dil[i] + stride[i] * (out_sp[i] - 1) + 1, stride[i])
                        for i in range(n))
            y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("nc...,oc->no...", xg[(slice(None), slice(None)) + win],
                                                             wg[(slice(None), slice(None)) + off])
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * n)
    return y


def pool_out(size, k, s, p, ceil, d=1):
    """torch's output length, ceil_mode's last window dropped when it starts in the right padding."""
    span = size + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def pool_ref(x, kind, k, s, p, ceil, include_pad, dilation=None):
    """Window by window, with torch's divisor: the window clipped to the padded input when padding counts,
    else to the input. A max pool's dilated window takes every d-th element of its span."""
    n = x.ndim - 2
    sp = x.shape[2:]
    d = dilation or [1] * n
    outs = [pool_out(sp[i], k[i], s[i], p[i], ceil, d[i]) for i in range(n)]
    y = np.zeros(x.shape[:2] + tuple(outs))
    for o in itertools.product(*[range(v) for v in outs]):
        sl, padded = [], 1
        for i in range(n):
            lo = o[i] * s[i] - p[i]
            if d[i] > 1:  # the taps inside the input (padding is -inf to a max)
                first = lo + d[i] * max(0, -(-(-lo) // d[i]))
                sl.append(slice(first, min(lo + d[i] * (k[i] - 1) + 1, sp[i]), d[i]))
                continue
            hi = min(lo + k[i], sp[i] + p[i])
            padded *= hi - lo
            sl.append(slice(max(lo, 0), min(hi, sp[i])))
        win = x[(slice(None), slice(None)) + tuple(sl)].astype(np.float64)
        axes = tuple(range(2, 2 + n))
        if kind == "max":
            y[(slice(None), slice(None)) + o] = win.max(axis=axes)
        else:
            y[(slice(None), slice(None)) + o] = win.sum(axis=axes) / (padded if include_pad else win[0, 0].size)
    return y


erf_ref = np.vectorize(math.erf)


def softmax_ref(x, axis):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


ACTS = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu(negative_slope=0.2)": lambda x: np.where(x > 0, x, 0.2 * x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "gelu": lambda x: 0.5 * x * (1 + erf_ref(x / math.sqrt(2))),
    'gelu(approximate="tanh")': lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: softmax_ref(x, -1),
    "softmax(axis=0)": lambda x: softmax_ref(x, 0),
    "log_softmax": lambda x: np.log(softmax_ref(x, -1)),
    "log_softmax(axis=1)": lambda x: np.log(softmax_ref(x, 1)),
}
