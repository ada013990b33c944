"""Check one op's gradient rule against central finite differences, in float64.

The op runs in a one-node graph; the objective is L = sum_k <out_k, R_k> for fixed random R_k, so its
gradient is exactly what the rule computes from an incoming gradient R. The gradient graph is lowered like
any model and run on onnxruntime (onnx's reference evaluator where onnxruntime has no float64 kernel:
Conv, ConvTranspose, AveragePool, Erf, LeakyRelu); the directional derivative <grad, v> is compared with
(L(x + eps v) - L(x - eps v)) / 2 eps for a few random directions v. The same gradient graph in float32 on
onnxruntime must agree with the float64 one (catching kernels that behave differently)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import archdsl.autodiff  # noqa: F401  (registers the internal ops)
from archdsl import ops
from archdsl.autodiff import gradients
from archdsl.diagnostics import ShapeError
from archdsl.ir import Graph, check
from archdsl.lower import lower_graph
from archdsl.types import DType, TensorType

__all__ = ["check_grad", "run_model"]

OPSET64 = 19  # float64 runs: Gelu is then written with Erf, which the reference evaluator has in float64
OPSET32 = 21



# what the gradient-rule tests draw: few examples each (every op has a rule to check), small shapes
FAST = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=1, max_size=3).map(tuple)


def normal(seed, *shape):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


def positive(seed, *shape):
    return np.abs(normal(seed, *shape)) + 0.5


def _sessions():
    import onnxruntime as ort
    return ort


def run_model(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    ort = _sessions()
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        if "NOT_IMPLEMENTED" not in str(e) and "Could not find an implementation" not in str(e):
            raise
        from onnx.reference import ReferenceEvaluator
        ref = ReferenceEvaluator(model, new_ops=[_grouped_conv_transpose(), _erf64(), *_global_pools()])
        return [np.asarray(o) for o in ref.run(None, feeds)]
    return sess.run(None, feeds)


def _grouped_conv_transpose():
    """onnx's reference ConvTranspose slices W by output channels when group > 1 (W is [C_in, C_out/group,
    ...]); this runs each group through its group-1 path instead."""
    from onnx.reference.ops.op_conv_transpose import ConvTranspose

    class GroupedConvTranspose(ConvTranspose):
        op_domain = ""

        def _run(self, X, W, B=None, group=None, **kw):
            if not group or group == 1:
                return super()._run(X, W, B, group=1, **kw)
            cin, cog = X.shape[1] // group, W.shape[1]
            outs = [super(GroupedConvTranspose, self)._run(
                X[:, i * cin:(i + 1) * cin], W[i * cin:(i + 1) * cin],
                None if B is None else B[i * cog:(i + 1) * cog], group=1, **kw)[0] for i in range(group)]
            return (np.concatenate(outs, axis=1),)

    GroupedConvTranspose.__name__ = "ConvTranspose"
    return GroupedConvTranspose


def _erf64():
    """onnx's reference Erf rounds through float32; finite differences need the float64 value."""
    from math import erf

    from onnx.reference.op_run import OpRun

    class Erf(OpRun):
        op_domain = ""

        def _run(self, x):
            return (np.vectorize(erf, otypes=[x.dtype])(x),)

    return Erf


def _global_pools():
    """onnx's reference GlobalMax/AveragePool assume two spatial dims."""
    from onnx.reference.op_run import OpRun

    def make(name, fn):
        cls = type(name, (OpRun,), {"op_domain": "", "_run": lambda self, x: (fn(x, axis=tuple(range(2, x.ndim)),
                                                                               keepdims=True),)})
        return cls

    return [make("GlobalMaxPool", np.max), make("GlobalAveragePool", np.mean)]


def _build(op: str, types: list[TensorType], attrs: dict, dtype: DType, rs: list[np.ndarray], wrt: list[int],
           opset: int = OPSET64, tied: dict[int, int] | None = None):
    opdef = ops.get(op)
    full = opdef.defaults()
    for k, v in attrs.items():
        full[k] = ops.coerce_attr(opdef, opdef.attr_index[k], v)
    g = Graph("gradcheck")
    ins = []
    for i, t in enumerate(types):
        tt = TensorType(dtype, t.shape) if t.dtype.is_float else t
        ins.append(ins[tied[i]] if tied and i in tied else g.add_input(f"in{i}", tt))
    node = g.add_node(op, ins, full, op)
    loss = None
    for o, r in zip(node.outputs, rs):
        if r is None:
            continue
        term = g.add_node("sum", [g.add_node("mul", [o, g.add_const(r.astype(o.type.dtype.np))], {}, "w").outputs[0]],
                          {"dim": None, "keepdim": False}, "s").outputs[0]
        loss = term if loss is None else g.add_node("add", [loss, term], {}, "acc").outputs[0]
    grads = gradients(g, loss, [ins[i] for i in wrt])
    g.set_output("loss", loss)
    for i, gv in zip(wrt, grads):
        g.set_output(f"grad{i}", gv if gv is not None else ins[i])
    check(g)
    return lower_graph(g, opset=opset).model, [gv is None for gv in grads]


def check_grad(op: str, arrays: list[np.ndarray], attrs: dict | None = None, *, wrt: list[int] | None = None,
               eps: float = 1e-6, rtol: float = 1e-5, seed: int = 0, directions: int = 3,
               outputs: list[int] | None = None, linear: bool = False, tied: dict[int, int] | None = None,
               float32: bool = True) -> None:
    """Assert the rule of `op` matches finite differences at `arrays` (float arrays are differentiated);
    `outputs` limits the objective to those outputs (an op whose other outputs are never differentiated).

    `linear`: the op is linear in its inputs, so central differences are exact at any step; they are then
    taken in float32 on onnxruntime with a step of 1 (for ops whose float64 forward only onnx's reference
    evaluator runs, where that evaluator is wrong: AveragePool with ceil_mode).

    `tied` maps an input position to an earlier one whose value it reuses (sdpa(h, h, h): {1: 0, 2: 0}); the
    gradient of the shared value then sums over every position it fills."""
    tied = tied or {}
    attrs = attrs or {}
    rng = np.random.default_rng(seed)
    types = [TensorType(_dtype(a), tuple(a.shape)) for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and i not in tied]
    probe = ops.get(op).infer([t for t in types], {**ops.get(op).defaults(), **{
        k: ops.coerce_attr(ops.get(op), ops.get(op).attr_index[k], v) for k, v in attrs.items()}})
    rs = [np.asarray(rng.standard_normal(tuple(int(d) for d in t.shape)))
          if t.dtype.is_float and (outputs is None or i in outputs) else None for i, t in enumerate(probe)]
    model, none = _build(op, types, attrs, DType.float64, rs, wrt, tied=tied)
    onnx.checker.check_model(model, full_check=True)
    feeds = {f"in{i}": np.asarray(a.astype(np.float64) if a.dtype.kind == "f" else a) for i, a in enumerate(arrays)
             if i not in tied}
    _loss, *grads = run_model(model, feeds)
    grads = [np.zeros_like(feeds[f"in{i}"]) if n else g for i, g, n in zip(wrt, grads, none)]
    fwd_model, _ = _build(op, types, attrs, DType.float32 if linear else DType.float64, rs, [],
                          OPSET32 if linear else OPSET64, tied)
    if linear:
        eps, rtol = 1.0, max(rtol, 1e-4)
        # the loss at |inputs| with |r|: the sum of its terms' sizes (convs, pools and moves are sums of
        # products with positive coefficients), which a float32 loss rounds at ~1e-7 of, whatever it cancels to
        abs_model, _ = _build(op, types, attrs, DType.float32, [None if r is None else np.abs(r) for r in rs], [],
                              OPSET32, tied)
    for _ in range(directions):
        vs = {i: np.asarray(rng.standard_normal(feeds[f"in{i}"].shape)) for i in wrt}
        cast = (lambda a: np.asarray(a, np.float32 if a.dtype == np.float64 else a.dtype)) if linear else np.asarray
        plus = {k: cast(v + eps * vs[int(k[2:])] if int(k[2:]) in vs else v) for k, v in feeds.items()}
        minus = {k: cast(v - eps * vs[int(k[2:])] if int(k[2:]) in vs else v) for k, v in feeds.items()}
        lp, lm = float(run_model(fwd_model, plus)[0]), float(run_model(fwd_model, minus)[0])
        fd = (lp - lm) / (2 * eps)
        an = sum(float(np.sum(g * vs[i])) for i, g in zip(wrt, grads))
        scale = max(abs(fd), abs(an), 1e-3)
        # float32 losses (linear ops) round at about 1e-7 of their terms' size: that bounds what fd can resolve
        size = float(run_model(abs_model, {k: cast(np.abs(v) + eps * np.abs(vs[int(k[2:])]) if int(k[2:]) in vs
                                                   else v) for k, v in feeds.items()})[0]) if linear else 0.0
        atol = 1e-7 + (1e-6 * max(abs(lp), abs(lm), size) / (2 * eps) if linear else 0.0)
        assert abs(fd - an) <= rtol * scale + atol, f"{op}: finite differences {fd:.8g}, gradient {an:.8g}"
    # the same gradient graph in float32 on onnxruntime agrees (float32=False: inputs where float32 itself is
    # ill-conditioned; the finite differences above are still checked)
    if not float32:
        return
    m32, _ = _build(op, types, attrs, DType.float32, rs, wrt, OPSET32, tied)
    f32 = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in feeds.items()}
    _, *g32 = run_model(m32, f32)
    for i, a, b, n in zip(wrt, g32, grads, none):
        if not n:
            tol = 1e-3 * max(1.0, float(np.abs(b).max()))
            assert np.allclose(a, b, rtol=1e-3, atol=tol), f"{op}: float32 gradient {i} differs from float64"


def _dtype(a: np.ndarray) -> DType:
    return {np.dtype(np.float64): DType.float64, np.dtype(np.float32): DType.float64,
            np.dtype(np.int64): DType.int64, np.dtype(np.int32): DType.int32,
            np.dtype(np.bool_): DType.bool}[a.dtype]


def valid(op, arrays, attrs) -> bool:
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

