"""An input without the batch as its first dim cannot be cut into batches of examples: a scalar crashed
(len() of a 0-d array), and m: float32[6] beside x: float32[B, 6] was cut and shuffled as if its 6 rows were
examples (with --batch-size 6, as the message advised)."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main


@pytest.mark.parametrize("decl, value, shown", [("s: float32[]", np.float32(2), "is a scalar ([])"),
                                                ("m: float32[6]", np.ones(6, np.float32), "is declared [6]")])
def test_an_input_without_the_batch_is_refused(tmp_path, capsys, decl, value, shown):
    name = decl.split(":")[0]
    spec = tmp_path / "u.arch"
    spec.write_text(f"model u(x: float32[B, 6], {decl}) -> logits {{\n"
                    f"    logits = (x * {name}) -> linear(4) as fc\n}}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((6, 6)).astype(np.float32), labels=rng.integers(0, 4, 6),
             **{name: value})
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--epochs", "1"]
    assert main(args + ["--batch-size", "6"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"the model's input '{name}' {shown}, without the batch (B) as its first dim" in err, err
    assert not (tmp_path / "w.npz").exists()


def test_a_fixed_batch_model_still_trains(tmp_path, capsys):
    spec = tmp_path / "f.arch"
    spec.write_text("model f(x: float32[4, 6], y: float32[4, 2]) -> logits {\n"
                    "    logits = concat([x, y], axis=1) -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 6)).astype(np.float32),
             y=rng.standard_normal((8, 2)).astype(np.float32), labels=rng.integers(0, 3, 8))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"),
                 "--epochs", "1", "--batch-size", "4", "--quiet"]) == 0


@pytest.mark.parametrize("decl, body", [
    ("x: float32[8, B, 6]", "(x -> gru(4, batch_first=false) as rnn)[-1] -> linear(3) as fc"),
    ("x: float32[T, B, 6]", "mean(x, 0) -> linear(3) as fc")])
def test_time_major_data_says_to_put_the_batch_first(tmp_path, capsys, decl, body):
    """[8, B, 6] was told to become [B, 8, B, 6]; [T, B, 6] beside labels [B] was cut along T ("'labels' has
    30 examples, 'x' has 8")."""
    spec = tmp_path / "t.arch"
    spec.write_text(f"model t({decl}) -> logits {{\n    logits = {body}\n}}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 30, 6)).astype(np.float32), labels=rng.integers(0, 3, 30))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"the model's input 'x' is declared [{decl.split('[')[1]}, with the batch (B) on dim 1: training cuts " \
           "every input into batches of examples along its first dim; declare it batch first ([B, ...], the data " \
           "stored so) and permute it in the spec where a layer wants another order (lstm and gru take " \
           "batch_first=false)" in err, err
    assert not (tmp_path / "w.npz").exists()


def test_a_batch_first_input_beside_an_unbatched_one_is_not_called_time_major(tmp_path, capsys):
    """x [B, T, 8] beside mask [T, T] (labels [B, T, 3]) was said to have "the batch (T) on dim 1"."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, T, 8], mask: float32[T, T]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 6, 8), np.float32), mask=np.zeros((6, 6), np.float32),
             labels=np.zeros((4, 6, 3), np.float32))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse",
                 "-o", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "'mask' has 6 examples, 'x' has 4" in err and "on dim 1" not in err, err


def test_labels_shaped_by_an_output_that_lost_the_batch_say_so(tmp_path, capsys):
    """A reshape that fixes every size ([B, 16, 16] into [32, 256]) gives the output, and so --loss's labels,
    no batch: the refusal said "the model's input 'labels' is declared [32] ... [B, 32] in the spec", an input
    the spec never declared (lint2)."""
    spec = tmp_path / "f.arch"
    spec.write_text("model m(x: float32[B, 16, 16]) -> y {\n    y = x -> reshape([32, 256]) -> linear(10) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 16, 16)).astype(np.float32),
             labels=rng.integers(0, 10, 64))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--batch-size", "32", "--epochs", "1",
                 "-o", str(tmp_path / "w.npz")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the labels are [32], the shape of the output the loss reads, without the batch (B)" in err, err
    assert "in the spec" not in err
    spec.write_text("model m(x: float32[B, 8], labels: float32[8]) -> loss {\n"  # the spec's own `labels` input,
                    "    loss = mean(((x -> linear(8) as fc) - labels) ** 2)\n}\n")  # said as any input (review56)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 8)).astype(np.float32),
             labels=rng.standard_normal(8).astype(np.float32))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1",
                 "-o", str(tmp_path / "w.npz")]) == 1
    assert "the model's input 'labels' is declared [8], without the batch (B)" in " ".join(
        capsys.readouterr().err.split())


def _trained(tmp_path, spec: str, x: np.ndarray, labels_shape: tuple, *flags) -> int:
    """`archdsl train SPEC` with --loss mse on x and random labels of that shape."""
    (tmp_path / "t.arch").write_text(spec)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=x, labels=rng.standard_normal(labels_shape).astype(np.float32))
    return main(["train", str(tmp_path / "t.arch"), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--epochs",
                 "1", "-o", str(tmp_path / "w.npz"), *flags])


@pytest.mark.parametrize("batch, time", [("B", "T"), ("bsz", "S")])
def test_labels_shaped_by_a_time_major_output_blame_the_output(tmp_path, capsys, batch, time):
    """An output transposed to [T, B, C] made its labels' T the batch, and the refusal told the user to
    declare the batch-first input x [B, T, 8] "batch first ([T, ...])" (review56; a batch named bsz beside S:
    review58)."""
    spec = f"model m(x: float32[{batch}, {time}, 8]) -> y {{\n    y = x -> linear(4) as fc -> transpose(0, 1)\n}}\n"
    assert _trained(tmp_path, spec, np.ones((6, 5, 8), np.float32), (5, 6, 4)) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"the labels are [{time}, {batch}, 4], the shape of the output the loss reads, with the batch " \
        f"({batch}) on dim 1" in err, err
    assert "the model's input 'x'" not in err and not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize("decl, body, labels, shown", [
    ("x: float32[S, bsz, 8]", "x -> linear(4) as fc -> permute([1, 0, 2])", (6, 10, 4),
     "[S, bsz, 8], with the batch (bsz)"),
    ("x: float32[T, B, 8]", "x -> linear(4) as fc", (10, 6, 4), "[T, B, 8], with the batch (B)"),  # both
    ("x: float32[10, B, 8]", "x -> lstm(hidden_size=4, batch_first=false) as rnn", (10, 6, 4),  # time-major
     "[10, B, 8], with the batch (B)"),
])
def test_a_time_major_input_is_said_whatever_the_output(tmp_path, capsys, decl, body, labels, shown):
    """A batch not named B blamed a batch-first output (review57); an input and output both time-major were cut
    along T without a word, and a fixed T of 10 was advised as --batch-size 10 (review57)."""
    spec = f"model m({decl}) -> y {{\n    y = {body}\n}}\n"
    assert _trained(tmp_path, spec, np.ones((10, 6, 8), np.float32), labels, "--batch-size", "8") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"the model's input 'x' is declared {shown} on dim 1" in err, err


def test_points_along_a_dim_named_n_are_no_batch(tmp_path):
    """x [G, N, 3] (graphs of N points): N on dim 1 is no time-major batch."""
    spec = "model m(x: float32[G, N, 3]) -> y {\n    y = x -> linear(4) as fc\n}\n"
    assert _trained(tmp_path, spec, np.ones((6, 5, 3), np.float32), (6, 5, 4)) == 0
