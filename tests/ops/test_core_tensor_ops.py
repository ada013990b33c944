"""Core ops, property-based (see core_harness.py for what every case checks): elementwise math,
indexing and layout, generic tensor ops."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import FEW, NEWEST, SETTINGS, SYM, b, close, covers, dim, erf_ref, rand, refused, run_op

# ---------------- elementwise math ----------------

@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast: each dim of the result kept or set to 1, the second maybe shorter."""
    out = draw(st.lists(dim, min_size=1, max_size=3))
    a = [d if draw(st.booleans()) else 1 for d in out]
    b_ = [d if draw(st.booleans()) else 1 for d in out][draw(st.integers(0, len(out) - 1)):]
    return a, b_


_BIN = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}


@covers("add", "sub", "mul", "div", "pow")
@pytest.mark.parametrize("op", sorted(_BIN))
@FEW
@given(shapes=broadcast_pair(), swap=st.booleans(), k=st.sampled_from([2, 0.5, 3.0]))
def test_broadcasting_arithmetic(op, shapes, swap, k):
    sa, sb = shapes
    if swap:
        sa, sb = sb, sa
    a, c = rand(*sa, seed=1), rand(*sb, seed=2)
    if op in ("/", "**"):
        a, c = np.abs(a) + 0.5, np.abs(c) + 0.5
    y, _ = run_op(f"a {op} c", a=a, c=c)
    close(y, _BIN[op](a.astype(np.float64), c))
    # a number on either side becomes a constant of the tensor's dtype
    y, _ = run_op(f"a {op} {k}", a=a)
    close(y, _BIN[op](a.astype(np.float64), k))
    y, _ = run_op(f"{k} {op} a", a=a)
    close(y, _BIN[op](k, a.astype(np.float64)))


@covers("matmul")
@SETTINGS
@given(batch=st.lists(st.integers(1, 3), max_size=2), ones=st.lists(st.booleans(), min_size=2, max_size=2),
       drop=st.integers(0, 2), m=dim, k=dim, n=dim, vec=st.sampled_from(["", "a", "b", "ab"]), sym=SYM)
def test_matmul_broadcasting(batch, ones, drop, m, k, n, vec, sym):
    ba = [1 if ones[0] and i == 0 else d for i, d in enumerate(batch)]
    bb = [1 if ones[1] and i == len(batch) - 1 else d for i, d in enumerate(batch)][min(drop, len(batch)):]
    a = rand(k, seed=1) if "a" in vec else rand(*ba, m, k, seed=1)
    c = rand(k, seed=2) if "b" in vec else rand(*bb, k, n, seed=2)
    y, _ = run_op("a @ c", a=a, c=c, sym=sym and a.ndim > 1 and c.ndim > 1 and a.ndim == c.ndim and
                  a.shape[0] == c.shape[0] and a.ndim > 2)
    close(y, np.matmul(a.astype(np.float64), c))
    y, _ = run_op("matmul(a, c)", a=a, c=c)
    close(y, np.matmul(a.astype(np.float64), c))


_UNARY = {"-x": np.negative, "neg(x)": np.negative, "exp(x)": np.exp, "log(x)": np.log, "sqrt(x)": np.sqrt,
          "abs(x)": np.abs, "erf(x)": erf_ref, "reciprocal(x)": np.reciprocal}


@covers("neg", "exp", "log", "sqrt", "abs", "erf", "reciprocal")
@pytest.mark.parametrize("fn", sorted(_UNARY))
@FEW
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 9), sym=SYM)
def test_unary_math(fn, shape, seed, sym):
    x = rand(*shape, seed=seed)
    if fn in ("log(x)", "sqrt(x)", "reciprocal(x)"):
        x = np.abs(x) + 0.25
    y, _ = run_op(fn, x=x, sym=sym)
    close(y, _UNARY[fn](x.astype(np.float64)))


# ---------------- indexing and layout ----------------

def _index_item(draw, size: int) -> tuple[str, object]:
    kind = draw(st.sampled_from(["int", "slice", "all"]))
    if kind == "int":
        i = draw(st.integers(-size, size - 1))
        return str(i), i
    if kind == "all":
        return ":", slice(None)
    lo = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
    hi = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
    step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
    text = f"{'' if lo is None else lo}:{'' if hi is None else hi}" + ("" if step is None else f":{step}")
    return text, slice(lo, hi, step)


@covers("getitem")
@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), ellipsis=st.booleans())
def test_getitem(shape, data, ellipsis):
    x = rand(*shape)
    n = data.draw(st.integers(1, len(shape)))
    dims = shape[-n:] if ellipsis else shape[:n]
    items = [_index_item(data.draw, s) for s in dims]
    texts, keys = [t for t, _ in items], [k for _, k in items]
    if ellipsis:
        texts, keys = ["..."] + texts, [Ellipsis] + keys
    want = x[tuple(keys)]  # empty ones too: x[-5::-1] of 4 ran as x[::-1], python's -1 "before 0" read as the last
    y, _ = run_op(f"x[{', '.join(texts)}]", x=x)
    close(y, want)


@pytest.mark.parametrize("expr", ["x[-5::-1]", "x[-5:0:-1]", "x[-7:1:-2]", "x[-6:-9:-1]", "x[3:1]", "x[::-1]",
                                  "x[-4::-1]", "x[-5:-6:-1]"])
def test_getitem_backward_slices_before_the_start_are_empty(expr):
    """python's slice.indices gives -1 as the start of an empty backward slice ("before 0"), which ONNX's Slice
    read as the last element: x[-5::-1] of 4 elements ran as x[::-1] and the file failed the checker."""
    x = rand(4)
    want = eval(expr, {"x": x})
    y, _ = run_op(expr, x=x)
    assert y.shape == want.shape
    close(y, want)


@SETTINGS
@given(b_=st.integers(1, 3), t=st.integers(2, 4), f=dim, i=st.integers(-2, 1), hi=st.integers(1, 2))
def test_getitem_on_a_symbolic_dim(b_, t, f, i, hi):
    """x[:, i] on a symbolic T counts from the end at run time when negative; x[:, :hi] slices it."""
    x = rand(b_, t, f)
    sig = f"x: float32[{b_}, T, {f}]"
    for expr, want in ((f"x[:, {i}]", x[:, i]), (f"x[:, :{hi}]", x[:, :hi]), (f"x[..., {i}]", x[..., i % f])):
        if "..." in expr and not -f <= i < f:
            continue
        text = f"model m({sig}) -> y {{\n    y = {expr}\n}}\n"
        m = archdsl.compile_source(text, opt_level=0)
        onnx.checker.check_model(m, full_check=True)
        close(runtime.session(m, "cpu", 1).run(None, {"x": x})[0], want)


@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), data=st.data())
def test_strided_slices_of_symbolic_dims(shape, data):
    """x[:, 0::2], x[:, 1:-1:3], x[:, -5::2] over dims only known at run time: the size is a formula
    (ceil(length / step): (H+1)//2) that run_op checks against onnxruntime's, and the values are numpy's."""
    x = rand(*shape)
    texts, keys = [], []
    for size in shape:
        step = data.draw(st.integers(1, 3))
        kind = data.draw(st.sampled_from(["start", "from_end", "both_start", "end_from_end"]))
        lo = data.draw(st.integers(0, size - 1))
        if kind == "start":
            key, text = slice(lo, None, step), f"{lo}::{step}"
        elif kind == "from_end":
            key, text = slice(-(lo + 1), None, step), f"{-(lo + 1)}::{step}"
        elif kind == "both_start":
            hi = data.draw(st.integers(lo, size))
            key, text = slice(lo, hi, step), f"{lo}:{hi}:{step}"
        else:
            hi = -data.draw(st.integers(1, size - lo)) if size - lo >= 1 else None
            key, text = slice(lo, hi, step), f"{lo}:{'' if hi is None else hi}:{step}"
        texts.append(text)
        keys.append(key)
    want = x[tuple(keys)]
    y, _ = run_op(f"x[{', '.join(texts)}]", x=x, sym="all")
    close(y, want)


def test_a_backward_slice_of_a_symbolic_dim_says_flip():
    refused("model m(x: float32[B, T]) -> y {\n    y = x[:, ::-1]\n}\n",
            r"slicing symbolic dim T backwards \(step -1\): the reversed dim is flip\(x, \[1\]\)")


@covers("flatten", "permute", "transpose", "reshape")
@SETTINGS
@given(shape=st.lists(dim, min_size=2, max_size=4), data=st.data(), sym=SYM)
def test_layout_ops(shape, data, sym):
    x = rand(*shape)
    r = len(shape)
    start = data.draw(st.integers(0, r - 1))
    end = data.draw(st.integers(start, r - 1))
    y, _ = run_op(f"x -> flatten(start_dim={start}, end_dim={end - r if data.draw(st.booleans()) else end})", x=x,
                  sym=sym)
    close(y, x.reshape(shape[:start] + [-1] + shape[end + 1:]))
    perm = data.draw(st.permutations(range(r)))
    y, _ = run_op(f"x -> permute({list(perm)})", x=x, sym=sym)
    close(y, x.transpose(perm))
    d0, d1 = data.draw(st.integers(-r, r - 1)), data.draw(st.integers(-r, r - 1))
    y, _ = run_op(f"x -> transpose({d0}, {d1})", x=x, sym=sym)
    close(y, np.swapaxes(x, d0, d1))
    y, _ = run_op("x.T", x=x, sym=sym)
    close(y, np.swapaxes(x, -1, -2))
    rest = int(np.prod(shape[1:]))
    target = data.draw(st.sampled_from([[-1], [shape[0], -1], [shape[0], rest], [-1, 1, shape[-1]]]))
    text = [("B" if sym and i == 0 and d == shape[0] else str(d)) for i, d in enumerate(target)]
    y, _ = run_op(f"x -> reshape([{', '.join(text)}])", x=x, sym=sym)
    close(y, x.reshape(target))




@covers("floordiv", "remainder")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 9), integers=st.booleans())
def test_floordiv_and_remainder_round_as_python_and_torch(shape, seed, integers):
    """// rounds toward -inf and % takes the divisor's sign (Python, numpy, torch.div(rounding_mode="floor"),
    torch.remainder), for negative operands too: ONNX's integer Div truncates toward zero."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    if integers:
        a = rng.integers(-20, 20, shape)
        b = rng.choice([-7, -3, -1, 1, 2, 5], shape)
    else:
        a = rng.uniform(-5, 5, shape).astype(np.float32)
        b = rng.choice(np.array([-2.5, -0.75, 0.5, 1.25, 3.0], np.float32), shape)
    q, _ = run_op("a // b", a=a, b=b)
    r, _ = run_op("a % b", a=a, b=b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    close(q, torch.div(ta, tb, rounding_mode="floor").numpy())
    close(r, torch.remainder(ta, tb).numpy(), atol=1e-5)
    if integers:
        assert np.array_equal(q, a // b) and np.array_equal(r, a % b)

@covers("roll")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), sym=st.sampled_from([False, True, "all"]))
def test_roll_matches_torch(shape, data, sym):
    """torch.roll with one shift per dim: shifts past the length wrap, negative ones and negative dims too,
    over symbolic dims (wrapped at run time) as over known ones."""
    torch = pytest.importorskip("torch")
    r = len(shape)
    dims = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda a: a % r))
    shifts = [data.draw(st.integers(-7, 7)) for _ in dims]
    x = rand(*shape, seed=len(shape))
    y, _ = run_op(f"roll(x, {shifts}, {dims})", x=x, sym=sym)
    close(y, torch.roll(torch.from_numpy(x), tuple(shifts), tuple(dims)).numpy())


def test_roll_needs_a_shift_per_dim():
    with pytest.raises(archdsl.ArchError, match="give one shift per dim"):
        archdsl.check_source("model m(x: float32[2, T]) -> y { y = roll(x, [1, 2], [0]) }")

@covers("concat", "split")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       data=st.data())
def test_concat_and_split(shape, sizes, data):
    axis = data.draw(st.integers(0, len(shape)))
    neg = data.draw(st.booleans())
    ax_text = axis - len(shape) - 1 if neg else axis
    parts = [rand(*shape[:axis], s, *shape[axis:], seed=i) for i, s in enumerate(sizes)]
    names = [f"x{i}" for i in range(len(parts))]
    y, _ = run_op(f"concat([{', '.join(names)}], axis={ax_text})", **dict(zip(names, parts)))
    whole = np.concatenate(parts, axis=axis)
    close(y, whole)
    k = data.draw(st.integers(0, len(sizes) - 1))
    y, _ = run_op(f"split(x, {sizes}, axis={ax_text})[{k}]", x=whole)
    close(y, parts[k])
    chunk = data.draw(st.integers(1, whole.shape[axis]))
    pieces = [whole.take(range(i, min(i + chunk, whole.shape[axis])), axis=axis)
              for i in range(0, whole.shape[axis], chunk)]
    j = data.draw(st.integers(0, len(pieces) - 1))
    y, _ = run_op(f"split(x, {chunk}, axis={ax_text})[{j}]", x=whole)
    close(y, pieces[j])


# ---------------- generic tensor ops ----------------

@covers("unsqueeze", "squeeze", "expand")
@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data(), sym=SYM)
def test_unsqueeze_squeeze_expand(shape, data, sym):
    x = rand(*shape)
    r = len(shape)
    d = data.draw(st.integers(-r - 1, r))
    y, _ = run_op(f"x -> unsqueeze({d})", x=x, sym=sym)
    close(y, np.expand_dims(x, d))
    y, _ = run_op("x -> squeeze", x=x)
    close(y, np.squeeze(x))
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones:
        i = data.draw(st.sampled_from(ones))
        y, _ = run_op(f"x -> squeeze(dim=[{i}])", x=x, sym=sym and i != 0)
        close(y, np.squeeze(x, i))
    lead = data.draw(st.lists(st.integers(1, 2), max_size=1))
    target = lead + [s if s != 1 else data.draw(st.integers(1, 3)) for s in shape]
    text = [str(t) if s != t or data.draw(st.booleans()) else "-1" for t, s in zip(target[len(lead):], shape)]
    y, _ = run_op(f"x -> expand(shape=[{', '.join(map(str, lead + text))}])", x=x)
    close(y, np.broadcast_to(x, target))


_REDUCE = {"mean": np.mean, "sum": np.sum, "amax": np.max, "amin": np.min}


@covers("mean", "sum", "amax", "amin")
@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("fn", sorted(_REDUCE))
@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data(), keep=st.booleans(), sym=SYM)
def test_reductions(fn, opset, shape, data, keep, sym):
    x = rand(*shape)
    r = len(shape)
    axes = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda a: a % r))
    y, _ = run_op(f"x -> {fn}(dim={axes}, keepdim={b(keep)})", x=x, opset=opset, sym=sym)
    close(y, _REDUCE[fn](x.astype(np.float64), axis=tuple(axes), keepdims=keep))
    y, _ = run_op(f"{fn}(x)", x=x, opset=opset)
    close(y, np.asarray(_REDUCE[fn](x.astype(np.float64))))


@covers("where", "masked_fill")
@SETTINGS
@given(shapes=broadcast_pair(), seed=st.integers(0, 9), value=st.sampled_from(['"-inf"', "0.0", "-2.5", "7"]))
def test_where_and_masked_fill(shapes, seed, value):
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    c = rng.random(sa) > 0.5
    a, o = rand(*sa, seed=1), rand(*sb, seed=2)
    y, _ = run_op("where(c, a, o)", c=c, a=a, o=o)
    close(y, np.where(c, a, o))
    m = rng.random(sb) > 0.5
    y, _ = run_op(f"masked_fill(a, m, {value})", a=a, m=m)
    close(y, np.where(m, -np.inf if value == '"-inf"' else float(value), a))
    y, _ = run_op("a -> masked_fill(m)", a=a, m=m)   # default -inf
    close(y, np.where(m, -np.inf, a))


def _refused(src: str, words: str) -> None:
    with pytest.raises(archdsl.ArchError, match=re.escape(words)):
        archdsl.check_source(src)


@pytest.mark.parametrize("call,dtype,words", [
    ("masked_fill(x, m, value=2**40)", "int32", "value 1099511627776 does not fit the int32 tensor"),
    ("masked_fill(x, m, value=0.5)", "int64", "value 0.5 does not fit the int64 tensor"),
    ("causal_mask(x, value=2**64)", "int64", "does not fit the int64 tensor"),
    ("pad(x, [1, 1], value=1e30)", "int32", "pad: value 1e+30 does not fit the int32 tensor"),
    ("masked_fill(x, m, value=1e39)", "float32", "value 1e+39 does not fit float32"),
    ("pad(x, [1, 1], value=1e5)", "float16", "does not fit float16"),
    ("heaviside(x, value_at_zero=1e6)", "float16", "heaviside: value_at_zero: value 1000000.0 does not fit float16"),
    ("scaled_dot_product_attention(x, x, x, scale=1e6)", "float16", "scale: value 1000000.0 does not fit float16"),
])
def test_fill_values_that_do_not_fit_the_dtype_are_diagnostics(call, dtype, words):
    """They were OverflowErrors in the lowering (exit 70), or a silent inf."""
    _refused(f"model f(x: {dtype}[2, 3], m: bool[2, 3]) -> y {{\n    y = {call}\n}}\n", words)


@pytest.mark.parametrize("call,words", [
    ("sum(x, dim=[3, -1])", "dim 3 appears more than once in [3, -1]"),
    ("amax(x, [0, 0])", "dim 0 appears more than once"),
    ("mean(x, [-4, 0], keepdim=true)", "dim 0 appears more than once"),
    ("squeeze(x, [1, -3])", "dim 1 appears more than once"),
    ("sum(x, dim=[])", "argument 'dim' expects an integer or a non-empty list of integers, got an empty list"),
])
def test_a_dim_given_twice_or_an_empty_dim_list_is_a_diagnostic(call, words):
    """They were taken as the dim once (torch refuses both twice-named dims and, for squeeze, says so too);
    an empty list was 'expects a list of integers, got list'."""
    _refused(f"model f(x: float32[2, 1, 4, 5]) -> y {{\n    y = {call}\n}}\n", words)


@pytest.mark.parametrize("expr,words", [
    ("i ** f", "'**': the int64 base with a float32 exponent would truncate"),
    ("i * 1e3", "the number 1000.0 is a float and the tensor beside it is int64"),
    ("i + 2.0", "the number 2.0 is a float and the tensor beside it is int64"),
])
def test_int_tensors_are_not_silently_kept_int_where_torch_gives_floats(expr, words):
    """`i ** f` gave int64 ([1, 1, 1, 2] for sqrt of [1, 2, 3, 5]) and `i * 1e3` an int constant that overflows
    int32; torch promotes both to float. archdsl does not promote: it asks for the cast."""
    src = f"model f(i: int64[4], f: float32[4]) -> y {{\n    y = {expr}\n}}\n"
    _refused(src, words)
    for fine in ("f ** i", "i ** i", "i * 1000", "cast(i, \"float32\") ** f", "eq(i, 1.0)"):  # eq is exact
        archdsl.check_source(src.replace(expr, fine))
    _refused(src.replace(expr, "eq(i, 1.5)"), "eq(): 1.5 is not a whole number")
    boolean = "model f(b: bool[4]) -> y {\n    y = eq(b, 2.0)\n}\n"  # np.array(2, bool) is true: matched true
    _refused(boolean, "eq(): 2.0 beside a bool tensor, whose elements are only true or false")
    _refused(boolean.replace("2.0", "-1"), "eq(): -1 beside a bool tensor")
    archdsl.check_source(boolean.replace("2.0", "1"))


@pytest.mark.parametrize("call,words", [
    ("x -> linear(B)", "must be known when the graph is built, got the symbolic dim B"),
    ("topk(x, B)[0]", "topk: argument 'k' must be known when the graph is built, got the symbolic dim B"),
    ('x -> linear("a")', 'expects an integer, got string "a"'),
    ("reshape(x, B)", "expects a list of dims, got symbolic dim B"),
    ("x -> linear(true)", "expects an integer, got true"),
])
def test_attribute_type_errors_name_the_value_not_a_python_type(call, words):
    """They said 'got Sym', 'got str \"a\"': the registry now describes values as the elaborator does."""
    _refused(f"model f(x: float32[B, 4]) -> y {{\n    y = {call}\n}}\n", words)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_a_fill_value_with_a_mode_that_copies_is_refused(mode):
    """torch refuses value= beside a mode that fills from the tensor; it was silently ignored."""
    refused(f"model m(x: float32[1, 2, 4]) -> y {{\n    y = pad(x, [1, 1], mode=\"{mode}\", value=2.0)\n}}\n",
            rf'pad: mode "{mode}" fills from the tensor itself and takes no value= \(got 2\)')


def test_pad_of_a_bool_mask_takes_true_and_false():
    """torch's F.pad(mask, (1, 0), value=False) (a CLS token's row of a padding mask): "expects a number, got
    false", where value=1 was taken (newuser3 hunt)."""
    m = np.array([[True, False], [False, True]])
    for value, fill in (("false", False), ("true", True)):
        model = archdsl.compile_source(f"model p(m: bool[B, 2]) -> y {{\n    y = pad(m, [1, 0], value={value})\n}}\n")
        (y,) = runtime.session(model).run(None, {"m": m})
        np.testing.assert_array_equal(y, np.pad(m, ((0, 0), (1, 0)), constant_values=fill))


def test_pad_of_a_bfloat16_tensor_passes_the_full_checker():
    """Its fill value was written as a float64 constant."""
    model = archdsl.compile_source("model p(x: bfloat16[2, 3]) -> y {\n    y = pad(x, [1, 1])\n}\n")
    onnx.checker.check_model(model, full_check=True)


@covers("causal_mask")
@SETTINGS
@given(t=st.integers(1, 4), extra=st.integers(0, 2), lead=st.lists(st.integers(1, 2), max_size=2),
       value=st.sampled_from([None, "0.0", '"-inf"']))
def test_causal_mask(t, extra, lead, value):
    s = t + extra
    x = rand(*lead, t, s)
    y, _ = run_op("x -> causal_mask" + (f"(value={value})" if value else ""), x=x)
    i, j = np.arange(t)[:, None], np.arange(s)[None, :]
    fill = -np.inf if value in (None, '"-inf"') else 0.0
    close(y, np.where(j > i + s - t, fill, x))


def test_causal_masks_of_the_same_lengths_are_built_once():
    """Layers whose scores have the same symbolic lengths share one mask (Emitter.shared); a mask of other
    lengths (here [T, S]) or of the other alignment (sdpa's top-left) is its own, and every layer is right at
    several lengths."""
    src = """model m(a: float32[B, T, T], b: float32[B, T, T], c: float32[B, T, S], q: float32[B, 1, T, 4],
                     k: float32[B, 1, S, 4]) -> (ya, yb, yc, yd, ye) {
        ya = a -> causal_mask
        yb = b -> causal_mask
        yc = c -> causal_mask
        yd = scaled_dot_product_attention(q, k, k, causal=true)
        ye = scaled_dot_product_attention(q, k, k, causal=true)
    }"""
    model = archdsl.compile_source(src, opset=22)
    assert [n.op_type for n in model.graph.node].count("Trilu") == 3   # [T, T], [T, S] bottom-right, top-left
    sess = runtime.session(model, provider="cpu")
    for t, s in ((2, 5), (4, 4), (3, 6)):
        a, bb, c = rand(2, t, t, seed=1), rand(2, t, t, seed=2), rand(2, t, s, seed=3)
        q, k = rand(2, 1, t, 4, seed=4), rand(2, 1, s, 4, seed=5)
        ya, yb, yc, yd, ye = sess.run(None, {"a": a, "b": bb, "c": c, "q": q, "k": k})
        i = np.arange(t)[:, None]
        close(ya, np.where(np.arange(t)[None, :] > i, -np.inf, a))
        close(yb, np.where(np.arange(t)[None, :] > i, -np.inf, bb))
        close(yc, np.where(np.arange(s)[None, :] > i + s - t, -np.inf, c))
        scores = np.where(np.arange(s)[None, :] > i, -np.inf, q @ np.swapaxes(k, -1, -2) / 2.0)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        close(yd, (p / p.sum(-1, keepdims=True)) @ k)
        close(ye, yd)


@covers("cast")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), to=st.sampled_from(["int64", "bool", "float32"]),
       src=st.sampled_from(["float32", "int64"]), sym=SYM)
def test_cast(shape, to, src, sym):
    x = rand(*shape) * 4
    if src == "int64":
        x = x.astype(np.int64)
    y, _ = run_op(f"cast(x, '{to}')", x=x, sym=sym)
    want = x.astype({"int64": np.int64, "bool": np.bool_, "float32": np.float32}[to])
    assert y.dtype == want.dtype
    np.testing.assert_array_equal(y, want)


@covers("positions")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), start=st.integers(-4, 3), sym=SYM)
def test_positions(shape, data, start, sym):  # a negative start as torch.arange's (refused before: review94b)
    x = rand(*shape)
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    y, _ = run_op(f"positions(x, dim={d}, start={start})", x=x, sym=sym)
    np.testing.assert_array_equal(y, np.arange(shape[d], dtype=np.int64) + start)


@pytest.mark.parametrize("call", ["batchnorm(x, eps=-1)", "layernorm(x, eps=-1e-5)", "group_norm(x, 2, eps=-1)",
                                  "rms_norm(x, eps=-1.0)", "instance_norm(x, eps=-1.0)"])
def test_a_negative_eps_is_refused(call):
    """batchnorm(eps=-1) and layernorm(eps=-1) compiled and gave NaN; rms_norm alone refused it."""
    with pytest.raises(archdsl.ArchError, match="eps must be positive and finite"):
        archdsl.check_source(f"model m(x: float32[B, 4, 6]) -> y {{\n    y = {call}\n}}\n")


@pytest.mark.parametrize("call, words", [
    ("batchnorm2d(64)", "batchnorm: eps got 64, which is no epsilon .* torch's BatchNorm2d\\(num_features\\) is "
                        "batchnorm2d with no argument here"),
    ("batchnorm(16)", "batchnorm: eps got 16, which is no epsilon"),
    ("group_norm(32, 64)", "group_norm: eps got 64, which is no epsilon .* the channel count comes from the input, "
                           "so torch's GroupNorm\\(num_groups, num_channels\\) is group_norm\\(num_groups\\) here"),
    ("instance_norm(64)", "instance_norm: eps got 64, .* InstanceNorm2d\\(num_features\\) is instance_norm with no "
                          "argument here"),
    ("layernorm(8, 8)", "layernorm: eps got 8, .* several normalized dims are one list: layernorm\\(\\[8, 8\\]\\)"),
    ("rms_norm(8, 8)", "rms_norm: eps got 8, .* several normalized dims are one list"),
    ("batchnorm(eps=1.0)", "batchnorm: eps got 1, which is no epsilon"),
    ("layernorm(eps=0)", "layernorm: eps must be positive and finite .* got 0"),
])
def test_a_channel_count_in_eps_place_is_refused(call, words):
    """torch's BatchNorm2d(64) written batchnorm2d(64) (or GroupNorm(32, 64) as group_norm(32, 64)) set eps to
    64.0 without a word: positional arguments fill the attributes in order and the channel count comes from the
    input. An eps of 1 or more (or not positive) is refused, saying where the number went."""
    refused(f"model m(x: float32[B, 64, 8, 8]) -> y {{\n    y = x -> {call}\n}}\n", words)


@pytest.mark.parametrize("call", ["batchnorm2d(1e-3)", "batchnorm(eps=0.5)", "group_norm(32, 1e-6)",
                                  "instance_norm(1e-3)", "layernorm(8, 1e-6)", "rms_norm([8, 8], 1e-6)"])
def test_a_small_eps_given_positionally_still_works(call):
    archdsl.check_source(f"model m(x: float32[B, 64, 8, 8]) -> y {{\n    y = x -> {call}\n}}\n")


@pytest.mark.parametrize("name, ranks", [("batchnorm1d", (2, 3)), ("batchnorm2d", (4,)), ("batchnorm3d", (5,)),
                                         ("batchnorm", (2, 3, 4, 5))])
def test_batchnorm_aliases_take_torchs_ranks(name, ranks):
    """batchnorm2d of a 3-D tensor normalized over dim 1 where torch's BatchNorm2d refuses it (a layout ported
    wrong); the plain name takes any rank. Called, piped, or bound to a name first."""
    for rank in (2, 3, 4, 5):
        shape = ", ".join(["B", "4"] + ["3"] * (rank - 2))
        for body in (f"y = x -> {name}", f"y = {name}(x, eps=1e-3)", f"f = {name}\n    y = x -> f"):
            src = f"model m(x: float32[{shape}]) -> y {{\n    {body}\n}}\n"
            if rank in ranks:
                archdsl.check_source(src)
            else:
                refused(src, f"{name} takes a .*-D input, as torch's BatchNorm.d, got float32\\[{re.escape(shape)}\\] "
                             f"\\({rank}-D\\)")


def test_batchnorm_aliases_are_values_of_their_own(tmp_path):
    """batchnorm1d == batchnorm2d was true (one op underneath), so two imports binding `norm` to each were one
    definition, and the import order decided whether a 3-D input was refused."""
    archdsl.check_source('assert batchnorm1d != batchnorm2d and batchnorm2d == batchnorm2d and clip == clamp\n'
                         'assert str(batchnorm2d) == "batchnorm2d" and not (batchnorm2d in [batchnorm1d, batchnorm])\n'
                         "model m(x: float32[B, 4]) -> y {\n    y = x -> batchnorm1d\n}\n")
    (tmp_path / "lib1.arch").write_text("let norm = batchnorm1d\n")
    (tmp_path / "lib2.arch").write_text("let norm = batchnorm2d\n")
    for first, second in (("lib1", "lib2"), ("lib2", "lib1")):
        (tmp_path / "m.arch").write_text(f'import "{first}.arch"\nimport "{second}.arch"\n'
                                         "model m(x: float32[B, 4, 8]) -> y {\n    y = x -> norm\n}\n")
        with pytest.raises(archdsl.ArchError, match="'norm' comes from two imports that define it differently"):
            archdsl.check_file(tmp_path / "m.arch")


def test_mean_of_integers_is_refused_as_torch_does():
    """ONNX ReduceMean on int64 truncates (the mean of [1, 2] was 1)."""
    with pytest.raises(archdsl.ArchError, match="mean: needs a float tensor, got int64"):
        archdsl.check_source("model m(x: int64[B, 2]) -> y {\n    y = mean(x, 1)\n}\n")


@pytest.mark.parametrize("branches,dtype,expect", [("1.0, 0.0", np.float32, [1.0, 0.0]), ("1, 2", np.int64, [1, 2]),
                                                   ("1.5, 2", np.float32, [1.5, 2.0])])
def test_where_on_a_bool_condition_with_numbers_takes_torchs_dtype(branches, dtype, expect):
    """The numbers took the condition's dtype: where(c, 1.0, 0.0) was bool (all true) and did not load."""
    model = archdsl.compile_source(f"model m(c: bool[2]) -> y {{\n    y = where(c, {branches})\n}}\n")
    (y,) = runtime.session(model).run(None, {"c": np.array([True, False])})
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.array(expect, dtype))


@pytest.mark.parametrize("level", [0, 2])
def test_squeeze_keeps_a_symbolic_dim_that_is_1_at_run_time(level):
    """squeeze(x) of [B, 4] declares [B, 4]; at -O0 it lowered to Squeeze with no axes, which drops B = 1."""
    model = archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = squeeze(x)\n}\n", opt_level=level)
    (y,) = runtime.session(model).run(None, {"x": np.ones((1, 4), np.float32)})
    assert y.shape == (1, 4)


def test_an_integer_tensor_to_a_negative_power_is_refused():
    """ONNX Pow of int64 to -1 gave -9.2e18 where torch raises."""
    with pytest.raises(archdsl.ArchError, match="an integer tensor to the negative power -1"):
        archdsl.check_source("model m(x: int64[B, 2]) -> y {\n    y = x ** -1\n}\n")
    archdsl.check_source("model m(x: int64[B, 2]) -> y {\n    y = x ** 2\n}\n")
    archdsl.check_source("model m(x: float32[B, 2]) -> y {\n    y = x ** -1\n}\n")


def test_concat_of_two_dtypes_says_so():
    from archdsl import driver
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match=r"concat: dtypes differ \(float32, float16\); cast them to one"):
        driver.check_source("model m(x: float16[B, 4], z: float32[B, 4]) -> y {\n    y = concat([z, x], axis=1)\n}\n")
