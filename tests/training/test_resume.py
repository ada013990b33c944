"""`archdsl train --resume` from the command line: what a checkpoint carries into the resumed run (the lr it
takes, its seed, the settings it refuses to mix) and what is not a checkpoint; the resumed run's schedule is
in test_train_options.py, its files with the digits data in test_loop.py."""

from __future__ import annotations

import numpy as np

from archdsl.cli import main

from .harness import linear_run


def test_resume_takes_the_new_lr_and_keeps_runs_apart(tmp_path, capsys):
    """A resumed constant-schedule run kept the checkpoint's lr; `-o run.a.npz` and `-o run.b.npz` shared one
    checkpoint (run.ckpt.npz), so resuming run.a continued run.b."""
    spec = tmp_path / "t.arch"
    spec.write_text("model t(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((16, 4)).astype(np.float32), labels=rng.integers(0, 3, 16))
    base = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--optimizer", "sgd", "--quiet"]
    a, b = str(tmp_path / "run.a.npz"), str(tmp_path / "run.b.npz")
    assert main(base + ["--lr", "0.1", "--epochs", "1", "-o", a]) == 0
    assert main(base + ["--lr", "0.1", "--epochs", "1", "-o", b, "--seed", "5"]) == 0
    assert (tmp_path / "run.a.ckpt.npz").exists() and (tmp_path / "run.b.ckpt.npz").exists()
    after_one = dict(np.load(a))
    assert main(base + ["--lr", "1e-30", "--epochs", "2", "-o", a, "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err
    for k, v in np.load(a).items():
        np.testing.assert_array_equal(v, after_one[k])  # lr 1e-30 moves nothing


def test_resume_names_a_setting_the_new_run_leaves_out(tmp_path, capsys):
    """Resuming without --label-smoothing said 'made with other settings ()': a key only the checkpoint had
    was never listed."""
    base = linear_run(tmp_path) + ["--quiet"]
    assert main(base + ["--epochs", "1", "--label-smoothing", "0.1"]) == 0
    assert main(base + ["--epochs", "2", "--resume"]) == 1
    assert "made with other settings (label_smoothing 0.1 there, not given here)" in capsys.readouterr().err


def test_resume_with_no_epochs_left_writes_the_checkpoint_without_claiming_to_train(tmp_path, capsys):
    """It said 'leaves nothing to train', then 'training t on ...' as if it did."""
    out = tmp_path / "w.npz"
    base = linear_run(tmp_path)
    assert main(base + ["--epochs", "2", "--quiet"]) == 0
    trained = dict(np.load(out))
    out.unlink()
    capsys.readouterr()
    assert main(base + ["--epochs", "1", "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich wraps its lines
    assert "leaves nothing to train: the checkpoint's weights are the output" in err and "training t" not in err
    for k, v in np.load(out).items():
        np.testing.assert_array_equal(v, trained[k])


def test_resume_with_another_seed_is_refused(tmp_path, capsys):
    """Shuffling follows --seed and dropout the checkpoint's: a resumed run with another --seed was neither run."""
    base = linear_run(tmp_path, n=8) + ["--quiet"]
    assert main(base + ["--epochs", "1", "--seed", "3"]) == 0
    assert main(base + ["--epochs", "2", "--resume", "--seed", "4"]) == 1
    assert "was trained with --seed 3; resume with the same seed (got 4)" in capsys.readouterr().err
    assert main(base + ["--epochs", "2", "--resume", "--seed", "3"]) == 0


def test_a_negative_checkpoint_epoch_is_not_a_checkpoint(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text("model net(x: float32[B, 4]) -> y { y = x -> linear(3) as fc }")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
    assert main(args + ["--epochs", "1"]) == 0
    ckpt = tmp_path / "w.ckpt.npz"
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__epoch__"] = np.array(-5)
    np.savez(ckpt, **arrays)
    capsys.readouterr()
    assert main(args + ["--epochs", "2", "--resume"]) == 1  # an internal error (exit 70) before
    assert "is not a checkpoint of `archdsl train` (its bookkeeping does not read: __epoch__ is -5)" in \
        capsys.readouterr().err


def _patience_scene(folder) -> list[str]:
    """p.arch, d.npz and v.npz in `folder` (a run with --patience 3 stops at epoch 7, its best at 4); the train
    command's arguments up to -o."""
    (folder / "p.arch").write_text("model p(x: float32[B, 6]) -> logits {\n"
                                   "    logits = x -> linear(16) as fc1 -> tanh -> linear(4) as fc2\n}\n")
    rng = np.random.default_rng(0)
    np.savez(folder / "d.npz", x=rng.normal(size=(100, 6)).astype("f4"), labels=rng.integers(0, 4, 100))
    np.savez(folder / "v.npz", x=rng.normal(size=(37, 6)).astype("f4"), labels=rng.integers(0, 4, 37))
    return ["train", str(folder / "p.arch"), "--data", str(folder / "d.npz"), "--val", str(folder / "v.npz"),
            "--lr", "0.05", "--quiet"]


def test_a_resumed_patience_run_writes_the_best_weights_where_it_says(tmp_path, capsys):
    """--patience's best epoch came before the resumed run: 'wrote OUT' was printed, nothing written to another
    -o. Now kept where -o is the file the first run wrote, copied (in -o's format) to another, and refused
    where that file is gone."""
    from archdsl.lower import load_weights
    base = _patience_scene(tmp_path)
    first, ckpt = tmp_path / "pat.npz", tmp_path / "pat.ckpt.npz"
    assert main(base + ["--epochs", "30", "--patience", "3", "-o", str(first)]) == 0
    out = capsys.readouterr()
    assert "stopping: val_loss has not improved" in out.out + out.err  # the data stops it early, at epoch 7 (best: 4)
    best = load_weights(first)
    resume = base + ["--epochs", "12", "--patience", "10", "--checkpoint", str(ckpt), "--resume"]
    other = tmp_path / "other.safetensors"
    assert main(resume + ["-o", str(other)]) == 0
    out = capsys.readouterr()
    assert f"a copy of {first}" in out.out + out.err
    got = load_weights(other)
    assert all(np.array_equal(got[k], best[k]) for k in best)
    assert main(resume + ["-o", str(first)]) == 0
    out = capsys.readouterr()
    assert "kept" in out.out + out.err and all(np.array_equal(load_weights(first)[k], best[k]) for k in best)
    first.unlink()
    assert main(resume + ["-o", str(tmp_path / "x.npz")]) == 1
    assert "which is gone; nothing is written" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_a_resumed_patience_run_in_a_copied_folder_takes_its_own_best_weights(tmp_path, capsys):
    """The checkpoint kept the best weights' absolute path: a copy of the experiment folder resumed from the
    original folder's file (another run's weights by then, said to be epoch N's), and a moved folder failed.
    The path is now from the checkpoint's folder, and the file must still be what the run wrote (its sha256)."""
    import shutil

    from archdsl.lower import load_weights
    a = tmp_path / "a"
    a.mkdir()
    _patience_scene(a)

    def run(folder, *extra):
        return main(["train", str(folder / "p.arch"), "--data", str(folder / "d.npz"), "--val", str(folder / "v.npz"),
                     "--lr", "0.05", "--quiet", "-o", str(folder / "w.npz"), "--checkpoint", str(folder / "c.npz"),
                     *extra])
    assert run(a, "--epochs", "30", "--patience", "3") == 0  # stops at epoch 7, its best at 4
    best = load_weights(a / "w.npz")
    shutil.copytree(a, tmp_path / "b")
    np.savez(a / "w.npz", **{k: v + 1 for k, v in best.items()})  # the first folder's file is another's now
    capsys.readouterr()
    assert run(tmp_path / "b", "--epochs", "12", "--patience", "10", "--resume") == 0
    assert "kept" in capsys.readouterr().err
    got = load_weights(tmp_path / "b" / "w.npz")
    assert all(np.array_equal(got[k], best[k]) for k in best)
    np.savez(tmp_path / "b" / "w.npz", **{k: v + 1 for k, v in best.items()})
    assert run(tmp_path / "b", "--epochs", "12", "--patience", "10", "--resume") == 1
    assert "w.npz, which holds other weights now; nothing is written" in capsys.readouterr().err


def test_an_older_checkpoint_without_a_digest_takes_the_file_it_names(tmp_path, capsys):
    """A checkpoint from before the sha256 (an absolute __best_output__, no __best_sha256__) had any existing -o
    kept as the best epoch's weights, where the file it names is copied (review33)."""
    from archdsl.lower import load_weights
    base = _patience_scene(tmp_path) + ["--checkpoint", str(tmp_path / "c.npz")]
    assert main(base + ["--epochs", "30", "--patience", "3", "-o", str(tmp_path / "best.npz")]) == 0
    best = load_weights(tmp_path / "best.npz")
    arrays = dict(np.load(tmp_path / "c.npz"))
    arrays["__best_output__"] = np.array(str(tmp_path / "best.npz"))
    del arrays["__best_sha256__"]
    np.savez(tmp_path / "c.npz", **arrays)
    other = tmp_path / "other.npz"
    np.savez(other, **{k: v + 1 for k, v in best.items()})
    capsys.readouterr()
    assert main(base + ["--epochs", "12", "--patience", "10", "--resume", "-o", str(other)]) == 0
    assert f"a copy of {tmp_path / 'best.npz'}" in capsys.readouterr().err
    assert all(np.array_equal(load_weights(other)[k], best[k]) for k in best)


def test_a_checkpoint_that_names_no_best_file_and_no_output_yet(tmp_path, capsys):
    """A checkpoint from before the best weights' file was recorded, resumed into an -o that does not exist:
    an internal error (None.is_file()) where the message says where that run wrote them (review34)."""
    base = _patience_scene(tmp_path) + ["--checkpoint", str(tmp_path / "c.npz")]
    assert main(base + ["--epochs", "30", "--patience", "3", "-o", str(tmp_path / "best.npz")]) == 0
    arrays = dict(np.load(tmp_path / "c.npz"))
    del arrays["__best_output__"], arrays["__best_sha256__"]
    np.savez(tmp_path / "c.npz", **arrays)
    capsys.readouterr()
    assert main(base + ["--epochs", "12", "--patience", "10", "--resume", "-o", str(tmp_path / "new.npz")]) == 1
    assert "the run resumed wrote them to its -o; nothing is written to" in capsys.readouterr().err


def test_a_checkpoint_with_a_digest_and_no_file(tmp_path, capsys):
    """-o moved away after its best epoch: later checkpoints kept the digest and dropped the path, and the resume
    was an internal error (None.is_file()); the path is decided with the digest now, and a checkpoint with a
    digest alone is said as one naming no file (review35)."""
    base = _patience_scene(tmp_path) + ["--checkpoint", str(tmp_path / "c.npz")]
    assert main(base + ["--epochs", "30", "--patience", "3", "-o", str(tmp_path / "best.npz")]) == 0
    arrays = dict(np.load(tmp_path / "c.npz"))
    assert "__best_output__" in arrays and "__best_sha256__" in arrays
    del arrays["__best_output__"]
    np.savez(tmp_path / "c.npz", **arrays)
    capsys.readouterr()
    assert main(base + ["--epochs", "12", "--patience", "10", "--resume", "-o", str(tmp_path / "new.npz")]) == 1
    assert "nothing is written to" in capsys.readouterr().err


def test_patience_with_a_checkpoint_writes_to_stdout(tmp_path):
    """The best weights' digest read -o back: -o /dev/stdout (a pipe, a terminal) waited for ever."""
    import subprocess
    import sys
    spec = tmp_path / "p.arch"
    spec.write_text("model p(x: float32[B, 6]) -> logits {\n    logits = x -> linear(4) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 6)).astype("f4"), labels=rng.integers(0, 4, 40))
    r = subprocess.run([sys.executable, "-m", "archdsl", "train", str(spec), "--data", str(tmp_path / "d.npz"),
                        "--val", str(tmp_path / "d.npz"), "--epochs", "2", "--patience", "2", "--quiet",
                        "--checkpoint", str(tmp_path / "c.npz"), "-o", "/dev/stdout"],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout.startswith(b"PK"), r.stderr  # the weights' .npz went down the pipe
    assert "__best_output__" not in np.load(tmp_path / "c.npz")  # a /proc pipe's path was recorded


def _edited_checkpoint(tmp_path, edit) -> None:
    ckpt = tmp_path / "w.ckpt.npz"
    arrays = dict(np.load(ckpt))
    edit(arrays)
    with open(ckpt, "wb") as f:
        np.savez(f, **arrays)


def test_resume_refuses_a_checkpoint_missing_a_parameter_or_holding_another(tmp_path, capsys):
    """A checkpoint without fc.weight resumed it from its random init, and a name the model lacks was
    ignored, both silently: --weights is strict, as torch's load_state_dict."""
    base = linear_run(tmp_path) + ["--quiet"]
    assert main(base + ["--epochs", "1"]) == 0
    _edited_checkpoint(tmp_path, lambda a: a.pop("fc.weight"))
    assert main(base + ["--epochs", "2", "--resume"]) == 1
    assert "lacks 'fc.weight', which the train step keeps" in capsys.readouterr().err
    assert main(base + ["--epochs", "1"]) == 0
    _edited_checkpoint(tmp_path, lambda a: a.update({"fc2.weight": np.zeros(3, np.float32)}))
    assert main(base + ["--epochs", "2", "--resume"]) == 1
    assert "holds 'fc2.weight', which the train step does not have" in capsys.readouterr().err


def test_resume_refuses_a_negative_epoch_or_a_parameter_of_another_dtype(tmp_path, capsys):
    """__epoch__ -1 trained an "epoch 0/2"; a float64 fc.weight reached onnxruntime, whose error named the data."""
    base = linear_run(tmp_path) + ["--quiet"]
    for edit, said in ((lambda a: a.update({"__epoch__": np.array(-1)}), "__epoch__ is -1"),
                       (lambda a: a.update({"fc.weight": a["fc.weight"].astype(np.float64)}),
                        "holds 'fc.weight' as float64, the model takes float32")):
        assert main(base + ["--epochs", "1"]) == 0
        _edited_checkpoint(tmp_path, edit)
        assert main(base + ["--epochs", "2", "--resume"]) == 1
        assert said in capsys.readouterr().err


def test_resume_reads_a_big_endian_checkpoint(tmp_path, capsys):
    """A checkpoint of '>f4' arrays was refused as 'float32, the model takes float32'."""
    base = linear_run(tmp_path) + ["--quiet"]
    assert main(base + ["--epochs", "1"]) == 0
    native = (tmp_path / "w.ckpt.npz").read_bytes()
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    want = dict(np.load(tmp_path / "w.npz"))
    (tmp_path / "w.ckpt.npz").write_bytes(native)
    _edited_checkpoint(tmp_path, lambda a: a.update({k: v.astype(v.dtype.newbyteorder(">"))
                                                     for k, v in a.items() if v.dtype.kind == "f" and v.ndim}))
    assert main(base + ["--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    for k, v in np.load(tmp_path / "w.npz").items():
        np.testing.assert_array_equal(v, want[k])


def test_resume_from_a_pipe_is_refused_not_waited_on(tmp_path, capsys):
    """--resume --checkpoint FIFO waited for a writer forever (--weights and --data refused a pipe already)."""
    import os
    base = linear_run(tmp_path) + ["--quiet"]
    os.mkfifo(tmp_path / "pipe.npz")
    assert main(base + ["--epochs", "1", "--resume", "--checkpoint", str(tmp_path / "pipe.npz")]) == 1
    assert "not a regular file (a pipe or a device)" in capsys.readouterr().err


def test_patience_into_stdout_redirected_to_a_file(tmp_path):
    """-o /dev/stdout > w.npz: the first write replaced w.npz, /dev/stdout then led to "w.npz (deleted)", and the
    best epoch's weights went to a new file of that name while w.npz kept epoch 1's (review35)."""
    import subprocess
    import sys

    from archdsl.lower import load_weights
    base = _patience_scene(tmp_path)
    assert main(base + ["--epochs", "7", "-o", str(tmp_path / "ref.npz"), "--patience", "3",
                        "--checkpoint", str(tmp_path / "r.npz")]) == 0
    with open(tmp_path / "w.npz", "wb") as f:
        r = subprocess.run([sys.executable, "-m", "archdsl", *base, "--epochs", "7", "--patience", "3",
                            "--checkpoint", str(tmp_path / "c.npz"), "-o", "/dev/stdout"], stdout=f,
                           stderr=subprocess.PIPE, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert not [p for p in tmp_path.iterdir() if "deleted" in p.name]
    got, want = load_weights(tmp_path / "w.npz"), load_weights(tmp_path / "ref.npz")
    assert all(np.array_equal(got[k], want[k]) for k in want)  # the best epoch's (4), as -o ref.npz wrote


def test_a_resume_without_patience_forgets_the_lowest_so_a_later_patience_run_starts_afresh(tmp_path, capsys):
    """As README says: the epochs trained without --patience were not watched, so a later --patience resume
    neither stops at once on the old count nor copies the old best weights; it counts from where it starts."""
    base = _patience_scene(tmp_path) + ["--checkpoint", str(tmp_path / "c.npz"), "-o", str(tmp_path / "w.npz")]
    assert main(base + ["--epochs", "30", "--patience", "3"]) == 0  # stops at epoch 7, its best at 4
    assert "__best__" in np.load(tmp_path / "c.npz").files
    assert main(base + ["--epochs", "9", "--resume"]) == 0
    assert "__best__" not in np.load(tmp_path / "c.npz").files
    capsys.readouterr()
    assert main(base + ["--epochs", "10", "--patience", "3", "--resume"]) == 0
    out = " ".join((lambda o: o.out + o.err)(capsys.readouterr()).split())
    assert "stopping" not in out and "the weights of epoch 10" in out, out


def _act_scene(folder) -> list[str]:
    """a.arch (model net, -D act picks relu or tanh; model other, the same layers), d.npz: the train command's
    arguments up to -o."""
    (folder / "a.arch").write_text(
        'param act = "relu"\nmodel net(x: float32[B, 8]) -> y {\n    h = x -> linear(16) as fc1\n'
        '    if act == "relu" { h = relu(h) } else { h = tanh(h) }\n    y = h -> linear(3) as fc2\n}\n'
        "model other(x: float32[B, 8]) -> y {\n    y = x -> linear(16) as fc1 -> relu -> linear(3) as fc2\n}\n")
    rng = np.random.default_rng(0)
    np.savez(folder / "d.npz", x=rng.standard_normal((20, 8)).astype(np.float32), labels=rng.integers(0, 3, 20))
    return ["train", str(folder / "a.arch"), "--data", str(folder / "d.npz"), "--batch-size", "8", "--quiet",
            "-o", str(folder / "w.npz")]


def test_resume_refuses_a_checkpoint_of_another_train_step(tmp_path, capsys):
    """Names and shapes were all a resume compared: a relu network's checkpoint continued as a tanh one
    (-D act=tanh), and one model's as another's of the same file (--model)."""
    base = _act_scene(tmp_path)
    assert main(base + ["--epochs", "1", "--model", "net"]) == 0
    capsys.readouterr()
    assert main(base + ["--epochs", "2", "--model", "net", "-D", "act=tanh", "--resume"]) == 1
    assert 'made by another train step (-D act="relu" there, "tanh" here)' in capsys.readouterr().err
    assert main(base + ["--epochs", "2", "--model", "other", "--resume"]) == 1
    assert 'made by another train step (model "net" there, "other" here' in capsys.readouterr().err
    assert main(base + ["--epochs", "2", "--model", "net", "--no-decay", "fc1", "--resume"]) == 1
    assert 'another train step (no_decay not given there, ["fc1"] here)' in capsys.readouterr().err
    spec = tmp_path / "a.arch"  # an edit that computes the same: comments, lines moved, -D giving the default
    spec.write_text("# ReLU or tanh\n\n" + spec.read_text())
    assert main(base + ["--epochs", "2", "--model", "net", "-D", "act=relu", "--resume"]) == 0
    capsys.readouterr()
    spec.write_text(spec.read_text().replace('param act = "relu"\n', 'param act = "relu"\nparam scale = 2.0\n')
                    .replace("y = h -> linear(3) as fc2", "y = h * scale -> linear(3) as fc2"))
    assert main(base + ["--epochs", "3", "--model", "net", "--resume"]) == 1  # said as the spec's, not a -D
    assert "another train step (param scale new in the spec (= 2.0))" in capsys.readouterr().err
    spec.write_text(spec.read_text().replace("param scale = 2.0\n", "").replace("h * scale", "h * 2.0"))
    assert main(base + ["--epochs", "1", "--model", "net"]) == 0
    spec.write_text(spec.read_text().replace("h * 2.0", "h * 3.0"))  # a literal alone: no param, no -D says it
    assert main(base + ["--epochs", "2", "--model", "net", "--resume"]) == 1
    assert "was made by another train step (the spec computes otherwise since)" in capsys.readouterr().err


def test_resume_compares_what_freeze_and_no_decay_patterns_select(tmp_path, capsys):
    """--freeze fc1 and --freeze 'fc1.*' (or --no-decay fc1 --no-decay fc2 in either order) are the same run;
    the resume compared the patterns as written and refused it."""
    base = _act_scene(tmp_path) + ["--model", "net"]
    assert main(base + ["--epochs", "1", "--freeze", "fc1", "--no-decay", "fc1", "--no-decay", "fc2"]) == 0
    assert main(base + ["--epochs", "2", "--freeze", "fc1.*", "--no-decay", "fc2", "--no-decay", "fc1",
                        "--resume"]) == 0
    capsys.readouterr()
    assert main(base + ["--epochs", "3", "--freeze", "fc1.*", "--no-decay", "fc2", "--resume"]) == 0  # frozen:
    capsys.readouterr()                                                                   # no decay to take
    assert main(base + ["--epochs", "4", "--freeze", "fc1", "--no-decay", "fc1", "--resume"]) == 1
    err = capsys.readouterr().err  # --freeze written otherwise, the same parameters: not said (lora hunt)
    assert 'another train step (no_decay ["fc2"] there, ["fc1"] here)' in err and "freeze" not in err, err
    assert main(base + ["--epochs", "4", "--freeze", "fc2", "--no-decay", "fc2", "--resume"]) == 1  # said as
    err = " ".join(capsys.readouterr().err.split())  # the --freeze it is, not as the loss, optimizer and model
    assert ("trained other parameters (fc2.bias, fc2.weight trained there, frozen here; fc1.bias, fc1.weight "
            "trained here, frozen there); resume with the same --freeze") in err, err


def test_a_refused_resume_names_no_pattern_that_selects_what_it_did(tmp_path, capsys):
    """-D act=tanh is the difference; --no-decay fc2 against the checkpoint's 'fc2.*' (the same parameters) was
    named as one too (review64)."""
    base = _act_scene(tmp_path) + ["--model", "net"]
    assert main(base + ["--epochs", "1", "--no-decay", "fc2.*"]) == 0
    capsys.readouterr()
    assert main(base + ["--epochs", "2", "--no-decay", "fc2", "-D", "act=tanh", "--resume"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "another train step (-D act=\"relu\" there, \"tanh\" here)" in err and "no_decay" not in err, err


def test_a_checkpoint_whose_undecayed_names_do_not_read_is_no_internal_error(tmp_path, capsys):
    """__step__'s undecayed of 5 (a hand-edited file) was iterated: an internal error (review66)."""
    import json
    base = _act_scene(tmp_path) + ["--model", "net"]
    assert main(base + ["--epochs", "1"]) == 0
    ckpt = tmp_path / "w.ckpt.npz"
    with np.load(ckpt) as z:
        arrays = dict(z)
    arrays["__step__"] = np.array(json.dumps({**json.loads(str(arrays["__step__"])), "undecayed": 5}))
    np.savez(ckpt, **arrays)
    capsys.readouterr()
    assert main(base + ["--epochs", "2", "-D", "act=tanh", "--resume"]) == 1
    assert "another train step (-D act=\"relu\" there" in capsys.readouterr().err


def test_resume_says_a_spec_that_froze_a_parameter_as_the_specs(tmp_path, capsys):
    """A spec edited to make a parameter trainable=false was said as "resume with the same --freeze", where
    no run gave --freeze (review51)."""
    spec = tmp_path / "s.arch"
    spec.write_text('model net(x: float32[B, 4]) -> y {\n    s = parameter([4], init="ones", trainable=true) as scale\n'
                    "    y = x * s -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 4)).astype(np.float32), labels=rng.integers(0, 3, 8))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
    assert main([*argv, "--epochs", "1"]) == 0
    spec.write_text(spec.read_text().replace("trainable=true", "trainable=false"))
    capsys.readouterr()
    assert main([*argv, "--epochs", "2", "--resume"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("trained other parameters (scale trained there, frozen here); resume with the same spec (which of its "
            "parameters are trainable changed)") in err, err
    spec.write_text(spec.read_text().replace("trainable=false", "trainable=tr").replace("model", "param tr = true\n"
                                                                                         "model", 1))
    assert main([*argv, "--epochs", "1"]) == 0  # a -D that freezes it is said as the -D (review52)
    capsys.readouterr()
    assert main([*argv, "--epochs", "2", "--resume", "-D", "tr=false"]) == 1
    assert "resume with the same spec and -D values (-D tr=true there, false here)" in \
        " ".join(capsys.readouterr().err.split())


def test_a_train_steps_identity_is_the_same_at_any_opset_and_level(tmp_path):
    """The digest hashed the lowered ONNX, so a checkpoint made under another onnxruntime (another newest opset,
    another Attention kernel) was refused as 'the spec computes otherwise since' (review47)."""
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    from archdsl.training.identity import step_identity
    spec = tmp_path / "r.arch"
    spec.write_text("model r(x: float32[B, T, 8]) -> y {\n    h = x -> rms_norm(8) as norm\n"
                    "    y = scaled_dot_product_attention(h, h, h, is_causal=true) -> mean(1) -> linear(3) as fc\n}\n")
    cfg = TrainConfig(optimizer=OptimConfig("adamw"), no_decay=("*.bias",))
    ids = {(opset, level): step_identity(driver.compile_train_file(spec, cfg, opset=opset, opt_level=level))
           for opset in (17, 22, 24) for level in (0, 2)}
    assert len({i["sha256"] for i in ids.values()}) == 1
    other = TrainConfig(optimizer=OptimConfig("adamw"), no_decay=("fc.weight",))  # another parameter undecayed
    assert step_identity(driver.compile_train_file(spec, other))["sha256"] != ids[(24, 2)]["sha256"]


def test_a_damaged_step_record_is_not_a_checkpoint(tmp_path, capsys):
    """A __step__ whose params were not a record was an internal error (review47)."""
    base = _act_scene(tmp_path) + ["--model", "net"]
    assert main(base + ["--epochs", "1"]) == 0
    ckpt = tmp_path / "w.ckpt.npz"
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    for bad in ('{"sha256": "abc", "model": "net", "params": [1]}', '"abc"'):
        np.savez(ckpt, **{**arrays, "__step__": np.array(bad)})
        capsys.readouterr()
        assert main(base + ["--epochs", "2", "--resume"]) == 1
        assert "is not a checkpoint of `archdsl train` (its bookkeeping does not read: __step__ is not a train " \
               "step's digest)" in capsys.readouterr().err
    # a digest made another way (no scheme: an archdsl before this one's) is compared by the settings alone
    np.savez(ckpt, **{**arrays, "__step__": np.array('{"sha256": "abc", "model": "net", "params": {}}')})
    assert main(base + ["--epochs", "2", "--resume"]) == 0


def test_resume_names_a_shadowed_imported_param_by_its_file(tmp_path, capsys):
    """An imported file's param that the spec shadows is recorded as PATH:NAME, which no -D sets: the refusal
    said '-D sub.arch:depth=3 there, 5 here' (review88)."""
    (tmp_path / "sub.arch").write_text("param depth = 3\nblock sb(x) { return x -> linear(depth) -> relu }\n")
    (tmp_path / "top.arch").write_text('import "sub.arch"\nparam depth = 3\n'
                                       "model tiny(x: float32[B, 4]) -> logits { logits = x -> sb -> linear(depth) }\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 4)).astype(np.float32), labels=rng.integers(0, 3, 8))
    base = ["train", str(tmp_path / "top.arch"), "--data", str(tmp_path / "d.npz"), "--quiet", "-o",
            str(tmp_path / "w.npz")]
    assert main(base + ["--epochs", "1"]) == 0
    capsys.readouterr()
    (tmp_path / "sub.arch").write_text("param depth = 5\nblock sb(x) { return x -> linear(depth) -> relu }\n")
    assert main(base + ["--epochs", "2", "--resume"]) == 1
    assert "(param depth of sub.arch 3 there, 5 here)" in capsys.readouterr().err
