"""scaled_dot_product_attention: softmax(q k^T * scale + mask) v, torch.nn.functional's semantics.

Written directly in a spec or made by the fuse_attention pass from its primitives. ONNX Attention at
opset 23+ on rank-4 inputs [B, H, T, D] where onnxruntime has a kernel for it and no length can be 0
(`_kernels.never_empty`), the decomposition otherwise
(onnxruntime 1.32 CPU, 2 threads, [1, 12, 128, 64]: the kernel takes 0.94x the decomposition's time with a
causal mask, 0.96x with a padding mask, 0.98x unmasked, and 1.01x unmasked at T = 197; see _kernels.py).
`causal` masks key j > query i (top-left aligned, torch's is_causal); `mask` is additive (float) or bool
(true = attend), broadcast to [..., T, S]. A query the mask leaves no key to attend to gets zeros (and
zero gradients), as torch's F.scaled_dot_product_attention and onnxruntime's Attention kernel give: a plain
softmax would make it NaN. The decomposition pays for that only when a mask is given."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, numel
from ._common import fill_array, float_input, reduce_op, shape_str, tril_keep
from ._kernels import attention_scale_fits, never_empty, runs_natively
from .registry import Attr, OpCall, OpDef, fail, register
from .shapes import broadcast

__all__ = ["written"]


def _infer(ins, a):
    q, k, v = ins[:3]
    if not 0.0 <= a["dropout_p"] <= 1.0:
        fail(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {a['dropout_p']}", "dropout_p")
    for what, t in (("query", q), ("key", k), ("value", v)):
        float_input("scaled_dot_product_attention", t, what)
        if t.rank < 2:
            fail(f"scaled_dot_product_attention: {what} needs [..., L, D], got {shape_str(t)}")
    gqa = _grouped(q, k, a)
    if gqa:  # torch's enable_gqa: key and value have fewer heads, each serving q_heads / kv_heads queries' heads
        hq, hk = q.shape[-3], k.shape[-3]
        if not (isinstance(hq, int) and isinstance(hk, int) and hq % hk == 0) or v.shape[-3] != hk:
            fail(f"scaled_dot_product_attention: enable_gqa needs the query's heads (dim -3 of {shape_str(q)}) to "
                 f"be a multiple of key's and value's ({shape_str(k)}, {shape_str(v)}), all known sizes")
    lead = (lambda t: t.shape[:-3]) if gqa else (lambda t: t.shape[:-2])  # gqa: the heads checked above
    if not (q.rank == k.rank == v.rank) or _lead_mismatch(lead(q), lead(k), lead(v)):
        fewer = not a["enable_gqa"] and q.rank >= 3 and k.rank == q.rank and q.shape[:-3] == k.shape[:-3] \
            and k.shape[:-2] == v.shape[:-2]
        fail(f"scaled_dot_product_attention: query {shape_str(q)}, key {shape_str(k)} and value {shape_str(v)} "
             "must have the same leading dims, or sizes 1 that broadcast"
             + (" (fewer key/value heads: enable_gqa=true)" if fewer else ""))
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        fail(f"scaled_dot_product_attention: query {shape_str(q)}, key {shape_str(k)}, value {shape_str(v)} "
             "disagree (query and key need one head size, key and value one length)")
    if q.dtype != k.dtype or k.dtype != v.dtype:
        fail("scaled_dot_product_attention: query, key and value differ in dtype")
    lead_out = _leads(q, k, v)
    scores = lead_out + (q.shape[-2], k.shape[-2])
    if len(ins) > 3:
        m = ins[3]
        if m.dtype is not DType.bool and m.dtype != q.dtype:
            fail(f"scaled_dot_product_attention: mask must be bool or {q.dtype}, got {m.dtype}")
        if m.rank == 0:  # a scalar lowered to a ReduceMax over its axis -1, which onnx refuses; torch too
            fail(f"scaled_dot_product_attention: mask must have at least the key dim, [..., {scores[-2]}, "
                 f"{scores[-1]}] or [{scores[-1]}] (sizes 1 broadcast), got a scalar")
        if broadcast(scores, m.shape, "attention scores and mask") != tuple(scores):
            fail(f"scaled_dot_product_attention: mask {shape_str(m)} does not broadcast to the scores {list(scores)}")
        if a["causal"]:
            fail("scaled_dot_product_attention: give causal=true or a mask, not both")
    if a["scale"] is None and not isinstance(q.shape[-1], int):
        fail(f"scaled_dot_product_attention: the head size of query {shape_str(q)} is symbolic, so the default "
             "scale 1/sqrt(head size) is unknown; give scale=")
    if a["scale"] is not None:  # a constant of q's dtype below opset 23: 1e6 in float16 would be inf
        fill_array("scaled_dot_product_attention: scale", a["scale"], q.dtype, named_infinity=False)
    return [q.with_shape(lead_out + (q.shape[-2], v.shape[-1]))]


def _lead_mismatch(*leads) -> bool:
    """Whether leading dims differ other than by a size 1 (torch's math: Perceiver's latent queries [1, H, M, D]
    against keys [B, H, N, D]: mixers hunt)."""
    return any(len({d for d in dims if d != 1}) > 1 for dims in zip(*leads))


def _leads(q, k, v) -> tuple:
    """The leading dims (all but the last two) of the output: q's, k's and v's broadcast."""
    return tuple(next((d for d in dims if d != 1), 1) for dims in zip(q.shape[:-2], k.shape[:-2], v.shape[:-2]))


def _scale(c) -> float:
    s = c.attrs["scale"]
    return float(s) if s is not None else 1.0 / math.sqrt(c.in_types[0].shape[-1])


def _grouped(q, k, a) -> bool:
    """Grouped-query attention: enable_gqa and key (and value) with other heads (dim -3) than the query."""
    return a["enable_gqa"] and q.rank >= 3 and k.rank == q.rank and k.shape[-3] != q.shape[-3]


def _kv_heads(c) -> int:
    """How many query heads share one key/value head (1 without grouped-query attention)."""
    q, k = c.in_types[:2]
    return q.shape[-3] // k.shape[-3] if _grouped(q, k, c.attrs) else 1


def _repeat_heads(e, x: str, rank: int, heads: int, rep: int) -> str:
    """[..., Hkv, S, D] -> [..., Hkv * rep, S, D], each head repeated rep times in place (repeat_interleave)."""
    wide = e.op("Expand", [e.op("Unsqueeze", [x, e.const(np.array([rank - 2], np.int64))]),
                           e.const(np.array([1] * (rank - 2) + [rep, 1, 1], np.int64))])
    shape = e.op("Concat", [e.op("Shape", [x], start=0, end=rank - 3), e.const(np.array([heads], np.int64)),
                            e.op("Shape", [x], start=rank - 2)], axis=0)
    return e.op("Reshape", [wide, shape], allowzero=1)  # an S of 0 is a size, not "copy dim 2" (review117)


def _lower(e, ins, outs, c):
    q_t = c.in_types[0]
    scale = _scale(c)
    rep = _kv_heads(c)
    if rep > 1:
        ins = [ins[0], *(_repeat_heads(e, x, q_t.rank, q_t.shape[-3], rep) for x in ins[1:3]), *ins[3:]]
        c = OpCall((q_t, q_t.with_shape(c.in_types[1].shape[:-3] + (q_t.shape[-3],) + c.in_types[1].shape[-2:]),
                    q_t.with_shape(c.in_types[2].shape[:-3] + (q_t.shape[-3],) + c.in_types[2].shape[-2:]),
                    *c.in_types[3:]), c.out_types, c.attrs)
    native = (e.opset >= 23 and q_t.rank == 4 and attention_scale_fits(scale) and q_t.dtype is DType.float32  # f64:
              # its kernel is float32-exact (2.6e-8 off torch); float16: it adds the mask to float16 scores (an offset
              # of -1024 cost 0.29) and overflows past 65504 (NaN), where torch and the decomposition on
              # onnxruntime's CPU compute in float32; scale <= 0 in float32: refused
              and never_empty(*q_t.shape[:-1], *c.in_types[1].shape[:-1]) and runs_natively("Attention", e.opset)
              and q_t.shape[:-2] == c.in_types[1].shape[:-2] == c.in_types[2].shape[:-2])  # the kernel
    # broadcasts no batch and no head of the query (Perceiver's latents [1, H, M, D]): written out then

    if native:
        t, n = q_t.shape[-2], c.in_types[1].shape[-2]
        mask = [] if len(ins) < 4 else \
            [ins[3] if c.in_types[3].dtype is DType.bool else off_lowest(e, ins[3], q_t.dtype)]
        ins = list(ins[:3]) + [attention_mask(e, m, c.in_types[3].shape, ins[0], ins[1], t, n) for m in mask]
        e.op("Attention", ins, outputs=outs, is_causal=int(c.attrs["causal"]), scale=scale)
        return
    dt = q_t.dtype.numpy
    r = q_t.rank
    kt = e.op("Transpose", [ins[1]], perm=list(range(r - 2)) + [r - 1, r - 2])
    if q_t.dtype.is_16bit:  # q and k each times sqrt(scale) first, as torch's math: q k^T can pass 65504 where
        root = math.sqrt(abs(scale))  # the scaled scores do not (a runtime that multiplies in float16); a
        s = e.op("MatMul", [e.op("Mul", [ins[0], e.const(np.array(math.copysign(root, scale), dtype=dt))]),
                            e.op("Mul", [kt, e.const(np.array(root, dtype=dt))])])  # negative scale's sign on q
    else:
        s = e.op("Mul", [e.op("MatMul", [ins[0], kt]), e.const(np.array(scale, dtype=dt))])
    if c.attrs["causal"]:
        s = e.op("Add", [s, causal_bias(e, s, q_t.shape[-2], c.in_types[1].shape[-2], r, dt)])
    elif len(ins) > 3:
        m_t = c.in_types[3]
        wide = m_t.dtype is not DType.bool and q_t.dtype.is_16bit
        if wide:  # added and normalized in float32, as torch's kernels: in float16 a mask near -65504 (HF's
            f32 = DType.float32.onnx  # finfo.min) rounds the scores away (a spacing of 32 there)
            s = e.op("Add", [e.op("Cast", [s], to=f32), e.op("Cast", [ins[3]], to=f32)])
        elif m_t.dtype is not DType.bool:
            s = e.op("Add", [s, ins[3]])
        elif _smaller(m_t.shape, q_t.shape[:-1] + (c.in_types[1].shape[-2],)):
            s = e.op("Add", [s, mask_bias(e, ins[3], dt, attend=True)])
        else:  # as large as the scores: one Where instead of a Where and an Add
            s = e.op("Where", [ins[3], s, e.const(np.array(-np.inf, dtype=dt))])
        m = ins[3] if m_t.dtype is not DType.bool else mask_bias(e, ins[3], dt, attend=True)
        probs = e.op("Softmax", [s], axis=-1)
        ctx = e.op("MatMul", [e.op("Cast", [probs], to=q_t.dtype.onnx) if wide else probs, ins[2]])
        e.op("Where", [no_key(e, m, dt), e.const(np.array(0, dtype=dt)), ctx], outputs=outs)
        return
    e.op("MatMul", [e.op("Softmax", [s], axis=-1), ins[2]], outputs=outs)


def off_lowest(e, mask: str, dtype: DType) -> str:
    """A float mask for onnxruntime's Attention kernel, its dtype's lowest value moved one step up: the kernel
    gives a query whose every mask value is the lowest (Hugging Face's (1 - m) * finfo.min padding mask, all
    padding) zeros, where the softmax over equal scores, torch's, is the mean of the values. -inf stays."""
    lowest = dtype.limits()[0]
    const = lambda v: e.const(np.array(v, dtype=dtype.numpy))  # noqa: E731
    return e.op("Where", [e.op("Equal", [mask, const(lowest)]), const(np.nextafter(np.array(lowest, dtype.numpy),
                                                                                    np.array(0, dtype.numpy))), mask])


def no_key(e, bias: str, dt) -> str:
    """bool [..., 1]: true for the queries an additive mask (0 / -inf, or any float mask) leaves no key, whose
    softmax is NaN; computed on the mask, before it is broadcast over heads (or queries)."""
    top = reduce_op(e, "ReduceMax", bias, [-1], keepdims=1)
    return e.op("Equal", [top, e.const(np.array(-np.inf, dtype=dt))])


def causal_keep(e, scores: str, t, n, rank: int) -> str:
    """bool [T, S], true where key j <= query i (top-left aligned, torch's is_causal), built from the runtime
    shape of `scores` (a length is symbolic: causal_bias writes known ones out)."""
    return e.shared(("causal_keep_top_left", t, n), lambda: tril_keep(e, scores, rank))


def causal_bias(e, scores: str, t, n, rank: int, dt) -> str:
    """[T, S] of 0 where key j <= query i, -inf elsewhere, added to the scores (a small Add beats a Where over
    every head's scores: see causal_mask in tensor_ops.py)."""
    if isinstance(t, int) and isinstance(n, int):
        return e.const(np.where(np.tril(np.ones((t, n), dtype=np.bool_)), 0, -np.inf).astype(dt))
    return e.shared(("causal_bias_top_left", t, n, np.dtype(dt).str),
                    lambda: mask_bias(e, causal_keep(e, scores, t, n, rank), dt, attend=True))


def mask_bias(e, mask: str, dt, attend: bool) -> str:
    """A bool mask as 0/-inf of the same shape, to add to the scores; `attend`: true marks the keys to attend
    to (sdpa, ONNX Attention), else the keys to ignore (torch's key_padding_mask). Softmax over scores plus
    a mask broadcast over heads or queries took half the time of a Where over the scores (12 x 128 x 128
    scores, 2 threads: 0.27-0.34 vs 0.45-0.71 ms)."""
    zero, neg_inf = e.const(np.array(0, dtype=dt)), e.const(np.array(-np.inf, dtype=dt))
    return e.op("Where", [mask, zero, neg_inf] if attend else [mask, neg_inf, zero])


def _smaller(mask: tuple, scores: tuple) -> bool:
    """Whether a mask broadcast to the scores has fewer elements than they do."""
    return len(mask) < len(scores) or any(m == 1 and s != 1 for m, s in zip(reversed(mask), reversed(scores)))


def attention_mask(e, mask: str, shape: tuple, q: str, k: str, t, n) -> str:
    """`mask` as onnxruntime's Attention kernel takes it: the kernel broadcasts only the batch and head dims and
    rejects a [B, 1, 1, S] padding mask ("inconsistent q_sequence_length"), so the query and key lengths
    (dim 2 of the [B, H, L, D] q and k) are expanded out when the mask does not already have them."""
    if len(shape) >= 2 and tuple(shape[-2:]) == (t, n):
        return mask
    one = e.const(np.array([1, 1], dtype=np.int64))
    lengths = [e.op("Shape", [q], start=2, end=3), e.op("Shape", [k], start=2, end=3)]
    return e.op("Expand", [mask, e.op("Concat", [one, *lengths], axis=0)])


def _attend(r, q, k, v, mask, causal: bool, scale: float, dropout=None):
    """softmax(q k^T * scale (+ mask)) v in registry ops, for gradients (see _grad and attention.py);
    `dropout(r, probs)` drops attention weights in training."""
    if q.type.dtype.is_16bit:  # as _lower: scaled before the product, which can pass 65504 in float16
        root = math.sqrt(abs(scale))
        s = r.op("matmul", r.op("mul", q, r.const(math.copysign(root, scale), like=q)),
                 r.op("transpose", r.op("mul", k, r.const(root, like=k))))
    else:
        s = r.op("mul", r.op("matmul", q, r.op("transpose", k)), r.const(scale, like=q))
    t, n = q.type.shape[-2], k.type.shape[-2]
    if causal:
        if isinstance(t, int) and isinstance(n, int):
            s = r.op("masked_fill", s, r.const(~np.tril(np.ones((t, n), dtype=np.bool_)), dtype=np.bool_),
                     value="-inf")
        elif t == n:
            s = r.op("causal_mask", s)
        else:  # top-left over lengths known at run time (narrow_rows keeps a query's first rows): key j > query i
            query_at = r.op("unsqueeze", r.op("positions", s, dim=-2), dim=-1)
            s = r.op("where", r.op("gt", r.op("positions", s, dim=-1), query_at), r.const(-np.inf, like=s), s)
    dead = None
    wide = mask is not None and mask.type.dtype is not DType.bool and q.type.dtype.is_16bit  # as _lower: in float32
    if mask is not None:
        if mask.type.dtype is DType.bool:
            s = r.op("where", mask, s, r.const(-np.inf, like=s))
        elif wide:
            s = r.op("add", r.op("cast", s, dtype="float32"), r.op("cast", mask, dtype="float32"))
        else:
            s = r.op("add", s, mask)
        # a query with no key left: softmax over finite scores instead, the output zeroed, so that neither
        # the output nor any gradient is NaN (torch's gradient there is 0 too)
        dead = r.op("eq", r.op("amax", s, dim=(-1,), keepdim=True), r.const(-np.inf, like=s))
        s = r.op("where", dead, r.const(0.0, like=s), s)
    probs = r.op("softmax", s)
    if wide:
        probs = r.op("cast", probs, dtype=q.type.dtype.label)
    if dropout is not None:
        probs = dropout(r, probs)
    out = r.op("matmul", probs, v)
    return r.op("where", dead, r.const(0.0, like=out), out) if dead is not None else out


def written(r, c, ins, dropout=None):
    """The op in registry ops (its gradient's form; a train step's where dropout_p drops attention weights):
    `dropout(r, probs)` as _attend's."""
    rep = _kv_heads(c)

    def widen(x):  # repeat_interleave of the heads, as copies the gradient sums back
        if rep == 1:
            return x
        rank = x.type.rank
        shape = x.type.shape
        copies = r.op("concat", *[r.op("unsqueeze", x, dim=rank - 2)] * rep, axis=rank - 2)
        return r.op("reshape", copies, shape=shape[:-3] + (shape[-3] * rep,) + shape[-2:])
    q, k, v, *m = ins
    return _attend(r, q, widen(k), widen(v), m[0] if m else None, c.attrs["causal"], _scale(c), dropout)


def _grad(b, c, ins, outs, gouts):
    return b.vjp(lambda r, *vals: written(r, c, vals), list(ins), gouts)


def _cost(c):
    """The two products, and per score its scale and softmax (6) and a mask's add: what the same attention
    written out (q @ k.T * scale, softmax, @ v) counts."""
    q, k, v = c.in_types[:3]
    qb = c.out_types[0].shape[:-1] + q.shape[-1:]  # q as broadcast to the output's leading dims
    if not (isinstance(k.shape[-2], int) and isinstance(v.shape[-2], int)):
        return 4 * numel(qb)
    per_score = 6 + (len(c.in_types) > 3 or c.attrs["causal"])
    return 2 * numel(qb) * k.shape[-2] + 2 * numel(c.out_types[0].shape) * v.shape[-2] \
        + per_score * numel(qb[:-1]) * k.shape[-2]


register(OpDef(
    name="scaled_dot_product_attention", inputs=("query", "key", "value", "mask?"), category="layer",
    aliases=("sdpa",), attrs=(Attr("causal", "bool", False), Attr("scale", "float?", None),
                              Attr("enable_gqa", "bool", False), Attr("dropout_p", "float", 0.0)),
    infer=_infer, lower=_lower, cost=_cost, grad=_grad,
    doc="softmax(q k^T * scale + mask) v (torch's F.scaled_dot_product_attention; causal=true masks key j > "
        "query i, top-left aligned as torch's is_causal); dropout_p drops attention weights in a train step "
        "(torch's in training: `dropout_p=p if self.training else 0`), none at inference; scale defaults to "
        "1/sqrt(head size); leading dims of size 1 broadcast, as torch's (a query [1, H, M, D] of latents against "
        "keys [B, H, N, D]: written out, as onnxruntime's kernel takes none); enable_gqa=true lets key and value "
        "have fewer heads (dim -3), each shared by "
        "query heads / kv heads query heads (grouped-query attention); ONNX Attention for float32 [B, heads, "
        "T, head size] at opset 23+ where onnxruntime runs it as a kernel (23-24 in 1.32; the kernel refuses a "
        "batch or sequence of length 0, which other opsets take, so a length that can be 0, a formula such as "
        "(T+1)//2 after a strided conv or T-1 after x[:, 1:], is written out as at other opsets; float16 and "
        "float64 are written out too: the kernel adds a float16 mask to float16 scores, and computes float64 in "
        "float32).",
))
