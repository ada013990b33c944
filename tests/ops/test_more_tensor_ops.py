"""ops/more_math.py, property-based against torch (see core_harness.py for what every run_op case checks):
floor/ceil/round, sign, rsqrt, cumsum, argmax/argmin, tril/triu, stack; their diagnostics; and the
floor/ceil/round builtins, which stay compile-time arithmetic on numbers and become the ops on tensors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import SETTINGS, SYM, as_torch, b, close, covers, dim, rand, refused, run_op

torch = pytest.importorskip("torch")


_t = as_torch


def _halves(shape, seed: int) -> np.ndarray:
    """Floats with many exact halves (-2.5, 0.5, ...) and ties: where rounding and argmax differ by rule."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-8, 9, shape).astype(np.float32) / 2
    return np.where(rng.random(shape) < 0.3, rand(*shape, seed=seed) * 3, x).astype(np.float32)


def _ints(shape, seed: int, dtype) -> np.ndarray:
    return np.random.default_rng(seed).integers(-5, 6, shape).astype(dtype)


# ---------------- floor, ceil, round, sign, rsqrt ----------------

@covers("floor", "ceil", "round", "sign")
@pytest.mark.parametrize("fn", ["floor", "ceil", "round", "sign"])
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 99), sym=SYM,
       dtype=st.sampled_from(["float32", "int64", "int32"]))
def test_rounding_and_sign_match_torch(fn, shape, seed, sym, dtype):
    """Halves round to even (torch.round, ONNX Round); integer tensors come back as they are (sign: -1/0/1)."""
    x = _halves(shape, seed) if dtype == "float32" else _ints(shape, seed, dtype)
    y, _ = run_op(f"{fn}(x)", x=x, sym=sym)
    want = getattr(torch, fn)(_t(x)).numpy()
    assert y.dtype == want.dtype
    np.testing.assert_array_equal(y, want)


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 99), decimals=st.integers(-2, 3))
def test_round_decimals_matches_torch(shape, seed, decimals):
    x = (rand(*shape, seed=seed) * 100).astype(np.float32)
    y, _ = run_op(f"round(x, {decimals})", x=x)
    np.testing.assert_array_equal(y, torch.round(_t(x), decimals=decimals).numpy())
    y, _ = run_op(f"x -> round(decimals={decimals})", x=x)
    np.testing.assert_array_equal(y, torch.round(_t(x), decimals=decimals).numpy())


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_decimals_of_16_bit_floats_is_computed_in_float32(dtype):
    """10^5 is inf in float16: round(x, decimals=5) was NaN everywhere; torch computes it in float32. A
    decimals past any float's range is a diagnostic, not an OverflowError."""
    x = np.array([1.23449, -0.5, 2.75], dtype=dtype)
    for d in (5, 2, -1):
        model = archdsl.compile_source(f"model m(x: {dtype}[3]) -> y {{\n    y = round(x, decimals={d})\n}}\n")
        y = runtime.session(model, "cpu").run(None, {"x": x})[0]
        np.testing.assert_array_equal(y, torch.round(_t(x), decimals=d).numpy())
    with pytest.raises(archdsl.ArchError, match=r"decimals=400 is outside -300..300"):
        archdsl.check_source(f"model m(x: {dtype}[3]) -> y {{\n    y = round(x, decimals=400)\n}}\n")


@covers("rsqrt")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 99), sym=SYM)
def test_rsqrt_matches_torch(shape, seed, sym):
    x = np.abs(rand(*shape, seed=seed)) + 0.05
    y, _ = run_op("rsqrt(x)", x=x, sym=sym)
    close(y, torch.rsqrt(_t(x).double()).numpy())


# ---------------- cumsum ----------------

@covers("cumsum")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=4), data=st.data(), sym=SYM,
       dtype=st.sampled_from(["float32", "int64", "int32", "bool"]))
def test_cumsum_matches_torch(shape, data, sym, dtype):
    """Any dim, negative ones too; int32 and bool sum in int64, as torch."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    if dtype == "float32":
        x = rand(*shape, seed=r)
    elif dtype == "bool":
        x = np.random.default_rng(r).random(shape) < 0.5
    else:
        x = _ints(shape, r, dtype)
    y, _ = run_op(f"cumsum(x, {d})", x=x, sym=sym)
    want = torch.cumsum(_t(x), d).numpy()
    assert y.dtype == want.dtype, (y.dtype, want.dtype)
    close(y, want)


def test_cumsum_of_a_scalar_is_the_scalar():
    y, _ = run_op("cumsum(sum(x), -1)", x=np.arange(3, dtype=np.float32))
    close(y, torch.cumsum(torch.arange(3.0).sum(), -1).numpy())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_16bit_cumsum_sums_in_float32_as_written(dtype):
    """As torch's kernel: float16 ones summed in float16 stop growing at 2048. onnxruntime's CPU sums float16
    in float32 anyway; onnx's reference evaluator runs the graph as written (and bfloat16, which onnxruntime's
    CPU cannot)."""
    from onnx.reference import ReferenceEvaluator
    ml_dtypes = pytest.importorskip("ml_dtypes")
    model = archdsl.compile_source(f"model m(x: {dtype}[4096]) -> (y, z) {{\n    y = cumsum(x, 0)\n"
                                   f"    z = flip(cumsum(flip(x, [0]), 0), [0])\n}}\n")
    x = np.ones(4096, np.float16 if dtype == "float16" else ml_dtypes.bfloat16)
    y, z = ReferenceEvaluator(model).run(None, {"x": x})
    assert y.dtype == x.dtype and float(y[-1]) == 4096.0 and float(z[0]) == 4096.0


def test_a_float32_cumsum_and_its_gradient_add_up_in_float64_as_torch():
    """torch's CPU cumsum keeps a double running sum: 1e4 then 4095 hundredths end at 10040.95, where ONNX
    CumSum in float32 gave 10039.99, and its gradient (a reversed cumsum) was 6e-5 off where torch's float32 is
    4e-8: a NeRF's exp(-cumsum) transmittance over 1024 samples read 1.1e-5 off (pointnerf hunt)."""
    from .core_harness import grads_of
    x = np.full((1, 4096), 0.01, np.float32)
    x[0, 0] = 1e4
    y, _ = run_op("cumsum(x, -1)", x=x)
    want = torch.cumsum(_t(x), -1).numpy()
    np.testing.assert_array_equal(y, want)
    r = x[:, ::-1].copy()  # the large weight last: the reversed running sum meets it first
    got = grads_of("model m(x: float32[1, 4096]) -> y {\n    y = cumsum(x, -1)\n}\n", {"x": x}, r, ["x"])["x"]
    exact = np.cumsum(r[:, ::-1].astype(np.float64), -1)[:, ::-1]
    assert np.abs(got / exact - 1).max() < 1e-6, np.abs(got / exact - 1).max()


@SETTINGS
@given(shape=st.lists(dim, min_size=0, max_size=3), data=st.data(), keep=st.booleans(),
       dtype=st.sampled_from(["int64", "int32", "bool"]))
def test_sum_of_integers_and_bools_is_int64_as_torch(shape, data, keep, dtype):
    """sum kept int32 (ReduceSum in int32: 2**30 + 2**30 + 1 came out 2147483647) and refused bool, where
    torch.sum gives int64 for both, as cumsum here does."""
    r = len(shape)
    dims = data.draw(st.lists(st.integers(-r, r - 1), unique_by=lambda d: d % r, max_size=r)) if r else []
    x = np.asarray(np.random.default_rng(r).random(shape) < 0.5 if dtype == "bool" else _ints(shape, r, dtype))
    if dtype == "int32" and x.size:
        x.flat[0] = 2**30 + 7  # sums past int32's range wherever that element is summed with another
        x.flat[-1] = 2**30 + 9 if x.size > 1 else x.flat[-1]
    y, _ = run_op(f"sum(x, {dims if dims else 'none'}, keepdim={'true' if keep else 'false'})", x=x)
    want = torch.sum(_t(x), dims, keepdim=keep).numpy() if dims else torch.sum(_t(x)).numpy()
    if not dims and keep:
        want = want.reshape((1,) * r)
    assert y.dtype == want.dtype == np.int64
    np.testing.assert_array_equal(y, want)


# ---------------- argmax, argmin ----------------

@covers("argmax", "argmin")
@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), keepdim=st.booleans(), sym=SYM,
       dtype=st.sampled_from(["float32", "int64", "int32"]))
def test_argmax_argmin_match_torch_first_on_ties(fn, shape, data, keepdim, sym, dtype):
    """Values drawn from a few, so ties are common: the first index wins, as torch's."""
    r = len(shape)
    x = np.random.default_rng(r).integers(0, 3, shape).astype(dtype)
    d = data.draw(st.one_of(st.none(), st.integers(-r, r - 1)))
    args = f"keepdim={b(keepdim)}" if d is None else f"{d}, keepdim={b(keepdim)}"
    y, _ = run_op(f"{fn}(x, {args})", x=x, sym=sym)
    want = getattr(torch, fn)(_t(x), dim=d, keepdim=keepdim).numpy()
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("call", ["argmax(x, 1)", "argmin(x, 1)", "argmax(x)", "argmin(x, 0, keepdim=true)",
                                  "argmax(x, keepdim=true)", "sign(x)"])
def test_nan_is_the_extreme_of_argmax_argmin_and_signs_zero(call):
    """torch takes the first NaN as the max and the min, and sign(nan) is 0; ONNX leaves NaN unspecified
    (onnxruntime's ArgMax skipped it)."""
    x = np.array([[3, np.nan, 1, np.nan], [1, 2, 2, 0], [np.nan, 5, -1, 0]], np.float32)
    y, _ = run_op(call, x=x)
    fn, rest = call.split("(", 1)
    args = rest.rstrip(")").split(", ")[1:]
    dim = next((int(a) for a in args if "=" not in a), None)
    keep = "keepdim=true" in args
    want = torch.sign(_t(x)) if fn == "sign" else getattr(torch, fn)(_t(x), dim=dim, keepdim=keep)
    np.testing.assert_array_equal(y, want.numpy())


# ---------------- tril, triu ----------------

@covers("tril", "triu")
@pytest.mark.parametrize("fn", ["tril", "triu"])
@SETTINGS
@given(shape=st.lists(dim, min_size=2, max_size=4), k=st.integers(-5, 5), sym=SYM,
       dtype=st.sampled_from(["float32", "int64", "bool"]))
def test_tril_triu_match_torch(fn, shape, k, sym, dtype):
    x = rand(*shape, seed=len(shape))
    x = x > 0 if dtype == "bool" else x.astype(dtype) if dtype != "float32" else x
    y, _ = run_op(f"{fn}(x, {k})", x=x, sym=sym)
    np.testing.assert_array_equal(y, getattr(torch, fn)(_t(x), k).numpy())
    y, _ = run_op(f"x -> {fn}", x=x, sym=sym)
    np.testing.assert_array_equal(y, getattr(torch, fn)(_t(x)).numpy())


# ---------------- stack ----------------

@covers("stack")
@SETTINGS
@given(shape=st.lists(dim, min_size=0, max_size=3), n=st.integers(1, 3), data=st.data(), sym=SYM)
def test_stack_matches_torch(shape, n, data, sym):
    """A new dim of n at dim, negative dims counted from the result's rank."""
    r = len(shape)
    d = data.draw(st.integers(-r - 1, r))
    xs = {f"x{i}": rand(*shape, seed=i) for i in range(n)}
    y, _ = run_op(f"stack([{', '.join(xs)}], dim={d})", sym=sym and r > 0, **xs)
    close(y, torch.stack([_t(x) for x in xs.values()], d).numpy())


# ---------------- diagnostics ----------------

@pytest.mark.parametrize("text, words", [
    ("cumsum(x, 2)", "cumsum: dim 2 is out of range for a tensor of rank 2"),
    ("cumsum(x, -3)", "cumsum: dim -3 is out of range"),
    ("stack([x, x[:, 1:]])", r"stack: every tensor must have one shape, got \[2, T\] and \[2, \(T-1\)\]"),
    ("stack([x, cast(x, 'int64')])", "stack: dtypes differ"),
    ("stack([x, x], dim=3)", "stack: dim 3 is out of range for a tensor of rank 3"),
    ("tril(x[0])", r"tril: needs a tensor of at least 2 dims .* got \[T\]"),
    ("triu(sum(x))", r"triu: needs a tensor of at least 2 dims .* got \[\]"),
    ("argmax(m)", "argmax: not defined on bool tensors"),
    ("argmin(x, 2)", "argmin: dim 2 is out of range"),
    ("argmax(sum(x), 0)", "argmax: a 0-d tensor has no dim 0"),
    ("sign(m)", "sign: no arithmetic on bool tensors"),
    ("floor(m)", "floor: no arithmetic on bool tensors"),
    ("rsqrt(cast(x, 'int64'))", "rsqrt: input must be a float tensor, got int64; cast it first"),
    ("round(cast(x, 'int64'), 2)", "round: decimals=2 needs a float tensor, got int64"),
    ("round(x, 1.5)", "round: argument 'decimals' expects an integer"),
])
def test_refusals_name_the_problem(text, words):
    refused(f"model m(x: float32[2, T], m: bool[2, T]) -> y {{ y = {text} }}", words)


def test_round_to_bfloat16_needs_opset_22():
    src = "model m(x: bfloat16[2, 3]) -> y { y = round(x) }"
    with pytest.raises(archdsl.ArchError, match="ONNX Round takes bfloat16 from opset 22"):
        archdsl.compile_source(src, opset=21)
    archdsl.compile_source(src, opset=22)


# ---------------- floor, ceil, round: builtins on numbers, ops on tensors ----------------

def test_floor_ceil_round_of_numbers_stay_compile_time_values():
    """round(2.5) is 2 (Python's halves to even), floor(-0.5) is -1, ceil(0.1) is 1, round(2.567, 2) 2.57:
    the slice comes out [2, 2 - 1 + 1 + 2 + 2] = [2, 6] and no floor/ceil/round node is made."""
    g = archdsl.check_source("param n = round(2.5) + floor(-0.5) + ceil(0.1) + round(3.5)\n"
                             "model m(x: float32[2, 9]) -> y {\n"
                             "    y = x[:, :n + int(round(2.567, 2) * 100) - 256]\n}\n")
    assert g.outputs[0][1].type.shape == (2, 7)
    assert not {"floor", "ceil", "round"} & {n.op for n in g.nodes}


@pytest.mark.parametrize("fn", ["floor", "ceil", "round"])
def test_floor_ceil_round_of_a_tensor_emit_the_op(fn):
    g = archdsl.check_source(f"model m(x: float32[2, 3]) -> y {{ y = {fn}(x) * 2 }}")
    assert [n.op for n in g.nodes][0] == fn
