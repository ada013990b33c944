"""lgamma and digamma (torch.lgamma, torch.digamma): the log-likelihoods of a Student-t, a negative binomial, a
Beta or a Dirichlet (DeepAR's outputs, a Beta policy). ONNX has neither: written out as the asymptotic series at
x + 8, brought back by the recurrence over the eight terms below, and, below 1/2, by the reflection formula,
computed in float64 (in float32 the series' cancelling terms left 4e-6 where torch's float32 is within 6e-8;
onnxruntime's CPU has float64 Sin, Cos, Log and Pow, not Tan). The gradients: digamma for lgamma, trigamma (the
same scheme) for digamma."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, TensorType
from ._common import elementwise_cost, float_input
from .registry import OpDef, register

__all__: list[str] = []

_SHIFT = 8  # the series is taken at x + 8 (>= 8.5): its terms past the last kept are below float64's epsilon


class _Series:
    """ONNX ops over one float dtype's constants."""

    def __init__(self, e, f):
        self.e, self.f = e, f

    def c(self, v: float) -> str:
        return self.e.const(np.array(v, self.f))

    def __call__(self, op: str, *ins: str, **attrs) -> str:
        return self.e.op(op, list(ins), **attrs)

    def poly(self, z: str, coefs) -> str:
        """sum of coef * z**-k over (k, coef)."""
        w = self("Reciprocal", z)
        total = None
        for k, coef in coefs:
            term = self("Mul", self("Pow", w, self.c(float(k))), self.c(coef))
            total = term if total is None else self("Add", total, term)
        return total


def _pi_frac(s: _Series, x: str) -> str:
    """pi * (x - round(x)): sin and tan of pi x up to sign, from an argument in [-pi/2, pi/2] (x - round(x) is
    exact; pi * x rounded past the pole's neighbourhood: lgamma 1.6e-4 off at -7.00075)."""
    return s("Mul", s("Sub", x, s("Round", x)), s.c(math.pi))


def _reflected(s: _Series, x: str) -> tuple[str, str]:
    """(x < 1/2, the argument the series takes: 1 - x there, x elsewhere)."""
    below = s("Less", x, s.c(0.5))
    return below, s("Where", below, s("Sub", s.c(1.0), x), x)


def _lgamma(s: _Series, x: str) -> str:
    below, r = _reflected(s, x)
    z = s("Add", r, s.c(float(_SHIFT)))
    logs = s("Log", r)
    for k in range(1, _SHIFT):
        logs = s("Add", logs, s("Log", s("Add", r, s.c(float(k)))))  # log of the product, without its overflow
    stirling = s("Add", s("Sub", s("Mul", s("Sub", z, s.c(0.5)), s("Log", z)), z), s.c(0.5 * math.log(2 * math.pi)))
    series = s("Add", stirling, s.poly(z, [(1, 1 / 12), (3, -1 / 360), (5, 1 / 1260), (7, -1 / 1680), (9, 1 / 1188),
                                      (11, -691 / 360360), (13, 1 / 156), (15, -3617 / 122400)]))
    at_r = s("Sub", series, logs)
    # lgamma(x) = log(pi / |sin(pi x)|) - lgamma(1 - x), written -log|f| - log(sin(a) / a) for f = x - round(x)
    # and a = pi f: inf at 0 and the negative integers, as torch; pi over the sine overflowed to inf below
    # 1.75e-308, and pi x rounded among the subnormals (ops3 hunt)
    f = s("Sub", x, s("Round", x))
    a = s("Mul", f, s.c(math.pi))
    sinc = s("Where", s("Equal", a, s.c(0.0)), s.c(1.0), s("Div", s("Sin", a), a))
    out = s("Where", below, s("Sub", s("Neg", s("Add", s("Log", s("Abs", f)), s("Log", sinc))), at_r), at_r)
    # 0 at 1 and 2 exactly, as torch's: the series and the logs cancel to -1.8e-15 there
    out = s("Where", s("Or", s("Equal", x, s.c(1.0)), s("Equal", x, s.c(2.0))), s.c(0.0), out)
    return s("Where", s("IsInf", x), s.c(math.inf), out)  # both infinities: inf, as torch


def _poles(s: _Series, x: str, value: str) -> str:
    """value, NaN at the negative integers (torch's digamma there; trigamma's pole, digamma's gradient only where
    digamma is NaN), whose sin(pi x) rounds short of 0 and gave a huge finite number."""
    pole = s("And", s("Less", x, s.c(0.0)), s("Equal", x, s("Floor", x)))
    return s("Where", pole, s.c(math.nan), value)


def _digamma(s: _Series, x: str) -> str:
    below, r = _reflected(s, x)
    z = s("Add", r, s.c(float(_SHIFT)))
    recip = s("Reciprocal", r)
    for k in range(1, _SHIFT):
        recip = s("Add", recip, s("Reciprocal", s("Add", r, s.c(float(k)))))
    series = s("Sub", s("Log", z), s("Div", s.c(0.5), z))
    series = s("Add", series, s.poly(z, [(2, -1 / 12), (4, 1 / 120), (6, -1 / 252), (8, 1 / 240), (10, -1 / 132),
                                   (12, 691 / 32760), (14, -1 / 12)]))
    at_r = s("Sub", series, recip)
    # digamma(x) = digamma(1 - x) - pi / tan(pi x): -inf at 0 (torch's), NaN at the negative integers
    a = _pi_frac(s, x)  # tan's period is pi; no float64 Tan in onnxruntime: cos / sin
    cot = s("Div", s("Mul", s.c(math.pi), s("Cos", a)), s("Sin", a))
    out = s("Where", below, s("Sub", at_r, cot), at_r)
    zero = s("Equal", x, s.c(0.0))  # -inf at +0, +inf at -0: -1/x, as torch's copysign(inf, -x)
    return _poles(s, x, s("Where", zero, s("Neg", s("Reciprocal", x)), out))


def _trigamma(s: _Series, x: str) -> str:
    below, r = _reflected(s, x)
    z = s("Add", r, s.c(float(_SHIFT)))
    squares = None
    for k in range(_SHIFT):
        t = s("Reciprocal", s("Add", r, s.c(float(k))))
        sq = s("Mul", t, t)
        squares = sq if squares is None else s("Add", squares, sq)
    series = s("Add", s("Reciprocal", z), s.poly(z, [(2, 1 / 2), (3, 1 / 6), (5, -1 / 30), (7, 1 / 42), (9, -1 / 30),
                                                   (11, 5 / 66), (13, -691 / 2730), (15, 7 / 6)]))
    at_r = s("Add", series, squares)
    # trigamma(x) = pi^2 / sin^2(pi x) - trigamma(1 - x)
    sine = s("Sin", _pi_frac(s, x))  # squared: its sign does not matter
    out = s("Where", below, s("Sub", s("Div", s.c(math.pi ** 2), s("Mul", sine, sine)), at_r), at_r)
    return _poles(s, x, s("Where", s("Equal", x, s.c(0.0)), s.c(math.inf), out))


def _make(name: str, build, grad, doc: str, category: str = "math") -> None:
    def infer(ins, a):
        float_input(name, ins[0])
        return [ins[0]]

    def lower(e, ins, outs, c):
        t: TensorType = c.out_types[0]
        if t.dtype is DType.float64:
            e.op("Identity", [build(_Series(e, np.float64), ins[0])], outputs=outs)
            return
        y = build(_Series(e, np.float64), e.op("Cast", ins, to=DType.float64.onnx))
        e.op("Cast", [y], outputs=outs, to=t.dtype.onnx)

    register(OpDef(name=name, inputs=("x",), category=category, infer=infer, elementwise=True, lower=lower,
                   cost=lambda c: 40 * elementwise_cost(c), grad=grad, doc=doc))


_make("lgamma", _lgamma, lambda b, c, ins, outs, gouts: [b.op("mul", gouts[0], b.op("digamma", ins[0]))],
      "log |Gamma(x)|, elementwise (torch.lgamma): inf at 0 and the negative integers; float tensors, computed in "
      "float64. Written out in ONNX ops (Stirling's series at x + 8, the recurrence down, the reflection below "
      "1/2); within float32's rounding of torch (float64: within ~1.1e-14 of max(|lgamma(x)|, 1), measured against "
      "torch's over -30..1e5, so less in relative terms near its roots, 1, 2 and one between each pair of negative "
      "integers; 0 exactly at 1 and 2). Gradient digamma(x).")
_make("digamma", _digamma, lambda b, c, ins, outs, gouts: [b.op("mul", gouts[0], b.op("autodiff.trigamma", ins[0]))],
      "d/dx lgamma(x), elementwise (torch.digamma): -inf at 0, NaN at the negative integers, as torch; float "
      "tensors. Written out in ONNX ops as lgamma is. Gradient trigamma(x) (torch.polygamma(1, x)), NaN at the "
      "negative integers, where torch's is a huge finite number its sin(pi x) rounds to: a gradient of 0 arriving "
      "there stays 0 in torch and is NaN here (mask the input, not the output).")
_make("autodiff.trigamma", _trigamma, None, "trigamma(x), digamma's derivative (torch.polygamma(1, x)).",
      category="internal")
