"""Trigonometric and hyperbolic functions beyond sin/cos, and atan2, with torch's semantics.

ONNX has each unary one as an op of its own; atan2 it lacks, so it is written out in ONNX ops (with IEEE's
signed zeros and infinities, as torch's std::atan2)."""

from __future__ import annotations

import math

import numpy as np

from ._common import (
    bfloat16_from,
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


def _one(b, x):
    return b.const(1.0, like=x)


def _square(b, x):
    return b.op("mul", x, x)


# name: (ONNX op, doc, d/dx as a function of (builder, x, y), the gradient torch gives)
_UNARY = {
    "tan": ("Tan", "tangent (radians)", lambda b, x, y: b.op("add", _one(b, y), _square(b, y))),
    "asin": ("Asin", "inverse sine, in [-pi/2, pi/2]; NaN outside [-1, 1]",
             lambda b, x, y: b.op("rsqrt", b.op("sub", _one(b, x), _square(b, x)))),
    "acos": ("Acos", "inverse cosine, in [0, pi]; NaN outside [-1, 1]",
             lambda b, x, y: b.op("neg", b.op("rsqrt", b.op("sub", _one(b, x), _square(b, x))))),
    "atan": ("Atan", "inverse tangent, in (-pi/2, pi/2); for a quadrant, atan2",
             lambda b, x, y: b.op("reciprocal", b.op("add", _one(b, x), _square(b, x)))),
    "sinh": ("Sinh", "hyperbolic sine", lambda b, x, y: b.op("cosh", x)),
    "cosh": ("Cosh", "hyperbolic cosine", lambda b, x, y: b.op("sinh", x)),
    "asinh": ("Asinh", "inverse hyperbolic sine",
              lambda b, x, y: b.op("rsqrt", b.op("add", _square(b, x), _one(b, x)))),
    "acosh": ("Acosh", "inverse hyperbolic cosine; NaN below 1",
              lambda b, x, y: b.op("rsqrt", b.op("mul", b.op("sub", x, _one(b, x)), b.op("add", x, _one(b, x))))),
    "atanh": ("Atanh", "inverse hyperbolic tangent; +-inf at +-1, NaN outside [-1, 1]",
              lambda b, x, y: b.op("reciprocal", b.op("sub", _one(b, x), _square(b, x)))),
}


def _unary(name: str, onnx_op: str, doc: str, slope) -> None:
    def infer(ins, a):
        float_input(name, ins[0])
        return [ins[0]]

    def lower(e, ins, outs, c):
        bfloat16_from(e, c.in_types[0], name, f"ONNX {onnx_op} takes")
        e.op(onnx_op, ins, outputs=outs)

    register(OpDef(name=name, inputs=("x",), category="math", infer=infer, elementwise=True, lower=lower,
                   cost=elementwise_cost,
                   grad=lambda b, c, ins, outs, gouts: [b.op("mul", gouts[0], slope(b, ins[0], outs[0]))],
                   doc=f"The {doc}, elementwise (torch.{name}, ONNX {onnx_op}); float tensors."))


for _name, (_op, _doc, _slope) in _UNARY.items():
    _unary(_name, _op, _doc, _slope)


# ---------------- atan2 ----------------

def _atan2_lower(e, ins, outs, c):
    """The angle in the first octant, atan(min(|x|, |y|) / max(|x|, |y|)) (a ratio in [0, 1], where atan is
    accurate), moved to its quadrant: pi/2 - a where |y| > |x|, pi - a where x's sign bit is set, then y's
    sign. 0/0 is angle 0 (so atan2(+-0, -0) is +-pi, as IEEE), inf/inf pi/4; a NaN operand gives NaN."""
    t = c.out_types[0]
    y, x = (widen(e, v, t) for v in ins)
    f = wide_np(t)
    zero, one = e.const(np.array(0, f)), e.const(np.array(1, f))
    ax, ay = e.op("Abs", [x]), e.op("Abs", [y])
    hi, lo = e.op("Max", [ax, ay]), e.op("Min", [ax, ay])
    ratio = e.op("Where", [e.op("Equal", [hi, zero]), zero, e.op("Div", [lo, hi])])
    ratio = e.op("Where", [e.op("IsInf", [lo]), one, ratio])
    a = e.op("Atan", [ratio])
    a = e.op("Where", [e.op("Greater", [ay, ax]), e.op("Sub", [e.const(np.array(math.pi / 2, f)), a]), a])
    x_sign = sign_bit(e, x, f)
    a = e.op("Where", [e.op("Less", [x_sign, zero]), e.op("Sub", [e.const(np.array(math.pi, f)), a]), a])
    a = e.op("Mul", [a, sign_bit(e, y, f)])  # y's sign, by a product: it keeps atan2(-0, x) = -0
    nan = e.op("Or", [e.op("IsNaN", [x]), e.op("IsNaN", [y])])
    narrow_into(e, e.op("Where", [nan, e.op("Add", [x, y]), a], outputs=wide_outputs(t, outs)), t, outs)


def _atan2_grad(b, c, ins, outs, gouts):
    """torch's: d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2), and 0 at the origin (where those are 0/0: a
    zero-initialized head's angle must not make every gradient NaN)."""
    y, x = ins
    r2 = b.op("add", _square(b, x), _square(b, y))
    g = b.op("where", b.op("eq", r2, b.const(0.0, like=r2)), b.const(0.0, like=r2), b.op("div", gouts[0], r2))
    return [b.sum_to(b.op("mul", g, x), c.in_types[0].shape) if b.needs(0) else None,
            b.sum_to(b.op("neg", b.op("mul", g, y)), c.in_types[1].shape) if b.needs(1) else None]


_atan2_pair = float_pair_infer("atan2")


def _atan2_infer(ins, a):  # here, so that the op counts as this module's (the core-op coverage test)
    return _atan2_pair(ins, a)


register(OpDef(
    name="atan2", inputs=("y", "x"), category="math", infer=_atan2_infer, elementwise=True,
    lower=_atan2_lower, cost=elementwise_cost, grad=_atan2_grad, aliases=("arctan2",),
    doc="The angle of the point (x, y) from the positive x axis, in [-pi, pi], elementwise with broadcasting "
        "(torch.atan2(y, x), y first): the quadrant from both signs, +-pi/2 where x is 0, signed zeros and "
        "infinities as IEEE's atan2. Written out in ONNX ops (ONNX has no atan2); float tensors.",
))
