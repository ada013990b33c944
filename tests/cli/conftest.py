"""The commands' shared scene: a tiny spec and its training data in a fresh folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from archdsl.cli import main

TINY = "param classes = 3\nmodel tiny(x: float32[B, 4]) -> logits {\n" \
       "    logits = x -> linear(8) as fc1 -> relu -> linear(classes) as fc2\n}\n"


@pytest.fixture
def work(tmp_path):
    (tmp_path / "tiny.arch").write_text(TINY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 4)).astype(np.float32), labels=rng.integers(0, 3, 40))
    return tmp_path


@pytest.fixture
def summary_json(tmp_path, capsys):
    """`archdsl summary --json` of a spec's text (with more flags): its report as a dict."""
    def run(text: str, *flags: str) -> dict:
        spec = tmp_path / "summarized.arch"
        spec.write_text(text)
        assert main(["summary", str(spec), "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)
    return run
