"""What the writing commands may write over: never their own inputs; a FIFO or device is written into and a
symlink written through, never replaced (archdsl/files.py)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import files
from archdsl.cli import main
from archdsl.diagnostics import ArchError
from archdsl.lower.weights import initial_weights

from .conftest import TINY


def _unchanged(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before


def test_an_output_that_is_an_input_is_refused_before_any_work(work, capsys):
    spec, data = work / "tiny.arch", work / "data.npz"
    spec_bytes, data_bytes = spec.read_bytes(), data.read_bytes()
    assert main(["build", str(spec), "-o", str(spec)]) == 1
    assert "-o " + str(spec) + " is the spec file: writing it would destroy the input" in capsys.readouterr().err
    assert main(["build", str(spec), "--train", "-o", str(spec)]) == 1
    assert main(["build", str(spec), "--emit", "ir", "-o", str(spec)]) == 1
    train = ["train", str(spec), "--data", str(data), "--quiet", "--epochs", "1"]
    assert main(train + ["-o", str(data)]) == 1
    assert "is the --data file" in capsys.readouterr().err
    assert main(train + ["-o", str(work / "w.npz"), "--checkpoint", str(data)]) == 1
    assert "--checkpoint " + str(data) + " is the --data file" in capsys.readouterr().err
    assert main(train + ["--val", str(data), "-o", str(work / "w.npz"), "--checkpoint", str(work / "w.npz")]) == 1
    assert "-o and --checkpoint are one file" in capsys.readouterr().err
    assert _unchanged(spec, spec_bytes) and _unchanged(data, data_bytes)
    assert not (work / "w.npz").exists()
    (work / "alias.npz").symlink_to(data)  # the same file under another name
    assert main(train + ["-o", str(work / "alias.npz")]) == 1
    assert _unchanged(data, data_bytes)


def test_dev_null_may_be_every_output_of_train(work, capsys):
    """-o and --checkpoint are one file only where it is a file: /dev/null twice throws both away."""
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--epochs", "1", "--quiet",
                 "-o", "/dev/null", "--checkpoint", "/dev/null"]) == 0
    assert "are one file" not in capsys.readouterr().err


def test_trailing_slash_names_a_directory(work, capsys):
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "newdir") + "/"]) == 1
    assert "names a directory; give a file name" in capsys.readouterr().err
    assert not (work / "newdir").exists()


@pytest.mark.parametrize("command", ["build", "train"])
@pytest.mark.parametrize("tail", ["/.", "/..", ""])
def test_dir_dot_and_an_empty_name_name_no_file(work, command, tail, capsys, monkeypatch):
    """`-o newdir/.` wrote a file named newdir (Path drops the dot); `train -o ""` was an internal error."""
    monkeypatch.chdir(work)
    (work / "sub").mkdir()
    out = "newdir" + tail if tail else ""
    argv = [command, "tiny.arch", "-o", out] + (["--data", "data.npz", "--quiet", "--epochs", "1"]
                                                 if command == "train" else [])
    assert main(argv) == (1 if tail else 2)  # a directory is a diagnostic, an empty name a usage error
    err = capsys.readouterr().err
    assert ("names a directory; give a file name" if tail else f"archdsl {command}: error: -o needs a file name") in err
    assert sorted(p.name for p in work.iterdir()) == ["data.npz", "sub", "tiny.arch"]


def test_a_symlink_is_written_through(work):
    (work / "link.onnx").symlink_to("real.onnx")
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "link.onnx")]) == 0
    assert (work / "link.onnx").is_symlink() and (work / "real.onnx").is_file()
    onnx.checker.check_model(onnx.load(str(work / "link.onnx")))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("command", ["build", "train"])
def test_a_fifo_is_written_into_not_replaced(work, command):
    fifo = work / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    argv = ["build", str(work / "tiny.arch"), "-o", str(fifo)] if command == "build" else \
        ["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--epochs", "1", "--quiet",
         "-o", str(fifo), "--checkpoint", str(work / "c.npz")]
    assert main(argv) == 0
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    if command == "build":
        assert len(onnx.load_from_string(got[0]).graph.initializer) == 4
    else:
        assert got[0][:2] == b"PK"  # the weights' .npz
    assert files.is_special(fifo) and not files.is_special(work / "tiny.arch")
    assert not files.is_special(work / "missing")


def test_emit_ir_writes_the_file_o_names(work, capsys):
    out = work / "ir.txt"
    assert main(["build", str(work / "tiny.arch"), "--emit", "ir", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_text().startswith("model tiny(x: float32[B, 4]) -> (logits)")


def test_build_train_writes_neither_file_when_one_cannot_be(work, capsys):
    (work / "t.eval.onnx").mkdir()
    assert main(["build", str(work / "tiny.arch"), "--train", "-o", str(work / "t.onnx")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert not (work / "t.onnx").exists()


def test_external_data_on_a_model_with_only_small_tensors(work):
    """onnx writes no .data file when every tensor is under its 1 KiB threshold."""
    assert main(["build", str(work / "tiny.arch"), "--train", "--external-data", "-o", str(work / "e.onnx")]) == 0
    onnx.checker.check_model(onnx.load(str(work / "e.onnx")))


def test_train_build_names_its_external_data(work, capsys):
    """The message listed the two models and not the .data files beside them (build without --train did)."""
    mlp = Path(__file__).resolve().parents[2] / "specs" / "mlp.arch"
    assert main(["build", str(mlp), "--train", "--external-data", "-o", str(work / "e.onnx")]) == 0
    said = capsys.readouterr().out
    assert f"+ {work / 'e.onnx.data'}, {work / 'e.eval.onnx.data'}" in said
    assert (work / "e.onnx.data").is_file() and (work / "e.eval.onnx.data").is_file()
    assert main(["build", str(mlp), "--train", "-o", str(work / "f.onnx")]) == 0
    assert ".data" not in capsys.readouterr().out


def test_refuse_overwriting_in_python():
    with pytest.raises(ArchError, match="is the spec file"):
        files.refuse_overwriting({"-o": "a/../x.arch"}, {"spec": "x.arch"})
    files.refuse_overwriting({"-o": "y.onnx", "--checkpoint": None}, {"spec": "x.arch", "--val": None})


def test_an_unwritable_checkpoint_is_refused_before_training(work, capsys):
    """It was found after the first epoch had trained."""
    blocker = work / "afile"
    blocker.write_text("x")
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o", str(work / "w.npz"),
                 "--checkpoint", str(blocker / "ck.npz")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "epoch 1" not in err
    assert sorted(p.name for p in work.iterdir()) == ["afile", "data.npz", "tiny.arch"]


def test_external_data_writes_no_empty_data_file(work):
    """A model whose tensors all stay inline (under 1 KiB) left a 0-byte OUT.onnx.data beside it."""
    assert main(["build", str(work / "tiny.arch"), "--external-data", "-o", str(work / "x.onnx")]) == 0
    assert not (work / "x.onnx.data").exists()
    onnx.checker.check_model(onnx.load(str(work / "x.onnx")))


def test_flags_that_would_be_ignored_or_mean_nothing_are_usage_errors(work, capsys):
    spec, data = str(work / "tiny.arch"), str(work / "data.npz")
    assert main(["train", spec, "--data", data, "--resume", "--weights", data, "-o", str(work / "w.npz")]) == 2
    assert "--weights would be ignored" in capsys.readouterr().err
    assert main(["run", spec, "--dim", "B=0"]) == 2  # onnxruntime aborts on an LSTM over an empty batch
    assert "an empty KV cache: feed that input, --input NAME=FILE.npy" in capsys.readouterr().err
    assert main(["run", spec, "--dim", "B=\u00b2"]) == 2  # isdigit() but not int(): an internal error before
    assert main(["summary", spec, "--dim", "B=\u00b2"]) == 2
    assert main(["build", spec, "-o", ""]) == 2
    assert main(["train", spec, "--data", data, "--checkpoint", "", "-o", str(work / "w.npz")]) == 2
    assert "--checkpoint needs a file name" in capsys.readouterr().err
    for command in ("build", "run", "summary"):  # no pass runs at -O0: the flag was ignored
        assert main([command, spec, "-O0", "--disable-pass", "cse"]) == 2
        assert "--disable-pass with -O0" in capsys.readouterr().err
        assert main([command, spec, "-O0", "--report"]) == 2  # an empty table of passes, before
        assert "--report with -O0: no pass runs at -O0" in capsys.readouterr().err
    assert main(["build", spec, "--emit", "ir", "-O0", "--report"]) == 2
    assert "--report with -O0" in capsys.readouterr().err
    assert main(["build", spec, "-O1", "--disable-pass", "fuse_gemm"]) == 2  # off at -O1 already
    assert "--disable-pass fuse_gemm with -O1: that pass runs only at -O2" in capsys.readouterr().err
    assert main(["build", spec, "--train", "--disable-pass", "fold_batchnorm"]) == 2  # never runs in a step
    assert "--disable-pass fold_batchnorm with --train: that pass runs in inference builds only" in \
        capsys.readouterr().err
    assert main(["build", spec, "--train", "--emit", "ir", "--disable-pass", "fold_batchnorm"]) == 2  # the IR is
    assert "--emit ir prints the IR; --train applies to the ONNX model only" in capsys.readouterr().err  # inference
    for flags in (["-O1"], ["--disable-pass", "cse"]):  # summary's table is as written: they changed nothing
        assert main(["summary", spec, *flags]) == 2
        assert "the table counts the model as written (add --report)" in capsys.readouterr().err
    capsys.readouterr()
    for extra, words in ((["--train"], "--train applies to the ONNX model only"),
                         (["--weights", data], "--weights applies to the ONNX model only"),
                         (["--external-data"], "--external-data applies to the ONNX model only"),
                         (["--seed", "3"], "--seed applies to the ONNX model only"),
                         (["--report"], "--report reports the passes, which run on the IR only with -O1 or -O2"),
                         (["--opset", "17"], "--opset sets the ONNX lowering and the passes' fusions, which run on "
                                             "the IR only with -O1 or -O2")):
        assert main(["build", spec, "--emit", "ir"] + extra) == 2  # the inference IR was printed, flags ignored
        assert words in capsys.readouterr().err
    assert main(["build", spec, "--emit", "ir", "-O2", "--opset", "17"]) == 0  # the passes' choices differ by it
    capsys.readouterr()
    assert main(["build", spec, "--emit", "ir", "-o", str(work / "x.onnx")]) == 2  # text that run took for a model
    assert "--emit ir writes the IR as text; give it another suffix (.ir)" in capsys.readouterr().err
    assert not (work / "x.onnx").exists()
    np.savez(work / "w.npz", **{k: v for k, v in initial_weights(archdsl.check_file(spec), 0).items()})
    assert main(["build", spec, "--weights", str(work / "w.npz"), "--seed", "3", "-o", str(work / "m.onnx")]) == 2
    assert "--seed draws the random initialization, which --weights replaces" in capsys.readouterr().err
    assert main(["build", spec, "--weights", str(work / "w.npz"), "-o", str(work / "m.onnx")]) == 0
    np.savez(work / "bad.npz", x=np.zeros((4, 5), np.float32), labels=np.zeros(4, np.int64))
    assert main(["train", spec, "--data", str(work / "bad.npz"), "-o", str(work / "w.npz")]) == 1
    assert "'x' has shape [4, 5], the model takes [B, 4]" in capsys.readouterr().err


# ---------------- file-system robustness (a hunt through the writing commands) ----------------


def test_a_file_name_over_255_bytes_is_a_diagnostic(work, capsys):
    """Path.is_dir/is_file raise ENAMETOOLONG rather than answer: an internal error (exit 70)."""
    long = "a" * 260
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / f"{long}.onnx")]) == 1
    assert main(["check", str(work / f"{long}.arch")]) == 1
    (work / "imp.arch").write_text(f'import "{long}.arch"\n' + TINY)
    assert main(["check", str(work / "imp.arch")]) == 1
    err = capsys.readouterr().err
    assert err.count("File name too long") == 3 and "internal error" not in err
    name = "p" * 244 + ".onnx"  # legal, and the temp names beside it must stay legal too
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / name)]) == 0
    name = "q" * 250 + ".onnx"  # 255 bytes: legal, though OUT.onnx.data would not be (it was refused)
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / name)]) == 0
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / name)]) == 0  # and replaced
    assert (work / name).is_file()


def test_an_imported_file_or_the_weights_are_never_overwritten(work, capsys):
    (work / "lib.arch").write_text("block mlp(x) { return x -> linear(4) as fc -> relu }\n")
    (work / "main.arch").write_text('import "lib.arch"\nmodel m(x: float32[B, 4]) -> y { y = mlp(x) }\n')
    before = (work / "lib.arch").read_bytes()
    for extra in ([], ["--train"], ["--emit", "ir"]):
        assert main(["build", str(work / "main.arch"), "-o", str(work / "lib.arch")] + extra) == 1
        assert "is the imported lib.arch file" in capsys.readouterr().err
    assert main(["train", str(work / "main.arch"), "--data", str(work / "data.npz"), "--loss", "mse",
                 "--checkpoint", str(work / "lib.arch"), "-o", str(work / "w.npz")]) == 2  # no .arch checkpoint
    assert (work / "lib.arch").read_bytes() == before
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "w.onnx")]) == 0
    with open(work / "w.onnx.data", "wb") as f:  # a weights file that happens to have the sidecar's name
        np.savez(f, x=np.zeros(3))
    weights = (work / "w.onnx.data").read_bytes()
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "w.onnx.data"), "-o", str(work / "w.onnx"),
                 "--external-data"]) == 1
    assert "(its external data)" in capsys.readouterr().err and (work / "w.onnx.data").read_bytes() == weights


def test_external_data_twice_and_from_another_directory(work, monkeypatch):
    """onnx's save checked for the .data name relative to the working directory: the second build failed."""
    for _ in range(2):
        assert main(["build", str(work / "tiny.arch"), "--train", "--external-data", "-o", str(work / "t.onnx")]) == 0
    (work / "cwd").mkdir()
    (work / "cwd" / "t.onnx.data").write_bytes(b"")
    monkeypatch.chdir(work / "cwd")
    assert main(["build", str(work / "tiny.arch"), "--train", "--external-data", "-o",
                 str(work / "out" / "t.onnx")]) == 0
    onnx.checker.check_model(str(work / "out" / "t.eval.onnx"), full_check=True)


def test_build_train_replaces_neither_file_when_the_second_fails(work, monkeypatch):
    from archdsl.lower import model_file
    out = work / "t.onnx"
    out.write_bytes(b"OLD")
    real, calls = model_file._stage, []

    def flaky(model, path, external, staged):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(model, path, external, staged)
    monkeypatch.setattr(model_file, "_stage", flaky)
    assert main(["build", str(work / "tiny.arch"), "--train", "-o", str(out)]) == 1
    assert out.read_bytes() == b"OLD" and not (work / "t.eval.onnx").exists()
    assert not [p for p in os.listdir(work) if p.startswith(".")], "no temp files left"


def test_outputs_beside_a_device_are_refused(work, capsys):
    fifo = work / "pipe"
    os.mkfifo(fifo)
    assert main(["build", str(work / "tiny.arch"), "--train", "-o", str(fifo)]) == 1
    assert "is not a regular file, and the eval model would go beside it" in capsys.readouterr().err
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o", str(fifo)]) == 1
    assert "give --checkpoint PATH" in capsys.readouterr().err
    assert sorted(os.listdir(work)) == ["data.npz", "pipe", "tiny.arch"]
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o", str(work / "w.npz"),
                 "--checkpoint", str(work / "ck") + "/"]) == 1
    assert "--checkpoint" in capsys.readouterr().err and not (work / "ck").exists()


def test_o_dev_stdout_on_a_pipe_writes_the_model_there(work):
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "-o", "/dev/stdout"],
                         capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    m = onnx.load_from_string(res.stdout)  # the bytes are the model alone: 'wrote ...' went to stderr
    assert m.graph.name == "tiny" and b"wrote /dev/stdout" in res.stderr


def test_o_dash_is_stdout(work):
    """`-o -` wrote a file named "-" (--emit ir -o - too); it is stdout, as for most command-line tools."""
    import subprocess
    import sys
    base = [sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "-o", "-"]
    res = subprocess.run(base, capture_output=True, check=False, cwd=work)
    assert res.returncode == 0, res.stderr
    assert onnx.load_from_string(res.stdout).graph.name == "tiny" and b"wrote /dev/stdout" in res.stderr
    res = subprocess.run([*base, "--emit", "ir", "-O2"], capture_output=True, check=False, cwd=work)
    assert res.returncode == 0 and res.stdout.decode().startswith("model tiny("), res
    assert not (work / "-").exists()


def test_a_report_beside_a_model_on_stdout_goes_to_stderr(work):
    """`build -o - --report`: the pass table came after the model's bytes, a corrupt model for the pipe's
    reader (and exit 0)."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "-o", "-", "--report"],
                         capture_output=True, check=False, cwd=work)
    assert res.returncode == 0, res.stderr
    assert onnx.load_from_string(res.stdout).graph.name == "tiny"
    assert b"optimization passes" in res.stderr and b"as written" in res.stderr


def test_o_dash_into_a_reader_that_stops_early_ends_quietly(work):
    """`build -o - | head -c 100` said "cannot write /dev/stdout: Broken pipe", exit 1, where every other
    command's output into such a pipe ends quietly."""
    import subprocess
    import sys
    spec = work / "wide.arch"
    spec.write_text("model wide(x: float32[B, 512]) -> y {\n    y = x -> linear(512) -> linear(512)\n}\n")
    p = subprocess.Popen([sys.executable, "-m", "archdsl", "build", str(spec), "-o", "-"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.read(100)
    p.stdout.close()  # 2 MB of weights still to come
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0 and b"Broken pipe" not in err and b"error" not in err, err


def test_a_malformed_checkpoint_is_a_diagnostic(work, capsys):
    args = ["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o", str(work / "w.npz"),
            "--resume", "--quiet"]
    for bad in ({"__epoch__": np.array([1, 2])}, {"__epoch__": np.array(1), "__config__": np.array("not json")},
                {"__epoch__": np.array("abc")}):
        np.savez(work / "w.ckpt.npz", **bad)
        assert main(args) == 1
        assert "is not a checkpoint of `archdsl train`" in capsys.readouterr().err


def test_docs_on_a_broken_root_is_a_diagnostic(tmp_path, capsys):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "grammar").mkdir()
    (tmp_path / "grammar" / "REFERENCE.md").write_text((root / "grammar" / "REFERENCE.md").read_text())
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "zz.arch").write_text("model broken(x: float32[B, 3]) -> y { y = x -> linear(\n")
    assert main(["docs", "--root", str(tmp_path)]) == 1
    assert "zz.arch:1:" in capsys.readouterr().err


def test_a_big_endian_input_is_taken(work, capsys):
    np.save(work / "be.npy", np.ones((2, 4), ">f4"))
    assert main(["run", str(work / "tiny.arch"), "--input", f"x={work / 'be.npy'}", "--repeat", "1"]) == 0
    assert "logits: [2, 3] float32" in capsys.readouterr().out


def test_run_says_what_is_wrong_with_its_model_and_inputs(work, capsys):
    spec = str(work / "tiny.arch")
    assert main(["build", spec, "-o", str(work / "model.bin")]) == 0  # an ONNX model under another name
    capsys.readouterr()
    assert main(["run", str(work / "model.bin")]) == 1
    assert "is a compiled ONNX model, not a .arch spec" in capsys.readouterr().err  # was "not UTF-8" + bytes
    (work / "d.onnx").mkdir()
    assert main(["run", str(work / "d.onnx")]) == 1
    assert "d.onnx is a directory, not a model" in capsys.readouterr().err
    np.save(work / "x.npy", np.ones((2, 4), np.float32))
    assert main(["run", spec, "--input", "x"]) == 2  # a malformed flag: a usage error, as --dim T (it was 1)
    assert "archdsl run: error: --input expects NAME=FILE.npy or NAME=FILE.npz, got 'x'" in capsys.readouterr().err
    assert main(["run", spec, "--input", f"x={work / 'x.npy'}", "--input", f"x={work / 'x.npy'}"]) == 1
    assert "--input x is given twice" in capsys.readouterr().err
    assert main(["run", spec, "--input", f"x={work / 'x.npy'}", "--dim", "B=5"]) == 1  # the input won silently
    assert "--dim B=5: --input x has 2 for dim 'B'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run", spec, "--threads", "20000"])  # onnxruntime started them all: 21 GB, then a hang
    assert e.value.code == 2 and "0 (onnxruntime's default) to 256" in capsys.readouterr().err


def test_an_onnxruntime_error_is_reported_once(work, capfd):
    """onnxruntime logged its own error line before the diagnostic said the same."""
    spec = work / "ids.arch"
    spec.write_text("model m(ids: int64[B, 3]) -> y {\n    y = ids -> embedding(5, 2) as emb\n}\n")
    np.save(work / "ids.npy", np.full((1, 3), 7, np.int64))  # out of the table
    assert main(["run", str(spec), "--input", f"ids={work / 'ids.npy'}"]) == 1
    err = capfd.readouterr().err
    assert "onnxruntime" in err.lower() and "[E:onnxruntime" not in err


def test_build_train_names_the_eval_model_whatever_the_case_of_onnx(work):
    """`-o step.ONNX` wrote step.ONNX.eval.onnx."""
    assert main(["build", str(work / "tiny.arch"), "--train", "-o", str(work / "step.ONNX")]) == 0
    assert (work / "step.ONNX").is_file() and (work / "step.eval.onnx").is_file()


def test_a_file_in_the_place_of_an_output_folder_is_named(work, capsys):
    """`-o tiny.arch/x.onnx` said 'File exists'; train found out only after training, at its checkpoint."""
    spec, data = str(work / "tiny.arch"), str(work / "data.npz")
    for argv in (["build", spec, "-o", spec + "/x.onnx"], ["build", spec, "--emit", "ir", "-o", spec + "/x.ir"],
                 ["train", spec, "--data", data, "--quiet", "-o", str(work / "w.npz"), "--checkpoint",
                  spec + "/sub/c.npz"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"{spec} is a file, not a directory" in err and "epoch" not in err
    assert not (work / "w.npz").exists()


def test_an_unknown_flag_is_reported_by_its_subcommand(work, capsys):
    """`archdsl run x.arch --opset 17` printed the top level's usage, which lists no flag of run."""
    with pytest.raises(SystemExit) as e:
        main(["run", str(work / "tiny.arch"), "--opset", "17"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: archdsl run" in err and "archdsl run: error: unrecognized arguments: " \
        "--opset 17" in err
    with pytest.raises(SystemExit) as e:
        main(["--bogus"])
    assert e.value.code == 2 and "archdsl: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the stray word is the command's name: still the command's
        main(["build", str(work / "tiny.arch"), "build"])
    assert e.value.code == 2 and "archdsl build: error: unrecognized arguments: build" in capsys.readouterr().err


def test_a_spec_whose_file_name_is_not_utf8_builds(work, capsys):
    """The name came from the OS with surrogate escapes, which protobuf refused: an internal error (exit 70)
    in build, and in build --emit ir -o."""
    import os
    name = os.fsdecode(b"m\xff.arch")
    try:
        (work / name).write_text((work / "tiny.arch").read_text())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    assert main(["build", str(work / name), "-o", str(work / "u.onnx")]) == 0
    import onnx
    m = onnx.load(work / "u.onnx")
    assert {p.key: p.value for p in m.metadata_props}["archdsl.source"] == "m\\xff.arch"
    assert main(["build", str(work / name), "--emit", "ir", "-o", str(work / "u.ir")]) == 0
    assert main(["build", str(work / name), "--train", "-o", str(work / "t.onnx")]) == 0


def test_a_self_contained_rebuild_removes_the_data_file_it_replaces(work):
    """Rebuilding without --external-data left the earlier build's OUT.onnx.data beside the new file, read by
    nothing; a .data file the replaced model did not use stays."""
    out, spec = work / "m.onnx", str(Path(__file__).resolve().parents[2] / "specs" / "mlp.arch")
    assert main(["build", spec, "-o", str(out), "--external-data"]) == 0
    assert (work / "m.onnx.data").exists()
    assert main(["build", spec, "-o", str(out)]) == 0
    assert not (work / "m.onnx.data").exists()
    import onnxruntime as ort
    ort.InferenceSession(str(out))  # self-contained
    (work / "m.onnx.data").write_text("someone else's")
    assert main(["build", spec, "-o", str(out)]) == 0
    assert (work / "m.onnx.data").read_text() == "someone else's"


def test_a_file_replaced_keeps_its_permissions(work):
    """The temp file renamed over the output carried the umask's mode: a private (0600) model or weights file
    became world-readable on a rebuild, a read-only one writable. Both keep their mode now; a new file gets
    the umask's."""
    spec = str(work / "tiny.arch")
    for name, mode in (("private.onnx", 0o600), ("readonly.onnx", 0o444), ("weights.npz", 0o640)):
        (work / name).write_text("old")
        os.chmod(work / name, mode)
    assert main(["build", spec, "-o", str(work / "private.onnx")]) == 0
    assert main(["build", spec, "-o", str(work / "readonly.onnx"), "--external-data"]) == 0
    assert main(["train", spec, "--data", str(work / "data.npz"), "--epochs", "1", "--batch-size", "8",
                 "-o", str(work / "weights.npz"), "--quiet"]) == 0
    assert main(["build", spec, "-o", str(work / "new.onnx")]) == 0
    mode = lambda p: stat.S_IMODE(os.stat(work / p).st_mode)  # noqa: E731
    umask = os.umask(0)
    os.umask(umask)
    assert (mode("private.onnx"), mode("readonly.onnx"), mode("weights.npz")) == (0o600, 0o444, 0o640)
    assert mode("new.onnx") == 0o666 & ~umask
    assert onnx.load(str(work / "private.onnx")).graph.node and np.load(work / "weights.npz").files
    (work / "wide.arch").write_text("model w(x: float32[B, 64]) -> y {\n    y = x -> linear(64)\n}\n")
    assert main(["build", str(work / "wide.arch"), "-o", str(work / "private.onnx"), "--external-data"]) == 0
    assert mode("private.onnx.data") == 0o600  # a new weights file takes its model's mode (it had 0644)


def test_folders_made_for_an_output_go_again_when_it_fails(work, capsys, monkeypatch):
    """-o new/sub/m.onnx created new/sub before the weights were checked: a failed build (or an interrupt)
    left the empty folders behind. They are removed again; folders that existed, or that hold anything, stay."""
    spec = str(work / "tiny.arch")
    np.savez(work / "bad.npz", **{"fc1.weight": np.zeros((3, 4), np.float32)})
    assert main(["build", spec, "--weights", str(work / "bad.npz"), "-o", str(work / "new/sub/m.onnx")]) == 1
    assert not (work / "new").exists()
    (work / "kept").mkdir()
    assert main(["build", spec, "--train", "--weights", str(work / "bad.npz"), "-o", str(work / "kept/a/m.onnx")]) == 1
    assert (work / "kept").is_dir() and not (work / "kept/a").exists()
    from archdsl.lower import weights as w

    def boom(path, arrays):
        raise KeyboardInterrupt
    monkeypatch.setattr(w, "save_weights", boom)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(work / "x/y/w.npz", lambda tmp: w.save_weights(tmp, {}))
    assert not (work / "x").exists()
    (work / "afile").write_text("")  # a later folder fails: the ones made before it go again
    assert main(["build", spec, "-o", str(work / "n2/../afile/m.onnx")]) == 1
    assert "afile is a file, not a directory" in capsys.readouterr().err and not (work / "n2").exists()
    (work / "keep").mkdir()  # nothere/../keep is the user's keep: only nothere is made here, and taken away
    assert main(["build", spec, "--weights", str(work / "bad.npz"), "-o", str(work / "nothere/../keep/m.onnx")]) == 1
    assert (work / "keep").is_dir() and not (work / "nothere").exists()
    capsys.readouterr()
    assert main(["build", spec, "-o", str(work / "new/sub/m.onnx")]) == 0
    assert (work / "new/sub/m.onnx").is_file()


def test_report_says_the_onnx_nodes_of_the_files_as_well_as_the_irs(tmp_path, capsys):
    """The pass table counts IR nodes, which pretranspose_linear raised 3 -> 5 while the file went 7 -> 5 ONNX
    nodes: a user read the model as made bigger (review93 hunt). The ONNX line gives the files' counts."""
    spec = tmp_path / "two.arch"
    spec.write_text("model m(x: float32[B, 8, 16]) -> y {\n    h = x -> linear(16) as fc1 -> relu\n"
                    "    y = h -> linear(4) as fc2\n}\n")
    counts = {}
    for level in ("-O0", "-O2"):
        assert main(["build", str(spec), level, "-o", str(tmp_path / f"m{level}.onnx")]) == 0
        counts[level] = len(onnx.load(str(tmp_path / f"m{level}.onnx")).graph.node)
    assert counts == {"-O0": 7, "-O2": 5}
    capsys.readouterr()
    for command in (["build", str(spec), "-o", str(tmp_path / "r.onnx")], ["summary", str(spec)],
                    ["build", str(spec), "--emit", "ir", "-O2"]):
        assert main([*command, "--report"]) == 0
        out = capsys.readouterr()
        text = out.out + out.err
        assert "IR nodes before" in text and "ONNX nodes: 7 as written, 5 optimized" in text, text


@pytest.mark.parametrize("plain", [False, True])
def test_the_pass_tables_numbers_are_right_aligned(tmp_path, capsys, monkeypatch, plain):
    """"IR nodes before" was left-aligned under rich and plain text alike (the summary table's three text
    columns were taken for the report's two: review113 hunt)."""
    from archdsl.cli import table
    if plain:
        monkeypatch.setattr(table, "PLAIN_PAST", -1)
    spec = tmp_path / "two.arch"
    spec.write_text("model m(x: float32[B, 8, 16]) -> y {\n    h = x -> linear(16) as fc1 -> relu\n"
                    "    y = h -> linear(4) as fc2\n}\n")
    assert main(["build", str(spec), "--report", "-o", str(tmp_path / "r.onnx")]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if "IR nodes before" in line)
    total = next(line for line in out.splitlines() if "total" in line)
    end = head.index("IR nodes before") + len("IR nodes before")
    assert total[end - 1].isdigit(), out  # the count ends under the header's last letter
