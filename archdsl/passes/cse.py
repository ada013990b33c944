"""cse: common-subexpression elimination.

Rules: 1. constants with equal dtype, shape and bytes become one constant.
2. two nodes with the same op, the same input values (by identity) and equal attributes compute the
same thing (every IR op but the random ones, OpDef.random, is deterministic at inference): the later one's uses read the
earlier one's outputs, and the later node goes. One forward walk with a hash table: linear time."""

from __future__ import annotations

import math

from ..ir import Graph
from ..types import Sym
from ._rewrite import Rewriter
from .manager import PassContext, register_pass

_IMPURE = {"dropout", "drop_path"}  # random in a training graph


def freeze(v):
    """A hashable, type-exact key for an attribute value (1 and 1.0 and True differ)."""
    if isinstance(v, (list, tuple)):
        return (type(v).__name__,) + tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return ("dict",) + tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, float) and math.isnan(v):
        return ("nan",)
    if isinstance(v, float) and v == 0.0:  # 0.0 == -0.0, but 1 / pad(x, value=-0.0) is -inf where 0.0 gives inf
        return ("float", v, math.copysign(1.0, v))
    if isinstance(v, Sym):
        return ("sym", str(v))
    return (type(v).__name__, v)


@register_pass("cse", level=1, doc="merge equal constants and nodes computing the same value")
def cse(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    seen_c: dict = {}
    for c in g.consts:
        key = (c.type.dtype, c.data.shape, c.data.dtype.str, c.data.tobytes())
        first = seen_c.setdefault(key, c)
        if first is not c:
            rw.replace(c, first)
    seen: dict = {}
    for node in g.nodes:
        if node.opdef.random or node.op in _IMPURE and not ctx.inference:
            continue
        key = (node.op, tuple(id(v) for v in node.inputs), freeze(node.attrs))
        first = seen.setdefault(key, node)
        if first is node:
            continue
        for a, b in zip(node.outputs, first.outputs):
            rw.replace(a, b)
        rw.erase(node)
    changed = rw.commit()
    if changed:
        g.prune_params()
    return changed
