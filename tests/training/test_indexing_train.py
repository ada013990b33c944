"""The indexing ops (topk, gather, one_hot, tile) and einsum in a trained spec: one SGD step against torch
autograd on the same graph (harness.one_step_like_torch), over a symbolic batch at two sizes, so the
gradients that scatter back (topk's values, gather) and tile's over a tiled symbolic dim (2*B) run with
shapes read at run time."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

PICKED = """
model picked(x: float32[B, 6], ids: int64[B, 2]) -> y {
    h = x -> linear(8) as fc -> tanh                   # [B, 8]
    v, i = topk(h, 3)                                  # the 3 largest features and where they are
    hot = sum(cast(one_hot(i, 8), "float32"), dim=[1]) # [B, 8]: 1 where topk chose
    g = gather(h * hot, 1, i) * v                      # the chosen features again, squared
    t = tile(g, [2, 1]) -> reshape([2, B, 3]) -> sum(dim=[0])
    w = parameter([3, 2, 4], init="normal", std=0.5) as mix
    y = einsum("bi,bj,ijk->bk", [t + tile(v, [1, 1]), cast(ids, "float32"), w])
}
"""


@pytest.mark.parametrize("batch", [3, 5])
def test_indexing_ops_train_like_torch(batch):
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=PICKED)
    assert {"topk", "gather", "one_hot", "tile", "einsum"} <= {n.op for n in fwd.nodes}
    one_step_like_torch(ct, fwd, batches(ct, 2, batch, 3, seed=5))
