"""Gradient rules of the statistics and the later activations (ops/reductions.py, ops/more_activations.py)
against central finite differences in float64, as test_grad_rules.py does for the core ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .gradcheck import FAST, check_grad, dims, normal, shapes


@pytest.mark.parametrize("op", ["var", "std"])
@FAST
@given(shape=st.lists(st.integers(2, 4), min_size=1, max_size=3), data=st.data(), keep=st.booleans(),
       correction=st.sampled_from([0, 1, 0.5]), seed=st.integers(0, 99))
def test_var_std(op, shape, data, keep, correction, seed):
    r = len(shape)
    dim = data.draw(st.one_of(st.none(), st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda
                                                   d: d % r)))
    check_grad(op, [normal(seed, *shape)], {"dim": dim, "keepdim": keep, "correction": correction}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), keep=st.booleans(), seed=st.integers(0, 99))
def test_logsumexp(shape, data, keep, seed):
    r = len(shape)
    dim = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda d: d % r))
    check_grad("logsumexp", [normal(seed, *shape) * 3], {"dim": dim, "keepdim": keep}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), p=st.sampled_from([2.0, 1.0, 3.0, 1.5]),
       eps=st.sampled_from([1e-12, 0.5]), seed=st.integers(0, 99))
def test_normalize(shape, data, p, eps, seed):
    """eps=0.5 clamps some small rows: their gradient is x's through a constant divisor."""
    r = len(shape)
    x = normal(seed, *shape)
    if eps == 0.5:
        x = x * 0.3
    check_grad("normalize", [x], {"p": p, "dim": data.draw(st.integers(-r, r - 1)), "eps": eps}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_cosine_similarity(shape, data, seed):
    """x2 broadcast (dims of 1, fewer dims). Norms below eps are left out: torch 2.x clamps them outside
    autograd, so its gradient there is not the derivative of the forward (tests/training checks it against
    torch's autograd)."""
    r = len(shape)
    shape2 = [data.draw(st.sampled_from([d, 1])) for d in shape][data.draw(st.integers(0, r - 1)):]
    x1, x2 = normal(seed, *shape) * 0.5, normal(seed + 1, *shape2) * 0.5
    check_grad("cosine_similarity", [x1, x2], {"dim": data.draw(st.integers(-r, r - 1))}, seed=seed)


def test_normalize_and_cosine_similarity_of_a_zero_row():
    """A zero row: divided by eps, so the gradient is finite (g / eps), not nan from its norm's 0 / 0."""
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    check_grad("normalize", [x], {"eps": 0.1})
    check_grad("cosine_similarity", [x, normal(3, 2, 3)], {"eps": 0.1})


@pytest.mark.parametrize("op, attrs", [("selu", {}), ("celu", {}), ("celu", {"alpha": 0.5}), ("logsigmoid", {}),
                                       ("softsign", {})])
@FAST
@given(shape=shapes, seed=st.integers(0, 99))
def test_more_activations(op, attrs, shape, seed):
    check_grad(op, [normal(seed, *shape) * 3], attrs, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_glu(shape, data, seed):
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    shape[d] *= 2
    check_grad("glu", [normal(seed, *shape)], {"dim": d}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=0, max_size=4), per_channel=st.booleans(), seed=st.integers(0, 99))
def test_prelu(shape, per_channel, seed):
    """The input and the slopes (one, or one per channel of dim 1)."""
    n = shape[1] if per_channel and len(shape) > 1 else 1
    check_grad("prelu", [normal(seed, *shape), normal(seed + 1, n)], {"num_parameters": n}, seed=seed)
