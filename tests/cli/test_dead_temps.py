"""A build killed outright leaves its hidden temp dir; the next build of the same output removes it, and no
other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl import files
from archdsl.cli import main

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/sys/kernel/random/boot_id"), reason="Linux only")


def _killed_build_dir(out: Path) -> Path:
    """The temp dir of a process that made it and died without cleaning up (as SIGKILL leaves it)."""
    code = ("import os, sys; from pathlib import Path; from archdsl import files; "
            "d = files.temp_dir_beside(Path(sys.argv[1])); (d / 'tiny.onnx').write_bytes(b'x' * 1000); "
            "print(d); sys.stdout.flush(); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def test_the_next_build_of_the_output_removes_a_dead_builds_temp_dir(work):
    out = work / "tiny.onnx"
    dead = _killed_build_dir(out)
    assert dead.is_dir() and dead.name.startswith(".tiny.onnx.a")
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "other.onnx")]) == 0
    assert dead.is_dir()  # another output's build leaves it
    assert main(["build", str(work / "tiny.arch"), "-o", str(out)]) == 0
    assert not dead.exists()
    assert sorted(p.name for p in work.iterdir()) == ["data.npz", "other.onnx", "tiny.arch", "tiny.onnx"]


def test_a_build_that_fails_while_writing_keeps_it(work, capsys, monkeypatch):
    """Until a build has put a matching pair in place, the dead build's dir may hold the only one."""
    from archdsl import lower
    from archdsl.diagnostics import ArchError

    def fail(*args):
        raise ArchError("the disk is full")
    out = work / "tiny.onnx"
    dead = _killed_build_dir(out)
    monkeypatch.setattr(lower, "write_streaming", fail)
    assert main(["build", str(work / "tiny.arch"), "-o", str(out)]) == 1
    assert "the disk is full" in capsys.readouterr().err
    assert dead.is_dir() and not out.exists()
    assert len(list(work.glob(".tiny.onnx.*"))) == 1


def test_only_dirs_known_dead_go(work):
    out = work / "m.npz"
    mine = files.temp_dir_beside(out)  # this process: alive
    host = files._owner_tag().split("-")[0]
    other_host = work / f".m.npz.a{'0' * 8 if host != 'a00000000' else '1' * 8}-{2 ** 30}-5-abcdefgh"
    unnamed = work / ".m.npz.x1y2z3w4"  # an older archdsl's, or the user's own
    reused = work / f".m.npz.{host}-{os.getpid()}-1-abcdefgh"  # our pid, another start time: a dead process
    for d in (other_host, unnamed, reused):
        d.mkdir()
    files.atomic_write(out, lambda tmp: tmp.write_bytes(b"saved"))
    assert out.read_bytes() == b"saved"
    assert mine.is_dir() and other_host.is_dir() and unnamed.is_dir() and not reused.exists()


def test_an_output_name_of_up_to_255_bytes_of_utf8_builds(work):
    """The name was cut to 180 characters: 115 'é' (235 bytes) left no room for the owner tag."""
    for name in ("é" * 115 + ".onnx", "模" * 83 + ".onnx", "模" * 69 + ".onnx"):
        assert len(name.encode()) <= 255
        assert main(["build", str(work / "tiny.arch"), "-o", str(work / name)]) == 0
        assert (work / name).is_file()
    name = "模" * 69 + ".onnx"  # cut inside a character: onnx's external-data writer refused the temp dir's name
    (work / "big.arch").write_text("model m(x: float32[B, 64]) -> y { y = x -> linear(64) }\n")
    assert main(["build", str(work / "big.arch"), "--train", "--external-data", "-o", str(work / name)]) == 0
    assert (work / (name + ".data")).is_file()


def test_no_tag_where_proc_is_another_pid_namespaces(work, monkeypatch):
    """Under `unshare --pid` without its own /proc, /proc/PID is another process: a live build's dir looked
    dead to a second build, which removed it."""
    monkeypatch.setattr(os, "getpid", lambda: 2)
    assert files._owner_tag() == "" and files._host() is None
    d = files.temp_dir_beside(work / "m.npz")
    assert files._TAG.match(d.name, len(".m.npz.")) is None and len(d.name) == len(".m.npz.") + 8
