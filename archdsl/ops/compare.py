"""Elementwise comparisons as bool tensors (torch.eq/ne/lt/le/gt/ge), with broadcasting: lt, le, gt, ge are the
tensor forms of `<`, `<=`, `>`, `>=`; eq and ne are called by name (on tensors `==` and `!=` keep their
compile-time meaning, `if mask != none`). A bool result is never differentiated, so no gradient rule."""

from __future__ import annotations

from ..types import DType, TensorType
from ._common import cast_hint, elementwise_cost
from .registry import OpDef, fail, register
from .shapes import broadcast

__all__: list[str] = []


def _infer(name, sym, orders):
    what = f"{name} ('{sym}')" if orders else name  # lt(a, b) may be written a < b; eq and ne only by name

    def infer(ins, a):
        x, y = ins
        if x.dtype != y.dtype:
            fail(f"{what}: dtypes differ ({x.dtype} vs {y.dtype})" + cast_hint(x, y))
        if orders and x.dtype is DType.bool:  # ONNX Less/Greater take no bool
            fail(f"{what}: bool tensors have no order; cast(x, \"int64\") first")
        return [TensorType(DType.bool, broadcast(x.shape, y.shape, f"{what} operands"))]
    return infer


def _compare(name, alias, sym, onnx_op, negate=False, orders=True, doc=""):
    def lower(e, ins, outs, c):
        if negate:
            e.op("Not", [e.op(onnx_op, ins)], outputs=outs)
        else:
            e.op(onnx_op, ins, outputs=outs)

    register(OpDef(name=name, inputs=("a", "b"), category="math", aliases=(alias,), infer=_infer(name, sym, orders),
                   elementwise=True, lower=lower, cost=elementwise_cost,
                   doc=f"Elementwise a {sym} b as a bool tensor, with broadcasting (torch.{name})"
                       + (f"; also written a {sym} b." if orders else doc)))


_compare("eq", "equal", "==", "Equal", orders=False,
         doc=": eq(ids, pad_id) is a padding mask. On tensors `==` is not this op (it compares with none).")
_compare("ne", "not_equal", "!=", "Equal", negate=True, orders=False,
         doc="; on tensors `!=` is not this op (it compares with none).")
_compare("lt", "less", "<", "Less")
_compare("le", "less_equal", "<=", "LessOrEqual")
_compare("gt", "greater", ">", "Greater")
_compare("ge", "greater_equal", ">=", "GreaterOrEqual")
