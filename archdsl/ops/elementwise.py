"""Arithmetic with numpy broadcasting, matmul, and pointwise math."""

from __future__ import annotations

from ..types import numel
from ._common import elementwise_cost, float_input, shape_str
from .registry import OpDef, fail, register
from .shapes import broadcast

_BINARY = {"add": ("Add", "+"), "sub": ("Sub", "-"), "mul": ("Mul", "*"), "div": ("Div", "/"), "pow": ("Pow", "**")}


def _binary(name, onnx_op, sym):
    def infer(ins, a):
        x, y = ins
        if x.dtype != y.dtype and name != "pow":
            fail(f"'{sym}': dtypes differ ({x.dtype} vs {y.dtype})")
        return [x.with_shape(broadcast(x.shape, y.shape, f"'{sym}' operands"))]

    register(OpDef(
        name=name, inputs=("a", "b"), category="math", infer=infer,
        lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs),
        cost=elementwise_cost, doc=f"a {sym} b with broadcasting",
    ))


for _n, (_op, _s) in _BINARY.items():
    _binary(_n, _op, _s)


def _matmul_infer(ins, a):
    x, y = ins
    if x.dtype != y.dtype:
        fail(f"'@': dtypes differ ({x.dtype} vs {y.dtype})")
    if x.rank < 1 or y.rank < 1:
        fail("'@': operands must have at least one dim")
    xs, ys = x.shape, y.shape
    k1 = xs[-1]
    k2 = ys[-2] if y.rank >= 2 else ys[0]
    if k1 != k2:
        fail(f"'@': inner dims differ ({k1} vs {k2}) for {shape_str(x)} @ {shape_str(y)}")
    if x.rank >= 2 and y.rank >= 2:
        out = broadcast(xs[:-2], ys[:-2], "'@' batch dims") + (xs[-2], ys[-1])
    elif y.rank >= 2:
        out = ys[:-2] + (ys[-1],)
    else:
        out = xs[:-1]
    return [x.with_shape(out)]


def _matmul_cost(c):
    x = c.in_types[0]
    k = x.shape[-1] if isinstance(x.shape[-1], int) else 1
    return 2 * numel(c.out_types[0].shape) * k


register(OpDef(
    name="matmul", inputs=("a", "b"), category="math", infer=_matmul_infer,
    lower=lambda e, ins, outs, c: e.op("MatMul", ins, outputs=outs), cost=_matmul_cost,
    doc="Matrix product with batch broadcasting (a @ b)",
))

_UNARY = {"neg": ("Neg", "-x"), "exp": ("Exp", "e^x"), "log": ("Log", "natural log"), "sqrt": ("Sqrt", "square root"),
          "abs": ("Abs", "|x|"), "erf": ("Erf", "error function"), "reciprocal": ("Reciprocal", "1 / x")}


def _unary(name, onnx_op, doc):
    def infer(ins, a):
        if name != "neg" and name != "abs":
            float_input(name, ins[0])
        return [ins[0]]

    register(OpDef(name=name, inputs=("x",), category="math", infer=infer,
                   lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs), cost=elementwise_cost, doc=doc))


for _n, (_op, _d) in _UNARY.items():
    _unary(_n, _op, _d)
