"""PyTorch references for specs/llama.arch, specs/convnext.arch and specs/mobilenet_v2.arch, written directly in
torch from the papers and from Hugging Face's / torchvision's module structure (the same parameter names as the
specs), for tests/specs/test_new_specs.py. Built on torch's meta device they count the full sizes without memory."""

from __future__ import annotations

import math

import torch

__all__ = ["torch_llama"]

nn, F = torch.nn, torch.nn.functional


# ---------------------------------------------------------------- LLaMA

def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class _LlamaAttention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        group = self.heads // self.kv_heads               # key/value head j serves query heads j*group .. +group-1
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        y = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class _LlamaMLP(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn, bias=False)
        self.up_proj = nn.Linear(dim, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _LlamaLayer(nn.Module):
    def __init__(self, dim, heads, kv_heads, ffn, eps):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(dim, eps=eps)
        self.self_attn = _LlamaAttention(dim, heads, kv_heads)
        self.post_attention_layernorm = nn.RMSNorm(dim, eps=eps)
        self.mlp = _LlamaMLP(dim, ffn)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Llama(nn.Module):
    """LlamaForCausalLM with the "model." level flattened away (names as the spec's)."""

    def __init__(self, vocab, dim, layers, heads, kv_heads, ffn, eps, theta):
        super().__init__()
        self.head_dim, self.theta = dim // heads, theta
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(_LlamaLayer(dim, heads, kv_heads, ffn, eps) for _ in range(layers))
        self.norm = nn.RMSNorm(dim, eps=eps)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        d = self.head_dim
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        freqs = torch.arange(ids.shape[1], dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.lm_head(self.norm(h))


def torch_llama(vocab=32000, dim=4096, layers=32, heads=32, kv_heads=32, ffn=11008, eps=1e-5, theta=10000.0):
    return _Llama(vocab, dim, layers, heads, kv_heads, ffn, eps, theta)
