"""log1p, expm1, log2, log10 and logaddexp, as accurate as torch's: ONNX has none of them, and the plain
compositions lose what they are for (log(1 + x) is 0 for |x| below float32's epsilon, log(8) / log(2) is
2.9999998 in onnxruntime's float32)."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, TensorType
from ._common import (
    elementwise_cost,
    float_input,
    float_pair_infer,
    narrow_into,
    sign_bit,
    wide_np,
    wide_outputs,
    widen,
)
from .registry import OpDef, register


def _float_infer(name: str):
    def infer(ins, a):
        float_input(name, ins[0])
        return [ins[0]]
    return infer


def log1p_of(e, x: str, f, finite: bool = False) -> str:
    """log(1 + x) to a few ulps: x * log(u) / (u - 1), u = 1 + x (Kahan's: the quotient cancels u's rounding),
    x itself where 1 + x rounds to 1 (the factor 1 there; also where u - 1 is inf, which made it inf / inf,
    a case left out when the caller knows x is small and finite: `finite`). A product, not a Where picking x:
    onnxruntime's Where turns -0 into +0, and log1p(-0) is -0."""
    one = e.const(np.array(1, f))
    u = e.op("Add", [x, one])
    d = e.op("Sub", [u, one])
    q = e.op("Where", [e.op("Equal", [d, e.const(np.array(0, f))]), one, e.op("Div", [e.op("Log", [u]), d])])
    if not finite:
        q = e.op("Where", [e.op("Equal", [d, e.const(np.array(np.inf, f))]), one, q])
    return e.op("Mul", [x, q])


def _log1p_lower(e, ins, outs, c):
    t = c.out_types[0]
    y = log1p_of(e, widen(e, ins[0], t), wide_np(t))
    narrow_into(e, e.op("Identity", [y], outputs=wide_outputs(t, outs)), t, outs)


def expm1_of(e, x: str, f, outputs=None) -> str:
    """exp(x) - 1 where |x| >= 1/2 (no cancellation there), 2t / (1 - t) with t = tanh(x / 2) below (the
    same value, and tanh is accurate near 0); its size times x's sign, which a Where would lose at -0."""
    one, half = e.const(np.array(1, f)), e.const(np.array(0.5, f))
    th = e.op("Tanh", [e.op("Mul", [x, half])])
    small = e.op("Div", [e.op("Add", [th, th]), e.op("Sub", [one, th])])
    big = e.op("Sub", [e.op("Exp", [x]), one])
    y = e.op("Abs", [e.op("Where", [e.op("Less", [e.op("Abs", [x]), half]), small, big])])
    return e.op("Mul", [y, sign_bit(e, x, f)], outputs=outputs)  # x's sign: expm1(-0) is -0


def _expm1_lower(e, ins, outs, c):
    t = c.out_types[0]
    narrow_into(e, expm1_of(e, widen(e, ins[0], t), wide_np(t), wide_outputs(t, outs)), t, outs)


def _log_base_lower(base: float):
    def lower(e, ins, outs, c):
        """log(x) / log(base) in float64, so that float32 and narrower results are exact at the powers of the
        base (onnxruntime's float32 log made log2(8) 2.9999998); float64 inputs compute in float64 as they
        are (within an ulp or two)."""
        t = c.out_types[0]
        x = ins[0] if t.dtype is DType.float64 else e.op("Cast", ins, to=DType.float64.onnx)
        y = e.op("Div", [e.op("Log", [x]), e.const(np.array(math.log(base), np.float64))],
                 outputs=outs if t.dtype is DType.float64 else None)
        if t.dtype is not DType.float64:
            e.op("Cast", [y], outputs=outs, to=t.dtype.onnx)
    return lower


def _logaddexp_lower(e, ins, outs, c):
    """max(a, b) + log1p(exp(-|a - b|)); equal operands (both -inf or both inf too, where a - b is NaN) add
    log 2 to the max, as torch."""
    t: TensorType = c.out_types[0]
    f = wide_np(t)
    a, b = (widen(e, v, t) for v in ins)
    gap = e.op("Neg", [e.op("Abs", [e.op("Sub", [a, b])])])
    gap = e.op("Where", [e.op("Equal", [a, b]), e.const(np.array(0, f)), gap])
    y = e.op("Add", [e.op("Max", [a, b]), log1p_of(e, e.op("Exp", [gap]), f)], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _logaddexp_grad(b, c, ins, outs, gouts):
    """torch's: g / (1 + exp(b - a)) = g * sigmoid(a - b) for a, the same the other way for b."""
    x, y = ins
    g = gouts[0]
    return [b.sum_to(b.op("mul", g, b.op("sigmoid", b.op("sub", x, y))), c.in_types[0].shape) if b.needs(0) else None,
            b.sum_to(b.op("mul", g, b.op("sigmoid", b.op("sub", y, x))), c.in_types[1].shape) if b.needs(1) else None]


register(OpDef(
    name="log1p", inputs=("x",), category="math", infer=_float_infer("log1p"), elementwise=True, lower=_log1p_lower,
    cost=elementwise_cost, grad=lambda b, c, ins, outs, gouts: [
        b.op("div", gouts[0], b.op("add", ins[0], b.const(1.0, like=ins[0])))],
    doc="log(1 + x), elementwise, accurate for small x (torch.log1p): x where 1 + x rounds to 1. Written out in "
        "ONNX ops (Kahan's log(u) * x / (u - 1), u = 1 + x); float tensors.",
))
register(OpDef(
    name="expm1", inputs=("x",), category="math", infer=_float_infer("expm1"), elementwise=True, lower=_expm1_lower,
    cost=elementwise_cost, grad=lambda b, c, ins, outs, gouts: [
        b.op("mul", gouts[0], b.op("add", outs[0], b.const(1.0, like=outs[0])))],
    doc="exp(x) - 1, elementwise, accurate for small x (torch.expm1). Written out in ONNX ops (2 tanh(x/2) / "
        "(1 - tanh(x/2)) for |x| < 1/2); float tensors.",
))
for _name, _base in (("log2", 2.0), ("log10", 10.0)):
    register(OpDef(
        name=_name, inputs=("x",), category="math", infer=_float_infer(_name), elementwise=True,
        lower=_log_base_lower(_base), cost=elementwise_cost,
        grad=(lambda k: lambda b, c, ins, outs, gouts: [
            b.op("div", gouts[0], b.op("mul", ins[0], b.const(k, like=ins[0])))])(math.log(_base)),
        doc=f"The base-{_base:g} logarithm, elementwise (torch.{_name}); computed in float64 for narrower floats, "
            f"so that {_name}({_base:g}**k) is k as torch's; float tensors.",
    ))
_logaddexp_pair = float_pair_infer("logaddexp")


def _logaddexp_infer(ins, a):  # here, so that the op counts as this module's (the core-op coverage test)
    return _logaddexp_pair(ins, a)


register(OpDef(
    name="logaddexp", inputs=("a", "b"), category="math", infer=_logaddexp_infer, elementwise=True,
    lower=_logaddexp_lower, cost=elementwise_cost, grad=_logaddexp_grad,
    doc="log(exp(a) + exp(b)) with broadcasting, without overflow (torch.logaddexp): max(a, b) + "
        "log1p(exp(-|a - b|)); log-space sums (two of them; of many along a dim, logsumexp). Float tensors.",
))
