"""multihead_attention: torch.nn.MultiheadAttention(batch_first=True) as one layer.

Parameters keep torch's names and layout (in_proj_weight [3E, E], in_proj_bias [3E], out_proj.weight,
out_proj.bias), so a torch state_dict loads by name. Self-attention when no key/value is given, cross
attention otherwise; `causal=true` masks key j > query i (torch's is_causal, top-left aligned);
key_padding_mask is bool [B, S], true = ignore that key (torch's convention). Lowered as
softmax(Q K^T / sqrt(d)) V with MatMul/Softmax, which every opset and runtime has, or as ONNX Attention where
onnxruntime has a kernel for it (opset 23-24) and no batch, query or key length can be 0 (`never_empty`).
A query whose keys are all masked gets zeros (the out_proj bias after the projection), as onnxruntime's
kernel and torch's F.scaled_dot_product_attention give, at every opset (torch's nn.MultiheadAttention gives
0 when it records gradients, NaN on its inference fast path)."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, numel
from ._common import float_input, kaiming_uniform, shape_str
from ._common import i64 as _i64
from ._kernels import never_empty, runs_natively
from .registry import Attr, Init, OpDef, ParamSpec, fail, register
from .sdpa import attention_mask, causal_bias, mask_bias, no_key

__all__ = ["decompose"]


def _n_params(a) -> int:
    return 4 if a["bias"] else 2


def _split(ins, a):
    """(query, key or None, value or None, key_padding_mask or None) from the data inputs given."""
    q, rest = ins[0], list(ins[1:])
    mask = rest.pop() if rest and rest[-1].dtype is DType.bool else None
    if rest and rest[-1].rank == 2:
        fail(f"multihead_attention: key_padding_mask must be bool (true = ignore), got {rest[-1].dtype}")
    if len(rest) == 1:
        fail("multihead_attention: give both key= and value= (or neither, for self-attention)")
    k, v = (rest[0], rest[1]) if rest else (None, None)
    return q, k, v, mask


def _check(ins, a):
    q, k, v, mask = _split(ins, a)
    e, h = a["embed_dim"], a["num_heads"]
    if h <= 0 or e % h:
        fail(f"multihead_attention: embed_dim {e} must be divisible by num_heads {h}")
    for what, t in (("query", q), ("key", k), ("value", v)):
        if t is None:
            continue
        float_input("multihead_attention", t, what)
        if t.rank != 3 or t.shape[-1] != e:
            fail(f"multihead_attention: {what} must be [B, L, {e}] (batch_first), got {shape_str(t)}")
        if t.shape[0] != q.shape[0]:
            fail(f"multihead_attention: {what} batch {t.shape[0]} differs from the query's {q.shape[0]}")
    if k is not None and k.shape[1] != v.shape[1]:
        fail(f"multihead_attention: key {shape_str(k)} and value {shape_str(v)} differ in length")
    src = k if k is not None else q
    if mask is not None and tuple(mask.shape) != (src.shape[0], src.shape[1]):
        fail(f"multihead_attention: key_padding_mask must be bool [{src.shape[0]}, {src.shape[1]}], "
             f"got {shape_str(mask)}")
    if not 0.0 <= a["dropout"] < 1.0:
        fail(f"multihead_attention: dropout must be in [0, 1), got {a['dropout']}")
    return q, k, v, mask


def _params(ins, a):
    _check(ins, a)
    e = a["embed_dim"]
    xavier = math.sqrt(6.0 / (e + 3 * e))
    specs = [ParamSpec("in_proj_weight", (3 * e, e), Init("uniform", -xavier, xavier))]
    if a["bias"]:
        specs.append(ParamSpec("in_proj_bias", (3 * e,), Init("zeros")))
    specs.append(ParamSpec("out_proj.weight", (e, e), kaiming_uniform(e)))
    if a["bias"]:
        specs.append(ParamSpec("out_proj.bias", (e,), Init("zeros")))
    return specs


def _infer(ins, a):
    n = _n_params(a)
    q, *_ = _check(ins[:-n], a)
    return [q]


def _project(e, x, w, b):
    y = e.op("MatMul", [x, e.op("Transpose", [w], perm=[1, 0])])
    return e.op("Add", [y, b]) if b is not None else y


def _lower(e, ins, outs, c):
    a = c.attrs
    n = _n_params(a)
    data, params = ins[:-n], ins[-n:]
    data_t = c.in_types[:-n]
    q_t, k_t, _, mask_t = _check(data_t, a)
    w, b, ow, ob = (params if a["bias"] else (params[0], None, params[1], None))
    emb, h = a["embed_dim"], a["num_heads"]
    d = emb // h
    dt = q_t.dtype.numpy
    thirds = _i64(e, [emb, emb, emb])
    if k_t is None:
        qkv = _project(e, data[0], w, b)
        q, k, v = e.op("Split", [qkv, thirds], n_out=3, axis=-1)
    else:
        ws = e.op("Split", [w, thirds], n_out=3, axis=0)
        bs = e.op("Split", [b, thirds], n_out=3, axis=0) if b is not None else (None, None, None)
        q, k, v = (_project(e, x, wi, bi) for x, wi, bi in zip(data[:3], ws, bs))
    heads = _i64(e, [0, 0, h, d])
    q = e.op("Transpose", [e.op("Reshape", [q, heads])], perm=[0, 2, 1, 3])       # [B, H, T, D]
    v = e.op("Transpose", [e.op("Reshape", [v, heads])], perm=[0, 2, 1, 3])       # [B, H, S, D]
    t, n = q_t.shape[1], (k_t if k_t is not None else q_t).shape[1]
    lengths = (*q_t.shape[:-1], *(k_t if k_t is not None else q_t).shape[:-1])
    if (e.opset >= 23 and not (a["causal"] and mask_t is not None) and never_empty(*lengths)
            and runs_natively("Attention", e.opset)):
        k = e.op("Transpose", [e.op("Reshape", [k, heads])], perm=[0, 2, 1, 3])   # [B, H, S, D]
        ctx = _native(e, q, k, v, data[-1] if mask_t is not None else None, a["causal"], t, n)
    else:
        k = e.op("Transpose", [e.op("Reshape", [k, heads])], perm=[0, 2, 3, 1])   # [B, H, D, S]
        scores = e.op("MatMul", [e.op("Mul", [q, e.const(np.array(1.0 / math.sqrt(d), dtype=dt))]), k])
        bias = causal_bias(e, scores, t, n, 4, dt) if a["causal"] else None          # [T, S]
        if mask_t is not None:
            pad = mask_bias(e, e.op("Unsqueeze", [data[-1], _i64(e, [1, 2])]), dt, attend=False)  # [B, 1, 1, S]
            bias = pad if bias is None else e.op("Add", [bias, pad])
        if bias is not None:  # one Add of a small 0/-inf mask (sdpa.mask_bias)
            scores = e.op("Add", [scores, bias])
        ctx = e.op("MatMul", [e.op("Softmax", [scores], axis=-1), v])               # [B, H, T, D]
        if mask_t is not None:  # a query left no key (causal alone always leaves one): zeros, not NaN
            ctx = e.op("Where", [no_key(e, bias, dt), e.const(np.array(0, dtype=dt)), ctx])
    ctx = e.op("Reshape", [e.op("Transpose", [ctx], perm=[0, 2, 1, 3]), _i64(e, [0, 0, emb])])
    y = e.op("MatMul", [ctx, e.op("Transpose", [ow], perm=[1, 0])], outputs=None if ob is not None else outs)
    if ob is not None:
        e.op("Add", [y, ob], outputs=outs)


def _native(e, q, k, v, padding, causal: bool, t, n):
    """ONNX Attention on [B, H, L, D] heads where onnxruntime has the kernel (opset 23-24: 0.94-1.01x the
    MatMul/Softmax decomposition, see ops/sdpa.py), the padding mask flipped to its convention (true =
    attend); its default scale is torch's 1/sqrt(D)."""
    ins = [q, k, v]
    if padding is not None:
        keep = e.op("Not", [e.op("Unsqueeze", [padding, _i64(e, [1, 2])])])           # [B, 1, 1, S]
        ins.append(attention_mask(e, keep, ("B", 1, 1, n), q, k, t, n))
    return e.op("Attention", ins, is_causal=int(causal))


def decompose(r, c, vals, dropout=None):
    """The op in registry ops, as the lowering computes it: for its gradient, and for training, where
    `dropout(r, probs)` (when given) drops attention weights after the softmax as torch does."""
    from .sdpa import _attend
    a = c.attrs
    n = _n_params(a)
    q_t, k_t, _, mask_t = _check(c.in_types[:-n], a)
    emb, h = a["embed_dim"], a["num_heads"]
    data, params = list(vals[:-n]), list(vals[-n:])
    w, bias, ow, ob = params if a["bias"] else (params[0], None, params[1], None)
    mask = data.pop() if mask_t is not None else None

    def proj(x, wi, bi):
        y = r.op("matmul", x, r.op("transpose", wi))
        return r.op("add", y, bi) if bi is not None else y

    if k_t is None:
        q, k, v = r.op("split", proj(data[0], w, bias), sizes=(emb,), axis=-1)
    else:
        ws = r.op("split", w, sizes=(emb,), axis=0)
        bs = r.op("split", bias, sizes=(emb,), axis=0) if bias is not None else (None, None, None)
        q, k, v = (proj(x, wi, bi) for x, wi, bi in zip(data, ws, bs))

    def heads(t):
        return r.op("permute", r.op("reshape", t, shape=(t.type.shape[0], t.type.shape[1], h, emb // h)),
                    dims=(0, 2, 1, 3))

    m = None
    if mask is not None:  # true = ignore: attend where it is false
        m = r.op("where", r.op("unsqueeze", r.op("unsqueeze", mask, dim=1), dim=1), r.const(-np.inf, like=q),
                 r.const(0.0, like=q))
    ctx = _attend(r, heads(q), heads(k), heads(v), m, a["causal"], 1.0 / math.sqrt(emb // h), dropout)
    ctx = r.op("reshape", r.op("permute", ctx, dims=(0, 2, 1, 3)), shape=(q_t.shape[0], q_t.shape[1], emb))
    return proj(ctx, ow, ob)


def _grad(b, c, ins, outs, gouts):
    """Through the decomposition the lowering uses. Attention dropout is the identity here (inference);
    a train step first rewrites the layer into decompose(..., dropout) (autodiff/train_mode.py)."""
    return b.vjp(lambda r, *vals: decompose(r, c, vals), list(ins), gouts)


def _cost(c):
    n = _n_params(c.attrs)
    q, k, _, _ = _split(c.in_types[:-n], c.attrs)
    e = c.attrs["embed_dim"]
    t = numel(q.shape[:-1])
    s = numel((k if k is not None else q).shape[:-1])
    return 2 * e * e * (2 * t + 2 * s) + 4 * t * (s // max(1, numel(q.shape[:1]))) * e


register(OpDef(
    name="multihead_attention", inputs=("query", "key?", "value?", "key_padding_mask?"), category="layer",
    attrs=(Attr("embed_dim", "int"), Attr("num_heads", "int"), Attr("bias", "bool", True),
           Attr("causal", "bool", False), Attr("dropout", "float", 0.0)),
    params=_params, infer=_infer, lower=_lower, cost=_cost, grad=_grad,
    doc="Multi-head attention, torch.nn.MultiheadAttention(batch_first=True) layout: self or cross (key=, value=), "
        "causal mask, key_padding_mask (bool [B, S], true = ignore).",
))
