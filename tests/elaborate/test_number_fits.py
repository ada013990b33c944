"""A number becoming a constant of a tensor's dtype: out of range a diagnostic at the number (it was a silent inf
with numpy warnings), one that rounds to the dtype's largest taken, as torch takes it."""

from __future__ import annotations

import warnings

import pytest

import archdsl
from archdsl.diagnostics import ArchError


def body(stmts: str, inputs: str = "x: float32[2, 4]"):
    return archdsl.check_source(f"model m({inputs}) -> y {{\n{stmts}\n    y = x\n}}\n")


@pytest.mark.parametrize("dtype, number, message", [
    ("float32", "1e39", r"1e\+39 does not fit float32"), ("float16", "1e6", "does not fit float16"),
    ("float16", "100000", "does not fit float16"), ("bfloat16", "1e39", "does not fit bfloat16"),
    ("float32", "3.41e38", "does not fit float32"), ("float16", "65520.0", "does not fit float16"),
    ("int32", "2 ** 40", "does not fit int32"), ("int64", "2 ** 70", "does not fit int64"),
])
def test_a_number_that_does_not_fit_the_tensor_is_a_diagnostic_at_the_number(dtype, number, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ArchError, match=message) as e:
            archdsl.check_source(f"model m(x: {dtype}[2, 4]) -> y {{\n    y = x * 2 + {number}\n}}\n")
    assert (e.value.span.line, e.value.span.col) == (2, 17)


def test_numbers_that_fit_and_infinities_are_constants():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings; the unused first h is the spec's own
        warnings.simplefilter("ignore", archdsl.ArchWarning)
        body("    h = x + 3e38\n    h = x * 1e999")
        archdsl.check_source("model m(x: int64[2]) -> y { y = x + 2 ** 62 }\n")
        for dtype, bits in (("int32", 32), ("int64", 64)):  # each end of the range fits
            ends = f"(-2 ** {bits - 1}) + (2 ** {bits - 1} - 1)"
            archdsl.check_source(f"model m(x: {dtype}[2]) -> y {{ y = x + {ends} }}\n")
        # numpy's float32 max as printed (past the max, rounding to it: torch takes it; specials hunt)
        archdsl.check_source("model m(x: float32[2]) -> y { y = x * 2 + 3.4028235e38 }\n")
        archdsl.check_source("model m(x: float16[2]) -> y { y = x * 2 + 65519.0 }\n")
