"""Gradient rules of local_response_norm and cdist (ops/local_response_norm.py, ops/cdist.py) against central
finite differences in float64, as test_grad_rules.py does for the core ops; cdist at zero distance (no
derivative there) against torch's autograd."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from archdsl.types import DType, TensorType

from . import gradcheck
from .gradcheck import FAST, check_grad, normal


@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=3), c=st.integers(1, 7), size=st.integers(1, 8),
       alpha=st.sampled_from([0.5, 3.0]), beta=st.sampled_from([0.75, 1.3]), k=st.sampled_from([1.0, 2.0]),
       seed=st.integers(0, 99))
def test_local_response_norm(shape, c, size, alpha, beta, k, seed):
    """alpha large enough that the window's sum moves the output (at torch's 1e-4 it is nearly x / k^beta);
    windows wider than C, even and odd sizes."""
    x = normal(seed, shape[0], c, *shape[1:])
    check_grad("local_response_norm", [x], {"size": size, "alpha": alpha, "beta": beta, "k": k}, seed=seed)


_P = [0.0, 1.0, 2.0, 3.5, "inf", 0.5]


@pytest.mark.parametrize("p", _P, ids=[str(p) for p in _P])
@FAST
@given(batch1=st.lists(st.integers(1, 3), max_size=2), data=st.data(), rows=st.integers(1, 4),
       rows2=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 99))
def test_cdist(p, batch1, data, rows, rows2, m, seed):
    """Batch dims broadcast (x2 with dims of 1 and fewer dims); normal draws have no zero distance, no tied
    coordinates for inf and no zero differences for 1 and 0.5. Below p = 1 the derivative is |d|^(p-1), steep
    near a zero difference: finite differences there are off (|d| = 1.6e-4 at p = 0.5: 4e-5 relative), so a
    draw with a coordinate difference under 0.01 is skipped there."""
    batch2 = [data.draw(st.sampled_from([d, 1])) for d in batch1][data.draw(st.integers(0, len(batch1))):]
    x1, x2 = normal(seed, *batch1, rows, m), normal(seed + 1, *batch2, rows2, m)
    if p == 0.5:
        assume(np.abs(x1[..., :, None, :] - x2[..., None, :, :]).min() >= 0.01)
    check_grad("cdist", [x1, x2], {"p": p}, seed=seed)


def _same_gradient_as_torch(p, x1, x2):
    torch = pytest.importorskip("torch")
    rs = [normal(2, *x1.shape[:-1], x2.shape[-2])]
    types = [TensorType(DType.float64, x.shape) for x in (x1, x2)]
    model, _ = gradcheck._build("cdist", types, {"p": p}, DType.float64, rs, [0, 1])
    _, g1, g2 = gradcheck.run_model(model, {"in0": x1, "in1": x2})
    t1, t2 = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    y = torch.cdist(t1, t2, float(p), compute_mode="donot_use_mm_for_euclid_dist")
    (y * torch.from_numpy(rs[0])).sum().backward()
    assert np.isfinite(g1).all() and np.isfinite(g2).all()
    np.testing.assert_allclose(g1, t1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g2, t2.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.5, "inf", 0.0, 0.5], ids=str)
def test_cdist_gradient_at_zero_distance_is_torchs(p):
    """Rows equal in x1 and x2 (distance 0, where the p-norm has no derivative): torch's gradient there is 0,
    not the nan of d / dist; the other rows get torch's gradient too."""
    x1 = normal(0, 2, 3, 4)
    x2 = normal(1, 2, 5, 4)
    x2[0, 1] = x1[0, 0]
    x2[1, 4] = x1[1, 2]
    x1[1, 1] = x2[1, 0]
    _same_gradient_as_torch(p, x1, x2)


@pytest.mark.parametrize("p", [0.5, 0.9, 1.0, 2.0, 3.5, "inf"], ids=str)
def test_cdist_gradient_at_a_zero_coordinate_difference_is_torchs(p):
    """Rows that agree in some coordinates but not all (distance > 0): below p = 1, |d|^(p-1) is infinite at a
    zero difference, and torch's gradient of that coordinate is 0, not nan (a hunt got nan at p = 0.5)."""
    x1 = normal(0, 2, 3, 4)
    x2 = normal(1, 2, 5, 4)
    x2[0, 1, :2] = x1[0, 0, :2]
    x2[1, 4, 3] = x1[1, 2, 3]
    x1[1, 1, 0] = x2[1, 0, 0]
    _same_gradient_as_torch(p, x1, x2)


@pytest.mark.parametrize("dtype", [DType.float16, DType.float32])
def test_cdist_inf_gradient_in_16_bits_finds_its_max(dtype):
    """p = inf: the coordinate at the max gets the gradient. In float16 the difference 1.00048828125 (computed
    in float32) is not a float16, so the rounded output equalled no coordinate and the gradient was all 0."""
    torch = pytest.importorskip("torch")
    x1 = np.array([[1.0, 0.0]], dtype.np)
    x2 = np.array([[-0.00048828125, 0.5]], dtype.np)
    types = [TensorType(dtype, x.shape) for x in (x1, x2)]
    model, _ = gradcheck._build("cdist", types, {"p": "inf"}, dtype, [np.ones((1, 1))], [0, 1])
    _, g1, g2 = gradcheck.run_model(model, {"in0": x1, "in1": x2})
    t1, t2 = (torch.tensor(x.astype(np.float32), requires_grad=True) for x in (x1, x2))
    torch.cdist(t1, t2, float("inf")).sum().backward()
    np.testing.assert_array_equal(g1.astype(np.float32), t1.grad.numpy())  # [[1, 0]]
    np.testing.assert_array_equal(g2.astype(np.float32), t2.grad.numpy())
