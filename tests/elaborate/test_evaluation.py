"""Elaboration: compile-time values, builtins, names of layers, blocks, imports and limits (-D: test_defines)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl.diagnostics import ArchError, ImportCycleError, LimitError
from archdsl.types import Sym

from .harness import _MODEL, _files, out_shape


def value(expr: str, defines=None):
    """The compile-time value of an expression, read back through a file-level param."""
    g = archdsl.check_source(f"param v = {expr}\n" + _MODEL, defines=defines)
    return g.meta["v"]


def body(stmts: str, inputs: str = "x: float32[2, 4]", **kw):
    return archdsl.check_source(f"model m({inputs}) -> y {{\n{stmts}\n}}\n", **kw)


@pytest.mark.parametrize("expr, want", [
    ("7 // 2", 3), ("-7 // 2", -4), ("7 % 3", 1), ("-7 % 3", 2), ("2 ** 10", 1024), ("2 ** -1", 0.5),
    ("7 / 2", 3.5), ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("-2 ** 2", -4), ("10 - 3 - 2", 5),
    ("3 < 4", True), ("3 >= 4", False), ("2 == 2.0", True), ("1 != 2", True), ("2 in [1, 2]", True),
    ("3 not in [1, 2]", True), ("'a' in {a: 1}", True),
    ("true and false", False), ("false or 3", 3), ("not 0", True), ("1 if 2 > 1 else 0", 1),
    ("0 and 2", 0), ("2 and 3", 3), ("'' or 3", 3), ("[] or [1]", [1]),  # an operand, as Python's: `param n = 0`
    # then `repeat (n and 2)` repeats 0 times (a bool was "repeat count must be a non-negative integer")
    ("'x' if false else 'y'", "y"), ("[1, 2] + [3]", [1, 2, 3]), ("[0] * 3", [0, 0, 0]),
    ("'ab' + 'c'", "abc"),
    ("[1, 2] < [1, 2, 3]", True), ("[1, 2, 3] <= [1, 2]", False), ("[1, 3] > [1, 2, 9]", True),  # a prefix first
])
def test_arithmetic_and_logic(expr, want):
    got = value(expr)
    assert got == want and type(got) is type(want)


def test_a_loop_over_a_dict_takes_its_keys_in_order():
    """REFERENCE: `for NAME in LIST` covers lists, tuples, dict keys and ranges; the last key here is 3."""
    g = body("    h = x\n    for w in {6: 1, 3: 2} {\n        h = h -> linear(w)\n    }\n    y = h")
    assert out_shape(g) == (2, 3)


def test_short_circuit_skips_the_bad_operand():
    assert value("false and 1 // 0 == 0") is False
    assert value("true or undefined_name") is True
    assert value("1 if true else 1 // 0") == 1
    with pytest.raises(ArchError):
        value("true and 1 // 0 == 0")


@pytest.mark.parametrize("expr, want", [
    ("range(3)", [0, 1, 2]), ("range(1, 7, 2)", [1, 3, 5]), ("len([1, 2, 3])", 3), ("len('abcd')", 4),
    ("min(3, 1, 2)", 1), ("max([4, 9, 2])", 9), ("sum([1, 2, 3])", 6), ("int(3.9)", 3), ("int('42')", 42),
    ("float(2)", 2.0), ("str(12)", "12"), ("ceil(2.1)", 3), ("floor(2.9)", 2), ("round(2.4)", 2),
    ("round(3.7)", 4), ("sqrt(16)", 4.0), ("enumerate(['a', 'b'])", [(0, "a"), (1, "b")]),
    ("zip([1, 2], ['a', 'b'])", [(1, "a"), (2, "b")]), ("abs(-3)", 3),
])
def test_builtins(expr, want):
    got = value(expr)
    assert list(got) == want if isinstance(want, list) else got == want


def test_string_interpolation_and_collections():
    assert value('"layer{1 + 1}.{2 * 3}"') == "layer2.6"
    assert value("{a: 1, b: [2, 3]}['b'][1]") == 3
    assert value("{18: 'x', 34: 'y'}[34]") == "y"
    assert value("(1, 2, 3)[-1]") == 3
    assert value("[i * i for i in range(6) if i % 2 == 1]") == [1, 9, 25]
    assert value("[a + b for a, b in zip([1, 2], [10, 20])]") == [11, 22]
    assert value("[1, 2, 3, 4][1:3]") == [2, 3]


@pytest.mark.parametrize("expr", [
    "[i * 10 + j for i in range(3) if i != 1 for j in range(i + 1)]",
    "[(a, b) for a in range(3) for b in range(a) if a + b > 1]",
    "[x for row in [[1, 2], [3], []] for x in row]",
    "[i * j for i in range(3) for j in range(3) for k in range(2) if k == i % 2]",
    "[[j for j in range(i)] for i in range(4)]",
])
def test_nested_comprehensions_as_python(expr):
    """Several `for` clauses loop inside each other, each `if` filtering its own clause, as Python's."""
    got = value(expr)
    assert [tuple(v) if isinstance(v, (list, tuple)) and expr.startswith("[(") else v for v in got] == eval(expr)


@pytest.mark.parametrize("expr", [
    "[i * 100 + c * 10 + s for i, (c, s) in enumerate([[1, 2], [3, 4]])]",
    "[c + k for (c, [s, k]) in [[1, [2, 3]], [4, [5, 6]]] if s > 2]",
    "[a * b for (a), b in zip([1, 2], [3, 4])]",
    "[a * 10 + b for (a,), [b] in zip([(1,), (2,)], [[3], [4]])]",  # (a,) and [b] unpack one: [b] was b = [3]
    "[a for [a] in [[5], [6]]]",
    "[a for (a,) in [(7,)]]",
    "[(a, b, c) for [a, b, c,] in [[1, 2, 3]]]",
    "[a * 10 + b for a, b, in [(1, 2), (3, 4)]]",
    "[a for a, in [(8,), (9,)]]",  # a syntax error, with a hint blaming 'in'
])
def test_nested_loop_names_unpack_as_python(expr):
    """A torchvision-style config table: `for i, (c, s) in enumerate(cfg)` was a syntax error."""
    assert value(expr) == eval(expr)


def test_an_assignment_unpacks_nested_names_as_python():
    g = body("    (v, i), rest = topk(x, 2), x\n    a, (b, [k, m]) = 1, (2, [3, 4])\n"
             "    y = v * float(a + b + k + m) + rest[:, :2]", inputs="x: float32[2, 5]")
    assert out_shape(g) == (2, 2) and [n.op for n in g.nodes][:1] == ["topk"]
    with pytest.raises(ArchError, match="cannot unpack a tuple of 3 values into 2 names"):
        body("    a, (b, c) = 1, (2, 3, 4)\n    y = x")
    body("    (a,), [b], (c) = (1,), [2], 3\n    assert a * 100 + b * 10 + c == 123\n    y = x")  # as Python's
    body("    a, = (1,)\n    b, c, = [2, 3]\n    assert a * 100 + b * 10 + c == 123\n    y = x")
    with pytest.raises(ArchError, match="cannot unpack a list of 2 values into 1 name$"):
        body("    [a] = [1, 2]\n    y = x")


def test_a_for_statement_unpacks_nested_names():
    g = body("    h = x\n    for i, (c, s) in enumerate([[3, 2], [5, 1]]) {\n"
             "        h = h -> linear(10 * i + c * s) as \"fc{i}\"\n    }\n    y = h")
    assert out_shape(g) == (2, 15)
    assert [tuple(g.params[f"fc{i}.weight"].spec.shape) for i in (0, 1)] == [(6, 4), (15, 6)]
    with pytest.raises(ArchError, match="cannot unpack a list of 3 values into 2 names"):
        body("    for i, (c, s) in enumerate([[1, 2, 3]]) {\n        y = x\n    }\n    y = x")


def test_record_access_by_attribute():
    g = archdsl.check_source("let cfg = {width: 8, act: 'relu'}\n"
                             "model m(x: float32[2, 4]) -> y { y = x -> linear(cfg.width) }\n")
    assert out_shape(g) == (2, 8)


_RES = """
block basic(x, planes) {
    out = x -> conv2d(planes, 3, padding=1, bias=false) as conv1 -> batchnorm as bn1 -> relu
    return relu(out + x)
}
block helper(x) { return x -> linear(4) }
model m(x: float32[B, 4, 8, 8]) -> y {
    h = x
    for i in range(2) {
        repeat 2 as j { h = h -> basic(4) as "layer{i + 1}.{j}" }
    }
    y = h -> flatten -> helper -> linear(3) -> helper
}
"""


def test_hierarchical_names_scopes_and_auto_names():
    g = archdsl.check_source(_RES)
    names = set(g.params)
    for i in (1, 2):
        for j in (0, 1):
            assert f"layer{i}.{j}.conv1.weight" in names
            assert f"layer{i}.{j}.bn1.running_mean" in names
    assert not any(n.startswith("layer3") for n in names)
    # unlabelled blocks join the caller's scope; auto names count per op and scope
    assert {"linear_0.weight", "linear_1.weight", "linear_2.weight"} <= names
    assert sum(1 for n in g.nodes if n.op == "conv2d") == 4
    assert g.param_count() == 4 * (4 * 4 * 9 + 2 * 4) + (256 * 4 + 4) + (4 * 3 + 3) + (3 * 4 + 4)


def test_unlabelled_block_layers_clash_with_explicit_names():
    src = ("block one(x) { return x -> linear(4) as fc }\n"
           "model m(x: float32[2, 4]) -> y { y = x -> one -> one }\n")
    with pytest.raises(ArchError, match="'fc.weight' is defined twice"):
        archdsl.check_source(src)
    ok = src.replace("x -> one -> one", "x -> one as a -> one as b")
    assert {"a.fc.weight", "b.fc.bias"} <= set(archdsl.check_source(ok).params)


def test_duplicate_layer_name_is_an_error():
    with pytest.raises(ArchError, match="defined twice"):
        body("    y = x -> linear(4) as fc -> linear(4) as fc")


def test_symbolic_dims_and_shape_introspection():
    g = body("    assert is_symbolic(B) and is_symbolic(channels(x)) and not is_symbolic(x.shape[2])\n"
             "    y = x -> linear(x.shape[2] * 2 + x.shape[-1])", inputs="x: float32[B, T, 3]")
    (b, t, f) = out_shape(g)
    assert isinstance(b, Sym) and isinstance(t, Sym) and f == 9
    g3 = body("    y = x -> linear(channels(x) + 1)", inputs="x: float32[B, 5, 7]")
    assert out_shape(g3) == (out_shape(g3)[0], 5, 6)
    assert [str(b), str(t)] == ["B", "T"]
    g2 = body("    y = x -> linear(rank(x) + len(shape(x)))", inputs="x: float32[B, 5]")
    assert out_shape(g2)[1] == 4


def test_parameter_and_ref_tie_weights():
    src = ("model m(ids: int64[B, T]) -> y {\n"
           "    h = ids -> embedding(10, 6) as wte\n"
           "    tok = parameter([1, 1, 6], init='zeros') as class_token\n"
           "    y = (h + tok) @ ref('wte.weight').T\n}\n")
    g = archdsl.check_source(src)
    assert set(g.params) == {"wte.weight", "class_token"}
    assert g.param_count() == 10 * 6 + 6
    assert out_shape(g)[2] == 10
    with pytest.raises(ArchError, match="nope"):
        archdsl.check_source(src.replace("ref('wte.weight')", "ref('nope.weight')"))


def test_blocks_return_plain_values_and_several_values():
    src = ("block widths(base) { return [base * k for k in range(1, 4)] }\n"
           "block pair(x) { return x -> relu, 3 }\n"
           "block width_of(x) { return channels(x) * 2 }\n"
           "model m(x: float32[2, 4]) -> y {\n    ws = widths(2)\n    a, k = pair(x)\n"
           "    y = a -> linear(ws[-1] + k + width_of(x))\n}\n")
    assert out_shape(archdsl.check_source(src)) == (2, 6 + 3 + 8)


def test_block_defaults_and_keywords():
    src = ("block lin(x, n=3, scale=2) { return x -> linear(n * scale) }\n"
           "model m(x: float32[2, 4]) -> y { y = x -> lin -> lin(scale=1) -> lin(5) }\n")
    assert out_shape(archdsl.check_source(src)) == (2, 10)


def test_repeat_and_for_unroll_counts():
    g = body("    h = x\n    repeat 5 { h = h -> relu }\n    for k in [1, 2, 3] { h = h + k }\n    y = h")
    ops = [n.op for n in g.nodes]
    assert ops.count("relu") == 5 and ops.count("add") == 3
    g0 = body("    h = x\n    repeat 0 { h = h -> relu }\n    y = h")
    assert not any(n.op == "relu" for n in g0.nodes)


def test_if_elif_else_picks_one_branch():
    for depth, op in ((1, "relu"), (2, "sigmoid"), (3, "tanh")):
        src = (f"param d = {depth}\nmodel m(x: float32[2, 4]) -> y {{\n"
               "    if d == 1 { y = relu(x) } elif d == 2 { y = sigmoid(x) } else { y = tanh(x) }\n}\n")
        assert [n.op for n in archdsl.check_source(src).nodes] == [op]


def test_all_and_any_of_compile_time_lists():
    src = ("param sizes = [224, 112]\nassert all([s % 16 == 0 for s in sizes]), \"sizes must be multiples of 16\"\n"
           "assert any([s > 200 for s in sizes]) and not any([]) and all([])\n" + _MODEL)
    archdsl.check_source(src)
    with pytest.raises(ArchError, match="sizes must be multiples of 16"):
        archdsl.check_source(src, defines=["sizes=[224, 100]"])
    with pytest.raises(ArchError, match=r"all\(\) of tensors: their values are only known at run time"):
        archdsl.check_source("model m(x: float32[2, 4]) -> y {\n    assert all([x])\n    y = x\n}\n")


def test_assert_message_reaches_the_user():
    with pytest.raises(ArchError, match="depth must be 18 or 34"):
        archdsl.check_source("param depth = 50\nassert depth in [18, 34], \"depth must be 18 or 34\"\n" + _MODEL)


def test_an_import_of_a_directory_or_a_device_says_what_it_found(tmp_path):
    """They said 'cannot find "/tmp" (looked in /)', of a path that exists."""
    (tmp_path / "lib").mkdir()
    for target, words in (("lib", r'import "lib": .*lib is a directory, not a .arch file'),
                          ("/dev/null", r'import "/dev/null": /dev/null is not a regular file')):
        spec = tmp_path / "m.arch"
        spec.write_text(f'import "{target}"\n' + _MODEL)
        with pytest.raises(ArchError, match=words):
            archdsl.check_file(str(spec))


def test_control_characters_in_an_import_path_are_shown_escaped(tmp_path, capsys):
    """They went to the terminal raw: an escape sequence cleared it, a newline forged a line of its own."""
    from archdsl.cli import main
    (tmp_path / "x\nfake: ok").mkdir()
    spec = tmp_path / "m.arch"
    for target, words in ((r"a\x1b[2J\nfake: ok\u200b.arch", r'cannot find "a\x1b[2J\nfake: ok\u200b.arch"'),
                          (r"x\nfake: ok", r'import "x\nfake: ok": ')):
        spec.write_text(f'import "{target}"\n' + _MODEL)
        assert main(["check", str(spec)]) == 1
        err = capsys.readouterr().err
        assert words in err and "\x1b" not in err and "\u200b" not in err and "\nfake" not in err, err


def test_an_import_of_a_model_file_or_from_a_missing_folder_says_so(tmp_path):
    """`import "m.onnx"` read the protobuf as source ("unexpected character '\\x08'" over a garbled line), and
    a search folder given with -I that does not exist was listed as if it had been searched."""
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x03abc")
    spec = tmp_path / "main.arch"
    spec.write_text('import "m.onnx" as m\n' + _MODEL)
    with pytest.raises(ArchError, match=r"m.onnx is a compiled ONNX model, not a .arch spec: import takes .arch"):
        archdsl.check_file(str(spec))
    spec.write_text('import "lib.arch" as m\n' + _MODEL)
    with pytest.raises(ArchError, match=r"looked in .*, .*nodir \(no such folder\)\)"):
        archdsl.check_file(str(spec), search_path=[str(tmp_path / "nodir")])
    with pytest.raises(ArchError) as e:  # a folder given twice is listed once; a file is said to be one
        archdsl.check_file(str(spec), search_path=[str(tmp_path), str(tmp_path / "m.onnx")])
    assert e.value.message.endswith(f"(looked in {tmp_path}, {tmp_path / 'm.onnx'} (a file, not a folder))")


def test_imports_relative_alias_and_search_path(tmp_path):
    _files(tmp_path, **{
        "lib/blocks.arch": "let width = 6\nblock mlp(x, n) { return x -> linear(n) -> relu }\n",
        "lib/more.arch": 'import "blocks.arch"\nblock wide(x) { return x -> mlp(width * 2) }\n',
        "pkgs/shared.arch": "let extra = 5\n",
        "main.arch": ('import "lib/more.arch"\nimport "lib/blocks.arch" as b\nimport "shared.arch"\n'
                      "model m(x: float32[2, 4]) -> y { y = x -> wide -> b.mlp(b.width + extra) }\n"),
    })
    g = archdsl.check_file(tmp_path / "main.arch", search_path=[str(tmp_path / "pkgs")])
    assert out_shape(g) == (2, 11)
    with pytest.raises(ArchError, match="cannot find \"shared.arch\""):
        archdsl.check_file(tmp_path / "main.arch")


def test_import_cycle_is_reported(tmp_path):
    _files(tmp_path, **{"a.arch": 'import "b.arch"\n' + _MODEL, "b.arch": 'import "a.arch"\nlet k = 1\n'})
    with pytest.raises(ImportCycleError, match=r"a\.arch -> b\.arch -> a\.arch"):
        archdsl.check_file(tmp_path / "a.arch")


@pytest.mark.parametrize("expr", ["len(range(100000000))", "[0] * 100000000", "2 ** 100000000"])
def test_compile_time_limits(expr):
    with pytest.raises(LimitError):
        value(expr)


def test_unbounded_recursion_is_a_limit_error():
    src = "block f(x) { return f(x) }\nmodel m(x: float32[2, 4]) -> y { y = f(x) }\n"
    with pytest.raises(LimitError):
        archdsl.check_source(src)


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(ArchError, match="unknown name 'lenght'.*len"):
        value("lenght([1])")


def test_unary_minus_on_a_tensor_is_the_neg_op():
    g = archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = -x\n}\n")
    assert [n.op for n in g.nodes] == ["neg"]


def test_tied_weight_is_one_initializer_counted_once():
    """ref() reuses the embedding table as the output projection: one ONNX initializer, counted once."""
    import numpy as np
    import onnx

    from archdsl import runtime
    src = ("model lm(ids: int64[B, T]) -> logits {\n"
           "    h = ids -> embedding(11, 6) as wte -> layernorm as ln\n"
           "    logits = h @ ref('wte.weight').T\n}\n")
    g = archdsl.check_source(src)
    assert g.param_count() == 11 * 6 + 2 * 6
    m = archdsl.compile_source(src)
    onnx.checker.check_model(m, full_check=True)
    names = [t.name for t in m.graph.initializer]
    assert names.count("wte.weight") == 1 and "ln.weight" in names
    table = next(onnx.numpy_helper.to_array(t) for t in m.graph.initializer if t.name == "wte.weight")
    ids = np.array([[1, 4, 10]], dtype=np.int64)
    (y,) = runtime.session(m).run(None, {"ids": ids})
    h = table[ids]
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, h @ table.T, rtol=1e-4, atol=1e-4)


def test_labelled_blocks_open_a_scope_and_nest(tmp_path):
    src = ("block inner(x) { return x -> linear(4) as fc }\n"
           "block outer(x) { return x -> inner as a -> inner as \"b.0\" -> inner }\n"
           "model m(x: float32[2, 4]) -> y { y = x -> outer as enc -> outer as 7 }\n")
    names = set(archdsl.check_source(src).params)
    assert {"enc.a.fc.weight", "enc.b.0.fc.bias", "enc.fc.weight", "7.a.fc.weight", "7.fc.bias"} <= names
    assert len(names) == 12


def test_search_path_from_the_command_line(tmp_path, capsys):
    from archdsl.cli import main
    _files(tmp_path, **{"lib/blocks.arch": "block head(x, n) { return x -> linear(n) as head }\n",
                        "app/main.arch": 'import "blocks.arch" as lib\n'
                                         "model m(x: float32[B, 4]) -> y { y = x -> lib.head(3) }\n"})
    assert main(["check", str(tmp_path / "app/main.arch")]) == 1
    assert 'cannot find "blocks.arch"' in capsys.readouterr().err
    assert main(["check", str(tmp_path / "app/main.arch"), "-I", str(tmp_path / "lib")]) == 0
    assert "params: 15" in capsys.readouterr().out


def test_automatic_names_skip_the_names_of_as():
    """`linear(8) as linear_1` then two unnamed linears: the second was also named linear_1 ("defined twice")."""
    g = body("    h = x -> linear(8) as linear_1\n    h = h -> linear(8)\n    y = h -> linear(8)",
             inputs="x: float32[2, 8]")
    assert sorted(n for n in g.params if n.endswith(".weight")) == ["linear_0.weight", "linear_1.weight",
                                                                     "linear_2.weight"]
    # a block's `as` is a scope whose parameters cannot clash: the names it compiled with before stay
    g = archdsl.check_source("block mlp(x) { return x -> linear(4) as fc }\n"
                             "model m(x: float32[2, 4]) -> y {\n    h = x -> mlp() as linear_0\n"
                             "    y = h -> linear(4)\n}\n")
    assert sorted(g.params) == ["linear_0.bias", "linear_0.fc.bias", "linear_0.fc.weight", "linear_0.weight"]
    # but a block whose own parameter() makes linear_0.weight takes that name: the unnamed linear moves on
    g = archdsl.check_source("block scaled(x) {\n    w = parameter([4]) as weight\n    return x * w\n}\n"
                             "model m(x: float32[2, 4]) -> y {\n    h = scaled(x) as linear_0\n"
                             "    y = h -> linear(4)\n}\n")
    assert sorted(g.params) == ["linear_0.weight", "linear_1.bias", "linear_1.weight"]


def _run(text: str, **feeds):
    from archdsl import runtime
    sess = runtime.session(archdsl.compile_source(text), "cpu")
    return sess.run(None, feeds)


def test_tensor_makes_constants_with_torch_tensors_default_dtypes():
    text = ("model m(x: float32[2, 3]) -> (a, b, c, d) {\n"
            "    a = tensor([[1, 2, 3], [4, 5, 6]])\n"
            "    b = x * tensor([0.5, 2, -1])\n"
            "    c = tensor([true, false, true])\n"
            "    d = tensor([[i * 3 + j for j in range(3)] for i in range(2)], dtype=\"float16\")\n}\n")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a, b, c, d = _run(text, x=x)
    assert a.dtype == np.int64 and a.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert b.dtype == np.float32 and b.tolist() == (x * np.array([0.5, 2, -1], np.float32)).tolist()
    assert c.dtype == np.bool_ and c.tolist() == [True, False, True]
    assert d.dtype == np.float16 and d.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert archdsl.check_source(text).param_count() == 0  # constants, not parameters
    # no numbers: float32, as torch.tensor([]) (an empty frequency table times floats was "dtypes differ")
    g = archdsl.check_source("model m(x: float32[2, 3]) -> (e, f) {\n    e = tensor([])\n    f = tensor([[]])\n}\n")
    assert [(str(v.type)) for _, v in g.outputs] == ["float32[0]", "float32[1, 0]"]


@pytest.mark.parametrize("expr, words", [
    ("tensor([[1, 2], [3]])", "the lists at depth 1 differ in shape ([1], [2])"),
    ("tensor([1, 'a'])", 'the values are numbers or (nested) lists of numbers, got string "a"'),
    ("tensor([1.5], dtype=\"int64\")", "1.5 is a float and the dtype is int64"),
    ("tensor([300], dtype=\"int32\")", ""),
    ("tensor([2 ** 40], dtype=\"int32\")", "does not fit int32"),
    ("tensor([2], dtype=\"bool\")", "2 in a bool tensor"),
    ("tensor([1], dtype=\"int8\")", "dtype is one of float32"),
    ("tensor([true, 1])", ""),  # 1 and 1, as torch.tensor([True, 1])
    ("tensor([true, false], dtype=\"float32\")", ""),
    ("tensor()", "missing its values"),
])
def test_tensor_refuses_what_is_not_a_tensor_of_its_dtype(expr, words):
    text = f"model m(x: float32[2, 4]) -> y {{\n    c = {expr}\n    y = x\n}}\n"
    if not words:
        archdsl.check_source(text)
        return
    with pytest.raises(ArchError, match=re.escape(words)):
        archdsl.check_source(text)


def test_tensor_at_file_level_says_where_the_numbers_go():
    with pytest.raises(ArchError, match=re.escape("only inside a model or block (a file-level let holds the numbers: "
                                                  "`let t = [1.0, 2.0]`, and tensor(t) in the model")):
        archdsl.check_source("let t = tensor([1.0])\nmodel m(x: float32[2]) -> y {\n    y = x\n}\n")
    archdsl.check_source("let t = [1.0, 2.0]\nmodel m(x: float32[2]) -> y {\n    y = x * tensor(t)\n}\n")


def test_a_swin_relative_position_bias_from_a_tensor_index_matches_torch():
    """The index table Swin computes with torch.arange/meshgrid, written as a compile-time comprehension."""
    torch = pytest.importorskip("torch")
    n = 3
    text = (f"let n = {n}\n"
            "model m(table: float32[25, 2]) -> bias {\n"
            "    idx = tensor([[(i // n - j // n + n - 1) * (2 * n - 1) + (i % n - j % n + n - 1)\n"
            "                   for j in range(n * n)] for i in range(n * n)])\n"
            "    bias = take(table, idx) -> permute([2, 0, 1])\n}\n")
    table = np.random.default_rng(0).standard_normal((25, 2)).astype(np.float32)
    (ours,) = _run(text, table=table)
    coords = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (n - 1)
    index = rel[:, :, 0] * (2 * n - 1) + rel[:, :, 1]
    ref = torch.from_numpy(table)[index.reshape(-1)].reshape(n * n, n * n, -1).permute(2, 0, 1)
    assert np.array_equal(ours, ref.numpy())


def test_an_error_in_nested_loops_names_the_innermost_passes():
    """Each loop says its pass, formatted only when an error passes through it; past four loops one line
    says there are more (as block calls do)."""
    loops = "".join(f"{'    ' * (k + 1)}for i{k} in range(2) {{\n" for k in range(6))
    src = (f"model m(x: float32[B, 4]) -> y {{\n{loops}{'    ' * 7}x = x -> linear(i5 - 1)\n"
           + "".join(f"{'    ' * k}}}\n" for k in range(6, 0, -1)) + "    y = x\n}\n")
    with pytest.raises(ArchError, match="out_features. must not be negative, got -1") as e:
        archdsl.check_source(src)
    said = [m for m, _ in e.value.notes]
    assert said == [f"in pass 1 of 2 of this loop, i{k} = 0" for k in (5, 4, 3, 2)] + ["(and in further loops)"]


def test_a_dict_literal_takes_float_and_negative_number_keys():
    """{0.5: [...], 1.0: [...]} (ShuffleNetV2's width table) and {-1: ...} were a parse error, though the docs speak
    of number keys and a lookup by float worked (mobile hunt)."""
    src = ("let outs = {0.5: [24, 48], 1.0: [24, 116], -1: [3, 4], -0.5: [1, 2], 0x10: [7, 7]}\nparam w = 1.0\n"
           "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(outs[w][1] + outs[-1][0] + outs[-0.5][1] + "
           "outs[16][0])\n}\n")
    for w, width in (("1.0", 116 + 3 + 2 + 7), ("0.5", 48 + 3 + 2 + 7)):
        g = archdsl.check_source(src, defines=[f"w={w}"])
        assert g.param_count() == 4 * width + width
    with pytest.raises(archdsl.ArchError, match="unexpected 'x'"):
        archdsl.check_source("let d = {-x: 1}\nmodel m(x: float32[B, 4]) -> y {\n    y = x\n}\n")
