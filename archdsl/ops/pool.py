"""Max/average pools (1-D, 2-D, 3-D, torch semantics) and global pools."""

from __future__ import annotations

import math

from ..types import numel
from ._common import bfloat16_from, float_input, i64, reduce_op, shape_str, spatial_rank
from .registry import Attr, OpDef, fail, register, spatial_axes
from .shapes import expand, window_out


def _geom(x, a, n, name):
    """(kernel, stride, padding, dilation) per spatial dim; dilation is the max pools' alone (torch's)."""
    spatial_rank(name, x, n)
    k = expand(a["kernel_size"], n, "kernel_size")
    s = expand(a["stride"] if a["stride"] is not None else a["kernel_size"], n, "stride")
    p = expand(a["padding"], n, "padding")
    d = expand(a.get("dilation", (1,)), n, "dilation")
    if any(v <= 0 for v in k + s):
        fail(f"{name}: kernel_size and stride must be positive, got {list(k)} and {list(s)}",
             "kernel_size" if any(v <= 0 for v in k) else "stride")
    if any(v <= 0 for v in d):
        fail(f"{name}: dilation must be positive, got {list(d)}", "dilation")
    if any(2 * pi > ki for pi, ki in zip(p, k)):  # the kernel's own size, dilated or not (torch's check)
        fail(f"{name}: padding {list(p)} must be at most half the kernel {list(k)}", "padding")
    return k, s, p, d


def _ceil_cuts(e, t, k, s, p, d) -> dict:
    """ceil_mode drops a last window that would start in the right padding (torch, and ONNX's pools from
    version 22); before it, ONNX's shape inference counts that window, so an output declared at torch's length
    fails a train step's load: axis -> the length to slice to, for the static axes where the two differ. The
    kernels themselves give torch's length at every version (onnxruntime's, and onnx's reference evaluator),
    and inference sizes no symbolic axis: those need no cut."""
    cut = {}
    for i, (ki, si, pi, di) in enumerate(zip(k, s, p, d)):
        eff = di * (ki - 1) + 1
        size = t.shape[2 + i]
        if si == 1 or pi + si <= eff or not isinstance(size, int):
            continue
        onnx_len = -(-(size + 2 * pi - eff) // si) + 1
        torch_len = window_out(size, ki, si, 2 * pi, di, True)
        if onnx_len != torch_len:
            cut[2 + i] = i64(e, [torch_len])
    return cut


def ceil_end_pads(shape, k, s, p, d, ceil: bool, opset: int) -> list[int] | None:
    """Below opset 22 ONNX's shape inference counts a ceil_mode window that starts in the right padding, which
    torch drops (ONNX too from 22) and onnxruntime's kernel leaves out: a node inferred one length and computed
    another, and onnxruntime reused its buffer for a later tensor of the inferred size ("Shape mismatch
    attempting to re-use buffer", difffuzz hunt). There, at known sizes: the end padding per spatial dim that
    gives torch's length by the floor rule, to pool with ceil_mode=0 (each under the kernel, as onnxruntime
    requires, else the rest by `pad_past_kernel`); None where ceil_mode stays (not asked, opset 22 on, a symbolic
    size)."""
    if not ceil or opset >= 22:
        return None
    ends = []
    for i, (ki, si, pi, di) in enumerate(zip(k, s, p, d)):
        size = shape[2 + i]
        if not isinstance(size, int):
            return None
        eff = di * (ki - 1) + 1
        ends.append(max((window_out(size, ki, si, 2 * pi, di, True) - 1) * si + eff - size - pi, 0))
    return ends


def pad_past_kernel(e, x: str, dtype, k, ends: list[int]) -> tuple[str, list[int], list[int]]:
    """onnxruntime's pools refuse a pad that is not under the kernel, and a dilated max pool's end can need one
    (kernel 2, dilation 3): that part written as a Pad of -inf (torch's padding for a max) before the pool,
    where keeping ceil_mode for the whole node let another dim's extra window through (review72 hunt).
    (x, padded or not; the ends left to the pool's pads; what the Pad added at each spatial dim's end)."""
    import numpy as np
    over = [max(end - (ki - 1), 0) for end, ki in zip(ends, k)]
    if not any(over):
        return x, ends, over
    n = len(k)
    x = e.op("Pad", [x, i64(e, [0] * (n + 2) + [0, 0, *over]), e.const(np.array(-np.inf, dtype.numpy))])
    return x, [end - o for end, o in zip(ends, over)], over


def _concat(e, parts: list) -> str:
    return parts[0] if len(parts) == 1 else e.op("Concat", parts, axis=0)


def _make(kind: str, n: int):
    name = f"{kind}pool{n}d"
    onnx_op = "MaxPool" if kind == "max" else "AveragePool"

    def infer(ins, a):
        x = ins[0]
        float_input(name, x)
        k, s, p, d = _geom(x, a, n, name)
        spatial = tuple(window_out(x.shape[2 + i], k[i], s[i], 2 * p[i], d[i], a["ceil_mode"]) for i in range(n))
        return [x.with_shape(x.shape[:2] + spatial)]

    def lower(e, ins, outs, c):
        bfloat16_from(e, c.in_types[0], name, "ONNX pools take")
        k, s, p, d = _geom(c.in_types[0], c.attrs, n, name)
        extra = {"count_include_pad": int(c.attrs["count_include_pad"])} if kind == "avg" else {}
        if any(di != 1 for di in d):
            extra["dilations"] = list(d)
        x, ceil, pads = ins[0], int(c.attrs["ceil_mode"]), list(p) * 2
        ends = ceil_end_pads(c.in_types[0].shape, k, s, p, d, c.attrs["ceil_mode"], e.opset)
        if ends is not None:  # floor windows over the end padding torch's ceil_mode reads
            x, ends, _ = pad_past_kernel(e, x, c.in_types[0].dtype, k, ends)
            ceil, pads = 0, list(p) + ends
            if kind == "avg" and c.attrs["count_include_pad"]:  # torch counts the padding, not the overhang: the
                x = e.op("Pad", [x, i64(e, [0, 0, *p, 0, 0, *p])])  # padding as zeros, and only them counted
                pads, extra["count_include_pad"] = [0] * n + [max(end - pi, 0) for end, pi in zip(ends, p)], 0
        cut = _ceil_cuts(e, c.in_types[0], k, s, p, d) if ceil and e.opset < 22 else {}
        y = e.op(onnx_op, [x], outputs=None if cut else outs, kernel_shape=list(k), strides=list(s),
                 pads=pads, ceil_mode=ceil, **extra)
        if cut:  # onnxruntime's kernel leaves that window out already: the Slice cuts nothing at run time
            axes = sorted(cut)
            e.op("Slice", [y, i64(e, [0] * len(axes)), _concat(e, [cut[a] for a in axes]), i64(e, axes)],
                 outputs=outs)

    def grad(b, c, ins, outs, gouts):
        k, s, p, d = _geom(c.in_types[0], c.attrs, n, name)
        geom = {"kernel": tuple(k), "stride": tuple(s), "pads": tuple(p) * 2}
        if kind == "max":
            return [b.op("autodiff.maxpool_grad", ins[0], gouts[0], ceil_mode=c.attrs["ceil_mode"],
                         dilation=tuple(d), **geom)]
        return [b.op("autodiff.avgpool_grad", gouts[0], ins[0], count_include_pad=c.attrs["count_include_pad"],
                     ceil_mode=c.attrs["ceil_mode"], **geom)]

    attrs = [Attr("kernel_size", "ints"), Attr("stride", "ints?", None), Attr("padding", "ints", 0),
             Attr("ceil_mode", "bool", False)]
    if kind == "avg":
        attrs.append(Attr("count_include_pad", "bool", True))
    else:
        attrs.append(Attr("dilation", "ints", 1))
    register(OpDef(
        name=name, inputs=("x",), category="pool", attrs=tuple(attrs), infer=infer, lower=lower, grad=grad,
        nonempty=spatial_axes,
        cost=lambda c: numel(c.out_types[0].shape) * math.prod(expand(c.attrs["kernel_size"], n, "kernel_size")),
        doc=f"{'Max' if kind == 'max' else 'Average'} pooling over {n} spatial dims "
            f"(torch.nn.{kind.capitalize()}Pool{n}d); stride defaults to the kernel"
            + ("; dilation spaces the window's taps (torch's; a window whose taps all fall in the padding gives "
               "the dtype's lowest value, where torch gives -inf)." if kind == "max" else "."),
    ))


for _k in ("max", "avg"):
    for _n in (1, 2, 3):
        _make(_k, _n)


def _global(kind):
    name = f"global_{kind}pool"
    onnx_op = "GlobalAveragePool"

    def infer(ins, a):
        x = ins[0]
        float_input(name, x)
        if x.rank < 3:
            fail(f"{name}: expected an input [N, C, spatial...], got {shape_str(x)}")
        if 0 in x.shape[1:]:  # onnxruntime's global pools fail on it (torch: NaN or an empty result)
            fail(f"{name}: {shape_str(x)} is empty (an empty slice?): nothing to pool")
        if a["keepdims"]:
            return [x.with_shape(x.shape[:2] + (1,) * (x.rank - 2))]
        return [x.with_shape(x.shape[:2])]

    def lower(e, ins, outs, c):
        bfloat16_from(e, c.in_types[0], name, "ONNX pools take")
        if kind == "max":  # ReduceMax: onnxruntime's GlobalMaxPool starts from the lowest float, and a map of
            axes = list(range(2, c.in_types[0].rank))  # -inf alone (a masked max over time) gave it, not -inf
            reduce_op(e, "ReduceMax", ins[0], axes, int(c.attrs["keepdims"]), outputs=outs)  # (specials hunt)
        elif c.attrs["keepdims"]:
            e.op(onnx_op, ins, outputs=outs)
        else:
            import numpy as np
            g = e.op(onnx_op, ins)
            axes = e.const(np.arange(2, c.in_types[0].rank, dtype=np.int64))
            e.op("Squeeze", [g, axes], outputs=outs)

    def grad(b, c, ins, outs, gouts):
        """avg: g / (spatial size) spread over the window; max: g to the maximum (shared among ties)."""
        x, g = ins[0], gouts[0]
        dims = tuple(range(2, c.in_types[0].rank))
        if kind == "max":
            return [b.op("autodiff.max_grad", g, x, outs[0], dims=dims, keepdim=c.attrs["keepdims"])]
        if not c.attrs["keepdims"]:
            for d in dims:
                g = b.op("unsqueeze", g, dim=d)
        return [b.broadcast_to(b.over_count(g, x, dims), x)]

    register(OpDef(
        name=name, inputs=("x",), category="pool", attrs=(Attr("keepdims", "bool", True),), grad=grad,
        nonempty=spatial_axes,
        infer=infer, lower=lower, cost=lambda c: numel(c.in_types[0].shape),
        doc=f"{'Max' if kind == 'max' else 'Mean'} over all spatial dims: [N, C, ...] -> [N, C, 1, ...] "
            f"(like {'AdaptiveMaxPool' if kind == 'max' else 'AdaptiveAvgPool'}(1)); keepdims=false gives [N, C]."
            + (" Tied maxima share the gradient (torch's max pools give it to one of them)." if kind == "max" else ""),
    ))


_global("avg")
_global("max")
