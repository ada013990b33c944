"""Outputs that are streams or odd paths: stdout and other descriptors written through (after what is there,
never renamed over), descriptors the command did not start with or that are open on an input, a deleted
working directory, a spec read from /dev/stdin, links to nowhere, another user's file in a sticky folder, and
the 'wrote' lines' escaping (cli5 and review82-84 hunts)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl.cli import main


@pytest.mark.parametrize("flags", [["-o", "-"], ["-o", "/dev/stdout"], ["--emit", "ir", "-o", "-"],
                                   ["--emit", "ir", "-o", "/dev/stderr"]], ids=str)
def test_stdout_into_a_file_is_written_where_the_shell_opened_it(work, flags):
    """`-o - >> log` replaced the log (its name followed from /proc/self/fd/1, a rename over it), and in
    `{ echo header; build -o -; build -o -; } > f` the second build made a file named 'f (deleted)' (cli5 hunt):
    bytes go through the descriptor, after what is there, as for any command's output."""
    import subprocess
    import sys
    log = work / "log.txt"
    log.write_bytes(b"previous line\n")
    stream = 2 if flags[-1] == "/dev/stderr" else 1
    with open(log, "ab") as f:
        res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), *flags], cwd=work,
                             stdout=f if stream == 1 else subprocess.DEVNULL,
                             stderr=f if stream == 2 else subprocess.DEVNULL, check=False)
    assert res.returncode == 0
    data = log.read_bytes()
    assert data.startswith(b"previous line\n"), data[:40]
    body = data[len(b"previous line\n"):]
    if flags[0] == "--emit":
        assert b"model tiny(" in body
    else:
        assert onnx.load_from_string(body).graph.name == "tiny"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("log")) == ["log.txt"]


def test_a_deleted_working_directory_is_no_internal_error(work):
    """With the working directory deleted, check and build of a spec by its absolute path said 'internal error:
    FileNotFoundError' (exit 70): a relative display of the path asked for the working directory (cli5 hunt)."""
    import shlex
    import subprocess
    import sys
    gone = work / "gone"
    gone.mkdir()
    spec, out = shlex.quote(str(work / "tiny.arch")), shlex.quote(str(work / "g.onnx"))
    py = shlex.quote(sys.executable)
    res = subprocess.run(["sh", "-c", f"cd {shlex.quote(str(gone))} && rmdir ../gone && {py} -m archdsl check {spec} "
                          f"&& {py} -m archdsl build {spec} -o {out}"], capture_output=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(Path(archdsl.__file__).parent.parent)})
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["sh", "-c", f"{py} -m archdsl run {spec} --input x=/dev/fd/4 --repeat 1"],
                         capture_output=True, check=False)  # not the shell's: onnxruntime's database (review85)
    assert res.returncode == 1 and b"cannot read /dev/fd/4: descriptor 4 was not open" in res.stderr, res.stderr
    assert b"internal error" not in res.stderr and onnx.load(work / "g.onnx").graph.name == "tiny"


def test_a_spec_read_from_stdin_needs_o(work):
    """`build /dev/stdin < m.arch` wrote /dev/stdin.onnx, a regular file in /dev (as root; else a permission
    error naming /dev), and --train's message spoke of an -o never given (cli5 hunt)."""
    import subprocess
    import sys
    for flags in ([], ["--train"]):
        with open(work / "tiny.arch", "rb") as f:
            res = subprocess.run([sys.executable, "-m", "archdsl", "build", "/dev/stdin", *flags], stdin=f,
                                 capture_output=True, check=False, cwd=work)
        assert res.returncode == 1 and b"/dev/stdin is not a file the output can go beside: give -o FILE" \
            in res.stderr, res.stderr
    assert not os.path.exists("/dev/stdin.onnx") and not os.path.exists("/dev/tiny.train.onnx")
    with open(work / "tiny.arch", "rb") as f:
        res = subprocess.run([sys.executable, "-m", "archdsl", "build", "/dev/stdin", "-o", str(work / "s.onnx")],
                             stdin=f, capture_output=True, check=False, cwd=work)
    assert res.returncode == 0 and onnx.load(work / "s.onnx").graph.name == "tiny"


def test_an_output_under_a_link_to_nowhere_says_so_before_training(work, capsys):
    """-o dl/x.onnx with dl a dangling link said "File exists", and train found out after its first epoch
    (cli5 hunt)."""
    (work / "dl").symlink_to("nowhere")
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "dl" / "x.onnx")]) == 1
    said = f"{work / 'dl'} is a symbolic link to nowhere, which does not exist"
    assert said in capsys.readouterr().err
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o",
                 str(work / "dl" / "w.npz"), "--epochs", "1"]) == 1
    captured = capsys.readouterr()
    assert said in captured.err and "epoch 1" not in captured.out + captured.err


def test_a_file_of_another_user_in_a_sticky_folder_is_refused_before_training(work, capsys, monkeypatch):
    """In a sticky folder (/tmp) the rename over another user's file fails: the probe's temp folder was made
    there all the same, so train found out after its last epoch (distill hunt). Seen as a user who owns
    neither the file nor the folder, whom the kernel refuses the file's times as it refuses the rename."""
    sticky = work / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "w.npz").write_bytes(b"theirs")

    from archdsl import files
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(sticky).st_uid + 4242)
    monkeypatch.setattr(files, "_may_set_times", lambda path, st: False)
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o",
                 str(sticky / "w.npz"), "--epochs", "1"]) == 1
    captured = capsys.readouterr()
    assert f"cannot write {sticky / 'w.npz'}: it belongs to another user" in captured.err
    assert "epoch 1" not in captured.out + captured.err and (sticky / "w.npz").read_bytes() == b"theirs"
    monkeypatch.undo()  # its owner may
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o",
                 str(sticky / "w.npz"), "--epochs", "1"]) == 0


def _unshare_works() -> bool:
    import shutil
    import subprocess
    return bool(shutil.which("unshare")) and subprocess.run(["unshare", "--user", "--map-root-user", "true"],
                                                            capture_output=True).returncode == 0


def _real_root() -> bool:
    """Root of the initial user namespace, which can chown to any uid (a namespace's root maps few)."""
    try:
        return os.geteuid() == 0 and Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


@pytest.mark.skipif(not _real_root() or not _unshare_works(), reason="needs real root (to chown) and user namespaces")
def test_root_in_a_user_namespace_is_refused_what_the_kernel_refuses_it(work):
    """Root in a user namespace (a rootless container, `unshare -r`) cannot replace a file in a sticky folder
    whose owner it does not map: train found out after its last epoch (review86); real root can. The kernel
    is asked: a uid of 65534 is also nobody's, which a namespace mapping 65536 ids may replace (review87)."""
    import subprocess
    import sys
    sticky = work / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    os.chown(sticky, 4242, -1)
    out = sticky / "w.npz"
    out.write_bytes(b"theirs")
    os.chown(out, 1002, -1)
    train = [sys.executable, "-m", "archdsl", "train", str(work / "tiny.arch"), "--data", str(work / "data.npz"),
             "-o", str(out), "--epochs", "1"]
    res = subprocess.run(["unshare", "--user", "--map-root-user", *train], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1 and "it belongs to another user" in res.stderr, res.stderr
    assert "epoch 1" not in res.stdout + res.stderr and out.read_bytes() == b"theirs"
    os.chown(out, 65534, -1)  # nobody, whom a namespace mapping the first 65,536 ids (rootless podman) maps
    ns = subprocess.Popen(["unshare", "--user", "sh", "-c", 'sleep 1; exec "$@"', "sh", *train],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    for _ in range(500):  # until unshare has made its namespace (the maps are written from outside, once)
        if os.readlink(f"/proc/{ns.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
            break
        time.sleep(0.01)
    for name, text in (("uid_map", "0 0 65536"), ("setgroups", "deny"), ("gid_map", "0 0 65536")):
        Path(f"/proc/{ns.pid}/{name}").write_text(text)
    said, err = ns.communicate(timeout=300)
    assert ns.returncode == 0 and out.read_bytes() != b"theirs", err
    out.write_bytes(b"theirs")
    os.chown(out, 1002, -1)
    res = subprocess.run(train, capture_output=True, text=True, timeout=300)  # real root
    assert res.returncode == 0 and out.read_bytes() != b"theirs", res.stderr


def test_wrote_lines_escape_control_characters_and_unreadable_files_say_why(work, capsys):
    """-o $'a\\e[2Jb.onnx' printed the escape sequence raw in 'wrote' (clearing the terminal) where diagnostics
    escape it; an unreadable checkpoint or input said '[Errno 13] Permission denied: ...' and, for --resume,
    that a checkpoint is an .npz, as if the file were of the wrong kind (cli5 hunt)."""
    from archdsl.lower.weights import numpy_reason
    out = work / "a\x1b[2Jb.onnx"
    assert main(["build", str(work / "tiny.arch"), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "\x1b" not in said and "a\\x1b[2Jb.onnx" in said and out.is_file()
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "r\u202egnp.onnx")]) == 0  # shown reversed
    assert "r\\u202egnp.onnx" in capsys.readouterr().out
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o",
                 str(work / "w\nx.npz"), "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    assert "wrote " + str(work / "w\\nx.npz") in captured.out + captured.err
    assert numpy_reason(PermissionError(13, "Permission denied", "w.npz")) == "Permission denied"


def test_any_open_descriptor_is_written_through_and_a_gone_cwd_with_a_relative_path_is_a_diagnostic(work):
    """`-o /dev/fd/3 3>>log` still renamed over the log (only fds 1 and 2 were streams), and a relative -o in a
    deleted working directory was an internal error (review82 hunt)."""
    import shlex
    import subprocess
    import sys
    py, spec = shlex.quote(sys.executable), shlex.quote(str(work / "tiny.arch"))
    log = work / "log4"
    log.write_bytes(b"hdr\n")
    res = subprocess.run(["sh", "-c", f"{{ echo hdr2 >&3; {py} -m archdsl build {spec} -o /dev/fd/3; }} "
                          f"3>>{shlex.quote(str(log))}"], capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    data = log.read_bytes()
    assert data.startswith(b"hdr\nhdr2\n") and onnx.load_from_string(data[9:]).graph.name == "tiny"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("log4")) == ["log4"]
    gone = work / "gone"
    gone.mkdir()
    res = subprocess.run(["sh", "-c", f"cd {shlex.quote(str(gone))} && rmdir ../gone && {py} -m archdsl build {spec} "
                          "-o rel.onnx"], capture_output=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(Path(archdsl.__file__).parent.parent)})
    assert res.returncode == 1 and b"the working directory no longer exists" in res.stderr, res.stderr


def test_a_descriptor_the_shell_did_not_open_or_one_on_the_spec_is_refused(work):
    """-o /dev/fd/4 with no 4> wrote into onnxruntime's own cache database (fds 3-5 inside the process), and
    `-o /dev/fd/3 3>>spec.arch` appended the model to the spec (review83 hunt)."""
    import shlex
    import subprocess
    import sys
    py, spec = shlex.quote(sys.executable), shlex.quote(str(work / "tiny.arch"))
    for fd in (3, 4, 7):  # 3 and 4: onnxruntime's database opens there after the check (review84 hunt)
        res = subprocess.run(["sh", "-c", f"{py} -m archdsl build {spec} -o /dev/fd/{fd}"], capture_output=True,
                             check=False)
        assert res.returncode == 1 and f"descriptor {fd} was not open when archdsl started".encode() in res.stderr
    np.save(work / "x.npy", np.ones((2, 4), np.float32))  # an input by its descriptor reads as the file (review84)
    res = subprocess.run(["sh", "-c", f"{py} -m archdsl run {spec} --input x=/dev/fd/5 --repeat 1 "
                          f"5<{shlex.quote(str(work / 'x.npy'))}"], capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    before = (work / "tiny.arch").read_bytes()
    res = subprocess.run(["sh", "-c", f"{py} -m archdsl build {spec} -o /dev/fd/3 3>>{spec}"], capture_output=True,
                         check=False)
    assert res.returncode == 1 and b"is open on the spec file" in res.stderr, res.stderr
    assert (work / "tiny.arch").read_bytes() == before


# mutdriver hunt: each test below failed a mutant the suite let by
def test_proc_self_fd_1_into_a_file_is_written_where_the_shell_opened_it(work):
    """`-o /proc/self/fd/1 >> log` names stdout as /dev/stdout does: written through the descriptor, after
    what the log holds (F5: only /dev/fd/N was read as a descriptor, and the log was renamed over)."""
    import subprocess
    import sys
    log = work / "log.txt"
    log.write_bytes(b"previous line\n")
    with open(log, "ab") as f:
        res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "-o",
                              "/proc/self/fd/1"], cwd=work, stdout=f, stderr=subprocess.DEVNULL, check=False)
    assert res.returncode == 0
    data = log.read_bytes()
    assert data.startswith(b"previous line\n"), data[:40]
    import onnx
    assert onnx.load_from_string(data[len(b"previous line\n"):]).graph.node


def test_text_printed_before_goes_first_when_a_file_is_written_to_stdout(tmp_path):
    """`archdsl bench --markdown --json /dev/stdout > f` printed the tables after the JSON: stdout's buffer (block
    buffered into a file, PYTHONUNBUFFERED unset as a user's shell has it) goes out before bytes written through
    descriptor 1 (F6: files.open_special's flush dropped)."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    code = ("from archdsl import files\nprint('table')\n"
            "files.atomic_write('/dev/stdout', lambda t: t.write_text('json'))\n")
    out = tmp_path / "o.txt"
    with open(out, "wb") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, env=env, check=True, cwd=tmp_path)
    assert out.read_bytes() == b"table\njson"


def test_train_writes_its_weights_through_a_descriptor_the_shell_opened(work):
    """`train -o /dev/fd/3 3>w.npz`: a descriptor is written through, not replaced, so the probe for a
    writable folder is not made in /dev/fd (F27: probe_writable's early return for special targets dropped:
    'cannot write /dev/fd/3: No such file or directory' before any training)."""
    import shlex
    import subprocess
    import sys
    w = work / "w.npz"
    cmd = (f"{shlex.quote(sys.executable)} -m archdsl train tiny.arch --data data.npz --epochs 1 --batch-size 8 "
           f"-o /dev/fd/3 --checkpoint /dev/null --quiet 3>{shlex.quote(str(w))}")
    res = subprocess.run(["sh", "-c", cmd], cwd=work, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert sorted(np.load(w).files) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give the file another owner")
def test_the_owner_of_a_sticky_folder_may_replace_another_users_file_in_it(work, monkeypatch):
    """The kernel lets a sticky folder's owner replace any file in it: train goes on (F29: only the file's
    owner was let through, and the folder's owner was asked for the file's times, which the kernel refuses
    a non-owner, so a write it allows was refused)."""
    sticky = work / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "w.npz").write_bytes(b"theirs")
    os.chown(sticky / "w.npz", 1002, -1)
    from archdsl import files
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(sticky).st_uid)  # the folder's owner, not the file's
    monkeypatch.setattr(files, "_may_set_times", lambda path, st: False)  # as the kernel answers a non-owner
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "-o",
                 str(sticky / "w.npz"), "--epochs", "1", "--quiet"]) == 0
    assert (sticky / "w.npz").read_bytes() != b"theirs"
