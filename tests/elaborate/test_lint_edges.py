"""The lints at their edges (mutelab2 hunt: each of these could go silent, or speak where it should not, with
every other test passing): a 1x1 kernel and four channels still read as channels last, eps = 0.1 as Keras's
momentum, and the correct layouts each lint must leave alone (a time-major lstm's output, fewer keys than
queries, one grayscale channel, a mask that compares with another number
than 0)."""

from __future__ import annotations

import pytest

from .test_lints import said


@pytest.mark.parametrize("inputs,body,words", [
    ("x: float32[B, 32, 32, 3]", "    y = x -> conv2d(16, [1, 1])",  # a 1x1 kernel fits either way
     "conv2d reads [B, 32, 32, 3] as 32 channels of 32x3 images (channels first, as torch's); if it is [batch, "
     "height, width, channels], permute([0, 3, 1, 2]) it first"),
    ("x: float32[B, 32, 32, 4]", "    y = x -> conv2d(16, 3)",  # RGBA
     "conv2d reads [B, 32, 32, 4] as 32 channels of 32x4 images"),
    ("x: float32[B, 8, 4, 4]", "    y = x -> batchnorm(0.1)",
     "batchnorm eps=0.1 adds 0.1 to every variance; Keras's BatchNormalization(momentum, epsilon) order is (eps, "
     "momentum) here: write eps= and momentum= by name"),
])
def test_a_lint_at_its_edge_is_said(inputs, body, words):
    (text,) = said(body, inputs)
    assert words in text


@pytest.mark.parametrize("inputs,body", [
    ("x: float32[10, 4, 8]", "    y = x -> lstm(16, batch_first=false) -> conv1d(8, 3)"),  # [steps, batch, features]
    ("q: float32[B, 2, T, 8], k: float32[B, 2, T, 8], v: float32[B, 2, T, 8]",
     "    y = scaled_dot_product_attention(q, k[:, :, 1:], v[:, :, 1:], causal=true)"),  # fewer keys than queries
    ("x: float32[B, 28, 28, 1]", "    y = reshape(x, [-1, 1, 28, 28]) -> conv2d(8, 3)"),  # one channel: no mix-up
    ("ids: int64[B, T]", "    e = ids -> embedding(50, 32)\n"
     "    y = multihead_attention(e, key_padding_mask=ids > 2, embed_dim=32, num_heads=4)"),  # not `> 0`
])
def test_a_correct_layout_beside_a_lint_says_nothing(inputs, body):
    assert said(body, inputs) == []
