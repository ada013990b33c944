"""PyTorch references for specs/llama.arch, specs/convnext.arch, specs/mobilenet_v2.arch and specs/swin.arch,
written directly in torch from the papers and from Hugging Face's / torchvision's module structure (the same
parameter names as the specs), for tests/specs/test_new_specs.py. Built on torch's meta device they count the full
sizes without memory."""

from __future__ import annotations

import math

import torch

__all__ = ["torch_llama", "torch_convnext", "torch_mobilenet_v2", "torch_swin", "make_divisible"]

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


# ---------------------------------------------------------------- ConvNeXt

class _LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of NCHW (torchvision's LayerNorm2d)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class _CNBlock(nn.Module):
    def __init__(self, c, layer_scale):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(c, c, 7, padding=3, groups=c), _Permute([0, 2, 3, 1]),
                                   nn.LayerNorm(c, eps=1e-6), nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c),
                                   _Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), layer_scale))

    def forward(self, x):                   # stochastic depth: the identity in eval mode
        return x + self.layer_scale * self.block(x)


class _ConvNeXt(nn.Module):
    def __init__(self, dims, depths, classes, layer_scale):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), _LayerNorm2d(dims[0], eps=1e-6))]
        for i, (c, n) in enumerate(zip(dims, depths)):
            layers.append(nn.Sequential(*[_CNBlock(c, layer_scale) for _ in range(n)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(_LayerNorm2d(c, eps=1e-6), nn.Conv2d(c, dims[i + 1], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(_LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], classes))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1))


CONVNEXT = {"tiny": ([96, 192, 384, 768], [3, 3, 9, 3]), "small": ([96, 192, 384, 768], [3, 3, 27, 3]),
            "base": ([128, 256, 512, 1024], [3, 3, 27, 3]), "large": ([192, 384, 768, 1536], [3, 3, 27, 3])}


def torch_convnext(variant="tiny", dims=None, depths=None, classes=1000, layer_scale=1e-6):
    dims = dims or CONVNEXT[variant][0]
    depths = depths or CONVNEXT[variant][1]
    return _ConvNeXt(dims, depths, classes, layer_scale)


# ---------------------------------------------------------------- MobileNetV2

def make_divisible(v, divisor=8):
    """A multiple of divisor near v, never more than 10% below it (torchvision's _make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _cbr6(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = int(round(cin * t))
        layers = [_cbr6(cin, hidden, 1)] if t != 1 else []
        layers += [_cbr6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class _MobileNetV2(nn.Module):
    def __init__(self, width_mult, classes):
        super().__init__()
        settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                    (6, 320, 1, 1)]
        cin = make_divisible(32 * width_mult)
        layers = [_cbr6(3, cin, 3, 2)]
        for t, c, n, s in settings:
            for j in range(n):
                cout = make_divisible(c * width_mult)
                layers.append(_InvertedResidual(cin, cout, s if j == 0 else 1, t))
                cin = cout
        last = make_divisible(1280 * max(1.0, width_mult))
        layers.append(_cbr6(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def torch_mobilenet_v2(width_mult=1.0, classes=1000):
    return _MobileNetV2(width_mult, classes)


# ---------------------------------------------------------------- Swin Transformer

SWIN = {"tiny": (96, [2, 2, 6, 2], [3, 6, 12, 24]), "small": (96, [2, 2, 18, 2], [3, 6, 12, 24]),
        "base": (128, [2, 2, 18, 2], [4, 8, 16, 32])}


class _WindowAttention(nn.Module):
    """Attention inside each window of [B, H, W, C], the windows shifted by `shift` first (torch.roll) and the
    regions the shift brought together masked with -100; a learned bias per relative position and head."""

    def __init__(self, dim, heads, window, shift):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1],
                             persistent=False)

    def forward(self, x):
        b, h, w, c = x.shape
        ws, s, n = self.window, self.shift, self.window ** 2
        if s:
            x = torch.roll(x, (-s, -s), (1, 2))
        win = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, n, c)
        q, k, v = self.qkv(win).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if s:
            region = torch.zeros(h, w)
            label = 0
            for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                    region[hs, wsl] = label
                    label += 1
            region = region.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, n)
            mask = (region.unsqueeze(1) - region.unsqueeze(2)).ne(0).float() * -100.0
            nw = mask.shape[0]
            attn = (attn.view(-1, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
        out = self.proj(out).view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return torch.roll(out, (s, s), (1, 2)) if s else out


class _SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, shift):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, heads, window, shift)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class _Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class _Swin(nn.Module):
    def __init__(self, dim, depths, heads, window, resolution, classes):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dim, 4, 4), _Permute([0, 2, 3, 1]), nn.LayerNorm(dim))]
        res = resolution // 4
        for i, (n, h) in enumerate(zip(depths, heads)):
            d = dim * 2 ** i
            layers.append(nn.Sequential(*[_SwinBlock(d, h, window, window // 2 if j % 2 and res > window else 0)
                                          for j in range(n)]))
            if i + 1 < len(depths):
                layers.append(_PatchMerging(d))
                res //= 2
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim * 2 ** (len(depths) - 1))
        self.head = nn.Linear(dim * 2 ** (len(depths) - 1), classes)

    def forward(self, x):
        return self.head(self.norm(self.features(x)).mean(dim=(1, 2)))


def torch_swin(variant="tiny", embed_dim=None, depths=None, heads=None, window=7, resolution=224, classes=1000):
    dim, d, h = SWIN[variant]
    return _Swin(embed_dim or dim, depths or d, heads or h, window, resolution, classes)
