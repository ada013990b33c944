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


class _Layout:
    """Which values onnxruntime keeps blocked around a product, asked of maps the pass has not rewritten yet
    and of those it has (its Resizes are onnxruntime's blocked Upsample). Answers are remembered: a residual
    stream of n blocks is walked once, not n times over (and with no recursion to overflow)."""

    def __init__(self, rw: Rewriter):
        self.rw = rw
        self.known: dict[int, bool] = {}
        self.made: set[int] = set()  # the Resizes this pass inserted

    def blocked(self, v: Value) -> bool:
        """x above, an activation of such a map, a sum or product of them of one shape, or an SE product the
        pass rewrites: the residual stream of an SE-ResNet."""
        stack = [(v, False)]
        while stack:  # depth first, each value after the inputs it is made of (no recursion to overflow)
            u, inputs_known = stack.pop()
            if id(u) in self.known:
                continue
            if inputs_known:
                self.known[id(u)] = self._made_blocked(u)
            elif _blocked_conv(u, self.rw):
                self.known[id(u)] = True
            else:
                stack.append((u, True))
                p = u.producer
                if p is not None and (p.op in _READ_BLOCKED or p.op in ("add", "mul")):
                    stack.extend((i, False) for i in p.inputs if id(i) not in self.known)
        return self.known[id(v)]

    def _made_blocked(self, v: Value) -> bool:
        p = v.producer
        if p is None:
            return False
        if p.op in _READ_BLOCKED:
            return self.known.get(id(p.inputs[0]), False)
        if p.op == "upsample":
            return id(p) in self.made
        if p.op not in ("add", "mul") or len(p.inputs) != 2:
            return False
        a, b = p.inputs
        if a.type == b.type == v.type:
            return self.known.get(id(a), False) and self.known.get(id(b), False)
        return p.op == "mul" and (_map_and_scale(a, b, self.rw) or _map_and_scale(b, a, self.rw))

    def read_blocked(self, v: Value) -> bool:
        """Every reader of the product takes it in the blocked layout. Otherwise onnxruntime reorders the product
        out instead of the map, and the Resize is extra work: a graph output, or a residual Add whose other side
        is NCHW (the model's input), measured 1.3-2.5% slower with the pass (o2regress hunt)."""
        todo = [v]
        while todo:
            w = todo.pop()
            if self.rw.is_output(w):
                return False
            for u in w.uses:
                if u.op in _READ_BLOCKED:
                    todo.append(u.outputs[0])
                elif u.op == "conv2d":
                    groups, c, out = u.attrs["groups"], w.type.shape[1], u.outputs[0].type.shape[1]
                    if u.inputs[0] is not w or not (groups == 1 or groups == c == out or
                                                    (c // groups) % _BLOCK == 0 and (out // groups) % _BLOCK == 0):
                        return False
                elif u.op in ("add", "mul", "concat"):
                    if u.op == "concat" and u.attrs.get("axis") not in (1, -3):
                        return False
                    if not all(i is w or (len(i.type.shape) == 4 and i.type.shape[0] == w.type.shape[0]
                                          and self.blocked(i)) for i in u.inputs):
                        return False
                elif u.op not in ("maxpool2d", "avgpool2d", "global_avgpool"):
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
    layout = _Layout(rw)
    for mul in g.nodes:
        if mul.op != "mul" or len(mul.inputs) != 2 or mul.inputs[0] is mul.inputs[1]:
            continue
        for k in (0, 1):
            x, s = mul.inputs[k], mul.inputs[1 - k]
            if not _map_and_scale(x, s, rw) or mul.outputs[0].type != x.type or not layout.read_blocked(mul.outputs[0]):
                continue
            h, w = x.type.shape[2], x.type.shape[3]
            up = g.make_node("upsample", [s], {"scale_factor": [float(h), float(w)], "mode": "nearest",
                                               "align_corners": False, "size": None},
                             f"{mul.name}.expand", mul.span)
            if up.outputs[0].type != x.type:  # cannot happen by the rule; never rewrite to another type
                s.uses.remove(up)
                continue
            rw.insert_before(mul, up)
            layout.made.add(id(up))
            g.set_input(mul, 1 - k, up.outputs[0])
            rw.changed = True
            break
    return rw.commit()
