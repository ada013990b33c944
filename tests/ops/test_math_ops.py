"""The math beyond the basics (trig.py, logexp.py, finite.py, fmod, trunc, frac) against torch itself: values
over each function's domain, the special values (signed zeros, infinities, NaN) torch defines, the accuracy
log1p/expm1/log2 exist for, integer and 16-bit inputs, and the number forms the elaborator computes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl

from .core_harness import FEW, NEWEST, SYM, covers, dim, grads_of, rand, refused, run_op

torch = pytest.importorskip("torch")

# text -> (torch function, how x is drawn from a standard normal z: into the function's domain)
_UNARY = {
    "tan": (torch.tan, lambda z: z),
    "asin": (torch.asin, lambda z: np.tanh(z)),
    "acos": (torch.acos, lambda z: np.tanh(z)),
    "atan": (torch.atan, lambda z: z * 5),
    "sinh": (torch.sinh, lambda z: z * 3),
    "cosh": (torch.cosh, lambda z: z * 3),
    "asinh": (torch.asinh, lambda z: z * 5),
    "acosh": (torch.acosh, lambda z: 1 + np.abs(z) * 3),
    "atanh": (torch.atanh, lambda z: np.tanh(z)),
    "log1p": (torch.log1p, lambda z: np.exp(z * 3) - 0.999),
    "expm1": (torch.expm1, lambda z: z * 3),
    "log2": (torch.log2, lambda z: np.exp(z * 5)),
    "log10": (torch.log10, lambda z: np.exp(z * 5)),
    "trunc": (torch.trunc, lambda z: z * 4),
    "frac": (torch.frac, lambda z: z * 4),
    "isnan": (torch.isnan, lambda z: z),
    "isinf": (torch.isinf, lambda z: z),
    "isfinite": (torch.isfinite, lambda z: z),
    "nan_to_num": (torch.nan_to_num, lambda z: z),
}
_SPECIAL = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30, -1e-30, 1e30,
                     -1e30, 3.0e38, -3.0e38, 1e-45, 88.0, 89.0], np.float32)


def _torch(fn, *xs, double=True):
    out = fn(*[torch.from_numpy(np.asarray(x, np.float64 if double else x.dtype)) for x in xs])
    return out.numpy()


def _same(got, want, rtol=1e-6, atol=0.0):
    """Equal within rtol where finite; the same infinities, NaNs and (for zeros) signs."""
    got, want = np.asarray(got), np.asarray(want).astype(got.dtype)
    assert got.shape == want.shape
    if got.dtype == bool:
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = np.isfinite(want)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)])
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=atol)
    zeros = (want == 0) & (got == 0)  # -0.0 where torch gives -0.0 (assert_allclose takes them as equal)
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]))


@covers(*_UNARY)
@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("name", sorted(_UNARY))
@FEW
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 9), sym=SYM)
def test_unary_math_matches_torch(name, opset, shape, seed, sym):
    fn, draw = _UNARY[name]
    x = draw(rand(*shape, seed=seed).astype(np.float64)).astype(np.float32)
    y, _ = run_op(f"{name}(x)", x=x, sym=sym, opset=opset)
    _same(y, _torch(fn, x), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(_UNARY))
def test_special_values_as_torch(name):
    """inf, -inf, NaN, signed zeros, the largest floats, a denormal, where exp overflows: torch's results in
    float32 (trunc/frac of -0.5 keep the sign; log1p(-1) is -inf; expm1(-inf) is -1)."""
    fn, _ = _UNARY[name]
    with np.errstate(all="ignore"):
        y, _ = run_op(f"{name}(x)", x=_SPECIAL)
        want = _torch(fn, _SPECIAL, double=False)
    if name in ("expm1", "log1p"):  # the denormal 1e-45: onnxruntime's tanh flushes it to 0, torch's log1p too
        y, want = y[_SPECIAL != np.float32(1e-45)], want[_SPECIAL != np.float32(1e-45)]
    _same(y, want, rtol=4e-6)


@pytest.mark.parametrize("name, ulps", [("log1p", 4), ("expm1", 6)])
def test_log1p_expm1_keep_small_arguments(name, ulps):
    """What they are for: log(1 + x) and exp(x) - 1 written plainly are 0 for |x| below float32's epsilon;
    these stay within a few ulps of the exact value from 1e-30 to 30 (onnxruntime's float32 log, exp and
    tanh are themselves 1-2 ulps off)."""
    rng = np.random.default_rng(0)
    x = (np.sign(rng.standard_normal(20000)) * 10 ** rng.uniform(-30, 1.4, 20000)).astype(np.float32)
    if name == "log1p":
        x = x[x > -1]
    y, _ = run_op(f"{name}(x)", x=x)
    exact = getattr(np, name)(x.astype(np.float64))
    err = np.abs(y - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert err.max() <= ulps, (err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("name, base", [("log2", 2.0), ("log10", 10.0)])
def test_log2_log10_are_exact_at_powers(name, base):
    """onnxruntime's float32 log(8) / log(2) is 2.9999998; floor(log2(x)) must not be one short."""
    k = np.arange(-120, 127) if base == 2 else np.arange(-37, 39)
    x = (base ** k.astype(np.float64)).astype(np.float32)
    y, _ = run_op(f"{name}(x)", x=x)
    np.testing.assert_array_equal(y, _torch(getattr(torch, name), x, double=False))
    if base == 2:
        np.testing.assert_array_equal(y, k)


@covers("atan2", "logaddexp", "fmod")
@pytest.mark.parametrize("name", ["atan2", "logaddexp", "fmod"])
@FEW
@given(data=st.data(), seed=st.integers(0, 99), opset=st.sampled_from([17, NEWEST]))
def test_binary_math_matches_torch_with_broadcasting(name, data, seed, opset):
    out = data.draw(st.lists(dim, min_size=1, max_size=3))
    sa = tuple(d if data.draw(st.booleans()) else 1 for d in out)
    sb = tuple(d if data.draw(st.booleans()) else 1 for d in out)[data.draw(st.integers(0, len(out))):]
    a, b = np.asarray(rand(*sa, seed=seed) * 3), np.asarray(rand(*sb, seed=seed + 1) * 3)
    y, _ = run_op(f"{name}(a, b)", a=a, b=b, opset=opset)
    _same(y, _torch(getattr(torch, name), a, b), rtol=2e-6, atol=1e-7)


def _grid():
    v = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e-30, 3.0e38], np.float32)
    return np.repeat(v, len(v)), np.tile(v, len(v))


@pytest.mark.parametrize("name", ["atan2", "logaddexp", "fmod"])
def test_binary_special_values_as_torch(name):
    """Every pair of the special values: atan2's quadrants of signed zeros and infinities (atan2(0, -0) is
    pi, atan2(-0, -0) -pi, atan2(inf, -inf) 3pi/4), logaddexp of equal infinities, fmod by zero and by inf."""
    a, b = _grid()
    with np.errstate(all="ignore"):
        y, _ = run_op(f"{name}(a, b)", a=a, b=b)
    _same(y, _torch(getattr(torch, name), a, b, double=False), rtol=4e-6)


def test_fmod_and_trunc_of_integers():
    a = np.array([7, -7, 7, -7, 0, 5], np.int64)
    b = np.array([3, 3, -3, -3, 2, 5], np.int64)
    y, _ = run_op("fmod(a, b)", a=a, b=b)
    np.testing.assert_array_equal(y, torch.fmod(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    y, _ = run_op("trunc(a) + fmod(a, 4)", a=a)
    np.testing.assert_array_equal(y, a + np.fmod(a, 4))


@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite", "nan_to_num"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_masks_of_integer_and_bool_tensors(name, dtype):
    x = np.array([[0, 1, 2], [3, 0, 1]]).astype(dtype)
    y, _ = run_op(f"{name}(x)", x=x)
    np.testing.assert_array_equal(y, _torch(getattr(torch, name), x, double=False))


def test_nan_to_num_values_and_limits():
    x = np.array([np.nan, np.inf, -np.inf, 1.5, -0.0], np.float32)
    y, _ = run_op("nan_to_num(x, nan=1, posinf=2, neginf=-3)", x=x)
    np.testing.assert_array_equal(y, [1, 2, -3, 1.5, -0.0])
    for dtype in (np.float16, np.float64):  # the defaults are the dtype's own limits
        src = f"model m(x: {np.dtype(dtype).name}[5]) -> y {{\n    y = nan_to_num(x)\n}}\n"
        got = archdsl.runtime.session(archdsl.compile_source(src), provider="cpu", threads=1).run(
            None, {"x": x.astype(dtype)})[0]
        np.testing.assert_array_equal(got, torch.nan_to_num(torch.from_numpy(x.astype(dtype))).numpy())
    refused("model m(x: float16[3]) -> y {\n    y = nan_to_num(x, posinf=1e5)\n}\n",
            r"nan_to_num: value 100000.0 does not fit float16 \(largest 65504\)")


@pytest.mark.parametrize("text", ["tan(x)", "atan2(x, x)", "log1p(x)", "expm1(x)", "log2(x)", "logaddexp(x, x)",
                                  "nan_to_num(x, posinf=7)", "isinf(x)", "isfinite(x)", "trunc(x)", "frac(x)",
                                  "fmod(x, x)"])
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_widths(text, dtype):
    """float16 computes in float32 inside where ONNX lacks the op for it (IsInf below opset 20) and comes back
    float16; float64 stays float64 (its log2 in float64)."""
    x = np.array([[0.25, -1.5, 3.0], [np.inf, -0.75, 1e-3]], dtype)
    y, _ = run_op(text, x=x.astype(np.float32))  # the float32 result to compare with
    src = f"model m(x: {np.dtype(dtype).name}[2, 3]) -> y {{\n    y = {text}\n}}\n"
    from archdsl import runtime
    try:
        got = runtime.session(archdsl.compile_source(src), provider="cpu", threads=1).run(None, {"x": x})[0]
    except Exception as e:  # onnxruntime's CPU has no float64 Tan/Atan (grammar/REFERENCE.md lists them)
        assert dtype == np.float64 and re.search(r"implementation for (Tan|Atan)\(", str(e)), e
        return
    assert got.dtype == y.dtype or got.dtype == np.dtype(dtype)
    _same(got.astype(np.float32) if got.dtype != bool else got, y, rtol=2e-3 if dtype == np.float16 else 1e-6,
          atol=1e-3 if dtype == np.float16 else 1e-7)


@pytest.mark.parametrize("text, match", [
    ("tan(i)", r"tan: input must be a float tensor, got int64"),
    ("log1p(i)", r"log1p: input must be a float tensor"),
    ("atan2(x, i)", r"dtypes differ"),
    ("frac(i)", r"frac: input must be a float tensor"),
    ("fmod(b, b)", r"fmod: no arithmetic on bool"),
    ("trunc(b)", r"trunc: no arithmetic on bool"),
    ("b * 2", r"^'\*': no arithmetic on bool"),  # as `b * 1` and `b * b` say it (it named mul())
    ("3 - b", r"^'-': no arithmetic on bool"),
    ("mul(b, 2)", r"^mul\(\): no arithmetic on bool"),
    ("-b", r"^unary '-': no arithmetic on bool tensors; logical_not\(b\) flips them"),
])
def test_refusals(text, match):
    refused(f"model m(x: float32[2], i: int64[2], b: bool[2]) -> y {{\n    y = {text}\n}}\n", match)


def test_number_forms_are_computed_at_compile_time():
    """On numbers these are Python's math functions (ALiBi's slopes use log2); a tensor anywhere among the
    arguments makes the op (atan2(1.0, x))."""
    src = """model m(x: float32[3]) -> y {
    y = x * (log2(8) + log10(1000) + atan2(1, 1) * 4 / 3.141592653589793 + tan(0.0) + asinh(0.0) + trunc(-2.5)
             + log1p(0.0) + expm1(0.0) + cosh(0.0)) + atan2(1.0, x) * 0
}
"""
    x = np.array([1.0, 2.0, 3.0], np.float32)
    y = archdsl.runtime.session(archdsl.compile_source(src), provider="cpu", threads=1).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x * (3 + 3 + 1 - 2 + 1), rtol=1e-6)
    refused("model m(x: float32[3]) -> y {\n    y = x * asin(2)\n}\n", r"asin\(2\): math domain error")


def test_atan2_gradient_at_the_origin_is_zero_as_torchs():
    """x / (x^2 + y^2) is 0/0 there: NaN in every parameter of a model whose head starts at zero (torch gives 0)."""
    y, x = np.array([0.0, 0.0, 1.0, -2.0], np.float32), np.array([0.0, 1.0, 0.0, 3.0], np.float32)
    src = "model m(y: float32[4], x: float32[4]) -> a {\n    a = atan2(y, x)\n}\n"
    r = np.ones(4, np.float32)
    got = grads_of(src, {"y": y, "x": x}, r, ["y", "x"])
    ty, tx = (torch.from_numpy(v).double().requires_grad_() for v in (y, x))
    torch.atan2(ty, tx).sum().backward()
    np.testing.assert_allclose(got["y"], ty.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["x"], tx.grad.numpy(), rtol=1e-6)
