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



def test_std_of_a_constant_row_passes_no_gradient_as_torch():
    """A row with no spread (a zero padding embedding, a dead channel): torch's std backward gives it a zero
    gradient; through sqrt it was 0 * inf = NaN, and every parameter became NaN after one step."""
    import numpy as np
    import torch

    from archdsl import runtime

    from .harness import initial
    text = "model m(x: float32[B, 4]) -> y {\n    h = x -> linear(4) as fc\n" \
           "    y = (h - mean(h, 1, keepdim=true)) / (std(h, 1, keepdim=true) + 1e-3) -> linear(2) as out\n}\n"
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=text)
    w = {k: v for k, v in initial(ct).items() if k in ct.info.params}
    w["fc.bias"] = np.full(4, 0.5, np.float32)
    x = np.array([[0, 0, 0, 0], [1, -1, 2, 0.5]], np.float32)  # example 0: h = fc.bias, no spread
    labels = np.array([[1, -1], [0.5, 2]], np.float32)
    sess = runtime.session(ct.step_model, "cpu")
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x, "labels": labels, **w})))
    p = {k: torch.tensor(w[k], dtype=torch.float64, requires_grad=True) for k in ct.info.params}
    h = torch.nn.functional.linear(torch.tensor(x, dtype=torch.float64), p["fc.weight"], p["fc.bias"])
    y = (h - h.mean(1, keepdim=True)) / (h.std(1, keepdim=True) + 1e-3)
    y = torch.nn.functional.linear(y, p["out.weight"], p["out.bias"])
    torch.nn.functional.mse_loss(y, torch.tensor(labels, dtype=torch.float64)).backward()
    for k, v in p.items():
        np.testing.assert_allclose(out[k + ".new"], (v - 0.1 * v.grad).detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=k)
