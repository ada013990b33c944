"""gemm: ONNX Gemm on 2-D operands, y = a @ b + c (c broadcast to [M, N]); made by the fuse_gemm pass from
a matmul followed by an add, and usable in a spec. Same result as the two ops, one node."""

from __future__ import annotations

from ..types import numel
from ._common import cast_hint, float_input, shape_str
from .registry import OpDef, fail, register
from .shapes import broadcast

__all__: list[str] = []


def _infer(ins, a):
    x, w = ins[0], ins[1]
    for what, t in (("a", x), ("b", w)):
        float_input("gemm", t, what)
        if t.rank != 2:
            fail(f"gemm: {what} must be 2-D, got {shape_str(t)}")
    if x.shape[1] != w.shape[0]:
        fail(f"gemm: inner dims differ ({x.shape[1]} vs {w.shape[0]}) for {shape_str(x)} @ {shape_str(w)}")
    if x.dtype != w.dtype:
        fail(f"gemm: dtypes differ ({x.dtype} vs {w.dtype})" + cast_hint(x, w))
    out = (x.shape[0], w.shape[1])
    if len(ins) > 2:
        c = ins[2]
        if c.dtype != x.dtype or c.rank > 2 or broadcast(out, c.shape, "gemm bias") != out:
            fail(f"gemm: bias {shape_str(c)} does not broadcast to {list(out)}")
    return [x.with_shape(out)]


def _grad(b, c, ins, outs, gouts):
    """ga = g b^T, gb = a^T g, gc = g summed to c's shape."""
    g = gouts[0]
    res = [b.op("matmul", g, b.op("transpose", ins[1])) if b.needs(0) else None,
           b.op("matmul", b.op("transpose", ins[0]), g) if b.needs(1) else None]
    if len(ins) > 2:
        res.append(b.sum_to(g, c.in_types[2].shape) if b.needs(2) else None)
    return res


register(OpDef(
    name="gemm", inputs=("a", "b", "c?"), category="math", infer=_infer, grad=_grad,
    lower=lambda e, ins, outs, c: e.op("Gemm", ins, outputs=outs),
    cost=lambda c: (2 * (k if isinstance(k := c.in_types[0].shape[1], int) else 1) + (len(c.in_types) > 2))
    * numel(c.out_types[0].shape),
    doc="a @ b + c on 2-D operands in one ONNX Gemm (c broadcast to the result); fuse_gemm makes it from @ and +.",
))
