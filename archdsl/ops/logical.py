"""Elementwise logic on tensors (torch.logical_and/or/xor/not): bool results, any input dtype, a nonzero
(NaN included) being true, as torch. `and`, `or` and `not` stay compile-time words (`if a and b`), so a mask
combination is spelled by name. A bool result is never differentiated, so no gradient rule."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType
from ._common import elementwise_cost
from .registry import OpDef, register
from .shapes import broadcast

__all__: list[str] = []


def _is_zero(e, x: str, t: TensorType, outputs=None) -> str:
    if t.dtype is DType.bfloat16:  # onnxruntime's CPU has no bfloat16 Equal: compared in float32 (exact)
        x, t = e.op("Cast", [x], to=DType.float32.onnx), TensorType(DType.float32, t.shape)
    return e.op("Equal", [x, e.const(np.array(0, dtype=t.dtype.numpy))], outputs=outputs)


def _truth(e, x: str, t: TensorType) -> str:
    """x as bool: x != 0. Not(Equal) rather than Cast, whose float-to-bool rule for NaN ONNX leaves open."""
    return x if t.dtype is DType.bool else e.op("Not", [_is_zero(e, x, t)])


def _binary(name: str, onnx_op: str, what: str):
    def infer(ins, a):
        return [TensorType(DType.bool, broadcast(ins[0].shape, ins[1].shape, f"{name} operands"))]

    def lower(e, ins, outs, c):
        e.op(onnx_op, [_truth(e, x, t) for x, t in zip(ins, c.in_types)], outputs=outs)

    register(OpDef(name=name, inputs=("a", "b"), category="math", infer=infer, elementwise=True, lower=lower,
                   cost=elementwise_cost,
                   doc=f"Elementwise {what} as a bool tensor, with broadcasting (torch.{name}); inputs of any dtype, "
                       "nonzero is true: combines masks (a padding mask with an edge mask)."))


_binary("logical_and", "And", "a and b")
_binary("logical_or", "Or", "a or b")
_binary("logical_xor", "Xor", "a xor b (true where exactly one is)")

register(OpDef(
    name="logical_not", inputs=("x",), category="math", elementwise=True, cost=elementwise_cost,
    infer=lambda ins, a: [TensorType(DType.bool, ins[0].shape)],
    lower=lambda e, ins, outs, c: (e.op("Not", ins, outputs=outs) if c.in_types[0].dtype is DType.bool
                                   else _is_zero(e, ins[0], c.in_types[0], outputs=outs)),
    doc="Elementwise not x as a bool tensor (torch.logical_not); any dtype, true where x is 0 (eq(x, 0)).",
))
