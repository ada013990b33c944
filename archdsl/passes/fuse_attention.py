"""fuse_attention: softmax(q @ k^T * scale [+ mask | causal]) @ v written from primitives becomes one
scaled_dot_product_attention node, which lowers to ONNX Attention (opset 23+; faster on onnxruntime, see
ops/sdpa.py). Runs only when the opset has Attention and onnxruntime runs it as a kernel (not as its
function body, which is slower than the primitives: ops/_kernels.py); otherwise nothing would be gained.

Rules (every intermediate value read only by the next node; inference graphs, where dropout is gone):
1. scores = q @ kT where kT is k with its last two dims swapped; when kT is not literally a transpose, a
   permute swapping them back is added (compose_layout then merges it into kT's own layout ops).
2. scale: `scores / c`, `scores * c` or `c * scores` with a one-element constant c (q scaled so before the
   matmul too); else 1.
3. mask: `causal_mask(scores)` with value -inf on a square [T, T] → causal=true; `scores + m` with m
   broadcasting to the scores and not growing them → mask=m (additive).
4. softmax over the last dim, then `@ v` → scaled_dot_product_attention(q, k, v[, m], causal, scale).
Only rank-4 [B, H, T, D] attention is fused (ONNX Attention's layout). A mask computed from -inf (`where(keep,
0.0, -inf)`) is left unfused: a query whose mask leaves it no key gets NaN from the primitives' softmax
(as torch's) and zeros from the fused op."""

from __future__ import annotations

import math

import numpy as np

from ..diagnostics import ShapeError
from ..ir import Graph, Node, Value
from ..ops import get
from ..ops._kernels import attention_scale_fits, runs_natively
from ..types import DType
from ._rewrite import Rewriter, single_use
from .compose_layout import perm_of
from .manager import PassContext, register_pass


def _scalar(v: Value) -> float | None:
    if v.kind == "const" and v.data.size == 1 and v.type.dtype.is_float:
        return float(v.data.reshape(-1)[0])
    return None


def _prod(v: Value, rw: Rewriter, *ops: str) -> Node | None:
    """The node making v, if it has one of `ops`, is alive and v is read only once."""
    n = v.producer
    if n is None or n.op not in ops or rw.is_dead(n) or not single_use(v, rw):
        return None
    return n


def _factor(n: Node) -> tuple[Value, float] | None:
    """(x, c) when n computes x * c with a one-element constant c: `x * c`, `c * x` or `x / c` (c != 0)."""
    a, b = n.inputs
    for data, k in ((a, b), (b, a)) if n.op == "mul" else ((a, b),):
        c = _scalar(k)
        if c is not None and data.type == n.outputs[0].type and (n.op == "mul" or c != 0.0):
            return data, (1.0 / c if n.op == "div" else c)
    return None


def _match(sm: Node, rw: Rewriter):
    """(q, kT, v, mask, causal, scale, out, matched nodes) or None."""
    x = sm.inputs[0]
    if x.type.rank != 4 or sm.attrs["axis"] % 4 != 3 or not x.type.dtype.is_float:
        return None
    if len(sm.outputs[0].uses) != 1 or rw.is_output(sm.outputs[0]):
        return None
    pv = sm.outputs[0].uses[0]
    if pv.op != "matmul" or pv.inputs[0] is not sm.outputs[0] or pv.inputs[1] is sm.outputs[0]:
        return None
    nodes = [sm, pv]
    mask, causal, scale = None, False, 1.0
    s = x
    cm = _prod(s, rw, "causal_mask", "add")
    if cm is not None and cm.op == "causal_mask":
        t = cm.inputs[0].type.shape
        if cm.attrs["value"] != "-inf" or t[-1] != t[-2]:
            return None
        causal, s = True, cm.inputs[0]
        nodes.append(cm)
    elif cm is not None:
        a, b = cm.inputs
        for data, m in ((a, b), (b, a)):
            if data.type == cm.outputs[0].type and m.type.dtype == data.type.dtype and m.type.rank <= 4:
                mask, s = m, data
                nodes.append(cm)
                break
    sc = _prod(s, rw, "div", "mul")
    if sc is not None and (f := _factor(sc)) is not None:
        s, scale = f
        nodes.append(sc)
    mm = _prod(s, rw, "matmul")
    if mm is None:
        return None
    nodes.append(mm)
    q, kt = mm.inputs
    qs = _prod(q, rw, "mul")
    if qs is not None and (f := _factor(qs)) is not None:
        q, c = f
        scale *= c
        nodes.append(qs)
    v = pv.inputs[1]
    if not (q.type.rank == kt.type.rank == v.type.rank == 4):
        return None
    if q.type.shape[:2] != kt.type.shape[:2] or v.type.shape[:2] != q.type.shape[:2]:
        return None
    return q, kt, v, mask, causal, scale, pv.outputs[0], nodes


# ops that make an infinity of finite values: log(0), log1p(-1), exp(100), 1/0, rsqrt(0), atanh(1), ...
_MAKE_INF = {"log", "log2", "log10", "log1p", "exp", "expm1", "pow", "reciprocal", "rsqrt", "tan", "sinh", "cosh",
             "atanh"}


def _may_be_minus_inf(mask: Value, limit: int = 64) -> bool:
    """Whether the mask may hold -inf (`where(keep, 0.0, -inf)`): a query whose keys are all masked then gets
    NaN from the primitives' softmax (as torch's) and zeros from the fused op, so such a mask is left unfused.
    Any infinity counts (negated, +inf is -inf), and any op that makes one of finite values, a division by
    anything but a nonzero constant, a buffer (a mask torch keeps as one) and a parameter starting infinite.
    Finite masks (BERT's (1 - m) * float32.min) fuse; so do a mask the model is given as an input, taken as it
    comes, a trainable parameter (a learned bias), and finite constants that overflow (-3.4e38 * 10): README
    says what such a row gives fused."""
    seen, todo = set(), [mask]
    while todo and len(seen) < limit:
        v = todo.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if not v.type.dtype.is_float:  # an integer or bool holds no infinity: T5's buckets take a log of
            continue                  # positions, cast to int64 for a table's rows (t5 hunt)
        if v.kind == "const" and bool(np.isinf(v.data).any()):
            return True
        if v.kind == "buffer":  # a mask buffer (torch's register_buffer of -inf), or --weights may give one
            return True
        if v.kind == "param" and v.spec.init.kind == "constant" and math.isinf(v.spec.init.a):
            return True
        n = v.producer
        if n is not None:
            if n.op in _MAKE_INF or any(  # full_like(f, "-inf"), masked_fill(.., "inf"), float("inf") attributes
                    a in ("-inf", "inf", "+inf") or isinstance(a, float) and math.isinf(a)
                    for a in n.attrs.values() if isinstance(a, (str, float))):
                return True
            if n.op == "cast" and v.type.dtype is DType.float16 and not n.inputs[0].type.dtype.is_float:
                return True  # an integer past 65504 becomes inf
            if n.op in ("div", "floordiv", "remainder", "fmod"):
                d = n.inputs[1]
                if d.kind != "const" or not bool(np.all(d.data != 0)):
                    return True
            todo.extend(n.inputs)
    return len(seen) >= limit


@register_pass("fuse_attention", level=2, inference_only=True,
               doc="softmax(q k^T * s + mask) v -> scaled_dot_product_attention (ONNX Attention, at the opsets "
                   "where onnxruntime has its kernel: 23-24 in 1.32)")
def fuse_attention(g: Graph, ctx: PassContext) -> bool:
    if ctx.opset < 23 or not ctx.inference or not runs_natively("Attention", ctx.opset):
        return False
    rw = Rewriter(g)
    for sm in g.nodes:
        if sm.op != "softmax" or rw.is_dead(sm):
            continue
        m = _match(sm, rw)
        if m is None:
            continue
        q, kt, v, mask, causal, scale, out, nodes = m
        if q.type.dtype is not DType.float32 or not attention_scale_fits(scale):
            continue  # onnxruntime's Attention refuses a scale <= 0 in float32; sdpa decomposes float16 (ops/sdpa.py)
        if mask is not None and _may_be_minus_inf(mask):  # a row of -inf: NaN from the primitives, 0 fused
            continue
        if not q.type.shape[:-2] == kt.type.shape[:-2] == v.type.shape[:-2]:  # broadcast (Perceiver's latents):
            continue  # onnxruntime's kernel takes none, so the fused op would be written out as it is
        anchor = next(n for n in nodes[2:] if n.op == "matmul")  # q @ kT: q and kT are both defined by then
        kp = kt.producer
        swap = None
        if kp is not None and kp.op in ("transpose", "permute") and perm_of(kp) == [0, 1, 3, 2]:
            k = kp.inputs[0]
        else:  # placed only once the fused op is made: a refused fusion left it behind, dead, every round
            swap = g.make_node("permute", [kt], {"dims": (0, 1, 3, 2)}, f"{anchor.name}.key", anchor.span)
            k = swap.outputs[0]
        d = q.type.shape[-1]
        default = isinstance(d, int) and math.isclose(scale, 1.0 / math.sqrt(d), rel_tol=1e-6)
        attrs = {**get("scaled_dot_product_attention").defaults(),  # dropout_p 0 (a KeyError once it was added)
                 "causal": causal, "scale": None if default else float(scale)}
        ins = [q, k, v] + ([mask] if mask is not None else [])
        try:
            new = g.make_node("scaled_dot_product_attention", ins, attrs, nodes[0].name.rsplit(".", 1)[0] + ".sdpa"
                              if "." in nodes[0].name else "sdpa", nodes[0].span)
        except ShapeError:  # a shape the fused op does not take (a rank-0 mask): leave the primitives
            new = None
        if new is None or new.outputs[0].type != out.type:
            _unmake([n for n in (new, swap) if n is not None])
            continue
        if swap is not None:
            rw.insert_before(anchor, swap)
        rw.insert_before(nodes[1], new)   # the softmax @ v matmul: every input is defined by then
        rw.replace(out, new.outputs[0])
        for n in nodes[1:2] + nodes[:1] + nodes[2:]:
            rw.erase(n)
    return rw.commit()


def _unmake(nodes) -> None:
    """Take nodes made with `Graph.make_node` and never placed off their inputs' uses."""
    for n in nodes:
        for x in n.inputs:
            x.uses.remove(n)
