"""norm (ops/vector_norm.py) against torch.linalg.vector_norm: every kind of p over dims or all of x, kept or
dropped, at run-time sizes; the gradient against torch autograd where it is special (a zero row, ties of the
max, p below 1); the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import FEW, NEWEST, covers, grads_of, rand, refused, run_op

torch = pytest.importorskip("torch")

_P = {"2": 2.0, "1": 1.0, '"inf"': math.inf, '"-inf"': -math.inf, "0": 0.0, "3": 3.0, "0.5": 0.5, '"fro"': 2.0,
      "-1": -1.0, 'float("inf")': math.inf, "1.5": 1.5}


def _x(shape, seed):
    """Normal values with an all-zero row, and ties of the largest |x| in another."""
    x = rand(*shape, seed=seed) * 2
    if x.ndim >= 2:
        x[0] = 0
        if x.shape[0] > 1 and x.shape[-1] > 1:
            x[1, ..., :2] = 7.0
    return x


@covers("norm")
@pytest.mark.parametrize("p", list(_P))
@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), keep=st.booleans(),
       seed=st.integers(0, 99), opset=st.sampled_from([17, NEWEST]))
def test_norm_matches_torch(p, shape, data, keep, seed, opset):
    x = _x(shape, seed)
    r = len(shape)
    dims = data.draw(st.one_of(st.none(), st.lists(st.integers(-r, r - 1), min_size=1, max_size=r,
                                                   unique_by=lambda d: d % r)))
    text = f"norm(x, p={p}, dim={'none' if dims is None else dims}, keepdim={str(keep).lower()})"
    y, _ = run_op(text, x=x, opset=opset, sym=True)
    with np.errstate(divide="ignore"):
        want = torch.linalg.vector_norm(torch.from_numpy(x).double(), ord=_P[p], dim=dims, keepdim=keep).numpy()
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("p", ["2", "1", '"inf"', '"-inf"', "0", "3", "1.5", "0.5", "-1"])
@pytest.mark.parametrize("dims, keep", [("none", False), ("[1]", True), ("[0, 2]", False)])
def test_norm_gradient_matches_torch(p, dims, keep):
    """A zero row (torch's gradient is 0 there, where sqrt(sum(x*x)) gives NaN), ties of the max (they share
    the gradient), a p between 1 and 2."""
    x = _x((3, 4, 5), 1)
    src = f"model m(x: float32[3, 4, 5]) -> y {{\n    y = norm(x, p={p}, dim={dims}, keepdim={str(keep).lower()})\n}}\n"
    d = None if dims == "none" else eval(dims)
    tx = torch.from_numpy(x).double().requires_grad_()
    y = torch.linalg.vector_norm(tx, ord=_P[p], dim=d, keepdim=keep)
    r = np.random.default_rng(0).standard_normal(tuple(y.shape)).astype(np.float32)
    (y * torch.from_numpy(r).double()).sum().backward()
    got = grads_of(src, {"x": x}, r, ["x"])["x"]
    want = tx.grad.numpy() if tx.grad is not None else np.zeros_like(x)  # p = 0: a count, no gradient
    assert np.isfinite(got).all() == np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ord_is_torch_linalgs_name_for_p():
    x = rand(3, 4)
    y, _ = run_op("vector_norm(x, ord=1, dim=1)", x=x)
    np.testing.assert_allclose(y, np.abs(x).sum(1), rtol=1e-6)
    refused("model m(x: float32[2, 4]) -> y {\n    y = dropout(x, ord=0.3)\n}\n", "ord")  # dropout's p is no order


def test_norm_of_float16_reduces_in_float32():
    x = np.full((2, 300), 20.0, np.float16)  # the sum of squares, 120000, is past float16's 65504
    src = "model m(x: float16[2, 300]) -> y {\n    y = norm(x, dim=[1])\n}\n"
    y = runtime.session(archdsl.compile_source(src), provider="cpu", threads=1).run(None, {"x": x})[0]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), 20 * math.sqrt(300), rtol=1e-3)


@pytest.mark.parametrize("text, match", [
    ("norm(i)", r"norm: input must be a float tensor"),
    ('norm(x, p="nuc")', r'norm: p must be a number, "inf", "-inf" or "fro", got \'nuc\''),
    ("norm(x, dim=[0, -2])", r"appears more than once"),
    ("vector_norm(x, dim=3)", r"dim"),
])
def test_refusals(text, match):
    refused(f"model m(x: float32[2, 3], i: int64[2]) -> y {{\n    y = {text}\n}}\n", match)
