"""Gradients an activation masks out are 0 even when the gradient arriving is infinite: sqrt(relu(x)) sends
inf into relu wherever x < 0, and the 0/1 mask times it made NaN where torch's `where` gives 0 (a train step
of such a model went NaN on its first update)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ops.core_harness import grads_of

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = {
    "sqrt(relu(x))": lambda t: torch.sqrt(torch.relu(t)),
    "sqrt(clamp(x, min=0.0))": lambda t: torch.sqrt(torch.clamp(t, min=0.0)),
    "sqrt(0.0 - clamp(x, max=0.0))": lambda t: torch.sqrt(0.0 - torch.clamp(t, max=0.0)),
    "sqrt(relu6(x * 4.0))": lambda t: torch.sqrt(F.relu6(t * 4.0)),
    "sqrt(hardtanh(x, 0.0, 1.0))": lambda t: torch.sqrt(F.hardtanh(t, 0.0, 1.0)),
    "sqrt(hardsigmoid(x * 5.0))": lambda t: torch.sqrt(F.hardsigmoid(t * 5.0)),
    "relu(x) ** 0.5": lambda t: torch.relu(t) ** 0.5,
    "sqrt(maximum(x, zeros_like(x)))": lambda t: torch.sqrt(torch.maximum(t, torch.zeros_like(t))),
    "sqrt(0.0 - minimum(x, zeros_like(x)))": lambda t: torch.sqrt(0.0 - torch.minimum(t, torch.zeros_like(t))),
}


@pytest.mark.parametrize("expr", list(CASES))
def test_an_infinite_gradient_into_a_masked_activation_is_zero_as_torch(expr):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    x[np.abs(x) < 1e-3] = 0.5  # no element at a kink, where the two sides may round differently
    r = rng.standard_normal((4, 6)).astype(np.float32)
    got = grads_of(f"model m(x: float32[4, 6]) -> y {{\n    y = {expr}\n}}\n", {"x": x}, r, ["x"])["x"]
    t = torch.from_numpy(x).double().requires_grad_()
    (CASES[expr](t) * torch.from_numpy(r).double()).sum().backward()
    want = t.grad.numpy()
    assert np.isfinite(want).all() and (want == 0).any()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
