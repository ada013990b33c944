"""local_response_norm and cdist in a spec that trains: one SGD step on onnxruntime against torch autograd
(float64) on the same graph, weights and batch (harness.one_step_like_torch); the torch side calls
F.local_response_norm and torch.cdist (archdsl.training.torch_ref)."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

SPEC = """
model lrn_cdist(x: float32[B, 4, 6]) -> y {
    h = x -> conv1d(6, 1) as c1
    a = local_response_norm(h, 3, alpha=0.5) + local_response_norm(h, 4, alpha=2.0, beta=1.2, k=1.5)
    d = cdist(a, h, p=2) + sum(cdist(a, h[:, :2, :], p=3.5), dim=[2], keepdim=true) + cdist(h, h, p="inf") + cdist(h, h)
    y = concat([a, d], axis=2) -> flatten -> linear(3) as head
}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_one_sgd_step_like_torch(batch):
    """cdist(h, h) has zero distances on its diagonal: torch's gradient there is 0, and so is ours."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=SPEC)
    one_step_like_torch(ct, fwd, batches(ct, 1, batch, 3, seed=5))
