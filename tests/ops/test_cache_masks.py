"""A KV cache's mask written as torch writes it (triu of a run-time diagonal): the two ways archdsl computes it."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl import runtime

from .core_harness import close


def test_a_triu_offset_by_a_cache_length_says_the_two_ways_that_compute_it():
    """torch's triu(full((S, P + S), -inf), diagonal=P + 1), a KV cache's mask, is refused (a diagonal is fixed in
    ONNX Trilu's graph here) with advice that gave no way at a run-time P (kvcache hunt): both ways it names match
    it at P = 0, 3 and 4."""
    cache = "model m(q: float32[B, S, 8], past: float32[B, P, 8]) -> y {\n    k = concat([past, q], axis=1)\n" \
            "    s = q @ k.T\n    y = softmax(MASKED) @ k\n}\n"
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(cache.replace("MASKED", 's + triu(full_like(s, "-inf"), diagonal=P + 1)'))
    said = " ".join(e.value.message.split())
    ways = ["causal_mask(s)", re.search(r"or (masked_fill\(.*\))$", said).group(1)]
    assert "causal_mask(s), bottom-right aligned" in said, said
    rng = np.random.default_rng(0)
    for way in ways:
        sess = runtime.session(archdsl.compile_source(cache.replace("MASKED", way)))
        for p, s in ((0, 3), (3, 2), (4, 1)):
            q, past = rng.random((2, s, 8), np.float32), rng.random((2, p, 8), np.float32)
            k = np.concatenate([past, q], axis=1)
            scores = q @ k.transpose(0, 2, 1) + np.triu(np.full((s, p + s), -np.inf), p + 1)
            w = np.exp(scores - scores.max(-1, keepdims=True))
            close(sess.run(None, {"q": q, "past": past})[0], w / w.sum(-1, keepdims=True) @ k)
