"""-D overrides (archdsl/elaborate/defines.py): values read as archdsl literals, checked against the param's
default, through import aliases, and what a -D that sets nothing says. Records: test_record_defines.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import archdsl
from archdsl import driver
from archdsl.diagnostics import ArchError, DefineError, SourceMap

from .harness import _MODEL, _files, out_shape


def test_defines_dict_and_strings_override_params():
    src = "param width = 3\nparam size = 'small'\nparam rate = 0.5\n" \
          "model m(x: float32[2, 4]) -> y { y = x -> linear(width * 2) }\n"
    assert out_shape(archdsl.check_source(src)) == (2, 6)
    assert out_shape(archdsl.check_source(src, defines={"width": 5})) == (2, 10)
    g = archdsl.check_source(src, defines=["width=4", "size=large", "rate=1"])
    assert out_shape(g) == (2, 8)
    assert g.meta["size"] == "large" and g.meta["rate"] == 1.0 and isinstance(g.meta["rate"], float)
    parsed = driver.parse_defines(["depth=2 + 3", "name=tiny", "xs=[1, 2]"], SourceMap())
    assert {k: v[0] for k, v in parsed.items()} == {"depth": 5, "name": "tiny", "xs": [1, 2]}
    with pytest.raises(DefineError, match="no param 'widht'.*width"):
        archdsl.check_source(src, defines={"widht": 5})
    with pytest.raises(DefineError, match="expected an integer"):
        archdsl.check_source(src, defines=["width=big"])
    with pytest.raises(DefineError, match="NAME=VALUE"):
        driver.parse_defines(["=3"], SourceMap())
    # a word that starts with a digit is a string as well (LLaMA's -D size=7b); numbers stay numbers
    parsed = driver.parse_defines(["size=7b", "n=1e3", "h=0x1f", "r=3x3", "b=0b101", "u=1_000"], SourceMap())
    assert {k: v[0] for k, v in parsed.items()} == {"size": "7b", "n": 1000.0, "h": 31, "r": "3x3", "b": 5,
                                                    "u": 1000}  # the grammar's numbers: as a file reads them
    assert archdsl.check_source(src, defines=["size=7b"]).meta["size"] == "7b"
    with pytest.raises(DefineError, match="expected an integer like the default"):
        archdsl.check_source(src, defines=["width=7b"])
    # one word that is no expression is a string where the param is one (it was a syntax error or an unknown
    # name); elsewhere the error reading it stands, and a value with brackets or spaces is never a word
    for word in ("1.5b", "-a", "if", "model", "v1.5", "a+b", "1.50", "2024", "-1", "1e5"):
        assert archdsl.check_source(src, defines=[f"size={word}"]).meta["size"] == word
    assert archdsl.check_source(src, defines=["rate=1.50", "width=2"]).meta["rate"] == 1.5
    with pytest.raises(DefineError, match="-D width: unknown name 'a'"):
        archdsl.check_source(src, defines=["width=-a"])
    with pytest.raises(ArchError, match="unexpected 'if'"):
        archdsl.check_source(src, defines=["width=if"])
    with pytest.raises(ArchError, match="unexpected end of the expression"):
        archdsl.check_source(src, defines=["size=[relu"])


def test_a_define_of_a_list_checks_its_elements_against_the_default():
    """-D sizes=[1, 'a'] where the default holds integers was taken, and failed wherever the string was used;
    an integer where the default's elements are numbers is fine, and an empty list or a mixed default take
    anything."""
    src = "param sizes = [1, 2]\nparam rates = [0.5, 1.0]\nparam mixed = [1, 'a']\n" + _MODEL
    with pytest.raises(DefineError, match=r"-D sizes: element 1 is string \"a\", and the default's elements are "
                                          r"integers"):
        archdsl.check_source(src, defines=["sizes=[1, 'a']"])
    with pytest.raises(DefineError, match=r"element 0 is float 1.5"):
        archdsl.check_source(src, defines=["sizes=[1.5]"])
    g = archdsl.check_source(src, defines=["rates=[1, 2]", "sizes=[]", "mixed=[true, 2.5]"])
    assert g.meta["rates"] == [1, 2] and g.meta["sizes"] == []
    assert [type(v) for v in g.meta["rates"]] == [float, float]  # as a lone number: ints kept made tensor() int64


def test_whole_numbers_given_to_a_list_of_floats_make_float_tensors():
    src = "param fl = [1.0, 2.0]\nmodel m(x: float32[B, 2]) -> y {\n    y = x * tensor(fl)\n}\n"
    for given in (["fl=[1, 2]"], {"fl": [1, 2]}, {"fl": [3, 2]}):
        g = archdsl.check_source(src, defines=given)
        assert str(g.outputs[0][1].type) == "float32[B, 2]", given


def test_defines_reach_an_imported_files_params_by_its_alias(tmp_path):
    """-D lib.width=16 sets the param of the file imported `as lib` (it was 'expects NAME=VALUE'); the same
    file imported under another name keeps its own value, and the model's metadata records every imported param."""
    import json
    _files(tmp_path, **{
        "sub.arch": "param depth = 1\n",
        "lib.arch": ('import "sub.arch" as s\nparam width = 8\n'
                     "block mlp(x) { return x -> linear(width * s.depth) as fc }\n"),
        "main.arch": ('import "lib.arch" as lib\nimport "lib.arch" as lib2\n'
                      "model m(x: float32[2, 4]) -> (y, z) { y = x -> lib.mlp as a\n    z = x -> lib2.mlp as b }\n"),
    })
    main = tmp_path / "main.arch"
    g = archdsl.check_file(main, defines=["lib.width=3", "lib.s.depth=2"])
    assert [tuple(v.type.shape) for _, v in g.outputs] == [(2, 6), (2, 8)]
    g = archdsl.check_file(main, defines={"lib2.s.depth": 5})  # the API's dict takes the dotted names too
    assert [tuple(v.type.shape) for _, v in g.outputs] == [(2, 8), (2, 40)]
    m = archdsl.compile_file(main, defines=["lib.width=3"])
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["archdsl.params"]) == {"lib.width": 3, "lib.s.depth": 1, "lib2.width": 8, "lib2.s.depth": 1}
    for defines, words in ((["lib.widht=3"], "-D lib.widht: lib.arch has no param 'widht'; did you mean 'width'"),
                           (["lib.s.dpth=3"], "-D lib.s.dpth: sub.arch has no param 'dpth'"),
                           (["lb.width=3"], "-D lb.width: main.arch imports no file as 'lb'; did you mean 'lib'"),
                           (["lib.width=x"], "-D lib.width: expected an integer like the default"),
                           (["lib..width=3"], "-D expects NAME=VALUE"),
                           (["width=3"], "-D width: main.arch has no param 'width'; the file imported as 'lib' has: "
                                         "-D lib.width=..."),
                           (["lib.depth=3"], "-D lib.depth: lib.arch has no param 'depth'; the file imported as 's' "
                                             "has: -D lib.s.depth=...")):
        with pytest.raises(DefineError, match=words):
            archdsl.check_file(main, defines=defines)


def test_a_define_of_a_param_imported_without_alias_says_how_to_set_it(tmp_path):
    """`import "lib.arch"` makes lib's `width` visible, but -D width said "main.arch has no param 'width' (it
    declares no params)", as if it did not exist; also through a chain of imports without aliases."""
    _files(tmp_path, **{
        "lib.arch": "param width = 8\nblock f(x) { return x -> linear(width) }\n",
        "mid.arch": 'import "lib.arch"\n',
        "main.arch": 'import "mid.arch"\nmodel m(x: float32[2, 4]) -> y { y = f(x) }\n',
    })
    with pytest.raises(DefineError, match=r"-D width: the param 'width' comes from import \"mid.arch\", which "
                                          r"has no 'as'; -D sets the params of this file, or of a file imported "
                                          r"`as NAME` with -D NAME.width="):
        archdsl.check_file(tmp_path / "main.arch", defines=["width=4"])
    with pytest.raises(DefineError, match=r"-D widht: main.arch has no param 'widht'; did you mean 'width'"):
        archdsl.check_file(tmp_path / "main.arch", defines=["widht=4"])


def test_defines_through_an_alias_keep_their_notes_and_their_place(tmp_path):
    """A review's cases: an alias or a param given twice with a -D was a KeyError (exit 70); an error in
    the imported block lacked the 'set by -D here' note; the dotted name was offered as a main-file param."""
    _files(tmp_path, **{
        "lib.arch": "param width = 8\nblock mlp(x) { return x -> linear(width) as fc }\n",
        "dup.arch": ('import "lib.arch" as l\nimport "lib.arch" as l\n'
                     "model m(x: float32[2, 4]) -> y { y = x -> l.mlp as p }\n"),
        "twice.arch": "param width = 8\nparam width = 9\nmodel m(x: float32[2, 4]) -> y { y = x }\n",
        "one.arch": 'import "lib.arch" as l\nmodel m(x: float32[2, 4]) -> y { y = x -> l.mlp as p }\n',
    })
    with pytest.raises(ArchError, match="'l' is defined twice in this file"):
        archdsl.check_file(tmp_path / "dup.arch", defines=["l.width=3"])
    with pytest.raises(ArchError, match="'width' is defined twice in this file"):
        archdsl.check_file(tmp_path / "twice.arch", defines=["width=3"])
    with pytest.raises(ArchError) as e:
        archdsl.check_file(tmp_path / "one.arch", defines=["l.width=0"])
    assert "param 'l.width' is set by -D here" in [text for text, _ in e.value.notes]
    with pytest.raises(DefineError) as e:
        archdsl.check_file(tmp_path / "one.arch", defines=["l.width=3", "widht=1"])
    assert "one.arch has no param 'widht' (it declares no params)" in e.value.message


def test_a_define_of_an_input_size_says_to_declare_it_a_param():
    """-D H=8 where H is a symbolic size of an input said only "has no param 'H' (it declares no params)";
    a diagnostic that asks for a number for H (unfold's gradient, tile's count) had sent the user there."""
    src = "model u(x: float32[B, 2, H, W]) -> y {\n    y = x * 2.0\n}\n"
    with pytest.raises(DefineError, match=r"-D H: <string> has no param 'H': 'H' is a symbolic size of model u's "
                                          r"input 'x'; to set it by -D, declare it a param, `param H = none`"):
        archdsl.check_source(src, defines=["H=8"])
    with pytest.raises(DefineError, match=r"'T' is a symbolic size of model u's input 'z'"):  # in a formula
        archdsl.check_source("model u(z: float32[B, 2 * T], x: float32[B, T]) -> y {\n    y = x\n}\n",
                             defines=["T=8"])
    g = archdsl.check_source("param H = none\n" + src, defines=["H=8"])
    assert [str(v.type) for v in g.inputs] == ["float32[B, 2, 8, W]"]


def test_define_values_keep_their_types():
    src = ("param n = 2\nparam rate = 0.5\nparam act = 'relu'\nparam deep = false\nparam dims = [4, 4]\n"
           "model m(x: float32[2, 4]) -> y { y = x }\n")
    g = archdsl.check_source(src, defines=["n=3", "rate=2", "act=gelu", "deep=true", "dims=[8, 2]"])
    assert g.meta == {"n": 3, "rate": 2.0, "act": "gelu", "deep": True, "dims": [8, 2]}
    # a hyphenated word is a string too (it was `nearest - exact`: "unknown name 'nearest'")
    assert archdsl.check_source(src, defines=["act=nearest-exact"]).meta["act"] == "nearest-exact"
    with pytest.raises(DefineError, match='expected an integer like the default .* got string "a-1"'):
        archdsl.check_source(src, defines=["n=a-1"])
    for bad in ("n=2.5", "deep=1", "dims=4", "act=[3]", "act=true"):
        with pytest.raises(DefineError):
            archdsl.check_source(src, defines=[bad])
    assert archdsl.check_source(src, defines=["act=3"]).meta["act"] == "3"  # a number for a string: as written


def test_a_bare_word_in_a_list_for_strings_says_to_quote_it():
    """-D act=silu is a string, but in -D acts=[silu, gelu] the words are names (ops): 'element 0 is op' gave
    no hint."""
    src = 'param acts = ["relu", "gelu"]\nmodel m(x: float32[2, 4]) -> y { y = x }\n'
    hint = r'\(inside a list, record or expression a word is a name: quote it, "silu"\)'
    with pytest.raises(DefineError, match=r'element 0 is the op silu, .* ' + hint):
        archdsl.check_source(src, defines=["acts=[silu, gelu]"])
    rec = 'param names = {a: "relu", b: "gelu"}\nmodel m(x: float32[2, 4]) -> y { y = x }\n'
    with pytest.raises(DefineError, match=r'names.a: .* got the op silu ' + hint):
        archdsl.check_source(rec, defines=["names={a: silu, b: gelu}"])
    one = 'param act = "gelu"\nmodel m(x: float32[2, 4]) -> y { y = x }\n'  # the hint said "list or record"
    with pytest.raises(DefineError, match=r'act: .* got the op silu ' + hint):
        archdsl.check_source(one, defines=["act=silu if true else gelu"])
    assert archdsl.check_source(src, defines=['acts=["silu", "gelu"]']).meta["acts"] == ["silu", "gelu"]


def test_a_bare_word_for_a_param_whose_default_is_an_op_is_that_op():
    """`param act = relu` with -D act=silu said 'expected OpFn like the default, got string "silu"': no way to
    set it from the command line, and a Python class name for what was wanted."""
    src = "param act = relu\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> act\n}\n"
    assert [n.op for n in archdsl.check_source(src, defines=["act=silu"]).nodes] == ["silu"]
    with pytest.raises(ArchError, match="batchnorm2d takes a 4-D input"):  # the alias, with its check
        archdsl.check_source(src, defines=["act=batchnorm2d"])
    with pytest.raises(DefineError, match="act: no op or block named 'foo'; did you mean 'floor'"):
        archdsl.check_source(src, defines=["act=foo"])  # 'expected an op or block ..., got string "foo"' before
    blocks = ("block twice(x) {\n    return x * 2\n}\nblock less(x) {\n    return x - 1\n}\nparam act = twice\n"
              "model m(x: float32[B, 4]) -> y {\n    y = x -> act\n}\n")  # 'expected BlockFn' before
    assert [n.op for n in archdsl.check_source(blocks, defines=["act=less"]).nodes] == ["sub"]
    assert [n.op for n in archdsl.check_source(blocks, defines=["act=gelu"]).nodes] == ["gelu"]
    builtin = "param f = max\nmodel m(x: float32[B, 4]) -> y {\n    y = x * f(2, 3)\n}\n"  # review49: 'min' refused
    assert archdsl.check_source(builtin, defines=["f=min"]).consts[0].data == 2
    with pytest.raises(DefineError, match="f: no builtin function named 'nope'"):
        archdsl.check_source(builtin, defines=["f=nope"])
    with pytest.raises(DefineError, match="f: no builtin function named 'mx'; did you mean 'max'"):
        archdsl.check_source(builtin, defines=["f=mx"])
    own = "block min(a, b) {\n    return a + b\n}\n" + builtin  # the file's min, as `param f = min` takes it
    assert archdsl.check_source(own, defines=["f=min"]).consts[0].data == 5  # (review50: the builtin's 2)



def test_a_dotted_word_for_an_op_valued_param_names_an_imported_files_block(tmp_path):
    """`-D act=lib.blk` said "unknown name 'lib'": the -D value is read without the file's names, and only a
    bare word was looked up in them."""
    (tmp_path / "lib.arch").write_text("block blk(t) {\n    return t - 1\n}\n")
    spec = tmp_path / "m.arch"
    spec.write_text('import "lib.arch" as lib\nparam act = relu\n'
                    "model m(x: float32[B, 4]) -> y {\n    y = x -> act\n}\n")
    assert [n.op for n in archdsl.check_file(spec, defines=["act=lib.blk"]).nodes] == ["sub"]
    with pytest.raises(DefineError, match="-D act: lib has no 'bkl'; did you mean 'blk'"):
        archdsl.check_file(spec, defines=["act=lib.bkl"])
    with pytest.raises(DefineError, match="-D act: unknown name 'lab'"):  # no import: as before
        archdsl.check_file(spec, defines=["act=lab.blk"])
    (tmp_path / "lib.arch").write_text("param width = 3\nblock blk(t) {\n    return t - 1\n}\n")
    with pytest.raises(DefineError, match=r"-D act: expected an op or block like the default \(the op relu\), got "
                                          "int 3"):  # a number the import has (review51: it passed the -D)
        archdsl.check_file(spec, defines=["act=lib.width"])
    spec.write_text('import "lib.arch" as lib\nblock mine(t) {\n    return t * 3\n}\nparam cfg = {act: relu}\n'
                    "model m(x: float32[B, 4]) -> y {\n    y = x -> cfg.act\n}\n")  # a record's field too
    assert [n.op for n in archdsl.check_file(spec, defines=["cfg.act=mine"]).nodes] == ["mul"]
    assert [n.op for n in archdsl.check_file(spec, defines=["cfg.act=lib.blk"]).nodes] == ["sub"]
    spec.write_text('import "lib.arch" as lib\nblock mine(t) {\n    return t * 3\n}\nparam width = 4\n'
                    "param acts = [relu]\nmodel m(x: float32[B, 4]) -> y {\n    h = x\n"
                    "    for a in acts {\n        h = a(h)\n    }\n    y = h * width\n}\n")  # in a list too
    ops = lambda d: [n.op for n in archdsl.check_file(spec, defines=d).nodes]  # noqa: E731
    assert ops(["acts=[silu, mine, lib.blk]"]) == ["silu", "mul", "sub", "mul"]
    with pytest.raises(DefineError, match="-D acts: unknown name 'nope'"):
        ops(["acts=[silu, nope]"])
    with pytest.raises(DefineError, match="-D acts: unknown name 'lib.nope'"):
        ops(["acts=[lib.nope]"])
    with pytest.raises(DefineError, match="-D width: unknown name 'width'"):  # the file's values stay its own
        ops(["width=width*2"])

def test_a_name_in_a_defined_list_or_record_is_the_files_first_whatever_else_the_value_holds():
    """-D acts=[gelu] was the op where the file has a block gelu, and the file's block once the list named one only
    the file has ([gelu, mine]); -D cfg={act: gelu} the op where -D cfg.act=gelu was the block; a whole record could
    not name a block at all ("expected an op or block ..., got the block mine"); an unknown word in a list of
    strings said "did you mean 'floor'?" (lang2 hunt)."""
    src = ("param acts = [relu]\nparam cfg = {act: relu}\nparam tags = [\"a\"]\n"
           "block gelu(x) { return x * 3.0 }\nblock mine(x) { return x * 5.0 }\n"
           "model m(x: float32[B, 4]) -> (y, w) {\n    y = x\n    for f in acts { y = y -> f }\n"
           "    w = x -> cfg.act\n}\n")
    ops = lambda *d: [n.op for n in archdsl.check_source(src, defines=list(d)).nodes]  # noqa: E731
    for given in (["acts=[gelu]"], ["acts=[gelu, relu]"]):
        assert ops(*given)[0] == "mul", given  # the block's x * 3.0
    assert ops("acts=[silu]")[0] == "silu"
    for given in ("cfg.act=gelu", "cfg={act: gelu}"):
        assert ops(given)[-1] == "mul", given
    assert ops("cfg={act: mine}", "acts=[]") == ["mul"] and ops("cfg={act: sigmoid}")[-1] == "sigmoid"
    with pytest.raises(DefineError, match="-D tags: unknown name 'foo': the default's elements are strings, and "
                                          'inside a list, record or expression a word is a name: quote it, "foo"') as e:
        ops('tags=["a", foo]')
    assert (e.value.span.col, e.value.span.end_col) == (12, 15)  # the word, not the whole list (review71)
    api = lambda d: [n.op for n in archdsl.check_source(src, defines=d).nodes]  # noqa: E731 - Python's strings
    assert api({"acts": ["gelu", "silu"]})[:2] == ["mul", "silu"] and api({"cfg": {"act": "mine"}})[-1] == "mul"


def test_a_defined_list_of_ops_checks_each_element_where_it_is_set():
    """-D acts=[3] where the default is [relu] was blamed where the loop applied it ("the right side of '->' must
    be a layer"), where -D act=3 is refused at the -D; the API's {"acts": ["gelo"]} said its defines take Python
    values, not -D's text, though a name as a string is what it takes (review72 hunt)."""
    src = "param acts = [relu]\nmodel m(x: float32[B, 4]) -> y {\n    y = x\n    for f in acts { y = y -> f }\n}\n"
    with pytest.raises(DefineError, match=r"-D acts\[0\]: expected an op or block like the default .*got int 3") as e:
        archdsl.check_source(src, defines=["acts=[3]"])
    assert e.value.span.file == "<-D>"
    for given, want in (({"acts": ["gelo"]}, r"defines\['acts'\]\[0\]: no op or block named 'gelo'; did you mean "
                                             r"'gelu'\?"),
                        ({"acts": [3]}, r"defines\['acts'\]\[0\]: expected an op or block .* got int 3")):
        with pytest.raises(DefineError, match=want):
            archdsl.check_source(src, defines=given)
    # a builtin in a list of ops failed where the loop applied it; a misspelt block was offered an op (review73)
    with pytest.raises(DefineError, match=r"-D acts\[0\]: expected an op or block .* got the builtin max"):
        archdsl.check_source(src, defines=["acts=[max]"])
    # a builtin that is an op too (exp, abs, sum) is that op in a list, as -D act=exp is (review74: refused)
    assert [n.op for n in archdsl.check_source(src, defines=["acts=[exp, abs]"]).nodes] == ["exp", "abs"]
    mine = src.replace("model", "block mine(x) { return x * 5.0 }\nmodel")
    with pytest.raises(DefineError, match=r"no op or block named 'minee'; did you mean 'mine'\?"):
        archdsl.check_source(mine, defines={"acts": ["minee"]})
    assert archdsl.check_source(mine, defines={"acts": ["mine"]}).nodes[0].op == "mul"


def test_true_is_no_number_for_a_float_param_and_one_value_given_twice_is_taken():
    """scale=true would have been 1.0 (a bool is an int in Python); one value given twice by -D says one thing."""
    src = "param scale = 0.5\nmodel m(x: float32[B, 2]) -> y {\n    y = x * scale\n}\n"
    with pytest.raises(DefineError, match="expected a number like the default \\(float 0.5\\), got true"):
        archdsl.check_source(src, defines={"scale": True})
    from archdsl.cli import main
    path = Path(archdsl.__file__).parent.parent / "specs" / "mlp.arch"
    assert main(["check", str(path), "-D", "hidden=32", "-D", "hidden=32"]) == 0
    assert main(["check", str(path), "-D", "hidden=32", "-D", "hidden=16"]) == 1


def test_defines_inf_and_minus_inf_are_infinity_for_a_number_param():
    """`-D p=inf` for cdist's `param p = 2.0` was refused ("expected a number"), and `-D p=-inf` was an
    unknown name: the ops spell infinity "inf"/"-inf", so a number param takes those words as infinities."""
    src = "param p = 2.0\nparam fill = '-inf'\nmodel m(x: float32[2, 4]) -> y { y = x }\n"
    g = archdsl.check_source(src, defines=["p=inf", "fill=inf"])
    assert g.meta == {"p": float("inf"), "fill": "inf"}
    g = archdsl.check_source(src, defines=["p=-inf", "fill=-inf"])
    assert g.meta == {"p": -float("inf"), "fill": "-inf"}
    assert archdsl.check_source(src, defines=["p=+inf", "fill=+inf"]).meta == {"p": float("inf"), "fill": "inf"}
    for bad in ("p=infinity", "p=nan", "p=-infinity"):
        with pytest.raises(DefineError):
            archdsl.check_source(src, defines=[bad])
    text = ("param p = 2.0\nmodel m(x: float32[B, 5, 3], y: float32[B, 4, 3]) -> d {\n"
            "    d = cdist(x, y, p=p)\n}\n")
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    from archdsl import runtime
    sess = runtime.session(archdsl.compile_source(text, defines=["p=inf"]), "cpu")
    got, = sess.run(None, {"x": x, "y": y})
    np.testing.assert_allclose(got, np.abs(x[:, :, None] - y[:, None]).max(-1), rtol=1e-6)


def test_defines_take_numpy_scalars_as_the_numbers_they_are():
    """defines={"depth": np.int64(18)} said "expected an integer ..., got int64"."""
    g = archdsl.check_file(Path(__file__).resolve().parents[2] / "specs" / "resnet.arch",
                           defines={"depth": np.int64(18)})
    assert g.param_count() == 11689512


def test_a_dict_define_takes_numpy_integer_keys():
    """defines={"sizes": {np.int64(2): 4}} said "key int64, and the default's keys are integers"."""
    src = "param sizes = {1: 8, 2: 16}\nmodel m(x: float32[B, 4]) -> y {\n    y = linear(x, sizes[2])\n}\n"
    g = archdsl.check_source(src, defines={"sizes": {np.int64(1): np.int32(3), np.int64(2): 5}})
    assert g.param_count() == 4 * 5 + 5


def test_a_misspelt_op_from_the_command_line_is_suggested_among_the_files_blocks():
    """`-D acts=[minee]` suggested the builtin min, which -D then refuses, where the file has a block mine; `-D
    act=gelo` said only 'got string "gelo"' where the API suggested gelu (review79 hunt)."""
    src = ("param act = relu\nparam acts = [relu]\nblock mine(x) {\n    return x * 5.0\n}\n"
           "model m(x: float32[B, 4]) -> y {\n    y = x -> act\n    for f in acts { y = y -> f }\n}\n")
    with pytest.raises(DefineError, match="acts: unknown name 'minee'; did you mean 'mine'"):
        archdsl.check_source(src, defines=["acts=[minee]"])
    with pytest.raises(DefineError, match="act: no op or block named 'minee'; did you mean 'mine'"):
        archdsl.check_source(src, defines=["act=minee"])
    with pytest.raises(DefineError, match="act: no op or block named 'gelo'; did you mean 'gelu'"):
        archdsl.check_source(src, defines=["act=gelo"])
    assert [n.op for n in archdsl.check_source(src, defines=["acts=[mine]"]).nodes][-1] == "mul"


def test_a_define_naming_a_block_of_an_import_below_its_param_says_to_move_the_import(tmp_path):
    """-D reads the names defined above its param: with the import under `param act` (the usual layout),
    `-D act=lib.blk` was "unknown name 'lib'" alone (review102 hunt). A note points at the import."""
    (tmp_path / "lib.arch").write_text("block blk(t) {\n    return t - 1\n}\n")
    spec = tmp_path / "m.arch"
    for imp, word in (('import "lib.arch" as lib', "act=lib.blk"), ('import "lib.arch"', "act=blk")):
        spec.write_text(f"param act = relu\n{imp}\nmodel m(x: float32[B, 4]) -> y {{\n    y = x -> act\n}}\n")
        with pytest.raises(DefineError) as e:
            archdsl.check_file(spec, defines=[word])
        assert any(span.line == 2 and "this import comes after it: move the import above the param" in note
                   for note, span in e.value.notes), e.value.notes
        spec.write_text(f"{imp}\nparam act = relu\nmodel m(x: float32[B, 4]) -> y {{\n    y = x -> act\n}}\n")
        assert [n.op for n in archdsl.check_file(spec, defines=[word]).nodes] == ["sub"]
    spec.write_text('param act = relu\nimport "lib.arch" as other\nmodel m(x: float32[B, 4]) -> y {\n'
                    "    y = x -> act\n}\n")  # a typo, a name of no import: no note on the import (review103)
    for word in ("act=gelo", "act=foo.bar"):
        with pytest.raises(DefineError) as e:
            archdsl.check_file(spec, defines=[word])
        assert not any("move the import" in note for note, _ in e.value.notes), e.value.notes


def test_a_near_miss_define_gets_no_import_note_and_the_note_names_the_word(tmp_path):
    """A plain import under the param: a typo that has a near miss (gelo: gelu) gets no note on the import; a
    name that may be the import's gets one that says which word it is about."""
    (tmp_path / "lib.arch").write_text("block blk(t) {\n    return t - 1\n}\n")
    spec = tmp_path / "m.arch"
    spec.write_text('param act = relu\nimport "lib.arch"\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> act\n}\n')
    with pytest.raises(DefineError) as e:
        archdsl.check_file(spec, defines=["act=gelo"])
    assert not any("move the import" in note for note, _ in e.value.notes), e.value.notes
    with pytest.raises(DefineError) as e:
        archdsl.check_file(spec, defines=["act=blk"])
    assert any(note.endswith("move the import above the param if blk is its") for note, _ in e.value.notes)
    spec.write_text('param act = relu\nimport "lib.arch" as ot\nmodel m(x: float32[B, 4]) -> y {\n'
                    "    y = x -> act\n}\n")  # an alias that is only part of the word: no note
    with pytest.raises(DefineError) as e:
        archdsl.check_file(spec, defines=["act=other.blk"])
    assert not any("move the import" in note for note, _ in e.value.notes), e.value.notes
