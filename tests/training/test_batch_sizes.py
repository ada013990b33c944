"""`archdsl train` and the batch sizes a model takes: BatchNorm given batches of one (refused where it would
be a silent no-op, trained where spatial dims give it values), sized from the data over symbolic dims, a
model with a fixed batch trained in whole batches, and the batches evaluation runs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from archdsl.cli import main

BN = "model net(x: float32[B, 4]) -> y { y = x -> linear(8) as fc -> batchnorm as bn -> linear(3) as head }"


def test_batch_size_one_with_batchnorm_is_refused_not_a_silent_no_op(tmp_path, capsys):
    """Every batch of one was skipped (batch statistics of one example): no step ran, yet the run exited 0."""
    spec = tmp_path / "bn.arch"
    spec.write_text("model bn(x: float32[B, 4]) -> y {\n    y = x -> linear(4) as fc -> batchnorm as bn "
                    "-> linear(3) as out\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 4)).astype(np.float32), labels=rng.integers(0, 3, 8))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--batch-size", "1", "--quiet",
                 "-o", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "--batch-size 1: the model has a BatchNorm that sees one value per channel" in err
    assert "training bn" not in err  # refused before it said it was training
    np.savez(tmp_path / "d9.npz", x=rng.standard_normal((9, 4)).astype(np.float32), labels=rng.integers(0, 3, 9))
    assert main(["train", str(spec), "--data", str(tmp_path / "d9.npz"), "--batch-size", "4", "--epochs", "1",
                 "-o", str(tmp_path / "w.npz")]) == 0
    assert "each epoch leaves out one example, a last batch of one" in " ".join(capsys.readouterr().err.split())


def test_batchnorm_with_spatial_dims_trains_on_batches_of_one(tmp_path, capsys):
    """With spatial dims a batch of one still has several values per channel (torch trains it): the batches
    of one were skipped for any model with BatchNorm. The step's own running statistics show they ran."""
    from archdsl import driver
    from archdsl.autodiff import TrainConfig
    spec = tmp_path / "bn.arch"
    spec.write_text("model bn(x: float32[B, 2, 6]) -> y {\n    y = x -> conv1d(3, 3, padding=1) as c "
                    "-> batchnorm as bn -> flatten -> linear(3) as out\n}\n")
    assert driver.compile_train_file(spec, TrainConfig()).info.min_batch == 1
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((3, 2, 6)).astype(np.float32), labels=rng.integers(0, 3, 3))
    out = tmp_path / "w.npz"
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--batch-size", "1", "--quiet",
                 "--epochs", "1", "-o", str(out)]) == 0
    assert int(np.load(tmp_path / "w.ckpt.npz")["step"]) == 3  # one step per example: none was skipped


@pytest.mark.parametrize("stride", [1, 2])  # L itself, and the formula (L-1)//2+1 a strided conv makes
@pytest.mark.parametrize("length,steps", [(6, 3), (1, None)])
def test_batchnorm_over_symbolic_spatial_dims_is_sized_from_the_data(tmp_path, capsys, stride, length, steps):
    """A symbolic L made every BatchNorm count as 'no spatial dims': --batch-size 1 was refused and the last
    example of an odd split skipped, though torch trains them. The loop now sizes L from the data: at L=6
    batches of one train; at L=1 they would be one value per channel, and are refused as before."""
    spec = tmp_path / "bn.arch"
    spec.write_text(f"model bn(x: float32[B, 2, L]) -> y {{\n    y = x -> conv1d(3, 3, stride={stride}, padding=1) "
                    "as c -> batchnorm as bn -> global_avgpool -> flatten -> linear(3) as out\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((3, 2, length)).astype(np.float32),
             labels=rng.integers(0, 3, 3))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--batch-size", "1", "--quiet", "--epochs", "1",
            "-o", str(tmp_path / "w.npz")]
    if steps is None:
        assert main(argv) == 1
        assert "one value per channel" in capsys.readouterr().err
    else:
        assert main(argv) == 0
        assert int(np.load(tmp_path / "w.ckpt.npz")["step"]) == steps  # one step per example: none skipped


@pytest.mark.parametrize("rows", ["concat([x, x * 2.0], axis=0)", "reshape(x, [-1, 2])"])
def test_batchnorm_over_rows_made_from_the_batch_trains_on_batches_of_one(tmp_path, capsys, rows):
    """SimCLR's two views through one BatchNorm ([2*B, C]) and flattened tokens ([B*2, C]) see 2 values per
    channel at one example: --batch-size 1 was refused, and the last example of an odd split left out, where
    torch trains them (contrastive hunt)."""
    spec = tmp_path / "bn.arch"
    spec.write_text(f"model bn(x: float32[B, 4]) -> loss {{\n    h = {rows} -> batchnorm as bn\n"
                    "    loss = mean(h ** 2)\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((3, 4)).astype(np.float32))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--batch-size", "1", "--quiet",
                 "--epochs", "1", "-o", str(tmp_path / "w.npz")]) == 0, capsys.readouterr().err
    assert int(np.load(tmp_path / "w.ckpt.npz")["step"]) == 3  # one step per example: none was skipped


def test_one_example_for_a_batchnorm_is_a_diagnostic(tmp_path, capsys):
    """The batch of one was skipped, so nothing trained and the run said it succeeded."""
    spec = tmp_path / "bn.arch"
    spec.write_text(BN)
    np.savez(tmp_path / "one.npz", x=np.ones((1, 4), np.float32), labels=np.zeros(1, np.int64))
    assert main(["train", str(spec), "--data", str(tmp_path / "one.npz"), "--quiet",
                 "-o", str(tmp_path / "w.npz")]) == 1
    assert "holds one example; the model has a BatchNorm" in capsys.readouterr().err
    assert not (tmp_path / "w.npz").exists()


def test_a_model_with_a_fixed_batch_trains_in_whole_batches(tmp_path, capsys):
    """`param B = none` and -D B=4 (a batch dim fixed in the model): --batch-size must be 4, a short last batch
    is left out (torch's drop_last) with a note, held-out data too; other batch sizes, and a file smaller than
    one batch, are refused up front (onnxruntime stopped mid-epoch on the short batch). SGD over two epochs is
    torch's loop with drop_last."""
    torch = pytest.importorskip("torch")
    spec = tmp_path / "fixed.arch"
    spec.write_text("param B = none\nmodel m(x: float32[B, 3]) -> y {\n    y = x -> linear(2, bias=false) as fc\n}\n")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((10, 3)).astype(np.float32), rng.standard_normal((10, 2)).astype(np.float32)
    w0 = rng.standard_normal((2, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    np.savez(tmp_path / "w0.npz", **{"fc.weight": w0})
    np.savez(tmp_path / "small.npz", x=x[:3], labels=y[:3])
    argv = ["train", str(spec), "-D", "B=4", "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--optimizer",
            "sgd", "--lr", "0.1", "--epochs", "2", "-o", str(tmp_path / "w.npz"), "--weights", str(tmp_path / "w0.npz")]
    assert main([*argv, "--batch-size", "4", "--val", str(tmp_path / "d.npz")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: the model takes batches of exactly 4: each epoch leaves out the last 2 examples of its shuffled " \
        "order, a short batch (8 of 10 used per epoch)" in err  # other examples each epoch, not the file's last
    assert "d.npz's last 2 examples, a short batch, are left out (8 of 10 used)" in err  # as --val: file order
    lin = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w0))
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    for epoch in (1, 2):
        order = np.random.default_rng([0, epoch]).permutation(10)
        for idx in (order[:4], order[4:8]):
            opt.zero_grad()
            torch.nn.functional.mse_loss(lin(torch.from_numpy(x[idx])), torch.from_numpy(y[idx])).backward()
            opt.step()
    np.testing.assert_allclose(np.load(tmp_path / "w.npz")["fc.weight"], lin.weight.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    assert main([*argv, "--batch-size", "8"]) == 1
    assert "the model takes batches of exactly 4 (its input 'x' has a first dim of 4): give --batch-size 4" \
        in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--batch-size", "4", "--val", str(tmp_path / "small.npz")]) == 1
    assert "small.npz holds 3 examples, fewer than the one batch of 4 the model takes" in capsys.readouterr().err


def test_the_fixed_batch_note_of_an_evaluation_names_the_files_last_examples(tmp_path, capsys):
    """--epochs 0 reads --data in file order: its note said "each epoch leaves out ... of its shuffled order"."""
    spec = tmp_path / "fb.arch"
    spec.write_text("model m(x: float32[4, 3]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((10, 3)).astype(np.float32),
             labels=rng.standard_normal((10, 2)).astype(np.float32))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--batch-size", "4",
                 "--epochs", "0"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "d.npz's last 2 examples, a short batch, are left out (8 of 10 used)" in err and "shuffled" not in err


def test_evaluation_runs_in_batches_of_the_batch_size_or_the_eval_batch_size(tmp_path, capsys):
    """A loss that mixes a batch's examples (here each example against the batch's mean, as a contrastive
    loss does) is another number at another batch size: evaluation ran 256 at a time whatever --batch-size
    said, so val_loss was not the training loss's number (a CLIP: 4.67 against 2.73 at batch 4). It runs
    --batch-size at a time, or --eval-batch-size; the val_loss is the batches' losses weighed by examples."""
    spec = tmp_path / "mix.arch"
    spec.write_text("model m(x: float32[B, 3]) -> loss {\n    s = x -> linear(1, bias=false) as fc\n"
                    "    loss = mean((s - mean(s)) * (s - mean(s)))\n}\n")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    w = rng.standard_normal((1, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    np.savez(tmp_path / "w.npz", **{"fc.weight": w})
    s = (x @ w.T)[:, 0].astype(np.float64)

    def held_out(size):
        parts = [s[i:i + size] for i in range(0, len(s), size)]
        return sum(p.var() * len(p) for p in parts) / len(s)

    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"),
            "--epochs", "0"]
    for flags, size in ((["--batch-size", "4"], 4), (["--batch-size", "4", "--eval-batch-size", "10"], 10),
                        (["--eval-batch-size", "3"], 3)):
        assert main([*argv, *flags]) == 0
        captured = capsys.readouterr()
        got = float(re.search(r"evaluation  loss (\S+)", captured.out + captured.err).group(1))
        assert got == pytest.approx(held_out(size), abs=1e-4), flags
    assert held_out(4) != pytest.approx(held_out(10), abs=1e-3)  # the sizes tell apart
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--eval-batch-size", "8", "--epochs", "1",
                 "-o", str(tmp_path / "o.npz")]) == 2
    assert "--eval-batch-size sizes the evaluation of --val (or of --epochs 0); without either it sets nothing" \
        in capsys.readouterr().err
    assert main([*argv, "--eval-batch-size", "0"]) == 2
    assert "--batch-size and --eval-batch-size at least 1" in capsys.readouterr().err


def test_a_fixed_batch_refuses_another_eval_batch_size(tmp_path, capsys):
    """The model's batch size is its evaluation's too: another --eval-batch-size is a usage error, not a
    failure at the first held-out batch."""
    spec = tmp_path / "fb.arch"
    spec.write_text("model m(x: float32[4, 3]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 3)).astype(np.float32),
             labels=rng.standard_normal((8, 2)).astype(np.float32))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--batch-size", "4",
            "--epochs", "0"]
    assert main([*argv, "--eval-batch-size", "8"]) == 1
    assert "and its evaluation too: --eval-batch-size 8 cannot be" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--eval-batch-size", "4"]) == 0


def test_a_resume_with_patience_says_when_its_eval_batches_differ_from_the_best_epochs(tmp_path, capsys):
    """--patience compares the checkpoint's lowest val_loss with new ones: measured in other batches, a loss that
    mixes a batch's examples "improved" by the batch size alone and -o was replaced, unsaid. The checkpoint
    keeps the size; one from before it was evaluated in batches of at least 256."""
    spec = tmp_path / "mix.arch"
    spec.write_text("model m(x: float32[B, 3]) -> loss {\n    s = x -> linear(1, bias=false) as fc\n"
                    "    loss = mean((s - mean(s)) * (s - mean(s)))\n}\n")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((40, 3)).astype(np.float32))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"), "--patience",
            "1", "--lr", "1e-4", "-o", str(tmp_path / "w.npz")]

    def said() -> str:
        captured = capsys.readouterr()
        return " ".join((captured.out + captured.err).split())
    assert main([*argv, "--epochs", "1", "--eval-batch-size", "10"]) == 0
    assert np.load(tmp_path / "w.ckpt.npz")["__best__"].tolist() == [pytest.approx(
        float(re.search(r"val_loss (\S+)", said()).group(1)), abs=1e-4), 1, 10]
    note = "'s lowest val_loss ({}, epoch {}) was evaluated in batches of {}, this run's are of 2"
    assert main([*argv, "--epochs", "2", "--eval-batch-size", "2", "--resume"]) == 0
    out = said()
    assert "w.ckpt.npz" + note.format(re.search(r"\((\S+), epoch 1\)", out).group(1), 1, 10) in out
    assert main([*argv, "--epochs", "3", "--eval-batch-size", "2", "--resume"]) == 0
    assert "was evaluated in batches of" not in said()  # epoch 2's, in batches of 2
    ckpt = dict(np.load(tmp_path / "w.ckpt.npz"))
    ckpt["__best__"] = ckpt["__best__"][:2]  # as written before the size was kept: at max(--batch-size, 256)
    np.savez(tmp_path / "w.ckpt.npz", **ckpt)
    assert main([*argv, "--epochs", "4", "--eval-batch-size", "2", "--resume"]) == 0
    assert "was evaluated in batches of 256, this run's are of 2" in said()
    ckpt = dict(np.load(tmp_path / "w.ckpt.npz"))
    ckpt["__best__"] = ckpt["__best__"][:2]
    np.savez(tmp_path / "w.ckpt.npz", **ckpt)
    assert main([*argv, "--epochs", "4", "--eval-batch-size", "2", "--resume"]) == 0  # nothing left to evaluate
    assert main([*argv, "--epochs", "5", "--eval-batch-size", "64", "--resume"]) == 0  # 40 examples: one batch
    assert "was evaluated in batches of" not in said()  # either way
