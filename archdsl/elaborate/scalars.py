"""What the evaluator's parts share: the limits it enforces, Python's operators on compile-time values,
symbolic-dim arithmetic, and how a Python error reads in a diagnostic."""

from __future__ import annotations

import math
import operator

from ..diagnostics import ArchTypeError, EvalError, LimitError, Span
from ..types import MAX_DIM, DType, Sym, difference_bounds, dim_add, dim_floordiv, dim_mul
from .values import BlockFn, BlockLayer, Builtin, LayerFn, OpFn, describe

__all__ = ["ARITH", "COMPARE", "TENSOR_OPS", "Limits", "ReturnValue", "check_elements", "check_fits", "is_callable",
           "is_int", "is_num", "py_error", "sym_arith"]


class Limits:
    steps = 5_000_000
    call_depth = 64
    dim = MAX_DIM
    elements = 2**34  # per tensor: 64 GiB of float32 (the largest tensor of a 70B LLM has ~1e9)
    nodes = 500_000  # elaboration makes ~10k nodes a second; the bench's deep MLP goes to 100k
    int_bits = 128
    formula_chars = 1000  # a symbolic size's formula: concat([h, h[:, ::2]]) in a loop doubled it every pass
    dim_name_chars = 100  # a symbolic dim's name: formulas of a few of them stay well under formula_chars
    items_per_step = 16  # building or walking this many list items or characters costs one evaluation step


def check_elements(dims, what: str, span) -> None:
    """A tensor of more than Limits.elements numbers (symbolic dims count as 1): `check` counted
    parameter([2**30, 2**30]) happily and `build` then ran out of memory with no location."""
    n = math.prod(dims)
    if n > Limits.elements:
        raise LimitError(f"{what} has {n:,} elements, over the limit of {Limits.elements:,}", span)


class ReturnValue(Exception):
    """A block's `return`, unwinding to its call."""

    def __init__(self, value, span=None):
        self.value = value
        self.span = span


ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
# `==` and `!=` are not here: on tensors they compare with none (`if mask != none`); eq() and ne() compare elements
TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "remainder", "**": "pow",
              "@": "matmul",
              "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_fits(v, dt: DType, span: Span) -> None:
    """A number becoming a constant of a tensor's dtype: out of range it would be a silent inf (with a numpy
    warning) or an overflow, so it is a diagnostic at the number instead."""
    if dt is DType.bool:
        return
    low, top = dt.limits()
    if dt.is_float:  # one that rounds to the largest fits, as in torch (3.4028235e38, numpy's float32 max)
        if math.isfinite(v) and abs(v) > top and _rounds_past(v, dt):
            raise ArchTypeError(f"the number {v} does not fit {dt} (largest {top:g})", span)
        return
    if not low <= v <= top:
        raise ArchTypeError(f"the number {v} does not fit {dt} ({low}..{top})", span)


def _rounds_past(v: float, dt: DType) -> bool:
    """Whether v rounded to dt is infinite."""
    import numpy as np
    try:
        with np.errstate(over="ignore"):
            return bool(np.isinf(np.asarray(v).astype(dt.numpy)))
    except OverflowError:  # an int past float64
        return True


def is_callable(fn) -> bool:
    return isinstance(fn, (OpFn, BlockFn, Builtin, LayerFn, BlockLayer))


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class SymbolicOperand(ArchTypeError):
    """An operation a symbolic size makes undecidable at build time (`T % 2`, `T <= 1024`): an assert on it
    is checked at the sizes a run gives instead (archdsl run, summary --dim, train), where T is a number."""


# what a build that meets such an operation outside an assert can do instead
UNDECIDED_ADVICE = ("known only when the model runs; give the input a number there, decide it from values known "
                    "when building (a block's stride or channel count), or check it in an assert, which waits for "
                    "a run's sizes")


def is_sizes(d) -> bool:
    """A product of sizes times a positive number (T, 2*B*T): a whole number of at least 0 at every run."""
    return isinstance(d, Sym) and d.coef > 0 and all(f.isidentifier() for f in d.factors)


def sizes_order(op: str, a, b) -> bool | None:
    """`T >= 0`, `T + 1 > T`, `2*T >= T`, `4 - T <= 4`: an ordering every size decides (each a whole number of
    at least 0, so a - b has a bound of the right sign); None where the sizes decide it (`T <= 64`, `S < T`)."""
    if not (isinstance(a, Sym) or isinstance(b, Sym)) or not all(
            isinstance(v, Sym) or (is_num(v) and not isinstance(v, bool) and math.isfinite(v)) for v in (a, b)):
        return None
    lo, hi = difference_bounds(a, b)
    if op in (">", "<="):
        decided = True if lo is not None and lo > 0 else False if hi is not None and hi <= 0 else None
        return decided if decided is None or op == ">" else not decided
    decided = True if lo is not None and lo >= 0 else False if hi is not None and hi < 0 else None
    return decided if decided is None or op == ">=" else not decided


def sym_arith(op, a, b, span):
    if op == "*" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_mul(a, b)
    if op in ("//", "%") and isinstance(a, (int, Sym)) and b == 0:  # T // 0 was a formula (T//0), and
        raise EvalError("integer division by zero", span)           # (T//0) * 0 decided 0
    if op == "%" and is_sizes(a) and is_int(b) and a.coef % b == 0:  # T % 1, (2*T) % 2: 0 at every size
        return 0
    if op == "//" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_floordiv(a, b)
    if op == "+" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_add(a, b)
    if op == "-" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_add(a, dim_mul(b, -1) if isinstance(b, Sym) else -b)
    raise SymbolicOperand(f"cannot apply '{op}' to {describe(a)} and {describe(b)}", span)


def py_error(err: Exception) -> str:
    if isinstance(err, ZeroDivisionError):
        return "division by zero"
    if isinstance(err, KeyError):
        return f"key {err.args[0]!r} not found"
    if isinstance(err, MemoryError):
        return "out of memory while evaluating"
    return str(err) or type(err).__name__
