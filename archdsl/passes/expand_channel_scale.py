"""expand_channel_scale: a per-channel scale of a conv's feature map (squeeze-excitation) is first
upsampled to the map's size, so that onnxruntime's CPU keeps the multiply in its blocked conv layout.

Why: onnxruntime's x86 CPU runs convs in a blocked layout (NCHWc) and keeps an elementwise Mul in it only
when both operands have the same shape. `x * s` with x [B, C, H, W] from a conv and s [B, C, 1, 1] (the
SE gate) broadcasts, so it reorders the whole map back to NCHW, multiplies there, and reorders the product
in again for the next conv. Upsampled by nearest Resize (onnxruntime's blocked Upsample), s has x's shape:
no reorders, EfficientNet-B0 ~4% faster (`archdsl bench`'s lowering choices measure the pattern alone).
Exact: nearest replication of a 1x1 map is the broadcast.

Rule: mul(x, s) or mul(s, x), float32, x [N, C, H, W] with H and W known and H*W > 1, s [N, C, 1, 1]
(the same N) computed in the graph (a constant scale is left to onnxruntime's Conv+Mul folding), x made by
a 2-D conv that onnxruntime blocks (C a multiple of 16, groups 1 with fewer than 8 or a multiple of 16
input channels, or depthwise), through activations it keeps blocked, and the product read only by ops that
take it blocked (a conv, a pool, a same-shape Add or Concat with another blocked map, activations). Where x
is not blocked the Resize would only add work (1.9x on that Mul alone, measured), and where the product is
reordered out anyway (a graph output, a residual Add with the NCHW model input) it replaces one reorder by
another (1.3-2.5% slower in an SE-ResNet, measured), so nothing else is rewritten.
Where onnxruntime has no blocked layout (its NCHWc kernels are x86-64's; CUDA) the Resize is a small
extra cost: `--disable-pass expand_channel_scale`. Inference graphs only."""

from __future__ import annotations

from ..ir import Graph, Value
from ..types import DType, is_symbol
from ._rewrite import Rewriter, single_use
from .manager import PassContext, register_pass

_BLOCK = 16  # onnxruntime's NCHWc block: 8 channels with AVX2, 16 with AVX-512; 16 suits both
_KEEP_BLOCKED = {"relu", "sigmoid", "tanh", "silu", "batchnorm"}   # elementwise on the blocked map
_FUSED_INTO_CONV = {"leaky_relu", "relu6", "hardsigmoid"}          # blocked only as the conv's own activation
_READ_BLOCKED = _KEEP_BLOCKED | {"gelu", "hardsigmoid", "hardswish"}  # on a blocked map, not after a conv (seen)


def _blocked_conv(x: Value, rw: Rewriter) -> bool:
    """Whether onnxruntime's CPU computes x in its blocked layout: a conv it blocks, then activations."""
    p = x.producer
    if p is not None and p.op in _FUSED_INTO_CONV and single_use(p.inputs[0], rw):
        p = p.inputs[0].producer
    else:
        while p is not None and p.op in _KEEP_BLOCKED:
            p = p.inputs[0].producer
    if p is None or p.op != "conv2d":
        return False
    w = p.inputs[1].type.shape  # [out, in / groups, kh, kw]
    groups = p.attrs["groups"]
    c_out, c_in = w[0], w[1] * groups
    if c_out % _BLOCK:
        return False
    if groups == 1:
        return c_in < 8 or c_in % _BLOCK == 0
    return groups == c_in == c_out


def _blocked(v: Value, rw: Rewriter) -> bool:
    """x above, or a sum or product of such maps of one shape (a residual stream onnxruntime keeps blocked)."""
    p = v.producer
    if p is not None and p.op in ("add", "mul") and all(i.type == v.type for i in p.inputs):
        return all(_blocked(i, rw) for i in p.inputs)
    return _blocked_conv(v, rw)


def _read_blocked(v: Value, rw: Rewriter) -> bool:
    """Every reader of the product takes it in the blocked layout. Otherwise onnxruntime reorders the product
    out instead of the map, and the Resize is extra work: a graph output, or a residual Add whose other side
    is NCHW (the model's input), measured 1.3-2.5% slower with the pass (o2regress hunt)."""
    if rw.is_output(v):
        return False
    for u in v.uses:
        if u.op in _READ_BLOCKED:
            ok = _read_blocked(u.outputs[0], rw)
        elif u.op == "conv2d":
            groups, c, out = u.attrs["groups"], v.type.shape[1], u.outputs[0].type.shape[1]
            ok = u.inputs[0] is v and (groups == 1 or groups == c == out
                                       or (c // groups) % _BLOCK == 0 and (out // groups) % _BLOCK == 0)
        elif u.op in ("maxpool2d", "avgpool2d", "global_avgpool"):
            ok = True
        elif u.op in ("add", "mul", "concat"):
            ok = ((u.op != "concat" or u.attrs.get("axis") in (1, -3))
                  and all(i is v or (i.type.shape[0] == v.type.shape[0] and len(i.type.shape) == 4
                                     and _blocked(i, rw)) for i in u.inputs))
        else:
            ok = False
        if not ok:
            return False
    return True


def _map_and_scale(a: Value, b: Value, rw: Rewriter) -> bool:
    xs, ss = a.type.shape, b.type.shape
    return (a.type.dtype == DType.float32 and len(xs) == 4 and len(ss) == 4
            and (isinstance(xs[0], int) or is_symbol(xs[0]))  # a batch dim the lowering names (not `2*B`)
            and isinstance(xs[2], int) and isinstance(xs[3], int) and xs[2] * xs[3] > 1
            and ss[0] == xs[0] and ss[1] == xs[1] and ss[2] == 1 and ss[3] == 1
            and b.kind == "node" and _blocked_conv(a, rw))


@register_pass("expand_channel_scale", level=2, inference_only=True,
               doc="x[B,C,H,W] * s[B,C,1,1] after a conv: s upsampled first (onnxruntime CPU keeps NCHWc)")
def expand_channel_scale(g: Graph, ctx: PassContext) -> bool:
    if not ctx.inference:
        return False
    rw = Rewriter(g)
    for mul in g.nodes:
        if mul.op != "mul" or len(mul.inputs) != 2 or mul.inputs[0] is mul.inputs[1]:
            continue
        for k in (0, 1):
            x, s = mul.inputs[k], mul.inputs[1 - k]
            if not _map_and_scale(x, s, rw) or mul.outputs[0].type != x.type or not _read_blocked(mul.outputs[0], rw):
                continue
            h, w = x.type.shape[2], x.type.shape[3]
            up = g.make_node("upsample", [s], {"scale_factor": [float(h), float(w)], "mode": "nearest",
                                               "align_corners": False, "size": None},
                             f"{mul.name}.expand", mul.span)
            if up.outputs[0].type != x.type:  # cannot happen by the rule; never rewrite to another type
                s.uses.remove(up)
                continue
            rw.insert_before(mul, up)
            g.set_input(mul, 1 - k, up.outputs[0])
            rw.changed = True
            break
    return rw.commit()
