"""A symbolic dim's size computed at run time, as an int64 [1] tensor: `2*B`, `(T-1)*H` (written
`(-H+H*T)`), `(B//4)`, from sizes a lowering can read (the input's shape, an earlier value's). A Reshape
target whose every size is so written needs no -1 and no 0-for-copy, which name no size or the wrong one
where a size is 0 at run time (an empty batch)."""

from __future__ import annotations

import ast
from collections.abc import Callable

import numpy as np

from ..types import Sym

__all__ = ["emit_dim", "readable"]

_OPS = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.FloorDiv: "Div"}  # Div truncates: a size's
# numerator is never negative, where truncation and floor agree


def _tree(text: str):
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def readable(d, known: Callable[[Sym], bool]) -> bool:
    """Whether emit_dim can compute d: every symbol in it (or the formula factor itself) `known`, and only
    + - * // and numbers in its formulas (the shape rules' min and floor, and exact /, are left out)."""
    def ok(n) -> bool:
        if isinstance(n, ast.Constant):
            return type(n.value) is int
        if isinstance(n, ast.Name):
            return known(Sym.of(n.id))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return ok(n.operand)
        return isinstance(n, ast.BinOp) and type(n.op) in _OPS and ok(n.left) and ok(n.right)
    if isinstance(d, int):
        return True
    return all(known(Sym.of(f)) or f.startswith("(") and (t := _tree(f)) is not None and ok(t) for f in d.factors)


def emit_dim(e, d, known: Callable[[Sym], bool], read: Callable[[Sym], str]) -> str:
    """d's size as an int64 [1] tensor (readable(d, known) must hold); `read` gives a known symbol's size."""
    def i64(v: int) -> str:
        return e.const(np.array([v], dtype=np.int64))

    def value(n) -> str:
        if isinstance(n, ast.Constant):
            return i64(n.value)
        if isinstance(n, ast.Name):
            return read(Sym.of(n.id))
        if isinstance(n, ast.UnaryOp):
            return e.op("Neg", [value(n.operand)])
        return e.op(_OPS[type(n.op)], [value(n.left), value(n.right)])
    if isinstance(d, int):
        return i64(d)
    size = i64(d.coef) if d.coef != 1 else None
    for f in d.factors:  # a formula below 0 is a size of 0: x[:, 1:] at T = 0 is (T-1), and empty
        v = read(Sym.of(f)) if known(Sym.of(f)) else e.op("Max", [value(_tree(f)), i64(0)])
        size = v if size is None else e.op("Mul", [size, v])
    return size
