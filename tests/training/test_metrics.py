"""The loop's own loss and accuracy (held-out data), against torch's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.training.metrics import batch_metrics, loss_value


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4)])
def test_cross_entropy_is_torchs_with_label_smoothing(smoothing, shape):
    """val_loss left label smoothing out, so with --label-smoothing it was not the loss the step trains."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    pred = rng.standard_normal(shape).astype(np.float32) * 3
    labels = rng.integers(0, shape[-1], shape[:-1])
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(pred.reshape(-1, shape[-1])).double(),
                                            torch.from_numpy(labels.reshape(-1)), label_smoothing=smoothing)
    assert loss_value("cross_entropy", pred, labels, smoothing) == pytest.approx(float(ref), rel=1e-9)


def test_regression_and_binary_losses_are_torchs():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((6, 3)), rng.random((6, 3))
    t = torch.from_numpy
    assert loss_value("mse", pred, target) == pytest.approx(float(F.mse_loss(t(pred), t(target))), rel=1e-9)
    assert loss_value("bce_with_logits", pred, target) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(t(pred), t(target))), rel=1e-9)
    assert batch_metrics("mse", pred, target) == (0.0, 0)
    assert batch_metrics("cross_entropy", np.eye(3), np.array([0, 2, 2])) == (2.0, 3)


def test_accuracy_leaves_out_a_real_class_it_is_told_to_ignore():
    """With padding id 0 (a class argmax can pick), hits on padded positions count in neither the numerator nor
    the denominator; -1 (never picked) could not tell."""
    pred = np.array([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    labels = np.array([0, 0, 1, 2])  # the first two are padding, predicted as class 0
    assert batch_metrics("cross_entropy", pred, labels, ignore_index=0) == (2.0, 2)
    assert batch_metrics("cross_entropy", pred, np.array([0, 0, 2, 2]), ignore_index=0) == (1.0, 2)


def test_binary_accuracy_thresholds_the_logit_at_zero():
    """bce_with_logits predicts 1 where sigmoid(logit) > 0.5, that is logit > 0 (not > 0.5); a label counts as 1
    above 0.5 (soft labels too)."""
    logits = np.array([[-2.0, -0.3, 0.3, 2.0, 0.0, 0.4]])
    labels = np.array([[0.0, 1.0, 1.0, 0.7, 0.2, 1.0]])
    assert batch_metrics("bce_with_logits", logits, labels) == (5.0, 6)  # all but -0.3 (a 1); logit 0.0 says 0


def test_held_out_loss_takes_the_steps_label_smoothing():
    from types import SimpleNamespace

    from archdsl.training.loop import evaluate
    rng = np.random.default_rng(2)
    pred = rng.standard_normal((10, 4))
    labels = rng.integers(0, 4, 10)
    trainer = SimpleNamespace(info=SimpleNamespace(config=SimpleNamespace(label_smoothing=0.2, ignore_index=None),
                                                   labelled=True),
                              predict=lambda batch, index=0: pred[batch["x"]], fixed_batch=None)
    got = evaluate(trainer, {"x": np.arange(10), "labels": labels}, 3, "cross_entropy")
    assert got["val_loss"] == pytest.approx(loss_value("cross_entropy", pred, labels, 0.2), rel=1e-12)
    assert got["val_loss"] != pytest.approx(loss_value("cross_entropy", pred, labels), rel=1e-6)


def test_an_epochs_loss_weighs_each_batch_by_its_examples(tmp_path, capsys):
    """7 examples in batches of 3, 3 and 1 at a learning rate too small to move the weight: the printed loss is
    the mean over the 7 examples, not the mean of the three batch means."""
    from archdsl.cli import main
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 4)).astype(np.float32), 3 * rng.standard_normal((7, 2)).astype(np.float32)
    w0 = rng.standard_normal((2, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    np.savez(tmp_path / "w0.npz", **{"fc.weight": w0})
    spec = tmp_path / "lin.arch"
    spec.write_text("model lin(x: float32[B, 4]) -> y {\n    y = x -> linear(2, bias=false) as fc\n}\n")
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--optimizer", "sgd",
                 "--lr", "1e-12", "--batch-size", "3", "--epochs", "1", "--weights", str(tmp_path / "w0.npz"),
                 "-o", str(tmp_path / "w.npz"), "--quiet"]) == 0
    want = float(((x.astype(np.float64) @ w0.T - y) ** 2).mean())
    assert f"loss {want:.4f}" in capsys.readouterr().err


def test_the_held_out_cross_entropy_with_ignore_index_is_the_mean_over_counted_labels(tmp_path, capsys):
    """Batches of 2 whose first holds one ignored label: the loss is torch's mean over the 3 labels counted
    (0.5845), not the batches' means weighed by examples (0.4701: batch_weight ignoring the index, M05)."""
    from archdsl.cli import main
    x = np.array([[2, 0], [0, 3], [1, 0], [0, 1]], np.float32)
    labels = np.array([0, -100, 1, 1], np.int64)
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.eye(2, dtype=np.float32)})
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 2]) -> y {\n    y = x -> linear(2, bias=false) as fc\n}\n")
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"),
                 "--loss", "cross_entropy", "--ignore-index", "-100", "--batch-size", "2", "--epochs", "0",
                 "-o", str(tmp_path / "o.npz")]) == 0
    kept = labels != -100
    want = (np.log(np.exp(x).sum(1)) - x[np.arange(4), np.maximum(labels, 0)])[kept].mean()
    assert f"loss {want:.4f}" in capsys.readouterr().err
