"""fold_constants: compute at compile time what depends only on constants (or only on static shapes).

Rules: 1. a node whose inputs are all constants (or folded values) is folded.
2. an input that only lends its shape (`positions(x)`, `expand(c, like=x)`) counts as constant when that
shape is static: position ids of a fixed-length input become a constant (positions reads one dim: T of
[B, T] fixed is enough, the result's static shape says so).
3. only values read by unfolded nodes (or graph outputs) become constants; a result much bigger than the
constants it comes from (an expand to a large shape), or grown past 2**24 elements, is left to run time,
keeping the model (and the build's memory) small.
One forward walk picks the nodes; one onnxruntime session evaluates them all (their own lowerings)."""

from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Value
from ..types import DType, is_static
from ._evaluate import evaluate
from ._rewrite import Rewriter
from .manager import PassContext, register_pass

# op -> inputs whose values are never read, only their shapes
SHAPE_ONLY = {"positions": (0,), "expand": (1,), "dim_size": (0,)}
MAX_GROWTH = 1 << 16               # a folded value may exceed its inputs' size by at most this many elements
MAX_GROWN = 1 << 24                # nor, larger than every input, hold more elements than this (repeated
                                   # concat([c, c]) doubled a constant to gigabytes while building)


def _size(v: Value) -> int:
    return math.prod(v.type.shape)


def lends_shape_only(node, i: int) -> bool:
    """Rule 2: node's input i is read for its static shape only (positions reads one dim: its output's static
    shape says that dim is fixed)."""
    v = node.inputs[i]
    return i in SHAPE_ONLY.get(node.op, ()) and v.type.dtype.np is not None and (
        is_static(v.type.shape) or node.op == "positions")


def stand_in(v: Value) -> np.ndarray:
    """An array of v's shape (a symbolic dim as 1) for an input read for its shape only."""
    return np.zeros([d if isinstance(d, int) else 1 for d in v.type.shape], dtype=v.type.dtype.np)


@register_pass("fold_constants", level=1, doc="evaluate nodes whose inputs are constants (or only static shapes)")
def fold_constants(g: Graph, ctx: PassContext) -> bool:
    known: set[int] = {id(c) for c in g.consts}
    budget: dict[int, int] = {id(c): c.data.size for c in g.consts}  # elements of constants a value came from
    picked = []
    for node in g.nodes:
        if node.opdef.random or not node.outputs or not all(
                is_static(o.type.shape) and o.type.dtype.np is not None for o in node.outputs):
            continue  # randn_like(zeros) is not a constant
        ok, src, read, largest = True, 0, set(), 0
        for i, v in enumerate(node.inputs):
            if lends_shape_only(node, i):
                continue
            if id(v) not in known:
                ok = False
                break
            if id(v) not in read:  # concat([c, c]) reads c's elements once
                read.add(id(v))
                src += budget[id(v)]
                largest = max(largest, _size(v))
        if not ok or any(_size(o) > src + MAX_GROWTH or _size(o) > max(largest, MAX_GROWN) for o in node.outputs):
            continue
        picked.append(node)
        for o in node.outputs:
            known.add(id(o))
            budget[id(o)] = max(src, _size(o))
    if not picked:
        return False
    rw = Rewriter(g)
    try:
        wanted, arrays = _evaluated(picked, rw, ctx)
    except Exception:  # noqa: BLE001 - onnxruntime has no CPU kernel for some float64 ops (Erf): fold the rest
        picked = _without_wide_floats(picked)
        if not picked:
            return False
        try:
            wanted, arrays = _evaluated(picked, rw, ctx)
        except Exception:  # noqa: BLE001 - an optimization: the model is the same unfolded
            return False
    for v, arr in zip(wanted, arrays):
        c = g.add_const(np.asarray(arr, dtype=v.type.dtype.np).reshape(v.type.shape), v.span)
        rw.replace(v, c)
    for node in reversed(picked):
        rw.erase(node)
    rw.commit()
    g.prune_params()
    return True


def _evaluated(picked: list, rw: Rewriter, ctx: PassContext) -> tuple[list[Value], list]:
    """The values of the picked nodes that something else reads, and their arrays (one session)."""
    wanted = []
    in_pick = {id(n) for n in picked}
    for node in picked:
        for o in node.outputs:
            if rw.is_output(o) or any(id(u) not in in_pick for u in o.uses):
                wanted.append(o)
    produced = {id(o) for n in picked for o in n.outputs}
    feeds: dict[int, np.ndarray] = {}
    for n in picked:
        for v in n.inputs:
            if id(v) not in produced and id(v) not in feeds:
                feeds[id(v)] = v.data if v.kind == "const" else stand_in(v)
    return wanted, (evaluate(picked, wanted, feeds, ctx.opset) if wanted else [])


def _without_wide_floats(picked: list) -> list:
    """The picked nodes but those touching float64 (onnxruntime's CPU lacks several of its kernels: gelu, elu,
    conv ... of a float64 constant failed the build) and those that read their results."""
    dropped: set[int] = set()
    kept = []
    for node in picked:
        values = [*node.inputs, *node.outputs]
        if any(v.type.dtype is DType.float64 for v in values) or any(id(v) in dropped for v in node.inputs):
            dropped.update(id(o) for o in node.outputs)
            continue
        kept.append(node)
    return kept
