"""conv1d/2d/3d: torch's nn.ConvNd layout ([out, in/groups, *kernel] weight), "same" padding included, and
torch's padding_mode: reflect, replicate or circular padding is a pad (vision_misc.lower_pad, the pad op's own
lowering and gradient) before a conv with no padding, as nn.ConvNd does."""

from __future__ import annotations

import math

from ..diagnostics import ShapeError
from ..types import numel
from ._common import bfloat16_from, conv_channels, float_input, kaiming_uniform, positive, shape_str, spatial_rank
from .registry import SAME_PADDING, Attr, OpCall, OpDef, ParamSpec, fail, get, register, spatial_axes
from .shapes import expand, window_out
from .vision_misc import check_pad_fits, lower_pad

__all__ = ["functional_as_layer", "geometry", "mode_pad", "register_functional"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pads(a, n, k, d):
    """Per-dim (begin, end) padding; "same" splits the total as torch does (extra at the end)."""
    p = a["padding"]
    if p == "valid":
        return [(0, 0)] * n
    if p == "same":
        if any(s != 1 for s in expand(a["stride"], n, "stride")):
            example = " (a 3x3 kernel at stride 2 on an even image: pad(x, [0, 1, 0, 1]))" if n == 2 else ""
            fail('padding="same" needs stride 1 (as in PyTorch); TensorFlow\'s and Flax\'s SAME at a stride s pads '
                 f'each spatial dim of size n by {SAME_PADDING} in all (k the dilated '
                 'kernel, (k - 1) * dilation + 1), p // 2 before and the rest after: pad(x, [...]) by that, then '
                 f'the conv with padding=0{example}')
        total = [di * (ki - 1) for ki, di in zip(k, d)]
        return [(t // 2, t - t // 2) for t in total]
    return [(q, q) for q in expand(p, n, "padding")]


def geometry(x, a, n):
    """(kernel, stride, dilation, per-dim (begin, end) pads): what the lowering and the training forms read."""
    k = expand(a["kernel_size"], n, "kernel_size")
    s = expand(a["stride"], n, "stride")
    d = expand(a["dilation"], n, "dilation")
    positive(f"conv{n}d", a, "kernel_size", "stride", "dilation")
    return k, s, d, _pads(a, n, k, d)


def mode_pad(x, a, n):
    """For padding_mode reflect/replicate/circular: (the pad op's attributes padding x first, the conv's
    geometry on the padded input: pads all 0); None for zeros (the conv pads itself). A mode with no padding
    ("valid", 0) pads nothing, as in torch."""
    if a.get("padding_mode", "zeros") == "zeros":
        return None
    k, s, d, pads = geometry(x, a, n)
    if all(p == (0, 0) for p in pads):
        return None
    flat = tuple(p for pair in reversed(pads) for p in pair)  # torch's order: last dim first
    return {"pad": flat, "mode": a["padding_mode"], "value": 0.0}, (k, s, d, [(0, 0)] * n)


def _pad_pairs(pads):
    """Per axis of [N, C, spatial...]: nothing on N and C."""
    return [(0, 0), (0, 0)] + list(pads)


def _make(n: int):
    name = f"conv{n}d"

    def params(ins, a):
        positive(name, a, "out_channels", "kernel_size")
        g = a["groups"]
        cin = conv_channels(name, ins[0], n, g, a["out_channels"])
        k = expand(a["kernel_size"], n, "kernel_size")
        fan_in = cin // g * math.prod(k)
        specs = [ParamSpec("weight", (a["out_channels"], cin // g, *k), kaiming_uniform(fan_in))]
        if a["bias"]:
            specs.append(ParamSpec("bias", (a["out_channels"],), kaiming_uniform(fan_in)))
        return specs

    def infer(ins, a):
        x, w = ins[0], ins[1]
        float_input(name, x)
        spatial_rank(name, x, n)
        g = a["groups"]
        if w.rank != n + 2 or w.shape[1] * g != x.shape[1]:
            fail(f"{name}: expected {w.shape[1] * g} input channels, got {x.shape[1]} (input {shape_str(x)})")
        k, s, d, pads = geometry(x, a, n)
        if tuple(w.shape[2:]) != tuple(k):
            fail(f"{name}: weight kernel {list(w.shape[2:])} does not match kernel_size {list(k)}")
        if a["padding_mode"] != "zeros":
            check_pad_fits(name, x, _pad_pairs(pads), a["padding_mode"], "padding")
        spatial = tuple(window_out(x.shape[2 + i], k[i], s[i], sum(pads[i]), d[i]) for i in range(n))
        return [x.with_shape((x.shape[0], w.shape[0]) + spatial)]

    def lower(e, ins, outs, c):
        a = c.attrs
        bfloat16_from(e, c.in_types[0], name, "ONNX Conv takes")
        k, s, d, pads = geometry(c.in_types[0], a, n)
        if a["padding_mode"] != "zeros":
            if any(p != (0, 0) for p in pads):
                ins = [lower_pad(e, ins[0], c.in_types[0], _pad_pairs(pads), a["padding_mode"])] \
                    + list(ins[1:])
            pads = [(0, 0)] * n
        e.op("Conv", ins, outputs=outs, kernel_shape=list(k), strides=list(s), dilations=list(d),
             pads=[p[0] for p in pads] + [p[1] for p in pads], group=a["groups"])

    def cost(c):
        w = c.in_types[1]
        return 2 * numel(c.out_types[0].shape) * math.prod(w.shape[1:])

    def grad(b, c, ins, outs, gouts):
        """gx: the transposed conv of g; gw: x correlated with g; gb: g summed over batch and space."""
        g, a, x_t = gouts[0], c.attrs, c.in_types[0]
        padded = mode_pad(x_t, a, n)
        if padded is not None:  # the pad's own gradient rule composed with the unpadded conv's
            pad_def, x = get("pad"), ins[0]
            pad_attrs = {**pad_def.defaults(), **padded[0]}
            xp = b.op("pad", x, **pad_attrs)
            conv_call = OpCall((b.type(xp), *c.in_types[1:]), c.out_types,
                               {**a, "padding": (0,), "padding_mode": "zeros"})
            res = grad(b, conv_call, [xp, *ins[1:]], outs, gouts)
            if res[0] is not None:
                res[0] = pad_def.grad(b, OpCall((x_t,), (b.type(xp),), pad_attrs), [x], [xp], [res[0]])[0]
            return res
        k, s, d, pads = geometry(x_t, a, n)
        geom = {"stride": s, "dilation": d, "pads": tuple(p[0] for p in pads) + tuple(p[1] for p in pads),
                "groups": a["groups"]}
        res = [None] * len(ins)
        if b.needs(0):
            sized = all(isinstance(x, int) or st == 1 for x, st in zip(x_t.shape[2:], s))  # else x's size is read
            res[0] = b.op("autodiff.conv_input_grad", g, ins[1], *(() if sized else (ins[0],)),
                          input_shape=tuple(x_t.shape[2:]), **geom)
        if b.needs(1):
            res[1] = b.op("autodiff.conv_weight_grad", ins[0], g, kernel=tuple(k), **geom)
        if len(ins) > 2 and b.needs(2):
            res[2] = b.op("sum", g, dim=(0,) + tuple(range(2, n + 2)))
        return res

    register(OpDef(
        name=name, inputs=("x",), category="layer",
        attrs=(Attr("out_channels", "int"), Attr("kernel_size", "ints"), Attr("stride", "ints", 1),
               Attr("padding", "padding", 0), Attr("dilation", "ints", 1), Attr("groups", "int", 1),
               Attr("bias", "bool", True), Attr("padding_mode", "str", "zeros", choices=PADDING_MODES)),
        params=params, infer=infer, lower=lower, cost=cost, grad=grad, nonempty=spatial_axes,
        doc=f"{n}-D convolution (torch.nn.Conv{n}d); groups=channels gives a depthwise conv. padding is a number, "
            f"one per spatial dim, or \"same\" (stride 1; an odd total padded one more at the end, as torch) or "
            f"\"valid\" (none). padding_mode (torch's): \"zeros\" (default), \"reflect\", \"replicate\" or "
            f"\"circular\": x padded so by `padding` (\"same\"'s split included), then convolved unpadded; reflect "
            f"padding must be smaller than the input's size, circular at most it.",
    ))


for _n in (1, 2, 3):
    _make(_n)


def functional_as_layer(ins, a) -> tuple[str, dict]:
    """A functional conv or transposed conv as the layer of its weight's rank: out_channels and kernel_size
    read off the weight ([out, in/groups, *k] for a conv, [in, out/groups, *k] transposed), bias from whether
    one is given; every rule of the op is the layer's own."""
    w, transposed = ins[1], "output_padding" in a  # only conv_transpose has one
    out = w.shape[1] * a["groups"] if transposed else w.shape[0]
    layer = f"conv_transpose{w.rank - 2}d" if transposed else f"conv{w.rank - 2}d"
    return layer, {**a, "out_channels": out, "kernel_size": tuple(w.shape[2:]), "bias": len(ins) > 2}


def _functional_checks(name: str, ins, a) -> None:
    """What the layer's own rule cannot say of a weight that is an input: its rank, known sizes, dtype, the
    groups it splits into, the bias."""
    x, w = ins[0], ins[1]
    float_input(name, x)
    float_input(name, w, "weight")
    transposed = name == "conv_transpose"
    layout = "[in_channels, out_channels/groups, *kernel]" if transposed else \
        "[out_channels, in_channels/groups, *kernel]"
    if not 3 <= w.rank <= 5:
        got = "a number" if w.rank == 0 else shape_str(w)
        fail(f"{name}: weight must be {layout} with 1 to 3 kernel dims (rank 3 to 5), got {got}")
    if not all(isinstance(d, int) for d in w.shape):
        fail(f"{name}: the weight's shape must be known sizes, got {shape_str(w)}")
    if w.dtype != x.dtype:
        fail(f"{name}: dtypes differ (input {x.dtype}, weight {w.dtype}); cast them to one")
    positive(name, a, "stride", "dilation", "groups")
    g = a["groups"]
    if w.shape[0] % g:
        fail(f"{name}: groups={g} must divide the weight's {'in' if transposed else 'out'}_channels {w.shape[0]}")
    if x.rank != w.rank:
        fail(f"{name}: a weight {shape_str(w)} convolves a rank-{w.rank} input [N, C, "
             f"{', '.join(['spatial'] * (w.rank - 2))}], got {shape_str(x)}")
    cin = w.shape[0] if transposed else w.shape[1] * g
    if x.shape[1] != cin:
        fail(f"{name}: a weight {shape_str(w)}{f' in {g} groups' if g > 1 else ''} takes {cin} input channels, "
             f"got {x.shape[1]} (input {shape_str(x)})")
    out = w.shape[1] * g if transposed else w.shape[0]
    if len(ins) > 2:
        b = ins[2]
        if b.rank != 1 or b.shape[0] != out or b.dtype != x.dtype:
            fail(f"{name}: bias must be {x.dtype}[{out}] (one per output channel), got {b.dtype}{shape_str(b)}")


def register_functional(name: str, attrs: tuple[Attr, ...], doc: str) -> None:
    """conv / conv_transpose of a weight tensor: the layer of the weight's rank, its attributes read off the
    weight (functional_as_layer)."""
    def infer(ins, a):
        _functional_checks(name, ins, a)
        layer, la = functional_as_layer(ins, a)
        try:
            return get(layer).infer(ins, la)
        except ShapeError as e:  # the layer's rule names itself (conv2d: reflect padding ...): this call is conv
            if str(e).startswith(f"{layer}:"):
                raise ShapeError(name + str(e)[len(layer):]) from None
            raise

    def as_layer(c: OpCall) -> tuple[OpDef, OpCall]:
        layer, la = functional_as_layer(c.in_types, c.attrs)
        return get(layer), OpCall(c.in_types, c.out_types, la)

    def lower(e, ins, outs, c):
        layer, call = as_layer(c)
        layer.lower(e, ins, outs, call)

    def grad(b, c, ins, outs, gouts):
        layer, call = as_layer(c)
        return layer.grad(b, call, ins, outs, gouts)

    def cost(c):
        layer, call = as_layer(c)
        return layer.cost(call)

    register(OpDef(name=name, inputs=("x", "weight", "bias?"), category="math", attrs=attrs, infer=infer,
                   lower=lower, grad=grad, cost=cost, doc=doc, nonempty=spatial_axes))


register_functional(
    "conv", (Attr("stride", "ints", 1), Attr("padding", "padding", 0), Attr("dilation", "ints", 1),
             Attr("groups", "int", 1), Attr("padding_mode", "str", "zeros", choices=PADDING_MODES)),
    doc="Convolution with a given weight tensor (torch.nn.functional.conv1d/2d/3d, by the weight's rank): weight "
        "[out_channels, in_channels/groups, *kernel] of known sizes, bias [out_channels] or none; stride, padding "
        "(a number, one per spatial dim, \"same\" or \"valid\"), dilation, groups and padding_mode as the conv "
        "layers. For weights computed in the spec: weight normalization (g * v / norm(v)), weight standardization, "
        "a spectral-normalized weight; gradients reach the weight's inputs.")
