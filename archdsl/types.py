"""Element types, dims (ints or symbols) and tensor types: plain data shared by every stage."""

from __future__ import annotations

import ast
import enum
import math
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

import numpy as np

__all__ = ["DType", "Sym", "Dim", "TensorType", "dim_str", "is_static", "numel", "DTYPES", "unknown_dtype", "describe",
           "dim_size", "is_formula", "integer_terms", "literal", "BATCH_NAMES", "MAX_DIM"]

MAX_DIM = 2**31 - 1  # the largest size of any dim, symbolic ones at run time included
BATCH_NAMES = ("B", "batch", "N")  # a symbolic dim so named is taken for the batch where a hint must guess


class DType(enum.Enum):
    float32 = ("float32", 1, np.float32)
    float16 = ("float16", 10, np.float16)
    bfloat16 = ("bfloat16", 16, None)
    float64 = ("float64", 11, np.float64)
    int64 = ("int64", 7, np.int64)
    int32 = ("int32", 6, np.int32)
    bool = ("bool", 9, np.bool_)

    def __init__(self, label: str, onnx_code: int, np_type) -> None:
        self.label = label
        self.onnx = onnx_code
        self.np = np_type

    @property
    def is_float(self) -> bool:
        return self.label.startswith(("float", "bfloat"))

    @property
    def is_16bit(self) -> bool:
        """float16 and bfloat16: computed in float32 where their range or precision would fail (as torch)."""
        return self in (DType.float16, DType.bfloat16)

    @property
    def numpy(self):
        """The numpy type of its values: bfloat16's comes from ml_dtypes (numpy has none; `np` is None)."""
        if self.np is None:
            import ml_dtypes
            return ml_dtypes.bfloat16
        return self.np

    def limits(self) -> tuple:
        """(lowest, largest) finite value: what a number must lie within to become a constant of this dtype."""
        if self.is_float:
            import ml_dtypes  # its finfo also knows bfloat16
            info = ml_dtypes.finfo(self.numpy)
            return float(info.min), float(info.max)
        info = np.iinfo(self.np)
        return int(info.min), int(info.max)

    def __str__(self) -> str:
        return self.label


DTYPES = {d.label: d for d in DType}

# what torch, numpy and C call them: an unknown dtype's message names the one meant
_DTYPE_WORDS = {"float": "float32' (torch's float; numpy's is float64", "double": "float64", "half": "float16",
                "long": "int64", "int": "int32' (torch's int; numpy's is int64", "bool_": "bool",
                "fp32": "float32", "f32": "float32", "fp16": "float16", "f16": "float16", "bf16": "bfloat16",
                "bfloat": "bfloat16", "fp64": "float64", "f64": "float64", "i64": "int64", "i32": "int32"}


def unknown_dtype(name) -> str:
    """The diagnostic for a dtype name archdsl does not have: `float` is float32 in torch, a close spelling
    is suggested, and the dtypes are listed."""
    meant = _DTYPE_WORDS.get(name) if isinstance(name, str) else None
    if meant is not None:
        hint = f"; did you mean '{meant}" + (")?" if "(" in meant else "'?")
    else:
        from .diagnostics import did_you_mean
        hint = did_you_mean(name, DTYPES) if isinstance(name, str) else ""  # float6: float16 or float64
    if isinstance(name, str) and name.startswith("complex"):
        hint = "; there is no complex dtype: carry the real and imaginary parts as two float tensors"
    return f"unknown dtype {name!r}{hint} (one of {', '.join(DTYPES)})"


@dataclass(frozen=True, slots=True)
class Sym:
    """A symbolic dim: `coef * prod(factors)`, or an opaque formula when not a monomial."""

    factors: tuple[str, ...]
    coef: int = 1

    @staticmethod
    def of(name: str) -> "Sym":
        return Sym((name,))

    @staticmethod
    def opaque(text: str) -> "Sym":
        return Sym((f"({text})",))

    def __str__(self) -> str:
        body = "*".join(self.factors)
        return body if self.coef == 1 else f"{self.coef}*{body}"

    def __repr__(self) -> str:
        return str(self)


Dim = Union[int, Sym]


def dim_mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if isinstance(a, int):
        a, b = b, a
    assert isinstance(a, Sym)
    if b == 0:
        return 0
    if is_formula(a) or is_formula(b) or (isinstance(b, int) and b < 0):  # 2 * (H/2) is H, W * (H/2) is H*W/2
        ta, tb = _terms(a), _terms(b)
        if ta is not None and tb is not None and (isinstance(b, int) or not (_floors(ta) or _floors(tb))):
            return _from_terms(_times(ta, tb))  # ((H-1)//2+1)*((W-1)//2+1) stays a product (a conv's map)
    if isinstance(b, int):
        return Sym(a.factors, a.coef * b)
    return Sym(tuple(sorted(a.factors + b.factors)), a.coef * b.coef)


def dim_floordiv(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if isinstance(a, Sym) and isinstance(b, int) and b != 0 and a.coef % b == 0:
        coef = a.coef // b
        return Sym(a.factors, coef)
    if isinstance(a, Sym) and isinstance(b, int) and b > 0:  # (b*P + c)//b is P + c//b for integer P
        terms = _terms(a)
        if terms is not None and all(Fraction(c).denominator == 1 for c in terms.values()):
            rest = {m: int(c) for m, c in terms.items() if m != () and c}
            if rest and all(c % b == 0 for c in rest.values()):
                out = {m: c // b for m, c in rest.items()}
                const = int(terms.get((), 0)) // b
                if const:
                    out[()] = const
                return _from_terms(out)
    if isinstance(a, Sym) and isinstance(b, Sym):
        fa = list(a.factors)
        for f in b.factors:
            if f not in fa:
                break
            fa.remove(f)
        else:
            if a.coef % b.coef == 0:
                coef = a.coef // b.coef
                return coef if not fa else Sym(tuple(fa), coef)
    nested = re.fullmatch(r"\((.+)//(\d+)\)", str(a)) if isinstance(b, int) and b > 0 else None
    if nested and _balanced(nested[1]):  # (H//2)//2 is H//4: floor(floor(x/m)/n) = floor(x/(m*n))
        return Sym.opaque(f"{nested[1]}//{int(nested[2]) * b}")
    return Sym.opaque(f"{a}//({b})" if isinstance(b, Sym) else f"{a}//{b}")  # 4*H//(2*W), not (4*H//2)*W


def _balanced(text: str) -> bool:
    """Whether text's parentheses pair up, so that it is one operand (not `(H+1)//2)+(W` of a larger formula)."""
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


def dim_exact_div(a: Dim, b: Dim) -> Dim:
    """a / b where a is a multiple of b at run time (an op that fails otherwise, such as pixel_unshuffle's
    reshape or a reshape's -1): H / 2 written as such, so that 2 * (H/2) is H again; by a monomial (4*B) each
    term's symbols lose the divisor's ((6*B*T-6*B)/(4*B) is 3*T/2-3/2); a // b where that cannot be done."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    terms = _terms(a)
    if isinstance(b, int):
        return dim_floordiv(a, b) if terms is None else _from_terms({m: Fraction(c) / b for m, c in terms.items()})
    if terms is None:  # a formula factor of b ((W+1)//2, a strided conv's) cancels as an atom, as a symbol does
        return _cancelled(a, b)
    out = _divided(terms, b.factors, b.coef)
    expanded = _terms(b) if out is None else None  # ((W//2)/2)*B is one term too: (W//2)*B over 2
    if expanded is not None and len(expanded) == 1:
        ((atoms, coef),) = expanded.items()
        out = _divided(terms, atoms, coef) if coef else None
    if out is not None:
        return _from_terms(out)
    return _cancelled(a, b) if isinstance(a, Sym) else dim_floordiv(a, b)  # 24 over B: no factor to cancel


def _divided(terms: "Terms", atoms, coef) -> "Terms | None":
    """Each term over the monomial coef * atoms; None where a term lacks one of the atoms."""
    out: Terms = {}
    for m, c in terms.items():
        if not c:  # 0 (a dim of 0 elements) divides into 0
            continue
        rest = list(m)
        for f in atoms:
            if f not in rest:
                return None
            rest.remove(f)
        out[tuple(rest)] = Fraction(c) / coef
    return out


def _cancelled(a: Sym, b: Sym) -> Dim:
    """a / b by their factors as written, where a's include all of b's: a fraction atom such as ((W//2)/2), a
    split of a pooled width, is expanded in a's terms (into (W//2) over 2) and, where b keeps it as written, not
    found there; the count of a split-and-written-back map stayed a floor division no other size equals (a
    MaxViT grid partition after a strided stage was refused). a // b otherwise."""
    rest = list(a.factors)
    for f in b.factors:
        if f not in rest:
            return dim_floordiv(a, b)
        rest.remove(f)
    kept: Dim = Sym(tuple(rest), a.coef) if rest else a.coef
    return kept if b.coef == 1 else dim_exact_div(kept, b.coef) if isinstance(kept, Sym) or kept % b.coef == 0 \
        else dim_floordiv(a, b)


def dim_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0:
        return a
    if a == 0:
        return b
    if isinstance(a, Sym) and isinstance(b, Sym) and a.factors == b.factors and not is_formula(a) \
            and a.coef + b.coef > 0:
        return Sym(a.factors, a.coef + b.coef)
    ta, tb = _terms(a), _terms(b)
    if ta is None or tb is None:
        return Sym.opaque(plus_text(a, b))
    total = dict(ta)
    for m, c in tb.items():
        total[m] = total.get(m, 0) + c
    return _from_terms({m: c for m, c in total.items() if c})


def difference_bounds(a, b, least: int = 0) -> tuple:
    """(lo, hi): bounds of a - b at every size (each symbol a whole number of at least `least`, 0 or 1), None
    where a side is unbounded or unknown (a term with //, min or floor, which may be negative: T//2 - 3 is
    ((T-6)//2)): `T + 1` and `T` differ by 1, `2*T` is at least `T`, `4 - T` at most 4."""
    ta, tb = (_terms(v) if isinstance(v, Sym) else {(): Fraction(v)} for v in (a, b))
    if ta is None or tb is None:
        return None, None
    diff = dict(ta)
    for m, c in tb.items():
        diff[m] = diff.get(m, 0) - c
    const = diff.pop((), 0)
    if not all(f.isidentifier() for m, c in diff.items() if c for f in m):  # a floor term, ((T-5)//2), may be
        return None, None                                                   # negative: no sign to read
    coefs = [c for c in diff.values() if c]
    const += least * sum(coefs)  # each monomial at least least**degree
    return (const if all(c > 0 for c in coefs) else None), (const if all(c < 0 for c in coefs) else None)


Terms = dict  # monomial (sorted symbol names, () for the constant) -> coefficient (an int, or a Fraction)


def _terms(d: Dim) -> Terms | None:
    """d as a sum of monomials, so that sums cancel (a reflect pad of 1 then a 3x3 conv: (H+2)-2 is H) and
    products expand (W*(H/2)); None for a formula with //, min or floor."""
    if isinstance(d, int):
        return {(): d}
    if not is_formula(d):
        return {d.factors: d.coef}
    terms: Terms = {(): d.coef}
    for f in d.factors:  # a product of symbols and formulas: W*(H/2)
        if f.startswith("("):
            try:
                t = _poly(ast.parse(f, mode="eval").body)
            except (SyntaxError, RecursionError, MemoryError):
                return None
            if t is None:
                return None
        else:
            t = {(f,): 1}
        terms = _times(terms, t)
    return terms


def integer_terms(d: Dim) -> tuple[dict, int] | None:
    """d as (monomial -> integer coefficient, denominator): H*W/4 is ({(H, W): 1}, 4) and 3*T/2-3/2 is ({(T,): 3,
    (): -3}, 2), so that a size made by exact divisions can be computed at run time in integers; None for a
    formula with //, min or floor."""
    terms = _terms(d)
    if terms is None:
        return None
    den = math.lcm(*(Fraction(c).denominator for c in terms.values()))
    return {m: int(Fraction(c) * den) for m, c in terms.items() if c}, den


def _poly(n) -> Terms | None:
    if isinstance(n, ast.Constant) and type(n.value) is int:
        return {(): n.value}
    if isinstance(n, ast.Name):
        return {(n.id,): 1}
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        t = _poly(n.operand)
        return None if t is None else {m: -c for m, c in t.items()}
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):  # exact division by a number: H/2
        a = _poly(n.left)
        if a is None or not (isinstance(n.right, ast.Constant) and type(n.right.value) is int and n.right.value):
            return None
        return {m: Fraction(c) / n.right.value for m, c in a.items()}
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.FloorDiv):  # (H-1)//2: a term of its own
        a, k = _poly(n.left), n.right.value if isinstance(n.right, ast.Constant) else None
        if a is None or type(k) is not int or k <= 0 or any(Fraction(c).denominator != 1 for c in a.values()):
            return None
        if set(a) <= {()}:
            return {(): int(a.get((), 0)) // k} if a.get((), 0) // k else {}
        return {(f"({_from_terms(a)}//{k})",): 1}
    if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult)):
        a, b = _poly(n.left), _poly(n.right)
        if a is None or b is None:
            return None
        if isinstance(n.op, ast.Mult):
            return _times(a, b)
        sign = 1 if isinstance(n.op, ast.Add) else -1
        out = dict(a)
        for m, c in b.items():
            out[m] = out.get(m, 0) + sign * c
        return {m: c for m, c in out.items() if c}
    return None


def _times(a: Terms, b: Terms) -> Terms:
    out: Terms = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(sorted(ma + mb))
            out[m] = out.get(m, 0) + ca * cb
    return {m: c for m, c in out.items() if c}


def _floor_parts(name: str) -> tuple[Terms, int] | None:
    """(numerator terms, k) of a floor-division term `((H+1)//2)`, else None."""
    if not name.startswith("(") or "//" not in name:
        return None
    try:
        n = ast.parse(name, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError):
        return None
    if not (isinstance(n, ast.BinOp) and isinstance(n.op, ast.FloorDiv) and isinstance(n.right, ast.Constant)):
        return None
    num = _poly(n.left)
    return None if num is None else (num, n.right.value)


def _floors(terms: Terms) -> bool:
    """Whether a sum has a floor-division term."""
    return any(_floor_parts(f) is not None for m in terms for f in m)


def _fold_floor_constant(terms: Terms) -> Terms:
    """c*(N//k) + d is c*((N + d/c*k)//k) where c divides d: one form for sizes equal at every size, as
    (H-1)//2+1 and (H+1)//2 (a strided conv beside a strided slice), or ((H+1)//2+2)-2 and (H+1)//2 (a pad
    of 1 then an unpadded 3x3 conv after a strided one)."""
    d = terms.get(())
    atoms = [m for m in terms if len(m) == 1 and _floor_parts(m[0]) is not None]
    if not d or Fraction(d).denominator != 1 or len(atoms) != 1:
        return terms
    (m,) = atoms
    c = terms[m]
    if Fraction(c).denominator != 1 or int(d) % int(c):
        return terms
    num, k = _floor_parts(m[0])
    num = dict(num)
    num[()] = num.get((), 0) + int(d) // int(c) * k
    q = _terms(dim_floordiv(_from_terms({x: v for x, v in num.items() if v}), k))  # (2*H+2)//2 is H+1
    if q is None:
        return terms
    out = {x: v for x, v in terms.items() if x not in (m, ())}
    for x, v in q.items():
        out[x] = out.get(x, 0) + c * v
    return {x: v for x, v in out.items() if v}


def _fold_floor_runs(terms: Terms) -> Terms:
    """(N+r)//k summed over every r = 0..k-1 is N (Hermite's identity), so that an even/odd split joined back
    (x[:, 0::2] beside x[:, 1::2]: (T+1)//2 and T//2) is T long again. Every part (N+a)//k is written
    (N+a%k)//k + a//k, so that equal sums have one form whatever their parts' offsets, signs and order
    ((T+2)//2 + (T-1)//2 is T too), then whole runs fold. (A part alone takes its constant back in
    _fold_floor_constant: (T-1)//2 stays as it is.)"""
    runs: dict = {}  # (numerator without its constant, k) -> [(monomial, constant, coefficient)]
    for m, c in terms.items():
        parts = _floor_parts(m[0]) if len(m) == 1 and Fraction(c).denominator == 1 else None
        if parts is None or type(parts[1]) is not int or parts[1] < 2:
            continue
        num, k = parts
        if all(Fraction(v).denominator == 1 for v in num.values()):
            rest = tuple(sorted((x, int(v)) for x, v in num.items() if x != () and v))
            runs.setdefault((rest, k), []).append((m, int(num.get((), 0)), int(c)))
    out = dict(terms)

    def add(x, v):  # changes add up: one group's numerator may be another group's part (3*(T//2))
        out[x] = out.get(x, 0) + v
    for (rest, k), parts in runs.items():
        per_residue: dict[int, int] = {}
        for _, a, c in parts:
            per_residue[a % k] = per_residue.get(a % k, 0) + c
        # the runs taken out (or put in): the count most residues have (a missing one has 0), the least of
        # equally common ones: the fewest parts left, and one form for equal sums (T - (T+1)//2 is T//2,
        # T - (T+1)//2 - T//2 is 0, -(T//1000) stays as it is)
        counts = Counter(per_residue.values())
        counts[0] += k - len(per_residue)
        most = max(counts.values())
        whole = min(v for v, n in counts.items() if n == most)
        for m, a, c in parts:  # each part as (N + a%k)//k + a//k, less `whole` copies of every residue
            add(m, -c)
            add((), c * (a // k))
        for r in (range(k) if whole else per_residue):  # (whole != 0: no more residues missing than present)
            add((f"({_from_terms(dict(rest) | ({(): r} if r else {}))}//{k})",), per_residue.get(r, 0) - whole)
        for x, v in rest:
            add(x, whole * v)
    return {x: v for x, v in out.items() if v}


def _from_terms(terms: Terms) -> Dim:
    """The dim a sum of monomials is: a number, a monomial (H, 2*H*W), or a formula written in one order
    (symbols first, by name; the constant last), so that equal sums are equal dims."""
    terms = {m: int(c) if Fraction(c).denominator == 1 else Fraction(c) for m, c in terms.items()}
    terms = _fold_floor_constant(_fold_floor_runs(terms))
    if not terms:
        return 0
    if list(terms) == [()] and isinstance(terms[()], int):
        return terms[()]
    if len(terms) == 1 and all(isinstance(c, int) and c > 0 for c in terms.values()):
        (m, c), = terms.items()
        return Sym(m, c)  # a product of symbols (a negative one stays a formula: it may be < 1)
    text = ""
    for m in sorted(terms, key=lambda m: (m == (), m)):
        c = Fraction(terms[m])
        num = abs(c.numerator)
        body = "*".join(m) if m else str(num)
        if m and num != 1:
            body = f"{num}*{body}"
        if c.denominator != 1:
            body = f"{body}/{c.denominator}"
        text += ("-" if c < 0 else "+" if text else "") + body
    return Sym.opaque(text)


def plus_text(a: Dim, b: Dim) -> str:
    """`a+b` as a formula, written `T-2` rather than `T+-2` when b is a negative number."""
    if b == 0:
        return str(a)
    return f"{a}-{-b}" if isinstance(b, int) and b < 0 else f"{a}+{b}"


def is_formula(d: Dim) -> bool:
    """A dim a shape rule wrote as a formula (`(T-1)`, `(H-3)//2+1`), not a product of symbols: it can be 0 or
    negative for some sizes, where a symbol (a model input's size) is at least 1."""
    return isinstance(d, Sym) and any(f.startswith("(") for f in d.factors)


def is_symbol(d: Dim) -> bool:
    """A plain symbolic size (`B`, `T`): not a product, a multiple or a formula. The ONNX lowering names such
    dims (dim_param); onnxruntime matches shapes by those names."""
    return isinstance(d, Sym) and d.coef == 1 and len(d.factors) == 1 and not is_formula(d)


def dim_size(d: Dim, sizes: dict[str, int]) -> int | None:
    """A dim's length once its symbols have sizes: `H`, `2*H`, or a formula a shape rule wrote
    (`(H-3)//2+1`, `min(...)`, `floor(H*1.5)`); None where a symbol has no size."""
    if isinstance(d, int):
        return d
    total = d.coef
    for f in d.factors:
        v = formula_value(f, sizes) if f.startswith("(") else sizes.get(f)
        if v is None:
            return None
        total *= v
    return total


_FORMULA_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                ast.FloorDiv: lambda a, b: a // b if b else None,
                ast.Div: lambda a, b: Fraction(a) / b if b else None}  # exact: H/2 (a size where H is even)


def formula_value(text: str, sizes: dict[str, int]) -> int | None:
    """The value of a formula dim's text at its symbols' sizes ((H-3)//2+1, 2*B as a model file names it): the
    shape rules write only + - * //, min and floor (parsed by ast, never run by Python's eval); None where a
    symbol has no size."""
    def value(n):
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            return n.value
        if isinstance(n, ast.Name):
            return sizes.get(n.id)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            v = value(n.operand)
            return None if v is None else -v
        if isinstance(n, ast.BinOp) and type(n.op) in _FORMULA_OPS:
            a, b = value(n.left), value(n.right)
            return None if a is None or b is None else _FORMULA_OPS[type(n.op)](a, b)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and not n.keywords and \
                (n.func.id, len(n.args)) in (("min", 2), ("floor", 1)):
            args = [value(a) for a in n.args]
            return None if None in args else min(args) if n.func.id == "min" else math.floor(args[0])
        return None
    try:
        v = value(ast.parse(text, mode="eval").body)
        if isinstance(v, Fraction) and v.denominator != 1:
            return None  # H/2 at an odd H: no size (the op that made it fails at run time)
        return None if v is None else int(v)
    except (SyntaxError, RecursionError, MemoryError, OverflowError, ValueError):  # nested past the parser's
        return None  # depth, a symbol named like a Python keyword (`class`), floor(inf)


def dim_symbols(d: Dim) -> list[str]:
    """The input sizes a dim is made of, in order of first use: `H`, `W` in `(H//8)*(W//8)` (a diagnostic
    names them as the sizes to fix)."""
    names: dict[str, None] = {}
    for f in d.factors if isinstance(d, Sym) else ():
        if not f.startswith("("):
            names[f] = None
            continue
        try:
            tree = ast.parse(f, mode="eval")
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            continue
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}  # min, floor
        names.update((n.id, None) for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called)
    return list(names)


def dim_str(d: Dim) -> str:
    return str(d)


def is_static(shape: tuple[Dim, ...]) -> bool:
    return all(isinstance(d, int) for d in shape)


def numel(shape: tuple[Dim, ...]) -> int:
    """Element count of a static shape (symbols count as 1, as for a batch of one)."""
    return math.prod(d if isinstance(d, int) else 1 for d in shape)


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


def literal(v) -> str:
    """A plain value as archdsl writes it (`true`, `none`, `"a"`), for signatures and messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def describe(v) -> str:
    """A compile-time value in words, for diagnostics (`symbolic dim B`, `string "a"`, `list of 3`), never a
    Python type name; the elaborator's values name their kind (`kind_name`)."""
    if getattr(v, "kind_name", None) == "tensor":
        return f"tensor {v.type}"
    if isinstance(v, bool) or v is None:
        return literal(v)
    if isinstance(v, Sym):
        return f"symbolic dim {v}"
    if isinstance(v, (int, float)):
        return f"{type(v).__name__} {v}"
    if isinstance(v, str):  # a long one (up to a million characters) is cut, not pasted into the message
        return f'string "{v}"' if len(v) <= 80 else f'string "{v[:60]}..." ({len(v)} characters)'
    if isinstance(v, (list, tuple)):
        kind = "list" if isinstance(v, list) else "tuple"
        return f"{kind} of {len(v)}" if v else f"an empty {kind}"
    if isinstance(v, dict):
        return "dict"
    if isinstance(v, complex):
        return f"complex number {v}"
    return getattr(v, "description", None) or getattr(v, "kind_name", type(v).__name__)
