"""Bitwise and, or, xor and not of integer (and bool) tensors, torch.bitwise_*: a hash grid's index
((x * 1) ^ (y * 2654435761) ^ (z * 805459861), Instant-NGP), bit masks. ONNX BitwiseAnd/Or/Xor/Not from opset 18;
on bool tensors they are the logical ops (And, Or, Xor, Not), at every opset. No gradient: integer results."""

from __future__ import annotations

from ..types import DType, TensorType
from ._common import elementwise_cost, shape_str
from .registry import OpDef, fail, register
from .shapes import broadcast

__all__: list[str] = []

_BOOL_OPS = {"bitwise_and": "And", "bitwise_or": "Or", "bitwise_xor": "Xor", "bitwise_not": "Not"}


def _operand(name: str, t: TensorType) -> None:
    if t.dtype.is_float:
        fail(f"{name}: takes integer or bool tensors (as torch), got {t.dtype}{shape_str(t)}; cast(x, \"int64\") "
             "first")


def _lower(name: str, onnx_op: str):
    def lower(e, ins, outs, c):
        if c.in_types[0].dtype is DType.bool:
            e.op(_BOOL_OPS[name], ins, outputs=outs)
            return
        if e.opset < 18:
            fail(f"{name}: ONNX {onnx_op} is in opset 18 and later; this build targets opset {e.opset} (--opset 18)")
        e.op(onnx_op, ins, outputs=outs)
    return lower


def _binary(name: str, onnx_op: str, what: str) -> None:
    def infer(ins, a):
        a_t, b_t = ins
        for t in ins:
            _operand(name, t)
        if a_t.dtype != b_t.dtype:
            fail(f"{name}: dtypes differ ({a_t.dtype} and {b_t.dtype}); cast one to the other")
        return [a_t.with_shape(broadcast(a_t.shape, b_t.shape, f"{name} operands"))]

    register(OpDef(name=name, inputs=("a", "b"), category="math", infer=infer, elementwise=True,
                   lower=_lower(name, onnx_op), cost=elementwise_cost,
                   doc=f"Elementwise bitwise {what} of integer or bool tensors of one dtype, with broadcasting "
                       f"(torch.{name}, torch's `{ {'and': '&', 'or': '|', 'xor': '^'}[what] }`, which is no "
                       "operator here); "
                       "a number beside a tensor takes its dtype. Integers need opset 18+ (ONNX "
                       f"{onnx_op}); bools are the logical op at any opset."))


_binary("bitwise_and", "BitwiseAnd", "and")
_binary("bitwise_or", "BitwiseOr", "or")
_binary("bitwise_xor", "BitwiseXor", "xor")


def _not_infer(ins, a):
    _operand("bitwise_not", ins[0])
    return [ins[0]]


register(OpDef(
    name="bitwise_not", inputs=("x",), category="math", infer=_not_infer, elementwise=True,
    lower=_lower("bitwise_not", "BitwiseNot"), cost=elementwise_cost,
    doc="Elementwise bitwise not of an integer or bool tensor (torch.bitwise_not, torch's `~x`, no operator "
        "here): -x - 1 of a signed "
        "integer, not of a bool. Integers need opset 18+ (ONNX BitwiseNot); a bool is logical not at any opset.",
))
