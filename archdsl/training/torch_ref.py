"""The same forward graph run eagerly in PyTorch: each IR op mapped to its torch function, parameters as
leaf tensors. The train-step tests and the benchmark compare onnxruntime's step with torch autograd/optim
on exactly the graph archdsl compiled. Needs torch; only the tests and the benchmark import it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from archdsl.ir import Graph
from archdsl.ops import attention
from archdsl.ops.random import randint_bounds
from archdsl.types import Sym, dim_size

if TYPE_CHECKING:
    from archdsl.autodiff import OptimConfig

__all__ = ["TorchGraph", "torch_loss", "torch_optimizer"]


def _dim(d, env):
    n = dim_size(d, env)
    assert n is not None, f"cannot size {d}"
    return n


def _pads(node, n):
    from archdsl.ops.conv import geometry  # the same padding rule the lowering uses
    _k, s, d, pads = geometry(node.inputs[0].type, node.attrs, n)
    return s, d, pads


def _pair(v) -> tuple:
    return tuple(v) * 2 if len(v) == 1 else tuple(v)


def _blocks(node) -> dict:
    """unfold's and fold's kernel_size, dilation, padding and stride as torch's pairs."""
    return {k: _pair(node.attrs[k]) for k in ("kernel_size", "dilation", "padding", "stride")}


def _conv(n):
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]

    def run(node, x, w, b=None):
        """nn.ConvNd's forward: padding_mode other than zeros is F.pad in that mode, then an unpadded conv."""
        s, d, pads = _pads(node, n)
        flat = [p for pair in reversed(pads) for p in pair]
        mode = node.attrs.get("padding_mode", "zeros")
        if mode != "zeros":
            x, pad = F.pad(x, flat, mode=mode), 0
        elif any(p[0] != p[1] for p in pads):
            x, pad = F.pad(x, flat), 0
        else:
            pad = [p[0] for p in pads]
        return fn(x, w, b, stride=s, padding=pad, dilation=d, groups=node.attrs["groups"])
    return run


def _functional_conv(node, x, w, b=None):
    """conv / conv_transpose(x, weight): the layer of the weight's rank, with the attributes the op lowers
    with."""
    from types import SimpleNamespace

    from archdsl.ops.conv import functional_as_layer
    name, attrs = functional_as_layer([v.type for v in node.inputs], node.attrs)
    return _OPS[name](SimpleNamespace(inputs=node.inputs, attrs=attrs), x, w, b)


def _pool(kind, n):
    def run(node, x):
        a = node.attrs
        st = a["stride"] if a["stride"] is not None else a["kernel_size"]
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
            return fn(x, a["kernel_size"], st, a["padding"], dilation=a["dilation"], ceil_mode=a["ceil_mode"])
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
        return fn(x, a["kernel_size"], st, a["padding"], ceil_mode=a["ceil_mode"],
                  count_include_pad=a["count_include_pad"])
    return run


def _getitem(node, x):
    idx = []
    for e in node.attrs["index"]:
        idx.append(Ellipsis if e[0] == "e" else e[1] if e[0] == "i" else slice(e[1], e[2], e[3]))
    return x[tuple(idx)]


def _reduce(fn):
    def run(node, x):
        dims = node.attrs["dim"]
        dims = tuple(dims) if dims is not None else tuple(range(x.dim()))
        return fn(x, dims, node.attrs["keepdim"])
    return run


def _causal(node, x):
    t, s = x.shape[-2], x.shape[-1]
    keep = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(s - t)
    v = node.attrs["value"]
    v = {"-inf": -math.inf, "inf": math.inf}.get(v, v) if isinstance(v, str) else v
    return x.masked_fill(~keep, v)


def _fill(node, x, m):
    v = node.attrs["value"]
    v = {"-inf": -math.inf, "inf": math.inf}.get(v, v) if isinstance(v, str) else v
    return x.masked_fill(m, v)


def _mha(node, *args):
    """torch's own multi-head attention (F.multi_head_attention_forward, sequence-first) on the batch-first
    inputs: query, [key, value], [key_padding_mask], [attn_mask], then in_proj weight (or q, k and v
    projection weights)[, bias], out_proj weight[, bias]. causal=true is torch's causal attn_mask, joined to a
    given one (true or -inf where key j > query i)."""
    a = node.attrs
    n = attention.n_params(a)
    data, params = list(args[:-n]), args[-n:]
    at = attention.slots([v.type for v in node.inputs[:-n]], a)
    ws, b, ow, ob = attention.projection_weights(params, a)
    q = data[0]
    k, v = (data[at["key"]], data[at["value"]]) if "key" in at else (q, q)
    pad = data[at["key_padding_mask"]] if "key_padding_mask" in at else None
    mask = data[at["attn_mask"]] if "attn_mask" in at else None
    if a["causal"]:  # top-left aligned, as torch's is_causal; true = not attended
        causal = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool, device=q.device).tril().logical_not()
        mask = causal if mask is None else mask | causal if mask.dtype == torch.bool else \
            mask.masked_fill(causal, -math.inf)
    sep = len(ws) == 3
    y, _ = F.multi_head_attention_forward(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), a["embed_dim"], a["num_heads"],
        None if sep else ws[0], b, None, None, False, a["dropout"], ow, ob, training=a["dropout"] > 0,
        key_padding_mask=pad, need_weights=False, attn_mask=mask, use_separate_proj_weight=sep,
        q_proj_weight=ws[0] if sep else None, k_proj_weight=ws[1] if sep else None,
        v_proj_weight=ws[2] if sep else None)
    return y.transpose(0, 1)


_RNN_MODULES: dict = {}


def _rnn(cell):
    """torch.nn.LSTM/GRU with the graph's parameter tensors (torch.func.functional_call), in train mode as
    torch trains it (dropout between layers active)."""
    def run(node, x, *rest):
        from archdsl.ops.recurrent import _param_names
        a = node.attrs
        names = _param_names(a)
        states, params = rest[:len(rest) - len(names)], rest[len(rest) - len(names):]
        lengths = states[-1] if states and not states[-1].is_floating_point() else None
        states = states[:-1] if lengths is not None else states
        key = (cell, x.shape[-1], tuple(sorted(a.items())), x.dtype, x.device)
        if key not in _RNN_MODULES:
            cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
            _RNN_MODULES[key] = cls(x.shape[-1], a["hidden_size"], a["num_layers"], bias=a["bias"],
                                    batch_first=a["batch_first"], dropout=a["dropout"],
                                    bidirectional=a["bidirectional"], dtype=x.dtype, device=x.device)
        hx = (tuple(states) if cell == "lstm" else states[0]) if states else None
        if lengths is not None:  # a packed batch, padded back with zeros to the input's length
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=a["batch_first"],
                                                             enforce_sorted=False)
            y, final = torch.func.functional_call(_RNN_MODULES[key], dict(zip(names, params)), (packed, hx))
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=a["batch_first"],
                                                          total_length=x.shape[1 if a["batch_first"] else 0])
        else:
            y, final = torch.func.functional_call(_RNN_MODULES[key], dict(zip(names, params)), (x, hx))
        if not a["return_state"]:
            return y
        return (y, *final) if cell == "lstm" else (y, final)
    return run


def _dtype(n, x):
    """zeros_like/ones_like/full_like's dtype= (None: x's)."""
    return x.dtype if n.attrs["dtype"] is None else getattr(torch, n.attrs["dtype"])


def _full_value(v):
    """full_like's value: "inf"/"-inf" as numbers (true/false and numbers as they are)."""
    return {"inf": math.inf, "-inf": -math.inf}.get(v, v) if isinstance(v, str) else v


def _cdist_p(p) -> float:
    """cdist's p: "inf" as a number."""
    return float("inf") if p == "inf" else float(p)


def _drop_path(x, p: float):
    """timm's drop_path in training: each example kept with probability 1 - p, scaled by 1/(1-p)."""
    if p == 0:
        return x
    keep = (torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= p).to(x.dtype)
    return x * keep / (1 - p)


def _src(x, i, s):
    """scatter's src as torch takes it: x's dtype (a float64 reference's constants stay float32), a number spread
    over index."""
    s = s.to(x.dtype)
    return s.expand(i.shape) if s.dim() == 0 else s


_OPS = {
    "linear": lambda n, x, w, b=None: F.linear(x, w, b),
    "batchnorm": lambda n, x, *p: F.batch_norm(
        x, p[-2], p[-1], p[0] if n.attrs["affine"] else None, p[1] if n.attrs["affine"] else None,
        training=True, momentum=n.attrs["momentum"], eps=n.attrs["eps"]),
    "layernorm": lambda n, x, *p: F.layer_norm(x, tuple(n.attrs["normalized_shape"] or (x.shape[-1],)),
                                               *p, eps=n.attrs["eps"]),
    "dropout": lambda n, x: F.dropout(x, n.attrs["p"], training=n.attrs["p"] > 0),
    "drop_path": lambda n, x: _drop_path(x, n.attrs["p"]),
    "relu": lambda n, x: F.relu(x), "sigmoid": lambda n, x: torch.sigmoid(x), "tanh": lambda n, x: torch.tanh(x),
    "leaky_relu": lambda n, x: F.leaky_relu(x, n.attrs["negative_slope"]), "silu": lambda n, x: F.silu(x),
    "gelu": lambda n, x: F.gelu(x, approximate=n.attrs["approximate"]),
    "softmax": lambda n, x: torch.softmax(x, n.attrs["axis"]),
    "log_softmax": lambda n, x: torch.log_softmax(x, n.attrs["axis"]),
    "add": lambda n, a, b: a + b, "sub": lambda n, a, b: a - b, "mul": lambda n, a, b: a * b,
    "div": lambda n, a, b: a / b, "pow": lambda n, a, b: a ** b, "matmul": lambda n, a, b: a @ b,
    "neg": lambda n, x: -x, "exp": lambda n, x: x.exp(), "log": lambda n, x: x.log(), "sqrt": lambda n, x: x.sqrt(),
    "abs": lambda n, x: x.abs(), "erf": lambda n, x: torch.erf(x), "reciprocal": lambda n, x: 1 / x,
    "sin": lambda n, x: x.sin(), "cos": lambda n, x: x.cos(),
    "clamp": lambda n, x: torch.clamp(x, n.attrs["min"], n.attrs["max"]),
    "hardtanh": lambda n, x: F.hardtanh(x, n.attrs["min_val"], n.attrs["max_val"]), "relu6": lambda n, x: F.relu6(x),
    "hardsigmoid": lambda n, x: F.hardsigmoid(x), "hardswish": lambda n, x: F.hardswish(x),
    "elu": lambda n, x: F.elu(x, n.attrs["alpha"]), "mish": lambda n, x: F.mish(x),
    "softplus": lambda n, x: F.softplus(x, n.attrs["beta"], n.attrs["threshold"]),
    "minimum": lambda n, a, b: torch.minimum(a, b), "maximum": lambda n, a, b: torch.maximum(a, b),
    "eq": lambda n, a, b: a == b, "ne": lambda n, a, b: a != b, "lt": lambda n, a, b: a < b,
    "le": lambda n, a, b: a <= b, "gt": lambda n, a, b: a > b, "ge": lambda n, a, b: a >= b,
    "global_avgpool": lambda n, x: x.mean(tuple(range(2, x.dim())), keepdim=n.attrs["keepdims"]),
    "global_maxpool": lambda n, x: x.amax(tuple(range(2, x.dim())), keepdim=n.attrs["keepdims"]),
    "flatten": lambda n, x: torch.flatten(x, n.attrs["start_dim"], n.attrs["end_dim"]),
    "permute": lambda n, x: x.permute(*n.attrs["dims"]),
    "transpose": lambda n, x: x.transpose(n.attrs["dim0"], n.attrs["dim1"]),
    "concat": lambda n, *xs: torch.cat(xs, n.attrs["axis"]),
    "roll": lambda n, x: torch.roll(x, tuple(n.attrs["shifts"]), tuple(n.attrs["dims"])),
    "floordiv": lambda n, a, b: torch.div(a, b, rounding_mode="floor"),
    "remainder": lambda n, a, b: torch.remainder(a, b),
    "floor": lambda n, x: torch.floor(x), "ceil": lambda n, x: torch.ceil(x),
    "round": lambda n, x: torch.round(x, decimals=n.attrs["decimals"]), "sign": lambda n, x: torch.sign(x),
    "rsqrt": lambda n, x: torch.rsqrt(x), "cumsum": lambda n, x: torch.cumsum(x, n.attrs["dim"]),
    "argmax": lambda n, x: torch.argmax(x, n.attrs["dim"], n.attrs["keepdim"]),
    "argmin": lambda n, x: torch.argmin(x, n.attrs["dim"], n.attrs["keepdim"]),
    "tril": lambda n, x: torch.tril(x, n.attrs["diagonal"]), "triu": lambda n, x: torch.triu(x, n.attrs["diagonal"]),
    "stack": lambda n, *xs: torch.stack(xs, n.attrs["dim"]),
    "var": lambda n, x: torch.var(x, n.attrs["dim"], correction=n.attrs["correction"], keepdim=n.attrs["keepdim"]),
    "std": lambda n, x: torch.std(x, n.attrs["dim"], correction=n.attrs["correction"], keepdim=n.attrs["keepdim"]),
    "logsumexp": lambda n, x: torch.logsumexp(x, tuple(n.attrs["dim"]), n.attrs["keepdim"]),
    "normalize": lambda n, x: F.normalize(x, n.attrs["p"], n.attrs["dim"], n.attrs["eps"]),
    "cosine_similarity": lambda n, a, b: F.cosine_similarity(a, b, n.attrs["dim"], n.attrs["eps"]),
    "selu": lambda n, x: F.selu(x), "celu": lambda n, x: F.celu(x, n.attrs["alpha"]),
    "glu": lambda n, x: F.glu(x, n.attrs["dim"]), "logsigmoid": lambda n, x: F.logsigmoid(x),
    "softsign": lambda n, x: F.softsign(x), "detach": lambda n, x: x.detach(),
    "zeros_like": lambda n, x: torch.zeros_like(x, dtype=_dtype(n, x)),
    "ones_like": lambda n, x: torch.ones_like(x, dtype=_dtype(n, x)),
    "full_like": lambda n, x: torch.full_like(x, _full_value(n.attrs["value"]), dtype=_dtype(n, x)),
    "prelu": lambda n, x, w: F.prelu(x, w),
    "topk": lambda n, x: tuple(torch.topk(x, n.attrs["k"], n.attrs["dim"], n.attrs["largest"], n.attrs["sorted"])),
    "gather": lambda n, x, i: torch.gather(x, n.attrs["dim"], i.long()),
    "one_hot": lambda n, i: F.one_hot(i.long(), n.attrs["num_classes"]),
    "tile": lambda n, x: torch.tile(x, n.attrs["dims"]),
    "chunk": lambda n, x: torch.chunk(x, n.attrs["chunks"], n.attrs["dim"]),
    "unbind": lambda n, x: torch.unbind(x, n.attrs["dim"]),
    "sort": lambda n, x: tuple(torch.sort(x, dim=n.attrs["dim"], descending=n.attrs["descending"], stable=True)),
    "argsort": lambda n, x: torch.argsort(x, dim=n.attrs["dim"], descending=n.attrs["descending"], stable=True),
    "searchsorted": lambda n, s, v: torch.searchsorted(s, v, right=n.attrs["right"], side=n.attrs["side"]),
    "scatter_add": lambda n, x, i, s: x.scatter_add(n.attrs["dim"], i.long(), s),
    "scatter": lambda n, x, i, s: x.scatter(n.attrs["dim"], i.long(), _src(x, i, s)),
    "scatter_reduce": lambda n, x, i, s: x.scatter_reduce(n.attrs["dim"], i.long(), _src(x, i, s), n.attrs["reduce"],
                                                          include_self=n.attrs["include_self"]),
    "index_add": lambda n, x, i, s: torch.index_add(x, n.attrs["dim"], i.long(), s, alpha=_alpha(n, x)),
    "cumprod": lambda n, x: torch.cumprod(x, n.attrs["dim"]),
    "unfold": lambda n, x: F.unfold(x, **_blocks(n)),
    "fold": lambda n, x: F.fold(x, _pair(n.attrs["output_size"]), **_blocks(n)),
    "local_response_norm": lambda n, x: F.local_response_norm(x, n.attrs["size"], n.attrs["alpha"], n.attrs["beta"],
                                                               n.attrs["k"]),
    "cdist": lambda n, a, b: torch.cdist(a, b, _cdist_p(n.attrs["p"]), compute_mode="donot_use_mm_for_euclid_dist"),
    "repeat_interleave": lambda n, x: torch.repeat_interleave(x, n.attrs["repeats"], dim=n.attrs["dim"]),
    "eye": lambda n: torch.eye(n.attrs["n"], n.attrs["m"] if n.attrs["m"] is not None else n.attrs["n"],
                               dtype=getattr(torch, n.attrs["dtype"])),
    "einsum": lambda n, *xs: torch.einsum(n.attrs["equation"], *xs),
    "getitem": _getitem, "embedding": lambda n, ids, w: F.embedding(ids, w, padding_idx=n.attrs["padding_idx"]),
    "unsqueeze": lambda n, x: x.unsqueeze(n.attrs["dim"]),
    "squeeze": lambda n, x: x.squeeze(tuple(n.attrs["dim"])) if n.attrs["dim"] is not None else x.squeeze(),
    "mean": _reduce(torch.mean), "sum": _reduce(torch.sum), "amax": _reduce(torch.amax),
    "amin": _reduce(torch.amin),
    "where": lambda n, c, a, b: torch.where(c, a, b), "masked_fill": _fill, "causal_mask": _causal,
    "positions": lambda n, x: torch.arange(n.attrs["start"], n.attrs["start"] + x.shape[n.attrs["dim"]],
                                           device=x.device),
}


def _alpha(n, x):
    """index_add's alpha, an int for an integer tensor (torch refuses a float one there)."""
    a = n.attrs["alpha"]
    return a if x.is_floating_point() else int(a)


def _cross_entropy(n, x, labels):
    """archdsl's classes sit on `axis`; torch's F.cross_entropy reads them from dim 1 of [N, C]."""
    a = n.attrs
    ignore = a["ignore_index"]
    per = F.cross_entropy(torch.movedim(x, a["axis"], -1).reshape(-1, x.shape[a["axis"]]), labels.reshape(-1).long(),
                          label_smoothing=a["label_smoothing"], ignore_index=-100 if ignore is None else ignore,
                          reduction=a["reduction"])
    return per.reshape(labels.shape) if a["reduction"] == "none" else per


def _output_size(n):
    o = n.attrs["output_size"]
    return tuple(o) if isinstance(o, (list, tuple)) else o


def _upsample(n, x, like=None):
    a = n.attrs
    linear = a["mode"] in ("linear", "bilinear", "trilinear", "bicubic")
    size = tuple(like.shape[2:]) if like is not None else a["size"]
    if size is not None and len(size) == 1:
        size = size * (x.dim() - 2)
    sf = a["scale_factor"]
    return F.interpolate(x, size=None if size is None else tuple(size),
                         scale_factor=None if sf is None else tuple(sf) if isinstance(sf, (list, tuple)) else sf,
                         mode=a["mode"], align_corners=a["align_corners"] if linear else None)


_OPS["upsample"] = _upsample
_OPS["cross_entropy"] = _cross_entropy
_OPS["bce_with_logits"] = lambda n, x, t: F.binary_cross_entropy_with_logits(x, t, reduction=n.attrs["reduction"])
_OPS["lstm"], _OPS["gru"] = _rnn("lstm"), _rnn("gru")
_OPS["multihead_attention"] = _mha
_OPS["pixel_shuffle"] = lambda n, x: F.pixel_shuffle(x, n.attrs["upscale_factor"])
_OPS["pixel_unshuffle"] = lambda n, x: F.pixel_unshuffle(x, n.attrs["downscale_factor"])
_OPS["flip"] = lambda n, x: torch.flip(x, tuple(n.attrs["dims"]))
_OPS["instance_norm"] = lambda n, x, *p: F.instance_norm(x, weight=p[0] if p else None, bias=p[1] if p else None,
                                                         eps=n.attrs["eps"])
def _conv_transpose(n):
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]

    def run(node, x, w, b=None):
        from archdsl.ops.shapes import expand
        a = node.attrs
        geo = {k: tuple(expand(a[k], n, k)) for k in ("stride", "padding", "output_padding", "dilation")}
        return fn(x, w, b, groups=a["groups"], **geo)
    return run


def _take(n, x, idx):
    """numpy.take along an axis: x's dims before it, idx's dims, x's dims after it."""
    axis = n.attrs["axis"] % x.dim()
    return x[(slice(None),) * axis + (idx.long(),)]


def _sinusoidal(n, t):
    from archdsl.ops.sinusoidal import reference
    a = n.attrs
    return torch.from_numpy(reference(t.cpu().numpy(), a["dim"], a["max_period"], a["freq_shift"],
                                      a["flip_sin_to_cos"], a["interleave"])).to(t.device)


_OPS["group_norm"] = lambda n, x, *p: F.group_norm(x, n.attrs["num_groups"], *p, eps=n.attrs["eps"])
_OPS["rms_norm"] = lambda n, x, *p: F.rms_norm(x, tuple(n.attrs["normalized_shape"] or (x.shape[-1],)),
                                               p[0] if p else None, eps=n.attrs["eps"])
def _pad(n, x):
    """F.pad; its reflect/replicate/circular modes pad all spatial dims of [N, C, ...] or none, so fewer pairs
    are filled out with (0, 0)."""
    pad, mode = tuple(n.attrs["pad"]), n.attrs["mode"]
    if mode == "constant":
        return F.pad(x, pad, value=n.attrs["value"])
    return F.pad(x, pad + (0,) * max(0, 2 * (x.dim() - 2) - len(pad)), mode)


_OPS["pad"] = _pad
_OPS["scaled_dot_product_attention"] = lambda n, q, k, v, m=None: F.scaled_dot_product_attention(
    q, k, v, attn_mask=m, dropout_p=n.attrs["dropout_p"], is_causal=n.attrs["causal"], scale=n.attrs["scale"],
    enable_gqa=n.attrs["enable_gqa"])
_OPS["conv"] = _OPS["conv_transpose"] = _functional_conv
_OPS["dim_size"] = lambda n, x: torch.tensor(x.shape[n.attrs["axis"]], dtype=getattr(torch, n.attrs["dtype"]),
                                             device=x.device)
for _name in ("rand_like", "randn_like"):  # torch's own generator: the same distribution, not the same numbers
    _OPS[_name] = (lambda fn: lambda n, x, seed=None: fn(x, dtype=getattr(torch, n.attrs["dtype"] or "float32")
                                                             if n.attrs["dtype"] or not x.is_floating_point()
                                                             else x.dtype))(getattr(torch, _name))
_OPS["randint_like"] = lambda n, x, seed=None: torch.randint_like(
    x, *randint_bounds(n.attrs), dtype=getattr(torch, n.attrs["dtype"]) if n.attrs["dtype"] else x.dtype)
for _name in ("logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
              "bitwise_not", "lgamma", "digamma"):
    _OPS[_name] = (lambda fn: lambda n, *xs: fn(*xs))(getattr(torch, _name))
for _name in ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log1p", "expm1", "log2",
              "log10", "trunc", "frac", "isnan", "isinf", "isfinite", "atan2", "logaddexp", "fmod"):
    _OPS[_name] = (lambda fn: lambda n, *xs: fn(*xs))(getattr(torch, _name))
_OPS["nan_to_num"] = lambda n, x: torch.nan_to_num(x, n.attrs["nan"], n.attrs["posinf"], n.attrs["neginf"])
_OPS["grid_sample"] = lambda n, x, g: F.grid_sample(x, g, mode=n.attrs["mode"], padding_mode=n.attrs["padding_mode"],
                                                  align_corners=n.attrs["align_corners"])
_OPS["affine_grid"] = lambda n, t: F.affine_grid(t, [t.shape[0], *n.attrs["size"][1:]],
                                                 align_corners=n.attrs["align_corners"])
_OPS["norm"] = lambda n, x: torch.linalg.vector_norm(
    x, ord={"inf": math.inf, "-inf": -math.inf, "fro": 2.0}.get(n.attrs["p"], n.attrs["p"]), dim=n.attrs["dim"],
    keepdim=n.attrs["keepdim"])
_OPS["ctc_loss"] = lambda n, lp, y, il, tl: F.ctc_loss(lp, y, il, tl, blank=n.attrs["blank"],
                                                     reduction=n.attrs["reduction"],
                                                     zero_infinity=n.attrs["zero_infinity"])
_OPS["gemm"] = lambda n, a, b, c=None: a @ b if c is None else a @ b + c
_OPS["take"] = _take
_OPS["heaviside"] = lambda n, x: torch.heaviside(
    x, torch.tensor(n.attrs["value_at_zero"], dtype=x.dtype, device=x.device))
_OPS["sinusoidal_embedding"] = _sinusoidal
for _n in (1, 2, 3):
    _OPS[f"conv_transpose{_n}d"] = _conv_transpose(_n)
    _OPS[f"conv{_n}d"] = _conv(_n)
    _OPS[f"maxpool{_n}d"] = _pool("max", _n)
    _OPS[f"avgpool{_n}d"] = _pool("avg", _n)
for _n, _avg, _max in ((1, F.adaptive_avg_pool1d, F.adaptive_max_pool1d),
                       (2, F.adaptive_avg_pool2d, F.adaptive_max_pool2d),
                       (3, F.adaptive_avg_pool3d, F.adaptive_max_pool3d)):
    _OPS[f"adaptive_avgpool{_n}d"] = lambda n, x, f=_avg: f(x, _output_size(n))
    _OPS[f"adaptive_maxpool{_n}d"] = lambda n, x, f=_max: f(x, _output_size(n))


class TorchGraph:
    """Parameters (leaf tensors, requires_grad) and buffers initialized from numpy arrays by name."""

    def __init__(self, graph: Graph, values: dict[str, np.ndarray], device: str = "cpu"):
        self.graph = graph
        self.device = device
        self.params = {v.name: torch.tensor(values[v.name], device=device, requires_grad=True)
                       for v in graph.trainable()}
        self.buffers = {v.name: torch.tensor(values[v.name], device=device) for v in graph.buffers()}

    def forward(self, feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        g = self.graph
        env: dict[str, int] = {}
        vals: dict[int, torch.Tensor] = {}
        for v in g.inputs:
            t = torch.from_numpy(np.asarray(feeds[v.name])).to(self.device)
            for d, size in zip(v.type.shape, t.shape):
                if isinstance(d, Sym) and len(d.factors) == 1 and d.coef == 1:
                    env[d.factors[0]] = int(size)
            vals[id(v)] = t
        for k, v in g.params.items():
            vals[id(v)] = self.params[k] if k in self.params else self.buffers[k]
        for c in g.consts:
            vals[id(c)] = torch.from_numpy(np.array(c.data)).to(self.device)
        for node in g.nodes:
            args = [vals[id(v)] for v in node.inputs]
            if node.op == "reshape":
                out = args[0].reshape([_dim(d, env) for d in node.attrs["shape"]])
            elif node.op == "expand":
                out = args[0].expand([_dim(d, env) for d in node.attrs["shape"]])
            elif node.op == "split":
                sizes = node.attrs["sizes"]
                out = torch.split(args[0], sizes[0] if len(sizes) == 1 else list(sizes), node.attrs["axis"])
            elif node.op == "cast":
                out = args[0].to(getattr(torch, node.attrs["dtype"]))
            else:
                out = _OPS[node.op](node, *args)
                if not node.inputs:  # a creation op (eye) makes its tensor on the CPU
                    out = out.to(self.device)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            for o, t in zip(node.outputs, outs):
                vals[id(o)] = t
        return {k: vals[id(v)] for k, v in g.outputs}


def torch_loss(kind: str, pred: torch.Tensor, labels: np.ndarray, label_smoothing: float = 0.0,
               ignore_index: int | None = None) -> torch.Tensor:
    lab = torch.from_numpy(labels).to(pred.device)
    if kind == "cross_entropy":
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), lab.reshape(-1), label_smoothing=label_smoothing,
                               ignore_index=-100 if ignore_index is None else ignore_index)
    if kind == "mse":
        return F.mse_loss(pred, lab)
    return F.binary_cross_entropy_with_logits(pred, lab)


def torch_optimizer(o: OptimConfig, params, lr: float):
    """torch.optim's optimizer for an archdsl OptimConfig, every setting passed (the callers spelled its fields
    out one by one, and a new one could be left behind)."""
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, nesterov=o.nesterov, dampening=o.dampening,
                               weight_decay=o.decay)
    adam = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return adam(params, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.decay, amsgrad=o.amsgrad)
