"""Hints of syntax errors that read the code around the failing token across lines (parser._translate):
they must be true of the code, read as the lexer reads it (strings, comments, '\\n' line breaks only), and a
statement's `if`/`else` is not a conditional expression's."""

from __future__ import annotations

import pytest

from archdsl.diagnostics import ArchSyntaxError
from archdsl.syntax import parse

_M = "model m(x: float32[B, 4]) -> y {{\n{}\n}}\n"
_GOES_ON = "so this line goes on with its conditional expression"


@pytest.mark.parametrize("body, said, not_said", [
    # the continuation hint only where an expression's if/else ended the code line before
    ('    y = x if\n    z = 2', "the line before ends with 'if', " + _GOES_ON, "use '=='"),
    ('    t = "a if#b"\n    y = = x', None, _GOES_ON),                # a '#' in a string is no comment
    ('    t = 1  # see\f if\n    y = = x', None, _GOES_ON),            # a form feed is inside the line
    ('    t = 1  # see\u0085 else\n    y = = x', None, _GOES_ON),     # so is NEL
    ('    y = x\n    if true {\n        y = x\n    } else\n        y = x + 1', "unexpected 'y'", _GOES_ON),
    ('    depth = 1\n    if\n    depth = 2 {\n        y = x\n    }', "use '=='", _GOES_ON),  # a statement's if
    # else if: elif for a statement, a value for an expression
    ('    y = x\n    if true {\n        y = x\n    } else if false {\n        y = x\n    }', "as elif", None),
    ('    y = x\n    if true {\n        y = x\n    } else\n    if false {\n        y = x\n    }', "as elif", None),
    ('    y = x if true else if false else x', "a conditional expression's else takes a value", "elif"),
    ('    y = x if true else\n    if false else x', "a conditional expression's else takes a value", "elif"),
    ('    y = x if {} == {} else if true else x', "a conditional expression's else takes a value", "elif"),
    # a '=' typo in a condition keeps its hint: inside brackets (a comprehension's if), or an else follows
    ('    ks = [k for k in range(4) if\n          k = 2]\n    y = x', "use '=='", _GOES_ON),
    ('    y = x if\n        shape(x)[1] = 4 else x * 2', "use '=='", _GOES_ON),
    ('    y = x; if\n    true = 2 {\n        y = x\n    }', None, _GOES_ON),  # a statement's if, after ';'
    ('    y = x\n' + '    # a note that ends in if\n' * 120 + '    z = = 2', None, _GOES_ON),  # window in a comment
    # a '.N' after a number, after a name ending in a digit
    ('    v = 1.5.2\n    y = x', "a number has one '.'", None),
    ('    v = 1e3.5\n    y = x', "a number has no items or fields", "x[5]"),
    ('    h1 = (x, x)\n    y = h1.0', "an item of a list or tuple is x[0]", "a number has one"),
    # Python's words and forms, said in archdsl's terms
    ('    y = x\n    while y {\n        y = x\n    }', "archdsl has no 'while': loops are", None),
    ('    y = x\n    print(x)', "archdsl has no 'print'", None),
    ('    f = lambda t: t * 2\n    y = x', "archdsl has no 'lambda': a function is a block", None),
    ('    y = x\n    pass', "archdsl has no 'pass': an empty body is `{}`", "assert"),
    ('    y = x\n    // a comment', "a comment starts with '#'", None),
    ('    y = x -> linear(4) as f"fc{1}"', "a string fills in {i} itself: drop the prefix", None),
    ('    y = x -> linear(4) as "while" = 2', None, "archdsl has no"),  # a word in a string is no keyword
    ('    y = x * lambda if lambda = 0.5 else x', "use '=='", "archdsl has no"),  # a param named lambda
    ('    y = concat([x,\n    print, x)', None, "archdsl has no"),  # a continuation line, not a statement
    ('    y = concat([x,\n        x\n        pass], 1)', None, "archdsl has no"),  # a missing comma
    ('    y = x; pass', "archdsl has no 'pass'", None),  # a statement after ';'
    ('    if true { print(x) }\n    y = x', "archdsl has no 'print'", None),  # after '{'
    ('    f = lambda: x\n    y = x', "archdsl has no 'lambda'", None),
    # del, break, continue, global, yield; a near miss of a top-level word inside a body is not it (lang2)
    ('    h = x\n    del h\n    y = x', "archdsl has no 'del'", "did you mean 'model'"),
    ('    for i in range(3) {\n        if i == 1 {\n            break\n        }\n    }\n    y = x',
     "archdsl has no 'break'", None),
    ('    y = x\n    continue', "archdsl has no 'continue'", None),
    ('    global y\n    y = x', "archdsl has no 'global'", None),
    ('    y = x\n    yield y', "archdsl has no 'yield'", None),
    ('    h = x\n    parm h\n    y = x', None, "did you mean 'param'"),
    ('    h = x\n    retrun h', "did you mean 'return'", None),
    # a line that ends with ',' or an operator goes on: the next statement is read as part of it
    ('    a = 4,\n    y = x', "line 2 ends with ',', so this line goes on from it", "use '=='"),
    ('    a = 4,  # four\n\n    # the output\n    y = x', "line 2 ends with ','", "use '=='"),
    ('    h = x ->\n    y = relu(h)', "line 2 ends with '->'", "use '=='"),
    ('    a, b = 1, 2 *\n    return x', "line 2 ends with '*'", None),
    ('    h = x and\n    y, z = x, x', "line 2 ends with 'and'", None),
    ('    a = 1.\n    y = = x', None, "ends with '.'"),                # 1. is a number
    ('    h = x1.\n    y = h', "line 2 ends with '.'", "use '=='"),      # x1. is not (review51)
    # a chain's line without its '->' starts a statement (newuser2): the name it starts with said
    ('    y = x -> linear(8) as fc1\n        relu\n        -> linear(4) as fc2', "'relu' starts a statement; a "
     "line that goes on with the chain starts with '->': -> relu", None),
    ('    y = x -> relu\n        linear(4)', "-> linear)", None),
    ('    y = x * 2\n    relu\n    -> linear(4)', None, "the chain"),  # no chain on the line before
    ('    h = x -> linear(8)\n    tanh\n    y = h', "-> tanh)", None),  # the line alone (hints hunt)
    ('    h = x -> linear(8)\n    maxpool2d((2, 2))\n    y = h', "-> maxpool2d)", None),  # nested (review54)
    ('    h = x -> linear(8)\n    linear(\n        4)\n    y = h', "-> linear)", None),  # a call over lines
    ('    h = x -> linear(8)\n    linear(4\n    y = h', None, "the chain"),  # never closed: no '->' fixes it
    # a keyword argument inside a tuple's '(' (as a list's '['); a '}' that closed the body early (hints hunt)
    ('    y = concat((x, x, axis=1))', "a tuple's '(' is still open here", "use '=='"),
    ('    d = {tiny: [[1, 2], 0.1],\n         small: [[ [1, 2], 0.4],\n         base: [[1, 2], 0.5]}\n    y = x',
     None, "is taken as a name"),  # inside brackets no statement starts: no keyword is meant (hints hunt)
    ('    d = {\n        width: 8,\n        repeats 4,\n    }\n    y = x', None, "is taken as a name"),  # a dict's
    ('    h = x\n    repeat 4 if true else 2 {\n        h = h\n    }\n    y = h', "repeat (4 if true else 2)",
     None),  # a conditional count keeps its hint (review56)
    ('    h = x\n    repeat 2\n    {\n        h = h\n    }\n    y = h', "a body's '{' goes on the line", "repeat (2)"),
    ('    h = x\n    repeat 2: {\n        h = h\n    }\n    y = h', None, "repeat (2:)"),  # not an operator
    ('    if true {\n        h = x\n    }}\n    y = h', "a '}' before it closed the model or block", "param y"),
    ('    if true {\n        h = x\n    }}\n    return h', "a '}' before it closed the model", None),  # any
    ('    if true {\n        h = x\n    }}\n    for i in range(2) {\n    }', "a '}' before it closed", None),  # line
    ('    if true {\n        h = x\n    }}\n    h -> relu', "a '}' before it closed", None),  # (review56)
    ('    x -> relu\n    y = x', None, "the chain"),  # the model header's `-> y {` is no chain (hints hunt)
    ('    h = x -> linear(4)\n    y[0] = h', "values never change in place", "the chain"),  # (review53)
    ('    h = x -> linear(4)\n    h.append(x)\n    y = h', "values never change in place", "the chain"),
    ('    h = x -> linear(4)\n    h += 1.0\n    y = h', "values never change in place", "the chain"),
    # a tensor's elements set in place (PixelCNN's mask[:, :, c, c+1:] = 0); a label or an operator starting the
    # next line (porting18, porting19 hunts)
    ('    m = x\n    m[:, 1:] = 0.0\n    y = m', "where(mask, 0.0, m) or masked_fill(m, mask, 0.0)", None),
    ('    m = [x]\n    m.append(x)\n    y = x', "values never change in place", "masked_fill"),
    ('    y = x -> linear(4)\n        as fc', "only a line starting with '->' goes on from the one before: put 'as'",
     None),
    ('    y = x -> linear(4)\n        + x', "put '+' at the end of that line", None),
    # no line before to end, a body's '{', a param's value, Python's star unpacking: no such advice (review103)
    ('* 2.0\n    y = x', None, "put '*' at the end"),
    ('    a = [x, x]\n    *b, c = a\n    y = x', None, "put '*' at the end"),
    ('    if true { h = x } else\n        h = x -> relu\n    y = h', None, "conditional expression"),  # (hints)
    ('    a = "x,"\n    y = = x', None, "ends with ','"),             # a ',' in a string
    ('    y = concat([x,\n    y = x])', None, "goes on from it"),      # inside brackets a line break is none
    ('    y = x\n    y = x == 1 if true else\n    z = 1', "its conditional expression", "goes on from it"),
])
def test_hints_read_the_code_around_the_token(body, said, not_said):
    with pytest.raises(ArchSyntaxError) as e:
        parse(_M.format(body), "t.arch")
    if said:
        assert said in e.value.message, e.value.message
    if not_said:
        assert not_said not in e.value.message, e.value.message


def test_the_end_of_line_caret_stays_on_the_line_that_ended_before_a_comment_line():
    """A comment line split the line breaks and the caret went under the comment (2:11 here)."""
    for src in ("model m(x: float32[B, 4]) -> y\n# the body\n{\n    y = x\n}\n",
                "model m(x: float32[B, 4]) -> y\n{\n    y = x\n}\n"):
        with pytest.raises(ArchSyntaxError) as e:
            parse(src, "t.arch")
        assert (e.value.span.line, e.value.span.col) == (1, 31)
        assert "a body's '{' goes on the line of its header" in e.value.message


def test_a_second_byte_order_mark_is_an_error_at_its_place():
    """The source was normalized twice on the way to the parser, so a second BOM was dropped silently."""
    import archdsl
    from archdsl.diagnostics import ArchError
    body = "model m(x: float32[B, 4]) -> y {\n    y = x\n}\n"
    assert archdsl.check_source("\ufeff" + body)
    with pytest.raises(ArchError, match="unexpected character '\\\\ufeff'") as e:
        archdsl.check_source("\ufeff\ufeff" + body)
    assert (e.value.span.line, e.value.span.col) == (1, 1)


def test_elif_may_end_a_line_as_if_and_else_may():
    """`} elif` then a line `true {` was "unexpected end of line", where `if` then a line `true {` parsed."""
    src = "model m(x: float32[B, 4]) -> y {\n    y = x\n    if false {\n        y = x\n    } elif\n" \
          "        true {\n        y = x + 1.0\n    }\n}\n"
    parse(src, "t.arch")


def test_a_top_level_name_given_a_value_is_a_param_whatever_python_calls_it():
    """`lambda = 0.5` at the top of a file is a param without its keyword, as `width = 64` is: it got the
    Python hint once the hints looked at top-level words."""
    with pytest.raises(ArchSyntaxError, match=r"a file's names are declared: param lambda = "):
        parse("lambda = 0.5\n" + _M.format("    y = x"), "t.arch")


def test_import_of_a_python_module_says_what_import_takes():
    with pytest.raises(ArchSyntaxError, match="import takes a .arch file's path"):
        parse("import torch\n" + _M.format("    y = x"), "t.arch")


@pytest.mark.parametrize("top, word", [("def f(t):", "def"), ("class Net(nn.Module):", "class"),
                                       ('print("hi")', "print"), ("while true {", "while"),
                                       ("from torch import nn", "from")])
def test_a_python_statement_at_the_top_of_a_file_says_what_archdsl_writes(top, word):
    """The hint looked only at words before the failing token: at a file's top level the token is the word."""
    with pytest.raises(ArchSyntaxError, match=f"archdsl has no '{word}'"):
        parse(top + "\n" + _M.format("    y = x"), "t.arch")


def test_threads_parsing_at_once_keep_their_own_open_brackets():
    """One parser serves every thread, and its lexer kept the brackets still open on the parser: a syntax
    error's hints and its "never closed" note read another thread's brackets (a note lost, a ']' the file
    never opened)."""
    import sys
    import threading
    from pathlib import Path

    bad = _M.format("    y = relu(x\n    z = 2")
    try:
        parse(bad, "bad.arch")
    except ArchSyntaxError as e:
        want = (e.message, [n for n, _ in e.notes])
    good = (Path(__file__).parents[2] / "specs" / "vit.arch").read_text()
    stop, seen = threading.Event(), []

    def busy():
        while not stop.is_set():
            parse(good, "vit.arch")
    workers = [threading.Thread(target=busy) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for w in workers:
            w.start()
        for _ in range(40):
            try:
                parse(bad, "bad.arch")
            except ArchSyntaxError as e:
                seen.append((e.message, [n for n, _ in e.notes]))
    finally:
        stop.set()
        for w in workers:
            w.join()
        sys.setswitchinterval(interval)
    assert "never closed" in want[1][0] and seen == [want] * 40


def test_threads_parsing_a_processs_first_spec_at_once_keep_their_hints(tmp_path):
    """Before the parser was made, each thread made its own, and the hints read the one kept: three of four
    threads lost their "never closed" note (and their ')' among the expected tokens)."""
    import os
    import subprocess
    import sys
    child = ("import threading\nfrom archdsl.diagnostics import ArchSyntaxError\nfrom archdsl.syntax import parse\n"
             f"bad = {_M.format('    y = relu(x' + chr(10) + '    z = 2')!r}\n"
             "go, said = threading.Barrier(4), []\n"
             "def one():\n    go.wait()\n    try:\n        parse(bad, 'bad.arch')\n"
             "    except ArchSyntaxError as e:\n        said.append((e.message, [n for n, _ in e.notes]))\n"
             "ts = [threading.Thread(target=one) for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]\n"
             "print(sum(\"')'\" in m and any('never closed' in n for n in notes) for m, notes in said))\n")
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}, "HOME": str(tmp_path)}
    for _ in range(2):  # the tables made, then loaded
        run = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
        assert run.stdout.split() == ["4"], run.stdout + run.stderr


def test_an_indented_misspelled_keyword_after_a_closed_body_keeps_its_suggestion():
    """`  modle m(...)` after a block closed as meant was told a '}' closed its body early, and lost "did you
    mean 'model'?" (review57)."""
    for line, word in (("  modle m(x: float32[B, 4]) -> y {\n    y = x\n}", "model"), ("    paramm n = 3", "param")):
        with pytest.raises(ArchSyntaxError) as e:
            parse(f"block b(x) {{\n    return x\n}}\n{line}\n", "t.arch")
        assert e.value.message.endswith(f"did you mean '{word}'?"), e.value.message


def test_an_indented_line_after_a_dicts_brace_is_no_body_closed_early():
    """Any '}' before an indented top-level line was taken as a body's: after `param cfg = {a: 1}` the hint said a
    '}' closed the model or block, where none came before (review56)."""
    with pytest.raises(ArchSyntaxError) as e:
        parse("param cfg = {a: 1}\n    width = 8\nmodel m(x: float32[B, 8]) -> y {\n    y = x\n}\n", "t.arch")
    assert "closed the model or block" not in e.value.message and "param width = ..." in e.value.message


@pytest.mark.parametrize("src", ["+ 1\nmodel m(x: float32[4]) -> y {\n    y = x\n}\n",
                                 "param a = 3\n    as b\nmodel m(x: float32[4]) -> y {\n    y = x\n}\n"])
def test_a_line_starting_with_an_operator_gets_no_advice_where_no_value_ends_the_line_before(src):
    """At the start of the file there is no line to end, and `param a = 3 as b` is no label (review103 hunt)."""
    with pytest.raises(ArchSyntaxError) as e:
        parse(src, "t.arch")
    assert "at the end of that line" not in e.value.message, e.value.message


_PL = "model m(x: float32[B, 4]) -> y {{\n{}\n}}\n"
_LINE_GOES_ON = "only a line starting with '->' goes on from the one before"


@pytest.mark.parametrize("src, said", [
    (_PL.format("    y = x\n        @ x"), True),            # '@' only ever goes on with a value
    (_PL.format("    y = x[0]\n        + x"), True),         # a line ending with ']' ends a value
    (_PL.format("    y = x\n        as fc"), False),         # `as` labels a call: a name is none
    ("let a = max(3, 4)\n    as b\n" + _PL.format("    y = x"), False),  # nor a let's value
    (_PL.format("    h = x\n    y = * x"), False),           # '*' not at the line's start
    (_PL.format("    y = x\n        - x"), False),           # '-' may start a value of its own
])
def test_the_goes_on_hint_reads_the_line_before(src, said):
    with pytest.raises(ArchSyntaxError) as e:
        parse(src, "t.arch")
    assert (_LINE_GOES_ON in e.value.message) == said, e.value.message
