"""getitem: `x[:, 0]`, `x[..., 1:3]`, `x[:, :, ::2]` with static bounds (Slice, then Squeeze for ints)."""

from __future__ import annotations

import numpy as np

from ..types import MAX_DIM, Dim, dim_add, dim_floordiv
from ._common import shape_str
from .registry import Attr, OpDef, fail, register

__all__ = ["resolve_index"]

# attr `index`: a tuple of entries, each ("i", k) for an integer, ("s", lo, hi, step) for a slice,
# or ("e",) for `...`.


def _expand(x, index):
    n_ell = sum(1 for e in index if e[0] == "e")
    if n_ell > 1:
        fail("an index may contain at most one '...'")
    used = sum(1 for e in index if e[0] != "e")
    if used > x.rank:
        fail(f"too many indices ({used}) for {shape_str(x)}")
    out = []
    for e in index:
        if e[0] == "e":
            out += [("s", None, None, None)] * (x.rank - used)
        else:
            out.append(e)
    out += [("s", None, None, None)] * (x.rank - len(out))
    return out


def resolve_index(x, index):
    """Per axis: (start, end, step, squeeze) with python semantics clamped to the dim, or None for no-op."""
    plan = []
    for ax, e in enumerate(_expand(x, index)):
        d: Dim = x.shape[ax]
        if e[0] == "i":
            k = e[1]
            if isinstance(d, int):
                if not -d <= k < d:
                    fail(f"index {k} is out of range for dim {ax} of size {d}")
                k %= d
            elif not -MAX_DIM <= k < MAX_DIM:
                fail(f"index {k} is out of range for dim {ax} ({d}) at any size (dims are below 2**31)")
            # a negative index into a symbolic dim counts from the end at run time (x[:, -1]: the last step)
            plan.append((k, k + 1 if k != -1 else None, 1, True))
            continue
        lo, hi, step = e[1], e[2], e[3] if e[3] is not None else 1
        if step == 0:
            fail("slice step cannot be zero")
        if lo is None and hi is None and step == 1:
            plan.append(None)
            continue
        if not isinstance(d, int):
            if step < 0:
                fail(f"slicing symbolic dim {d} backwards (step {step}): the reversed dim is flip(x, [{ax}]), "
                     "then a forward slice")
            if lo is not None and lo < 0 and hi is not None and hi >= 0:  # its length would be hi - (d + lo)
                fail(f"slicing symbolic dim {d} from the end ({lo}) up to a position from the start ({hi}): the "
                     f"length would depend on {d}; write both bounds from the same end")
            if max(abs(lo or 0), abs(hi or 0)) > MAX_DIM:
                fail(f"slice bound {max(abs(lo or 0), abs(hi or 0))} is beyond dim {ax} ({d}) at any size (dims "
                     "are below 2**31)")
            plan.append((lo or 0, hi, step, False))
            continue
        s = slice(lo, hi, step).indices(d)
        if not range(*s):  # an empty backward slice starts at python's -1, "before 0", which ONNX reads as the last
            s = (0, 0, 1)
        plan.append((s[0], s[1], s[2], False))
    return plan


def _size(d, p):
    if p is None:
        return d
    start, end, step, squeeze = p
    if squeeze:
        return None
    if isinstance(d, int):
        return len(range(start, end, step))
    # symbolic d: bounds from the start give end - start (assumed within d), from the end -start or end - start,
    # an end from the end d + end - start (x[:, :-1] is T - 1 long); a step takes every step-th of those, the
    # first included: ceil(length / step) (x[:, 0::2] of H is (H+1)//2 long)
    if end is None:
        length = -start if start < 0 else dim_add(d, -start)
    elif end < 0 <= start:
        length = dim_add(d, end - start)
    else:
        length = max(end - start, 0)  # python's x[:, 5:3] and x[:, -1:-3] are empty
    if step == 1:
        return length
    if isinstance(length, int):
        return -(-length // step)
    return dim_floordiv(dim_add(length, step - 1), step)


def _infer(ins, a):
    x = ins[0]
    plan = resolve_index(x, a["index"])
    shape = tuple(s for s in (_size(d, p) for d, p in zip(x.shape, plan)) if s is not None)
    return [x.with_shape(shape)]


def _lower(e, ins, outs, c):
    x = c.in_types[0]
    plan = resolve_index(x, c.attrs["index"])
    axes = [i for i, p in enumerate(plan) if p is not None]
    squeeze = [i for i, p in enumerate(plan) if p is not None and p[3]]
    if not axes:
        e.op("Identity", ins, outputs=outs)
        return
    big = np.iinfo(np.int64).max
    starts = [plan[i][0] for i in axes]
    ends = [plan[i][1] if plan[i][1] is not None else big for i in axes]
    ends = [(-big if (end == -1 and plan[i][2] < 0) else end) for i, end in zip(axes, ends)]
    steps = [max(-big, min(plan[i][2], big)) for i in axes]  # past 64 bits a step takes one element: as big
    i64 = lambda v: e.const(np.array(v, dtype=np.int64))  # noqa: E731
    sliced_out = None if squeeze else outs
    y = e.op("Slice", [ins[0], i64(starts), i64(ends), i64(axes), i64(steps)], outputs=sliced_out)
    if squeeze:
        e.op("Squeeze", [y, i64(squeeze)], outputs=outs)


register(OpDef(
    name="getitem", inputs=("x",), category="shape", attrs=(Attr("index", "any"),),
    written="with brackets (x[0], x[:, 1:3])",
    infer=_infer, lower=_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.getitem_grad", gouts[0], ins[0], index=c.attrs["index"])],
    doc="x[...] with integer indices, slices and '...' (static bounds); written with brackets, not called.",
))
