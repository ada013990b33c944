"""Parser: every construct gives the expected AST; spans and syntax errors point at the right place."""

from __future__ import annotations

import dataclasses

import pytest

from archdsl.diagnostics import ArchSyntaxError, Span
from archdsl.syntax import ast as A
from archdsl.syntax import parse

_ = None  # span placeholder in expected trees


def strip(node):
    """The AST with every span set to None, so trees compare by structure only."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            changes[f.name] = None if isinstance(v, Span) else strip(v)
        return dataclasses.replace(node, **changes)
    if isinstance(node, tuple):
        return tuple(strip(x) for x in node)
    return node


def N(name: str) -> A.Name:
    return A.Name(name, _)


def C(value) -> A.Const:
    return A.Const(value, _)


def B(op: str, left, right) -> A.BinOp:
    return A.BinOp(op, left, right, _)


def call(func: str, *args, **kwargs) -> A.Call:
    return A.Call(N(func), tuple(args), tuple(kwargs.items()), _)


def items(text: str) -> tuple:
    return strip(parse(text, "t.arch")).items


def body(stmts: str) -> tuple:
    """Statements inside a model body."""
    src = "model m(x: float32[2]) -> y {\n" + stmts + "\n}\n"
    (model,) = items(src)
    return model.body


def expr(text: str):
    (stmt,) = body(f"    y = {text}")
    return stmt.value


# ---- module items ----

def test_param_and_let():
    assert items("param depth = 50\nlet w = 2.5\n") == (
        A.ParamDecl("depth", C(50), _), A.Let("w", C(2.5), _))


def test_literals():
    assert expr("{18: [2, 2], name: true, \"k\": none}") == A.DictLit(
        ((18, A.ListLit((C(2), C(2)), _)), ("name", C(True)), ("k", C(None))), _)
    assert expr("(1, 'a', false)") == A.TupleLit((C(1), C("a"), C(False)), _)
    assert expr("(1,)") == A.TupleLit((C(1),), _)
    assert expr("()") == A.TupleLit((), _)
    assert expr("[]") == A.ListLit((), _)
    assert expr("(3)") == C(3)
    assert expr("0x10") == C(16)
    assert expr("0XfF_0") == C(0xFF0) and expr("0o17") == C(15) and expr("0b1010_1") == C(21) and expr("0B1") == C(1)
    assert expr("0x1_e") == C(30) and expr("0xFF_E0") == C(0xFFE0) and expr("0x_e") == C(14)  # e is a hex digit
    assert expr("1_000") == C(1000)
    assert expr("1e-3") == C(0.001)
    assert expr("[1, 2,]") == A.ListLit((C(1), C(2)), _)


def test_several_values_on_the_right_of_an_assignment_are_a_tuple():
    """`a, b = 1, 2` as in Python (it needed parentheses: `a, b = (1, 2)`); `t = 1, 2` is a tuple too."""
    assert body("    a, b = 1, x") == (A.Assign(("a", "b"), A.TupleLit((C(1), N("x")), _), _),)
    assert body("    t = 1, 2") == (A.Assign(("t",), A.TupleLit((C(1), C(2)), _), _),)
    assert body("    a, b = (1, 2)") == (A.Assign(("a", "b"), A.TupleLit((C(1), C(2)), _), _),)
    (stmt,) = parse("model m(x: float32[2]) -> y {\n    a, b = 10, f(x)\n}\n", "t.arch").items[0].body
    assert (stmt.value.span.col, stmt.value.span.end_col) == (12, 20)  # the values, for the unpack messages


def test_list_comprehension():
    assert expr("[i * 2 for i in range(n) if i > 0]") == A.ListComp(
        B("*", N("i"), C(2)), ("i",), call("range", N("n")), B(">", N("i"), C(0)), _)
    assert expr("[a for a, b in zip(p, q)]") == A.ListComp(N("a"), ("a", "b"), call("zip", N("p"), N("q")), None, _)
    assert expr("[i for i in a if i for j in b]") == A.ListComp(N("i"), ("i",), N("a"), N("i"), _,
                                                               ((("j",), N("b"), None),))


def test_import():
    assert items('import "lib/other.arch"\nimport "x.arch" as lib\n') == (
        A.Import("lib/other.arch", None, _), A.Import("x.arch", "lib", _))


def test_block_with_defaults():
    (blk,) = items("block basic(x, planes, stride=1) {\n    return x\n}\n")
    assert blk == A.BlockDef("basic", (A.Formal("x", None, _), A.Formal("planes", None, _),
                                       A.Formal("stride", C(1), _)), (A.Return((N("x"),), _),), _)


def test_model_several_inputs_and_outputs():
    (m,) = items("model m(x: float32[B, 3], ids: int64[B, T]) -> (a, b) {\n    a = x\n    b = ids\n}\n")
    assert m.name == "m" and m.outputs == ("a", "b")
    assert m.inputs == (A.ModelInput("x", "float32", (N("B"), C(3)), _, _),
                        A.ModelInput("ids", "int64", (N("B"), N("T")), _, _))
    (m1,) = items("model one(x: float32[]) -> y { y = x }")
    assert m1.outputs == ("y",) and m1.inputs[0].dims == ()
    assert m1.body == (A.Assign(("y",), N("x"), _),)


def test_for_one_and_several_targets():
    (f1,) = body("    for i in range(3) { y = i }")
    assert f1 == A.For(("i",), call("range", C(3)), (A.Assign(("y",), N("i"), _),), _)
    (f2,) = body("    for i, n in enumerate(xs) {\n        y = n\n    }")
    assert f2.targets == ("i", "n") and f2.iter == call("enumerate", N("xs"))
    (f3,) = body("    for (a, b) in pairs { y = a }")
    assert f3.targets == (("a", "b"),)  # one target that unpacks two
    (f4,) = body("    for i, (c, [s, (k)]) in enumerate(cfg) { y = c }")
    assert f4.targets == ("i", ("c", ("s", "k")))  # nested as Python's; (k) is k
    (f5,) = body("    for (a,), [b], (c) in xs { y = a }")
    assert f5.targets == (("a",), ("b",), "c")  # (a,) and [b] unpack one, as in Python
    (f6,) = body("    for a, in xs { y = a }")
    assert f6.targets == (("a",),)  # as for (a,) in
    assert expr("[c for i, (c, s) in enumerate(cfg)]").targets == ("i", ("c", "s"))


def test_an_assignment_unpacks_nested_names():
    """As a for's targets: (v, i), rest = topk(x, 2), x was a syntax error."""
    (a1,) = body("    (v, i), rest = f(x)")
    assert a1.targets == (("v", "i"), "rest")
    (a2,) = body("    (a, b) = p")
    (a3,) = body("    [a, (b)] = p")
    assert a2.targets == a3.targets == (("a", "b"),)
    (a4,) = body("    (a,), (b) = p")
    assert a4.targets == (("a",), "b")
    (a5,) = body("    a, b, = p")
    assert a5.targets == (("a", "b"),)


def test_if_elif_else():
    (s,) = body("    if a { y = 1 } elif b { y = 2 } elif c { y = 3 } else { y = 4 }")
    asg = [A.Assign(("y",), C(k), _) for k in (1, 2, 3, 4)]
    assert s == A.If(((N("a"), (asg[0],)), (N("b"), (asg[1],)), (N("c"), (asg[2],))), (asg[3],), _)
    (s2,) = body("    if a {\n        y = 1\n    }")
    assert s2.orelse == () and len(s2.branches) == 1


def test_else_and_elif_may_start_the_line_after_the_closing_brace():
    """The line break after an if's `}` does not end the statement when else/elif follows (blank lines and
    comments in between too); the tree is the one of the same-line form."""
    same = body("    if a { y = 1 } elif b { y = 2 } else { y = 3 }")
    split = body("    if a {\n        y = 1\n    }\n    elif b {\n        y = 2\n    }\n\n"
                 "    # otherwise\n    else {\n        y = 3\n    }")
    assert split == same
    (s, t) = body("    if a {\n        y = 1\n    }\n    y = 2")  # a plain next statement still ends the if
    assert s.orelse == () and t == A.Assign(("y",), C(2), _)


def test_else_after_a_line_break_is_not_taken_by_other_blocks():
    e = _err(_M + "    for i in [1] {\n        y = x\n    }\n    else {\n        y = x\n    }\n}\n")
    assert (e.span.line, e.span.col) == (5, 5) and e.message.startswith("unexpected 'else'")


def test_repeat():
    (r,) = body("    repeat n as i { y = i }")
    assert r == A.Repeat(N("n"), "i", (A.Assign(("y",), N("i"), _),), _)
    (r2,) = body("    repeat (a + 1) { y = x }")
    assert r2.count == B("+", N("a"), C(1)) and r2.var is None
    (r3,) = body("    repeat 3 { y = x }")
    assert r3.count == C(3)


def test_return_several_and_assign_several():
    assert body("    return a, b + 1") == (A.Return((N("a"), B("+", N("b"), C(1))), _),)
    assert body("    a, b = f(x)") == (A.Assign(("a", "b"), call("f", N("x")), _),)


def test_assert_with_and_without_message():
    assert items('assert depth in cfg, "bad depth"\nassert ok\n') == (
        A.Assert(B("in", N("depth"), N("cfg")), C("bad depth"), _), A.Assert(N("ok"), None, _))


def test_pipe_continued_on_next_line():
    got = expr("x -> linear(4) as fc\n        -> relu\n    -> dropout(0.1)")
    fc = A.Labelled(call("linear", C(4)), C("fc"), _)
    assert got == A.Pipe(A.Pipe(A.Pipe(N("x"), fc, _), N("relu"), _), call("dropout", C(0.1)), _)


def test_labels():
    assert expr("x -> f as 3") == A.Pipe(N("x"), A.Labelled(N("f"), C(3), _), _)
    assert expr('f(x) as "downsample.0"') == A.Labelled(call("f", N("x")), C("downsample.0"), _)
    got = expr('x -> basic(64) as "layer{i+1}.{j}"')
    interp = A.Interp(("layer", B("+", N("i"), C(1)), ".", N("j")), _)
    assert got == A.Pipe(N("x"), A.Labelled(call("basic", C(64)), interp, _), _)


def test_interpolated_string_spans_point_into_the_string():
    (model,) = parse('model m(x: float32[2]) -> y {\n    y = "a{i + 1}"\n}\n', "t.arch").items
    interp = model.body[0].value
    assert isinstance(interp, A.Interp)
    hole = interp.parts[1]
    # `i` sits at column 12 of line 2:  `    y = "a{i + 1}"`
    assert (hole.span.line, hole.span.col, hole.span.end_col) == (2, 12, 17)
    assert (hole.left.span.col, hole.left.span.end_col) == (12, 13)


def test_slices():
    assert expr("x[1:3]") == A.Subscript(N("x"), (A.Slice(C(1), C(3), None, _),), _)
    assert expr("x[..., :2]") == A.Subscript(N("x"), (C(Ellipsis), A.Slice(None, C(2), None, _)), _)
    assert expr("x[:, 0]") == A.Subscript(N("x"), (A.Slice(None, None, None, _), C(0)), _)
    assert expr("x[::2]") == A.Subscript(N("x"), (A.Slice(None, None, C(2), _),), _)
    assert expr("x.shape[1]") == A.Subscript(A.Attr(N("x"), "shape", _), (C(1),), _)


def test_calls_kwargs_and_attrs():
    assert expr("conv2d(64, 3, stride=2, bias=false)") == call("conv2d", C(64), C(3), stride=C(2), bias=C(False))
    assert expr("lib.basic(x).T") == A.Attr(A.Call(A.Attr(N("lib"), "basic", _), (N("x"),), (), _), "T", _)


def test_positional_after_keyword_is_an_error():
    with pytest.raises(ArchSyntaxError, match="positional argument after a keyword"):
        expr("f(a=1, 2)")


def test_comments_semicolons_and_newlines_in_brackets():
    src = ("# header\nparam a = 1  # trailing\n\n; let b = [1,\n   2,\n   3]; let c = {x: 1,\n  y: 2\n}\n"
           "let d = f(1,\n  2)\n")
    got = items(src)
    assert got == (A.ParamDecl("a", C(1), _), A.Let("b", A.ListLit((C(1), C(2), C(3)), _), _),
                   A.Let("c", A.DictLit((("x", C(1)), ("y", C(2))), _), _),
                   A.Let("d", call("f", C(1), C(2)), _))
    assert body("    a = 1; b = 2;\n\n    y = 3") == tuple(A.Assign((n,), C(v), _) for n, v in
                                                        (("a", 1), ("b", 2), ("y", 3)))


def test_line_break_after_operator_continues():
    assert expr("a +\n        b") == B("+", N("a"), N("b"))


@pytest.mark.parametrize("text", ["a if\n        c else b", "a if c else\n        b", "a if c\n        else b",
                                  "a if c\n\n        else b"])
def test_a_conditional_expression_breaks_after_if_or_else_or_before_else(text):
    """A statement never starts with `else`, so a line that does continues the expression (it was "unexpected
    end of line" after `if c`); a line that starts with `if` is an if statement, as before."""
    assert expr(text) == A.IfExp(N("c"), N("a"), N("b"), _)
    with pytest.raises(ArchSyntaxError, match="unexpected 'else'.*starts with 'if' is an if statement"):
        parse("model m(x: float32[B, 4]) -> y {\n    y = x\n        if true else x\n}\n", "t.arch")


@pytest.mark.parametrize("text, tree", [
    ("a + b * c", B("+", N("a"), B("*", N("b"), N("c")))),
    ("a * b + c", B("+", B("*", N("a"), N("b")), N("c"))),
    ("a - b - c", B("-", B("-", N("a"), N("b")), N("c"))),
    ("-a ** 2", A.UnaryOp("-", B("**", N("a"), C(2)), _)),
    ("a ** -b", B("**", N("a"), A.UnaryOp("-", N("b"), _))),
    ("a // b % c", B("%", B("//", N("a"), N("b")), N("c"))),
    ("q @ k.T / d", B("/", B("@", N("q"), A.Attr(N("k"), "T", _)), N("d"))),
    ("x -> f + y", A.Pipe(N("x"), B("+", N("f"), N("y")), _)),   # `->` binds looser than `+`
    ("(x -> f) + y", B("+", A.Pipe(N("x"), N("f"), _), N("y"))),
    ("a < b + 1", B("<", N("a"), B("+", N("b"), C(1)))),
    ("a not in b", B("not in", N("a"), N("b"))),
    ("not a and b or c", A.BoolOp("or", A.BoolOp("and", A.UnaryOp("not", N("a"), _), N("b"), _), N("c"), _)),
    ("a or b and c", A.BoolOp("or", N("a"), A.BoolOp("and", N("b"), N("c"), _), _)),
    ("a if c else b if d else e", A.IfExp(N("c"), N("a"), A.IfExp(N("d"), N("b"), N("e"), _), _)),
    ("a == b", B("==", N("a"), N("b"))),
    ("0 <= i < n", A.Compare(("<=", "<"), (C(0), N("i"), N("n")), _)),        # chained, as Python's
    ("a < b + 1 not in c", A.Compare(("<", "not in"), (N("a"), B("+", N("b"), C(1)), N("c")), _)),
    ("a == b == c and d", A.BoolOp("and", A.Compare(("==", "=="), (N("a"), N("b"), N("c")), _), N("d"), _)),
])
def test_precedence(text, tree):
    assert expr(text) == tree


def test_spans_of_a_few_nodes():
    src = "param n = 3\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> linear(n) as fc\n}\n"
    mod = parse(src, "t.arch")
    p, m = mod.items
    assert p.span == Span("t.arch", 1, 1, 1, 12)
    assert p.value.span == Span("t.arch", 1, 11, 1, 12)
    assert (m.span.line, m.span.col, m.span.end_line, m.span.end_col) == (2, 1, 4, 2)
    inp = m.inputs[0]
    assert inp.dtype_span == Span("t.arch", 2, 12, 2, 19)
    asg = m.body[0]
    assert asg.span == Span("t.arch", 3, 5, 3, 29)
    pipe = asg.value
    assert pipe.span == Span("t.arch", 3, 9, 3, 29)
    lab = pipe.right
    assert lab.expr.span == Span("t.arch", 3, 14, 3, 23)          # linear(n)
    assert lab.label.span == Span("t.arch", 3, 27, 3, 29)         # fc
    assert lab.expr.args[0].span == Span("t.arch", 3, 21, 3, 22)  # n


# ---- syntax errors ----

def _err(src: str) -> ArchSyntaxError:
    with pytest.raises(ArchSyntaxError) as info:
        parse(src, "t.arch")
    return info.value


_M = "model m(x: float32[2]) -> y {\n"


def test_error_dangling_operator():
    e = _err(_M + "    y = x +\n}\n")
    assert (e.span.line, e.span.col) == (3, 1)
    assert e.message.startswith("unexpected '}'; expected ")
    assert e.span.file == "t.arch"


def test_error_assignment_in_condition_hints_at_equality():
    e = _err(_M + "    if x = 1 { y = x }\n}\n")
    assert (e.span.line, e.span.col, e.span.end_col) == (2, 10, 11)
    assert "expected" in e.message and "use '==' to compare" in e.message


def test_error_missing_name():
    e = _err("param = 3\n")
    assert e.message == "unexpected '='; expected a name"
    assert (e.span.line, e.span.col, e.span.end_col) == (1, 7, 8)


def test_error_bad_character():
    e = _err("let a = $\n")
    assert e.message == "unexpected character '$'"
    assert (e.span.line, e.span.col) == (1, 9)


def test_error_unclosed_paren_names_where_it_opened():
    e = _err(_M + "    y = relu(x\n}\n")
    assert (e.span.line, e.span.col) == (3, 1)
    assert "expected" in e.message and "')'" in e.message
    assert any("never closed" in note and sp.line == 2 and sp.col == 13 for note, sp in e.notes)


def test_error_at_end_of_file():
    e = _err(_M + "    y = x\n")
    assert e.message.startswith("unexpected end of file; expected ")
    assert "'}'" in e.message
    assert e.span.line == 2


def test_no_unclosed_note_for_a_brace_that_is_closed():
    e = _err(_M + "    y = x]\n}\n")
    assert (e.span.line, e.span.col) == (2, 10)
    assert not any("never closed" in note for note, _sp in e.notes)


def test_empty_interpolation_hole_is_an_error():
    e = _err(_M + '    y = "a{}"\n}\n')
    assert "empty {}" in e.message and e.span.line == 2


@pytest.mark.parametrize("src,want", [
    ("'a{{b}}c'", A.Const("a{b}c", _)),  # was an unknown name b
    ("'{{1}}'", A.Const("{1}", _)),  # was {1}: the hole's value in braces
    ("'x{i}}}y'", A.Interp(("x", N("i"), "}y"), _)),
    ("'a}b'", A.Const("a}b", _)),  # a lone } stays a brace
    ("'\\x7bi\\x7d'", A.Const("{i}", _)),  # braces written as escapes are braces (they interpolated)
    ("'\\x41{i}'", A.Interp(("A", N("i")), _)),
])
def test_braces_in_strings_follow_python_f_strings(src, want):
    assert expr(src) == want


@pytest.mark.parametrize("src", ["'{ {1: 2}[1] }'", "'{\"{1}\"}'", "'a{b'"])
def test_a_hole_with_braces_or_without_its_end_is_an_error(src):
    """`"{ {a: 1}.a }"` said "unexpected ':'", and `'{"{1}"}'` silently printed {"1"}."""
    e = _err(_M + f"    y = {src}\n}}\n")
    assert "a { in a string opens a hole that needs its }, and a hole holds no braces" in e.message
    assert e.span.line == 2 and e.span.col == 9 + src.index("{")  # the string's quote is at column 9


def test_expected_words_are_plain():
    e = _err("param x 3\n")
    assert "expected '='" in e.message
    assert "__ANON" not in e.message and "_NL" not in e.message


def test_int_literals_with_leading_zeros_are_decimal():
    assert expr("007") == C(7)
    assert expr("{01: 'a'}") == A.DictLit(((1, C("a")),), _)
    assert expr("x as 02") == A.Labelled(N("x"), C(2), _)
    assert expr("0_10") == C(10)


@pytest.mark.parametrize("text", ["1__0", "1_", "1_.5", "1_e5", "2__0.5", "{1__0: 'a'}", "x as 1__0"])
def test_stray_underscores_in_numbers_are_refused(text):
    """Python's rule: one underscore between two digits; the lexer's pattern lets `1__0` or `1_` through."""
    e = _err(f"let a = {text}\n")
    assert "an underscore goes between two digits, as in 1_000" in e.message
    assert e.span.col == 9 + text.index(text.lstrip("{x as "))


def test_huge_int_literal_is_a_limit_error_not_a_crash():
    from archdsl.diagnostics import LimitError
    with pytest.raises(LimitError, match="too long") as info:
        parse("let a = " + "1" * 5000 + "\n", "t.arch")
    assert (info.value.span.line, info.value.span.col) == (1, 9)


def test_expected_words_name_only_the_closer_of_the_open_bracket():
    """LALR merges lookaheads; the message must not offer ')' inside '[...]', nor a line end inside it."""
    e = _err("let widths = [64, 128,\n    256, 512\n")
    assert e.message == "unexpected end of file; expected ']', ','"
    assert any("'[' opened here is never closed" in note for note, _sp in e.notes)
    e = _err("let a = f(1, [2, 3)\n")
    assert e.message.startswith("unexpected ')'; expected ']'") and "'}'" not in e.message
    e = _err("let a = 1 +\n")
    assert not any(c in e.message for c in ("')'", "']'", "'}'"))


def test_syntax_error_inside_an_interpolation_points_into_the_string():
    e = _err(_M + '    y = x -> linear(4) as "a{1 + * 2}"\n}\n')
    assert e.message.startswith("unexpected '*'")
    assert (e.span.file, e.span.line, e.span.col) == ("t.arch", 2, 34)
    e = _err(_M + '    y = "layer{i +}"\n}\n')
    assert e.message.startswith("unexpected end of the expression; expected '('") and \
        (e.span.line, e.span.col) == (2, 19)  # the hole ended, not the file


def test_nested_too_deeply_points_at_the_deepest_expression():
    """A sum of 15,000 terms is a tree 15,000 deep: the limit's diagnostic said line 1, column 1 (a comment
    here), not the line of the sum. The parse tree becomes an AST without recursion (lark's recursive
    transformer refused a 1,000-deep chain on Python 3.12, whose C stack limit the recursion limit does not
    raise: oldest hunt); evaluating it is what meets the limit."""
    import archdsl
    from archdsl.diagnostics import LimitError
    src = "# header\nparam a = 1\nmodel m(x: float32[2]) -> y {\n    y = x" + " + 1.0" * 15_000 + "\n}\n"
    with pytest.raises(LimitError, match="nested too deeply") as e:
        archdsl.check_source(src, file="t.arch")
    assert (e.value.span.file, e.value.span.line) == ("t.arch", 4)
    hole = ("# header\nparam a = 1\nlet s = \"{" + "1 + " * 20_000 + "1}\"\n"
            "model m(x: float32[2]) -> y {\n    y = x\n}\n")
    with pytest.raises(LimitError, match="nested too deeply") as e:  # inside a {...} hole: its line
        archdsl.check_source(hole, file="t.arch")
    assert (e.value.span.file, e.value.span.line) == ("t.arch", 3)
    assert len(parse("model m(x: float32[2]) -> y {\n    y = x" + " + 1.0" * 15_000 + "\n}\n", "t.arch").items) == 1


def test_a_source_over_the_token_limit_stops_early():
    """4 MiB of `+1` took minutes and gigabytes to parse (~10-20k tokens a second); the limit stops it at the
    first token past 100,000, with its position."""
    from archdsl.diagnostics import LimitError
    with pytest.raises(LimitError, match="more than 100,000 tokens") as e:
        parse("let a = 1" + " + 1" * 60_000 + "\n", "t.arch")
    assert e.value.span.line == 1 and e.value.span.col > 100_000


def test_a_file_past_the_size_limit_is_refused_without_reading_it_all(tmp_path, capsys):
    """The 4 MiB limit was checked after the whole file was read and decoded, and its first line shown by
    reading it once more: a 1 GB file took 9 s and 3.2 GB before its diagnostic (cli5 hunt)."""
    import tracemalloc

    from archdsl.cli import main
    big = tmp_path / "big.arch"
    with open(big, "wb") as f:
        f.write(b"# a comment\n")
        f.truncate(512 * 2**20)  # sparse: no disk used
    tracemalloc.start()
    try:
        assert main(["check", str(big)]) == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert "big.arch:1:1: error: source file is larger than 4 MiB" in err and "# a comment" in err
    assert peak < 64 * 2**20, peak


def test_deep_chains_compile_and_the_recursion_limit_is_put_back():
    """Parsing and evaluating a chain thousands deep needs a high recursion limit; it was raised for good on
    the first parse (hypothesis warned that a test changed it), so a program importing archdsl lost its own."""
    import sys

    import archdsl
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # as a fresh interpreter has it, whatever ran before in this process
    try:
        model = archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x" + " -> relu" * 3000 + "\n}\n")
        assert len(model.graph.node) >= 1 and sys.getrecursionlimit() == 1000
    finally:
        sys.setrecursionlimit(before)


def test_two_threads_compiling_deep_chains_keep_the_limit_up_for_each_other():
    """One thread finishing put the limit back under the other, still thousands of frames deep: a false
    'nested too deeply' or a fatal stack overflow that aborts the process (so: in a subprocess)."""
    import subprocess
    import sys
    script = ("import sys, threading, time, archdsl\n"
              "sys.setrecursionlimit(1000)\n"
              "src = 'model m(x: float32[B, 4]) -> y {\\n    y = x' + ' -> relu' * 5000 + '\\n}\\n'\n"
              "ts = [threading.Thread(target=lambda: archdsl.check_source(src)) for _ in range(2)]\n"
              "ts[0].start(); time.sleep(0.3); ts[1].start()\n"
              "[t.join() for t in ts]\n"
              "assert sys.getrecursionlimit() == 1000\n"
              "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok" and "Error" not in run.stderr, run.stderr[-2000:]


def test_a_fork_during_another_threads_compile_leaves_the_childs_limit_its_own():
    """The child inherited the compiling thread's count and never lowered the limit again."""
    import subprocess
    import sys
    script = ("import os, sys, threading, time, archdsl\n"
              "sys.setrecursionlimit(1000)\n"
              "src = 'model m(x: float32[B, 4]) -> y {\\n    y = x' + ' -> relu' * 4000 + '\\n}\\n'\n"
              "t = threading.Thread(target=lambda: archdsl.check_source(src)); t.start()\n"
              "while sys.getrecursionlimit() == 1000: time.sleep(0.001)\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    archdsl.check_source('model m(x: float32[B, 4]) -> y {\\n    y = x\\n}\\n')\n"
              "    os._exit(0 if sys.getrecursionlimit() == 1000 else 3)\n"
              "t.join(); print(os.waitpid(pid, 0)[1])\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "0", (run.stdout, run.stderr[-2000:])
