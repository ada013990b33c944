"""`archdsl run --save`: the outputs by name and the inputs fed under input:NAME, written atomically, refused
before running where it cannot be written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
LENET = str(ROOT / "specs" / "lenet5.arch")


def test_run_saves_its_outputs_and_inputs(tmp_path, capsys):
    """--save writes the outputs by name and the inputs fed under input:NAME (random ones too), so feeding the
    file back with --input gives the same outputs; the outputs equal onnxruntime's on the built model."""
    out = tmp_path / "o.npz"
    assert main(["run", LENET, "--batch", "2", "--seed", "4", "--repeat", "1", "--save", str(out)]) == 0
    assert f"wrote {out} (1 output, 1 input)" in capsys.readouterr().out
    with np.load(out) as z:
        first = {k: z[k] for k in z.files}
    assert sorted(first) == ["input:x", "logits"] and first["logits"].shape == (2, 10)
    again = tmp_path / "again.npz"
    assert main(["run", LENET, "--seed", "4", "--repeat", "1", "--input", f"x={out}", "--save", str(again)]) == 0
    with np.load(again) as z:
        assert all(np.array_equal(z[k], first[k]) for k in first)
    from archdsl import driver, runtime
    model = driver.compile_file(LENET, seed=4)
    want = runtime.session(model, "cpu").run(None, {"x": first["input:x"]})[0]
    np.testing.assert_allclose(first["logits"], want, rtol=1e-6)
    for bad, words in (("o.txt", "the outputs are written as an .npz"), ("", "--save")):
        assert main(["run", LENET, "--save", str(tmp_path / bad) if bad else ""]) == 2
        assert words in capsys.readouterr().err
    x = tmp_path / "x.npz"
    np.savez(x, x=first["input:x"])
    assert main(["run", LENET, "--input", f"x={x}", "--save", str(x)]) == 1  # the input it reads
    assert "--save" in capsys.readouterr().err
    with np.load(x) as z:
        assert z.files == ["x"]


def test_run_saves_outputs_named_as_numpys_own_arguments(tmp_path, capsys):
    """np.savez(f, **arrays) read an output named `file` as its own argument (an internal error) and one named
    `allow_pickle` as a flag (left out of the file)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> (file, allow_pickle) {\n    file = x * 2\n"
                    "    allow_pickle = x + 1\n}\n")
    out = tmp_path / "o.npz"
    assert main(["run", str(spec), "--seed", "1", "--repeat", "1", "--save", str(out)]) == 0
    with np.load(out) as z:
        assert sorted(z.files) == ["allow_pickle", "file", "input:x"]
        np.testing.assert_array_equal(z["file"], z["input:x"] * 2)


def test_run_refuses_to_save_an_output_named_as_an_input_is_saved(tmp_path, capsys):
    """A model made elsewhere whose output is named input:x: the file held it in place of the x fed."""
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["input:x"])], "clash",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("input:x", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "c.onnx")
    assert main(["run", str(tmp_path / "c.onnx"), "--repeat", "1", "--save", str(tmp_path / "c.npz")]) == 1
    assert "output named 'input:x'" in capsys.readouterr().err and not (tmp_path / "c.npz").exists()


def test_run_refuses_a_save_it_cannot_write_before_running(tmp_path, capsys, monkeypatch):
    """--save over the --weights file, or into a folder nothing can be written to, was refused only after
    the model had been built, run and timed."""
    from archdsl import runtime
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.zeros((2, 4), np.float32), "fc.bias": np.zeros(2, np.float32)})
    monkeypatch.setattr(runtime, "run_timed", lambda *a, **k: pytest.fail("ran before refusing --save"))
    assert main(["run", str(spec), "--weights", str(tmp_path / "w.npz"), "--save", str(tmp_path / "w.npz")]) == 1
    assert "is the --weights file" in capsys.readouterr().err
    assert main(["run", str(spec), "--save", "/proc/nothere/o.npz"]) == 1
    assert "cannot write /proc/nothere/o.npz" in capsys.readouterr().err


def test_run_of_a_spec_past_2_gib_says_what_the_command_line_can_do(tmp_path, monkeypatch, capsys):
    """It suggested archdsl.driver.build_file and with_weights=False, which only the Python API has."""
    from archdsl import driver
    monkeypatch.setattr(driver, "EXTERNAL_DATA_THRESHOLD", 64)  # the tiny spec's weights past it
    spec = tmp_path / "w.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8) as fc\n}\n")
    assert main(["run", str(spec)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "build it to a file first, which keeps the weights as external data (`archdsl build SPEC -o M.onnx`, " \
           "then `archdsl run M.onnx`" in err
