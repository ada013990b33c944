"""-D NAME.FIELD on a record param: one field set, checked against its default, the rest kept."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import DefineError

_SRC = ("param cfg = {width: 4, depth: 2, act: 'relu', inner: {k: 3}}\n"
        "model m(x: float32[B, 4]) -> y { y = x -> linear(cfg.width * cfg.inner.k) }\n")


def test_a_define_sets_one_field_of_a_record_param_and_keeps_the_others():
    g = archdsl.check_source(_SRC, defines=["cfg.width=8"])
    assert g.meta["cfg"] == {"width": 8, "depth": 2, "act": "relu", "inner": {"k": 3}}
    assert g.outputs[0][1].type.shape[1] == 24
    g = archdsl.check_source(_SRC, defines={"cfg.inner.k": 5, "cfg.act": "gelu"})
    assert g.meta["cfg"] == {"width": 4, "depth": 2, "act": "gelu", "inner": {"k": 5}}
    # the whole record first, then its field, whatever the order they were given in
    g = archdsl.check_source(_SRC, defines=["cfg.width=7", "cfg={width: 1, depth: 1, act: 'a', inner: {k: 2}}"])
    assert g.meta["cfg"] == {"width": 7, "depth": 1, "act": "a", "inner": {"k": 2}}


def test_a_record_define_is_checked_like_a_param_define():
    with pytest.raises(DefineError, match=r"-D cfg.widht: the record 'cfg' has no field 'widht'; did you mean "
                                          r"'width'\? \(its fields: width, depth, act, inner\)"):
        archdsl.check_source(_SRC, defines=["cfg.widht=8"])
    with pytest.raises(DefineError, match="-D cfg.width: expected an integer like the default") as e:
        archdsl.check_source(_SRC, defines=["cfg.width=big"])
    assert e.value.notes[0][0] == "param 'cfg' is declared here"
    with pytest.raises(DefineError, match=r"'cfg.act' is string \"relu\", not a record"):
        archdsl.check_source(_SRC, defines=["cfg.act.x=1"])
    with pytest.raises(DefineError, match="the record 'cfg.inner' has no field 'q'"):
        archdsl.check_source(_SRC, defines=["cfg.inner.q=1"])


def test_a_define_sets_a_field_of_an_imported_files_record_param(tmp_path):
    """-D lib.cfg.width=16 set the field, then crashed recording it (KeyError: 'cfg.width')."""
    (tmp_path / "lib.arch").write_text("param cfg = {width: 4, inner: {k: 2}}\n")
    main = tmp_path / "main.arch"
    main.write_text("import \"lib.arch\" as lib\nmodel m(x: float32[B, 4]) -> y {\n"
                    "    y = x -> linear(lib.cfg.width * lib.cfg.inner.k) as fc\n}\n")
    g = archdsl.check_file(str(main), defines=["lib.cfg.width=16", "lib.cfg.inner.k=3"])
    assert g.outputs[0][1].type.shape[1] == 48


@pytest.mark.parametrize("given, words", [
    ("cfg={width: 'x', depth: 1, act: 'a', inner: {k: 2}}",
     r"-D cfg.width: expected an integer like the default \(int 4\), got string \"x\""),
    ("cfg={w: 1, d: 2}", r"-D cfg: the record lacks the fields width, depth, act, inner and has no field w, d"),
    ("cfg={width: 1, depth: 1, act: 'a', inner: {k: 'z'}}", r"-D cfg.inner.k: expected an integer"),
])
def test_a_whole_record_given_by_define_is_checked_field_by_field(given, words):
    """-D cfg={...} replaced the record unchecked: a field of another type, missing or new failed only where
    the spec read it (`int 1 has no attribute 'w'`), as -D cfg.width=... did not."""
    with pytest.raises(DefineError, match=words):
        archdsl.check_source(_SRC, defines=[given])


_LISTS = ("param blocks = [{width: 8, depth: 1}, {width: 16, depth: 2}]\nparam table = {1: 2.0, 2: 4.0}\n"
          "param stages = {18: [2, 2], 34: [3, 4]}\nparam empty = {}\nparam scales = {1: [0.5, 1.0]}\n"
          "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(blocks[-1].width + stages[18][0] + len(empty))\n"
          "    y = y * table[1]\n}\n")


@pytest.mark.parametrize("given, words", [
    ("blocks=[{width: 'a', depth: 1}]", r"-D blocks\[0\].width: expected an integer like the default \(int 8\), "
                                        r"got string \"a\""),
    ("blocks=[{width: 4, depth: 1}, 3]", r"-D blocks: element 1 is int 3, and the default's elements are "
                                         r"records \(width, depth\)"),
    ("blocks=[{width: 4}]", r"-D blocks\[0\]: the record lacks the field depth"),
    ("table={1: 'x'}", r"-D table: the value of key int 1 is string \"x\", and the default's values are numbers"),
    ("table={'a': 2.0}", r"-D table: key string \"a\", and the default's keys are integers"),
    ("stages={18: 'a'}", r"-D stages: the value of key int 18 is string \"a\", and the default's values are lists "
                         r"of integers"),
    ("stages={18: [2, 'x']}", r"-D stages: the value of key int 18 has string \"x\" at element 1, and the default's "
                              r"values are lists of integers"),
])
def test_a_list_of_records_and_a_dict_with_number_keys_given_by_define_are_checked(given, words):
    """-D blocks=[...] over a list of records and -D table={...} over a dict with integer keys were taken
    unchecked: a wrong field or value failed only where the spec read it, pointing at the spec's line. So was
    a dict whose values are lists (a ResNet's stage table), though REFERENCE says a dict -D takes keys and
    values of its default's kinds."""
    with pytest.raises(DefineError, match=words) as e:
        archdsl.check_source(_LISTS, defines=[given])
    assert e.value.notes[0][0] == "param '" + given.partition("=")[0] + "' is declared here"


def test_the_api_names_an_element_of_a_list_define_after_its_key():
    with pytest.raises(DefineError, match=r"defines\['blocks'\]\[0\]\.width: expected an integer"):
        archdsl.check_source(_LISTS, defines={"blocks": [{"width": "a", "depth": 1}]})


def test_a_list_of_records_and_a_dict_with_number_keys_given_by_define_are_taken():
    g = archdsl.check_source(_LISTS, defines=["blocks=[{width: 4, depth: 1}, {width: 32, depth: 3}]",
                                              "table={1: 3, 7: 1.5}", "stages={18: [5, 1], 50: [3, 4, 6, 3]}",
                                              "empty={1: 'x'}", "scales={1: [1, 2], 2: [3]}"])
    assert g.meta["blocks"] == [{"width": 4, "depth": 1}, {"width": 32, "depth": 3}]
    assert g.meta["table"] == {1: 3.0, 7: 1.5} and type(g.meta["table"][1]) is float  # an int where floats go
    assert g.outputs[0][1].type.shape[1] == 32 + 5 + 1
    assert g.meta["scales"] == {1: [1.0, 2.0], 2: [3.0]} and type(g.meta["scales"][1][0]) is float  # as a list's
