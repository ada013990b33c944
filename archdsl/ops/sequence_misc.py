"""`take`: rows of an existing table by index, so two embeddings can share one weight (a padding mask from
token ids, eq(ids, pad_id), is in compare.py)."""

from __future__ import annotations

from ..types import DType
from ._common import shape_str
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis


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
    indexes=(1, 0, "axis"),
    infer=_take_infer, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.movement_grad", gouts[0], ins[0], ins[1], op="take",
                                              attrs=dict(c.attrs)), None],
    lower=lambda e, ins, outs, c: e.op("Gather", ins, outputs=outs, axis=c.attrs["axis"]),
    doc="Slices of x at integer indices along axis (numpy.take, ONNX Gather): take(ref(\"embed.weight\"), ids) "
        "looks ids up in an existing table.",
))
