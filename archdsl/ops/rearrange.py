"""Rearranging ops, torch semantics: pixel_shuffle and pixel_unshuffle (sub-pixel convolution's space <->
depth moves) and flip. Each moves elements only; its gradient is the inverse move."""

from __future__ import annotations

import numpy as np

from ..types import DType, dim_exact_div, dim_mul
from ._common import i64 as _i64
from ._common import shape_str
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axes

__all__: list[str] = []


# ---------------- pixel_shuffle, pixel_unshuffle ----------------

def _factor(name: str, attr: str, x, a) -> int:
    r = a[attr]
    if r < 1:
        fail(f"{name}: {attr} must be at least 1, got {r}")
    if x.rank < 3:
        fail(f"{name}: expected an input [*, C, H, W] of at least 3 dims, got {shape_str(x)}")
    return r


def _shuffle_infer(ins, a):
    x = ins[0]
    r = _factor("pixel_shuffle", "upscale_factor", x, a)
    c, h, w = x.shape[-3:]
    if isinstance(c, int) and c % (r * r):
        fail(f"pixel_shuffle: the {c} channels of {shape_str(x)} are not divisible by upscale_factor^2 = {r * r}")
    # a symbolic C (pixel_unshuffle's gradient over [B, C, H, W] gets [B, 4*C, ...]): C/(r*r), exact at run time
    return [x.with_shape(x.shape[:-3] + (dim_exact_div(c, r * r), dim_mul(h, r), dim_mul(w, r)))]


def _unshuffle_infer(ins, a):
    x = ins[0]
    r = _factor("pixel_unshuffle", "downscale_factor", x, a)
    c, h, w = x.shape[-3:]
    for d, what in ((h, "height"), (w, "width")):
        if isinstance(d, int) and d % r:
            fail(f"pixel_unshuffle: the {what} {d} of {shape_str(x)} is not divisible by downscale_factor={r}")
    return [x.with_shape(x.shape[:-3] + (dim_mul(c, r * r), dim_exact_div(h, r), dim_exact_div(w, r)))]


def _reshape(e, y: str, x: str, t, lead: int, sizes: list, outputs=None) -> str:
    """y reshaped to x's `lead` leading dims, then `sizes`, each an int or (i, mul, div): x's dim i times mul //
    div. Every size written out, read at run time where symbolic, with allowzero=1: a -1 names no size at an
    empty batch (onnxruntime refused pixel_unshuffle over [0, 4, 6, 6]), and a 0 copied the wrong dim."""
    parts: list = []  # int64 tensors, lists of ints, and (start, end) ranges of x's dims read at run time
    for s in [(i, 1, 1) for i in range(lead)] + sizes:
        if isinstance(s, tuple) and not isinstance(t.shape[s[0]], int):
            i, mul, div = s[0] % t.rank, s[1], s[2]
            if mul != 1 or div != 1:
                d = e.op("Shape", [x], start=i, end=i + 1)
                d = e.op("Mul", [d, _i64(e, [mul])]) if mul != 1 else d
                parts.append(e.op("Div", [d, _i64(e, [div])]) if div != 1 else d)
            elif parts and isinstance(parts[-1], tuple) and parts[-1][1] == i:
                parts[-1] = (parts[-1][0], i + 1)  # x's dims i-1 and i: one Shape
            else:
                parts.append((i, i + 1))
            continue
        s = t.shape[s[0]] * s[1] // s[2] if isinstance(s, tuple) else s
        if parts and isinstance(parts[-1], list):
            parts[-1].append(s)
        else:
            parts.append([s])
    parts = [_i64(e, q) if isinstance(q, list) else e.op("Shape", [x], start=q[0], end=q[1])
             if isinstance(q, tuple) else q for q in parts]
    target = parts[0] if len(parts) == 1 else e.op("Concat", parts, axis=0)
    return e.op("Reshape", [y, target], outputs=outputs, allowzero=1)


_DEPTH_TO_SPACE = (DType.float32, DType.float64, DType.float16)  # the dtypes onnxruntime's kernel takes


def _shuffle_lower(e, ins, outs, c):
    """DepthToSpace in CRD mode is torch's order (measured 1.5x faster than Reshape/Transpose on [8, 256, 32,
    32]); other ranks and dtypes: [*, C, r, r, H, W] -> [*, C, H, r, W, r] -> [*, C, H*r, W*r]."""
    t, r = c.in_types[0], c.attrs["upscale_factor"]
    if t.rank == 4 and t.dtype in _DEPTH_TO_SPACE:
        e.op("DepthToSpace", ins, outputs=outs, blocksize=r, mode="CRD")
        return
    lead, ch = t.rank - 3, (-3, 1, r * r)
    y = _reshape(e, ins[0], ins[0], t, lead, [ch, r, r, (-2, 1, 1), (-1, 1, 1)])
    y = e.op("Transpose", [y], perm=list(range(lead)) + [lead + i for i in (0, 3, 1, 4, 2)])
    _reshape(e, y, ins[0], t, lead, [ch, (-2, r, 1), (-1, r, 1)], outputs=outs)


def _unshuffle_lower(e, ins, outs, c):
    """[*, C, H*r, W*r] -> [*, C, H, r, W, r] -> [*, C, r, r, H, W] -> [*, C*r*r, H, W]. Not SpaceToDepth:
    its channels come out as (r, r, C), torch's as (C, r, r)."""
    t, r = c.in_types[0], c.attrs["downscale_factor"]
    lead = t.rank - 3
    y = _reshape(e, ins[0], ins[0], t, lead, [(-3, 1, 1), (-2, 1, r), r, (-1, 1, r), r])
    y = e.op("Transpose", [y], perm=list(range(lead)) + [lead + i for i in (0, 2, 4, 1, 3)])
    _reshape(e, y, ins[0], t, lead, [(-3, r * r, 1), (-2, 1, r), (-1, 1, r)], outputs=outs)


register(OpDef(
    name="pixel_shuffle", inputs=("x",), category="shape", attrs=(Attr("upscale_factor", "int"),),
    infer=_shuffle_infer, lower=_shuffle_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.reshape_like(
        b.op("pixel_unshuffle", gouts[0], downscale_factor=c.attrs["upscale_factor"]), ins[0])],
    doc="[*, C*r*r, H, W] -> [*, C, H*r, W*r], channel c*r*r + i*r + j to row h*r + i, column w*r + j "
        "(torch.nn.functional.pixel_shuffle, sub-pixel convolution; ONNX DepthToSpace in CRD mode). Any dim may "
        "be symbolic (a symbolic channel dim must be divisible by r*r at run time). Gradient: pixel_unshuffle.",
))

register(OpDef(
    name="pixel_unshuffle", inputs=("x",), category="shape", attrs=(Attr("downscale_factor", "int"),),
    infer=_unshuffle_infer, lower=_unshuffle_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.reshape_like(
        b.op("pixel_shuffle", gouts[0], upscale_factor=c.attrs["downscale_factor"]), ins[0])],
    doc="[*, C, H*r, W*r] -> [*, C*r*r, H, W], the inverse of pixel_shuffle "
        "(torch.nn.functional.pixel_unshuffle); a known height or width must be divisible by r, a symbolic one "
        "must be at run time. An empty input gets the rule's shape ([0, 4, 6, 6] -> [0, 16, 3, 3]), where torch "
        "returns it unchanged. Gradient: pixel_shuffle.",
))


# ---------------- flip ----------------

def _flip_axes(x, a) -> list[int]:
    if x.rank == 0:
        fail("flip: a 0-d tensor has no dims to flip")
    return norm_axes(a["dims"], x.rank, "flip: dim")


def _flip_infer(ins, a):
    _flip_axes(ins[0], a)
    return [ins[0]]


def _flip_lower(e, ins, outs, c):
    """Slice from -1 to before the start with step -1 on each axis: any size, symbolic ones included."""
    axes = _flip_axes(c.in_types[0], c.attrs)
    k = len(axes)
    e.op("Slice", [ins[0], _i64(e, [-1] * k), _i64(e, [np.iinfo(np.int64).min] * k), _i64(e, axes),
                   _i64(e, [-1] * k)], outputs=outs)


register(OpDef(
    name="flip", inputs=("x",), category="shape", attrs=(Attr("dims", "ints"),),
    infer=_flip_infer, lower=_flip_lower, cost=lambda c: 0,
    grad=lambda b, c, ins, outs, gouts: [b.op("flip", gouts[0], dims=c.attrs["dims"])],
    doc="Reverse the order of elements along each of dims (torch.flip; a list, negative dims count from the "
        "end, each dim once). ONNX Slice with step -1. Gradient: flip.",
))
