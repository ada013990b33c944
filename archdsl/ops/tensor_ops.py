"""Generic tensor ops: unsqueeze/squeeze/expand, reductions, where/masked_fill, causal masks, cast, positions."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ..types import DTYPES, DType, Sym, TensorType, numel, unknown_dtype
from ._common import check_fill, elementwise_cost, fill_array, reduce_op, select, shape_str, tril_keep
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register
from .sdpa import mask_bias
from .shapes import broadcast, norm_axes, norm_axis


def _view_grad(b, c, ins, outs, gouts):
    return [b.reshape_like(gouts[0], ins[0])]


def _unsqueeze_infer(ins, a):
    x = ins[0]
    ax = norm_axis(a["dim"], x.rank + 1, "dim")
    return [x.with_shape(x.shape[:ax] + (1,) + x.shape[ax:])]


register(OpDef(
    name="unsqueeze", inputs=("x",), category="shape", attrs=(Attr("dim", "int"),),
    infer=_unsqueeze_infer, cost=lambda c: 0, grad=_view_grad,
    lower=lambda e, ins, outs, c: e.op("Unsqueeze",
                                       [ins[0], _i64(e, [norm_axis(c.attrs["dim"], c.in_types[0].rank + 1)])],
                                       outputs=outs),
    doc="Insert a size-1 dim at dim (torch.unsqueeze).",
))


def _squeeze_axes(x, a):
    dims = a["dim"]
    if dims is None:
        return [i for i, d in enumerate(x.shape) if d == 1]
    axes = norm_axes(dims, x.rank)
    for ax in axes:
        if x.shape[ax] != 1:
            fail(f"squeeze: dim {ax} of {shape_str(x)} is not 1")
    return axes


def _squeeze_lower(e, ins, outs, c):
    axes = _squeeze_axes(c.in_types[0], c.attrs)
    if not axes:  # Squeeze with empty axes drops every dim that is 1 at run time: B = 1 too, against the type
        e.op("Identity", [ins[0]], outputs=outs)
        return
    e.op("Squeeze", [ins[0], _i64(e, axes)], outputs=outs)


register(OpDef(
    name="squeeze", inputs=("x",), category="shape", attrs=(Attr("dim", "ints?", None),),
    infer=lambda ins, a: [ins[0].with_shape(tuple(d for i, d in enumerate(ins[0].shape)
                                                   if i not in _squeeze_axes(ins[0], a)))],
    lower=lambda e, ins, outs, c: _squeeze_lower(e, ins, outs, c),
    cost=lambda c: 0, grad=_view_grad,
    doc="Drop size-1 dims (those listed, or all that are 1 in the declared shape: a symbolic dim stays, even "
        "when it is 1 at run time).",
))


def _expand_target(x, a):
    shape = list(a["shape"])
    if len(shape) < x.rank:
        fail(f"expand: target {shape} has fewer dims than {shape_str(x)}")
    lead = len(shape) - x.rank
    out = []
    for i, d in enumerate(shape):
        src = x.shape[i - lead] if i >= lead else 1
        if d == -1:
            if i < lead:
                fail("expand: -1 is only allowed for existing dims")
            out.append(src)
        elif src == 1 or src == d:
            out.append(d)
        else:
            fail(f"expand: cannot expand dim {i} of size {src} to {d}")
    return tuple(out)


def _expand_checked(ins, a) -> tuple:
    """The target, where a symbolic dim the input does not already have is read at run time from `like`, when
    given, else from a model input or earlier value with that dim (the lowering says where none has it)."""
    x, like = ins[0], (ins[1] if len(ins) > 1 else None)
    target = _expand_target(x, a)
    lead = len(target) - x.rank
    for i, d in enumerate(target):
        src = x.shape[i - lead] if i >= lead else 1
        if not isinstance(d, int) and d != src and like is not None and d not in like.shape:
            fail(f"expand: symbolic dim {d} is only known at run time, and the like= tensor {shape_str(like)} "
                 f"has no dim {d} (expand(x, [...], like=y))")
    return target


def expand_unread(x, like, target, readable) -> str | None:
    """Why an expand's target cannot be written at run time: a symbolic size that neither x, like= nor a value
    `readable(d)` says is at hand (a model input's, a node's before it) has; None where every size can be.
    The checker asks it over the elaborated graph, the lowering over the values lowered so far."""
    lead = len(target) - x.rank
    for i, d in enumerate(target):
        if not isinstance(d, int) and not (like is not None and d in like.shape) and \
                not (i >= lead and x.shape[i - lead] == d) and not readable(d):
            return (f"expand: the size {d} is not the size of any dim of a model input or of a value computed "
                    "before this expand that an output depends on, so it cannot be read at run time; give like= a "
                    "tensor with it (expand(x, [...], like=y))")
    return None


def _expand_lower(e, ins, outs, c):
    x = c.in_types[0]
    target = _expand_target(x, c.attrs)
    like = c.in_types[1] if len(c.in_types) > 1 else None
    if (why := expand_unread(x, like, target, lambda d: e.dim(d) is not None)) is not None:
        fail(why)
    lead = len(target) - x.rank
    parts = []
    for i, d in enumerate(target):
        if isinstance(d, int):
            parts.append(_i64(e, [d]))
        elif like is not None and d in like.shape:
            shp = e.op("Shape", [ins[1]])
            parts.append(e.op("Gather", [shp, _i64(e, [like.shape.index(d)])], axis=0))
        elif i >= lead and x.shape[i - lead] == d:
            parts.append(_i64(e, [1]))  # Expand broadcasts 1 against the existing dim
        else:  # B of a model input, as reshape reads it
            parts.append(e.dim(d))
    shape = e.op("Concat", parts, axis=0) if len(parts) > 1 else parts[0]
    e.op("Expand", [ins[0], shape], outputs=outs)


register(OpDef(
    name="expand", inputs=("x", "like?"), category="shape", attrs=(Attr("shape", "dims"),),
    infer=lambda ins, a: [ins[0].with_shape(_expand_checked(ins, a))],
    lower=_expand_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.sum_to(gouts[0], c.in_types[0].shape)] + [None] * (len(ins) - 1),
    doc="Broadcast size-1 dims to `shape` (torch.expand; -1 keeps a dim). A symbolic dim is read at run time "
        "from `like` when given (expand(cls, [B, 1, 768], like=x)), else from a model input with it.",
))


def _reduce(name, onnx_op, doc):
    def infer(ins, a):
        x = ins[0]
        if x.dtype is DType.bool and name == "mean":
            fail("mean: cannot reduce a bool tensor; cast(x, \"float32\") first")
        if name == "mean" and not x.dtype.is_float:  # ONNX would truncate the mean; torch refuses
            fail(f"mean: needs a float tensor, got {x.dtype} (the mean of integers is not one); "
                 "cast(x, \"float32\") first")
        axes = norm_axes(a["dim"], x.rank)
        empty = [i for i in (axes or range(x.rank)) if x.shape[i] == 0]
        if empty and name != "sum":  # onnxruntime gives 0 (mean) and -inf (amax); torch NaN, and an error
            fail(f"{name}: dim {empty[0]} of {shape_str(x)} is empty: " + (
                "the mean of no elements is NaN (torch's, with a warning)" if name == "mean" else
                f"torch refuses {name} over no elements") + "; reduce over a dim that holds some")
        if name == "sum" and not x.dtype.is_float:  # torch sums integers and bools in int64
            x = TensorType(DType.int64, x.shape)
        if a["keepdim"]:
            return [x.with_shape(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))]
        return [x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in axes))]

    def lower(e, ins, outs, c):
        x = c.in_types[0]
        axes = norm_axes(c.attrs["dim"], x.rank)
        src = ins[0]
        if name == "sum" and not x.dtype.is_float and x.dtype is not DType.int64:
            src = e.op("Cast", [src], to=DType.int64.onnx)
        elif x.dtype is DType.bool and e.opset < 20 and axes:
            if name not in ("amax", "amin"):
                fail(f"{name}: ONNX {onnx_op} takes bool from opset 20; this build targets opset {e.opset}")
            # the largest (smallest) of bools is any (all): the reduction over int32 there, cast back
            y = reduce_op(e, onnx_op, e.op("Cast", [src], to=DType.int32.onnx), axes, int(c.attrs["keepdim"]))
            e.op("Cast", [y], outputs=outs, to=DType.bool.onnx)
            return
        if not axes:  # a scalar: nothing to reduce (an empty axes attribute cannot even be written)
            e.op("Identity", [src], outputs=outs)
            return
        if name == "sum" and not x.dtype.is_float:
            integer_sum(e, src, x.rank, axes, c.attrs["keepdim"], outs)
            return
        reduce_op(e, onnx_op, src, axes, int(c.attrs["keepdim"]), outputs=outs)

    def grad(b, c, ins, outs, gouts):
        """sum: g spread over the reduced dims; mean: also / count; amax, amin: g to the maxima (minima), shared
        by ties as torch does."""
        x, g = ins[0], gouts[0]
        r = c.in_types[0].rank
        axes = norm_axes(c.attrs["dim"], r)
        if name in ("amax", "amin"):
            return [b.op("autodiff.max_grad", g, x, outs[0], dims=tuple(axes), keepdim=c.attrs["keepdim"])]
        if not c.attrs["keepdim"]:
            for ax in axes:
                g = b.op("unsqueeze", g, dim=ax)
        if name == "mean":
            g = b.over_count(g, x, tuple(axes))
        return [b.broadcast_to(g, x)]

    register(OpDef(name=name, inputs=("x",), category="math",
                   attrs=(Attr("dim", "ints?", None), Attr("keepdim", "bool", False)),
                   infer=infer, lower=lower, cost=lambda c: numel(c.in_types[0].shape), doc=doc, grad=grad,
                   nonempty=None if name == "sum" else
                   lambda ins, a: norm_axes(a["dim"], ins[0].rank) or range(ins[0].rank)))


def integer_sum(e, x: str, rank: int, axes: list[int], keepdim: bool, outs, dtype=np.int64) -> str:
    """An integer sum as MatMuls with a vector of ones, one per reduced axis (moved last): onnxruntime's int64
    ReduceSum goes through double (2**60 + 1 + 1 gave 2**60), its integer MatMul is exact and wraps as torch's
    sum does. `dtype`: x's (numpy)."""
    for k, a in enumerate(sorted(axes, reverse=True)):  # the highest first: the lower axes keep their index
        r = rank - k
        if a != r - 1:
            x = e.op("Transpose", [x], perm=[i for i in range(r) if i != a] + [a])
        ones = e.op("ConstantOfShape", [e.op("Shape", [x], start=-1)], value=numpy_helper.from_array(
            np.ones(1, dtype)))
        last = k == len(axes) - 1 and not keepdim
        x = e.op("MatMul", [x, ones], outputs=outs if last else None)
    if keepdim:
        x = e.op("Unsqueeze", [x, e.const(np.array(sorted(axes), dtype=np.int64))], outputs=outs)
    return x


_reduce("mean", "ReduceMean", "Mean over dims (all when none), torch.mean.")
_reduce("sum", "ReduceSum", "Sum over dims (all when none), torch.sum; integers and bools sum in int64, "
        "exactly (wrapping on overflow), as torch (by MatMul: onnxruntime's int64 ReduceSum rounds past 2**53).")
_reduce("amax", "ReduceMax", "Max over dims (all when none), torch.amax.")
_reduce("amin", "ReduceMin", "Min over dims (all when none), torch.amin.")


def _where_infer(ins, a):
    cond, x, y = ins
    if cond.dtype is not DType.bool:
        fail(f"where: condition must be bool, got {cond.dtype} (as torch; a 0/1 mask m is the condition m != 0)")
    if x.dtype != y.dtype:
        fail(f"where: branches differ in dtype ({x.dtype} vs {y.dtype})")
    return [x.with_shape(broadcast(broadcast(cond.shape, x.shape, "where operands"), y.shape, "where operands"))]


def _where_grad(b, c, ins, outs, gouts):
    g, cond = gouts[0], ins[0]
    zero = b.const(0, like=g)
    return [None,
            b.sum_to(b.op("where", cond, g, zero), c.in_types[1].shape) if b.needs(1) else None,
            b.sum_to(b.op("where", cond, zero, g), c.in_types[2].shape) if b.needs(2) else None]


register(OpDef(
    name="where", inputs=("cond", "a", "b"), category="math", infer=_where_infer, grad=_where_grad, elementwise=True,
    lower=lambda e, ins, outs, c: select(e, *ins, c.out_types[0].dtype, outputs=outs), cost=elementwise_cost,
    doc="a where cond else b, with broadcasting (torch.where); any dtype, bool branches included.",
))


def _fill_value(e, c):
    return e.const(fill_array("fill", c.attrs["value"], c.in_types[0].dtype))


def _masked_fill_infer(ins, a):
    x, m = ins
    if m.dtype is not DType.bool:
        fail(f"masked_fill: mask must be bool, got {m.dtype}")
    check_fill("masked_fill", x, a["value"])
    return [x.with_shape(broadcast(x.shape, m.shape, "masked_fill operands"))]


register(OpDef(
    name="masked_fill", inputs=("x", "mask"), category="math", elementwise=True,
    attrs=(Attr("value", "any", "-inf"),), infer=_masked_fill_infer, cost=elementwise_cost,
    grad=lambda b, c, ins, outs, gouts: [
        b.sum_to(b.op("where", ins[1], b.const(0, like=gouts[0]), gouts[0]), c.in_types[0].shape), None],
    lower=lambda e, ins, outs, c: select(e, ins[1], _fill_value(e, c), ins[0], c.out_types[0].dtype, outputs=outs),
    doc='x with `value` where mask is true (torch.masked_fill); value a number or "-inf" (the default, for '
        'float scores); a bool x takes true or false.',
))


def _causal_lower(e, ins, outs, c):
    """Keep j <= i + (S - T) of the last two dims: a lower-triangular mask built from the runtime shape, once
    per pair of lengths (GPT-2's twelve layers share one: Emitter.shared)."""
    x = c.in_types[0]
    lengths = tuple(x.shape[-2:])

    def keep_mask():
        offset = None
        if x.shape[-2] != x.shape[-1]:
            shape = e.op("Shape", [ins[0]], start=x.rank - 2)
            st = e.op("Split", [shape, _i64(e, [1, 1])], n_out=2, axis=0)
            offset = e.op("Squeeze", [e.op("Sub", [st[1], st[0]])])
        return tril_keep(e, ins[0], x.rank, offset)
    keep = e.shared(("causal_keep_bottom_right", *lengths), keep_mask)
    if c.attrs["value"] == "-inf" and x.dtype.is_float:
        # scores + a [T, S] mask of 0 / -inf. On onnxruntime CPU (GPT-2 small, T = 128, 2 threads) Where
        # over all heads' scores took 200 us per layer, the small Where + broadcast Add 65 us: the whole
        # mask 3.1 -> 1.3 ms per run. It differs where a future score is +inf or NaN: NaN there, and the row
        # NaN after softmax, where torch's masked_fill gives -inf and a finite row (specials hunt: documented)
        bias = e.shared(("causal_bias_bottom_right", *lengths, x.dtype),
                        lambda: mask_bias(e, keep, x.dtype.numpy, attend=True))
        e.op("Add", [ins[0], bias], outputs=outs)
        return
    select(e, keep, ins[0], _fill_value(e, c), x.dtype, outputs=outs)


def _causal_infer(ins, a):
    x = ins[0]
    if x.rank < 2:
        fail(f"causal_mask: needs [..., T, S], got {shape_str(x)}")
    check_fill("causal_mask", x, a["value"])
    return [x]


register(OpDef(
    name="causal_mask", inputs=("x",), category="math", attrs=(Attr("value", "any", "-inf"),),
    infer=_causal_infer, lower=_causal_lower, cost=elementwise_cost,
    grad=lambda b, c, ins, outs, gouts: [b.op("causal_mask", gouts[0], value=0.0)],
    doc="Attention scores [..., T, S] with future positions (j > i + S - T) set to value (default -inf): "
        "bottom-right aligned, the last query sees every key (new queries after cached keys), where sdpa's "
        "and multihead_attention's causal=true are top-left aligned (torch's is_causal); the same for T = S. "
        "The default -inf is added (a 0/-inf matrix, faster than a select): a future score of +inf or NaN "
        "(float16 scores that overflowed) gives NaN there, where torch's masked_fill gives -inf; a finite "
        "value (value=-1e4) is selected instead.",
))


def _cast_infer(ins, a):
    if a["dtype"] not in DTYPES:
        fail(f"cast: {unknown_dtype(a['dtype'])}", "dtype")
    return [TensorType(DTYPES[a["dtype"]], ins[0].shape)]


register(OpDef(
    name="cast", inputs=("x",), category="math", attrs=(Attr("dtype", "str"),), infer=_cast_infer, elementwise=True,
    grad=lambda b, c, ins, outs, gouts: [b.op("cast", gouts[0], dtype=c.in_types[0].dtype.label)],
    lower=lambda e, ins, outs, c: e.op("Cast", ins, outputs=outs, to=DTYPES[c.attrs["dtype"]].onnx),
    cost=lambda c: 0, doc="Convert to another dtype.",
))


def _positions_infer(ins, a):
    x = ins[0]
    ax = norm_axis(a["dim"], x.rank, "dim")
    return [TensorType(DType.int64, (x.shape[ax],))]


def _positions_lower(e, ins, outs, c):
    x = c.in_types[0]
    ax = norm_axis(c.attrs["dim"], x.rank)
    n = x.shape[ax]
    if isinstance(n, int):
        e.op("Identity", [e.const(np.arange(n, dtype=np.int64) + c.attrs["start"])], outputs=outs)
        return
    size = e.op("Squeeze", [e.op("Shape", [ins[0]], start=ax, end=ax + 1)])
    start = e.const(np.array(c.attrs["start"], dtype=np.int64))
    e.op("Range", [start, e.op("Add", [size, start]), e.const(np.array(1, dtype=np.int64))], outputs=outs)


register(OpDef(
    name="positions", inputs=("x",), category="math", attrs=(Attr("dim", "int", 1), Attr("start", "int", 0, symbolic=(
        "a start known only at run time (a KV cache's past length P) is added after: positions(x) + P"))),
    infer=_positions_infer, lower=_positions_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [None],
    doc="int64 [start, start+1, ...] as long as dim `dim` of x (torch.arange(start, start + x.shape[dim])): "
        "position ids for a learned position embedding; relative positions as unsqueeze(p, 0) - unsqueeze(p, 1); "
        "a grid (torch.meshgrid) as two such vectors unsqueezed to broadcast against each other. Folded to a "
        "constant where that dim is fixed.",
))



def _dim_size_lower(e, ins, outs, c):
    ax = c.attrs["axis"]
    size = e.op("Squeeze", [e.op("Shape", [ins[0]], start=ax, end=ax + 1)])
    e.op("Cast", [size], outputs=outs, to=DTYPES[c.attrs["dtype"]].onnx)


register(OpDef(
    name="dim_size", inputs=("x",), category="internal", attrs=(Attr("axis", "int"), Attr("dtype", "str")),
    infer=lambda ins, a: [TensorType(DTYPES[a["dtype"]], ())], lower=_dim_size_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [None],
    doc="the run-time length of dim `axis` of x, a scalar of `dtype`: a symbolic size used as a number "
        "beside a tensor (sum(err) / shape(x)[0])",
))

_ = Sym
