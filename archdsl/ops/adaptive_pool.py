"""Adaptive average and max pools over 1, 2 or 3 spatial dims (torch.nn.AdaptiveAvgPool1d/2d/3d,
AdaptiveMaxPool1d/2d/3d): output i along a dim of length L reduces the window [floor(i*L/out), ceil((i+1)*L/out)).

Each spatial dim is one of: kept (output_size none or equal to L: windows of one element), reduced whole
(output 1: the only choice over a symbolic L), or cut into windows (a known L). When every cut divides its
dim, the windows are a plain AveragePool/MaxPool (kernel = stride = L / out); otherwise the dims are taken one
after the other (both reductions are separable over a window that is a product of intervals), per window a
Slice and a ReduceMean or ReduceMax, concatenated (an average as a MatMul with a constant averaging matrix
multiplied an inf or NaN by the other windows' zeros: every output NaN). The average's gradient is that
MatMul's, which reads no x."""

from __future__ import annotations

import numpy as np

from ..types import DType, literal, numel
from ._common import bfloat16_from, float_input, reduce_op, shape_str, spatial_rank
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register, spatial_axes

__all__ = ["windows"]


def windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows: [floor(i*L/out), ceil((i+1)*L/out)) for i < out."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _plan(name: str, x, a, n: int) -> list[tuple[str, int]]:
    """Per spatial dim: ("keep", 0), ("all", 0), ("pool", kernel) or ("cut", out)."""
    spatial_rank(name, x, n)
    out = a["output_size"]
    out = [out] * n if isinstance(out, int) and not isinstance(out, bool) else out
    if not isinstance(out, (list, tuple)) or len(out) != n or \
            not all((o is None and n > 1) or (isinstance(o, int) and not isinstance(o, bool)) for o in out):
        fail(f"{name}: output_size must be an integer or a list of {n} integers"
             + (" (none keeps that dim, as torch's)" if n > 1 else "") + f", got {literal(a['output_size'])}")
    plan = []
    for o, size in zip(out, x.shape[2:]):
        if o is not None and o < 1:
            fail(f"{name}: output_size must be at least 1, got {o}")
        if o is None or o == size:
            plan.append(("keep", 0))
        elif o == 1:
            plan.append(("all", 0))
        elif not isinstance(size, int):
            fail(f"{name}: output size {o} over the symbolic dim {size} needs a known size (the windows depend on "
                 f"it); only 1 (a global pool) or none (keep the dim) works over a symbolic size: give the input a "
                 f"fixed size to pool to {o}")
        elif size % o == 0:
            plan.append(("pool", size // o))
        else:
            plan.append(("cut", o))
    return plan


def _out_dim(step, size):
    kind, v = step
    return size if kind == "keep" else 1 if kind == "all" else size // v if kind == "pool" else v


def _matrix(size: int, out: int) -> np.ndarray:
    """[size, out]: column i averages window i."""
    m = np.zeros((size, out), np.float64)
    for i, (lo, hi) in enumerate(windows(size, out)):
        m[lo:hi, i] = 1.0 / (hi - lo)
    return m


def _count(step, size) -> int:
    return size // step[1] if step[0] == "pool" else step[1]


def _make(kind: str, n: int):
    name = f"adaptive_{kind}pool{n}d"

    def infer(ins, a):
        x = ins[0]
        float_input(name, x)
        if 0 in x.shape[2:]:  # onnxruntime gives 0 or -inf; torch refuses (an average to 1: NaN); a fixed 0 is
            # refused before this by the elaborator (calls._refuses_empty), a run's symbolic 0 here (nonempty)
            fail(f"{name}: {shape_str(x)} is empty (an empty slice?): nothing to pool")
        plan = _plan(name, x, a, n)
        return [x.with_shape(x.shape[:2] + tuple(_out_dim(s, d) for s, d in zip(plan, x.shape[2:])))]

    def lower(e, ins, outs, c):
        t = c.in_types[0]
        plan = _plan(name, t, c.attrs, n)
        kinds = {k for k, _ in plan}
        if kinds == {"keep"}:
            e.op("Identity", ins, outputs=outs)
            return
        # onnxruntime's CPU provider has no float64 AveragePool: those take the windows below, which run
        if kinds <= {"keep", "pool"} and not (kind == "avg" and t.dtype is DType.float64):
            bfloat16_from(e, t, name, "ONNX pools take")
            k = [v if s == "pool" else 1 for s, v in plan]
            e.op("MaxPool" if kind == "max" else "AveragePool", ins, outputs=outs, kernel_shape=k, strides=k)
            return
        whole = [2 + i for i, (s, _) in enumerate(plan) if s == "all"]
        cuts = [(2 + i, _count(s, t.shape[2 + i])) for i, s in enumerate(plan) if s[0] in ("pool", "cut")]
        y = ins[0]
        if whole:
            y = reduce_op(e, "ReduceMax" if kind == "max" else "ReduceMean", y, whole, 1,
                          outputs=None if cuts else outs)
        for j, (axis, out) in enumerate(cuts):
            size, last = t.shape[axis], outs if j == len(cuts) - 1 else None
            # each window sliced and reduced: a MatMul with the averaging matrix multiplied an inf or NaN by the
            # other windows' zeros, and one made every output NaN (specials hunt)
            parts = [reduce_op(e, "ReduceMax" if kind == "max" else "ReduceMean",
                               e.op("Slice", [y, _i64(e, [lo]), _i64(e, [hi]), _i64(e, [axis])]), [axis], 1)
                     for lo, hi in windows(size, out)]
            y = e.op("Concat", parts, axis=axis, outputs=last)

    def avg_grad(b, c, ins, outs, gouts):
        """The gradient of the same average written as a mean over the whole dims and a MatMul with the
        averaging matrix per cut dim: each output's gradient spread evenly over its window."""
        t = c.in_types[0]
        plan = _plan(name, t, c.attrs, n)
        if all(s == "keep" for s, _ in plan):
            return [gouts[0]]

        def forward(r, x):
            whole = tuple(2 + i for i, (s, _) in enumerate(plan) if s == "all")
            y = r.op("mean", x, dim=whole, keepdim=True) if whole else x
            for i, s in enumerate(plan):
                if s[0] in ("pool", "cut"):
                    m = _matrix(t.shape[2 + i], _count(s, t.shape[2 + i]))
                    if 2 + i < t.rank - 2:
                        y = r.op("transpose", r.op("matmul", r.op("transpose", y, dim0=2 + i, dim1=-1),
                                                   r.const(m, like=x)), dim0=2 + i, dim1=-1)
                        continue
                    front = 2 + i == t.rank - 2
                    y = r.op("matmul", r.const(m.T, like=x), y) if front else r.op("matmul", y, r.const(m, like=x))
            return y
        return b.vjp(forward, [ins[0]], gouts)

    def max_grad(b, c, ins, outs, gouts):
        """Each window's gradient to its maximum, shared among tied maxima as amax and global_maxpool do: the
        gradient of amax over [.., out, kernel] where the windows tile the dims, else _cut_max_grad's."""
        t = c.in_types[0]
        plan = _plan(name, t, c.attrs, n)
        if all(s == "keep" for s, _ in plan):
            return [gouts[0]]
        if all(s != "cut" for s, _ in plan):
            return b.vjp(lambda r, x: _max_windows(r, x, t, plan, c.out_types[0].shape), [ins[0]], gouts)
        return [_cut_max_grad(b, ins[0], outs[0], gouts[0], t, plan)]

    register(OpDef(
        name=name, inputs=("x",), category="pool", attrs=(Attr("output_size", "any"),), infer=infer, lower=lower,
        grad=max_grad if kind == "max" else avg_grad, cost=lambda c: numel(c.in_types[0].shape),
        nonempty=spatial_axes,
        doc=f"{'Max' if kind == 'max' else 'Average'} over torch's adaptive windows [floor(i*L/out), "
            f"ceil((i+1)*L/out)): [N, C, {('L', 'H, W', 'D, H, W')[n - 1]}] -> [N, C, *output_size] "
            f"(torch.nn.Adaptive{kind.capitalize()}Pool{n}d); output_size an integer or a list of {n}"
            + (" (none keeps a dim). Over a symbolic size only 1 (a global pool) or none. " if n > 1 else
               ". Over a symbolic size only 1 (a global pool). ")
            + ("Tied maxima in a window share its gradient, as global_maxpool's (torch gives it to one of them)."
               if kind == "max" else "Gradient: spread evenly over each window."),
    ))


def _max_windows(r, x, t, plan, out_shape):
    """amax over each adaptive window of x where the windows tile every dim (each pooled dim split into
    [out, kernel]), in registry ops: the gradient rule's forward, whose amax shares tied maxima's gradient."""
    shape, red = list(t.shape[:2]), []
    for i, (s, v) in enumerate(plan):
        size = t.shape[2 + i]
        shape += [size // v, v] if s == "pool" else [size]
        if s != "keep":
            red.append(len(shape) - 1)
    y = r.op("reshape", x, shape=tuple(shape)) if len(shape) != t.rank else x
    return r.op("reshape", r.op("amax", y, dim=tuple(red), keepdim=True), shape=tuple(out_shape))


def _cut_max_grad(b, x, y, g, t, plan):
    """The gradient where windows differ in length or overlap: each pooled dim's windows gathered as
    [.., out, kernel, ..] (take; a shorter window's unused slots masked out), and each window's gradient
    shared among the elements equal to its maximum (an all -inf window among all of them, as amax shares).
    Nodes grow with the dims, not the windows (one slice per window and dim, nested, made 13^3 windows
    49,000 nodes). The take's own gradient adds each element's shares from the windows it is in."""
    gathers, valid, red, kept = [], None, [], list(t.shape[:2])  # kept: y's and g's shape in the gathered layout
    rank = t.rank + sum(s in ("pool", "cut") for s, _ in plan)
    shift = 0
    for i, (s, v) in enumerate(plan):
        axis, size = 2 + i + shift, t.shape[2 + i]
        if s == "all":
            red.append(axis)
            kept.append(1)
        if s == "keep":
            kept.append(size)
        if s not in ("pool", "cut"):
            continue
        wins = windows(size, _count((s, v), size))
        k = max(hi - lo for lo, hi in wins)
        gathers.append(([[min(lo + j, hi - 1) for j in range(k)] for lo, hi in wins], axis))
        if any(hi - lo < k for lo, hi in wins):
            mask = np.array([[lo + j < hi for j in range(k)] for lo, hi in wins])
            view = [1] * rank
            view[axis], view[axis + 1] = mask.shape
            valid = mask.reshape(view) if valid is None else valid & mask.reshape(view)
        red.append(axis + 1)
        kept += [len(wins), 1]
        shift += 1

    def gather(r, v):
        for index, axis in gathers:
            v = r.op("take", v, r.const(index, dtype=np.int64), axis=axis)
        return v
    windowed = gather(b, x)
    hit = b.op("eq", windowed, b.op("reshape", y, shape=tuple(kept)))
    if valid is not None:  # one constant for every dim's unused slots
        hit = b.op("logical_and", hit, b.const(valid, dtype=np.bool_))
    hit = b.op("cast", hit, dtype=x.type.dtype.name)
    count = b.op("maximum", b.op("sum", hit, dim=tuple(red), keepdim=True), b.const(1.0, like=hit))
    share = b.op("mul", hit, b.op("div", b.op("reshape", g, shape=tuple(kept)), count))
    return b.vjp(gather, [x], [share])[0]


for _k in ("avg", "max"):
    for _n in (1, 2, 3):
        _make(_k, _n)

