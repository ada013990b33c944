"""sort, argsort, scatter_add, index_add, cumprod, repeat_interleave and eye in a trained spec: one SGD step
against torch autograd on the same graph (harness.one_step_like_torch, torch's own sort, scatter_add,
index_add, cumprod, repeat_interleave and eye from archdsl.training.torch_ref), over a symbolic batch at two
sizes. eye is used in a broadcast product, not a matmul: the float64 torch reference keeps a constant's
float32, which a matmul refuses to mix. cumprod runs over relu outputs, so its input holds exact zeros and its
gradient meets torch's cumprod_backward where that one takes its zero branch."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

SORTED = """
model sorted(x: float32[B, 6], ids: int64[B, 6]) -> y {
    h = x -> linear(6) as fc -> tanh                        # [B, 6]
    v, i = sort(h, 1, descending=true)                      # values carry the gradient
    o = argsort(h, dim=0)                                   # over the symbolic batch: int64, no gradient
    s = scatter_add(h * 0.5, 1, ids, v)                     # ids in 0..2: repeated positions add up
    a = index_add(h, 0, o[:, 0], s, alpha=0.5)              # rows of s added at the rows o[:, 0] names
    p = cumprod(relu(h) * 2 + relu(v), 1)                   # exact zeros where h and v are both <= 0
    r = repeat_interleave(a[:, :3], 2, dim=1)               # [B, 6]
    e = sum(unsqueeze(p + r, 2) * (eye(6) * 2 - 0.5), dim=[1])   # (p + r) @ (2I - 0.5), as a broadcast
    y = concat([e, gather(h, 1, i)], axis=1) -> linear(3) as head
}
"""


@pytest.mark.parametrize("batch", [3, 5])
def test_sort_scatter_ops_train_like_torch(batch):
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=SORTED)
    assert {"sort", "argsort", "scatter_add", "index_add", "cumprod", "repeat_interleave", "eye"} <= \
        {n.op for n in fwd.nodes}
    one_step_like_torch(ct, fwd, batches(ct, 2, batch, 3, seed=5))
