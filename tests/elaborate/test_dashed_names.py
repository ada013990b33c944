"""`as fc-1` is the layer fc minus 1: valid arithmetic, and a sign of a dashed name written bare."""

from __future__ import annotations

import archdsl


def _warnings(body: str) -> list[str]:
    g = archdsl.check_source(f"model m(x: float32[B, 4], k: float32[B, 8]) -> z {{\n{body}\n}}\n")
    return [w[0] for w in g.warnings]


def test_a_bare_label_with_a_touching_dash_is_warned_of():
    assert _warnings("    z = linear(x, 8) as fc-1") == [
        "'as fc-1' names the layer 'fc' and subtracts 1 from it: a layer name with '-' in it is a string, "
        "as \"fc-1\""]


def test_a_subtraction_written_as_one_is_not():
    for body in ("    z = linear(x, 8) as fc - k", "    z = linear(x, 8) as \"fc\"-1", "    z = linear(x, 8) as fc -1",
                 "    z = linear(x, 8) as \"fc-1\""):
        assert _warnings(body) == [], body


def test_a_literal_whose_digits_its_value_does_not_spell_is_not_taken_for_a_name():
    # 0x1f is 31: "fc-31" would be a name the spec never wrote
    for body in ("    z = linear(x, 8) as fc-0x1f", "    z = linear(x, 8) as fc-1_0"):
        assert _warnings(body) == [], body
