"""The builtins' optional arguments and number semantics, as Python's: int() truncates toward zero,
enumerate and sum take a start, dtype(x) names the tensor's dtype. Each was documented and never checked."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import ArchError, ArchTypeError


@pytest.mark.parametrize("claim", [
    "int(-2.5) == -2", "int(2.7) == 2", "int(-0.5) == 0",
    "[i for i, _ in enumerate([7, 8], 3)] == [3, 4]", "[i for i, _ in enumerate([7, 8])] == [0, 1]",
    "sum([1, 2], 10) == 13", "sum([1.5, 2.5]) == 4.0",
    "dtype(h) == \"float16\"", "dtype(x) == \"float32\"", "dtype(ids) == \"int64\"",
])
def test_a_builtin_does_what_python_does(claim):
    src = (f"model m(x: float32[B, 4], h: float16[B, 4], ids: int64[B]) -> y {{\n    assert {claim}\n"
           "    y = x\n}\n")
    archdsl.check_source(src)
    with pytest.raises(ArchError, match="assertion failed|assert"):
        archdsl.check_source(src.replace(f"assert {claim}", f"assert not ({claim})"))


def test_enumerate_start_names_the_layers():
    src = ("model m(x: float32[B, 4]) -> y {\n    h = x\n    for i, w in enumerate([8, 6], 1) {\n"
           "        h = h -> linear(w) as \"fc{i}\"\n    }\n    y = h\n}\n")
    assert sorted(archdsl.check_source(src).params) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]


def test_sum_of_a_list_of_tensors_adds_them_as_pythons_does():
    """sum(branches) of a block's outputs (torch code's sum(list)): it said 'sum() expects a number'."""
    import numpy as np

    from archdsl import runtime
    m = archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    let hs = [x * 2.0, x, x + 1.0]\n"
                               "    y = sum(hs)\n}\n")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(runtime.session(m, "cpu", 1).run(None, {"x": x})[0], 4 * x + 1)
    for items, start, want in (("[x, x]", "0", 2 * x), ("[x, x]", "1.5", 2 * x + 1.5), ("[x, x]", "x", 3 * x),
                               ("[x, x]", "start=1.0", 2 * x + 1), ("[1.0, 2.0]", "x", x + 3), ("[]", "x", x)):
        m = archdsl.compile_source(f"model m(x: float32[B, 4]) -> y {{\n    y = sum({items}, {start})\n}}\n")
        np.testing.assert_allclose(runtime.session(m, "cpu", 1).run(None, {"x": x})[0], want)


def test_sum_of_tensors_with_a_start_that_is_no_number_names_sum():
    """sum([x], "a") said "add(): 'a' must be a tensor", naming a parameter of an op the user never called."""
    with pytest.raises(ArchTypeError, match=r'^<string>:2:9: sum\(\): start must be a number, a size or a tensor, '
                                            r'got string "a"'):
        archdsl.check_source('model m(x: float32[B, 4]) -> y {\n    y = sum([x, x], "a")\n}\n')
    for start in ("B", "x.shape[0]", "true"):  # as x + B and x + true
        archdsl.check_source(f"model m(x: float32[B, 4]) -> y {{\n    y = sum([x, x], {start})\n}}\n")


def test_a_keyword_given_twice_is_said_at_it_with_its_callee(tmp_path, capsys):
    """conv2d(4, 3, padding=1, padding=2) put a one-column caret under the 2 and named no callee, where stride
    given positionally and by name says 'conv2d(): ...' under `stride=2` (review118)."""
    from archdsl.cli import main
    for call, shown in (("x -> conv2d(4, 3, padding=1, padding=2) as c", "conv2d(): argument 'padding' given twice"),
                        ("x -> f(k=1, k=2)", "f(): argument 'k' given twice")):
        spec = tmp_path / "m.arch"
        spec.write_text(f"block f(x, k=1) {{\n    return x * k\n}}\nmodel m(x: float32[B, 3, 8, 8]) -> y {{\n"
                        f"    y = {call}\n}}\n")
        assert main(["check", str(spec)]) == 1
        first, line, caret = capsys.readouterr().err.splitlines()[:3]
        assert first.endswith(f"error: {shown}")
        dup = call.rindex(call.split(", ")[-1].split(")")[0])  # the second `name=value`
        assert caret.index("^") == line.index(call) + dup and caret.count("^") == len(call[dup:].split(")")[0])
