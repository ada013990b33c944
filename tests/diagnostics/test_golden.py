"""Golden diagnostics: each tests/diagnostics/golden/NAME.arch (with NAME.args, if present, for extra CLI
arguments) gives exactly NAME.expected on stderr from `archdsl build`, exit code 1, no traceback, and no output
file. ARCHDSL_UPDATE_GOLDEN=1 rewrites the .expected files."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from archdsl.cli import main

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.arch") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", CASES)
def test_golden_diagnostic(name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(GOLDEN)
    args_file = GOLDEN / f"{name}.args"
    extra = shlex.split(args_file.read_text()) if args_file.exists() else []
    out = tmp_path / "out.onnx"
    rc = main(["build", f"{name}.arch", "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir()), "nothing may be written on error"
    first = err.splitlines()[0]
    assert re.match(r"^\S+:\d+:\d+: error: ", first), first
    assert "^" in err  # the caret under the span
    expected = GOLDEN / f"{name}.expected"
    if os.environ.get("ARCHDSL_UPDATE_GOLDEN"):
        expected.write_text(err)
    assert err == expected.read_text()


def test_every_case_has_a_golden():
    missing = [c for c in CASES if not (GOLDEN / f"{c}.expected").exists()]
    assert not missing
