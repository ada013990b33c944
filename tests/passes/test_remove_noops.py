"""remove_noops on the sign of zero: -0.0 + (+0.0) is +0.0, so `x + 0.0` is not a no-op for a float x that
may be -0.0 (1 / (x + 0.0) gave -inf at -O1 where -O0 gave +inf); `x + (-0.0)` and `x - 0.0` are."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime


def _run(expr: str, level: int, dtype: str = "float32"):
    m = archdsl.compile_source(f"model m(x: {dtype}[B, 3]) -> y {{\n    y = 1.0 / ({expr})\n}}\n", opt_level=level)
    x = np.array([[-0.0, 0.0, 2.0]], dtype=np.float16 if dtype == "float16" else np.float32)
    (y,) = runtime.session(m).run(None, {"x": x})
    return y, [n.op_type for n in m.graph.node]


@pytest.mark.parametrize("expr", ["x + 0.0", "0.0 + x", "x - (-0.0)", "x + (-0.0)", "x - 0.0", "-0.0 + x"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_signed_zero_survives_remove_noops(expr, dtype):
    y0, _ = _run(expr, 0, dtype)
    y2, ops = _run(expr, 2, dtype)
    np.testing.assert_array_equal(np.signbit(y2), np.signbit(y0))
    np.testing.assert_array_equal(y2, y0)
    exact = expr in ("x + (-0.0)", "x - 0.0", "-0.0 + x")
    assert ("Add" not in ops and "Sub" not in ops) == exact, ops  # the exact forms still go


def test_integer_plus_zero_still_goes():
    m = archdsl.compile_source("model m(x: int64[B, 3]) -> y {\n    y = x + 0\n}\n", opt_level=1)
    assert not any(n.op_type == "Add" for n in m.graph.node)
