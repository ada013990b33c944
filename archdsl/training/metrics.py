"""Loss, accuracy and weight of a batch in numpy, for the figures the loop prints (the step computes its own
loss)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["batch_metrics", "batch_weight", "loss_value", "spec_batch_weight"]


def batch_metrics(loss: str, pred: np.ndarray, labels: np.ndarray, ignore_index: int | None = None
                  ) -> tuple[float, int]:
    """(correct predictions, predictions counted); (0, 0) for a regression loss. Ignored labels (padding)
    are not counted."""
    if loss == "cross_entropy":
        hit = pred.argmax(-1) == labels
        if ignore_index is not None:
            kept = labels != ignore_index
            return float((hit & kept).sum()), int(kept.sum())
        return float(hit.sum()), int(labels.size)
    if loss == "bce_with_logits":
        return float(((pred > 0) == (labels > 0.5)).sum()), int(labels.size)
    return 0.0, 0


def loss_value(loss: str, pred: np.ndarray, labels: np.ndarray | None, label_smoothing: float = 0.0,
               ignore_index: int | None = None) -> float:
    """The mean loss, as the step defines it: with label smoothing e, cross_entropy is torch's
    (1 - e) * nll + e * (the mean over classes of -log p), so a held-out loss compares with the training one;
    ignored labels are left out of the mean (nan when every label is)."""
    p = pred.astype(np.float64)
    if loss == "model":  # the model's output is its own loss
        return float(p)
    if loss == "cross_entropy":
        kept = np.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
        m = p.max(-1, keepdims=True)
        lse = np.log(np.exp(p - m).sum(-1)) + m[..., 0]
        picked = np.take_along_axis(p, np.where(kept, labels, 0)[..., None].astype(np.int64), -1)[..., 0]
        target = (1.0 - label_smoothing) * picked + label_smoothing * p.mean(-1)
        with np.errstate(invalid="ignore"):
            return float((lse - target)[kept].sum() / kept.sum())
    if loss == "mse":
        return float(((p - labels) ** 2).mean())
    return float((np.maximum(p, 0) - p * labels + np.log1p(np.exp(-np.abs(p)))).mean())


def batch_weight(labels: np.ndarray, ignore: int | None, examples: int) -> int:
    """What a batch's mean loss is over, to weigh it in an epoch's: its examples, or with an ignored label
    index the labels that count."""
    return examples if ignore is None or labels is None else int((labels != ignore).sum())


def spec_batch_weight(batch: dict, masked, examples: int, loss: float) -> int:
    """A spec's own loss (masked: data.MaskedLabels): 0 when it is NaN and every label of a mean cross_entropy
    with an ignore_index is ignored in this batch (0/0, with a zero gradient, as torch's); where the loss is that
    mean alone, the labels that count (as the --loss flag's weighs); else the examples (a loss that mixes in
    other terms, a distillation's KL over every example, weighed by labels before: distill hunt)."""
    counts = {}
    for i, (name, select, ignore) in enumerate(masked.readings):
        if name in batch:
            try:
                counts[i] = int(((batch[name] if select is None else batch[name][select]) != ignore).sum())
            except IndexError:  # positions this batch lacks: the step fails on them first
                continue
    if counts and min(counts.values()) == 0 and not math.isfinite(loss):
        return 0
    return counts.get(masked.loss, examples)  # (no reading is None's: the examples)
