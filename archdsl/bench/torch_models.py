"""Plain-PyTorch twins of the specs in specs/, written from the papers and the module layouts of torchvision
and Hugging Face, so that a module's state_dict keys are exactly the spec's parameter names: the same weights
load into both (`export_weights` -> `archdsl build --weights W.npz`). Used by the benchmark (torch.onnx.export
of the same architecture) and by tests/torch_equiv (numerical equivalence). Import only where torch is
installed. Constructors take the spec's params under the same names."""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPT2", "MLP", "MODELS", "Bert", "EfficientNet", "LeNet5", "ResNet", "VisionTransformer", "build",
           "export_weights", "randomize_"]


def export_weights(module: nn.Module) -> dict[str, np.ndarray]:
    """The state_dict as numpy arrays, keyed like the spec's parameters (BatchNorm's step counter left out)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked")}


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere torch's init leaves something trivial (norm scales of 1, zero biases,
    BatchNorm statistics 0/1, zero tokens), so an equivalence test really exercises each of them."""
    g = torch.Generator().manual_seed(seed)
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        leaf = name.rsplit(".", 1)[-1]
        if not t.is_floating_point():
            pass
        elif leaf == "running_var":
            t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
        elif leaf == "running_mean" or leaf.endswith("bias"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        elif t.dim() == 1:                                   # norm scales
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif bool((t == 0).all()):                           # class token and other zero-initialized tensors
            t.copy_(torch.randn(t.shape, generator=g) * 0.02)
    return module


# ---------------------------------------------------------------------------------------------- MLP, LeNet-5
class MLP(nn.Module):
    """specs/mlp.arch: fc1 -> ReLU -> fc2."""

    def __init__(self, hidden: int = 256, classes: int = 10, inputs: int = 784):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(inputs, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class LeNet5(nn.Module):
    """specs/lenet5.arch: tanh convolutions c1/c3/c5 with 2x2 average pooling, then f6 and output."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.c1, self.c3, self.c5 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5), nn.Conv2d(16, 120, 5)
        self.f6, self.output = nn.Linear(120, 84), nn.Linear(84, classes)

    def forward(self, x):
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.c3(x)), 2)
        x = torch.flatten(torch.tanh(self.c5(x)), 1)
        return self.output(torch.tanh(self.f6(x)))


# ------------------------------------------------------------------------------------------------- ResNet
class _Block(nn.Module):
    """torchvision's BasicBlock (conv1/bn1, conv2/bn2) or Bottleneck (1x1, 3x3 with the stride (v1.5), 1x1 x4)."""

    def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool):
        super().__init__()
        self.expansion = 4 if bottleneck else 1
        ks = [(1, 1), (3, stride), (1, 1)] if bottleneck else [(3, stride), (3, 1)]
        self.n, c = len(ks), cin
        for i, (k, st) in enumerate(ks, 1):
            out = planes * self.expansion if i == len(ks) else planes
            self.add_module(f"conv{i}", nn.Conv2d(c, out, k, st, k // 2, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(out))
            c = out
        self.downsample = None if stride == 1 and cin == c else \
            nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            out = F.relu(out) if i < self.n else out
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


RESNET_LAYOUTS = {18: (False, [2, 2, 2, 2]), 34: (False, [3, 4, 6, 3]), 50: (True, [3, 4, 6, 3]),
                  101: (True, [3, 4, 23, 3]), 152: (True, [3, 8, 36, 3])}          # bottleneck?, blocks per stage


class ResNet(nn.Module):
    """specs/resnet.arch (torchvision layout). `resolution` is accepted for parity; the pooling is global."""

    def __init__(self, depth: int = 50, classes: int = 1000, resolution: int = 224):
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError("depth must be one of 18, 34, 50, 101, 152")
        bottleneck, counts = RESNET_LAYOUTS[depth]
        self.conv1, self.bn1, cin = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), 64
        for i, n in enumerate(counts):
            planes, blocks = 64 * 2 ** i, []
            for j in range(n):
                blocks.append(_Block(cin, planes, 2 if j == 0 and i > 0 else 1, bottleneck))
                cin = planes * blocks[-1].expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ------------------------------------------------------------------------------------------- EfficientNet
def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never more than 10% below v (EfficientNet's channel rounding)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _cna(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
         eps: float = 1e-5) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> optional SiLU, children named 0, 1 (, 2)."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=eps)]
    return nn.Sequential(*layers, *([nn.SiLU()] if act else []))


class _SqueezeExcitation(nn.Module):
    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class _MBConv(nn.Module):
    def __init__(self, cin: int, expand: int, k: int, stride: int, cout: int, eps: float):
        super().__init__()
        hidden = make_divisible(cin * expand)
        layers = [_cna(cin, hidden, 1, eps=eps)] if hidden != cin else []
        layers += [_cna(hidden, hidden, k, stride, hidden, eps=eps), _SqueezeExcitation(hidden, max(1, cin // 4)),
                   _cna(hidden, cout, 1, act=False, eps=eps)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout      # stochastic depth is the identity at inference

    def forward(self, x):
        return self.block(x) + x if self.residual else self.block(x)


EFFICIENTNET_SCALING = {"b0": (1.0, 1.0, 0.2), "b1": (1.0, 1.1, 0.2), "b2": (1.1, 1.2, 0.3), "b3": (1.2, 1.4, 0.3),
                        "b4": (1.4, 1.8, 0.4), "b5": (1.6, 2.2, 0.4), "b6": (1.8, 2.6, 0.5),
                        "b7": (2.0, 3.1, 0.5)}                               # width, depth, dropout
EFFICIENTNET_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                       (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]               # expand, kernel, stride, out, repeats


class EfficientNet(nn.Module):
    """specs/efficientnet.arch: B0..B7 by compound scaling (torchvision layout). `resolution` is accepted for
    parity with the spec; the pooling is global, so any input size runs."""

    def __init__(self, variant: str = "b0", classes: int = 1000, resolution: int | None = None):
        super().__init__()
        if variant not in EFFICIENTNET_SCALING:
            raise ValueError("variant must be one of b0, b1, b2, b3, b4, b5, b6, b7")
        width, depth, dropout = EFFICIENTNET_SCALING[variant]
        eps = 1e-3 if variant in ("b5", "b6", "b7") else 1e-5
        cin = make_divisible(32 * width)
        features = [_cna(3, cin, 3, 2, eps=eps)]
        for expand, k, stride, cout, n in EFFICIENTNET_STAGES:
            cout, blocks = make_divisible(cout * width), []
            for j in range(math.ceil(n * depth)):
                blocks.append(_MBConv(cin, expand, k, stride if j == 0 else 1, cout, eps))
                cin = cout
            features.append(nn.Sequential(*blocks))
        features.append(_cna(cin, 4 * cin, 1, eps=eps))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * cin, classes))
        if variant in ("b5", "b6", "b7"):  # torchvision: BatchNorm2d(eps=0.001, momentum=0.01) for these
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.01

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ------------------------------------------------------------------------------------ Vision Transformer
class _EncoderBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_dim: int, p: float):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(hidden, eps=1e-6), nn.LayerNorm(hidden, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.dropout = nn.Dropout(p)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp_dim), nn.GELU(), nn.Dropout(p), nn.Linear(mlp_dim, hidden),
                                 nn.Dropout(p))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.dropout(self.self_attention(h, h, h, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class _Encoder(nn.Module):
    def __init__(self, tokens: int, layers: int, hidden: int, heads: int, mlp_dim: int, p: float):
        super().__init__()
        self.pos_embedding, self.dropout = nn.Parameter(torch.empty(1, tokens, hidden).normal_(std=0.02)), nn.Dropout(p)
        self.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", _EncoderBlock(hidden, heads, mlp_dim, p))
                                                for i in range(layers)))
        self.ln = nn.LayerNorm(hidden, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """specs/vit.arch (torchvision VisionTransformer layout); defaults are ViT-B/16 at 224x224."""

    def __init__(self, image: int = 224, patch: int = 16, layers: int = 12, heads: int = 12, hidden: int = 768,
                 mlp_dim: int = 3072, classes: int = 1000, channels_in: int = 3, dropout_p: float = 0.0):
        super().__init__()
        if image % patch:
            raise ValueError("image size must be a multiple of the patch size")
        self.conv_proj = nn.Conv2d(channels_in, hidden, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.encoder = _Encoder((image // patch) ** 2 + 1, layers, hidden, heads, mlp_dim, dropout_p)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden, classes)))

    def forward(self, x):
        h = self.conv_proj(x).flatten(2).permute(0, 2, 1)                 # [B, patches, hidden]
        h = torch.cat([self.class_token.expand(h.shape[0], -1, -1), h], dim=1)
        return self.heads(self.encoder(h)[:, 0])


# --------------------------------------------------------------------------------------------------- BERT
def _heads(x, n: int):
    b, t, c = x.shape
    return x.view(b, t, n, c // n).transpose(1, 2)


class _AddNorm(nn.Module):
    """BertSelfOutput / BertOutput: dense, dropout, residual, LayerNorm."""

    def __init__(self, cin: int, cout: int, eps: float, p: float):
        super().__init__()
        self.dense, self.LayerNorm, self.dropout = nn.Linear(cin, cout), nn.LayerNorm(cout, eps=eps), nn.Dropout(p)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class _BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, p: float):
        super().__init__()
        self.heads, self.p = heads, p
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))

    def forward(self, x, mask):
        q, k, v = (_heads(f(x), self.heads) for f in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        return y.transpose(1, 2).reshape(x.shape)


class _BertLayer(nn.Module):
    """attention.self, attention.output, intermediate.dense, output: post-norm self-attention and GELU MLP."""

    def __init__(self, hidden: int, heads: int, inner: int, eps: float, p: float):
        super().__init__()
        self.attention, self.intermediate = nn.Module(), nn.Module()
        self.attention.self = _BertSelfAttention(hidden, heads, p)
        self.attention.output = _AddNorm(hidden, hidden, eps, p)
        self.intermediate.dense = nn.Linear(hidden, inner)
        self.output = _AddNorm(inner, hidden, eps, p)

    def forward(self, x, mask):
        a = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate.dense(a)), a)


class Bert(nn.Module):
    """specs/bert.arch (Hugging Face BertModel names, no "bert." prefix); returns (last_hidden_state, pooler_output)."""

    def __init__(self, size: str = "base", vocab_size: int = 30522, hidden_size: int | None = None,
                 num_hidden_layers: int | None = None, num_attention_heads: int | None = None,
                 intermediate_size: int | None = None, max_position_embeddings: int = 512, type_vocab_size: int = 2,
                 layer_norm_eps: float = 1e-12, pdrop: float = 0.1):
        super().__init__()
        layers, hidden, heads = {"base": (12, 768, 12), "large": (24, 1024, 16)}[size]
        layers, hidden, heads = num_hidden_layers or layers, hidden_size or hidden, num_attention_heads or heads
        inner = intermediate_size or 4 * hidden
        self.embeddings = emb = nn.Module()
        emb.word_embeddings = nn.Embedding(vocab_size, hidden)
        emb.position_embeddings = nn.Embedding(max_position_embeddings, hidden)
        emb.token_type_embeddings = nn.Embedding(type_vocab_size, hidden)
        emb.LayerNorm, emb.dropout = nn.LayerNorm(hidden, eps=layer_norm_eps), nn.Dropout(pdrop)
        self.encoder, self.pooler = nn.Module(), nn.Module()
        self.encoder.layer = nn.ModuleList(_BertLayer(hidden, heads, inner, layer_norm_eps, pdrop)
                                           for _ in range(layers))
        self.pooler.dense = nn.Linear(hidden, hidden)

    def forward(self, input_ids, token_type_ids, attention_mask):
        e = self.embeddings
        pos = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        h = e.word_embeddings(input_ids) + e.position_embeddings(pos) + e.token_type_embeddings(token_type_ids)
        h = e.dropout(e.LayerNorm(h))
        mask = (1.0 - attention_mask.to(h.dtype))[:, None, None, :] * torch.finfo(h.dtype).min
        for layer in self.encoder.layer:
            h = layer(h, mask)
        return h, torch.tanh(self.pooler.dense(h[:, 0]))


# -------------------------------------------------------------------------------------------------- GPT-2
class Conv1D(nn.Module):
    """Hugging Face's GPT-2 projection: weight stored [in, out], y = x @ weight + bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        return x @ self.weight + self.bias


class _GPTAttention(nn.Module):
    def __init__(self, width: int, heads: int, p: float):
        super().__init__()
        self.heads, self.p = heads, p
        self.c_attn, self.c_proj = Conv1D(width, 3 * width), Conv1D(width, width)
        self.resid_dropout = nn.Dropout(p)

    def forward(self, x):
        q, k, v = (_heads(t, self.heads) for t in self.c_attn(x).split(x.shape[-1], dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(x.shape)))


class _GPTBlock(nn.Module):
    def __init__(self, width: int, heads: int, eps: float, p: float):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width, eps=eps), _GPTAttention(width, heads, p)
        self.ln_2, self.mlp = nn.LayerNorm(width, eps=eps), nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(width, 4 * width), Conv1D(4 * width, width)
        self.mlp.dropout = nn.Dropout(p)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        m = self.mlp
        return x + m.dropout(m.c_proj(F.gelu(m.c_fc(self.ln_2(x)), approximate="tanh")))


GPT2_SIZES = {"small": (12, 12, 768), "medium": (24, 16, 1024), "large": (36, 20, 1280), "xl": (48, 25, 1600)}


class GPT2(nn.Module):
    """specs/gpt2.arch (Hugging Face GPT-2 names without "transformer."); LM head tied to wte; returns logits."""

    def __init__(self, size: str = "small", n_layer: int | None = None, n_head: int | None = None,
                 n_embd: int | None = None, vocab: int = 50257, n_positions: int = 1024, eps: float = 1e-5,
                 pdrop: float = 0.1):
        super().__init__()
        layers, heads, width = GPT2_SIZES[size]
        layers, heads, width = n_layer or layers, n_head or heads, n_embd or width
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(n_positions, width)
        self.drop = nn.Dropout(pdrop)
        self.h = nn.ModuleList(_GPTBlock(width, heads, eps, pdrop) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, eps=eps)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        h = self.drop(self.wte(input_ids) + self.wpe(pos))
        for block in self.h:
            h = block(h)
        return self.ln_f(h) @ self.wte.weight.T


# ------------------------------------------------------------------------------------------------ registry
MODELS = {
    "mlp": MLP, "lenet5": LeNet5, "resnet": ResNet, "efficientnet": EfficientNet, "vit": VisionTransformer,
    "bert": Bert, "gpt2": GPT2,
    # the benchmark's workload (archdsl/bench/models.py keys)
    "resnet50": partial(ResNet, depth=50), "efficientnet_b0": partial(EfficientNet, variant="b0"),
    "vit_b16": VisionTransformer, "bert_base": partial(Bert, size="base"), "gpt2_small": partial(GPT2, size="small"),
}


def build(key: str, **defines) -> nn.Module:
    """The module for a spec name (`resnet`, with its params as keywords) or a benchmark key (`resnet50`),
    in eval mode. KeyError for an unknown key."""
    return MODELS[key](**defines).eval()
