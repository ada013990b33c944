"""A symbolic dim's size computed at run time, as an int64 [1] tensor, for a Reshape target whose every size is
written out: a -1 or a 0-for-copy names no size, or the wrong one, where a size is 0 at run time (an empty
batch). In order of trust:
1. a product of sizes at hand (`B*T`, `3*((T+1)//2)` where `((T+1)//2)` is a dim);
2. a multiple or a fraction of a product of the input's dims (`(-H+H*T)` is H times the input's `(T-1)`):
   the dims as they are, right also where a formula of the symbols is not (`x[:, 3:]` at T = 1 is empty,
   where `(T-3)` says -2);
3. the formula itself over sizes at hand (`(B//4)`), + - * and // by a number, floor division as Python's.
`shape_reader` reads those sizes, and products of them, from a node's input."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable

import numpy as np

from ..types import Sym, dim_exact_div, dim_mul, dim_size, dim_symbols
from .shapes import prod

__all__ = ["emit_dim", "plan_dim", "shape_reader"]

_OPS = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul"}


def _tree(text: str):
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def _multiple(d, dims: tuple) -> tuple[str, int, tuple] | None:
    """("multiple", k, indices) where d is k times the product of the dims at those indices, or ("fraction",
    k, indices) where it is that product divided by k (tier 2): k proposed at a few sizes, the match checked on
    the formulas themselves (dim_mul normalizes them), so a miss is possible and a wrong size is not."""
    names = set(dim_symbols(d))
    candidates = [i for i, q in enumerate(dims) if isinstance(q, Sym) and set(dim_symbols(q)) <= names]
    # odd, even and a third, no size 0 at all; then every residue mod 8, where a size is a whole number only at
    # some ((((W+1)//2)/2), a strided conv's width split in two, at W = 99)
    trials = [dict.fromkeys(names, n) for n in (97, 98, 1009, 99, 100, 101, 102, 103, 104)]
    want = [dim_size(d, t) for t in trials]
    for n in range(len(candidates), 0, -1):  # all of them first: the dims a -1 merges, as a flatten's
        for picked in itertools.combinations(candidates, n):
            p = dims[picked[0]]
            for i in picked[1:]:
                p = dim_mul(p, dims[i])
            k = _ratio(p, d)
            if k is not None:
                return k + (picked,)
            for a, t in zip(want, trials):
                b = dim_size(p, t)
                if not a or not b:
                    continue
                if a % b == 0 and dim_mul(p, a // b) == d:
                    return ("multiple", a // b, picked)
                if b % a == 0 and dim_mul(d, b // a) == p:
                    return ("fraction", b // a, picked)
                break  # the proposed k did not match: another size would propose the same
    return None


def _ratio(p, d) -> tuple[str, int] | None:
    """("multiple", k) where d is k times p, ("fraction", k) where it is p over k, read from the formulas
    themselves (an exact division that comes out a whole number, checked by multiplying back): found where no
    trial size makes d whole (((W+1)//2)/8 is whole only where (W+1)//2 is a multiple of 8)."""
    for kind, q, r in (("multiple", d, p), ("fraction", p, d)):
        k = dim_exact_div(q, r)
        if isinstance(k, int) and k > 0 and dim_mul(r, k) == q:
            return kind, k
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


def plan_dim(d, dims: tuple, known: Callable[[Sym], bool]):
    """How emit_dim computes d from the input's `dims` and the sizes `known`: ("product", coef, factors) |
    ("multiple" or "fraction", k, indices) | ("formula", coef, factors); None where it cannot (a min, a
    floor or an exact / of a shape rule, a division by a size, a size no value has)."""
    if isinstance(d, int):
        return ("product", d, [])
    if all(known(Sym.of(f)) for f in d.factors):
        return ("product", d.coef, list(d.factors))
    if (m := _multiple(d, dims)) is not None:
        return m
    if all(known(Sym.of(f)) or f.startswith("(") and (t := _tree(f)) is not None and _formula_ok(t, known)
           for f in d.factors):
        return ("formula", d.coef, list(d.factors))
    return None


def emit_dim(e, plan, known: Callable[[Sym], bool], read: Callable, product: Callable | None = None) -> str:
    """A planned dim's size as an int64 [1] tensor (plan_dim's); `read` gives a known symbol's size, or the
    input's dim at an index; `product(dims, coef, dividing)`, the product of several such (indices or symbols)
    in one piece where it can (a run of the input's dims: one Shape slice and a ReduceProd instead of a read and
    a Mul each) with the coefficient left to apply, else None."""
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

    kind, coef, parts = plan
    run = None
    if product is not None and kind != "formula" and len(parts) > 1:
        got = product(list(parts) if kind != "product" else [Sym.of(p) for p in parts], coef, kind == "fraction")
        if got is not None:
            run, coef = got
    size = i64(coef) if coef != 1 and kind != "fraction" or not parts else None
    for p in [] if run is not None else parts:
        if kind in ("multiple", "fraction"):
            v = read(p)
        elif kind == "product" or known(Sym.of(p)):
            v = read(Sym.of(p))
        else:  # below 0 is a size of 0 (where the symbols' formula undercounts: tier 2 did not apply)
            v = e.op("Max", [value(_tree(p)), i64(0)])
        size = v if size is None else e.op("Mul", [size, v])
    if run is not None:
        size = run if size is None else e.op("Mul", [size, run])
    return e.op("Div", [size, i64(coef)]) if kind == "fraction" else size  # exact: the dims are k times it


def shape_reader(e, x_name: str, x):
    """(whether a symbol's size can be read, reading it, the product of a run of the input's dims): from the
    input's shape, sliced (Shape's start and end: no Gather), or from an earlier value's."""
    def known(s: Sym) -> bool:
        return s in x.shape or s in e.dim_sources

    def at(s) -> int | None:
        return s if isinstance(s, int) else x.shape.index(s) if s in x.shape else None

    def read(s) -> str:  # a symbolic size, or the input's dim at an index
        i = at(s)
        return e.dim(s) if i is None else e.op("Shape", [x_name], start=i, end=i + 1)

    def product(dims: list, coef: int, dividing: bool) -> tuple[str, int] | None:
        """coef (times, or dividing) the product of input dims (indices or symbols) as one slice's ReduceProd,
        where they span a run of the input's dims; fixed dims between them are taken out of coef (3*T*W of
        [B, T, 3, W] is the slice T..W). None where they do not (the caller multiplies them one by one)."""
        idx = sorted(at(d) for d in dims) if all(at(d) is not None for d in dims) else []
        if not idx and not dividing and all(isinstance(d, Sym) for d in dims):
            return _covering_run(dims, coef)
        if len(idx) < 2 or len(set(idx)) < len(idx):
            return None
        gaps = [x.shape[i] for i in range(idx[0], idx[-1] + 1) if i not in idx]
        if not all(isinstance(g, int) and g > 0 for g in gaps):
            return None
        g = int(np.prod(gaps, dtype=np.int64))
        if not dividing and coef % g:
            return None
        run = e.op("ReduceProd", [e.op("Shape", [x_name], start=idx[0], end=idx[-1] + 1)], keepdims=1)
        return run, coef * g if dividing else coef // g

    def _covering_run(dims: list, coef: int) -> tuple[str, int] | None:
        """Symbols none of which is one input dim, whose product a run of them is (or one), up to a number: B*H*W
        of [B, H*W, T] (a flatten's dim) is the slice 0..1, where reading B, H and W apart took three Shapes and
        two Muls (mutpasses2 hunt: -O2 a node bigger than -O0)."""
        want = prod(dims)
        for i in range(x.rank):
            for j in range(i, x.rank):
                part = x.shape[i:j + 1]
                fixed = int(np.prod([d for d in part if isinstance(d, int)], dtype=np.int64))
                syms = prod([d for d in part if not isinstance(d, int)])
                k = dim_exact_div(syms, want) if isinstance(syms, Sym) else None  # a number inside a dim: the
                if not isinstance(k, int) or k <= 0 or dim_mul(want, k) != syms:  # run [2*C, B] of 2*B*C (review97)
                    continue
                fixed *= k
                if fixed <= 0 or coef % fixed:
                    continue
                run = e.op("Shape", [x_name], start=i, end=j + 1)
                return run if i == j else e.op("ReduceProd", [run], keepdims=1), coef // fixed
        return None
    return known, read, product
