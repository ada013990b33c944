"""repeat_interleave with an integer count (torch.repeat_interleave(x, repeats: int, dim)): each element
repeated in place, [a, b] -> [a, a, b, b]; tile (indexing.py) repeats the whole tensor instead."""

from __future__ import annotations

from ..types import TensorType, dim_mul
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis, prod

__all__: list[str] = []


def _axis(x: TensorType, dim) -> int | None:
    """None: x is flattened first (torch's dim=None)."""
    if dim is None:
        return None
    if x.rank == 0:
        fail(f"repeat_interleave: a 0-d tensor has no dim {dim} (torch refuses it too); leave dim out")
    return norm_axis(dim, x.rank, "repeat_interleave: dim")


def _infer(ins, a):
    x, r = ins[0], a["repeats"]
    ax = _axis(x, a["dim"])
    if ax is None:
        return [x.with_shape((dim_mul(prod(x.shape), r),))]
    return [x.with_shape(x.shape[:ax] + (dim_mul(x.shape[ax], r),) + x.shape[ax + 1:])]


def _lower(e, ins, outs, c):
    """Unsqueeze after the dim, Expand it to `repeats` (a broadcast: only that dim is named), Reshape the two
    into one. The new shape is a constant when known, else read from x at run time (allowzero: a dim of 0
    stays 0 rather than copying)."""
    x, t, r = ins[0], c.in_types[0], c.attrs["repeats"]
    ax = _axis(t, c.attrs["dim"])
    out_shape = c.out_types[0].shape
    if ax is None:
        x = e.op("Reshape", [x, _i64(e, [-1])])
        t, ax = t.with_shape((prod(t.shape),)), 0
    if r == 0:  # Expand would stretch the new dim to 1 (onnxruntime takes the larger): no elements, sliced
        e.op("Slice", [x, _i64(e, [0]), _i64(e, [0]), _i64(e, [ax])], outputs=outs)
        return
    u = e.op("Unsqueeze", [x, _i64(e, [ax + 1])])
    stretched = e.op("Expand", [u, _i64(e, [1] * (ax + 1) + [r] + [1] * (t.rank - ax - 1))])
    if all(isinstance(d, int) for d in out_shape):
        shape = _i64(e, list(out_shape))
    else:
        parts = []
        for i, d in enumerate(t.shape):
            if isinstance(dim_mul(d, r if i == ax else 1), int):
                parts.append(_i64(e, [dim_mul(d, r if i == ax else 1)]))
            else:
                size = e.op("Shape", [x], start=i, end=i + 1)
                parts.append(e.op("Mul", [size, _i64(e, [r])]) if i == ax else size)
        shape = e.op("Concat", parts, axis=0)
    e.op("Reshape", [stretched, shape], outputs=outs, allowzero=1)


def _grad(b, c, ins, outs, gouts):
    """g viewed with the copies of each element side by side ([.., n, r, ..]) and summed over them."""
    x, g, r = ins[0], gouts[0], c.attrs["repeats"]
    t = c.in_types[0]
    if g is None:
        return [None]
    if r == 0 or 0 in t.shape:
        return [b.zeros_like(x)]
    ax = _axis(t, c.attrs["dim"])
    if ax is None:
        return [b.reshape_like(b.op("sum", b.op("reshape", g, shape=(-1, r)), dim=(1,)), x)]
    view = t.shape[:ax + 1] + (r,) + t.shape[ax + 1:]
    return [b.op("sum", b.op("reshape", g, shape=view), dim=(ax + 1,))]


register(OpDef(
    name="repeat_interleave", inputs=("x",), category="shape",
    attrs=(Attr("repeats", "int"), Attr("dim", "int?", None)),
    infer=_infer, lower=_lower, grad=_grad, cost=lambda c: 0,
    doc="Each element repeated `repeats` times in place along dim, [a, b] -> [a, a, b, b] "
        "(torch.repeat_interleave with an integer count; dim=none flattens x first, as torch). ONNX Unsqueeze, "
        "Expand, Reshape: any dim may be symbolic. The gradient sums g over each element's copies. A tensor of "
        "counts (one per element) is not supported.",
))
