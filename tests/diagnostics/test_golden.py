"""Golden diagnostics: each tests/diagnostics/cases/NAME.arch (with NAME.args, if present, for extra CLI
arguments such as `-D depth=19`) gives exactly NAME.expected on stderr from `archdsl check`, run from the
cases folder so paths read relative; exit code 1 and never a traceback. `archdsl build -o` prints the same
and writes nothing. Files named _*.arch are helpers (imported by a case). ARCHDSL_UPDATE_GOLDEN=1 rewrites
the .expected files."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from archdsl.cli import main

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.stem for p in CASES_DIR.glob("*.arch") if not p.name.startswith("_"))


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", CASES)
def test_golden_diagnostic(name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(CASES_DIR)
    args_file = CASES_DIR / f"{name}.args"
    extra = shlex.split(args_file.read_text()) if args_file.exists() else []
    rc, err = _run(["check", f"{name}.arch", *extra], capsys)
    assert rc == 1, err
    assert "Traceback" not in err and "internal error" not in err
    first = err.splitlines()[0]
    assert re.match(r"^\S+:\d+:\d+: error: ", first), first
    assert re.search(r"^ +\d+ \| ", err, re.M), "the source line is shown"
    assert re.search(r"^ +\^+$", err, re.M), "a caret under the span"
    expected = CASES_DIR / f"{name}.expected"
    if os.environ.get("ARCHDSL_UPDATE_GOLDEN"):
        expected.write_text(err)
    assert err == expected.read_text()
    out = tmp_path / "out.onnx"
    rc, build_err = _run(["build", f"{name}.arch", "-o", str(out), *extra], capsys)
    assert rc == 1 and build_err == err
    assert not list(tmp_path.iterdir()), "nothing may be written on error"


def test_every_case_has_a_golden():
    assert len(CASES) >= 25
    missing = [c for c in CASES if not (CASES_DIR / f"{c}.expected").exists()]
    assert not missing
    stale = [p.name for p in CASES_DIR.glob("*.expected") if p.stem not in CASES]
    assert not stale


def test_the_caret_counts_terminal_columns_and_control_characters_do_not_reach_the_terminal(tmp_path, capsys):
    """Wide characters put the caret 4 columns short; an ANSI escape in the source line recoloured the
    terminal (a bidi override could reorder it)."""
    spec = tmp_path / "w.arch"
    spec.write_text('let s = "日本語🙂\u0301"; let t = foo\nmodel m(x: float32[B, 4]) -> y {\n    y = x\n}\n')
    rc, err = _run(["check", str(spec)], capsys)
    line, caret = err.splitlines()[1:3]
    assert rc == 1 and caret.index("^") == line.index("foo") + 3 and caret.endswith(" ^^^")  # 4 wide, 1 combining
    spec.write_text('let s = "\x1b[31mred\u202e"; let t = foo\nmodel m(x: float32[B, 4]) -> y {\n    y = x\n}\n')
    rc, err = _run(["check", str(spec)], capsys)
    line, caret = err.splitlines()[1:3]
    assert "\x1b" not in err and "\u202e" not in err and "\ufffd[31mred\ufffd" in line
    assert caret.index("^") == line.index("foo")


def test_marks_of_no_width_whose_combining_class_is_0_move_no_caret(tmp_path, capsys):
    """Thai's U+0E31, Devanagari's U+0902 and the emoji variation selector U+FE0F take no column on a terminal
    but have combining class 0: each pushed the caret one column right of its token (review118)."""
    spec = tmp_path / "w.arch"
    spec.write_text('let s = "\u0e01\u0e31\u0e19 \u0939\u093f\u0902 \u2764\ufe0f"; let t = foo\n'
                    'model m(x: float32[B, 4]) -> y {\n    y = x\n}\n')
    rc, err = _run(["check", str(spec)], capsys)
    line, caret = err.splitlines()[1:3]
    # foo's column: its index less the three marks (U+0E31, U+0902, U+FE0F; U+093F is a spacing vowel)
    assert rc == 1 and caret.index("^") == line.index("foo") - 3 and caret.endswith(" ^^^"), (line, caret)


def test_an_enclosing_mark_moves_no_caret(tmp_path, capsys):
    """U+20DD (category Me, combining class 0) takes no column either (mutnew5)."""
    spec = tmp_path / "w.arch"
    spec.write_text('model m(x: float32[B, 4]) -> y {\n    y = add("a\u20dd", zzz)\n}\n', encoding="utf-8")
    rc, err = _run(["check", str(spec)], capsys)
    line, caret = err.splitlines()[1:3]
    assert rc == 1 and caret.index("^") == line.index("zzz") - 1 and caret.endswith(" ^^^"), (line, caret)
