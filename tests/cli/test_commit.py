"""A build's files go into place as one act (archdsl/lower/model_file.py commit_all): a model and its .data
file, a train step and its eval model. Ctrl-C between two renames, a rename that fails and two builds into
one folder each left a model beside another build's weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from archdsl import files
from archdsl.cli import main
from archdsl.interrupts import deferred_signals

WIDE = "model m(x: float32[B, 64]) -> y {\n    y = x -> linear(512) as fc\n}\n"


def _fc(path) -> np.ndarray:
    """The model's weight as the model file finds it (through its .data file)."""
    m = onnx.load(str(path))
    return next(onnx.numpy_helper.to_array(t) for t in m.graph.initializer if t.name == "fc.weight")


def _build(spec, out, seed) -> int:
    return main(["build", str(spec), "-o", str(out), "--external-data", "--seed", str(seed)])


@pytest.fixture
def wide(tmp_path):
    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE)
    assert _build(spec, tmp_path / "seed2.onnx", 2) == 0
    return spec, _fc(tmp_path / "seed2.onnx")


@pytest.mark.parametrize("fresh", [False, True])
def test_ctrl_c_between_the_data_and_the_model_puts_both_back(wide, tmp_path, monkeypatch, capsys, fresh):
    """The renames finish together and are then undone: the build exits 130 as interrupted, and its files are
    the ones before (it had left the new model in place, exit 130 telling a script or make it had failed), or
    none where there were none."""
    spec, _ = wide
    out = tmp_path / "new" / "m.onnx" if fresh else tmp_path / "m.onnx"
    if not fresh:
        assert _build(spec, out, 1) == 0
        seed1 = _fc(out)
    real = files.replace_keeping_mode

    def interrupted_after(new, target, like=None):
        real(new, target, like)
        if target.name.endswith(".data"):
            os.kill(os.getpid(), signal.SIGINT)  # lands between the .data file's rename and the model's
    monkeypatch.setattr(files, "replace_keeping_mode", interrupted_after)
    assert _build(spec, out, 2) == 130
    assert "interrupted" in capsys.readouterr().err
    if fresh:
        assert not (tmp_path / "new").exists()
    else:
        np.testing.assert_array_equal(_fc(out), seed1)  # the old weights, in the old model
        meta = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
        assert meta["archdsl.seed"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_rename_that_fails_puts_back_the_files_it_replaced(wide, tmp_path, monkeypatch, capsys):
    spec, _ = wide
    out = tmp_path / "m.onnx"
    assert _build(spec, out, 1) == 0
    before = out.read_bytes(), (tmp_path / "m.onnx.data").read_bytes()
    real = files.replace_keeping_mode

    def refused_model(new, target, like=None):
        if not target.name.endswith(".data"):
            raise PermissionError(1, "Operation not permitted")  # a sticky folder, another user's file
        real(new, target, like)
    monkeypatch.setattr(files, "replace_keeping_mode", refused_model)
    assert _build(spec, out, 2) == 1
    assert "Operation not permitted" in capsys.readouterr().err
    assert (out.read_bytes(), (tmp_path / "m.onnx.data").read_bytes()) == before
    monkeypatch.undo()
    assert _fc(out).shape == (512, 64)  # the model loads: the .data file is its own


def test_a_failed_rename_removes_a_data_file_that_was_not_there(wide, tmp_path, monkeypatch):
    spec, _ = wide

    def refused_model(new, target, like=None, real=files.replace_keeping_mode):
        if not target.name.endswith(".data"):
            raise PermissionError(1, "Operation not permitted")
        real(new, target, like)
    monkeypatch.setattr(files, "replace_keeping_mode", refused_model)
    assert _build(spec, tmp_path / "new.onnx", 2) == 1
    assert not (tmp_path / "new.onnx.data").exists() and not (tmp_path / "new.onnx").exists()


@pytest.mark.parametrize("when", ["rename", "finish", "cleanup"])
def test_a_signal_at_the_end_of_a_train_build_into_new_folders(tmp_path, monkeypatch, capsys, when):
    """During the renames: undone, and the folders made for the step go too (they held the eval model's temp dir
    when their removal was tried, and stayed). During finish() or the temp dirs' removal, after the write is
    done: the build ends as written, not 130 with the new files in place (review33, review34)."""
    from archdsl.lower import model_file
    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE)
    out = tmp_path / "new" / "deeper" / "t.onnx"
    real_replace, real_finish = files.replace_keeping_mode, model_file.Staged.finish

    def interrupted_after(new, target, like=None):
        real_replace(new, target, like)
        os.kill(os.getpid(), signal.SIGINT)

    def interrupted_finish(self):
        os.kill(os.getpid(), signal.SIGINT)
        real_finish(self)
    real_cleanup = model_file.Staged.cleanup

    def interrupted_cleanup(self):
        if self.tmp is not None:  # while it removes one
            os.kill(os.getpid(), signal.SIGTERM)
        real_cleanup(self)
    if when == "rename":
        monkeypatch.setattr(files, "replace_keeping_mode", interrupted_after)
    elif when == "finish":
        monkeypatch.setattr(model_file.Staged, "finish", interrupted_finish)
    else:
        monkeypatch.setattr(model_file.Staged, "cleanup", interrupted_cleanup)
    code = main(["build", str(spec), "--train", "-o", str(out)])
    if when == "rename":
        assert code == 130 and not (tmp_path / "new").exists()
    else:
        assert code == 0 and out.exists() and (out.parent / "t.eval.onnx").exists()
    capsys.readouterr()


def test_a_train_step_is_not_left_beside_an_old_eval_model(tmp_path, monkeypatch):
    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE)
    out = tmp_path / "t.onnx"
    assert main(["build", str(spec), "--train", "-o", str(out), "--seed", "1"]) == 0
    before = out.read_bytes(), (tmp_path / "t.eval.onnx").read_bytes()
    real = files.replace_keeping_mode

    def refused_eval(new, target, like=None):
        if target.name == "t.eval.onnx":
            raise PermissionError(1, "Operation not permitted")
        real(new, target, like)
    monkeypatch.setattr(files, "replace_keeping_mode", refused_eval)
    assert main(["build", str(spec), "--train", "-o", str(out), "--seed", "2"]) == 1
    assert (out.read_bytes(), (tmp_path / "t.eval.onnx").read_bytes()) == before


def test_deferred_signals_act_at_the_end_once_each():
    ran = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C stopped the cleanup of temp dirs
            ran.append("the block ran to its end")
    assert ran == ["the block ran to its end"]


def _build_process(spec, out, home, **env) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}, "HOME": str(home), **env}
    return subprocess.Popen([sys.executable, "-m", "archdsl", "build", str(spec), "-o", str(out), "--external-data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the lock lives in the cache folder (Linux)")
@pytest.mark.parametrize("home_has_one", [True, False])
def test_two_builds_take_turns_at_their_renames(wide, tmp_path, home_has_one):
    """A build's renames wait while another holds the lock in the user's cache folder (two builds at once left
    one's model reading the other's .data file in 4 of 6 runs), or, where the home has none (read-only, as in
    many containers: here ~/.cache is a file), in a folder of the user's own in the temp dir (none was taken)."""
    import fcntl
    spec, _ = wide
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    if home_has_one:
        lock = tmp_path / "home" / ".cache" / "archdsl" / "commit.lock"
        lock.parent.mkdir(parents=True, mode=0o700)
        (tmp_path / "home" / ".cache").chmod(0o700)
    else:
        (tmp_path / "home" / ".cache").write_text("")
        lock = tmp_path / "tmp" / f"archdsl-{os.getuid()}" / "commit.lock"
        lock.parent.mkdir(mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = _build_process(spec, tmp_path / "w.onnx", tmp_path / "home", TMPDIR=str(tmp_path / "tmp"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.name.startswith(".w.onnx.") for p in tmp_path.iterdir()):
            time.sleep(0.05)  # its temp dir: it is writing
        time.sleep(1.5)
        assert proc.poll() is None and not (tmp_path / "w.onnx").exists(), "it renamed without the lock"
    finally:
        os.close(fd)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert (tmp_path / "w.onnx").exists()


def test_a_lock_on_the_output_folder_does_not_hold_a_build(wide, tmp_path):
    """`flock DIR archdsl build -o DIR/m.onnx` hung: the build waited for the lock its own wrapper held."""
    import fcntl
    spec, _ = wide
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = _build_process(spec, out / "m.onnx", tmp_path)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        os.close(fd)


def test_a_signal_during_one_cleanup_does_not_skip_the_next(tmp_path, monkeypatch, capsys):
    """Each temp dir's cleanup held signals on its own and raised at its end, which stopped the loop: the
    eval model's temp dir stayed, holding the replaced files' last links. (A signal there, after the renames,
    is dropped now: the build is done, and exits 0 with its files, not 130 over them.)"""
    import shutil

    from archdsl.lower import model_file
    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE)
    real, calls = shutil.rmtree, []

    def interrupted_rmtree(path, *a, **k):
        calls.append(path)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real(path, *a, **k)
    monkeypatch.setattr(model_file.shutil, "rmtree", interrupted_rmtree)
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "t.onnx")]) == 0
    assert len(calls) == 2 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_data_file_that_cannot_be_renamed_is_the_one_named(wide, tmp_path, monkeypatch, capsys):
    spec, _ = wide

    def refused_data(new, target, like=None, real=files.replace_keeping_mode):
        if target.name.endswith(".data"):
            raise PermissionError(1, "Operation not permitted")
        real(new, target, like)
    monkeypatch.setattr(files, "replace_keeping_mode", refused_data)
    assert _build(spec, tmp_path / "m.onnx", 2) == 1
    assert f"cannot write {tmp_path / 'm.onnx.data'}: Operation not permitted" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["build", "{spec}", "-o", "{tmp}/new/m.onnx"],
                                  ["build", "{spec}", "--train", "-o", "{tmp}/new/m.onnx"],
                                  ["build", "{spec}", "--external-data", "-o", "{tmp}/new/m.onnx"],
                                  ["train", "{tiny}", "--data", "{tmp}/d.npz", "--epochs", "1", "--quiet",
                                   "-o", "{tmp}/new/w.npz"]])
def test_ctrl_c_as_a_temp_dir_is_made_leaves_nothing(tmp_path, monkeypatch, capsys, argv):
    """A temp dir (or the writable probe's) was made, then its path stored: a Ctrl-C in between left an empty
    hidden folder beside the output, and the folders made above it (review35)."""
    import tempfile
    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE)
    (tmp_path / "tiny.arch").write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    real = tempfile.mkdtemp

    def interrupted(*a, **k):
        made = real(*a, **k)
        if str(made).startswith(str(tmp_path)):
            os.kill(os.getpid(), signal.SIGINT)
        return made
    monkeypatch.setattr(tempfile, "mkdtemp", interrupted)
    args = [a.format(spec=spec, tiny=tmp_path / "tiny.arch", tmp=tmp_path) for a in argv]
    assert main(args) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "tiny.arch", "wide.arch"]
