"""detach in a train step: a straight-through estimator (VQ-VAE's z + detach(q - z)) and a branch whose
parameters reach the loss only through detach, one SGD step against torch autograd on the same graph
(harness.one_step_like_torch, torch_ref's x.detach()), and against what the gradient must be without torch:
the detached branch does not move, the straight-through encoder does."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import batches, compile_step, config, initial, one_step_like_torch, ort_steps

SPEC = """
model st(x: float32[B, 6]) -> y {
    z = x -> linear(4) as enc
    q = round(z * 2) / 2                 # quantized: zero gradient through round
    h = z + stop_gradient(q - z)         # forward q, backward the identity to z
    t = x -> linear(4) as target
    y = h + detach(t) -> linear(3) as head
}
"""


def _step():
    return compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=SPEC)


def test_straight_through_and_a_detached_branch_without_torch():
    ct, _ = _step()
    init = initial(ct)
    _, states = ort_steps(ct, batches(ct, 1, 4, 3, seed=2))
    moved = {k: float(np.abs(v - init[k]).max()) for k, v in states[0].items() if k in init}
    assert moved["target.weight"] == moved["target.bias"] == 0.0
    assert moved["enc.weight"] > 1e-4 and moved["enc.bias"] > 1e-4  # round alone would pass none


@pytest.mark.parametrize("batch", [1, 5])
def test_one_sgd_step_like_torch(batch):
    pytest.importorskip("torch")
    ct, fwd = _step()
    one_step_like_torch(ct, fwd, batches(ct, 1, batch, 3, seed=batch))


def test_a_term_computed_from_integers_adds_no_gradient():
    """argmax, a cast back to float and a floor division (no gradient rule): a float value that no parameter
    reaches except through integers, so it carries no gradient and needs no rule. Treated as differentiable it
    was "cannot train through floordiv" (muttrain2 hunt); the step is the one without the term."""
    body = "    h = x -> linear(4) as fc\n    loss = mean(h * h){}\n"
    steps = []
    for extra in ("", " + mean(cast(argmax(h, dim=1), \"float32\") // 2.0)"):
        text = "model m(x: float32[B, 4]) -> loss {\n" + body.format(extra) + "}\n"
        ct, _ = compile_step(None, config(loss="model", opt="sgd", lr=0.1), text=text)
        steps.append(ort_steps(ct, batches(ct, 1, 5, 3, seed=4))[1][0])
    for name in ("fc.weight", "fc.bias"):
        np.testing.assert_allclose(steps[1][name], steps[0][name], rtol=1e-6, atol=1e-7)

