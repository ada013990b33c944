"""A number beside a float16 tensor, as torch's CPU kernels take it: a float32 in *, / and tensor // number
(computed in float32, rounded back), rounded to float16 first in +, -, % and **."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError

torch = pytest.importorskip("torch")

_H = np.concatenate([np.random.default_rng(0).standard_normal(2000) * 100,
                     [1000, 0, 2, 1, -1, 7, 1e-3, 65504, 3.3, 0.07, -0.0]]).astype(np.float16)


def _run(expr: str) -> np.ndarray:
    src = f"model m(h: float16[{_H.size}]) -> y {{\n    y = {expr}\n}}\n"
    return runtime.session(archdsl.compile_source(src)).run(None, {"h": _H})[0]


@pytest.mark.parametrize("number", [0.1, 1e-8, 0.3, 3.7, 0.5])
@pytest.mark.parametrize("op", ["*", "/", "//", "+", "-", "%"])
def test_a_number_beside_a_half_tensor_is_torchs(op, number):
    h = torch.from_numpy(_H)
    for expr in (f"h {op} {number}", f"{number} {op} h"):
        y = _run(expr)
        ref = eval(expr, {"h": h}).numpy()
        assert y.dtype == np.float16
        if expr.startswith(str(number)) and op in ("/", "//"):  # torch: h.reciprocal() * n; its own rounding
            close = np.isclose(y.astype(np.float32), ref.astype(np.float32), rtol=2e-3, atol=0, equal_nan=True)
            assert close.mean() > 0.999
            continue
        np.testing.assert_array_equal(y, ref)


def test_what_rounding_first_lost():
    y = _run("h * 1e-8")
    assert y[_H == 1000][0] == np.float16(1e-5)  # 1e-8 as float16 is 0
    assert _run("h // 0.1")[_H == 1][0] == 9  # 0.1 as float16 is 0.0999756: 10
    assert np.isinf(_run("1e-8 / h")[_H == 0][0])  # 0 / 0 was NaN
    assert _run("h * 1e5")[_H == np.float16(1e-3)][0] == np.float16(np.float32(np.float16(1e-3)) * np.float32(1e5))
    with pytest.raises(ArchError, match="does not fit float16"):
        _run("h + 1e5")  # torch rounds it to float16 first: inf
    with pytest.raises(ArchError, match="does not fit float32"):
        _run("h * 1e39")


@pytest.mark.parametrize("call,operator", [("floordiv(h, 0.1)", "h // 0.1"), ("mul(h, 1e-8)", "h * 1e-8"),
                                           ("h -> div(0.3)", "h / 0.3"), ("mul(a=h, b=0.3) as m", "h * 0.3"),
                                           ("mul(1e-8, h)", "1e-8 * h"), ("floordiv(0.1, h)", "0.1 // h")])
def test_the_function_forms_take_the_number_as_the_operators_do(call, operator):
    """floordiv(h, 0.1) rounded 0.1 to float16 first (10 at 1.0, torch 9) and mul(h, 1e-8) gave 0, where
    h // 0.1 and h * 1e-8 followed torch."""
    np.testing.assert_array_equal(_run(call), _run(operator))


def test_a_number_past_float16_leaves_no_numpy_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" reached stderr
        archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = cast(x, \"float16\") * 70000.0\n}\n")


@pytest.mark.parametrize("expr,widened", [("h * 0.3", True), ("h / 0.1", True), ("h // 0.1", True),
                                          ("h + 0.3", False), ("h * 0.5", False)])
def test_bfloat16_widens_as_float16_does(expr, widened):
    """torch's bfloat16 kernels take the number as a float32 too (h * 0.3 rounded 0.3 first differed in 47% of
    elements); onnxruntime's CPU has no bfloat16 arithmetic to run, so the graph says it: the op between two
    casts, or no casts where the number is exact in bfloat16 (0.5) or the op rounds it first (+)."""
    g = archdsl.check_source(f"model m(h: bfloat16[8]) -> y {{\n    y = {expr}\n}}\n")
    ops = [n.op for n in g.nodes]
    if widened:
        assert ops[0] == "cast" and ops[-1] == "cast" and g.nodes[0].outputs[0].type.dtype.label == "float32"
        assert g.nodes[-1].outputs[0].type.dtype.label == "bfloat16"
    else:
        assert "cast" not in ops
