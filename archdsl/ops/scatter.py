"""Scatter-adds, torch semantics (out of place): scatter_add (torch.Tensor.scatter_add) and index_add
(torch.index_add), both ONNX ScatterElements with reduction="add" (opset 16+, so every opset archdsl targets).

onnxruntime's CPU kernel adds float32, float64, int32 and int64, repeated indices summed exactly; it has no
16-bit add, so float16/bfloat16 are summed in float32 and cast back. The gradients: g itself to x, g read
back at the indices to src/source (gather, take), none to the index."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import i64 as _i64
from ._common import narrow, narrow_into, shape_str, wide_np, wide_outputs, widen
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis, same_dim, torch_dim

__all__: list[str] = []


def _operands(name: str, x: TensorType, index: TensorType, src: TensorType, what: str) -> None:
    if index.dtype not in (DType.int64, DType.int32):
        fail(f"{name}: index must be int64 or int32, got {index.dtype} {shape_str(index)}")
    if x.dtype is DType.bool:
        fail(f"{name}: no sums of bool tensors here; cast(x, \"int64\") first")
    if src.dtype != x.dtype:
        fail(f"{name}: {what} must have x's dtype {x.dtype}, got {src.dtype} (as torch); cast it first")


def _scatter_nodes(e, x: str, idx: str, upd: str, t: TensorType, ax: int, outs) -> None:
    """ScatterElements(x, idx, upd, add) into outs; 16-bit floats summed in float32 (onnxruntime's CPU kernel
    has no 16-bit add)."""
    y = e.op("ScatterElements", [widen(e, x, t), idx, widen(e, upd, t)], axis=ax, reduction="add",
             outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


# ---------------- scatter_add ----------------

def _scatter_add_infer(ins, a):
    x, index, src = ins
    _operands("scatter_add", x, index, src, "src")
    if not index.rank == x.rank == src.rank:
        fail(f"scatter_add: x, index and src must have one rank, got x {shape_str(x)}, index {shape_str(index)}, "
             f"src {shape_str(src)} (torch.scatter_add)")
    ax = torch_dim("scatter_add", x, a["dim"])
    for i, (n, m, s) in enumerate(zip(x.shape, index.shape, src.shape)):
        if isinstance(m, int) and isinstance(s, int) and m > s:
            fail(f"scatter_add: index {shape_str(index)} is larger than src {shape_str(src)} at dim {i} ({m} > {s}); "
                 f"it may be at most as large (torch.scatter_add)")
        if i != ax and isinstance(n, int) and isinstance(m, int) and m > n:
            fail(f"scatter_add: index {shape_str(index)} is larger than x {shape_str(x)} at dim {i} ({m} > {n}); "
                 f"outside dim {a['dim']} it may be at most as large (torch.scatter_add)")
    return [x]


def _scatter_add_lower(e, ins, outs, c):
    """src cut to index's shape first (torch reads only that corner of it; ScatterElements wants equal shapes);
    a 0-d x is scattered as a tensor of one element."""
    x, idx, src = ins
    x_t, i_t, s_t = c.in_types
    if tuple(s_t.shape) != tuple(i_t.shape):
        ends = _i64(e, list(i_t.shape)) if all(isinstance(d, int) for d in i_t.shape) else e.op("Shape", [idx])
        src = e.op("Slice", [src, _i64(e, [0] * s_t.rank), ends, _i64(e, list(range(s_t.rank)))])
    if x_t.rank == 0:
        one = _i64(e, [0])
        x, idx, src = (e.op("Unsqueeze", [v, one]) for v in (x, idx, src))
        y = f"{outs[0]}/one"
        _scatter_nodes(e, x, idx, src, x_t, 0, [y])
        e.op("Squeeze", [y, one], outputs=outs)
        return
    _scatter_nodes(e, x, idx, src, x_t, torch_dim("scatter_add", x_t, c.attrs["dim"]), outs)


def _scatter_add_grad(b, c, ins, outs, gouts):
    """x: g. src: g at the positions each element was added to (gather), zeros where src reaches past index
    (torch's autograd refuses that case: its gather has index's shape, not src's)."""
    g = gouts[0]
    if g is None:
        return [None, None, None]
    _, i_t, s_t = c.in_types
    gsrc = None
    if b.needs(2):
        gsrc = b.op("gather", g, ins[1], dim=c.attrs["dim"])
        if tuple(s_t.shape) != tuple(i_t.shape):
            extra = []
            for s, m in zip(s_t.shape, i_t.shape):
                if same_dim(s, m):
                    extra.append(0)
                elif isinstance(s, int) and isinstance(m, int):
                    extra.append(s - m)
                else:
                    fail(f"scatter_add: the gradient to src {shape_str(s_t)} needs its size beyond index "
                         f"{shape_str(i_t)} known ({s} vs {m})")
            pads = [p for n in reversed(extra) for p in (0, n)]
            gsrc = b.op("pad", gsrc, pad=pads)
    return [g if b.needs(0) else None, None, gsrc]


register(OpDef(
    name="scatter_add", inputs=("x", "index", "src"), category="shape", attrs=(Attr("dim", "int"),),
    call_order=("x", "dim", "index", "src"), positions=("index",), indexes=(1, 0, "dim"),
    infer=_scatter_add_infer, lower=_scatter_add_lower, grad=_scatter_add_grad,
    cost=lambda c: numel(c.in_types[1].shape),
    doc="x with src added at the indices: out[i][index[i][j]] += src[i][j] for dim=1 (torch.Tensor.scatter_add, "
        "out of place; ONNX ScatterElements, reduction add). index, src and x share a rank; index may be smaller "
        "than src (its corner is read) and, outside dim, than x. Repeated indices add up. A negative index counts "
        "from the end (ScatterElements) where torch raises. Gradients: g to x, g gathered at the indices to src "
        "(zeros past index's corner, a case torch's autograd refuses).",
))


# ---------------- index_add ----------------

def _index_add_infer(ins, a):
    x, index, source = ins
    _operands("index_add", x, index, source, "source")
    if index.rank != 1:
        fail(f"index_add: index must be 1-d (a list of positions along dim), got {shape_str(index)}")
    if x.rank == 0:
        fail("index_add: needs a tensor of at least 1 dim, got a 0-d tensor")
    ax = norm_axis(a["dim"], x.rank, "index_add: dim")
    want = x.shape[:ax] + index.shape + x.shape[ax + 1:]
    if source.rank != x.rank or not all(same_dim(s, w) for s, w in zip(source.shape, want)):
        fail(f"index_add: source must be {shape_str(x.with_shape(want))} (x {shape_str(x)} with dim {a['dim']} "
             f"as long as index), got {shape_str(source)}")
    alpha = a["alpha"]
    if not x.dtype.is_float and alpha != int(alpha):
        fail(f"index_add: alpha={alpha} is not a whole number and x is {x.dtype}")
    return [x]


def _index_add_lower(e, ins, outs, c):
    """index viewed [1, .., L, .., 1] and expanded over source's shape, source times alpha: ScatterElements."""
    x, idx, source = ins
    x_t, i_t, s_t = c.in_types
    ax = norm_axis(c.attrs["dim"], x_t.rank)
    view = [1] * x_t.rank
    view[ax] = -1
    idx = e.op("Reshape", [idx, _i64(e, view)])
    if x_t.rank > 1:
        to = _i64(e, list(s_t.shape)) if all(isinstance(d, int) for d in s_t.shape) else e.op("Shape", [source])
        idx = e.op("Expand", [idx, to])
    alpha = c.attrs["alpha"]
    if alpha != 1:  # 16-bit: times alpha in float32, rounded back before the sum
        scale = e.const(np.array(alpha if x_t.dtype.is_float else int(alpha), dtype=wide_np(x_t)))
        scaled = e.op("Mul", [widen(e, source, x_t), scale])
        source = narrow(e, scaled, x_t)
    _scatter_nodes(e, x, idx, source, x_t, ax, outs)


def _index_add_grad(b, c, ins, outs, gouts):
    g = gouts[0]
    if g is None:
        return [None, None, None]
    gsrc = None
    if b.needs(2):
        ax = norm_axis(c.attrs["dim"], c.in_types[0].rank)
        gsrc = b.op("take", g, ins[1], axis=ax)
        if c.attrs["alpha"] != 1:
            gsrc = b.op("mul", gsrc, b.scalar(c.attrs["alpha"], like=g))
    return [g if b.needs(0) else None, None, gsrc]


register(OpDef(
    name="index_add", inputs=("x", "index", "source"), category="shape",
    attrs=(Attr("dim", "int"), Attr("alpha", "float", 1.0)),
    call_order=("x", "dim", "index", "source"), positions=("index",), indexes=(1, 0, "dim"),
    infer=_index_add_infer, lower=_index_add_lower, grad=_index_add_grad,
    cost=lambda c: numel(c.in_types[2].shape),
    doc="x with alpha * source added at the positions index names along dim: out[:, index[j]] += alpha * "
        "source[:, j] for dim=1 (torch.index_add, out of place; ONNX ScatterElements, reduction add). index is "
        "1-d, int64 or int32; source is x with dim as long as index. Repeated indices add up; a negative index "
        "counts from the end where torch raises. Gradients: g to x, alpha * g at the indices (take) to source.",
))
