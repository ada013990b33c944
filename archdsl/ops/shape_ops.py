"""Layout ops: flatten, reshape, transpose, permute, concat, roll; torch semantics (split, chunk and unbind:
split_ops.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..types import Sym, difference_bounds, dim_add, dim_exact_div, integer_terms, is_formula, numel
from ._common import one_dtype, shape_str
from .registry import Attr, OpDef, fail, register
from .run_time_dims import emit_dim, plan_dim, shape_reader
from .shapes import norm_axis, parity_hint, prod


def _flatten_infer(ins, a):
    x = ins[0]
    if x.rank == 0:
        return [x.with_shape((1,))]
    s = norm_axis(a["start_dim"], x.rank, "start_dim")
    e = norm_axis(a["end_dim"], x.rank, "end_dim")
    if e < s:
        fail(f"flatten: end_dim {a['end_dim']} comes before start_dim {a['start_dim']}", "end_dim")
    return [x.with_shape(x.shape[:s] + (prod(x.shape[s:e + 1]),) + x.shape[e + 1:])]


def _flatten_lower(e, ins, outs, c):
    x = c.in_types[0]
    if x.rank == 0:  # torch.flatten of a scalar is [1]
        e.op("Reshape", [ins[0], e.const(np.array([1], dtype=np.int64))], outputs=outs)
        return
    s = norm_axis(c.attrs["start_dim"], x.rank)
    end = norm_axis(c.attrs["end_dim"], x.rank)
    tail, middle = x.shape[end + 1:], x.shape[s:end + 1]
    known = all(isinstance(d, int) for d in middle)
    if not flatten_reads_shape(x.shape, s, end):
        # one constant target: the lead's 0s copy its dims, and a -1 is sized by the other dims, none of them
        # 0 unless the element count is 0 too
        head = [0] * s + [int(np.prod(middle)) if known else -1] + list(tail)
        e.op("Reshape", [ins[0], e.const(np.array(head, dtype=np.int64))], outputs=outs)
        return
    # every size read from the input's shape at run time, the flattened one multiplied out, with allowzero=1:
    # a -1 beside a lead dim that is 0 (an empty batch) names no size (onnxruntime refused B = 0), a 0 read
    # at run time in the tail would copy a dim instead ([T, 2, B] flatten(0, 1) at B = 0 gave (0, 1, 1)),
    # and so would a static 0 (x[:, :, 3:] of 3 flattened: (0, 2, 4) for (0, 0, 4))
    size = _i64(e, int(np.prod(middle))) if known else \
        e.op("ReduceProd", [e.op("Shape", [ins[0]], start=s, end=end + 1)], keepdims=1)
    parts = ([e.op("Shape", [ins[0]], start=0, end=s)] if s else []) + [size] + \
        ([e.op("Shape", [ins[0]], start=end + 1)] if tail else [])
    e.op("Reshape", [ins[0], e.op("Concat", parts, axis=0)], outputs=outs, allowzero=1)


def flatten_reads_shape(shape: tuple, start: int, end: int) -> bool:
    """Whether flatten's target is read from the input's shape at run time rather than a constant: a symbolic
    dim after end, both a symbolic dim kept before start and one merged, or a 0 anywhere."""
    def sym(dims) -> bool:
        return any(not isinstance(d, int) for d in dims)
    return sym(shape[end + 1:]) or 0 in shape or sym(shape[:start]) and sym(shape[start:end + 1])


def reshape_reads_shape(shape: tuple, target: tuple) -> bool:
    """Whether reshape's lowering reads its target at run time (_reshape_lower) rather than writing a constant
    one: a symbolic dim moved from its place, more sizes of no input dim than ONNX's -1 can stand for, or a
    dim kept in place (ONNX's 0) beside a -1 (which names no size where that dim is 0)."""
    kept = moved = minus = False
    unresolved = 0
    for i, d in enumerate(target):
        if isinstance(d, int):
            minus = minus or d == -1
        elif i < len(shape) and shape[i] == d:
            kept = True
        elif d in shape:
            moved = True
        else:
            unresolved += 1
    return moved or unresolved > (0 if minus else 1) or kept and (minus or unresolved > 0)


def _view_grad(b, c, ins, outs, gouts):
    """A view's gradient is g viewed back in the input's shape."""
    return [b.reshape_like(gouts[0], ins[0])]


register(OpDef(
    name="flatten", inputs=("x",), category="shape", grad=_view_grad,
    attrs=(Attr("start_dim", "int", 1), Attr("end_dim", "int", -1)),
    infer=_flatten_infer, lower=_flatten_lower, cost=lambda c: 0,
    doc="Merge dims start_dim..end_dim into one (torch.flatten); default keeps the batch dim.",
))


def _reshape_target(x, shape):
    """Resolve -1 against the input's element count where it is known."""
    shape = list(shape)
    if sum(1 for d in shape if d == -1) > 1:
        fail("reshape: at most one dim may be -1")
    if any(isinstance(d, int) and (d < -1 or d == 0) for d in shape):  # ONNX would read a 0 as "copy the dim"
        keep = (": a 0 is not \"keep this dim\" as in ONNX's Reshape; write the size (a dim's name, or "
                "shape(x)[i] inside a block) or -1") if 0 in shape else ""
        fail(f"reshape: dims must be positive or -1, got {shape}{keep}", "shape")
    known = prod([d for d in shape if d != -1])
    total = prod(x.shape)
    if -1 in shape:
        if isinstance(known, int) and known == 0:
            fail("reshape: cannot infer -1 with a zero-size dim")
        # ONNX Reshape fails unless -1 divides exactly: B*6 into [4, -1, 6] is B/4, which times 4 is B again
        q = dim_exact_div(total, known)
        if isinstance(total, int) and isinstance(known, int) and total % known or _fraction(total, known) or \
                _never_whole(q):
            fail(f"reshape: cannot reshape {shape_str(x)} ({total} elements) into {shape}")
        shape[shape.index(-1)] = q
    elif isinstance(total, int) and isinstance(known, int) and total != known:
        fail(f"reshape: cannot reshape {shape_str(x)} ({total} elements) into {shape} ({known} elements)")
    elif total != known and _never_equal(total, known):
        a, b = monomial(total), monomial(known)
        some = "" if a is not None and b is not None and a[1] == b[1] else " for any value of the symbolic dims"
        fail(f"reshape: cannot reshape {shape_str(x)} ({total} elements) into {shape} ({known} elements){some}")
    return tuple(shape)


def _never_whole(q) -> bool:
    """A -1 that is a fraction and no symbol: 4/3 (a pixel_unshuffle's 4 channels into 3), whatever the sizes."""
    terms = integer_terms(q) if isinstance(q, Sym) else None
    return terms is not None and set(terms[0]) <= {()} and terms[1] > 1


def monomial(d) -> tuple[int, tuple] | None:
    """(coefficient, symbol factors) of a dim, or None for a formula that is not a product."""
    if isinstance(d, int):
        return d, ()
    return None if is_formula(d) else (d.coef, tuple(sorted(d.factors)))


def _fraction(total, known) -> bool:
    """-1 would be a constant that is not a whole number: 8*B elements into [B, -1, 3] is 8/3."""
    a, b = monomial(total), monomial(known)
    return a is not None and b is not None and a[1] == b[1] and b[0] != 0 and a[0] % b[0] != 0


def _never_equal(total, known) -> bool:
    """No whole values of the symbols make the counts equal: 4*B into [3, 5] (4 does not divide 15), or 8*B
    into [3*B] (same symbols, other coefficient), or sums whose difference has one sign at every size of at
    least 1 (a class token's [B, T+1, 4] into [B, T, 4]: 4*B more)."""
    a, b = monomial(total), monomial(known)
    if a is None or b is None:
        lo, hi = difference_bounds(total, known, least=1)
        return lo is not None and lo > 0 or hi is not None and hi < 0
    left, right = pinned(a, b)  # the symbols both sides have cancel ([B, T, 6] into [B, 9]: 6*T = 9, never)
    if left == right:
        return a[0] != b[0]
    if not right:  # symbols into a fixed count: their coefficient must divide it
        return a[0] != 0 and b[0] % a[0] != 0
    if not left:
        return b[0] != 0 and a[0] % b[0] != 0
    return False


def pinned(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    """The symbol factors of two monomials (coefficient, factors) left once those they share cancel."""
    left, right = Counter(a[1]), Counter(b[1])
    shared = left & right
    return tuple(sorted((left - shared).elements())), tuple(sorted((right - shared).elements()))


def _unresolved(x, target) -> list:
    """Target dims that are neither ints nor dims of x: the lowering leaves one to ONNX's -1 and reads the
    others from the shape of a model input or an earlier value that has them."""
    return [d for d in target if not isinstance(d, int) and d not in x.shape]


def _reshape_infer(ins, a):
    x = ins[0]
    target = list(a["shape"])
    unresolved = _unresolved(x, target)
    if len(unresolved) + (-1 in target) > 1 and (-1 in target or not _same_count(prod(target), prod(x.shape))) and not (
            -1 in target and len(unresolved) == 1 and _exact_rest(x, target)):  # [B, 3, N*2, -1]: the -1 is 2*M
        # several sizes read at run time ([B, 16, H*W] into [B, 16, H, W]) only where the counts are the same
        # product: with -1, or with counts that merely may be equal, ONNX's Reshape would decide at run time
        fail(f"reshape: {', '.join(map(str, unresolved))} {'is' if len(unresolved) == 1 else 'are'} not a dim of "
             f"{shape_str(x)}; one such dim (or -1) is left to the element count, and more only where the "
             f"target's element count is the input's ({prod(target) if -1 not in target else 'with -1: unknown'} "
             f"vs {prod(x.shape)})")
    return [x.with_shape(_reshape_target(x, target))]


def _same_count(a, b) -> bool:
    """Whether two element counts are the same product written two ways: 8*(H//2)*(W//2)*B and
    16*((W//2)/2)*(H//2)*B (a pooled width split in two and written back), which a product of floor divisions
    keeps as written; one divided by the other cancels to 1."""
    return a == b or isinstance(a, Sym) and isinstance(b, Sym) and 1 in (dim_exact_div(a, b), dim_exact_div(b, a))


def _exact_rest(x, target) -> bool:
    """Whether the -1 beside one size of no input dim is a whole product of the input's sizes (12*B*M*N over
    3*B*2*N is 2*M), so that the element counts agree whatever the sizes. A division is whole where the rest
    has none, or only inside factors of the input's own dims (((H+1)//2) of a strided conv's flattened map
    over its width: review117, refused before); one the division made ((T+1)//2 of (T+1) over 2) is not."""
    rest = dim_exact_div(prod(x.shape), prod([d for d in target if d != -1]))
    if isinstance(rest, int):
        return True
    own = {f for d in x.shape if isinstance(d, Sym) for f in d.factors}
    return isinstance(rest, Sym) and all(f in own or "/" not in f for f in rest.factors)


def _reshape_lower(e, ins, outs, c):
    x = c.in_types[0]
    target = list(c.attrs["shape"])
    unresolved = _unresolved(x, target)
    # the one dim left to ONNX's -1, if any; not where two products of sizes differ ([B, T, 4] into [12*B] is
    # 12*B at T = 3 alone: -1 there gave 4*B*T at every T, under a declared 12*B; review114 hunt), one of them a
    # formula too ([4*(T+1)] into [N]: -1 gave 4*(T+1) values under a declared N at every N; mutnew4 hunt)
    total, known = prod(x.shape), prod(target)
    pinned_dims = not _same_count(total, known) and (monomial(total) is not None or monomial(known) is not None)
    minus_one = -1 not in target and not pinned_dims and unresolved[-1:]
    spec: list = []
    for i, d in enumerate(target):
        if isinstance(d, int):
            spec.append(d)
        elif i < x.rank and x.shape[i] == d:
            spec.append(0)
        elif d in x.shape:
            spec.append(("dim", x.shape.index(d)))
        elif minus_one and d is minus_one[0] and i == max(j for j, t in enumerate(target) if t is d):
            spec.append(-1)
        else:  # several: _reshape_infer made sure the counts agree; the size comes from a value that has it,
            size = e.dim(d)  # or is computed from the input's dims (2*N of [B, N, 2, M, 2]: MobileViT's fold)
            if size is None:
                known, read, product = shape_reader(e, ins[0], x)
                plan = plan_dim(d, x.shape, known)
                size = emit_dim(e, plan, known, read, product) if plan is not None else None
            if size is None:
                fail(f"reshape: the size {d} is not the size of any dim of a model input or of a value computed "
                     f"before this reshape, so it cannot be read at run time; merge dims with flatten(x, "
                     f"start, end) instead, or reshape where a value of that size exists")
            spec.append(("size", size))
    if all(not isinstance(v, tuple) for v in spec) and not (0 in spec and -1 in spec):
        e.op("Reshape", [ins[0], e.const(np.array(spec, dtype=np.int64))], outputs=outs)
        return
    # sizes read at run time may be 0 (an empty batch), which Reshape reads as "copy the input's dim" unless
    # allowzero=1 ([T, 2, B] into [T, 2, 1, B] at B = 0 gave (T, 2, 1, 1)); and a -1 beside a 0 names no
    # size ([B, T, 4] into [B, -1] failed at B = 0). So every size is written out, read from the input's
    # shape, the -1's as run_time_dims plans it.
    sizes = _every_size(e, ins[0], x, c.out_types[0].shape, spec)
    if sizes is not None:
        e.op("Reshape", [ins[0], e.op("Concat", sizes, axis=0)], outputs=outs, allowzero=1)
        return
    # a -1 whose size run_time_dims cannot write out (a min or floor of a shape rule, a division by a size):
    # ONNX's reading, which at a 0-size dim fails or gives another shape (REFERENCE)
    if all(not isinstance(v, tuple) for v in spec):
        e.op("Reshape", [ins[0], e.const(np.array(spec, dtype=np.int64))], outputs=outs)
        return
    read = shape_reader(e, ins[0], x)[1]
    parts = [(read(v[1]) if v[0] == "dim" else v[1]) if isinstance(v, tuple) else _i64(e, v) for v in spec]
    e.op("Reshape", [ins[0], e.op("Concat", parts, axis=0)], outputs=outs)


def _every_size(e, x_name: str, x, out_shape: tuple, spec: list) -> list | None:
    """The target's sizes as int64 tensors, none of them 0-for-copy or -1; None (and nothing emitted) where the
    -1's dim holds a size neither the input's shape nor an earlier value has (run_time_dims). Sizes that are the
    input's dims in order are one slice of its shape ([B, T] of [B, T, C] is Shape(start=0, end=2))."""
    known, read, product = shape_reader(e, x_name, x)
    plans = {i: plan_dim(out_shape[i], x.shape, known) for i, v in enumerate(spec) if v == -1}
    if None in plans.values():
        return None
    items: list = []  # [lo, hi] for the input's dims lo..hi-1, or a size already emitted, or the -1's plan
    for i, v in enumerate(spec):
        if isinstance(v, tuple) and v[0] == "dim" or v == 0:
            at = v[1] if isinstance(v, tuple) else i
            if items and isinstance(items[-1], list) and items[-1][1] == at:
                items[-1][1] = at + 1
            else:
                items.append([at, at + 1])
        elif isinstance(v, tuple):
            items.append(v[1])
        elif v == -1 and plans[i][0] == "formula":
            items.append(plans[i])  # from the element count, once the others are written
        else:
            items.append(emit_dim(e, plans[i], known, read, product) if v == -1 else _i64(e, v))
    sizes = [e.op("Shape", [x_name], start=t[0], end=t[1]) if isinstance(t, list) else t for t in items]
    for k, t in enumerate(sizes):
        if isinstance(t, tuple):
            sizes[k] = _counted(e, x_name, [s for s in sizes if s is not t], emit_dim(e, t, known, read, product))
    return sizes


def _counted(e, x_name: str, others: list, formula: str) -> str:
    """A -1's size as the element count over the other sizes, where they are not 0: its formula over the
    symbols (run_time_dims' last tier) undercounts a slice past the end (x[:, 3:] is 0 rows at T = 1, the
    formula T - 3 says -2, and in a sum S + T - 3 that is no longer a 0 that Max can restore). Beside a 0 (an
    empty batch) the count names no size, and the formula stands."""
    total = e.op("ReduceProd", [e.op("Shape", [x_name])], keepdims=1)
    if not others:
        return total
    rest = e.op("ReduceProd", [e.op("Concat", others, axis=0) if len(others) > 1 else others[0]], keepdims=1)
    one = _i64(e, 1)
    return e.op("Where", [e.op("Greater", [rest, _i64(e, 0)]), e.op("Div", [total, e.op("Max", [rest, one])]),
                          formula])


def sizes_written_out(x_shape: tuple, target: tuple) -> bool:
    """Whether _reshape_lower can write out the size a -1 stands for in this target (the dim that is not one of
    the input's, if any) from the input's own dims, where a 0 at run time leaves ONNX's -1 no size."""
    left = [d for d in target if isinstance(d, Sym) and d not in x_shape]
    return not left or plan_dim(left[-1], x_shape, lambda s: s in x_shape) is not None


register(OpDef(
    name="reshape", inputs=("x",), category="shape", attrs=(Attr("shape", "dims"),),
    infer=_reshape_infer, lower=_reshape_lower, cost=lambda c: 0, grad=_view_grad,
    doc="View with a new shape: ints, symbolic dims of the input (in a model; a block does not see the model's "
        "symbols by name: shape(x)[0] or -1 there), and at most one -1 (torch.reshape); one "
        "other symbolic size is left to the element count, and several where the target's element count is "
        "the input's ([B, 16, H*W] into [B, 16, H, W]; with a -1, where it is a whole product of the sizes: "
        "[B, 3, N * 2, -1] of [B, 3, N, 2, M, 2]): their sizes are read at run time from a model input, an "
        "earlier value that has them, or the input's own dims (N * 2). A symbolic dim is not split by a number "
        "([B, H // 4, 4, W // 4, 4, C] "
        "of a [B, H, W, C]: nothing says 4 divides H, so the element counts differ): split it with -1 "
        "(reshape(h, [B, H, -1, 4, C]) splits W, as Swin's windows), take the count from the result "
        "(n = shape(p)[2]) and write it back from there ([B, H, n * 4, C]).",
))


def _perm_infer(ins, a):
    x = ins[0]
    dims = [norm_axis(d, x.rank, "permute dim") for d in a["dims"]]
    if sorted(dims) != list(range(x.rank)):
        fail(f"permute: {list(a['dims'])} is not a permutation of the {x.rank} dims of {shape_str(x)}", "dims")
    return [x.with_shape(tuple(x.shape[d] for d in dims))]


def _perm_grad(b, c, ins, outs, gouts):
    r = c.in_types[0].rank
    perm = [d % r for d in c.attrs["dims"]]
    return [b.op("permute", gouts[0], dims=tuple(perm.index(i) for i in range(r)))]


register(OpDef(
    name="permute", inputs=("x",), category="shape", attrs=(Attr("dims", "ints"),),
    infer=_perm_infer, cost=lambda c: 0, grad=_perm_grad,
    lower=lambda e, ins, outs, c: e.op("Transpose", ins, outputs=outs,
                                       perm=[d % c.in_types[0].rank for d in c.attrs["dims"]]),
    doc="Reorder dims (torch.permute).",
))


def _swap(x, a):
    d0 = norm_axis(a["dim0"], x.rank, "dim0")
    d1 = norm_axis(a["dim1"], x.rank, "dim1")
    perm = list(range(x.rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return perm


register(OpDef(
    name="transpose", inputs=("x",), category="shape",
    attrs=(Attr("dim0", "int", -2), Attr("dim1", "int", -1)),
    infer=lambda ins, a: [ins[0].with_shape(tuple(ins[0].shape[p] for p in _swap(ins[0], a)))],
    lower=lambda e, ins, outs, c: e.op("Transpose", ins, outputs=outs, perm=_swap(c.in_types[0], c.attrs)),
    cost=lambda c: 0, doc="Swap two dims (torch.transpose); default the last two, as x.T.",
    grad=lambda b, c, ins, outs, gouts: [b.op("transpose", gouts[0], dim0=c.attrs["dim0"], dim1=c.attrs["dim1"])],
))


def _concat_infer(ins, a):
    if not ins:
        fail("concat: needs at least one tensor")
    first = ins[0]
    ax = norm_axis(a["axis"], first.rank)
    total = 0
    one_dtype("concat", ins)
    for t in ins:
        if t.rank != first.rank or any(t.shape[i] != first.shape[i] for i in range(first.rank) if i != ax):
            hint = next((h for i in range(min(t.rank, first.rank)) if i != ax
                         for h in [parity_hint(first.shape[i], t.shape[i])] if h), "")
            fail(f"concat: shapes {', '.join(shape_str(u) for u in ins)} differ outside axis {a['axis']}{hint}")
        total = dim_add(total, t.shape[ax])  # H/2 + H/2 is H
    return [first.with_shape(first.shape[:ax] + (total,) + first.shape[ax + 1:])]


register(OpDef(
    name="concat", inputs=("*xs",), category="shape", aliases=("cat",), attrs=(Attr("axis", "int", 1),),
    infer=_concat_infer, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: list(b.op("autodiff.concat_grad", gouts[0], *ins, axis=c.attrs["axis"]))
    if len(ins) > 1 else [gouts[0]],
    lower=lambda e, ins, outs, c: e.op("Concat", ins, outputs=outs, axis=c.attrs["axis"]),
    doc="Join a list of tensors along axis (torch.cat).",
))


def _roll_axes(x, a) -> list[tuple[int, int]]:
    """(axis, shift) per rolled dim: in 0..n-1 for a known length (torch.roll's shift wraps modulo it), as
    written for a symbolic one (wrapped at run time)."""
    shifts, dims = a["shifts"], a["dims"]
    if len(shifts) != len(dims) or not dims:
        fail(f"roll: give one shift per dim, got shifts {list(shifts)} and dims {list(dims)}")
    axes = [norm_axis(d, x.rank) for d in dims]
    out = []
    for ax, k in zip(axes, shifts):
        n = x.shape[ax]
        out.append((ax, (k % n if n else 0) if isinstance(n, int) else k))
    return out


def _i64(e, v: int) -> str:
    return e.const(np.array([v], dtype=np.int64))


def _roll_infer(ins, a):
    _roll_axes(ins[0], a)
    return [ins[0]]


def _roll_lower(e, ins, outs, c):
    """Per dim: the last `k` rows, then the others (Slice, Slice, Concat)."""
    y = ins[0]
    steps = [(ax, k) for ax, k in _roll_axes(c.in_types[0], c.attrs) if k]
    if not steps:
        e.op("Identity", [y], outputs=outs)
        return
    for i, (ax, k) in enumerate(steps):
        n = c.in_types[0].shape[ax]
        if isinstance(n, int):
            cut, end = _i64(e, n - k), _i64(e, n)
        else:  # n - k mod n at run time (Mod of int64 takes the divisor's sign, as Python; n = 0 divides by 1)
            length = e.op("Shape", [ins[0]], start=ax, end=ax + 1)
            wrapped = e.op("Mod", [_i64(e, k), e.op("Max", [length, _i64(e, 1)])])
            cut, end = e.op("Sub", [length, wrapped]), length
        tail = e.op("Slice", [y, cut, end, _i64(e, ax)])
        head = e.op("Slice", [y, _i64(e, 0), cut, _i64(e, ax)])
        y = e.op("Concat", [tail, head], outputs=outs if i == len(steps) - 1 else None, axis=ax)


register(OpDef(
    name="roll", inputs=("x",), category="shape",
    attrs=(Attr("shifts", "ints", symbolic="a shift known only at run time (SimCLR's roll(p, B)) is a take of wrapped "
                "positions: take(x, (positions(x, dim=d) - shift) % shape(x)[d], axis=d)"), Attr("dims", "ints")),
    infer=_roll_infer, lower=_roll_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("roll", gouts[0], shifts=tuple(-k for k in c.attrs["shifts"]),
                                              dims=tuple(c.attrs["dims"]))],
    doc="Shift elements along dims, wrapping around: torch.roll(x, shifts, dims), dims always given (Swin's "
        "cyclic shift); over a symbolic dim the shift wraps at run time.",
))

_ = numel
