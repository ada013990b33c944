"""Pure compile-time functions (`ceil`, `range`, `channels(x)`, ...). Math ones also take tensors,
in which case they become the op of the same name."""

from __future__ import annotations

import math
import re

from ..diagnostics import ArchTypeError, LimitError
from ..types import Sym, is_symbol
from .bounded import MAX_LIST, to_str
from .scalars import UNDECIDED_ADVICE, SymbolicOperand, is_int
from .values import Builtin, Tensor, describe

__all__ = ["BUILTINS", "MAX_LIST", "UNROLLED"]

MAX_NDIGITS = 1000


def _num(name, v):
    if isinstance(v, Sym):  # sqrt(C): RAFT's scaling (superres hunt); in an assert, checked at a run's sizes
        advice = f"; as a tensor it is read then: {name}({_as_tensor(v)})" if name in _ONE_NUMBER_MATH else \
            f"; as a tensor it is read then: {_as_tensor(v)}" if name == "float" else \
            f"; a size is a whole number already: {v} itself" if name in ("int", "ceil", "floor", "round", "trunc") \
            else ""
        raise SymbolicOperand(f"{name}() expects a number, got {describe(v)}, a size known only at run time"
                              f"{advice}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        cast = {"int": "int64", "float": "float32"}.get(name) if isinstance(v, Tensor) else None
        raise ArchTypeError(f"{name}() expects a number, got {describe(v)}" + (  # torch's int(t) of a 0-d t
            f'; a tensor converts with cast(x, "{cast}")' if cast else ""))
    return v


def _as_tensor(v) -> str:
    """How a size is written as a float tensor read at run time: tensor(W-1, dtype="float32")."""
    text = str(v)
    inner = re.fullmatch(r"\(([^()]*)\)", text)
    return f'tensor({inner[1] if inner else text}, dtype="float32")'


def _integral(name, v, f):
    """int(), ceil(), floor(), round() of a number; inf and nan have no integer (Python's own words were
    'cannot convert float infinity to integer')."""
    x = _num(name, v)
    if isinstance(x, float) and not math.isfinite(x):
        raise ArchTypeError(f"{name}() of {x}: not a finite number, so no integer")
    return f(x)


def _tensor(name, v) -> Tensor:
    if not isinstance(v, Tensor):
        raise ArchTypeError(f"{name}() expects a tensor, got {describe(v)}")
    v.value.shape_read = True
    return v


UNROLLED = "loops unroll at compile time, so the count must be known when the model is built"


def _range(*a):
    for x in a:
        if isinstance(x, Sym):  # range(x.shape[1]) over a symbolic T
            fix = (f"a fixed size in the input's shape, or `param {x} = none` in the file and -D {x}=5"
                   if is_symbol(x) else "fixed sizes in the input's shape, or params set with -D")
            raise ArchTypeError(f"range() of the symbolic dim {x}, a size known only at run time: {UNROLLED} "
                                f"({fix})")
        if x is None:  # range(T) of `param T = none`
            raise ArchTypeError(f"range() of none (a param left at none, as `param NAME = none`?): {UNROLLED} "
                                "(-D NAME=5 sets such a param)")
        if isinstance(x, float):
            raise ArchTypeError(f"range() takes integers, got the float {x} (int({x}), or // for a whole "
                                "quotient)")
    if not 1 <= len(a) <= 3 or any(isinstance(x, bool) or not isinstance(x, int) for x in a):
        raise ArchTypeError("range() expects one to three integers")
    r = range(*a)
    try:
        n = len(r)
    except OverflowError:  # more items than a C ssize_t counts
        raise LimitError(f"range of more than 2**63 items is over the limit of {MAX_LIST}") from None
    if n > MAX_LIST:
        raise LimitError(f"range of {n} items is over the limit of {MAX_LIST}")
    return list(r)


def _len(v):
    if isinstance(v, Tensor):
        if v.type.rank == 0:
            raise ArchTypeError(f"len() of a scalar tensor ({v.type}): it has no dim 0")
        return v.shape[0]
    if not isinstance(v, (list, tuple, dict, str)):
        raise ArchTypeError(f"len() expects a list, tuple, dict or string, got {describe(v)}")
    return len(v)


def _seq(name, v):
    if not isinstance(v, (list, tuple)):
        raise ArchTypeError(f"{name}() expects a list, got {describe(v)}")
    return v


def _minmax(name, f):
    def g(*a, **kw):
        items = a[0] if len(a) == 1 and isinstance(a[0], (list, tuple)) else a
        if not items:
            raise ArchTypeError(f"{name}() of nothing")
        for x in items:
            if isinstance(x, Tensor):  # the elementwise forms are ops of their own (torch.minimum/maximum)
                a_ = "amax" if name == "max" else "amin"
                whole = f"{a_}(x) for a tensor's {'largest' if name == 'max' else 'smallest'} element, or " \
                        f"{a_}(x, dim) and arg{name}(x, dim) for the values and indices torch.{name}(x, dim) gives " \
                        f"(the values alone: torch's {name}(x, dim)[0] is {a_}(x, dim), no [0])"
                raise ArchTypeError(f"{name}() takes numbers, got {describe(x)}; for tensors use {name}imum(a, b) "
                                    f"elementwise, {whole}")
        sym = next((x for x in items if isinstance(x, Sym)), None)
        if sym is not None:  # max(W - 1, 1): PWC-Net's warp (superres hunt)
            pair = len(items) == 2 and all(isinstance(x, (Sym, int, float)) and not isinstance(x, bool) for x in items)
            form = f"{name}imum({', '.join(_as_tensor(x) if isinstance(x, Sym) else repr(float(x)) for x in items)})" \
                if pair else f"{_as_tensor(sym)}, and {name}imum(a, b) of tensors"
            raise SymbolicOperand(f"{name}() takes numbers, got {describe(sym)}, a size known only at run time; as "
                                  f"a tensor it is read then: {form}")
        if kw:  # max(a, b, dim=1) of numbers: the TypeError's "does not take", with the builtin's doc
            raise TypeError(name)
        return f(_num(name, x) for x in items)
    return g


def _quoted(v: str) -> str:
    return f'"{v}"' if len(v) <= 60 else f'"{v[:40]}..." ({len(v)} characters)'


def _int(v):
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            if len(v) > 60 and re.fullmatch(r"\s*[+-]?\d+(?:_\d+)*\s*", v):  # past Python's digit limit
                raise LimitError(f"int() of a {len(v.strip())}-character string of digits: integer too "
                                 "large") from None
            raise ArchTypeError(f"int() cannot read {_quoted(v)} as an integer") from None
    return _integral("int", v, int)


def _float(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise ArchTypeError(f"float() cannot read {_quoted(v)} as a number") from None
    return float(_num("float", v))


def _str(v):
    if isinstance(v, (Tensor,)):
        raise ArchTypeError("str() of a tensor")
    return to_str(v)


def _round(v, n=None):
    """Python's round(); an absurd ndigits would make Python build 10**ndigits (round(15, -10**9) hangs)."""
    if n is None:
        return _integral("round", v, round)
    x = _num("round", v)
    if isinstance(n, bool) or not isinstance(n, int):
        raise ArchTypeError(f"round(): ndigits must be an integer, got {describe(n)}")
    if abs(n) > MAX_NDIGITS:
        raise LimitError(f"round(): ndigits {n} is outside -{MAX_NDIGITS}..{MAX_NDIGITS}")
    return round(x, n)


def _shape(x):
    return tuple(_tensor("shape", x).shape)


def _channels(x):
    t = _tensor("channels", x)
    if t.type.rank < 2:
        raise ArchTypeError(f"channels() needs a tensor of rank 2 or more, got {t.type}")
    return t.shape[1]


def _math(name, f, op=None):
    """A scalar function; with a tensor argument it emits the op `op` (handled by the evaluator)."""
    def g(v):
        x = _num(name, v)
        try:
            return f(x)
        except (ValueError, OverflowError) as e:
            raise ArchTypeError(f"{name}({x}): {e}") from None
    return Builtin(name, g, doc=f"{name} of a number" + (f", or the {op} op on a tensor" if op else ""))


# math-module functions of one number that are also ops on tensors (trig.py, logexp.py)
_MORE_MATH = ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log1p", "expm1", "log2",
              "log10", "trunc")


def _atan2(y, x):
    return math.atan2(_num("atan2", y), _num("atan2", x))


def _truths(name, v) -> list[bool]:
    """all()/any() of a list of compile-time values; a tensor's truth is only known at run time."""
    if isinstance(v, Tensor):  # torch.all(mask): a reduction, written here as one over its 0/1 values
        form = 'eq(amin(cast(m, "int64")), 1)' if name == "all" else 'gt(amax(cast(m, "int64")), 0)'
        raise ArchTypeError(f"{name}() takes a list of values known when building; for a bool tensor m's "
                            f"{name}() as a tensor, write {form}")
    items = _seq(name, v)
    if any(isinstance(x, Tensor) for x in items):
        raise ArchTypeError(f"{name}() of tensors: their values are only known at run time; a condition must be a "
                            "compile-time value")
    if any(isinstance(x, Sym) for x in items):  # any([T - 1]): false at T=1, which the build cannot know
        raise SymbolicOperand(f"{name}() of a symbolic size: whether it is zero is {UNDECIDED_ADVICE}")
    return [bool(x) for x in items]


def _bool(v):
    if isinstance(v, Tensor):  # a Python object is always true: `if bool(x)` would always take the branch
        raise ArchTypeError("bool() of a tensor: its values are only known at run time; a condition must be a "
                            "compile-time value")
    if isinstance(v, Sym):
        raise SymbolicOperand(f"bool() of a symbolic size: whether it is zero is {UNDECIDED_ADVICE}")
    return bool(v)


def _enumerate(v, start=0):
    if not is_int(start):
        raise ArchTypeError(f"enumerate(): the start must be an integer, got {describe(start)}")
    return [(i + start, x) for i, x in enumerate(_seq("enumerate", v))]


def _zip(*vs):
    return [tuple(t) for t in zip(*(_seq("zip", v) for v in vs))]


def _sum(v, start=0):
    total = _num("sum", start)
    for x in _seq("sum", v):
        total = total + _num("sum", x)
    return total


def _isinstance_sym(v):
    return isinstance(v, Sym)


BUILTINS = {b.name: b for b in [
    Builtin("range", _range, "range(stop) / range(start, stop[, step]) as a list"),
    Builtin("len", _len, "length of a list, tuple, dict or string; dim 0 of a tensor"),
    Builtin("all", lambda v: all(_truths("all", v)), "true when every item of a list is true (Python's all)"),
    Builtin("any", lambda v: any(_truths("any", v)), "true when some item of a list is true (Python's any)"),
    Builtin("min", _minmax("min", min), "smallest of numbers or of a list"),
    Builtin("max", _minmax("max", max), "largest of numbers or of a list (for a tensor's, use amax)"),
    Builtin("sum", _sum, "sum of a list of numbers, or of tensors (added in turn, as python's sum), or the sum op on a "
            "tensor"),
    Builtin("int", _int, "truncate to an integer"),
    Builtin("float", _float, "convert to a float"),
    Builtin("str", _str, "convert to a string"),
    Builtin("bool", _bool, "truthiness of a compile-time value"),
    Builtin("list", lambda v: list(_seq("list", v)), "a list from a tuple or list"),
    Builtin("enumerate", _enumerate, "[(index, item), ...]"),
    Builtin("zip", _zip, "[(a0, b0), (a1, b1), ...]"),
    Builtin("ceil", lambda v: _integral("ceil", v, math.ceil), "round up to an integer, or the ceil op on a tensor"),
    Builtin("floor", lambda v: _integral("floor", v, math.floor),
            "round down to an integer, or the floor op on a tensor"),
    Builtin("round", _round, "round half to even, as Python; round(x, ndigits); the round op on a tensor"),
    _math("sqrt", math.sqrt, "sqrt"),
    _math("exp", math.exp, "exp"),
    _math("log", math.log, "log"),
    _math("abs", abs, "abs"),
    _math("sin", math.sin, "sin"),
    _math("cos", math.cos, "cos"),
    *(_math(n, getattr(math, n), n) for n in _MORE_MATH),
    Builtin("atan2", _atan2, "atan2(y, x): the angle of the point (x, y) in radians, or the atan2 "
            "op on tensors"),
    Builtin("shape", _shape, "the shape of a tensor as a tuple of ints and symbols"),
    Builtin("channels", _channels, "dim 1 of a tensor (channels in NC... layout)"),
    Builtin("rank", lambda x: _tensor("rank", x).type.rank, "number of dims of a tensor"),
    Builtin("dtype", lambda x: str(_tensor("dtype", x).type.dtype), "element type of a tensor, as a string"),
    Builtin("parameter", None, "parameter(shape, init=\"zeros\"|\"normal\"|..., std=0.02) as NAME: a learned tensor"),
    Builtin("ref", None, "ref(\"layer.weight\"): an existing parameter by full name (weight tying)"),
    Builtin("layer", None, "layer(\"fc\"): the layer named fc, to call again on other inputs with the same weights"),
    Builtin("tensor", None, "tensor([[0, 1], [2, 3]], dtype=\"int64\"): a constant from numbers (an index table)"),
    Builtin("is_symbolic", _isinstance_sym, "true when a dim is a symbol such as B"),
]}

# on a tensor these are the op of that name
TENSOR_MATH = {"sqrt", "exp", "log", "abs", "sin", "cos", "sum", "floor", "ceil", "round", "atan2", *_MORE_MATH}
# the math functions of one number whose tensor form is the op of the same name: sqrt(C) is sqrt(tensor(C, ...))
# (abs and the roundings of a size are the size itself; sum and atan2 take more than one)
_ONE_NUMBER_MATH = {"sqrt", "exp", "log", "sin", "cos", *_MORE_MATH} - {"trunc"}
