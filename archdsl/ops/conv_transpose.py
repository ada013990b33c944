"""conv_transpose1d/2d/3d: torch's nn.ConvTransposeNd layout ([in, out/groups, *kernel] weight).

The output length is (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1, as in torch;
ONNX ConvTranspose with explicit pads and output_padding computes the same."""

from __future__ import annotations

import math

import numpy as np

from ..types import Dim, dim_add, dim_mul, numel
from ._common import bfloat16_from, conv_channels, float_input, kaiming_uniform, positive, shape_str, spatial_rank
from .conv import register_functional
from .registry import Attr, OpDef, ParamSpec, fail, register, spatial_axes
from .shapes import expand

__all__: list[str] = []


def _geom(a: dict, n: int):
    k = expand(a["kernel_size"], n, "kernel_size")
    s = expand(a["stride"], n, "stride")
    p = expand(a["padding"], n, "padding")
    op = expand(a["output_padding"], n, "output_padding")
    d = expand(a["dilation"], n, "dilation")
    positive(f"conv_transpose{n}d", a, "kernel_size", "stride", "dilation")
    for o, si, di in zip(op, s, d):
        if o >= si and o >= di:
            fail(f"output_padding {list(op)} must be smaller than either stride {list(s)} or dilation {list(d)}")
    return k, s, p, op, d


def _out_len(size: Dim, k: int, s: int, p: int, op: int, d: int) -> Dim:
    extra = -2 * p + d * (k - 1) + op + 1
    if isinstance(size, int):
        out = (size - 1) * s + extra
        if out <= 0:
            fail(f"transposed conv makes a non-positive length {out} from {size}")
        return out
    return dim_add(dim_mul(size, s), extra - s)


def _lower_wide_output_padding(e, ins, outs, c, p, op, geo) -> None:
    """output_padding >= stride (torch allows it below the dilation; onnxruntime refuses it): transpose-conv
    with only the begin padding, then crop (or zero-extend) the end, then add the bias."""
    def i64(v):
        return e.const(np.array(v, dtype=np.int64))

    y = e.op("ConvTranspose", ins[:2], pads=list(p) + [0] * len(p), **geo)
    crop = [ax + 2 for ax in range(len(p)) if p[ax] > op[ax]]
    if crop:
        y = e.op("Slice", [y, i64([0] * len(crop)), i64([op[a - 2] - p[a - 2] for a in crop]), i64(crop)])
    grow = [max(0, op[ax] - p[ax]) for ax in range(len(p))]
    if any(grow):
        y = e.op("Pad", [y, i64([0] * (len(p) + 2) + [0, 0] + grow)])
    if len(ins) > 2:
        bias = e.op("Reshape", [ins[2], i64([-1] + [1] * len(p))])
        e.op("Add", [y, bias], outputs=outs)
    else:
        e.op("Identity", [y], outputs=outs)


def _make(n: int) -> None:
    name = f"conv_transpose{n}d"

    def params(ins, a):
        positive(name, a, "out_channels", "kernel_size")
        g, cout = a["groups"], a["out_channels"]
        cin = conv_channels(name, ins[0], n, g, cout)
        k = expand(a["kernel_size"], n, "kernel_size")
        fan_in = cout // g * math.prod(k)  # torch computes fan_in from weight dim 1
        specs = [ParamSpec("weight", (cin, cout // g, *k), kaiming_uniform(fan_in))]
        if a["bias"]:
            specs.append(ParamSpec("bias", (cout,), kaiming_uniform(fan_in)))
        return specs

    def infer(ins, a):
        x, w = ins[0], ins[1]
        float_input(name, x)
        spatial_rank(name, x, n)
        if w.rank != n + 2 or w.shape[0] != x.shape[1]:
            fail(f"{name}: expected {w.shape[0]} input channels, got {x.shape[1]} (input {shape_str(x)})")
        k, s, p, op, d = _geom(a, n)
        if tuple(w.shape[2:]) != tuple(k):
            fail(f"{name}: weight kernel {list(w.shape[2:])} does not match kernel_size {list(k)}")
        cout = w.shape[1] * a["groups"]
        if len(ins) > 2 and ins[2].shape != (cout,):
            fail(f"{name}: bias shape {shape_str(ins[2])} does not match {cout} output channels")
        spatial = tuple(_out_len(x.shape[2 + i], k[i], s[i], p[i], op[i], d[i]) for i in range(n))
        return [x.with_shape((x.shape[0], cout) + spatial)]

    def lower(e, ins, outs, c):
        bfloat16_from(e, c.in_types[0], name, "ONNX ConvTranspose takes")
        k, s, p, op, d = _geom(c.attrs, n)
        geo = {"kernel_shape": list(k), "strides": list(s), "dilations": list(d), "group": c.attrs["groups"]}
        if all(o < si for o, si in zip(op, s)):
            e.op("ConvTranspose", ins, outputs=outs, pads=list(p) * 2, output_padding=list(op), **geo)
            return
        _lower_wide_output_padding(e, ins, outs, c, p, op, geo)

    def grad(b, c, ins, outs, gouts):
        """A transposed conv is the adjoint of a conv with the same weight: gx = conv(g, W),
        gW = the conv weight gradient with g as the conv's input and x as its output gradient."""
        g, a = gouts[0], c.attrs
        k, s, p, op, d = _geom(a, n)
        res = [None] * len(ins)
        if b.needs(0):
            gx = b.op(f"conv{n}d", g, ins[1], out_channels=c.in_types[0].shape[1], kernel_size=k, stride=s,
                      padding=p, dilation=d, groups=a["groups"], bias=False)
            same = False  # the conv's length is L + output_padding // stride for an input length L
            for i in range(n):
                have, want = gx.type.shape[2 + i], c.in_types[0].shape[2 + i]
                if have == want:
                    continue
                if op[i] < s[i]:  # L itself, which the dim algebra cannot show for a formula L ((H-1)//2+1)
                    same = True
                    continue
                if not (isinstance(have, int) and isinstance(want, int)):  # the conv reads past the last position
                    fail(f"{name}: the input gradient with output_padding >= stride needs known lengths")
                gx = b.op("split", gx, sizes=(want, have - want), axis=2 + i)[0]
            res[0] = b.reshape_like(gx, ins[0]) if same else gx
        if b.needs(1):
            res[1] = b.op("autodiff.conv_weight_grad", g, ins[0], kernel=tuple(k), stride=tuple(s), dilation=tuple(d),
                          pads=tuple(p) * 2, groups=a["groups"])
        if len(ins) > 2 and b.needs(2):
            res[2] = b.op("sum", g, dim=(0,) + tuple(range(2, n + 2)))
        return res

    def cost(c):
        # each input element scatters into out/groups * prod(kernel) outputs
        w = c.in_types[1]
        return 2 * numel(c.in_types[0].shape) * math.prod(w.shape[1:])

    register(OpDef(
        name=name, inputs=("x",), category="layer",
        attrs=(Attr("out_channels", "int"), Attr("kernel_size", "ints"), Attr("stride", "ints", 1),
               Attr("padding", "ints", 0), Attr("output_padding", "ints", 0), Attr("groups", "int", 1),
               Attr("bias", "bool", True), Attr("dilation", "ints", 1)),
        params=params, infer=infer, lower=lower, cost=cost, grad=grad, nonempty=spatial_axes,
        doc=f"{n}-D transposed convolution (torch.nn.ConvTranspose{n}d), weight [in, out/groups, *kernel].",
    ))


for _n in (1, 2, 3):
    _make(_n)

register_functional(
    "conv_transpose", (Attr("stride", "ints", 1), Attr("padding", "ints", 0), Attr("output_padding", "ints", 0),
                       Attr("groups", "int", 1), Attr("dilation", "ints", 1)),
    doc="Transposed convolution with a given weight tensor (torch.nn.functional.conv_transpose1d/2d/3d, by the "
        "weight's rank): weight [in_channels, out_channels/groups, *kernel] of known sizes, bias [out_channels] or "
        "none; stride, padding, output_padding, groups and dilation as the conv_transpose layers (a weight-normalized "
        "upsampling conv, as in vocoders).")
