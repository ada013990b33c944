"""layernorm and rms_norm without weights over symbolic normalized dims, against torch's F.layer_norm and
F.rms_norm: values and gradients (review94a and review97 hunts)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

from .core_harness import NEWEST, grads_of


@pytest.mark.parametrize("call, ref", [("layernorm(h, elementwise_affine=false)", "layer_norm"),
                                       ("rms_norm(h, elementwise_affine=false)", "rms_norm")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("opset", [17, NEWEST])
def test_a_norm_without_weights_takes_a_symbolic_normalized_dim(call, ref, dtype, opset):
    """With no weight there is no size to know: layernorm(x, elementwise_affine=false) over [B, F] was refused as
    "the weight and bias have one entry per element" (review94a hunt); torch's F.layer_norm takes any size.
    Values and the gradient to x against torch, at several F."""
    torch = pytest.importorskip("torch")
    fn = getattr(torch.nn.functional, ref)
    src = f"model m(x: {dtype}[B, F]) -> y {{\n    h = x * 1.5\n    y = {call}\n}}\n"
    sess = runtime.session(archdsl.compile_source(src, opset=opset))
    for f in (1, 6, 33):
        x = np.random.default_rng(f).standard_normal((3, f)).astype(dtype)
        t = torch.from_numpy(x).float().requires_grad_()
        want = fn(t * 1.5, (f,))
        tol = 3e-3 if dtype == "float16" else 2e-6
        np.testing.assert_allclose(sess.run(None, {"x": x})[0].astype(np.float32), want.detach().numpy(), rtol=tol,
                                   atol=tol)
        r = np.random.default_rng(0).standard_normal((3, f)).astype(dtype)  # an input: [B, F] as the output
        (want * torch.from_numpy(r).float()).sum().backward()
        weighted = src.replace("x: ", "r: {0}[B, F], x: ".format(dtype)).replace(f"y = {call}", f"y = {call} * r")
        got = grads_of(weighted, {"x": x, "r": r}, np.ones((1, 1), dtype), ["x"])["x"]
        np.testing.assert_allclose(got.astype(np.float32), t.grad.numpy(), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("call, ref", [("layernorm(x, [T, F], elementwise_affine=false)", "layer_norm"),
                                       ("rms_norm(x, [T, F], elementwise_affine=false)", "rms_norm")])
def test_a_norm_without_weights_takes_several_symbolic_dims_by_name(call, ref):
    """F.layer_norm(x, x.shape[-2:]): an explicit normalized_shape of symbols was refused as "must be known when
    the graph is built" where the default last dim was taken (review97 hunt)."""
    torch = pytest.importorskip("torch")
    sess = runtime.session(archdsl.compile_source(f"model m(x: float32[B, T, F]) -> y {{\n    y = {call}\n}}\n"))
    for t, f in ((1, 1), (3, 5), (4, 2)):
        x = np.random.default_rng(t).standard_normal((2, t, f)).astype(np.float32)
        want = getattr(torch.nn.functional, ref)(torch.from_numpy(x), (t, f))
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], want.numpy(), rtol=2e-6, atol=2e-6)
