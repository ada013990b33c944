"""How a command ends when it is stopped (archdsl/cli/signals.py, archdsl/interrupts.py, archdsl/_launch.py):
SIGTERM unwinds like Ctrl-C, and Ctrl-C is `interrupted`, exit 130, wherever it lands: in a build's writing,
inside an extension's import, or while the command is still loading."""

from __future__ import annotations

import os

import pytest

from archdsl.cli import main


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temp_files(work, monkeypatch):
    """A killed build left its temp directory of partial weights beside the output (SIGINT did not)."""
    import signal

    from archdsl.lower import model_file
    real = model_file._stage

    def killed_while_writing(model, path, external, staged):
        real(model, path, external, staged)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises in this thread, here
    monkeypatch.setattr(model_file, "_stage", killed_while_writing)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    with pytest.raises(SystemExit) as e:
        main(["build", str(work / "tiny.arch"), "--train", "-o", str(work / "t.onnx")])
    assert e.value.code == 128 + signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before, "handlers restored"
    assert sorted(os.listdir(work)) == ["data.npz", "tiny.arch"]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_once_the_files_are_written_finishes_the_command(work, monkeypatch, capsys, sig, train):
    """Ctrl-C during a build's --report, or SIGTERM as it said 'wrote', exited 130/143 with the new files in
    place, where 130 says they are the ones before (cli5 hunt): the command finishes and exits 0."""
    import signal

    from archdsl.cli import commands
    real = commands.announce

    def announced(message, out):
        os.kill(os.getpid(), getattr(signal, sig))
        real(message, out)
    monkeypatch.setattr(commands, "announce", announced)
    monkeypatch.setattr("archdsl.cli.train.announce", announced)
    out = work / "m.onnx"
    assert main(["build", str(work / "tiny.arch"), "-o", str(out), *(["--train"] if train else [])]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()


def test_ctrl_c_inside_an_extension_is_an_interrupt_not_an_internal_error(work, monkeypatch, capsys):
    """Ctrl-C during onnxruntime's first import comes out of pybind11 as ImportError("initialization failed"):
    it said "internal error" (exit 70); it is `interrupted`, 130, and the output is not written."""
    import signal

    from archdsl import runtime

    def interrupted_import():  # where the build first imports onnxruntime
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises here, as it would inside the import
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None
    monkeypatch.setattr(runtime, "newest_opset", interrupted_import)
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "t.onnx")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not (work / "t.onnx").exists()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_inside_an_extension_is_the_signal_not_an_internal_error(work, monkeypatch, capsys, sig):
    """SIGTERM's handler raises SystemExit, which pybind11 turns into ImportError during onnxruntime's first
    import: it said "internal error" (exit 70); it is exit 128 + the signal, quietly, and nothing written."""
    import signal

    from archdsl import runtime
    signum = getattr(signal, sig)

    def terminated_import():
        try:
            os.kill(os.getpid(), signum)
        except SystemExit:
            raise ImportError("initialization failed") from None
    monkeypatch.setattr(runtime, "newest_opset", terminated_import)
    with pytest.raises(SystemExit) as e:
        main(["build", str(work / "tiny.arch"), "-o", str(work / "t.onnx")])
    assert e.value.code == 128 + signum
    assert "internal error" not in capsys.readouterr().err
    assert not (work / "t.onnx").exists()


def test_a_closed_stdout_is_no_traceback(work):
    """Started with stdout closed (`>&-`), Python's sys.stdout is None: the final flush raised AttributeError
    after the model was written (a traceback, exit 1)."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), "-o",
                          str(work / "t.onnx")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         timeout=300, preexec_fn=lambda: os.close(1))
    assert (res.returncode, res.stderr) == (0, "")
    assert (work / "t.onnx").exists()


@pytest.mark.parametrize("command", [["ops"], ["summary", "tiny.arch"], ["run", "tiny.arch"], ["check", "tiny.arch"],
                                     ["run", "tiny.arch", "--save", "o.npz"], ["docs", "--check"],
                                     ["build", "tiny.arch", "--emit", "ir"], ["build", "tiny.arch", "--report"],
                                     ["bench", "--quick"],
                                     ["build", "tiny.arch", "--emit", "ir", "-O2", "-o", "t.ir", "--report"],
                                     ["summary", "tiny.arch", "--json", "--report"]])
def test_a_command_whose_result_is_printed_refuses_a_closed_stdout(work, command):
    """print() drops its text when stdout is closed: ops, summary and run exited 0 having shown nothing. They
    are refused before any work; check (its verdict is the exit status), run --save (o.npz is the result) and
    docs go on."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "archdsl", *command], cwd=work, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=lambda: os.close(1))
    if command[0] in ("check", "docs") or "--save" in command or "t.ir" in command:  # --report to stderr there
        assert res.returncode in (0, 1) and "stdout is closed" not in res.stderr, res.stderr  # docs: no repo here
        assert "--save" not in command or (work / "o.npz").exists()
        assert "t.ir" not in command or (work / "t.ir").exists()
    elif command[0] == "bench":  # --json PATH is its other output
        assert (res.returncode, res.stderr) == (
            2, "archdsl bench: error: stdout is closed, and the table goes there; give --json PATH\n")
    else:
        what = "--emit ir" if "ir" in command else "--report" if "--report" in command and command[0] != "summary" \
            else command[0]  # summary --json: the JSON needs stdout, the report goes to stderr
        assert (res.returncode, res.stderr) == (
            2, f"archdsl {command[0]}: error: stdout is closed, and {what} prints its result there\n")


@pytest.mark.parametrize("flags", [["-o", "-"], ["-o", "/dev/stdout"], ["--emit", "ir", "-o", "/dev/fd/1"]])
def test_output_to_a_closed_stdout_is_an_error_not_a_file_named_dash(work, flags):
    """--emit ir to a closed stdout was an internal error (AttributeError); -o - wrote a file named '-';
    -o /dev/stdout wrote into whatever file had taken fd 1 since (onnxruntime's /dev/null): exit 0."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(work / "tiny.arch"), *flags], cwd=work,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
                         preexec_fn=lambda: os.close(1))
    assert res.returncode == 1 and "stdout, which is closed; give -o FILE" in res.stderr, res.stderr
    assert not (work / "-").exists()


def test_sigterm_in_onnxruntimes_import_during_run_is_the_signal(work, monkeypatch, capsys):
    """`archdsl run` said "onnxruntime cannot load the model: initialization failed", exit 1."""
    import signal

    from archdsl import runtime

    def terminated(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except SystemExit:
            raise ImportError("initialization failed") from None
    assert main(["build", str(work / "tiny.arch"), "-o", str(work / "t.onnx")]) == 0
    monkeypatch.setattr(runtime, "session", terminated)
    with pytest.raises(SystemExit) as e:
        main(["run", str(work / "t.onnx")])
    assert e.value.code == 128 + signal.SIGTERM
    assert "cannot load" not in capsys.readouterr().err


def test_a_stdout_that_cannot_show_a_name_escapes_it(tmp_path):
    """A layer named "l\u2026" printed to an ASCII stdout (PYTHONIOENCODING=ascii, a Latin-1 locale) was an
    internal error, exit 70."""
    import subprocess
    import sys
    spec = tmp_path / "u.arch"
    spec.write_text('model m(x: float32[B, 4]) -> y {\n    y = x -> relu as "l\u2026"\n}\n', encoding="utf-8")
    c_locale = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO"))}
    for env in ({**os.environ, "PYTHONIOENCODING": "ascii"},  # a C locale's stdout escapes surrogates only
                {**c_locale, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}):
        res = subprocess.run([sys.executable, "-m", "archdsl", "summary", str(spec)], capture_output=True, env=env,
                             timeout=300)
        assert res.returncode == 0 and b"internal error" not in res.stderr, res.stderr
        assert b"l\\u2026" in res.stdout


def test_a_c_locale_prints_a_file_name_as_its_bytes(tmp_path):
    """A name that is no UTF-8 comes back from the OS with surrogate escapes: they print as the bytes."""
    import subprocess
    import sys
    spec = tmp_path / "u.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> relu\n}\n")
    out = os.fsencode(tmp_path) + b"/m\xff.onnx"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO"))},
           "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    res = subprocess.run([sys.executable, "-m", "archdsl", "build", str(spec), "-o", out], capture_output=True,
                         env=env, timeout=300)
    assert res.returncode == 0 and b"wrote " + out + b" (" in res.stdout, res


def test_a_c_locale_writes_a_utf8_file_name(tmp_path):
    """r\xc3\xa9seau.onnx (UTF-8 bytes) where the file system's encoding is ASCII: the temporary directory's name
    was made from the name decoded as UTF-8, 'é', which mkdtemp could not encode: an internal error on every
    output, build, train -o and run --save (cli4 hunt)."""
    import subprocess
    import sys
    spec = tmp_path / "u.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> relu\n}\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO"))},
           "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    for command, out in ((["build", str(spec), "-o"], b"/r\xc3\xa9seau.onnx"),
                         (["run", str(spec), "--save"], b"/\xc3\xa9.npz")):
        path = os.fsencode(tmp_path) + out
        res = subprocess.run([sys.executable, "-m", "archdsl", *command, path], capture_output=True, env=env,
                             timeout=300)
        assert res.returncode == 0 and b"internal error" not in res.stderr, res.stderr
        assert os.path.exists(path)


def test_the_caret_stays_under_its_text_on_an_ascii_stderr(tmp_path):
    """The source line's \\u2026 escape is 6 columns where the caret counted 1: it pointed 5 to the left."""
    import subprocess
    import sys
    spec = tmp_path / "c.arch"
    spec.write_text('model m(x: float32[B, 4]) -> y {\n    y = x -> relu as "l\u2026" -> linear(8, bogus=1)\n}\n',
                    encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "archdsl", "check", str(spec)], capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONIOENCODING": "ascii"})
    source, caret = res.stderr.decode("ascii").splitlines()[1:3]
    assert "\\u2026" in source and caret.index("^") == source.index("bogus=1")


@pytest.mark.parametrize("as_import_error", [False, True])
def test_ctrl_c_while_the_command_loads_is_an_interrupt(tmp_path, as_import_error):
    """The `archdsl` entry point records Ctrl-C before numpy, onnx and onnxruntime load: an interrupt there
    printed a 20-line traceback (or, inside an extension, an ImportError)."""
    import subprocess
    import sys
    probe = tmp_path / "probe.py"
    probe.write_text(f"""
import os, signal, sys
import archdsl._launch as launch

class Interrupting:  # Ctrl-C arrives while archdsl.cli is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "archdsl.cli":
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                if {as_import_error}:
                    raise ImportError("initialization failed") from None
                raise
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["archdsl", "--version"]
sys.exit(launch.main())
""")
    res = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 130 and res.stderr.strip() == "interrupted", (res.returncode, res.stderr)


def test_an_import_error_without_a_ctrl_c_is_not_an_interrupt(tmp_path):
    """A broken install (a shared library missing) stays the ImportError it is, not `interrupted` (mutmisc hunt:
    the entry point's check for a recorded Ctrl-C could be dropped with the test above passing)."""
    import subprocess
    import sys
    probe = tmp_path / "probe.py"
    probe.write_text("""
import sys
import archdsl._launch as launch

class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "archdsl.cli":
            raise ImportError("libonnxruntime.so: cannot open shared object file")
        return None

sys.meta_path.insert(0, Broken())
sys.argv = ["archdsl", "--version"]
sys.exit(launch.main())
""")
    res = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "libonnxruntime.so: cannot open shared object file" in res.stderr, res.stderr
    assert "interrupted" not in res.stderr


def test_ctrl_c_while_the_arguments_are_parsed_ends_as_interrupted(monkeypatch, capsys):
    """Between the entry point's guard and the command's own handling (make_parser, parse_known_args: a few
    ms) a Ctrl-C was a traceback; a timing sweep hit it 2 times in 101."""
    import archdsl._launch as launch
    import archdsl.cli as cli

    def parser_interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "make_parser", parser_interrupted)
    monkeypatch.setattr("sys.argv", ["archdsl", "check", "x.arch"])
    assert launch.main() == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_ctrl_c_in_training_says_the_checkpoint_goes_on(work, monkeypatch, capsys):
    """Training stopped by Ctrl-C said only `interrupted`: the checkpoint of the last finished epoch is there,
    and --resume goes on from it."""
    from archdsl.training import loop
    real, calls = loop.Trainer.train_step, []

    def interrupted_in_epoch_2(self, *a, **k):
        calls.append(1)
        if len(calls) == 8:  # 40 examples, batches of 8: the third step of the second epoch
            raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(loop.Trainer, "train_step", interrupted_in_epoch_2)
    argv = ["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--batch-size", "8",
            "--epochs", "3", "-o", str(work / "w.npz"), "--quiet"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"note: {work / 'w.ckpt.npz'} holds the last finished epoch: the same command with --resume" in err
    assert err.rstrip().endswith("interrupted")
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0


def test_sigterm_in_training_says_the_checkpoint_goes_on_too(work, monkeypatch, capsys):
    """SIGTERM (SystemExit(143) from exit_cleanly_on_signals) ended training with no word of the checkpoint."""
    from archdsl.training import loop
    real, calls = loop.Trainer.train_step, []

    def terminated_in_epoch_2(self, *a, **k):
        calls.append(1)
        if len(calls) == 8:
            raise SystemExit(143)
        return real(self, *a, **k)
    monkeypatch.setattr(loop.Trainer, "train_step", terminated_in_epoch_2)
    with pytest.raises(SystemExit):
        main(["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--batch-size", "8",
              "--epochs", "3", "-o", str(work / "w.npz"), "--quiet"])
    assert "holds the last finished epoch: the same command with --resume" in capsys.readouterr().err


def test_a_ctrl_c_in_one_main_call_is_not_the_next_ones(work, monkeypatch, capsys):
    """The Python API calls main() again in one process: an internal error after an earlier Ctrl-C exited 130,
    "interrupted"."""
    import signal

    from archdsl import driver
    monkeypatch.setattr(driver, "select_models", lambda *a, **k: signal.raise_signal(signal.SIGINT))
    assert main(["check", str(work / "tiny.arch")]) == 130

    def bug(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(driver, "select_models", bug)
    assert main(["check", str(work / "tiny.arch")]) == 70
    assert "internal error: RuntimeError: a bug" in capsys.readouterr().err


# mutdriver hunt: each test below failed a mutant the suite let by
def test_held_signals_act_in_the_order_they_came():
    """Ctrl-C, then SIGTERM, during a held block: Ctrl-C's handler acts first (KeyboardInterrupt, exit 130),
    as the docstring says (I5: raised in reverse, the SIGTERM's exit came instead)."""
    import signal

    from archdsl.interrupts import deferred_signals
    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    before = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
