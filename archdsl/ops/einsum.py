"""einsum(equation, [a, b, ...]): torch.einsum, lowered to MatMuls, pairwise; a diagonal (a letter repeated in an
operand) first, by a mask; one operand to a ReduceSum and a Transpose: no ONNX Einsum, whose kernel in onnxruntime
1.32 dies of SIGFPE on some equations at a size 0.

The equation is read at compile time into a canonical form: one letter per dim of each operand (`...`
becomes letters the equation does not use, right-aligned as numpy broadcasts), and an explicit output
(torch's implicit one: the letters that appear once, in ASCII order, after the `...` dims). A dim of size 1
against a larger one of the same letter broadcasts, as torch's: the lowering squeezes it out of that operand,
so the letter is summed over the others only. ONNX always gets the explicit, ellipsis-free equation."""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..types import DType, TensorType, numel
from ._common import i64, one_dtype, reduce_op, shape_str
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []

_LETTERS = set(string.ascii_letters)


@dataclass(frozen=True)
class _Plan:
    terms: tuple[str, ...]  # one letter per dim of each operand
    out: str
    sizes: dict  # letter -> its (broadcast) size

    def squeezed(self, k: int, t: TensorType) -> list[int]:
        """Axes of operand k that are 1 where their letter is larger: broadcast, so squeezed out."""
        return [j for j, c in enumerate(self.terms[k]) if t.shape[j] == 1 and self.sizes[c] != 1]


def _split_term(term: str, where: str) -> tuple[str, str | None]:
    """(letters before '...', letters after) or (letters, None) without an ellipsis."""
    head, dots, tail = term.partition("...")
    bad = sorted({ch for ch in head + tail if ch not in _LETTERS})
    if bad:
        what = "a second '...'" if "..." in tail else f"'{bad[0]}'"
        fail(f"einsum: {where} '{term}' holds {what}; subscripts are letters a-z, A-Z and one '...'")
    return (head, tail) if dots else (head, None)


def plan(equation: str, types: list[TensorType]) -> _Plan:
    eq = "".join(equation.split())  # torch allows spaces anywhere
    lhs, arrow, rhs = eq.partition("->")
    if "->" in rhs:
        fail(f"einsum: '{equation}' has more than one '->'")
    parts = lhs.split(",")
    if len(parts) != len(types):
        fail(f"einsum: '{equation}' names {len(parts)} operand{'s' * (len(parts) != 1)}, but "
             f"{len(types)} tensor{'s' * (len(types) != 1)} {'were' if len(types) != 1 else 'was'} given")
    used = set(eq) & _LETTERS
    spare = [ch for ch in sorted(_LETTERS) if ch not in used]
    split = [_split_term(p, f"operand {k}") for k, p in enumerate(parts)]
    ell = 0
    for k, ((head, tail), t) in enumerate(zip(split, types)):
        n = len(head) + len(tail or "")
        if (tail is None and t.rank != n) or t.rank < n:
            fail(f"einsum: operand {k} '{parts[k]}' has {n} subscript{'s' * (n != 1)}"
                 f"{' and no ...' if tail is None else ' besides ...'}, but its tensor has rank {t.rank} "
                 f"{shape_str(t)}")
        if tail is not None:
            ell = max(ell, t.rank - n)
    if ell > len(spare):
        fail(f"einsum: '...' covers {ell} dims, more than the {len(spare)} letters the equation leaves free")
    dots = "".join(spare[:ell])
    terms = tuple(head + (dots[ell - (t.rank - len(head) - len(tail)):] if ell else "") + tail
                  if tail is not None else head for (head, tail), t in zip(split, types))
    sizes: dict = {}
    for k, (term, t) in enumerate(zip(terms, types)):
        for j, c in enumerate(term):
            d, prev = t.shape[j], sizes.get(c)
            if c in term[:j] and d != t.shape[term.index(c)]:
                fail(f"einsum: subscript {c} is repeated in operand {k} '{parts[k]}' with sizes "
                     f"{t.shape[term.index(c)]} and {d} ({shape_str(t)})")
            if prev is None or prev == 1:
                sizes[c] = d
            elif d != prev and d != 1:
                what = f"subscript {c}" if c not in dots else "the dims under '...'"
                fail(f"einsum: {what} {'is' if c not in dots else 'are'} {prev} in one operand and {d} in "
                     f"operand {k} '{parts[k]}' ({shape_str(t)}); sizes must agree (or be 1)")
    has_dots = any(tail is not None for _, tail in split)
    if arrow:
        head, tail = _split_term(rhs, "the output")
        if tail is not None and not has_dots:
            fail(f"einsum: the output '{rhs}' has '...' but no operand does")
        out = head + (dots if tail is not None else "") + (tail or "")
        for c in head + (tail or ""):
            if c not in sizes:
                fail(f"einsum: output subscript {c} appears in no operand of '{equation}'")
        twice = sorted({c for c in out if out.count(c) > 1})
        if twice:
            fail(f"einsum: output subscript {twice[0]} appears more than once in '{rhs}'")
    else:  # torch's implicit output: the '...' dims, then the letters written once, in ASCII order
        letters = "".join(h + (t or "") for h, t in split)
        out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return _Plan(terms, out, sizes)


def _infer(ins, a):
    if not ins:
        fail("einsum: needs at least one tensor: einsum(\"ij,jk->ik\", [a, b])")
    first = ins[0]
    one_dtype("einsum", ins)
    if first.dtype is DType.bool:
        fail("einsum: no arithmetic on bool tensors; cast them to \"float32\" or \"int64\" first")
    p = plan(a["equation"], list(ins))
    return [first.with_shape(tuple(p.sizes[c] for c in p.out))]


def _lower(e, ins, outs, c):
    import numpy as np
    types = list(c.in_types)
    p = plan(c.attrs["equation"], types)
    dt = types[0].dtype
    wide = dt is DType.bfloat16  # onnxruntime's CPU has no bfloat16 MatMul; its float16 result equals torch's
    work = (DType.float32 if wide else dt).numpy
    names, terms = [], []
    for k, (x, t) in enumerate(zip(ins, types)):
        axes = p.squeezed(k, t)
        if axes:
            x = e.op("Squeeze", [x, e.const(np.array(axes, dtype=np.int64))])
        if wide:
            x = e.op("Cast", [x], to=DType.float32.onnx)
        x, term = _diagonal(e, x, "".join(ch for j, ch in enumerate(p.terms[k]) if j not in axes), np.zeros((), work))
        names.append(x)
        terms.append(term)
    at = None if wide else outs
    z = _chain(e, names, terms, p.out, p.sizes, at, work) if len(terms) > 1 else \
        _single(e, names[0], terms[0], p.out, at, work)
    if z is None:
        z = e.op("Einsum", names, outputs=at, equation=",".join(terms) + "->" + p.out)
    if wide:
        e.op("Cast", [z], outputs=outs, to=dt.onnx)


def _diagonal(e, x: str, term: str, zero) -> tuple[str, str]:
    """x with each letter repeated in its term (bjtj) kept at its first place only: the diagonal, as a Where
    of an Equal of two Ranges and a ReduceSum of the later axis. onnxruntime's Einsum (1.32) dies of SIGFPE on
    a diagonal at a size 0 (bjtj->bt, fdf->f: ops3 hunt)."""
    import numpy as np
    while len(set(term)) != len(term):
        c = next(ch for ch in term if term.count(ch) > 1)
        first, later = term.index(c), term.index(c, term.index(c) + 1)
        n = e.op("Squeeze", [e.op("Shape", [x], start=first, end=first + 1)])
        r = e.op("Range", [e.const(np.array(0, np.int64)), n, e.const(np.array(1, np.int64))])
        along = [e.op("Reshape", [r, i64(e, [-1 if j == ax else 1 for j in range(len(term))])])
                 for ax in (first, later)]
        x = e.op("Where", [e.op("Equal", along), x, e.const(zero)])
        x = _summed_out(e, x, len(term), [later], zero.dtype)
        term = term[:later] + term[later + 1:]
    return x, term


def _summed_out(e, x: str, rank: int, axes: list[int], dtype) -> str:
    """x summed over axes, not kept; integers exactly, wrapping, as torch (onnxruntime's int64 ReduceSum goes
    through double: 2**53 + 1 + 1 + 1 gave 2**53 + 4; ints hunt)."""
    import numpy as np
    if np.issubdtype(dtype, np.integer):
        from .tensor_ops import integer_sum
        return integer_sum(e, x, rank, axes, False, None, dtype)
    return reduce_op(e, "ReduceSum", x, axes, 0)


def _single(e, x: str, term: str, out: str, outs, dtype) -> str:
    """One operand of distinct letters: the letters the output leaves out summed, the rest in its order."""
    gone = [j for j, ch in enumerate(term) if ch not in out]
    if gone:
        x = _summed_out(e, x, len(term), gone, dtype)
        term = "".join(ch for ch in term if ch in out)
    perm = [term.index(c) for c in out]
    if perm == list(range(len(perm))):
        return e.op("Identity", [x], outputs=outs)
    return e.op("Transpose", [x], outputs=outs, perm=perm)


def _chain(e, names: list, terms: list, out: str, sizes: dict, outs, dtype) -> str | None:
    """Operands contracted pairwise, left to right, as torch contracts them, each pair by _matmul; a letter that
    neither a later operand nor the output reads is summed out of its operand first (bij,bjk->b). onnxruntime's
    Einsum (1.32) dies of SIGFPE at a size 0 in three- and four-operand forms too (Mamba-2's
    blhn,bshn,bhls,bshp->blhp; ssm hunt). The terms' letters are distinct (_diagonal has taken the diagonals)."""

    def needed(k: int) -> set:
        return set(out).union(*terms[k + 1:])

    def summed(x, term: str, keep: set):
        axes = [j for j, ch in enumerate(term) if ch not in keep]
        if not axes:
            return x, term
        return _summed_out(e, x, len(term), axes, dtype), "".join(ch for ch in term if ch in keep)

    x, cur = summed(names[0], terms[0], needed(0))
    for k in range(1, len(terms)):
        y, nxt = summed(names[k], terms[k], needed(k) | set(cur))
        last = k == len(terms) - 1
        res = out if last else "".join(ch for ch in cur + "".join(c for c in nxt if c not in cur) if ch in needed(k))
        x = _matmul(e, [x, y], [cur, nxt], res, sizes, outs if last else None)
        cur = res
    return x


def _matmul(e, names: list, terms: list, out: str, sizes: dict, outs) -> str | None:
    """Two operands, each letter in both (batch or contracted) or in one and the output: Transposes, a MatMul
    and a Transpose, written out; a group of several letters (left, contracted or right: bijd,bkjd->bik) is
    Reshaped into one dim. onnxruntime's Einsum kernel (1.32) dies of SIGFPE on `bqd,bkd->bqk` at a batch or
    contracted size 0, killing the process; MatMul takes size 0 as torch does (ops2, docs3, review58 hunts).
    A letter in one operand alone and not the output (_chain sums such letters first) or repeated in one
    (_diagonal takes it first) is not written here. The result's name (written to outs when given), None where
    not written."""
    import numpy as np
    if len(terms) != 2 or any(len(set(t)) != len(t) for t in terms):
        return None
    a, b = terms
    batch = [c for c in out if c in a and c in b]
    left, right = [c for c in a if c not in b], [c for c in b if c not in a]
    summed = [c for c in a if c in b and c not in out]
    groups = (left, summed, right)
    if any(c not in out for c in left + right):
        return None
    nb = len(batch)

    def arrange(x, term: str, order: list[str]):
        perm = [term.index(c) for c in order]
        return e.op("Transpose", [x], perm=perm) if perm != list(range(len(perm))) else x

    def dims(x, order: list[str], parts: list[list[str]]):
        """A Reshape's sizes: x's batch dims as they run, then each group as one dim (its product read from
        x's shape where a letter is symbolic)."""
        got = [e.op("Shape", [x], start=0, end=nb)] if nb else []
        for g in parts:
            if all(isinstance(sizes[c], int) for c in g):
                got.append(i64(e, [int(np.prod([sizes[c] for c in g], dtype=np.int64))]))
                continue
            k = order.index(g[0])  # a group's letters lie side by side in x
            got.append(reduce_op(e, "ReduceProd", e.op("Shape", [x], start=k, end=k + len(g)), [0], 1))
        return e.op("Concat", got, axis=0)
    xo, yo = batch + left + summed, batch + summed + right
    xa, ya = arrange(names[0], a, xo), arrange(names[1], b, yo)
    got = batch + left + right  # the letters once each group has its own dims back
    perm = [got.index(c) for c in out]
    if not summed and not (left and right):  # an elementwise product (bls,bls->bls; bi,b->bi): a broadcast Mul,
        # where MatMul multiplied one 1x1 matrix per element (0.6 s for 2M of them). An outer product stays a
        # MatMul (L x 1 x R each): onnx's shape inference with data_prop refused i,j->ij as Unsqueezes and a Mul
        x = e.op("Unsqueeze", [xa, i64(e, list(range(nb + len(left), nb + len(left) + len(right))))]) if right else xa
        y = e.op("Unsqueeze", [ya, i64(e, list(range(nb, nb + len(left))))]) if left else ya
        if perm == list(range(len(perm))):
            return e.op("Mul", [x, y], outputs=outs)
        return e.op("Transpose", [e.op("Mul", [x, y])], outputs=outs, perm=perm)
    if any(len(g) > 1 for g in groups):
        x = e.op("Reshape", [xa, dims(xa, xo, [left, summed])], allowzero=1)
        y = e.op("Reshape", [ya, dims(ya, yo, [summed, right])], allowzero=1)
    else:  # [batch, L, K] and [batch, K, R] as they are, a 1 where a group has no letter
        pad_x, pad_y = [nb] * (not left) + [nb + 1] * (not summed), [nb] * (not summed) + [nb + 1] * (not right)
        x = e.op("Unsqueeze", [xa, i64(e, pad_x)]) if pad_x else xa
        y = e.op("Unsqueeze", [ya, i64(e, pad_y)]) if pad_y else ya
    steps = [("MatMul", [y], {})]
    if len(left) != 1 or len(right) != 1:
        back = [e.op("Shape", [xa], start=0, end=nb)] if nb else []
        for c in left + right:
            src, order = (xa, xo) if c in left else (ya, yo)
            back.append(i64(e, [sizes[c]]) if isinstance(sizes[c], int) else
                        e.op("Shape", [src], start=order.index(c), end=order.index(c) + 1))
        steps.append(("Reshape", [e.op("Concat", back, axis=0) if back else i64(e, [])], {"allowzero": 1}))
    if perm != list(range(len(perm))):
        steps.append(("Transpose", [], {"perm": perm}))
    z = x
    for k, (op, more, attrs) in enumerate(steps):  # the last writes the output
        z = e.op(op, [z, *more], outputs=outs if k == len(steps) - 1 else None, **attrs)
    return z


def _grad(b, c, ins, outs, gouts):
    """For operand k: the einsum of g with the other operands giving k's letters. A letter of k found in
    neither (summed in k alone), or broadcast (size 1 in k), is left out there and g is stretched back over
    it (unsqueeze, then expand to k's shape). A letter repeated within k (a diagonal) is refused."""
    p = plan(c.attrs["equation"], list(c.in_types))
    res = []
    for k, (x, t) in enumerate(zip(ins, c.in_types)):
        if not b.needs(k):
            res.append(None)
            continue
        term = p.terms[k]
        twice = sorted({ch for ch in term if term.count(ch) > 1})
        if twice:
            fail(f"einsum: no gradient for operand {k}, whose subscripts repeat {twice[0]} (a diagonal, "
                 f"'{c.attrs['equation']}'); take the diagonal another way, or keep the operand constant")
        others = [j for j in range(len(ins)) if j != k]
        reach = set(p.out).union(*(p.terms[j] for j in others))
        squeezed = set(p.squeezed(k, t))
        keep = [j for j, ch in enumerate(term) if ch in reach and j not in squeezed]
        target = "".join(term[j] for j in keep)
        eq = ",".join([p.out] + [p.terms[j] for j in others]) + "->" + target
        gk = b.op("einsum", gouts[0], *[ins[j] for j in others], equation=eq)
        for j in range(len(term)):
            if j not in keep:
                gk = b.op("unsqueeze", gk, dim=j)
        res.append(b.broadcast_to(gk, x))
    return res


def _cost(c) -> int:
    """As torch contracts: a letter no later operand nor the output needs is summed out of its operand first
    (an add per element), then the operands pairwise, left to right, a multiply and an add for each
    combination of the pair's letters, a multiply alone where the pair sums no letter (an outer product,
    "bi,bj->bij", as `*` counts it). Every letter's combinations at once counted "ij,jk,kl->il" over 64-long
    letters as 33.5M FLOPs, for the 1.05M of two matmuls."""
    p = plan(c.attrs["equation"], list(c.in_types))
    size = lambda letters: numel(tuple(p.sizes[ch] for ch in letters))  # noqa: E731

    def needed_after(k: int) -> set:
        return set(p.out).union(*[set(t) for t in p.terms[k + 1:]])

    def summed(letters: set, needed: set) -> tuple[set, int]:  # letters kept, and the adds of summing the rest
        kept = letters & needed
        return kept, (size(letters) if kept != letters else 0)

    cur, total = summed(set(p.terms[0]), needed_after(0))
    for k in range(1, len(p.terms)):
        nxt, adds = summed(set(p.terms[k]), needed_after(k) | cur)
        both, kept = cur | nxt, (cur | nxt) & needed_after(k)
        total += adds + (2 if kept != both else 1) * size(both)
        cur = kept
    return total


register(OpDef(
    name="einsum", inputs=("*operands",), category="math", attrs=(Attr("equation", "str"),),
    call_order=("equation", "operands"), infer=_infer, lower=_lower, grad=_grad, cost=_cost,
    doc="Sums of products over the letters of an equation (torch.einsum): "
        "einsum(\"bij,bjk->bik\", [a, b]), the operands in one list as concat's. Without '->' the output is "
        "torch's (letters written once, in ASCII order); '...' broadcasts, and so does a dim of size 1 against "
        "a larger one. bfloat16 is computed in float32. Operands are contracted "
        "pairwise, left to right, as torch does: each pair (bhqd,bhkd->bhqk; bijd,bkjd->bik, each group of "
        "letters Reshaped into one dim) as Transposes and a MatMul (a Mul where it sums no letter and one side "
        "has no letter of its own), a letter no later operand nor the output reads summed out first; "
        "a letter an operand repeats (a diagonal, 'ii->i') is taken by a mask and a ReduceSum first, and one "
        "operand is a ReduceSum and a Transpose: no ONNX Einsum, whose onnxruntime kernel dies on some "
        "equations at size 0. Integers sum exactly, wrapping as torch's (by MatMuls: onnxruntime's int64 "
        "ReduceSum rounds past 2**53), in the operands' dtype: torch's einsum of one int32 operand that sums a "
        "letter gives int64. The gradient is an einsum per operand; an operand whose subscripts repeat a "
        "letter has none.",
))
