"""Files written beside an output (the eval model, the checkpoint, external data) go where the output does:
beside a link's target, never into /dev; a model written through a link runs through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from archdsl.cli import main


def test_companions_go_beside_a_links_target(work):
    (work / "real").mkdir()
    (work / "pub").mkdir()
    os.symlink("../real/t.onnx", work / "pub" / "t.onnx")
    assert main(["build", str(work / "tiny.arch"), "--train", "-o", str(work / "pub" / "t.onnx")]) == 0
    assert sorted(os.listdir(work / "real")) == ["t.eval.onnx", "t.onnx"] and os.listdir(work / "pub") == ["t.onnx"]
    os.symlink("../real/w.npz", work / "pub" / "w.npz")
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--epochs", "1", "--quiet",
                 "-o", str(work / "pub" / "w.npz")]) == 0
    assert "w.ckpt.npz" in os.listdir(work / "real") and "w.ckpt.npz" not in os.listdir(work / "pub")


def test_a_train_step_to_stdout_is_refused_rather_than_its_eval_model_put_in_dev(work):
    """-o - into a file wrote the step there and created /dev/stdout.eval.onnx (as root). A usage error (exit 2),
    as train's -o - is."""
    stray = "/dev/stdout.eval.onnx"
    before = os.stat(stray).st_mtime_ns if os.path.exists(stray) else None  # another run's, perhaps
    with open(work / "t.bin", "wb") as out:
        p = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "--train", "-o", "-"],
                           stdout=out, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 2 and "a train step is written with its eval model beside it; give a file name" in p.stderr
    assert (os.stat(stray).st_mtime_ns if os.path.exists(stray) else None) == before
    for spelling in ("//dev/stdout", "/dev/./stdout", "/dev/fd/2", "/dev/stderr", "/proc/thread-self/fd/1",
                     f"/proc/{os.getpid()}/fd/1"):  # review50: the file open as fd 1, by any path
        assert main(["build", str(work / "tiny.arch"), "--train", "-o", spelling]) == 2  # review48: //dev/stdout
        # wrote the step to stdout
    assert (os.stat(stray).st_mtime_ns if os.path.exists(stray) else None) == before


def test_a_model_with_external_data_runs_through_a_link(work, capsys):
    """onnxruntime refused it: 'External data path escapes model directory'."""
    (work / "real").mkdir()
    os.symlink("real/m.onnx", work / "m.onnx")
    spec = work / "big.arch"
    spec.write_text("model big(x: float32[B, 64]) -> y {\n    y = x -> linear(64) as fc\n}\n")
    assert main(["build", str(spec), "--external-data", "-o", str(work / "m.onnx")]) == 0
    assert "m.onnx.data" in os.listdir(work / "real")
    capsys.readouterr()
    assert main(["run", str(work / "m.onnx"), "--repeat", "1"]) == 0
    assert "y: [1, 64] float32" in capsys.readouterr().out


def test_an_external_data_rebuild_that_needs_no_data_file_removes_the_old_one(work):
    """--external-data with every tensor under 1 KiB writes no .data file: the replaced model's stayed, stale."""
    big = work / "big.arch"
    big.write_text("model m(x: float32[B, 64]) -> y {\n    y = x -> linear(64) as fc\n}\n")
    small = work / "small.arch"
    small.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    out = work / "m.onnx"
    assert main(["build", str(big), "--external-data", "-o", str(out)]) == 0 and (work / "m.onnx.data").exists()
    assert main(["build", str(small), "--external-data", "-o", str(out)]) == 0
    assert not (work / "m.onnx.data").exists()


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no writable /dev/shm")
def test_a_train_step_into_dev_shm_is_written(work, tmp_path_factory):
    """/dev/shm is a folder of regular files: refusing everything under /dev refused it too."""
    import tempfile
    folder = tempfile.mkdtemp(dir="/dev/shm")
    try:
        assert main(["build", str(work / "tiny.arch"), "--train", "-o", f"{folder}/t.onnx"]) == 0
        assert sorted(os.listdir(folder)) == ["t.eval.onnx", "t.onnx"]
    finally:
        import shutil
        shutil.rmtree(folder)


def test_a_write_error_has_no_define_note(work, capsys):
    """The -D notes went on every error of the streamed write, an unwritable output's too."""
    spec = work / "d.arch"
    spec.write_text("param hidden = 8\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> linear(hidden) as fc\n}\n")
    assert main(["build", str(spec), "-D", "hidden=600", "-o", "/dev/null", "--external-data"]) == 1
    err = capsys.readouterr().err
    assert "cannot write external data beside /dev/null" in err and "set by -D" not in err


def test_external_data_of_a_model_whose_tensors_all_stay_inline_goes_to_a_device(work, capsys):
    """Every tensor under 1 KiB stays in the model with --external-data (no .data file): -o /dev/null was
    refused as though the model needed one."""
    spec = work / "d.arch"
    spec.write_text("param hidden = 8\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> linear(hidden) as fc\n}\n")
    assert main(["build", str(spec), "-D", "hidden=6", "-o", "/dev/null", "--external-data"]) == 0
    import archdsl
    from archdsl.lower.model_file import write_model  # a model in memory (the train step's way)
    assert main(["build", str(spec), "--train", "-o", "/dev/null", "--external-data"]) == 1  # beside it: eval
    assert "the eval model would go beside it" in capsys.readouterr().err
    write_model(archdsl.compile_source(spec.read_text()), "/dev/null", external_data=True)


def test_a_tensor_of_exactly_the_inline_limit_goes_to_external_data(work, capsys):
    """1 KiB and more goes to the .data file (as onnx's own writer): a 1,024-byte weight needs one, so a
    device is refused for it; 1,008 bytes stay inline."""
    spec = work / "e.arch"
    spec.write_text("param hidden = 8\nmodel m(x: float32[B, 4]) -> y {\n"
                    "    y = x -> linear(hidden, bias=false) as fc\n}\n")
    assert main(["build", str(spec), "-D", "hidden=63", "-o", "/dev/null", "--external-data"]) == 0
    assert main(["build", str(spec), "-D", "hidden=64", "-o", "/dev/null", "--external-data"]) == 1
    assert "cannot write external data beside /dev/null" in capsys.readouterr().err
    assert main(["build", str(spec), "-D", "hidden=64", "-o", str(work / "e.onnx"), "--external-data"]) == 0
    assert (work / "e.onnx.data").stat().st_size == 1024


def test_a_train_build_through_a_link_names_the_external_data_it_wrote(work, capsys):
    """The message matched the link's name, not its target's: the step's .data file went unnamed."""
    from pathlib import Path
    mlp = Path(__file__).resolve().parents[2] / "specs" / "mlp.arch"
    (work / "real").mkdir()
    os.symlink(work / "real" / "target.onnx", work / "link.onnx")
    assert main(["build", str(mlp), "--train", "--external-data", "-o", str(work / "link.onnx")]) == 0
    said = capsys.readouterr().out
    for name in os.listdir(work / "real"):
        if name.endswith(".data"):
            assert name in said, name
    assert sum(n.endswith(".data") for n in os.listdir(work / "real")) == 2
