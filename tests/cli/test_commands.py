"""The command line end to end: every subcommand, its --help, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from archdsl import __version__
from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")
LENET = str(ROOT / "specs" / "lenet5.arch")


def test_build_writes_a_checked_model(tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    assert main(["build", MLP, "-o", str(out)]) == 0
    assert "203,530 params" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_outputs_the_os_refuses_are_diagnostics(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    assert main(["build", MLP, "-o", str(tmp_path / "adir")]) == 1
    assert f"error: cannot write {tmp_path / 'adir'}: it is a directory" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["build", MLP, "-o", str(blocked / "m.onnx")]) == 1   # a file where a folder should be
    err = capsys.readouterr().err
    assert f"error: cannot write {blocked / 'm.onnx'}:" in err and "internal error" not in err
    assert main(["build", str(tmp_path / "adir")]) == 1
    assert "is a directory, not a .arch file" in capsys.readouterr().err
    assert main(["build", MLP, "-o", str(tmp_path / "adir" / "m.onnx"), "--external-data"]) == 0
    (tmp_path / "adir" / "m2.onnx.data").mkdir()  # was reported as m2.onnx, after generating the weights
    assert main(["build", MLP, "-o", str(tmp_path / "adir" / "m2.onnx"), "--external-data"]) == 1
    assert f"cannot write {tmp_path / 'adir' / 'm2.onnx.data'}: it is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "adir").iterdir()) == ["m.onnx", "m.onnx.data", "m2.onnx.data"]
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 784), np.float32), labels=np.zeros(4, np.int64))
    for flag in ("-o", "--checkpoint"):
        args = ["train", MLP, "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
        assert main(args + [flag, str(tmp_path / "adir")]) == 1
        assert "it is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "d.npz", "file"]   # nothing half-written
    args = ["train", MLP, "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
    assert main(args + ["--checkpoint", str(tmp_path / "c.safetensors")]) == 2  # an .npz was written under it
    assert "--checkpoint" in capsys.readouterr().err and not (tmp_path / "c.safetensors").exists()
    assert main(args + ["--checkpoint", str(tmp_path / "run.ckpt"), "--epochs", "1"]) == 0  # a name kept before
    assert main(args + ["--checkpoint", str(tmp_path / "run.ckpt"), "--epochs", "2", "--resume"]) == 0


def test_an_opset_onnx_does_not_know_is_refused(capsys):
    top = onnx.defs.onnx_opset_version()
    assert main(["build", MLP, "--opset", str(top + 1)]) == 2
    assert f"--opset {top + 1} is not supported (17..{top})" in capsys.readouterr().err
    from archdsl import compile_file
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match=f"opset {top + 1} is not supported"):   # the Python API too
        compile_file(MLP, opset=top + 1)


def test_an_opset_this_onnxruntime_cannot_load_builds_with_a_warning(tmp_path, capsys, monkeypatch):
    """onnx may know newer opsets than the onnxruntime beside it (onnx 1.23 with onnxruntime-gpu 1.31 takes up to
    28 and loads up to 26): such a build is for another runtime, and says that this one will not run it."""
    from archdsl import runtime
    monkeypatch.setattr(runtime, "newest_opset", lambda: 20)
    out = tmp_path / "m.onnx"
    assert main(["build", MLP, "--opset", "21", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: --opset 21: onnxruntime" in err and "loads opsets up to 20, so it will not run this model" in err
    assert onnx.load(str(out)).opset_import[0].version == 21
    assert main(["build", MLP, "--opset", "20", "-o", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_build_default_output_name(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.arch"
    spec.write_text("model tiny(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["build", "tiny.arch"]) == 0
    assert (tmp_path / "tiny.onnx").is_file()


def test_build_emit_ir(capsys):
    assert main(["build", MLP, "--emit", "ir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model mlp(x: float32[B, 784]) -> (logits)")
    assert "linear(x, fc1.weight, fc1.bias)" in out


def test_build_emit_ir_optimizes_for_the_opset_asked(tmp_path, capsys):
    from archdsl.ops._kernels import runs_natively
    spec = tmp_path / "att.arch"
    spec.write_text("model att(q: float32[B, 2, T, 8], k: float32[B, 2, T, 8], v: float32[B, 2, T, 8]) -> y {\n"
                    "    y = softmax(q @ transpose(k) / 4.0) @ v\n}\n")
    fused = {}
    for opset in (17, 24):
        assert main(["build", str(spec), "--emit", "ir", "-O2", "--opset", str(opset)]) == 0
        fused[opset] = "scaled_dot_product_attention" in capsys.readouterr().out
    assert fused == {17: False, 24: runs_natively("Attention", 24)}


def test_define_changes_the_model(capsys):
    assert main(["check", MLP, "-D", "hidden=32"]) == 0
    assert "params: 25,450" in capsys.readouterr().out  # 784*32+32 + 32*10+10


def test_check_prints_signature_and_params(capsys):
    assert main(["check", LENET]) == 0
    out = capsys.readouterr().out
    assert "lenet5(x: float32[B, 1, 32, 32]) -> (logits: float32[B, 10])" in out
    assert "params: 61,706" in out


@pytest.mark.parametrize("command", [["check"], ["summary"], ["build", "-o", "out.onnx"], ["train", "--data", "d.npz"]])
def test_an_onnx_file_where_a_spec_goes_says_so(tmp_path, capsys, command):
    """Not "the file is not UTF-8" at some byte of the protobuf."""
    model = tmp_path / "m.onnx"
    assert main(["build", MLP, "-o", str(model)]) == 0
    capsys.readouterr()
    assert main([command[0], str(model), *command[1:]]) == 1
    assert "m.onnx is a compiled ONNX model, not a .arch spec (`archdsl run` runs it)" in capsys.readouterr().err


@pytest.mark.parametrize("command, hint", [(["run"], ": a spec's weights are given with --weights, its inputs with "
                                                     "--input NAME=FILE"),
                                           (["summary"], "\n")])
def test_a_file_of_arrays_where_a_spec_goes_says_so(tmp_path, capsys, command, hint):
    """`archdsl run good.npz` read the zip as a spec: "not UTF-8" and a line of binary."""
    np.savez(tmp_path / "good.npz", a=np.ones(3))
    assert main([*command, str(tmp_path / "good.npz")]) == 1
    assert f"good.npz is a file of arrays (.npz), not a .arch spec{hint}" in capsys.readouterr().err


def test_ops_lists_the_registry(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "conv2d(x, out_channels, kernel_size" in out and "linear(" in out
    assert "(torch.cat). (also cat)" in out and "(also batchnorm1d, batchnorm2d, batchnorm3d)" in out  # every name


def _subcommands() -> list[str]:
    import argparse

    from archdsl.cli import make_parser
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_every_subcommand_has_help(capsys):
    names = _subcommands()
    assert {"build", "check", "summary", "run", "ops"} <= set(names)
    for argv in [["--help"]] + [[n, "--help"] for n in names]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        out = capsys.readouterr().out
        assert e.value.code == 0, argv
        assert out.startswith(f"usage: archdsl {argv[0] if len(argv) > 1 else ''}".rstrip()), argv
        if len(argv) > 1:
            assert "-h, --help" in out and len(out.splitlines()) > 3, argv
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    for flag in ("-o", "-D", "--model", "--opset", "--seed", "--emit"):
        assert flag in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["build"], ["frobnicate"], ["build", MLP, "--opset", "x"],
                                  ["build", MLP, "--emit", "pdf"], ["build", MLP, "--opset", "12"], []])
def test_usage_errors_exit_2(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2


@pytest.mark.parametrize("argv", [["run", MLP, "--seed", "-5"], ["build", MLP, "--seed", str(2**32)],
                                  ["train", MLP, "--data", "d.npz", "--seed", "x"],
                                  ["run", MLP, "--threads", "-1"],
                                  ["train", MLP, "--data", "d.npz", "--threads", "-2"]])
def test_a_seed_or_thread_count_out_of_range_is_a_usage_error(argv, capsys):
    """`run --seed -5` was an internal error (numpy refuses negative seeds); build masked it to 32 bits; a
    negative thread count went to onnxruntime."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and f"argument {argv[-2]}" in capsys.readouterr().err


def test_training_flags_without_train_are_a_usage_error(tmp_path, capsys):
    """`build --loss mse` wrote an inference model and ignored the flag."""
    out = tmp_path / "m.onnx"
    assert main(["build", MLP, "--loss", "mse", "--lr", "0.1", "-o", str(out)]) == 2
    assert "--loss, --lr need --train" in capsys.readouterr().err and not out.exists()
    assert main(["build", MLP, "--train", "--loss", "mse", "-o", str(out)]) == 0


def test_missing_file_is_a_diagnostic(capsys):
    assert main(["check", "does/not/exist.arch"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_script_and_module_entry_points(tmp_path):
    """The installed `archdsl` script and `python -m archdsl` behave the same, and a diagnostic has no traceback."""
    bad = tmp_path / "bad.arch"
    bad.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> lineer(3)\n}\n")
    exe = Path(sys.executable).parent / "archdsl"
    runs = [[sys.executable, "-m", "archdsl"]] + ([[str(exe)]] if exe.exists() else [])
    for cmd in runs:
        ok = subprocess.run(cmd + ["check", MLP], capture_output=True, text=True, env=dict(os.environ))
        assert ok.returncode == 0 and "params: 203,530" in ok.stdout
        r = subprocess.run(cmd + ["build", str(bad), "-o", str(tmp_path / "bad.onnx")], capture_output=True, text=True)
        assert r.returncode == 1
        assert "bad.arch:2:14: error: unknown name 'lineer'; did you mean 'linear'?" in r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "bad.onnx").exists()


def test_a_diagnostic_into_a_closed_pipe_still_exits_1(tmp_path):
    """`archdsl check bad.arch 2>&1 | head -c0` exited 0: the BrokenPipeError of printing the diagnostic was
    taken for a reader that stopped early."""
    bad = tmp_path / "bad.arch"
    bad.write_text("model m(x: float32[B, 8]) -> y {\n    y = x -> linar(3)\n}\n")
    r, w = os.pipe()
    os.close(r)  # nobody will read: the first write fails with EPIPE
    proc = subprocess.run([sys.executable, "-m", "archdsl", "check", str(bad)], stdout=w, stderr=w, check=False)
    os.close(w)
    assert proc.returncode == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["ops"], ["passes"], ["check", MLP], ["summary", MLP, "--json"],
                                  ["build", MLP, "--emit", "ir"]])
def test_output_that_cannot_be_written_is_an_error_not_a_traceback(argv):
    """`archdsl ops > /dev/full` printed a traceback, `check` an internal error (exit 70)."""
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "archdsl", *argv], stdout=full, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == "error: cannot write the output to stdout: No space left on device"

@pytest.mark.parametrize("flags,words", [
    (["--lr", "-1"], "the learning rate must be 0 or more and finite"),
    (["--lr", "nan"], "the learning rate must be 0 or more and finite"),
    (["--betas", "2", "3"], "betas must be in [0, 1)"),
    (["--eps", "-1"], "eps must be >= 0 and finite, got -1"),
    (["--optimizer", "sgd", "--momentum", "-0.5"], "momentum must be >= 0 and finite, got -0.5"),
    (["--weight-decay", "-1"], "weight decay must be >= 0"),
    (["--label-smoothing", "2"], "label smoothing must be in [0, 1]"),
    (["--label-smoothing", "0.1", "--loss", "mse"], "label smoothing applies to the cross_entropy loss only"),
    (["--nesterov"], "nesterov needs the sgd optimizer"),
    (["--optimizer", "adamw", "--momentum", "0.9"], "momentum is an sgd setting"),
    (["--dampening", "0.5"], "dampening is an sgd setting; adamw uses betas"),
    (["--optimizer", "sgd", "--momentum", "0.9", "--dampening", "2"], "dampening must be in [0, 1]"),
    (["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--dampening", "0.1"], "nesterov needs zero dampening"),
    (["--optimizer", "sgd", "--amsgrad"], "amsgrad is an adam/adamw setting"),
    (["--optimizer", "sgd", "--dampening", "0.5"], "dampening damps the momentum buffer: it needs a momentum > 0"),
    (["--clip-grad-value", "0"], "the gradient value to clip to must be positive and finite"),
    # a negative number in any spelling is a value, not an option name ("expected one argument")
    (["--clip-grad-value", "-1e-3"], "the gradient value to clip to must be positive and finite, got -0.001"),
    (["--clip-grad-value", "-inf"], "the gradient value to clip to must be positive and finite, got -inf"),
    (["--clip-grad-value", "-Infinity"], "the gradient value to clip to must be positive and finite, got -inf"),
    (["--lr", "-1E-3"], "the learning rate must be 0 or more and finite, got -0.001"),
    (["--betas", "0.9", "-1e-3"], "betas must be in [0, 1), got [0.9, -0.001]"),
    (["--optimizer", "sgd", "--momentum", "0.9", "--dampening", "-1e0"],
     "in [0, 1] (0, the default, damps nothing), got -1.0"),
    # finite, and inf in the step's float32 constants: trained to NaN, the loss's message blaming --lr (review116)
    (["--weight-decay", "1e300"], "weight decay 1e+300 is inf in float32"),
    (["--optimizer", "sgd", "--momentum", "1e39"], "momentum 1e+39 is inf in float32"),
    (["--disable-pass", "nosuch"], "--disable-pass: unknown pass 'nosuch'"),
])
def test_bad_flag_values_are_usage_errors(tmp_path, capsys, flags, words):
    """Exit 2 as the help promises for usage errors (these were 1, the status of a bad spec), before any work."""
    assert main(["build", MLP, "--train", "-o", str(tmp_path / "t.onnx")] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("archdsl build: error: ") and words in err
    assert not list(tmp_path.iterdir())
    if flags[0] != "--disable-pass":
        assert main(["train", MLP, "--data", str(tmp_path / "none.npz"), "-o", str(tmp_path / "w.npz")] + flags) == 2
        assert words in capsys.readouterr().err
    else:
        for command in (["summary", MLP], ["run", MLP]):
            assert main(command + flags) == 2
            assert words in capsys.readouterr().err


def test_metadata_is_strict_json_for_non_finite_params(tmp_path):
    spec = tmp_path / "m.arch"
    spec.write_text("param big = 1e308 * 10.0\nparam nan = big - big\n"
                    "model m(x: float32[B, 2]) -> y {\n    y = x * 2.0\n}\n")
    out = tmp_path / "m.onnx"
    assert main(["build", str(spec), "-o", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["archdsl.params"], parse_constant=lambda c: pytest.fail(c)) == {"big": "inf",
                                                                                           "nan": "nan"}


def test_ops_markdown_is_the_reference_table(capsys):
    """`archdsl ops --markdown` left '|' unescaped (abs's |x| broke its row), unlike the table it documents."""
    assert main(["ops", "--markdown"]) == 0
    out = capsys.readouterr().out
    ref = (ROOT / "grammar" / "REFERENCE.md").read_text()
    assert out.strip() in ref
    assert all(line.count("|") == 4 for line in out.strip().splitlines()[2:]), "three cells a row"
    assert "`concat([xs, ...], axis=1)`" in out  # a variadic input is one list


def test_calling_getitem_says_to_use_brackets(tmp_path, capsys):
    spec = tmp_path / "g.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = getitem(x, 0)\n}\n")
    assert main(["check", str(spec)]) == 1
    assert "getitem is written with brackets (x[0], x[:, 1:3]), not called" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["build", "check", "summary", "run", "train"])
def test_an_empty_file_argument_is_a_usage_error(command, capsys):
    """`archdsl build ""` said " is a directory, not a .arch file" (exit 1), where -o "" is a usage error."""
    extra = ["--data", "d.npz"] if command == "train" else []
    with pytest.raises(SystemExit) as e:
        main([command, "", *extra])
    assert e.value.code == 2
    assert "the file argument is empty" in capsys.readouterr().err


def test_an_unknown_model_is_a_command_line_error_without_a_caret(tmp_path, capsys):
    """--model generater put its caret under the first model's header, as if the mistake were there."""
    spec = tmp_path / "gan.arch"
    spec.write_text("model generator(z: float32[B, 100]) -> y {\n    y = z\n}\n"
                    "model critic(x: float32[B, 3]) -> y {\n    y = x\n}\n")
    for command in ("check", "build"):
        assert main([command, str(spec), "--model", "generater"]) == 1
        err = capsys.readouterr().err
        assert err == ("error: --model generater: no model 'generater' in gan.arch; did you mean 'generator'? "
                       "(models: generator, critic)\n")
    for command in ("build", "run"):  # none picked: the flag to give, in the CLI's words
        assert main([command, str(spec)]) == 1
        assert "defines several models (generator, critic); pick one with --model NAME (model= in Python)" in \
            capsys.readouterr().err


def test_a_missing_file_named_like_arrays_is_missing(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_a_diagnostic_that_fails_to_render_is_its_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    from archdsl.cli import commands
    spec = tmp_path / "bad.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8, bogus=1)\n}\n")
    monkeypatch.setattr(commands, "render", lambda *a, **k: 1 / 0)
    assert main(["check", str(spec)]) == 1
    assert capsys.readouterr().err.startswith("error: linear() has no argument 'bogus'")


@pytest.mark.parametrize("argv, words", [
    (["train", MLP, "--learning-rate", "0.1"], "unrecognized arguments: --learning-rate 0.1; train spells it --lr"),
    (["train", MLP, "--bs", "8"], "unrecognized arguments: --bs 8; train spells it --batch-size"),
    (["train", MLP, "--batchsize", "8"], "unrecognized arguments: --batchsize 8; did you mean '--batch-size'?"),
    (["build", MLP, "--seeed", "3"], "unrecognized arguments: --seeed 3; did you mean '--seed'?"),
    (["train", MLP, "--resume", "ckpt.npz"],
     "unrecognized arguments: ckpt.npz (--resume takes no value; --checkpoint FILE names the checkpoint it reads)"),
    (["build", MLP, "--train", "--nesterov", "0.9"], "unrecognized arguments: 0.9 (--nesterov takes no value)"),
    (["build", MLP, "extra.arch"], "unrecognized arguments: extra.arch\n"),  # nothing to guess
    (["run", MLP, "--bs", "3"], "unrecognized arguments: --bs 3\n"),  # not '--seed'
    (["--verbose", "check", MLP], "unrecognized arguments: --verbose\n"),  # not '--version'
    (["train", MLP, "--resume", "d.npz"], "unrecognized arguments: d.npz (--resume takes no value"),  # --data d.npz
])
def test_unrecognized_arguments_say_what_they_likely_meant(tmp_path, capsys, argv, words):
    """Another tool's spelling (--learning-rate, --bs), a typo, or a value after a flag that takes none was only
    "unrecognized arguments"."""
    with pytest.raises(SystemExit) as e:
        main([*argv[:2], "--data", "d.npz", *argv[2:]] if argv[0] == "train" else argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("flags", [[], ["--train"]])
def test_build_refuses_an_output_named_as_arrays(tmp_path, capsys, flags):
    """build -o p.npz wrote an ONNX model under that name, which `run` then took for a file of arrays."""
    assert main(["build", MLP, *flags, "-o", str(tmp_path / "p.npz")]) == 2
    assert f"-o {tmp_path / 'p.npz'}: build writes an ONNX model; give the .onnx suffix (train writes the weights " \
           "it trains as .npz)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert main(["build", MLP, "--emit", "ir", "-o", str(tmp_path / "p.txt")]) == 0  # the IR is text
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 784), np.float32))
    assert main(["train", str(tmp_path / "d.npz"), "--data", MLP, "-o", str(tmp_path / "w.npz")]) == 1
    assert "d.npz is a file of arrays (.npz), not a .arch spec: a spec's weights are given with --weights, training " \
           "data with --data" in capsys.readouterr().err


def test_check_and_build_train_print_the_models_counts(work, capsys):
    """tiny: fc1 4 -> 8 (40) and fc2 8 -> 3 (27) in 3 nodes; its train step updates those 67 values (the
    optimizer's moments are state, not counted among them)."""
    spec = str(work / "tiny.arch")
    assert main(["check", spec]) == 0
    assert "params: 67  buffers: 0  nodes: 3" in capsys.readouterr().out
    assert main(["build", spec, "--train", "--optimizer", "adamw", "-o", str(work / "t.onnx")]) == 0
    assert "(train step: 4 parameters, 67 values, 13 state tensors" in capsys.readouterr().out
