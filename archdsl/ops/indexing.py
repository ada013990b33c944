"""Indexing ops, torch semantics: topk, gather, one_hot, tile (torch.Tensor.repeat).

topk's and gather's gradients scatter g back to the positions read (autodiff.movement_grad running gather's
own lowering on a tensor of positions); tile's sums g over the tiles."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, dim_mul, numel
from ._common import i64 as _i64
from ._common import narrow_into, shape_str, widen
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis

__all__: list[str] = []


def _index_dtype(name: str, what: str, t: TensorType) -> None:
    if t.dtype not in (DType.int64, DType.int32):
        fail(f"{name}: {what} must be int64 or int32, got {t.dtype} {shape_str(t)}")


# ---------------- topk ----------------

def _topk_axis(x: TensorType, a: dict) -> int:
    if x.rank == 0:
        fail("topk: needs a tensor of at least 1 dim, got a 0-d tensor")
    return norm_axis(a["dim"], x.rank, "topk: dim")


def _topk_infer(ins, a):
    x = ins[0]
    if x.dtype is DType.bool:
        fail("topk: not defined on bool tensors (nor in torch); cast(x, \"int64\") first")
    ax = _topk_axis(x, a)
    n, k = x.shape[ax], a["k"]
    if isinstance(n, int) and k > n:
        fail(f"topk: k={k} is larger than dim {a['dim']} of {shape_str(x)} ({n})", "k")
    shape = x.shape[:ax] + (k,) + x.shape[ax + 1:]
    return [x.with_shape(shape), TensorType(DType.int64, shape)]


def _topk_lower(e, ins, outs, c):
    """ONNX TopK, always sorted (torch's sorted=false leaves the order unspecified; this is one it may give).
    16-bit floats are ranked in float32 (exact: the values come back unchanged). Over a symbolic dim ONNX's
    shape inference knows no dim of TopK's outputs: a Reshape (0 copies a dim, k and the known sizes given)
    tells it what the shape rule knows."""
    t = c.in_types[0]
    ax = _topk_axis(t, c.attrs)
    x = widen(e, ins[0], t)
    symbolic = not isinstance(t.shape[ax], int)
    names = [outs[0] if not (symbolic or t.dtype.is_16bit) else f"{outs[0]}/topk",
             outs[1] if not symbolic else f"{outs[1]}/topk"]
    vals, idx = e.op("TopK", [x, _i64(e, [c.attrs["k"]])], outputs=names, axis=ax, largest=int(c.attrs["largest"]),
                     sorted=1)
    if symbolic:
        shape = _i64(e, [d if isinstance(d, int) else 0 for d in c.out_types[0].shape])
        vals = e.op("Reshape", [vals, shape], outputs=None if t.dtype.is_16bit else [outs[0]])
        e.op("Reshape", [idx, shape], outputs=[outs[1]])
    narrow_into(e, vals, t, [outs[0]])


def _topk_grad(b, c, ins, outs, gouts):
    """values = gather(x, dim, indices): g scattered back to the chosen positions; indices are integers."""
    if gouts[0] is None:
        return [None]
    ax = _topk_axis(c.in_types[0], c.attrs)
    return [b.op("autodiff.movement_grad", gouts[0], ins[0], outs[1], op="gather", attrs={"dim": ax})]


register(OpDef(
    name="topk", inputs=("x",), category="math",
    attrs=(Attr("k", "int"), Attr("dim", "int", -1), Attr("largest", "bool", True), Attr("sorted", "bool", True)),
    infer=_topk_infer, lower=_topk_lower, grad=_topk_grad, cost=lambda c: numel(c.in_types[0].shape),
    nonempty=lambda ins, a: [_topk_axis(ins[0], a)] if a["k"] > 0 else [],  # k past a dim a run makes 0
    doc="The k largest (largest=false: smallest) elements along dim and their int64 indices, a tuple "
        "(values, indices) as torch.topk: `v, i = topk(x, 2)`. ONNX TopK: always sorted, and tied values in "
        "order of index, where torch's order among ties is unspecified; NaN counts as the largest, as torch. k "
        "is a number (a symbolic size is refused: the output's size is fixed when the graph is built); k "
        "larger than a known dim is refused (over a symbolic dim onnxruntime stops at run time). The values' "
        "gradient goes back to the chosen positions.",
))


# ---------------- gather ----------------

def _gather_infer(ins, a):
    x, idx = ins
    _index_dtype("gather", "index", idx)
    if idx.rank != x.rank:
        fail(f"gather: index must have the rank of x ({x.rank}), got {shape_str(idx)} for x {shape_str(x)}")
    ax = norm_axis(a["dim"], max(x.rank, 1), "gather: dim")
    for i, (n, m) in enumerate(zip(x.shape, idx.shape)):
        if i != ax and isinstance(n, int) and isinstance(m, int) and m > n:
            fail(f"gather: index {shape_str(idx)} is larger than x {shape_str(x)} at dim {i} ({m} > {n}); "
                 f"outside dim {a['dim']} it may be at most as large (torch.gather)")
    return [x.with_shape(idx.shape)]


def _gather_lower(e, ins, outs, c):
    x_t = c.in_types[0]
    if x_t.rank == 0:  # torch.gather of a 0-d tensor with a 0-d index 0
        e.op("Identity", [ins[0]], outputs=outs)
        return
    e.op("GatherElements", ins, outputs=outs, axis=norm_axis(c.attrs["dim"], x_t.rank))


register(OpDef(
    name="gather", inputs=("x", "index"), category="shape", attrs=(Attr("dim", "int"),),
    call_order=("x", "dim", "index"), positions=("index",), indexes=(1, 0, "dim"), infer=_gather_infer,
    lower=_gather_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.movement_grad", gouts[0], ins[0], ins[1], op="gather",
                                              attrs=dict(c.attrs)), None],
    doc="out[i][j][k] = x[i][index[i][j][k]][k] for dim=1 (torch.gather(x, dim, index); ONNX GatherElements): "
        "index has x's rank, int64 or int32, and outside dim at most x's sizes; the output has index's shape. "
        "A negative index counts from the end (GatherElements) where torch raises; one past the end is a "
        "diagnostic where the index is a constant, else stops onnxruntime. The gradient adds g into x's "
        "positions read, repeats summed.",
))


# ---------------- one_hot ----------------

def _one_hot_infer(ins, a):
    ids = ins[0]
    if ids.dtype not in (DType.int64, DType.int32):
        fail(f"one_hot: ids must be an int64 or int32 tensor (class indices), got {ids.dtype} {shape_str(ids)}")
    if a["num_classes"] < 1:
        fail(f"one_hot: num_classes must be at least 1, got {a['num_classes']}", "num_classes")
    return [TensorType(DType.int64, ids.shape + (a["num_classes"],))]


def _one_hot_lower(e, ins, outs, c):
    """Equal(ids[..., None], [0, 1, ..., n-1]) as int64: an id outside 0..n-1 gives a row of zeros."""
    t = c.in_types[0]
    classes = e.const(np.arange(c.attrs["num_classes"], dtype=t.dtype.numpy))
    hit = e.op("Equal", [e.op("Unsqueeze", [ins[0], _i64(e, [-1])]), classes])
    e.op("Cast", [hit], outputs=outs, to=DType.int64.onnx)


_ONE_HOT_SYMBOLIC = ("over a run-time count N, a comparison with positions is the mask: eq(unsqueeze(ids, -1), "
                     "positions(x, dim=d)) of a tensor x with N at dim d (bool; cast it for a float one)")

register(OpDef(
    name="one_hot", inputs=("ids",), category="math", positions=("ids",),
    attrs=(Attr("num_classes", "int", symbolic=_ONE_HOT_SYMBOLIC),),
    infer=_one_hot_infer, lower=_one_hot_lower, cost=lambda c: numel(c.out_types[0].shape),
    doc="int64 [..., num_classes] with a 1 at each id (torch.nn.functional.one_hot; num_classes is required "
        "here). An id outside 0..num_classes-1 gives a row of zeros where torch raises. No gradient (integer "
        "output); cast(one_hot(y, n), \"float32\") makes a float mask. num_classes is a number; over a "
        "run-time count N, eq(unsqueeze(ids, -1), positions(x, dim=d)) of a tensor x with N at dim d is the "
        "bool mask.",
))


# ---------------- tile (torch.Tensor.repeat) ----------------

def _tile_dims(x: TensorType, dims: tuple) -> tuple[int, tuple]:
    """(leading dims added, a count per dim of the result): torch.tile prepends 1s to a short `dims`, and a
    long one prepends dims to x, as torch.Tensor.repeat."""
    if any(n < 0 for n in dims):
        fail(f"tile: the counts must not be negative, got {list(dims)}")
    if len(dims) < x.rank:
        dims = (1,) * (x.rank - len(dims)) + tuple(dims)
    return len(dims) - x.rank, tuple(dims)


def _tile_infer(ins, a):
    x = ins[0]
    lead, dims = _tile_dims(x, a["dims"])
    return [x.with_shape(dims[:lead] + tuple(dim_mul(s, d) for s, d in zip(dims[lead:], x.shape)))]


def _tile_lower(e, ins, outs, c):
    lead, dims = _tile_dims(c.in_types[0], c.attrs["dims"])
    x = e.op("Unsqueeze", [ins[0], _i64(e, list(range(lead)))]) if lead else ins[0]
    if all(s == 1 for s in dims):
        e.op("Identity", [x], outputs=outs)
        return
    e.op("Tile", [x, _i64(e, list(dims))], outputs=outs)


def _tile_grad(b, c, ins, outs, gouts):
    """g viewed as [tiles, size] per dim and summed over the tiles; a tiled symbolic dim (2*B) cannot be
    viewed so, and scatters back instead (the lowering run on positions)."""
    x_t, g = c.in_types[0], gouts[0]
    lead, dims = _tile_dims(x_t, c.attrs["dims"])
    if 0 in dims or 0 in x_t.shape:
        return [b.zeros_like(ins[0])]
    if any(s != 1 and not isinstance(d, int) for s, d in zip(dims[lead:], x_t.shape)):
        return [b.op("autodiff.movement_grad", g, ins[0], op="tile", attrs=dict(c.attrs))]
    view, tiles = list(dims[:lead]), list(range(lead))
    for s, d in zip(dims[lead:], x_t.shape):
        if s != 1:
            tiles.append(len(view))
            view.append(s)
        view.append(d)
    if not tiles:
        return [b.reshape_like(g, ins[0])]
    return [b.reshape_like(b.op("sum", b.op("reshape", g, shape=tuple(view)), dim=tuple(tiles)), ins[0])]


register(OpDef(
    name="tile", inputs=("x",), category="shape",
    attrs=(Attr("dims", "ints", symbolic="to repeat a size-1 dim to a run-time size, expand(x, [shape(y)[0], "
                                          "-1, -1], like=y) reads it from y (in a model or a block)"),),
    infer=_tile_infer, lower=_tile_lower, grad=_tile_grad, cost=lambda c: 0,
    doc="x repeated dims[i] times along each dim (torch.tile; ONNX Tile): fewer counts than dims prepend 1s, "
        "more prepend dims, so tile(x, sizes) is torch's x.repeat(*sizes) (`repeat` is the language's loop "
        "keyword). The gradient sums g over the tiles.",
))
