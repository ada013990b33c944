"""The ops of ops/reductions.py and ops/more_activations.py in a spec that trains: one SGD step on
onnxruntime against torch autograd (float64) on the same graph, weights and batch (harness.one_step_like_torch).
The torch side calls torch.var/std/logsumexp, F.normalize, F.cosine_similarity, F.selu/celu/glu/logsigmoid/
softsign/prelu (archdsl.training.torch_ref), so the gradient rules meet torch's own autograd, including where
that is not the derivative of the forward: cosine_similarity's norms clamped at eps."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

STATS = """
model stats(x: float32[B, 8]) -> y {
    h = x -> linear(8) as fc1
    n = normalize(h, p=3.0)
    s = std(h, dim=[1], keepdim=true)
    v = var(h, 0, keepdim=true, correction=0.5)      # over the symbolic batch: N read at run time
    l = logsumexp(h * 4, [1], keepdim=true)
    c = cosine_similarity(h, x, eps=1.5) -> unsqueeze(1)   # some norms of h below eps: clamped
    y = n * s + v - l + c -> linear(3) as head
}
"""

ACTS = """
model acts(x: float32[B, 4, 6]) -> y {
    h = x -> conv1d(8, 1) as c1 -> prelu(8, init=0.1) as act1
    h = h -> glu(1)
    h = selu(h * 2) + celu(h, 0.5) + logsigmoid(h * 3) + softsign(h)
    y = h -> prelu as act2 -> flatten -> linear(3) as head
}
"""


@pytest.mark.parametrize("spec", ["stats", "acts"])
@pytest.mark.parametrize("batch", [1, 4])
def test_one_sgd_step_like_torch(spec, batch):
    text = STATS if spec == "stats" else ACTS
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=text)
    one_step_like_torch(ct, fwd, batches(ct, 1, batch, 3, seed=5))
