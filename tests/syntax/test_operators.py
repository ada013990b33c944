"""Operators and literals the grammar tests left open (a mutation hunt changed each with the suite green): a
line break after every operator that continues a statement, repeated unary operators, the standard string
escapes, underscores in every part of a float, and the bracket nesting limit at its edge."""

from __future__ import annotations

import pytest

from archdsl.diagnostics import ArchSyntaxError, LimitError
from archdsl.syntax import ast as A
from archdsl.syntax import parse
from archdsl.syntax.parser import _CONTINUES

from .test_grammar import C, N, _, body, expr

_BINARY = ["->", "+", "-", "*", "/", "//", "%", "@", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or", "in",
           "not in", "as"]


@pytest.mark.parametrize("op", _BINARY)
def test_a_line_break_after_an_operator_continues_the_statement(op):
    """As the grammar's header promises for every operator (only + and `and` were tested)."""
    right = "fc" if op == "as" else "b"
    assert expr(f"a {op}\n        {right}") == expr(f"a {op} {right}")


def test_every_operator_that_continues_a_line_is_tested():
    words = {w for op in _BINARY for w in op.split()}
    brackets_and_keywords = {",", "=", "(", "[", "{", ".", ":", "if", "elif", "else"}  # tested in test_grammar
    assert _CONTINUES <= words | brackets_and_keywords, _CONTINUES - words - brackets_and_keywords


def test_a_line_break_after_not_continues():
    assert expr("not\n        a") == A.UnaryOp("not", N("a"), _)


@pytest.mark.parametrize("text, tree", [
    ("not not a", A.UnaryOp("not", A.UnaryOp("not", N("a"), _), _)),
    ("- -a", A.UnaryOp("-", A.UnaryOp("-", N("a"), _), _)),
    ("-+a", A.UnaryOp("-", A.UnaryOp("+", N("a"), _), _)),
    ("+-a", A.UnaryOp("+", A.UnaryOp("-", N("a"), _), _)),
])
def test_unary_operators_repeat_as_in_python(text, tree):
    assert expr(text) == tree


@pytest.mark.parametrize("escape, char", [("a", "\a"), ("b", "\b"), ("f", "\f"), ("n", "\n"), ("r", "\r"),
                                          ("t", "\t"), ("v", "\v"), ("\\", "\\"), ("'", "'"), ('"', '"'),
                                          ("x41", "A"), ("u00e9", "é"), ("101", "A")])
def test_string_escapes_mean_what_they_mean_in_python(escape, char):
    assert expr(f'"<\\{escape}>"') == C(f"<{char}>")


@pytest.mark.parametrize("text, value", [("1.5_0", 1.5), ("1e1_0", 1e10), ("1_0.2_5e-0_1", 1.025), (".5_5", 0.55),
                                         ("2_0E+1_0", 2e11)])
def test_underscores_group_the_digits_of_every_part_of_a_float(text, value):
    """1.5_0 was "unexpected '_0'": only the integer part took them; Python takes them in each."""
    assert expr(text) == C(value)


@pytest.mark.parametrize("text", ["1.5__0", "1e1_", "1.5_e3", "1e1__0"])
def test_stray_underscores_in_a_fraction_or_an_exponent_are_refused(text):
    with pytest.raises(ArchSyntaxError, match="an underscore goes between two digits"):
        body(f"    y = {text}")


def test_brackets_nest_up_to_100_deep():
    """Counted with the braces around them (a model's body is one)."""
    (let,) = parse("let a = " + "(" * 100 + "1" + ")" * 100 + "\n", "t.arch").items
    assert let.value.value == 1
    with pytest.raises(LimitError, match="brackets nested deeper than 100"):
        parse("let a = " + "(" * 101 + "1" + ")" * 101 + "\n", "t.arch")


def test_a_bad_literal_in_a_string_hole_or_a_define_points_at_itself(tmp_path, capsys):
    """Refused while the hole's expression was built, not parsed, its place stayed the fragment's own (1:1)."""
    import archdsl
    from archdsl.cli import main
    with pytest.raises(ArchSyntaxError) as e:
        archdsl.check_source('model m(x: float32[B, 4]) -> y {\n  assert true, "v {1.5_} w"\n  y = x\n}\n')
    assert (e.value.span.line, e.value.span.col, e.value.span.end_col) == (2, 20, 24)
    spec = tmp_path / "d.arch"
    spec.write_text("param lr = 0.5\nmodel m(x: float32[B, 4]) -> y {\n    y = x * lr\n}\n")
    assert main(["check", str(spec), "-D", "lr=(1, 2_)"]) == 1
    assert capsys.readouterr().err.startswith("<-D>:1:8: error: invalid number '2_'")


@pytest.mark.parametrize("line, hint", [
    ("y = x -> linear(4) as layers.1_0", '(a dotted layer name is a string: as "layers.1_0")'),
    ("z = x.1_0", "(an item of a list or tuple is x[1_0]; a field of a record is x.name)"),
    ("z = 1.5_0.5", "(a number has one '.'; dotted text such as a version is a string"),
])
def test_the_hints_after_a_dot_read_underscored_digits(line, hint):
    with pytest.raises(ArchSyntaxError) as e:
        parse(f"model m(x: float32[B, 4]) -> y {{\n    {line}\n    y = x\n}}\n", "t.arch")
    assert hint in e.value.message
