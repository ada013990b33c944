"""Integer tensors kept exact where torch keeps them: powers by a number, clamp bounds past 2**53, and integer
parameters as buffers (torch refuses gradients for them)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError

torch = pytest.importorskip("torch")

_X = np.array([3, 3037000499, 2097151, -7, 0, 1, -1, 2], np.int64)


@pytest.mark.parametrize("form", ["x ** {k}", "pow(x, {k})"])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5, 39, 63, 64, 100])
def test_an_integer_power_wraps_as_torchs(k, dtype, form):
    """onnxruntime's integer Pow goes through double: 3 ** 39 came back rounded, and overflow gave the dtype's
    minimum (pow(x, 41), the function form, still did)."""
    x = _X.astype(dtype)
    x[-1] = np.iinfo(dtype).max  # x ** 1 at -O0 went through double: INT64_MAX came back INT64_MIN
    for level in (0, 2):
        src = f"model m(x: {dtype}[8]) -> y {{\n    y = {form.format(k=k)}\n}}\n"
        sess = runtime.session(archdsl.compile_source(src, opt_level=level))
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], (torch.from_numpy(x) ** k).numpy())


@pytest.mark.parametrize("expr,words", [("pow(x, 3000000000)", "does not fit int32"),
                                        ("x ** 3000000000", "does not fit int32"),
                                        ("pow(x, b=-1)", "negative power -1"), ("x ** -1", "negative power -1"),
                                        ("x ** -0.5", "would give a float tensor")])  # torch does: 4 ** -0.5
def test_an_integer_power_refuses_what_torch_refuses(expr, words):
    """pow(x, k) skipped the check that k fits x's dtype, and pow(x, b=-1) built a model of zeros."""
    with pytest.raises(ArchError, match=words):
        archdsl.check_source(f"model m(x: int32[4]) -> y {{\n    y = {expr}\n}}\n")


def test_pow_refuses_two_dtypes_but_a_float_base_takes_an_integer_exponent():
    for a, b in (("float16", "float32"), ("float32", "float64"), ("int32", "int64")):
        with pytest.raises(ArchError, match=rf"'\*\*': dtypes differ \({a} vs {b}\)"):
            archdsl.check_source(f"model m(h: {a}[3], p: {b}[3]) -> y {{\n    y = h ** p\n}}\n")
    g = archdsl.check_source("model m(h: float32[3], p: int64[3]) -> y {\n    y = h ** p\n}\n")
    assert str(g.outputs[0][1].type.dtype) == "float32"


def test_clamp_bounds_of_an_int64_tensor_stay_exact():
    src = ("model m(x: int64[3]) -> (c, d) {\n    c = clamp(x, min=9007199254740993)\n"
           "    d = clamp(x, max=9223372036854775807)\n}\n")
    x = np.array([2**53 + 1, 2**60 + 7, 3], np.int64)
    c, d = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})
    np.testing.assert_array_equal(c, [2**53 + 1, 2**60 + 7, 2**53 + 1])  # 2**53 + 1 had become 2**53
    np.testing.assert_array_equal(d, x)  # INT64_MAX was refused as 9.223372036854776e+18


def test_an_integer_parameter_is_a_buffer():
    src = ("model m(x: float32[B, 3]) -> y {\n    k = parameter([3], ARGS) as k\n"
           "    y = x * cast(k, \"float32\")\n}\n")
    g = archdsl.check_source(src.replace("ARGS", 'dtype="int64", init="constant", value=2'))
    assert not g.params["k"].spec.trainable
    with pytest.raises(ArchError, match="an int64 parameter cannot be trainable"):
        archdsl.check_source(src.replace("ARGS", 'dtype="int64", trainable=true'))
    with pytest.raises(ArchError, match=r'an int32 parameter starts from init="zeros", "ones" or "constant" '
                                        r'\(init="normal" draws floats\)'):
        archdsl.check_source(src.replace("ARGS", 'dtype="int32", init="normal"'))
