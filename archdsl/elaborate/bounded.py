"""Printing and comparing compile-time values in bounded work.

Lists may share themselves: `a = [a, a]` 64 times is 65 small lists but 2^64 leaves, and Python's str() and
== walk every leaf. These walk with a Meter that stops at MAX_LIST items, skip pairs already compared, and
print values as archdsl literals (`true`, `none`), never as Python reprs."""

from __future__ import annotations

from ..diagnostics import ArchTypeError, LimitError
from ..types import Sym, dim_add, dim_mul
from .scalars import COMPARE, SymbolicOperand, is_num
from .values import BlockFn, Builtin, Namespace, OpFn, Tensor, describe

__all__ = ["MAX_LIST", "Meter", "check_length", "comparing", "contains", "equal", "order", "printing", "short",
           "to_str"]

MAX_LIST = 1_000_000


class Meter:
    """The work of one walk over values; past its limit it is a LimitError with `message`."""

    __slots__ = ("message", "used", "limit")

    def __init__(self, message: str, limit: int = MAX_LIST):
        self.message = message
        self.used = 0
        self.limit = limit

    def spend(self, n: int = 1) -> None:
        self.used += n
        if self.used > self.limit:
            raise LimitError(self.message)


def printing() -> Meter:
    """The meter of one string being built by str() or interpolation."""
    return Meter(f"string of more than {MAX_LIST} characters is over the limit")


def comparing() -> Meter:
    """The meter of one comparison (==, <, in) of nested values."""
    return Meter(f"comparing these values walks more than {MAX_LIST} items, over the limit")


def check_length(n: int) -> None:
    """A list or string about to be built: refused before it takes the memory."""
    if n > MAX_LIST:
        raise LimitError(f"sequence of {n} items is over the limit of {MAX_LIST}")


# ---------------- printing ----------------

_NAMED = {OpFn: lambda v: v.name, BlockFn: lambda v: v.defn.name, Builtin: lambda v: v.name,
          Namespace: lambda v: v.name}


def to_str(v, meter: Meter | None = None) -> str:
    """`str(v)` and a `{v}` hole: a string as is, anything else as its archdsl literal."""
    meter = meter or printing()
    if isinstance(v, str):
        meter.spend(len(v))
        return v
    out: list[str] = []
    _render(v, meter, out)
    return "".join(out)


def _render(v, meter: Meter, out: list) -> None:
    """Iterative (a deeply nested list is no RecursionError); every piece is paid for before it is kept, and a
    list met again is copied from where it was printed the first time, not walked again."""
    printed: dict = {}  # id(container) -> (start, stop, characters) of its pieces in `out`
    todo: list = [v]
    while todo:
        x = todo.pop()
        if isinstance(x, str):  # literal text: brackets, separators, quoted strings
            meter.spend(max(1, len(x)))
            out.append(x)
        elif isinstance(x, _End):
            printed[id(x.container)] = (x.start, len(out), meter.used - x.used)
        elif isinstance(x, (list, tuple, dict)):
            if id(x) in printed:
                start, stop, chars = printed[id(x)]
                meter.spend(chars)
                out.extend(out[start:stop])
                continue
            todo.append(_End(x, len(out), meter.used))
            todo.extend(reversed(_parts(x)))
        else:
            todo.append(_scalar(x))


class _End:
    """Where a container's pieces end in the output, so that a shared one is printed once."""

    __slots__ = ("container", "start", "used")

    def __init__(self, container, start: int, used: int):
        self.container = container
        self.start = start
        self.used = used


def _parts(x) -> list:
    """A container as its pieces in order: brackets, separators (text) and items (strings already quoted)."""
    open_, close = ("[", "]") if isinstance(x, list) else ("{", "}") if isinstance(x, dict) else ("(", ")")
    items = [(repr(k), ": ", _quoted(w)) for k, w in x.items()] if isinstance(x, dict) else [(_quoted(w),) for w in x]
    parts: list = [open_]
    for i, item in enumerate(items):
        if i:
            parts.append(", ")
        parts.extend(item)
    if isinstance(x, tuple) and len(x) == 1:
        parts.append(",")
    parts.append(close)
    return parts


def _quoted(w):
    return repr(w) if isinstance(w, str) else w


def _scalar(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if x is None:
        return "none"
    if isinstance(x, (int, float, Sym)):
        return str(x)
    if type(x) in _NAMED:
        return _NAMED[type(x)](x)
    if isinstance(x, Tensor):
        raise ArchTypeError("cannot put a tensor into a string")
    raise ArchTypeError(f"cannot put {describe(x)} into a string")  # pragma: no cover - no other values


def short(v, width: int = 60) -> str:
    """A value for a message: its literal when short, else (or for a tensor) described in words."""
    if isinstance(v, str):
        return repr(v) if len(v) <= width else describe(v)
    try:
        text = to_str(v, Meter("", width))
    except (LimitError, ArchTypeError):
        return describe(v)
    return text if len(text) <= width else describe(v)


# ---------------- comparing ----------------

def equal(a, b, meter: Meter, strict: bool = False) -> bool:
    """`a == b` as Python has it (an item is equal to itself), each pair of shared sublists compared once;
    `strict` also wants the same type at every level (1, 1.0 and true are then three values). A symbolic
    size against a number or another size it is not written as (`T == 64`, `H == W`) is open until a run
    fixes it: unless something else decides the answer, that raises SymbolicOperand (`strict`: not equal)."""
    seen: set = set()
    todo = [(a, b)]
    open_pair = None
    while todo:
        x, y = todo.pop()
        meter.spend()
        if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
            if type(x) is not type(y) or len(x) != len(y):
                return False
            if _flat(x) and _flat(y):  # no sublists: Python's own == is linear, and fast
                meter.spend(len(x))
                if x != y or strict and any(type(p) is not type(q) for p, q in zip(x, y)):
                    if strict or not any(isinstance(p, Sym) or isinstance(q, Sym) for p, q in zip(x, y)):
                        return False
                    todo.extend(zip(x, y))  # `shape(x)[1:] == [64, 4]`: item by item below
                continue
            pairs = zip(x, y)
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():  # keys are strings and integers: cheap
                return False
            pairs = ((x[k], y[k]) for k in x)
        else:
            if not x == y or strict and type(x) is not type(y):
                if strict or not _undecided(x, y):
                    return False
                open_pair = open_pair or (x, y)
            continue
        for p, q in pairs:
            if p is not q and (id(p), id(q)) not in seen:
                seen.add((id(p), id(q)))
                todo.append((p, q))
    if open_pair is not None:
        raise SymbolicOperand(f"cannot decide {describe(open_pair[0])} == {describe(open_pair[1])}")
    return True


def _flat(x) -> bool:
    return not any(isinstance(i, (list, tuple, dict)) for i in x)


def _undecided(x, y) -> bool:
    """A symbolic size and a number (or a size written otherwise): equal for some runs, not for others. A
    product of sizes (T, B*T) is a whole number of at least 0, so c*T is a multiple of c of c's sign: 2*T is
    never 3, -1 or 64.5; two sizes that differ by a number ((T-2) and T) never meet."""
    if isinstance(y, Sym) and not isinstance(x, Sym):
        x, y = y, x
    if not isinstance(x, Sym) or not isinstance(y, (int, float, Sym)):  # true is 1 here, as in Python
        return False
    if isinstance(y, Sym):
        gap = dim_add(x, dim_mul(y, -1))
        return not (isinstance(gap, int) and gap != 0)
    if not all(f.isidentifier() for f in x.factors) or not x.coef:
        return True
    return float(y).is_integer() and int(y) % x.coef == 0 and int(y) // x.coef >= 0


def order(op, a, b, meter: Meter) -> bool:
    """`<`, `<=`, `>`, `>=`: numbers with numbers, strings with strings, lists item by item (each item paid
    for: equal lists of one repeated object were walked free)."""
    while isinstance(a, (list, tuple)) and type(a) is type(b):
        meter.spend(min(len(a), len(b)))
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x is not y and not equal(x, y, meter)), None)
        if i is None:
            return COMPARE[op](len(a), len(b))
        a, b = a[i], b[i]
    if not ((is_num(a) and is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
        error = SymbolicOperand if isinstance(a, Sym) or isinstance(b, Sym) else ArchTypeError
        raise error(f"cannot compare {describe(a)} {op} {describe(b)}")
    return COMPARE[op](a, b)


def contains(item, seq, meter: Meter) -> bool:
    """`item in seq`: a dict's keys (strings and integers), a list's items, a substring of a string."""
    if isinstance(seq, dict):
        if isinstance(item, Sym) and any(_undecided(item, k) for k in seq):  # `T in {64: ...}`: open
            raise SymbolicOperand(f"cannot decide {describe(item)} in a dict with number keys")
        return isinstance(item, (str, int, float)) and item in seq
    if isinstance(seq, str):
        if not isinstance(item, str):
            raise ArchTypeError(f"'in' a string needs a string on the left, got {describe(item)}")
        return item in seq
    undecided = None
    for x in seq:
        try:
            if x is item or equal(x, item, meter):
                return True
        except SymbolicOperand as e:  # `T in [32, 64]`: unless another item is T itself
            undecided = undecided or e
    if undecided is not None:
        raise undecided
    return False
