"""Sorting, torch semantics: sort (values and indices) and argsort (indices), both ONNX TopK with k the whole dim.

onnxruntime's TopK puts tied values in order of index, whether largest or smallest first: that is the order of
torch.sort(stable=True), measured against torch for sizes 5..2000 (TopK switches kernels with the size) and
with NaN, which both sort as the largest value. sort's values gradient goes back through the indices, as
topk's does (autodiff.movement_grad running gather's lowering)."""

from __future__ import annotations

from ..types import DType, TensorType, numel
from ._common import i64 as _i64
from ._common import widen
from .registry import Attr, OpDef, fail, register
from .shapes import torch_dim

__all__: list[str] = []


def _sort_infer(ins, a):
    x = ins[0]
    torch_dim("sort", x, a["dim"])
    return [x, TensorType(DType.int64, x.shape)]


def _argsort_infer(ins, a):
    x = ins[0]
    torch_dim("argsort", x, a["dim"])
    return [TensorType(DType.int64, x.shape)]


def _ranked(e, x: str, t: TensorType) -> str:
    """What TopK ranks: 16-bit floats in float32 (exact: every value comes back unchanged), bools as int32
    (false before true, as torch); ONNX TopK takes neither."""
    if t.dtype.is_16bit:
        return e.op("Cast", [x], to=DType.float32.onnx)
    if t.dtype is DType.bool:
        return e.op("Cast", [x], to=DType.int32.onnx)
    return x


def sort_nodes(e, x: str, t: TensorType, dim: int, descending: bool, values: str | None, indices: str) -> None:
    """TopK over the whole of `dim`, written into `values` (none: not wanted) and `indices`. A symbolic dim's
    size is read at run time (TopK's k is an input), and a Reshape (0 copies a dim, the known sizes given)
    tells ONNX's shape inference the dims it cannot know through a k computed at run time."""
    if t.rank == 0:  # one element: itself, at index 0
        if values is not None:
            e.op("Identity", [x], outputs=[values])
        e.op("Identity", [_i64(e, 0)], outputs=[indices])
        return
    ax = torch_dim("sort", t, dim)
    n = t.shape[ax]
    k = _i64(e, [n]) if isinstance(n, int) else e.op("Shape", [x], start=ax, end=ax + 1)
    symbolic = not all(isinstance(d, int) for d in t.shape)
    cast = t.dtype.is_16bit or t.dtype is DType.bool
    vals, idx = e.op("TopK", [_ranked(e, x, t), k], n_out=2, axis=ax, largest=int(descending), sorted=1)
    if symbolic:
        shape = _i64(e, [d if isinstance(d, int) else 0 for d in t.shape])
        idx = e.op("Reshape", [idx, shape], outputs=[indices])
        if values is not None:
            vals = e.op("Reshape", [vals, shape], outputs=None if cast else [values])
    else:
        e.op("Identity", [idx], outputs=[indices])
        if values is not None and not cast:
            e.op("Identity", [vals], outputs=[values])
    if values is not None and cast:
        e.op("Cast", [vals], outputs=[values], to=t.dtype.onnx)


def _sort_lower(e, ins, outs, c):
    sort_nodes(e, ins[0], c.in_types[0], c.attrs["dim"], c.attrs["descending"], outs[0], outs[1])


def _argsort_lower(e, ins, outs, c):
    sort_nodes(e, ins[0], c.in_types[0], c.attrs["dim"], c.attrs["descending"], None, outs[0])


def _sort_grad(b, c, ins, outs, gouts):
    """values = gather(x, dim, indices), a permutation: g goes back to where each value came from."""
    if gouts[0] is None or not c.in_types[0].dtype.is_float:
        return [None]
    if c.in_types[0].rank == 0:
        return [gouts[0]]
    ax = torch_dim("sort", c.in_types[0], c.attrs["dim"])
    return [b.op("autodiff.movement_grad", gouts[0], ins[0], outs[1], op="gather", attrs={"dim": ax})]


_ATTRS = (Attr("dim", "int", -1), Attr("descending", "bool", False))
_TIES = ("Tied values keep their order of index (ONNX TopK in onnxruntime), as torch.sort(stable=True); "
         "torch's default sort does not promise an order among ties. NaN sorts as the largest value, as torch. "
         "Any dtype: bool as false < true, float16/bfloat16 ranked in float32 (exact). A symbolic dim is sorted "
         "at its run-time size.")

register(OpDef(
    name="sort", inputs=("x",), category="math", attrs=_ATTRS, infer=_sort_infer, lower=_sort_lower,
    grad=_sort_grad, cost=lambda c: numel(c.in_types[0].shape),
    doc="x sorted along dim, ascending (descending=true: largest first), and the int64 indices of where each "
        "value came from: a tuple (values, indices) as torch.sort, `v, i = sort(x)`. " + _TIES + " The values' "
        "gradient goes back to where each value came from.",
))

register(OpDef(
    name="argsort", inputs=("x",), category="math", attrs=_ATTRS, infer=_argsort_infer, lower=_argsort_lower,
    cost=lambda c: numel(c.in_types[0].shape),
    doc="The int64 indices that sort x along dim (torch.argsort; sort(x)[1]). " + _TIES + " No gradient "
        "(integer output).",
))


# ---- searchsorted ----
def _searchsorted_infer(ins, a):
    seq, v = ins
    if a["side"] == "left" and a["right"]:
        fail("searchsorted: side=\"left\" and right=true disagree")
    if seq.dtype is DType.bool:
        fail("searchsorted: sorted_sequence must be numbers, not bool; cast it first")
    if seq.dtype != v.dtype:
        fail(f"searchsorted: sorted_sequence and values must have one dtype, got {seq.dtype} and {v.dtype}; cast "
             "one first")
    if seq.rank < 1:
        fail("searchsorted: sorted_sequence must have at least one dim (the sorted one, last)")
    if seq.rank > 1 and (v.rank != seq.rank or tuple(v.shape[:-1]) != tuple(seq.shape[:-1])):
        fail(f"searchsorted: a sorted_sequence of shape [{', '.join(map(str, seq.shape))}] needs values whose "
             f"dims but the last are the same, [{', '.join(map(str, seq.shape[:-1]))}, K], got "
             f"[{', '.join(map(str, v.shape))}] (or a 1-D sorted_sequence, shared by all values)")
    return [TensorType(DType.int64, v.shape)]


def _searchsorted_lower(e, ins, outs, c):
    """How many of the sequence's last dim lie below each value (left) or not above it (right): one
    comparison per pair, [..., K, M], summed over M. Not(seq >= v) rather than seq < v: a NaN value then
    counts every element, as torch's M."""
    seq_t = c.in_types[0]
    seq, v = (widen(e, x, seq_t) for x in ins)
    if seq_t.rank > 1:
        seq = e.op("Unsqueeze", [seq, _i64(e, [-2])])
    v = e.op("Unsqueeze", [v, _i64(e, [-1])])
    right = c.attrs["right"] or c.attrs["side"] == "right"
    above = e.op("Greater" if right else "GreaterOrEqual", [seq, v])
    below = e.op("Cast", [e.op("Not", [above])], to=DType.int64.onnx)
    e.op("ReduceSum", [below, _i64(e, [-1])], keepdims=0, outputs=outs)


register(OpDef(
    name="searchsorted", inputs=("sorted_sequence", "values"), category="math",
    attrs=(Attr("right", "bool", False), Attr("side", "str?", None, choices=("left", "right"))),
    infer=_searchsorted_infer, lower=_searchsorted_lower,
    cost=lambda c: numel(c.in_types[1].shape) * numel(c.in_types[0].shape[-1:]),
    doc="For each value, the int64 index where it would go in the sorted last dim of sorted_sequence "
        "(torch.searchsorted): before equal elements, or after them with right=true (side=\"right\"). "
        "sorted_sequence is 1-D (shared by every value) or has the values' dims but the last; values may "
        "be a number. A NaN value goes last (index M), as torch's; a NaN in sorted_sequence is not "
        "torch's answer (its binary search's). Computed as one comparison per (value, element) pair "
        "([..., K, M] at once: NeRF's sampling sizes, not millions); no gradient (integer output).",
))
