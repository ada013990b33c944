"""The attention rules (scaled_dot_product_attention, multihead_attention with its masks, kdim/vdim and
grouped-query heads) against central finite differences in float64 (see gradcheck.py), and one value fed to
several of their inputs (its gradient was counted once per position)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .gradcheck import FAST, check_grad, normal


@FAST
@given(t=st.integers(1, 4), s=st.integers(1, 4), causal=st.booleans(), mask=st.sampled_from([None, "bool", "float"]),
       seed=st.integers(0, 99))
def test_sdpa(t, s, causal, mask, seed):
    rng = np.random.default_rng(seed)
    arrays = [normal(seed, 2, 2, t, 3), normal(seed + 1, 2, 2, s, 3), normal(seed + 2, 2, 2, s, 4)]
    if causal:
        mask = None
        s = t
        arrays = [normal(seed, 2, 2, t, 3), normal(seed + 1, 2, 2, t, 3), normal(seed + 2, 2, 2, t, 4)]
    if mask == "bool":
        m = rng.random((t, s)) > 0.3
        m[:, 0] = True
        m[-1] = seed % 2 == 0  # a query with no key to attend to, on even seeds: zeros, zero gradients
        arrays.append(m)
    elif mask == "float":
        m = normal(seed + 3, t, s)
        if seed % 2 == 0:
            m[-1] = -np.inf
        arrays.append(m)
    check_grad("scaled_dot_product_attention", arrays, {"causal": causal}, seed=seed)


@FAST
@given(causal=st.booleans(), seed=st.integers(0, 99))
def test_sdpa_grouped_query(causal, seed):
    """enable_gqa: the gradient of a key/value head sums over the query heads it serves."""
    arrays = [normal(seed, 2, 4, 3, 3), normal(seed + 1, 2, 2, 3, 3), normal(seed + 2, 2, 2, 3, 2)]
    check_grad("scaled_dot_product_attention", arrays, {"causal": causal, "enable_gqa": True}, seed=seed)


@FAST
@given(cross=st.booleans(), causal=st.booleans(), padded=st.booleans(), bias=st.booleans(), seed=st.integers(0, 99))
def test_multihead_attention(cross, causal, padded, bias, seed):
    e, h, t, s = 4, 2, 3, (2 if cross else 3)
    if causal and cross:
        s = t
    data = [normal(seed, 2, t, e)] + ([normal(seed + 1, 2, s, e), normal(seed + 2, 2, s, e)] if cross else [])
    if padded:
        m = np.zeros((2, s), np.bool_)
        m[0, -1] = True
        m[1, :] = seed % 2 == 0  # every key of the second sequence ignored: zeros, not NaN
        m[0, 0] = causal  # and the first query of a causal first sequence has no key left
        data.append(m)
    params = [normal(seed + 3, 3 * e, e) * 0.5] + ([normal(seed + 4, 3 * e)] if bias else []) + \
        [normal(seed + 5, e, e) * 0.5] + ([normal(seed + 6, e)] if bias else [])
    check_grad("multihead_attention", data + params, {"embed_dim": e, "num_heads": h, "causal": causal, "bias": bias},
               seed=seed)


@FAST
@given(kind=st.sampled_from(["bool", "float"]), per_head=st.booleans(), padded=st.booleans(), causal=st.booleans(),
       cross=st.booleans(), sizes=st.booleans(), bias=st.booleans(), seed=st.integers(0, 99))
def test_multihead_attention_attn_mask_kdim_vdim(kind, per_head, padded, causal, cross, sizes, bias, seed):
    """attn_mask (bool: true = not allowed; float: added, and differentiated), [T, S] or [B*H, T, S], with the
    padding mask and causal; separate q/k/v projection weights for keys and values of other sizes. Query 1
    is left no key in every head (zeros, no NaN); with a float mask some scores are -inf."""
    e, h, t = 4, 2, 3
    s = 2 if cross and not causal else t
    kd, vd = (3, 2) if cross and sizes else (e, e)
    rng = np.random.default_rng(seed)
    data = [normal(seed, 2, t, e)] + ([normal(seed + 1, 2, s, kd), normal(seed + 2, 2, s, vd)] if cross else [])
    given = ["key", "value"] if cross else []
    if padded:
        m = np.zeros((2, s), np.bool_)
        m[0, -1] = True
        data.append(m)
        given.append("key_padding_mask")
    shape = ((2 * h,) if per_head else ()) + (t, s)
    if kind == "bool":
        am = rng.random(shape) < 0.3
        am[..., 1, :] = True
    else:
        am = rng.standard_normal(shape)
        am[rng.random(shape) < 0.2] = -np.inf
        am[..., 1, :] = -np.inf
    data.append(am)
    given.append("attn_mask")
    attrs = {"embed_dim": e, "num_heads": h, "causal": causal, "bias": bias, "given": given}
    if sizes and cross:
        attrs.update(kdim=kd, vdim=vd)
        weights = [normal(seed + 3, e, e) * 0.5, normal(seed + 7, e, kd) * 0.5, normal(seed + 8, e, vd) * 0.5]
    else:
        weights = [normal(seed + 3, 3 * e, e) * 0.5]
    params = weights + ([normal(seed + 4, 3 * e)] if bias else []) + [normal(seed + 5, e, e) * 0.5] + \
        ([normal(seed + 6, e)] if bias else [])
    check_grad("multihead_attention", data + params, attrs, seed=seed)


@pytest.mark.parametrize("tied", [{1: 0, 2: 0}, {2: 1}, {1: 0}])
def test_sdpa_with_one_value_in_several_inputs(tied):
    """sdpa(h, h, h), sdpa(q, m, m) and sdpa(h, h, v): the gradient was 3x or 2x too large."""
    arrays = [normal(1, 2, 2, 3, 4), normal(2, 2, 2, 3, 4), normal(3, 2, 2, 3, 4)]
    check_grad("scaled_dot_product_attention", arrays, {"causal": False}, tied=tied)


@pytest.mark.parametrize("tied", [{1: 0, 2: 0}, {2: 1}])
def test_multihead_attention_self_and_memory_inputs_tied(tied):
    """query = key = value, and cross-attention with key = value = the encoder's memory."""
    e = 4
    data = [normal(1, 2, 3, e), normal(2, 2, 3, e), normal(3, 2, 3, e)]
    params = [normal(4, 3 * e, e) * 0.5, normal(5, 3 * e), normal(6, e, e) * 0.5, normal(7, e)]
    check_grad("multihead_attention", data + params, {"embed_dim": e, "num_heads": 2, "causal": False,
                                                      "bias": True}, tied=tied)
