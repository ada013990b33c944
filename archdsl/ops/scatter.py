"""Scatters, torch semantics (out of place): scatter_add (torch.Tensor.scatter_add), index_add (torch.index_add),
scatter (writes) and scatter_reduce (sum, prod, mean, amax, amin): ONNX ScatterElements with a reduction (add,
none and mul at every opset archdsl targets; max and min from 18).

onnxruntime's CPU kernel reduces float32, float64, int32 and int64, repeated indices exactly; it has no 16-bit
add, so float16/bfloat16 are computed in float32 and cast back. The gradients: to x where it stays in the
result, read back at the indices (gather, take) to src/source, none to the index."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import i64 as _i64
from ._common import narrow, narrow_into, shape_str, wide_np, wide_outputs, widen
from .registry import Attr, OpCall, OpDef, fail, register
from .shapes import norm_axis, same_dim, torch_dim

__all__: list[str] = []


def _operands(name: str, x: TensorType, index: TensorType, src: TensorType, what: str) -> None:
    if index.dtype not in (DType.int64, DType.int32):
        fail(f"{name}: index must be int64 or int32, got {index.dtype} {shape_str(index)}")
    if x.dtype is DType.bool and name != "scatter":  # a write takes bools; onnxruntime reduces none
        fail(f"{name}: no reduction of bool tensors here; cast(x, \"int64\") first")
    if src.dtype != x.dtype:
        fail(f"{name}: {what} must have x's dtype {x.dtype}, got {src.dtype} (as torch); cast it first")


def _scatter_nodes(e, x: str, idx: str, upd: str, t: TensorType, ax: int, outs, reduction: str = "add") -> str:
    """ScatterElements(x, idx, upd, reduction) into outs (a fresh value where outs is None); 16-bit floats in
    float32 (onnxruntime's CPU kernel has no 16-bit add)."""
    y = e.op("ScatterElements", [widen(e, x, t), idx, widen(e, upd, t)], axis=ax, reduction=reduction,
             outputs=wide_outputs(t, outs) if outs is not None else None)
    if outs is None:
        return narrow(e, y, t)
    narrow_into(e, y, t, outs)
    return outs[0]


def _as_index(e, src: str, s_t: TensorType, i_t: TensorType, idx: str) -> str:
    """src in index's shape: its corner (torch reads only that), or a number spread over it (scatter's value)."""
    if s_t.rank == 0:
        return e.op("Expand", [src, e.op("Shape", [idx])])
    if tuple(s_t.shape) != tuple(i_t.shape):
        ends = _i64(e, list(i_t.shape)) if all(isinstance(d, int) for d in i_t.shape) else e.op("Shape", [idx])
        return e.op("Slice", [src, _i64(e, [0] * s_t.rank), ends, _i64(e, list(range(s_t.rank)))])
    return src


def _lifted(lower):
    """A 0-d x (and its index and src) scattered as tensors of one element, as scatter_add does: ScatterElements
    takes rank 1 and up (review68: it failed in onnxruntime where torch gives the scalar)."""
    def wrapped(e, ins, outs, c):
        if c.in_types[0].rank:
            lower(e, ins, outs, c)
            return
        one = _i64(e, [0])
        flat = [e.op("Unsqueeze", [v, one]) if t.rank == 0 else v for v, t in zip(ins, c.in_types)]
        types = tuple(t.with_shape((1,)) if t.rank == 0 else t for t in c.in_types)
        y = f"{outs[0]}/one"
        lower(e, flat, [y], OpCall(types, (c.out_types[0].with_shape((1,)),), c.attrs))
        e.op("Squeeze", [y, one], outputs=outs)
    return wrapped


# ---------------- scatter_add ----------------

def _checked(name: str, ins, a, value: bool = False):
    """scatter_add's, scatter's and scatter_reduce's operands as torch takes them (src a number for scatter)."""
    x, index, src = ins
    _operands(name, x, index, src, "src")
    if value and src.rank == 0:  # torch.scatter(x, dim, index, value): every position index names gets it
        src = src.with_shape(index.shape)
    if not index.rank == x.rank == src.rank:
        fail(f"{name}: x, index and src must have one rank, got x {shape_str(x)}, index {shape_str(index)}, "
             f"src {shape_str(src)} (torch.{name})")
    ax = torch_dim(name, x, a["dim"])
    for i, (n, m, s) in enumerate(zip(x.shape, index.shape, src.shape)):
        if isinstance(m, int) and isinstance(s, int) and m > s:
            fail(f"{name}: index {shape_str(index)} is larger than src {shape_str(src)} at dim {i} ({m} > {s}); "
                 f"it may be at most as large (torch.{name})")
        if i != ax and isinstance(n, int) and isinstance(m, int) and m > n:
            fail(f"{name}: index {shape_str(index)} is larger than x {shape_str(x)} at dim {i} ({m} > {n}); "
                 f"outside dim {a['dim']} it may be at most as large (torch.{name})")
    return [x]


def _scatter_add_infer(ins, a):
    return _checked("scatter_add", ins, a)


def _scatter_add_lower(e, ins, outs, c):
    """src cut to index's shape first (torch reads only that corner of it; ScatterElements wants equal shapes)."""
    x, idx, src = ins
    x_t, i_t, s_t = c.in_types
    _scatter_nodes(e, x, idx, _as_index(e, src, s_t, i_t, idx), x_t, torch_dim("scatter_add", x_t, c.attrs["dim"]),
                   outs)


def _scatter_add_grad(b, c, ins, outs, gouts):
    """x: g. src: g at the positions each element was added to (gather), zeros where src reaches past index
    (torch's autograd refuses that case: its gather has index's shape, not src's)."""
    g = gouts[0]
    if g is None:
        return [None, None, None]
    _, i_t, s_t = c.in_types
    gsrc = _src_grad(b, b.op("gather", g, ins[1], dim=c.attrs["dim"]), i_t, s_t, "scatter_add") if b.needs(2) \
        else None
    return [g if b.needs(0) else None, None, gsrc]


register(OpDef(
    name="scatter_add", inputs=("x", "index", "src"), category="shape", attrs=(Attr("dim", "int"),),
    call_order=("x", "dim", "index", "src"), positions=("index",), indexes=(1, 0, "dim"),
    infer=_scatter_add_infer, lower=_lifted(_scatter_add_lower), grad=_scatter_add_grad,
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


# ---------------- scatter, scatter_reduce ----------------

_ONNX_REDUCTION = {"sum": "add", "mean": "add", "prod": "mul", "amax": "max", "amin": "min"}


def _filled(e, like: str, value, t: TensorType) -> str:
    """A tensor of `like`'s shape holding value, in t's (wide) dtype."""
    return e.op("Expand", [e.const(np.array(value, dtype=wide_np(t))), e.op("Shape", [like])])


def _identity(red: str, t: TensorType):
    """The reduction's starting value: what a position holds before its first src where include_self=false."""
    if red in ("sum", "mean"):
        return 0
    if red == "prod":
        return 1
    if t.dtype.is_float:
        return -np.inf if red == "amax" else np.inf
    low, high = t.dtype.limits()
    return low if red == "amax" else high


def _scatter_infer(ins, a):
    return _checked("scatter", ins, a, value=True)


def _scatter_lower(e, ins, outs, c):
    x, idx, src = ins
    x_t, i_t, s_t = c.in_types
    _scatter_nodes(e, x, idx, _as_index(e, src, s_t, i_t, idx), x_t, torch_dim("scatter", x_t, c.attrs["dim"]), outs,
                   "none")


def _src_grad(b, gsrc, i_t: TensorType, s_t: TensorType, name: str):
    """A gradient read at the indices (index's shape) as src's: zeros past index's corner, summed for a number."""
    if s_t.rank == 0:
        return b.op("sum", gsrc)
    if tuple(s_t.shape) == tuple(i_t.shape):
        return gsrc
    extra = [0 if same_dim(s, m) else s - m if isinstance(s, int) and isinstance(m, int) else None
             for s, m in zip(s_t.shape, i_t.shape)]
    if None in extra:
        fail(f"{name}: the gradient to src {shape_str(s_t)} needs its size beyond index {shape_str(i_t)} known")
    return b.op("pad", gsrc, pad=[p for n in reversed(extra) for p in (0, n)])


def _named(b, x, index, d: int):
    """1 where index names a position of x along dim d, else 0 (x's float dtype)."""
    return b.op("scatter", b.op("zeros_like", x), index, b.scalar(1.0, like=x), dim=d)


def _scatter_grad(b, c, ins, outs, gouts):
    """x: g where no src overwrote it; src: g at the positions it was written to (each of repeated ones, as
    torch's gather)."""
    g = gouts[0]
    x, index, src = ins
    d = c.attrs["dim"]
    if g is None:
        return [None, None, None]
    gx = b.op("mul", g, b.op("sub", b.scalar(1.0, like=g), _named(b, x, index, d))) if b.needs(0) else None
    gs = _src_grad(b, b.op("gather", g, index, dim=d), c.in_types[1], c.in_types[2], "scatter") if b.needs(2) \
        else None
    return [gx, None, gs]


register(OpDef(
    name="scatter", inputs=("x", "index", "src"), category="shape", attrs=(Attr("dim", "int"),),
    call_order=("x", "dim", "index", "src"), positions=("index",), indexes=(1, 0, "dim"),
    infer=_scatter_infer, lower=_lifted(_scatter_lower), grad=_scatter_grad, cost=lambda c: numel(c.in_types[1].shape),
    doc="x with src written at the indices: out[i][index[i][j]] = src[i][j] for dim=1 (torch.Tensor.scatter, out "
        "of place; ONNX ScatterElements). src a tensor (its corner of index's shape is read) or a number (torch's "
        "value=). Repeated indices: one of the values (the last in onnxruntime's CPU kernel, as torch's CPU; ONNX "
        "leaves it open). A negative index counts from the end where torch raises. Gradients: g where nothing was "
        "written to x, g at the indices (gather) to src.",
))


def _reduce_infer(ins, a):
    x = ins[0]
    if a["reduce"] == "mean" and x.dtype is DType.bool:
        fail("scatter_reduce: no mean of a bool tensor")
    return _checked("scatter_reduce", ins, a, value=True)


def _reduce_lower(e, ins, outs, c):
    """include_self=false: the positions index names start from the reduction's identity (a ScatterElements with
    no reduction), then the reduction; mean: the sum over the count of what was summed there (floor division
    for integers, as torch)."""
    x, idx, src = ins
    x_t, i_t, s_t = c.in_types
    red, keep = c.attrs["reduce"], c.attrs["include_self"]
    if red in ("amax", "amin") and e.opset < 18:
        fail(f"scatter_reduce: reduce=\"{red}\" is ONNX ScatterElements' max/min, in opset 18 and later; this build "
             f"targets opset {e.opset} (--opset 18)")
    ax = torch_dim("scatter_reduce", x_t, c.attrs["dim"])
    src = _as_index(e, src, s_t, i_t, idx)
    base = x if keep else _scatter_nodes(e, x, idx, _filled(e, idx, _identity(red, x_t), x_t), x_t, ax, None, "none")
    if red != "mean":
        _scatter_nodes(e, base, idx, src, x_t, ax, outs, _ONNX_REDUCTION[red])
        return
    total = widen(e, _scatter_nodes(e, base, idx, src, x_t, ax, None, "add"), x_t)
    count = _filled(e, x, 1, x_t)
    if not keep:
        count = e.op("ScatterElements", [count, idx, _filled(e, idx, 0, x_t)], axis=ax)
    count = e.op("ScatterElements", [count, idx, _filled(e, idx, 1, x_t)], axis=ax, reduction="add")
    if x_t.dtype.is_float:
        narrow_into(e, e.op("Div", [total, count], outputs=wide_outputs(x_t, outs)), x_t, outs)
        return
    rest = e.op("Mod", [total, count])  # the count is positive: Mod's result is >= 0, a floor division exact
    e.op("Div", [e.op("Sub", [total, rest]), count], outputs=outs)


def _corner(b, src, s_t: TensorType, i_t: TensorType, index):
    """src as index's shape: a number spread over it, or the corner torch reads of a larger src."""
    if s_t.rank == 0:
        return b.op("add", b.op("zeros_like", index, dtype=s_t.dtype.label), src)
    if not all(isinstance(m, int) for m in i_t.shape):
        fail(f"scatter_reduce: the gradient of amax/amin needs src {shape_str(s_t)} the shape of index "
             f"{shape_str(i_t)} (as torch's does), or index's sizes known to read src's corner")
    return b.op("getitem", src, index=tuple(("s", 0, m, None) for m in i_t.shape))


def _reduce_grad(b, c, ins, outs, gouts):
    """torch's: sum g (to x where it was kept); mean g over the count; amax/amin g shared among the elements equal
    to the result (x's counted even where not kept, as torch's); prod none."""
    g = gouts[0]
    x, index, src = ins
    red, keep, d = c.attrs["reduce"], c.attrs["include_self"], c.attrs["dim"]
    if g is None:
        return [None, None, None]
    if red == "prod":
        fail("scatter_reduce: no gradient for reduce=\"prod\" here (torch's divides by the elements, zeros apart); "
             "train through sum, mean, amax or amin, or keep the operands constant")
    i_t, s_t = c.in_types[1], c.in_types[2]
    one = b.scalar(1.0, like=g)
    untouched = b.op("sub", one, _named(b, x, index, d))  # positions no index names: the result is x there
    kept = b.op("ones_like", x) if keep else untouched  # x's part in each result
    if red == "sum":
        share, hit_s = g, None
    elif red == "mean":
        count = b.op("scatter_add", kept, index, b.op("ones_like", index, dtype=g.type.dtype.label), dim=d)
        share, hit_s = b.op("div", g, count), None
    else:  # amax, amin: the elements equal to the result share it
        y = outs[0]
        at = b.op("gather", y, index, dim=d)
        src_at = src if s_t.rank and tuple(s_t.shape) == tuple(i_t.shape) else _corner(b, src, s_t, i_t, index)
        hit_s = b.op("cast", b.op("eq", src_at, at), dtype=g.type.dtype.label)
        # an untouched position is x whatever eq says: in float16 x may reach eq unrounded (onnxruntime computes
        # exp, pow, pad in float32 and drops the cast back) where y was rounded, and the count there was 0: g / 0
        # made every gradient NaN (difffuzz4 hunt); a count of 0 where rounding parts a tie is taken as 1
        hit_x = b.op("maximum", b.op("cast", b.op("eq", x, y), dtype=g.type.dtype.label), untouched)
        # torch counts x's ties with the result even where include_self=false leaves x out (and gives x none)
        share = b.op("div", g, b.op("maximum", b.op("scatter_add", hit_x, index, hit_s, dim=d), one))
        kept = b.op("mul", kept, hit_x)
    gx = b.op("mul", share, kept) if b.needs(0) else None
    gs = None
    if b.needs(2):
        gs = b.op("gather", share, index, dim=d)
        if hit_s is not None:
            gs = b.op("mul", gs, hit_s)
        gs = _src_grad(b, gs, i_t, s_t, "scatter_reduce")
    return [gx, None, gs]


register(OpDef(
    name="scatter_reduce", inputs=("x", "index", "src"), category="shape",
    attrs=(Attr("dim", "int"), Attr("reduce", "str", choices=tuple(_ONNX_REDUCTION)),
           Attr("include_self", "bool", True)),
    call_order=("x", "dim", "index", "src", "reduce"), positions=("index",), indexes=(1, 0, "dim"),
    infer=_reduce_infer, lower=_lifted(_reduce_lower), grad=_reduce_grad, cost=lambda c: numel(c.in_types[1].shape),
    doc="x with src reduced into the positions index names (torch.Tensor.scatter_reduce, out of place): reduce "
        "\"sum\", \"prod\", \"mean\", \"amax\" or \"amin\"; include_self=false starts those positions from the "
        "reduction alone (a graph's per-node max over its incoming edges: scatter_reduce(full_like(x, 0.0), 0, "
        "dst, msg, \"amax\", include_self=false)). ONNX ScatterElements with a reduction (amax/amin from opset "
        "18); mean is the sum over the count (floor division for integers, as torch). src a tensor or a number. "
        "Gradients as torch's: g to x where kept; mean over the count; amax/amin shared among the elements equal "
        "to the result; a train step through reduce=\"prod\" is refused (no gradient for it here).",
))
