"""// and % at the edges, exactly as torch: large quotients, tiny divisors, infinities, the integer limits."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

torch = pytest.importorskip("torch")

SRC = "model m(a: {t}[N], b: {t}[N]) -> (q, r) {{\n    q = a // b\n    r = a % b\n}}\n"


def _same(x, y) -> bool:
    return bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("level", [0, 2])
def test_float_floordiv_and_remainder_are_torchs(dtype, level):
    """floor(a / b) and a - floor(a / b) * b gave 1.0 // 0.1 = 10 (torch 9), 3e7 % 0.3 = -2 (outside [0, b)),
    1e10 % 3.0 = 0 (torch 1), 2.0 % inf = nan (torch 2)."""
    rng = np.random.default_rng(0)
    edges = [(3e7, 0.3), (1e10, 3.0), (12345678, 0.3), (1.0, 0.1), (2.0, 0.1), (2.0, np.inf), (2.0, -np.inf),
             (np.inf, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 0.0),
             (-0.5, -3.0), (0.5, -3.0), (6.5e6, 6.283185307179586), (np.nan, 1.0)]
    a = np.concatenate([[x for x, _ in edges], rng.standard_normal(500) * 1e4]).astype(dtype)
    b = np.concatenate([[y for _, y in edges], rng.standard_normal(500)]).astype(dtype)
    q, r = runtime.session(archdsl.compile_source(SRC.format(t=dtype), opt_level=level)).run(None, {"a": a, "b": b})
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert _same(q, torch.div(ta, tb, rounding_mode="floor").numpy())
    assert _same(r, torch.remainder(ta, tb).numpy())
    # 1e30 % 1e-30 is fmod's exact 8.2e-31 here; torch's vectorized float32 kernel gives nan (its scalar one
    # fmod's value), so only the quotient is compared there
    q, _ = runtime.session(archdsl.compile_source(SRC.format(t=dtype), opt_level=level)).run(
        None, {"a": np.array([1e30], dtype), "b": np.array([1e-30], dtype)})
    big, tiny = (torch.tensor([v], dtype=getattr(torch, dtype)) for v in (1e30, 1e-30))
    assert q[0] == torch.div(big, tiny, rounding_mode="floor").item()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_float_tensor_by_a_literal_zero_is_torchs_infinities(dtype):
    """Only integer division by 0 is refused: a float tensor // 0 is -inf, inf or nan, % 0 nan, as torch."""
    a = np.array([-2.0, 0.0, 3.0, np.inf], dtype)
    q, r = runtime.session(archdsl.compile_source(
        f"model m(a: {dtype}[N]) -> (q, r) {{\n    q = a // 0\n    r = a % 0\n}}\n")).run(None, {"a": a})
    ta = torch.from_numpy(a)
    assert _same(q, torch.div(ta, 0, rounding_mode="floor").numpy())
    assert _same(r, torch.remainder(ta, 0).numpy())


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_floordiv_does_not_overflow_near_the_limits(dtype):
    """(a - a % b) / b overflowed: INT64_MAX // -2 came out positive; INT_MIN // -1 killed the process
    (SIGFPE in onnxruntime's Div) where torch wraps to INT_MIN."""
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, info.min, info.max, 7, -7, 7, -7, 0, info.min + 1, info.min], dtype)
    b = np.array([-2, 3, 2, 3, 2, 2, -2, -2, 5, -1, -1], dtype)
    q, r = runtime.session(archdsl.compile_source(SRC.format(t=dtype))).run(None, {"a": a, "b": b})
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_array_equal(q, torch.div(ta, tb, rounding_mode="floor").numpy())
    np.testing.assert_array_equal(r, torch.remainder(ta, tb).numpy())


def test_a_zero_quotient_keeps_torchs_sign_in_an_optimized_session():
    """0 // -1 is -0 in torch; onnxruntime's optimizer swapped Where(Not(c), x, y) into Where(c, y, x), and its
    Where gives +0 for a -0 taken from the first branch."""
    src = "model m(a: float32[N], b: float32[N]) -> q {\n    q = a // b\n}\n"
    a = np.array([0.0, -0.0, 0.0, -0.0, -0.5], np.float32)
    b = np.array([-1.0, 1.0, 1.0, -1.0, -3.0], np.float32)
    q = runtime.session(archdsl.compile_source(src)).run(None, {"a": a, "b": b})[0]
    want = torch.div(torch.from_numpy(a), torch.from_numpy(b), rounding_mode="floor").numpy()
    assert np.array_equal(q, want) and np.array_equal(np.signbit(q), np.signbit(want))
