"""Small generic ops the sequence models need: `eq` (a padding mask from token ids: eq(ids, pad_id)) and
`take` (rows of an existing table by index, so two embeddings can share one weight)."""

from __future__ import annotations

from ..types import DType, TensorType
from ._common import elementwise_cost, shape_str
from .registry import Attr, OpDef, fail, register
from .shapes import broadcast, norm_axis


def _eq_infer(ins, a):
    x, y = ins
    if x.dtype != y.dtype:
        fail(f"eq: dtypes differ ({x.dtype} vs {y.dtype})")
    return [TensorType(DType.bool, broadcast(x.shape, y.shape, "eq operands"))]


register(OpDef(
    name="eq", inputs=("a", "b"), category="math", aliases=("equal",), infer=_eq_infer, cost=elementwise_cost,
    elementwise=True,
    lower=lambda e, ins, outs, c: e.op("Equal", ins, outputs=outs),
    doc="Elementwise a == b as a bool tensor, with broadcasting (torch.eq): eq(ids, pad_id) is a padding mask. "
        "On tensors `==` is not this op (it compares with none).",
))


def _take_infer(ins, a):
    x, idx = ins
    if idx.dtype not in (DType.int64, DType.int32):
        fail(f"take: indices must be int64 or int32, got {idx.dtype} {shape_str(idx)}")
    if x.rank < 1:
        fail("take: cannot index a scalar")
    ax = norm_axis(a["axis"], x.rank)
    return [x.with_shape(x.shape[:ax] + idx.shape + x.shape[ax + 1:])]


register(OpDef(
    name="take", inputs=("x", "index"), category="shape", attrs=(Attr("axis", "int", 0),), positions=("index",),
    infer=_take_infer, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.movement_grad", gouts[0], ins[0], ins[1], op="take",
                                              attrs=dict(c.attrs)), None],
    lower=lambda e, ins, outs, c: e.op("Gather", ins, outputs=outs, axis=c.attrs["axis"]),
    doc="Slices of x at integer indices along axis (numpy.take, ONNX Gather): take(ref(\"embed.weight\"), ids) "
        "looks ids up in an existing table.",
))
