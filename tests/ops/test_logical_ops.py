"""logical_and/or/xor/not against torch over dtypes and broadcasting, and the bool forms of where,
masked_fill and causal_mask, which wrote a Where that onnxruntime's CPU provider cannot load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.diagnostics import ArchError

from .core_harness import FEW, covers, dim, run_op

torch = pytest.importorskip("torch")

_DTYPES = ["bool", "float32", "int64", "int32"]


def _values(shape, dtype, seed):
    """Zeros among the values (false), and a NaN in a float tensor (true, as torch counts it)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-1, 2, shape)
    if dtype == "bool":
        return v > 0
    v = v.astype(dtype)
    if dtype == "float32" and v.size:
        v.flat[0] = np.nan
    return v


@covers("logical_and", "logical_or", "logical_xor", "logical_not")
@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
@FEW
@given(data=st.data(), seed=st.integers(0, 9), da=st.sampled_from(_DTYPES), db=st.sampled_from(_DTYPES))
def test_binary_logical_ops_match_torch(name, data, seed, da, db):
    out = data.draw(st.lists(dim, min_size=1, max_size=3))
    sa = [d if data.draw(st.booleans()) else 1 for d in out]
    sb = [d if data.draw(st.booleans()) else 1 for d in out][data.draw(st.integers(0, len(out) - 1)):]
    a, c = _values(sa, da, seed), _values(sb, db, seed + 1)
    y, _ = run_op(f"{name}(a, c)", a=a, c=c)
    assert y.dtype == np.bool_
    np.testing.assert_array_equal(y, getattr(torch, name)(torch.from_numpy(a), torch.from_numpy(c)).numpy())


@pytest.mark.parametrize("dtype", _DTYPES)
def test_logical_not_matches_torch(dtype):
    x = _values((3, 4), dtype, 3)
    for text in ("logical_not(x)", "x -> logical_not"):
        y, _ = run_op(text, x=x, sym=True)
        np.testing.assert_array_equal(y, torch.logical_not(torch.from_numpy(x)).numpy())


def test_where_masked_fill_and_causal_mask_on_bool_tensors_run():
    """Combining masks (a sliding window inside a causal mask, a padding mask): each is now And/Or/Not."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.random((2, 5)) > 0.5 for _ in range(3))
    ta, tb, tc = map(torch.from_numpy, (a, b, c))
    y, _ = run_op("where(a, b, c)", a=a, b=b, c=c, sym=True)
    np.testing.assert_array_equal(y, torch.where(ta, tb, tc).numpy())
    y, _ = run_op("where(a, b, false)", a=a, b=b)  # a number beside bool branches is a bool
    np.testing.assert_array_equal(y, torch.where(ta, tb, False).numpy())
    y, _ = run_op("where(a, b, 0)", a=a, b=b)
    np.testing.assert_array_equal(y, a & b)
    for value in ("true", "false", "1", "0"):
        y, _ = run_op(f"masked_fill(a, b, {value})", a=a, b=b, sym=True)
        np.testing.assert_array_equal(y, ta.masked_fill(tb, value in ("true", "1")).numpy())
    y, _ = run_op("causal_mask(a, value=false)", a=a, sym=True)  # bottom-right: keep j <= i + S - T
    keep = np.arange(5)[None, :] <= np.arange(2)[:, None] + 3
    np.testing.assert_array_equal(y, a & keep)


def test_bool_literals_beside_tensors_are_numbers():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = x > 2
    y, _ = run_op("eq(m, false)", m=m)
    np.testing.assert_array_equal(y, ~m)
    y, _ = run_op("x * true", x=x)
    np.testing.assert_array_equal(y, x)
    y, _ = run_op("where(m, 1.0, false)", m=m)  # torch.where(m, 1.0, False): float32
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, m.astype(np.float32))


@pytest.mark.parametrize("expr, words", [
    ("a and b", "`and` is logical_and(a, b)"),
    ("a or b", "`or` is logical_or(a, b)"),
    ("not a", "`not` is logical_not(x)"),
    ("a if a else b", "an elementwise choice between two tensors is where(cond, a, b)"),
    ("logical_and(a, c)", "cannot broadcast logical_and operands: shapes [B, 3] and [4] differ at dim 1"),
])
def test_compile_time_logic_on_tensors_names_the_elementwise_op(expr, words):
    with pytest.raises(ArchError) as e:
        archdsl.check_source(f"model m(a: bool[B, 3], b: bool[B, 3], c: bool[4]) -> y {{\n    y = {expr}\n}}\n")
    assert words in e.value.message, e.value.message


@pytest.mark.parametrize("expr, words", [
    ("masked_fill(a, b)", 'a bool tensor is filled with true or false (0 or 1), got "-inf" (the default'),
    ("masked_fill(a, b, 2)", "a bool tensor is filled with true or false (0 or 1), got 2"),
    ("masked_fill(a, b, -1)", "got -1"),
    ("causal_mask(a, value=0.5)", "got 0.5"),
    ("take(x, true)", "take(): 'index' must be a tensor, got true"),  # a bool is a number for elementwise ops only
])
def test_bool_fills_are_true_or_false(expr, words):
    """np.array(-inf, bool) is true: a bool causal_mask with its default value kept every position."""
    with pytest.raises(ArchError) as e:
        archdsl.check_source(f"model m(a: bool[3, 3], b: bool[3, 3], x: float32[4, 3]) -> y {{\n    y = {expr}\n}}\n")
    assert words in e.value.message, e.value.message


def test_bfloat16_masks_load_and_match():
    """onnxruntime's CPU has no bfloat16 Equal or Where: the logical ops, where, masked_fill and causal_mask
    built bfloat16 models it would not load; they now go through float32 (exact both ways)."""
    from archdsl import runtime
    src = ('model m(a32: float32[2, 3], b32: float32[2, 3], c: bool[2, 3]) -> (o, p, q, r, s) {\n'
           '    a = cast(a32, "bfloat16")\n    b = cast(b32, "bfloat16")\n    o = logical_and(a, b)\n'
           '    p = logical_not(a)\n    q = cast(where(c, a, b), "float32")\n'
           '    r = cast(masked_fill(a, c, 2.0), "float32")\n    s = cast(causal_mask(a, value=0), "float32")\n}\n')
    a = np.array([[0, 1, -2], [0.5, 0, 3]], np.float32)
    b = np.array([[1, 0, 2], [0, 0, 1]], np.float32)
    c = np.array([[True, False, True], [False, True, False]])
    o, p, q, r, s = runtime.session(archdsl.compile_source(src), "cpu").run(None, {"a32": a, "b32": b, "c": c})
    np.testing.assert_array_equal(o, (a != 0) & (b != 0))
    np.testing.assert_array_equal(p, a == 0)
    np.testing.assert_array_equal(q, np.where(c, a, b))
    np.testing.assert_array_equal(r, np.where(c, 2.0, a))
    np.testing.assert_array_equal(s, np.where(np.arange(3)[None, :] <= np.arange(2)[:, None] + 1, a, 0))
