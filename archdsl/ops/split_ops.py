"""Ops that cut a tensor into a tuple of pieces: split, chunk, unbind; torch semantics. A symbolic dim is cut
only where the pieces' count and sizes hold at every size."""

from __future__ import annotations

import numpy as np

from ..types import Sym, dim_exact_div, dim_floordiv, integer_terms, is_formula
from ._common import shape_str
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis


def _split_sizes(x, a):
    ax = norm_axis(a["axis"], x.rank)
    n = x.shape[ax]
    sizes = a["sizes"]
    if len(sizes) == 1:
        if not isinstance(n, int):
            fail(f"split: the split dim must be a known size, got {n}")
        step = sizes[0]
        if step <= 0:
            fail("split: size must be positive")
        sizes = tuple(min(step, n - i) for i in range(0, n, step))
    if isinstance(n, int) and sum(sizes) != n:
        fail(f"split: sizes {list(sizes)} add up to {sum(sizes)}, not {n} (dim {a['axis']} of {shape_str(x)})")
    if not isinstance(n, int):  # built, it ran at that one size only (porting27 hunt)
        fail(f"split: sizes {list(sizes)} over dim {a['axis']} of {shape_str(x)}, the symbolic size {n}, fix it at "
             f"{sum(sizes)}: give the dim that size in the input's shape, or, for parts of a run-time length, slice "
             f"({_slices(ax, sizes[0])})")
    return ax, sizes


def _slices(ax: int, k: int) -> str:
    """The two slices that cut dim ax at k, whatever its size: x[:, :k] and x[:, k:] for dim 1."""
    return f"x[{':, ' * ax}:{k}] and x[{':, ' * ax}{k}:]"


def _split_infer(ins, a):
    x = ins[0]
    ax, sizes = _split_sizes(x, a)
    return [x.with_shape(x.shape[:ax] + (s,) + x.shape[ax + 1:]) for s in sizes]


def _split_lower(e, ins, outs, c):
    ax, sizes = _split_sizes(c.in_types[0], c.attrs)
    e.op("Split", [ins[0], e.const(np.array(sizes, dtype=np.int64))], outputs=outs, axis=ax)


def _split_grad(b, c, ins, outs, gouts):
    """The pieces' gradients joined again; a piece nobody differentiated contributes zeros."""
    parts = [g if g is not None else b.zeros_like(o) for g, o in zip(gouts, outs)]
    axis = c.attrs["axis" if "axis" in c.attrs else "dim"]
    return [b.op("concat", *parts, axis=axis) if len(parts) > 1 else parts[0]]


register(OpDef(
    name="split", inputs=("x",), category="shape",
    attrs=(Attr("sizes", "ints", symbolic="or, for parts of a run-time length, slice: split(h, [1, T], axis=1) is "
                                           "h[:, :1] and h[:, 1:]; k equal parts of a run-time size (torch's "
                                           "x.split(B, 0) of a [k*B, ...]) are chunk(x, k, dim=0)"),
           Attr("axis", "int", 1)),
    infer=_split_infer, lower=_split_lower, cost=lambda c: 0, grad=_split_grad, tuple_out=True,
    doc="Split along axis into chunks of one size, or into the given sizes (torch.split); returns a tuple. The "
        "split dim must be a known size: slices cut a symbolic one (x[:, :3] and x[:, 3:]).",
))


MAX_PIECES = 1 << 16  # outputs of one chunk or unbind


def _chunk_sizes(x, a) -> tuple[int, list]:
    """(axis, the chunks' sizes) by torch.chunk's rule: ceil(n / chunks) each, the last smaller, and fewer
    chunks than asked where that step covers n sooner (5 into 4: 2, 2, 1; 6 into 4: 2, 2, 2); a dim of 0 gives
    `chunks` empty ones. A symbolic size is chunked only where `chunks` divides it (3*E into 3: E each)."""
    if x.rank == 0:
        fail("chunk: needs a tensor of at least 1 dim, got a 0-d tensor")
    k = a["chunks"]
    if not 1 <= k <= MAX_PIECES:  # one output each: a million of them took seconds, a billion all the memory
        fail(f"chunk: chunks must be 1 to {MAX_PIECES}, got {k}")
    ax = norm_axis(a["dim"], x.rank, "chunk: dim")
    n = x.shape[ax]
    if isinstance(n, int):
        if n == 0:
            return ax, [0] * k
        step = -(-n // k)
        return ax, [min(step, n - i) for i in range(0, n, step)]
    if k == 1:  # the whole dim, whatever it is ((T+1) was refused as "a multiple of 1": mutnew3 hunt)
        return ax, [n]
    part = _equal_part(n, k)
    if part is not None:
        return ax, [part] * k
    base = n.factors[0] if isinstance(n, Sym) and not is_formula(n) else "T"
    fail(f"chunk: dim {a['dim']} of {shape_str(x)} is the symbolic size {n}; how many chunks torch.chunk gives "
         f"depends on it, so it must be a known size or one {k} divides at every size ({k}*{base}, {k}*{base}+{k}); "
         f"slices cut a symbolic dim into parts of given sizes ({_slices(ax, 3)})")


def _equal_part(n, k: int):
    """n / k where k divides n at every size, else None: k times a size (2*T, 2*((T+1)//2), a ceil-mode pool's
    length doubled) or a sum whose every coefficient k divides (2*T+2, a pad's; 2*T-4): torch.chunk then gives
    k equal pieces, or k empty ones at 0 (review117: these were refused)."""
    if isinstance(n, Sym) and n.coef % k == 0:
        return dim_floordiv(n, k)
    terms = integer_terms(n)
    if terms is not None and terms[1] == 1 and all(c % k == 0 for c in terms[0].values()):
        return dim_exact_div(n, k)
    return None


def _chunk_infer(ins, a):
    x = ins[0]
    ax, sizes = _chunk_sizes(x, a)
    return [x.with_shape(x.shape[:ax] + (s,) + x.shape[ax + 1:]) for s in sizes]


def _chunk_lower(e, ins, outs, c):
    """ONNX Split: the known sizes as its `split` input; equal chunks of a symbolic dim by the output count
    (num_outputs from opset 18)."""
    ax, sizes = _chunk_sizes(c.in_types[0], c.attrs)
    if all(isinstance(s, int) for s in sizes):
        e.op("Split", [ins[0], e.const(np.array(sizes, dtype=np.int64))], outputs=outs, axis=ax)
    else:
        e.op("Split", [ins[0]], outputs=outs, axis=ax, num_outputs=len(sizes) if e.opset >= 18 else None)


register(OpDef(
    name="chunk", inputs=("x",), category="shape", attrs=(Attr("chunks", "int"), Attr("dim", "int", 0)),
    infer=_chunk_infer, lower=_chunk_lower, cost=lambda c: 0, grad=_split_grad, tuple_out=True,
    doc="torch.chunk: a tuple of up to `chunks` pieces along dim, each ceil(size / chunks), the last smaller "
        "(5 into 4 gives 2, 2, 1: fewer than asked), so `q, k, v = chunk(qkv, 3, dim=-1)`. The dim must be a "
        "known size, or a symbolic one that chunks divides at every size (3*E or 3*T+3 into 3). The gradient: "
        "the pieces' gradients joined again.",
))


def _unbind_size(x, a) -> tuple[int, int]:
    if x.rank == 0:
        fail("unbind: needs a tensor of at least 1 dim, got a 0-d tensor")
    ax = norm_axis(a["dim"], x.rank, "unbind: dim")
    n = x.shape[ax]
    if not isinstance(n, int):
        fail(f"unbind: dim {a['dim']} of {shape_str(x)} is the symbolic size {n}; unbind gives one tensor per "
             "index, so it must be a known size")
    if n == 0:
        fail(f"unbind: dim {a['dim']} of {shape_str(x)} is 0; torch gives an empty tuple, no tensor to use")
    if n > MAX_PIECES:
        fail(f"unbind: dim {a['dim']} of {shape_str(x)} would give {n} tensors, more than {MAX_PIECES}")
    return ax, n


def _unbind_infer(ins, a):
    x = ins[0]
    ax, n = _unbind_size(x, a)
    return [x.with_shape(x.shape[:ax] + x.shape[ax + 1:])] * n


def _unbind_lower(e, ins, outs, c):
    """ONNX Split into pieces of 1, each squeezed."""
    ax, n = _unbind_size(c.in_types[0], c.attrs)
    axes = e.const(np.array([ax], dtype=np.int64))
    pieces = e.op("Split", [ins[0], e.const(np.ones(n, dtype=np.int64))], n_out=n, axis=ax) if n > 1 else ins[0]
    for piece, out in zip(pieces if n > 1 else [pieces], outs):
        e.op("Squeeze", [piece, axes], outputs=[out])


def _unbind_grad(b, c, ins, outs, gouts):
    """The slices' gradients stacked again; a slice nobody differentiated contributes zeros."""
    parts = [g if g is not None else b.zeros_like(o) for g, o in zip(gouts, outs)]
    return [b.op("stack", *parts, dim=norm_axis(c.attrs["dim"], c.in_types[0].rank))]


register(OpDef(
    name="unbind", inputs=("x",), category="shape", attrs=(Attr("dim", "int", 0),),
    infer=_unbind_infer, lower=_unbind_lower, cost=lambda c: 0, grad=_unbind_grad, tuple_out=True,
    doc="torch.unbind: a tuple of the size(dim) slices along dim, that dim removed (`a, b = unbind(pair, 1)`); "
        "the dim must be a known size. The gradient: the slices' gradients stacked.",
))
