"""The files a build writes, at their edges: modes under the umask (the .data files too, a train step's as
well), folders made and removed again, names of undecodable bytes, a .data file another model reads, tensors at
the 1 KiB external-data line, descriptors past the OS range, a build from a thread. Each test failed a mutant of
the driver or the file writing that the rest of the suite let by (mutdriver hunt)."""

from __future__ import annotations

import os
import stat
import threading

import onnx
import pytest

from archdsl.cli import main
from archdsl.diagnostics import ArchError


def test_a_new_data_file_takes_the_umask_mode(work):
    """Under umask 077 a fresh build's model is 0600 and so is its .data file (F9: umask_mode gave a fixed
    0644, the weights readable by all beside a private model)."""
    (work / "wide.arch").write_text("model w(x: float32[B, 64]) -> y {\n    y = x -> linear(64)\n}\n")
    old = os.umask(0o077)
    try:
        assert main(["build", str(work / "wide.arch"), "-o", str(work / "m.onnx"), "--external-data"]) == 0
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(work / p).st_mode)  # noqa: E731
    assert (mode("m.onnx"), mode("m.onnx.data")) == (0o600, 0o600)


def test_folders_made_before_a_folder_that_cannot_be_made_go_again(work, capsys):
    """-o new/sub/<300 bytes>/m.onnx: new and new/sub are made, the third folder's name is too long; the two
    go again, innermost first (F10: removed outermost first, the first rmdir failed on a folder not empty, and
    both stayed)."""
    out = work / "new" / "sub" / ("a" * 300) / "m.onnx"
    assert main(["build", str(work / "tiny.arch"), "-o", str(out)]) == 1
    assert "too long" in capsys.readouterr().err
    assert not (work / "new").exists()


def test_an_output_name_of_undecodable_bytes_gets_a_temp_dir_that_fits(work):
    """A name of 100 bytes that are not UTF-8 (205 bytes with .onnx) is a valid name; the temp dir beside it
    drops those bytes from its own name (F16: each became U+FFFD, 3 bytes, and the temp dir's name passed
    255 bytes: 'File name too long')."""
    name = os.fsdecode(b"\xff" * 100 + b".onnx")
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / name)]) == 0
    assert onnx.load(str(work / name)).graph.node


def test_a_train_steps_new_data_files_take_the_umask_mode(work):
    """onnx writes external data 0600; a fresh `build --train --external-data` gives its .data files the mode
    its models get, 0666 less the umask (M8: Staged.commit's umask_mode dropped, both .data files 0600 beside
    0644 models)."""
    (work / "wide.arch").write_text("model w(x: float32[B, 64]) -> y {\n    y = x -> linear(64)\n}\n")
    assert main(["build", str(work / "wide.arch"), "--train", "--external-data", "-o", str(work / "t.onnx")]) == 0
    umask = os.umask(0)
    os.umask(umask)
    mode = lambda p: stat.S_IMODE(os.stat(work / p).st_mode)  # noqa: E731
    assert {p: mode(p) for p in ("t.onnx", "t.onnx.data", "t.eval.onnx", "t.eval.onnx.data")} == \
        dict.fromkeys(("t.onnx", "t.onnx.data", "t.eval.onnx", "t.eval.onnx.data"), 0o666 & ~umask)


def test_a_rebuild_keeps_a_data_file_the_replaced_model_does_not_read(work):
    """m.onnx kept its weights in a.onnx.data (a copy of a.onnx); m.onnx.data beside it is another file. A
    self-contained rebuild of m.onnx removes only the .data file the replaced model read (M14: any model with
    external data anywhere had its m.onnx.data removed)."""
    import shutil
    (work / "wide.arch").write_text("model w(x: float32[B, 64]) -> y {\n    y = x -> linear(64)\n}\n")
    spec = str(work / "wide.arch")
    assert main(["build", spec, "--external-data", "-o", str(work / "a.onnx")]) == 0
    shutil.copy(work / "a.onnx", work / "m.onnx")
    (work / "m.onnx.data").write_text("someone else's")
    assert main(["build", spec, "-o", str(work / "m.onnx")]) == 0
    assert (work / "m.onnx.data").read_text() == "someone else's"
    assert (work / "a.onnx.data").is_file()


def test_a_train_steps_tensor_of_exactly_1_kib_goes_to_external_data(work):
    """--external-data moves tensors of 1 KiB or more (--help, INLINE_LIMIT), in a train step and its eval
    model as in a build: a 16x16 float32 weight is 1024 bytes (M17: _save_external kept it inline)."""
    (work / "w16.arch").write_text("model w(x: float32[B, 16]) -> y {\n    y = x -> linear(16, bias=false)\n}\n")
    assert main(["build", str(work / "w16.arch"), "--train", "--external-data", "-o", str(work / "t.onnx")]) == 0
    for name in ("t.onnx", "t.eval.onnx"):
        m = onnx.load(str(work / name), load_external_data=False)
        sized = [(t.name, t.data_location) for t in m.graph.initializer if list(t.dims) == [16, 16]]
        assert sized and all(loc == onnx.TensorProto.EXTERNAL for _, loc in sized), (name, sized)


def test_a_descriptor_number_past_the_os_range_is_no_stream(work):
    """out='/dev/fd/<20 digits>' from Python (which notes no inherited descriptors): no such descriptor, so a
    file that cannot be written, an ArchError (I2: fd_open let os.fstat's OverflowError through)."""
    from archdsl import driver
    mod = driver.load(str(work / "tiny.arch"))
    with pytest.raises(ArchError, match="cannot write /dev/fd/99999999999999999999"):
        driver.build_file(mod, None, driver.CompileOptions(), "/dev/fd/99999999999999999999")


def test_build_file_in_a_thread_writes_the_model(work):
    """Signal handlers can only be set in the main thread: a build written from a worker thread (a server,
    a thread pool) holds no signals and writes its file (I9: deferred_signals set handlers in any thread:
    ValueError 'signal only works in main thread')."""
    from archdsl import driver
    got = []

    def go():
        try:
            mod = driver.load(str(work / "tiny.arch"))
            got.append(driver.build_file(mod, None, driver.CompileOptions(), str(work / "thr.onnx"))[1])
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            got.append(e)
    t = threading.Thread(target=go)
    t.start()
    t.join()
    assert got == [[work / "thr.onnx"]], got
    assert onnx.load(str(work / "thr.onnx")).graph.node
