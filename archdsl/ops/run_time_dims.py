"""A symbolic dim's size computed at run time, as an int64 [1] tensor, for a Reshape target whose every size is
written out: a -1 or a 0-for-copy names no size, or the wrong one, where a size is 0 at run time (an empty
batch). In order of trust:
1. a product of sizes at hand (`B*T`, `3*((T+1)//2)` where `((T+1)//2)` is a dim);
2. a multiple of a product of the input's dims (`(-H+H*T)` is H times the input's `(T-1)`): the dims as
   they are, right also where a formula of the symbols is not (`x[:, 3:]` at T = 1 is empty, where
   `(T-3)` says -2);
3. the formula itself over sizes at hand (`(B//4)`), + - * and // by a number, floor division as Python's."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable

import numpy as np

from ..types import Sym, dim_mul, dim_size, dim_symbols

__all__ = ["emit_dim", "readable"]

_OPS = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul"}


def _tree(text: str):
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def _multiple(d, dims: tuple) -> tuple[int, tuple] | None:
    """(k, indices) where d is k times the product of the dims at those indices (tier 2)."""
    symbolic = [i for i, q in enumerate(dims) if isinstance(q, Sym)]
    for n in range(1, min(len(symbolic), 4) + 1):
        for picked in itertools.combinations(symbolic, n):
            p = dims[picked[0]]
            for i in picked[1:]:
                p = dim_mul(p, dims[i])
            sizes = dict.fromkeys(dim_symbols(d) + dim_symbols(p), 97)  # sizes no formula here makes 0
            a, b = dim_size(d, sizes), dim_size(p, sizes)
            if a and b and a % b == 0 and dim_mul(p, a // b) == d:
                return a // b, picked
    return None


def _formula_ok(n, known: Callable[[Sym], bool]) -> bool:
    if isinstance(n, ast.Constant):
        return type(n.value) is int
    if isinstance(n, ast.Name):
        return known(Sym.of(n.id))
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        return _formula_ok(n.operand, known)
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.FloorDiv):  # by a number: a size never divides
        return isinstance(n.right, ast.Constant) and type(n.right.value) is int and n.right.value > 0 \
            and _formula_ok(n.left, known)
    return isinstance(n, ast.BinOp) and type(n.op) in _OPS and _formula_ok(n.left, known) and \
        _formula_ok(n.right, known)


def _plan(d, dims: tuple, known: Callable[[Sym], bool]):
    """("product", coef, factors) | ("multiple", k, indices) | ("formula", coef, factors) | None."""
    if isinstance(d, int):
        return ("product", d, [])
    if all(known(Sym.of(f)) for f in d.factors):
        return ("product", d.coef, list(d.factors))
    if (m := _multiple(d, dims)) is not None:
        return ("multiple", *m)
    if all(known(Sym.of(f)) or f.startswith("(") and (t := _tree(f)) is not None and _formula_ok(t, known)
           for f in d.factors):
        return ("formula", d.coef, list(d.factors))
    return None


def readable(d, dims: tuple, known: Callable[[Sym], bool]) -> bool:
    """Whether emit_dim can compute d from the input's `dims` and the sizes `known` (min, floor and exact /
    of the shape rules, a division by a size, or a size no value has: it cannot)."""
    return _plan(d, dims, known) is not None


def emit_dim(e, d, dims: tuple, known: Callable[[Sym], bool], read: Callable) -> str:
    """d's size as an int64 [1] tensor (readable must hold); `read` gives a known symbol's size, or the
    input's dim at an index."""
    def i64(v: int) -> str:
        return e.const(np.array([v], dtype=np.int64))

    def value(n) -> str:
        if isinstance(n, ast.Constant):
            return i64(n.value)
        if isinstance(n, ast.Name):
            return read(Sym.of(n.id))
        if isinstance(n, ast.UnaryOp):
            return e.op("Neg", [value(n.operand)])
        a, b = value(n.left), value(n.right)
        if isinstance(n.op, ast.FloorDiv):  # Div truncates toward 0; floor is (a - a mod b) / b, Mod taking
            return e.op("Div", [e.op("Sub", [a, e.op("Mod", [a, b], fmod=0)]), b])  # the divisor's sign
        return e.op(_OPS[type(n.op)], [a, b])

    kind, coef, parts = _plan(d, dims, known)
    size = i64(coef) if coef != 1 or not parts else None
    for p in parts:
        if kind == "multiple":
            v = read(p)
        elif kind == "product" or known(Sym.of(p)):
            v = read(Sym.of(p))
        else:  # below 0 is a size of 0 (where the symbols' formula undercounts: tier 2 did not apply)
            v = e.op("Max", [value(_tree(p)), i64(0)])
        size = v if size is None else e.op("Mul", [size, v])
    return size
