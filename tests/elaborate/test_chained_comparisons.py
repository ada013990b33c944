"""Chained comparisons, `0 <= i < n`: Python's meaning, the middle operand evaluated once."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import ArchError

_MODEL = "model m(x: float32[2, 4]) -> y { y = x }\n"


def value(expr: str):
    return archdsl.check_source(f"param v = {expr}\n" + _MODEL).meta["v"]


@pytest.mark.parametrize("expr", [
    "0 <= 3 < 5", "0 <= 5 < 5", "1 < 2 < 3 < 4", "1 < 3 < 2 < 4", "2 == 2 != 3", "1 in [1] not in [[1]]",
    "5 > 4 >= 4 > 3", "'a' < 'b' < 'c'", "3 > 2 == 2.0",
])
def test_values_are_pythons(expr):
    assert value(expr) == eval(expr)  # noqa: S307 - a literal of the table above


def test_the_first_false_comparison_ends_the_chain():
    """The rest is not evaluated: an error there is never reached (Python's `and`)."""
    assert value("1 > 2 < 1 // 0") is False
    with pytest.raises(ArchError, match="division by zero"):
        value("1 < 2 < 1 // 0")


def test_the_middle_operand_is_evaluated_once():
    """A layer made in the middle of a chain is made once: twice would be a second `fc` (or a new layer)."""
    g = archdsl.check_source("model m(x: float32[2, 4]) -> y {\n"
                             "    assert 0 < channels(x -> linear(3) as fc) < 4\n"
                             "    y = layer(\"fc\")(x)\n}\n")
    assert sorted(g.params) == ["fc.bias", "fc.weight"]


def test_chains_of_sizes_decide_in_asserts_at_run_sizes():
    src = "model m(x: float32[B, 4]) -> y {\n    assert 0 < B < 8, \"small batches\"\n    y = x * 2\n}\n"
    assert archdsl.check_source(src) is not None
    from archdsl.runtime import session
    sess = session(archdsl.compile_source(src))
    import numpy as np
    assert sess.run(None, {"x": np.ones((3, 4), np.float32)})[0].shape == (3, 4)


def test_a_chain_of_tensor_comparisons_says_to_combine_masks():
    with pytest.raises(ArchError) as e:
        archdsl.check_source("model m(x: float32[2, 4]) -> y {\n    y = x < 0 < x\n}\n")
    assert "logical_and(a < b, b < c)" in e.value.message and (e.value.span.line, e.value.span.col) == (2, 9)


def test_in_an_assert_a_decided_link_fails_when_building():
    """`assert B < 8 < 4` waited for a run (its first link is open), where `B < 8 and 8 < 4` fails at build."""
    with pytest.raises(ArchError, match="never"):
        archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    assert B < 8 < 4, \"never\"\n    y = x * 2\n}\n")
