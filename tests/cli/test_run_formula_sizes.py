"""A dim typed as a formula of the run's sizes is checked like a number: x[:, 5:] is typed T-5 long, which at
T=3 is -2, and comes out empty (a sum over it gave 0 and exit 0)."""

from __future__ import annotations

from archdsl.cli import main


def test_a_slice_typed_by_a_formula_that_the_run_makes_negative_is_a_diagnostic(tmp_path, capsys):
    spec = tmp_path / "tail.arch"
    spec.write_text("model m(x: float32[B, T]) -> y {\n    y = sum(x[:, 5:], dim=1)\n}\n")
    for t in (5, 7):  # T-5 of 0 is empty, as typed
        assert main(["run", str(spec), "--dim", f"T={t}", "--repeat", "1"]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--dim", "T=3", "--repeat", "1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("tail.arch:2:13: error: getitem 'getitem_0' is typed float32[B, (T-5)] but comes out float32[1, 0] at "
            "B=1, T=3 ((T-5) is -2 there): the spec assumes a longer input") in err, err
    spec.write_text("model m(x: float32[B, T]) -> y {\n    y = x[:, 5:]\n}\n")
    out = tmp_path / "tail.onnx"
    assert main(["build", str(spec), "-o", str(out)]) == 0
    assert main(["run", str(out), "--dim", "T=6", "--repeat", "1"]) == 0
    capsys.readouterr()
    assert main(["run", str(out), "--dim", "T=3", "--repeat", "1"]) == 1
    assert "error: output 'y' came out [1, 0] at B=1, T=3, but the model declares [B, (T-5)]" in capsys.readouterr().err
