"""remove_noops: nodes that return their input unchanged go; their uses read the input.

Rules: 1. dropout, drop_path and detach in an inference graph (a train step keeps detach: its gradient stops
there).
2. reshape, flatten, squeeze, unsqueeze, expand whose output type equals the input's (no element moves).
3. permute by the identity permutation; transpose of a dim with itself; cast to the same dtype; a concat
of one tensor; an index `x[...]`/`x[:, :]` made only of full slices.
4. x * 1, 1 * x, x + 0, 0 + x, x - 0, x / 1, x ** 1 where the other operand is a constant filled with that
value and the result has x's type (no broadcasting grows it, no dtype change). For floats the zero must be
-0.0 in a sum and +0.0 in a difference: x + 0.0 turns x = -0.0 into +0.0."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from ._rewrite import Rewriter
from .manager import PassContext, register_pass

_SAME_TYPE_IDENTITY = {"reshape", "flatten", "squeeze", "unsqueeze", "expand"}
_NEUTRAL = {"mul": (1.0, (0, 1)), "add": (0.0, (0, 1)), "sub": (0.0, (0,)), "div": (1.0, (0,)), "pow": (1.0, (0,))}


def _const_all(v: Value, value: float, op: str = "") -> bool:
    """v is a constant whose every element is `value`. For float add and sub the zero's sign matters:
    -0.0 + (+0.0) is +0.0, so only x + (-0.0) and x - (+0.0) give x back for every x."""
    if v.kind != "const" or v.data.size == 0 or not bool(np.all(v.data == value)):
        return False
    if op in ("add", "sub") and v.type.dtype.is_float:
        return bool(np.all(np.signbit(v.data.astype(np.float32)) == (op == "add")))
    return True


def _identity_of(node: Node, ctx: PassContext) -> Value | None:
    """The input this node passes through unchanged, or None."""
    op, ins = node.op, node.inputs
    out = node.outputs[0] if len(node.outputs) == 1 else None
    if out is None:
        return None
    if op in ("dropout", "drop_path", "detach"):
        return ins[0] if ctx.inference else None
    if op in _SAME_TYPE_IDENTITY:
        return ins[0] if out.type == ins[0].type else None
    if op == "permute":
        r = ins[0].type.rank
        return ins[0] if [d % r for d in node.attrs["dims"]] == list(range(r)) else None
    if op == "transpose":
        r = ins[0].type.rank
        return ins[0] if r and node.attrs["dim0"] % r == node.attrs["dim1"] % r else None
    if op == "cast":
        return ins[0] if out.type == ins[0].type else None
    if op == "concat":
        return ins[0] if len(ins) == 1 else None
    if op == "getitem":
        full = all(e[0] == "e" or (e[0] == "s" and e[1] is None and e[2] is None and e[3] in (None, 1))
                   for e in node.attrs["index"])
        return ins[0] if full and out.type == ins[0].type else None
    if op in _NEUTRAL and len(ins) == 2:
        value, sides = _NEUTRAL[op]
        for keep in sides:
            other = ins[1 - keep]
            if out.type == ins[keep].type and _const_all(other, value, op):
                return ins[keep]
    return None


@register_pass("remove_noops", level=1,
               doc="drop identity reshapes/transposes/casts, inference dropout/detach, x*1, x+0 "
                   "(float: x + -0.0, x - 0.0)")
def remove_noops(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    for node in g.nodes:
        src = _identity_of(node, ctx)
        if src is not None:
            rw.replace(node.outputs[0], src)
            rw.erase(node)
    return rw.commit()
