"""chunk, unbind and multihead_attention's attn_mask and kdim/vdim in a spec that trains: one SGD step on
onnxruntime against torch autograd (float64) on the same graph, weights and batch (harness.one_step_like_torch).
The torch side is torch.chunk, torch.unbind and F.multi_head_attention_forward (training/torch_ref.py), so the
gradients meet torch's own: through a learned float attn_mask (a relative-position bias), a bool attn_mask
and padding mask drawn at random (queries left no key included: zeros in both), and separate q/k/v
projection weights."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

ATTEND = """
model attend(x: float32[B, 5, 8], mem: float32[B, 4, 6], pad: bool[B, 4], am: bool[5, 5]) -> y {
    q, k, v = x -> linear(24) as qkv -> chunk(3, dim=-1)
    h = softmax(q @ k.T / 2.0) @ v
    rel = parameter([5, 5], init="normal", std=0.01) as rel_bias  # small, scaled up: its float32 update resolves
    h = h + (h -> multihead_attention(8, 2, attn_mask=rel * 50, causal=true) as self_attn)
    h = h + (h -> multihead_attention(8, 2, key=mem, value=mem[:, :, :5], kdim=6, vdim=5,
                                      key_padding_mask=pad) as cross)
    h = h + (h -> multihead_attention(8, 4, attn_mask=am, bias=false) as masked)
    a, b, c, d, e = unbind(h, 1)
    f, g = chunk(a * b + c, 2, dim=-1)
    y = concat([f * g, d - e], axis=1) -> linear(3) as head
}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_chunk_unbind_and_masked_attention_train_like_torch(batch):
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=ATTEND)
    assert {"chunk", "unbind", "multihead_attention"} <= {n.op for n in fwd.nodes}
    assert {"cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight", "rel_bias"} <= set(ct.info.params)
    one_step_like_torch(ct, fwd, batches(ct, 1, batch, 3, seed=batch))
