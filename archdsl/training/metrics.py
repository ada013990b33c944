"""Loss and accuracy of a batch in numpy, for the eval side of the loop (the step computes its own loss)."""

from __future__ import annotations

import numpy as np

__all__ = ["batch_metrics", "loss_value"]


def batch_metrics(loss: str, pred: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """(correct predictions, predictions counted); (0, 0) for a regression loss."""
    if loss == "cross_entropy":
        return float((pred.argmax(-1) == labels).sum()), int(labels.size)
    if loss == "bce_with_logits":
        return float(((pred > 0) == (labels > 0.5)).sum()), int(labels.size)
    return 0.0, 0


def loss_value(loss: str, pred: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> float:
    """The mean loss, as the step defines it: with label smoothing e, cross_entropy is torch's
    (1 - e) * nll + e * (the mean over classes of -log p), so a held-out loss compares with the training one."""
    p = pred.astype(np.float64)
    if loss == "cross_entropy":
        m = p.max(-1, keepdims=True)
        lse = np.log(np.exp(p - m).sum(-1)) + m[..., 0]
        picked = np.take_along_axis(p, labels[..., None].astype(np.int64), -1)[..., 0]
        target = (1.0 - label_smoothing) * picked + label_smoothing * p.mean(-1)
        return float((lse - target).mean())
    if loss == "mse":
        return float(((p - labels) ** 2).mean())
    return float((np.maximum(p, 0) - p * labels + np.log1p(np.exp(-np.abs(p)))).mean())
