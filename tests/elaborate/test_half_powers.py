"""x ** 0.5 and x ** -0.5 are torch's sqrt and rsqrt (its pow special-cases them): ONNX Pow follows C's pow,
which gives inf at -inf for 0.5 (torch: nan) and +inf at -0.0 for -0.5 (torch: -inf). torch's float16 CPU
kernel keeps C's pow, and so does archdsl there."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl import runtime

torch = pytest.importorskip("torch")

EDGES = np.array([-np.inf, -1.0, -0.0, 0.0, 1e-30, 0.25, 4.0, 3e38, np.inf, np.nan], np.float32)


@pytest.mark.parametrize("expr,op", [("x ** 0.5", "sqrt"), ("x ** -0.5", "rsqrt"), ("pow(x, 0.5)", "sqrt"),
                                     ("pow(x, -0.5)", "rsqrt"), ("x ** 0.25", "pow"), ("pow(x, b=0.5)", "sqrt"),
                                     ("pow(b=-0.5, a=x)", "rsqrt")])
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_half_powers_are_torchs_at_the_edges(expr, op, dtype):
    src = f"model m(x: {dtype}[10]) -> y {{\n    y = {expr}\n}}\n"
    op = "pow" if dtype == "float16" else op
    g = archdsl.check_source(src)
    assert [n.op for n in g.nodes] == [op] and len(g.consts) == (op == "pow")  # no 0.5 left over unread
    with np.errstate(over="ignore"):
        x = EDGES.astype(dtype)
    (got,) = runtime.session(archdsl.compile_source(src, opt_level=0)).run(None, {"x": x})
    k = float(re.search(r"-?\d+\.\d+", expr)[0])  # the exponent, however it is written
    want = torch.pow(torch.from_numpy(x), k).numpy()
    num = ~np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), ~num)
    np.testing.assert_array_equal(np.signbit(got[num]), np.signbit(want[num]))  # rsqrt(-0.0) is -inf
    np.testing.assert_allclose(got, want, rtol=1e-3 if dtype == "float16" else 1e-6)
