"""sinusoidal_embedding against DDPM's timestep embedding, the Transformer's position encoding (torch) and the
documented formula (numpy), in every dtype it computes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_vision_ops import rand, run, t

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _ddpm_embedding(t, dim):
    """DDPM's get_timestep_embedding, written from the paper's code description."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _transformer_pe(n, d):
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


@pytest.mark.parametrize("dim", [8, 33, 128])
def test_sinusoidal_ddpm_timesteps(dim):
    steps = np.array([0, 1, 17, 999], dtype=np.int64)
    (y,), _ = run(f"model m(t: int64[B]) -> y {{ y = t -> sinusoidal_embedding({dim}) }}", {"t": steps})
    assert y.shape == (4, dim) and y.dtype == np.float32
    np.testing.assert_allclose(y, _ddpm_embedding(t(steps), dim).numpy(), rtol=1e-4, atol=1e-4)


def test_a_float16_sinusoidal_embedding_is_computed_in_float32():
    """t * freq in float16 loses the phase past a few hundred steps (0.03 off at 999): float32, then cast, as
    diffusers' embedding of half timesteps."""
    steps = np.array([0, 17, 250, 999], dtype=np.float16)
    (y,), _ = run("model m(t: float16[B]) -> y { y = t -> sinusoidal_embedding(16) }", {"t": steps})
    assert y.dtype == np.float16
    want = _ddpm_embedding(t(steps.astype(np.float32)), 16).half().numpy()
    np.testing.assert_allclose(y.astype(np.float32), want.astype(np.float32), rtol=0, atol=1e-3)


def test_sinusoidal_transformer_positions():
    src = """model m(x: float32[B, T, 16]) -> y {
        y = positions(x) -> sinusoidal_embedding(16, interleave=true, freq_shift=0)
    }"""
    (y,), _ = run(src, {"x": rand(2, 50, 16)})
    np.testing.assert_allclose(y, _transformer_pe(50, 16).numpy(), rtol=1e-4, atol=1e-4)


@settings(max_examples=10, deadline=None)
@given(dim=st.integers(4, 40), shift=st.sampled_from([0.0, 1.0]), flip=st.booleans(), inter=st.booleans(),
       period=st.sampled_from([100.0, 10000.0]))
def test_sinusoidal_matches_numpy_reference(dim, shift, flip, inter, period):
    tv = np.array([[0.0, 0.5], [3.0, 250.0]], dtype=np.float32)
    src = f"""model m(t: float32[B, 2]) -> y {{
        y = t -> sinusoidal_embedding({dim}, max_period={period}, freq_shift={shift},
                                      flip_sin_to_cos={'true' if flip else 'false'},
                                      interleave={'true' if inter else 'false'})
    }}"""
    (y,), _ = run(src, {"t": tv})
    assert y.shape == (2, 2, dim)
    np.testing.assert_allclose(y, _sinusoids(tv, dim, period, shift, flip, inter), rtol=1e-4, atol=1e-4)


def _sinusoids(t, dim, period, shift, flip, inter):
    """The documented formula, written here (float64): f_i = period ** (-i / (half - shift)), i < half; sin and
    cos of t * f, cos first when flipped, pairs interleaved or halves concatenated, a zero column for an odd
    dim."""
    half = dim // 2
    args = t.astype(np.float64)[..., None] * period ** (-np.arange(half) / (half - shift))
    parts = [np.cos(args), np.sin(args)] if flip else [np.sin(args), np.cos(args)]
    out = np.zeros(t.shape + (dim,))
    if inter:
        out[..., 0:2 * half:2], out[..., 1:2 * half:2] = parts
    else:
        out[..., :half], out[..., half:2 * half] = parts
    return out
