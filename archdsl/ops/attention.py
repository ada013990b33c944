"""multihead_attention: torch.nn.MultiheadAttention(batch_first=True) as one layer.

Parameters keep torch's names and layout (in_proj_weight [3E, E], in_proj_bias [3E], out_proj.weight,
out_proj.bias; with kdim or vdim other than E, q_proj_weight [E, E], k_proj_weight [E, kdim] and
v_proj_weight [E, vdim] instead of in_proj_weight), so a torch state_dict loads by name. Self-attention when
no key/value is given, cross attention otherwise; `causal=true` masks key j > query i (torch's is_causal,
top-left aligned); key_padding_mask is bool [B, S], true = ignore that key (torch's convention); attn_mask
is bool (true = not allowed) or float (added to the scores), [T, S] for every batch and head or
[B*H, T, S] (torch's layout, batch-major); the masks given combine as torch combines them (their -inf
and additive terms summed). Lowered as softmax(Q K^T / sqrt(d)) V with MatMul/Softmax, which every opset and
runtime has, or as ONNX Attention where onnxruntime has a kernel for it (opset 23-24), no batch, query or
key length can be 0 (`never_empty`) and causal comes without a mask. A query whose keys are all masked gets
zeros (the out_proj bias after the projection), as onnxruntime's kernel and torch's
F.scaled_dot_product_attention give, at every opset (torch's nn.MultiheadAttention gives 0 when it records
gradients, NaN on its inference fast path)."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, dim_mul, numel
from ._common import float_input, kaiming_uniform, positive, shape_str
from ._common import i64 as _i64
from ._kernels import never_empty, runs_natively
from .registry import Attr, Init, OpDef, ParamSpec, fail, register
from .sdpa import attention_mask, causal_bias, mask_bias, no_key, off_lowest

__all__ = ["decompose", "n_params", "projection_weights", "separate", "slots"]


_OPTIONAL = ("key", "value", "key_padding_mask", "attn_mask")


def separate(a) -> bool:
    """Separate q/k/v projection weights (torch's kdim or vdim other than embed_dim) rather than in_proj_weight."""
    e = a["embed_dim"]
    return a["kdim"] not in (None, e) or a["vdim"] not in (None, e)


def n_params(a) -> int:
    """The parameter inputs after the data: the projection weights (1 or 3), out_proj.weight, and the two
    biases when bias=true."""
    return (3 if separate(a) else 1) + 1 + (2 if a["bias"] else 0)


def slots(data, a) -> dict[str, int]:
    """Where each data input given sits (query, key, value, key_padding_mask, attn_mask): from the `given`
    record the elaborator makes, or, on a node built without it, from the types (key and value are the two
    float rank-3 inputs after the query; one mask alone is the padding mask if it is bool [., .])."""
    given = a.get("given")
    if given is None:
        rest = list(data[1:])
        given = []
        if len(rest) >= 2 and all(t.dtype.is_float and t.rank == 3 for t in rest[:2]):
            given, rest = ["key", "value"], rest[2:]
        if len(rest) == 2:
            given += ["key_padding_mask", "attn_mask"]
        elif len(rest) == 1:
            given.append("key_padding_mask" if rest[0].dtype is DType.bool and rest[0].rank == 2 else "attn_mask")
    names = ["query"] + [n for n in _OPTIONAL if n in given]
    if len(names) != len(data):
        fail(f"multihead_attention: internal: {len(data)} data inputs for {names}")
    return {n: i for i, n in enumerate(names)}


def _split(data, a):
    """(query, key, value, key_padding_mask, attn_mask), None for those not given."""
    at = slots(data, a)
    return tuple(data[at[n]] if n in at else None for n in ("query",) + _OPTIONAL)


def _check(ins, a):
    q, k, v, mask, am = _split(ins, a)
    positive("multihead_attention", a, "embed_dim", "num_heads")
    e, h = a["embed_dim"], a["num_heads"]
    if e % h:
        fail(f"multihead_attention: embed_dim {e} must be divisible by num_heads {h}", "num_heads")
    if (k is None) != (v is None):
        fail("multihead_attention: give both key= and value= (or neither, for self-attention)")
    for name in ("kdim", "vdim"):
        if a[name] is not None and a[name] < 1:
            fail(f"multihead_attention: {name} must be at least 1, got {a[name]}", name)
    if separate(a) and k is None:
        sizes = ", ".join(f"{n}={a[n]}" for n in ("kdim", "vdim") if a[n] is not None)
        fail(f"multihead_attention: {sizes} sets the key's and value's sizes apart from embed_dim {e}; give key= "
             "and value= (self-attention's key and value are the query)")
    for what, t, size in (("query", q, e), ("key", k, a["kdim"] or e), ("value", v, a["vdim"] or e)):
        if t is None:
            continue
        float_input("multihead_attention", t, what)
        if t.rank != 3 or t.shape[-1] != size:
            hint = f" (kdim/vdim set the key's and value's: {what[0]}dim=...)" if what != "query" and \
                t.rank == 3 else ""
            fail(f"multihead_attention: {what} must be [B, L, {size}] (batch_first), got {shape_str(t)}{hint}")
        if t.shape[0] != q.shape[0]:
            fail(f"multihead_attention: {what} batch {t.shape[0]} differs from the query's {q.shape[0]}")
        if t.dtype != q.dtype:
            fail(f"multihead_attention: {what} is {t.dtype}, the query {q.dtype}; cast them to one")
    if k is not None and k.shape[1] != v.shape[1]:
        fail(f"multihead_attention: key {shape_str(k)} and value {shape_str(v)} differ in length")
    src = k if k is not None else q
    if mask is not None and mask.dtype is not DType.bool:
        fail(f"multihead_attention: key_padding_mask must be bool (true = ignore), got {mask.dtype}; torch's float "
             "mask of 0 and -inf is lt(mask, 0.0), and one of other values an attn_mask= added to the scores")
    if mask is not None and tuple(mask.shape) != (src.shape[0], src.shape[1]):
        fail(f"multihead_attention: key_padding_mask must be bool [{src.shape[0]}, {src.shape[1]}], "
             f"got {shape_str(mask)}")
    if am is not None:
        t, s = q.shape[1], src.shape[1]
        bh = dim_mul(q.shape[0], h)
        if am.dtype is not DType.bool and am.dtype != q.dtype:
            fail(f"multihead_attention: attn_mask must be bool (true = not allowed) or {q.dtype} like the query "
                 f"(added to the scores), got {am.dtype}")
        if tuple(am.shape) not in ((t, s), (bh, t, s)):
            fail(f"multihead_attention: attn_mask must be [{t}, {s}] (query length, key length) or "
                 f"[{bh}, {t}, {s}] (batch * heads first, torch's layout), got {shape_str(am)}")
    if not 0.0 <= a["dropout"] <= 1.0:
        fail(f"multihead_attention: dropout must be in [0, 1], got {a['dropout']}", "dropout")
    return q, k, v, mask, am


def _xavier(fan_out: int, fan_in: int) -> Init:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return Init("uniform", -bound, bound)


def _params(ins, a):
    _check(ins, a)
    e = a["embed_dim"]
    if separate(a):  # torch: xavier_uniform_ on each
        specs = [ParamSpec("q_proj_weight", (e, e), _xavier(e, e)),
                 ParamSpec("k_proj_weight", (e, a["kdim"] or e), _xavier(e, a["kdim"] or e)),
                 ParamSpec("v_proj_weight", (e, a["vdim"] or e), _xavier(e, a["vdim"] or e))]
    else:
        specs = [ParamSpec("in_proj_weight", (3 * e, e), _xavier(3 * e, e))]
    if a["bias"]:
        specs.append(ParamSpec("in_proj_bias", (3 * e,), Init("zeros")))
    specs.append(ParamSpec("out_proj.weight", (e, e), kaiming_uniform(e)))
    if a["bias"]:
        specs.append(ParamSpec("out_proj.bias", (e,), Init("zeros")))
    return specs


def _infer(ins, a):
    q, *_ = _check(ins[:-n_params(a)], a)
    return [q]


def projection_weights(params, a):
    """(projection weights: one in_proj_weight or three, in_proj_bias or None, out_proj weight, its bias)."""
    n = 3 if separate(a) else 1
    ws, rest = list(params[:n]), list(params[n:])
    return (ws, rest[0], rest[1], rest[2]) if a["bias"] else (ws, None, rest[0], None)


def _project(e, x, w, b):
    y = e.op("MatMul", [x, e.op("Transpose", [w], perm=[1, 0])])
    return e.op("Add", [y, b]) if b is not None else y


def _heads4(e, m: str, h: int, q: str) -> str:
    """A [B*H, T, S] attn_mask as [B, H, T, S] (batch-major, as torch lays it out). B from the query's heads
    [B, H, T, D] and allowzero: a -1 over no elements, or a T or S of 0 read as "copy that dim", failed at an
    empty T or S (review117)."""
    shape = e.op("Concat", [e.op("Shape", [q], start=0, end=1), _i64(e, [h]), e.op("Shape", [m], start=1)], axis=0)
    return e.op("Reshape", [m, shape], allowzero=1)


def _lower(e, ins, outs, c):
    a = c.attrs
    n = n_params(a)
    data, params = ins[:-n], ins[-n:]
    at = slots(c.in_types[:-n], a)
    q_t, k_t, _, mask_t, am_t = _check(c.in_types[:-n], a)
    ws, b, ow, ob = projection_weights(params, a)
    emb, h = a["embed_dim"], a["num_heads"]
    d = emb // h
    dt = q_t.dtype.numpy
    thirds = _i64(e, [emb, emb, emb])
    if k_t is None:
        qkv = _project(e, data[0], ws[0], b)
        q, k, v = e.op("Split", [qkv, thirds], n_out=3, axis=-1)
    else:
        if len(ws) == 1:
            ws = e.op("Split", [ws[0], thirds], n_out=3, axis=0)
        bs = e.op("Split", [b, thirds], n_out=3, axis=0) if b is not None else (None, None, None)
        q, k, v = (_project(e, data[at[x]], wi, bi) for x, wi, bi in zip(("query", "key", "value"), ws, bs))
    heads = _i64(e, [0, 0, h, d])
    q = e.op("Transpose", [e.op("Reshape", [q, heads])], perm=[0, 2, 1, 3])       # [B, H, T, D]
    v = e.op("Transpose", [e.op("Reshape", [v, heads])], perm=[0, 2, 1, 3])       # [B, H, S, D]
    t, s = q_t.shape[1], (k_t if k_t is not None else q_t).shape[1]
    lengths = (*q_t.shape[:-1], *(k_t if k_t is not None else q_t).shape[:-1])
    pad = data[at["key_padding_mask"]] if mask_t is not None else None
    am = data[at["attn_mask"]] if am_t is not None else None
    if (e.opset >= 23 and not (a["causal"] and (pad is not None or am is not None)) and never_empty(*lengths)
            and q_t.dtype is DType.float32 and runs_natively("Attention", e.opset)):  # as sdpa's (ops/sdpa.py)
        k = e.op("Transpose", [e.op("Reshape", [k, heads])], perm=[0, 2, 1, 3])   # [B, H, S, D]
        ctx = _native(e, q, k, v, pad, am, am_t, h, a["causal"], t, s, dt)
    else:
        k = e.op("Transpose", [e.op("Reshape", [k, heads])], perm=[0, 2, 3, 1])   # [B, H, D, S]
        scores = e.op("MatMul", [e.op("Mul", [q, e.const(np.array(1.0 / math.sqrt(d), dtype=dt))]), k])
        bias = causal_bias(e, scores, t, s, 4, dt) if a["causal"] else None          # [T, S]
        if pad is not None:
            m = mask_bias(e, e.op("Unsqueeze", [pad, _i64(e, [1, 2])]), dt, attend=False)  # [B, 1, 1, S]
            bias = m if bias is None else e.op("Add", [bias, m])
        if am is not None:  # bool: true = not allowed; float: added as it is
            m = mask_bias(e, am, dt, attend=False) if am_t.dtype is DType.bool else am  # [T, S] or [B*H, T, S]
            m = _heads4(e, m, h, q) if am_t.rank == 3 else m
            bias = m if bias is None else e.op("Add", [bias, m])
        wide = bias is not None and q_t.dtype.is_16bit and am_t is not None and am_t.dtype is not DType.bool
        if wide:  # a float attn_mask added and normalized in float32, as sdpa's (HF's -65504 rounds scores away)
            scores = e.op("Add", [e.op("Cast", [scores], to=DType.float32.onnx), e.op("Cast", [bias],
                                                                                      to=DType.float32.onnx)])
        elif bias is not None:  # one Add of a small 0/-inf mask (sdpa.mask_bias)
            scores = e.op("Add", [scores, bias])
        probs = e.op("Softmax", [scores], axis=-1)
        ctx = e.op("MatMul", [e.op("Cast", [probs], to=q_t.dtype.onnx) if wide else probs, v])  # [B, H, T, D]
        if pad is not None or am is not None:  # a query left no key (causal alone leaves one): zeros, not NaN
            ctx = e.op("Where", [no_key(e, bias, dt), e.const(np.array(0, dtype=dt)), ctx])
    ctx = e.op("Reshape", [e.op("Transpose", [ctx], perm=[0, 2, 1, 3]), _i64(e, [0, 0, emb])])
    y = e.op("MatMul", [ctx, e.op("Transpose", [ow], perm=[1, 0])], outputs=None if ob is not None else outs)
    if ob is not None:
        e.op("Add", [y, ob], outputs=outs)


def _native(e, q, k, v, padding, am, am_t, h: int, causal: bool, t, n, dt):
    """ONNX Attention on [B, H, L, D] heads where onnxruntime has the kernel (opset 23-24: 0.94-1.01x the
    MatMul/Softmax decomposition, see ops/sdpa.py), the masks in its convention: bool true = attend (the
    padding mask and a bool attn_mask flipped, and-ed when both), or one float mask added (a float
    attn_mask, the padding mask added to it as 0/-inf); its default scale is torch's 1/sqrt(D)."""
    ins = [q, k, v]
    mask, shape = None, None
    if padding is not None:
        mask, shape = e.op("Not", [e.op("Unsqueeze", [padding, _i64(e, [1, 2])])]), ("B", 1, 1, n)  # [B, 1, 1, S]
    if am is not None:
        m = e.op("Not", [am]) if am_t.dtype is DType.bool else off_lowest(e, am, am_t.dtype)
        m = _heads4(e, m, h, q) if am_t.rank == 3 else m
        if mask is not None and am_t.dtype is DType.bool:
            m = e.op("And", [mask, m])
        elif mask is not None:
            m = e.op("Add", [m, mask_bias(e, mask, dt, attend=True)])
        mask, shape = m, (t, n)
    if mask is not None:
        ins.append(attention_mask(e, mask, shape, q, k, t, n))
    return e.op("Attention", ins, is_causal=int(causal))


def decompose(r, c, vals, dropout=None):
    """The op in registry ops, as the lowering computes it: for its gradient, and for training, where
    `dropout(r, probs)` (when given) drops attention weights after the softmax as torch does."""
    from .sdpa import _attend
    a = c.attrs
    n = n_params(a)
    at = slots(c.in_types[:-n], a)
    q_t, k_t, _, mask_t, am_t = _check(c.in_types[:-n], a)
    emb, h = a["embed_dim"], a["num_heads"]
    data, params = list(vals[:-n]), list(vals[-n:])
    ws, bias, ow, ob = projection_weights(params, a)

    def proj(x, wi, bi):
        y = r.op("matmul", x, r.op("transpose", wi))
        return r.op("add", y, bi) if bi is not None else y

    if k_t is None:
        q, k, v = r.op("split", proj(data[0], ws[0], bias), sizes=(emb,), axis=-1)
    else:
        if len(ws) == 1:
            ws = r.op("split", ws[0], sizes=(emb,), axis=0)
        bs = r.op("split", bias, sizes=(emb,), axis=0) if bias is not None else (None, None, None)
        q, k, v = (proj(data[at[x]], wi, bi) for x, wi, bi in zip(("query", "key", "value"), ws, bs))

    def heads(t):
        return r.op("permute", r.op("reshape", t, shape=(t.type.shape[0], t.type.shape[1], h, emb // h)),
                    dims=(0, 2, 1, 3))

    m = None
    if mask_t is not None:  # true = ignore: -inf there
        pad = r.op("unsqueeze", r.op("unsqueeze", data[at["key_padding_mask"]], dim=1), dim=1)   # [B, 1, 1, S]
        m = r.op("where", pad, r.const(-np.inf, like=q), r.const(0.0, like=q))
    if am_t is not None:  # bool: true = not allowed; float: added
        am = data[at["attn_mask"]]
        if am_t.dtype is DType.bool:
            am = r.op("where", am, r.const(-np.inf, like=q), r.const(0.0, like=q))
        if am_t.rank == 3:
            am = r.op("reshape", am, shape=(q_t.shape[0], h) + tuple(am_t.shape[1:]))
        m = am if m is None else r.op("add", m, am)
    ctx = _attend(r, heads(q), heads(k), heads(v), m, a["causal"], 1.0 / math.sqrt(emb // h), dropout)
    ctx = r.op("reshape", r.op("permute", ctx, dims=(0, 2, 1, 3)), shape=(q_t.shape[0], q_t.shape[1], emb))
    return proj(ctx, ow, ob)


def _grad(b, c, ins, outs, gouts):
    """Through the decomposition the lowering uses (a float attn_mask gets the gradient of the scores it is
    added to). Attention dropout is the identity here (inference); a train step first rewrites the layer
    into decompose(..., dropout) (autodiff/train_mode.py)."""
    return b.vjp(lambda r, *vals: decompose(r, c, vals), list(ins), gouts)


def _cost(c):
    """The four projections and the two products, and per score its scale and softmax (6) and a mask's add, as
    scaled_dot_product_attention counts them."""
    a = c.attrs
    q, k, v, mask, am = _split(c.in_types[:-n_params(a)], a)
    e = a["embed_dim"]
    t = numel(q.shape[:-1])
    s = numel((k if k is not None else q).shape[:-1])
    kd, vd = (k.shape[-1], v.shape[-1]) if k is not None else (e, e)
    scores = t * (s // max(1, numel(q.shape[:1])))  # per head: [B, T, S]
    per_score = 6 + (mask is not None or am is not None or a["causal"])
    return 2 * e * (2 * e * t + (kd + vd) * s) + 4 * scores * e + per_score * a["num_heads"] * scores


register(OpDef(
    name="multihead_attention", inputs=("query", "key?", "value?", "key_padding_mask?", "attn_mask?"),
    category="layer",
    attrs=(Attr("embed_dim", "int"), Attr("num_heads", "int"), Attr("bias", "bool", True),
           Attr("causal", "bool", False), Attr("dropout", "float", 0.0), Attr("kdim", "int?", None),
           Attr("vdim", "int?", None), Attr("given", "given", None)),
    params=_params, infer=_infer, lower=_lower, cost=_cost, grad=_grad,
    doc="Multi-head attention, torch.nn.MultiheadAttention(batch_first=True) layout: self or cross (key=, value=), "
        "kdim/vdim for keys and values of other sizes (then q_proj_weight, k_proj_weight, v_proj_weight as "
        "torch), causal mask (key j > query i: top-left aligned as torch's is_causal), key_padding_mask (bool "
        "[B, S], true = ignore), attn_mask (bool, true = not allowed, or float, added; [T, S] or [B*H, T, S]); "
        "the masks combine. A query left no key gets zeros. At opset 23-24 a float32 one runs as onnxruntime's "
        "Attention kernel, which refuses a batch or sequence of length 0 (other opsets take one): a length that "
        "can be 0 (a formula such as (T+1)//2 after a strided conv) is written out as at other opsets.",
))
