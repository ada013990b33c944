"""The docs are executable: every `arch` example in the reference and the README compiles, passes the full
ONNX check and runs; the generated parts (op table, spec catalog) are up to date."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import driver, runtime
from archdsl.cli import main
from archdsl.cli.docs import ops_table, run_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "grammar" / "REFERENCE.md", ROOT / "README.md"]


def _examples():
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```arch\n(.*?)```", doc.read_text(), re.S)):
            yield pytest.param(block, id=f"{doc.name}-{i}")


@pytest.mark.parametrize("text", list(_examples()))
def test_example_compiles_and_runs(text):
    mod = driver.load(text=text, file="example.arch")
    for name in driver.select_models(mod, None):
        model = archdsl.compile_source(text, file="example.arch", model=name)
        onnx.checker.check_model(model, full_check=True)
        sess = runtime.session(model)
        outs = sess.run(None, runtime.random_feeds(sess, batch=2))
        assert all(np.isfinite(o).all() for o in outs if np.issubdtype(o.dtype, np.floating))


def test_the_readme_diagnostic_is_what_archdsl_prints(tmp_path, monkeypatch, capsys):
    """The README shows `broken.arch` and the diagnostic `archdsl build` gives for it: the text must be the
    real output (it went stale once when a note was added), and REFERENCE quotes its first lines."""
    from archdsl.cli import main
    readme = DOCS[1].read_text()
    source = readme.split("$ cat broken.arch\n", 1)[1].split("$ archdsl build broken.arch", 1)[0]
    shown = readme.split("$ archdsl build broken.arch -o broken.onnx\n", 1)[1].split("$ echo $?", 1)[0]
    (tmp_path / "broken.arch").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(["build", "broken.arch", "-o", "broken.onnx"]) == 1
    assert capsys.readouterr().err == shown
    assert "\n".join(shown.splitlines()[:6]) in DOCS[0].read_text()


def test_the_readme_training_loop_runs_quietly(tmp_path, monkeypatch, capfd):
    """README's loop that drives a train step in plain onnxruntime: it runs as printed, the state it feeds
    back changes the weights, and onnxruntime's per-state-input warning (31 lines for LeNet-5) stays quiet."""
    from archdsl.cli import main
    readme = DOCS[1].read_text()
    build = re.search(r"^archdsl build specs/lenet5.arch --train .*$", readme, re.M).group(0)
    loop = readme.split(build, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    argv = build.split()[1:]
    argv[1] = str(ROOT / argv[1])
    assert main(argv) == 0
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, 4)) for _ in range(2)]
    capfd.readouterr()
    scope = {"batches": batches}
    exec(loop, scope)
    assert "appears in graph inputs" not in capfd.readouterr().err
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load("lenet5.train.onnx").graph.initializer}
    weights = [k for k in scope["state"] if k.endswith(".weight")]
    assert weights and not any(np.allclose(scope["state"][k], init[k]) for k in weights)


def test_reference_has_examples_for_every_construct():
    text = DOCS[0].read_text()
    for construct in ("param ", "let ", "assert ", "block ", "model ", "for ", "repeat ", "if ", "elif ", "else ",
                      "return ", " as ", "->", "parameter(", "ref(", "channels(", "{i + 1}", "[c * 2 for", "import"):
        assert construct in text, construct


def test_ops_table_matches_registry():
    ref = DOCS[0].read_text()
    assert ops_table() in ref


def test_generated_docs_are_fresh():
    assert run_docs(check=True, root=ROOT) == 0, "run `archdsl docs` and commit the result"


def test_docs_outside_a_checkout_is_a_diagnostic(tmp_path, capsys):
    """A pip-installed archdsl runs `archdsl docs` from wherever it is: that was a FileNotFoundError traceback."""
    assert run_docs(check=False, root=tmp_path) == 2  # a usage error
    assert "is not an archdsl checkout" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _checkout(tmp_path, spec_text: str, reference: str = "<!-- ops-table:begin -->\n<!-- ops-table:end -->\n"):
    (tmp_path / "grammar").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "grammar" / "REFERENCE.md").write_text(reference)
    (tmp_path / "specs" / "zz.arch").write_text(spec_text)
    return tmp_path


_ZZ = "model zz(x: float32[B, T]) -> y {\n    y = x\n}\n"


@pytest.mark.parametrize("header,words", [
    ("# @dims T", "zz.arch:2: '@dims T': each entry is NAME=SIZE (T=128), got 'T'"),
    ("# @dims T=abc", "got 'T=abc'"),
    ("# @dims T=\u00b2", "got 'T=\u00b2'"),  # isdigit() took it, int() did not: an internal error
])
def test_a_malformed_dims_line_is_a_diagnostic(tmp_path, capsys, header, words):
    """`# @dims T` was an internal error (ValueError from dict())."""
    root = _checkout(tmp_path, f"# A spec.\n{header}\n{_ZZ}")
    assert main(["docs", "--check", "--root", str(root)]) == 1
    assert words in capsys.readouterr().err


def test_a_reference_without_the_table_markers_is_a_diagnostic(tmp_path, capsys):
    """Without its markers nothing was rewritten, and `docs --check` passed on a stale table."""
    root = _checkout(tmp_path, f"# A spec.\n{_ZZ}", reference="# Reference\n| op | signature |\n")
    assert main(["docs", "--check", "--root", str(root)]) == 1
    assert "the op table must sit once between" in capsys.readouterr().err


def test_docs_says_what_it_did(tmp_path, capsys):
    """It printed nothing when the files were already fresh."""
    root = _checkout(tmp_path, f"# A spec.\n{_ZZ}")
    assert main(["docs", "--root", str(root)]) == 0
    assert capsys.readouterr().out.count("updated ") == 2
    assert main(["docs", "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip().endswith("README.md are up to date")


def test_check_fails_on_a_stale_catalog_and_passes_once_it_is_rewritten(tmp_path, capsys):
    """The freshness test above reads only the exit status of --check: it must be 1 when a doc is stale
    (mutmisc hunt: a --check that printed the message and exited 0 passed the suite)."""
    root = _checkout(tmp_path, "# A spec.\nmodel zz(x: float32[B, 4]) -> y {\n    y = x -> linear(4)\n}\n")
    assert main(["docs", "--root", str(root)]) == 0
    assert main(["docs", "--check", "--root", str(root)]) == 0
    (root / "specs" / "zz.arch").write_text("# A spec.\nmodel zz(x: float32[B, 4]) -> y {\n    y = x -> linear(8)\n}\n")
    capsys.readouterr()
    assert main(["docs", "--check", "--root", str(root)]) == 1
    assert "specs/README.md is out of date" in capsys.readouterr().err
    assert main(["docs", "--root", str(root)]) == 0 and main(["docs", "--check", "--root", str(root)]) == 0


def test_an_op_table_twice_is_a_diagnostic(tmp_path, capsys):
    marks = "<!-- ops-table:begin -->\n<!-- ops-table:end -->\n"
    root = _checkout(tmp_path, f"# A spec.\n{_ZZ}", reference=marks + "\n" + marks)
    assert main(["docs", "--check", "--root", str(root)]) == 1
    assert "the op table must sit once between" in capsys.readouterr().err


def test_a_bar_in_a_specs_description_stays_in_its_cell(tmp_path):
    """`# Either | or: ...` split the catalog's row into one cell more than its header."""
    root = _checkout(tmp_path, f"# Either | or: a spec.\n{_ZZ}")
    assert main(["docs", "--root", str(root)]) == 0
    rows = [r for r in (root / "specs" / "README.md").read_text().splitlines() if r.startswith("|")]
    (row,) = [r for r in rows if "zz" in r]
    assert row.count("|") == rows[0].count("|")
