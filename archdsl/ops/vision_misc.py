"""pad: torch.nn.functional.pad, for asymmetric padding that a conv's own `padding` cannot say
(DDPM's (0, 1, 0, 1) before a stride-2 conv, a TCN's causal left padding). Its lowering (lower_pad) and its
size check (check_pad_fits) also serve the convs' padding_mode (conv.py)."""

from __future__ import annotations

import numpy as np

from ..types import Dim, dim_add, numel
from ._common import check_fill, fill_array, i64, shape_str
from .registry import Attr, OpDef, fail, register

__all__ = ["check_pad_fits", "lower_pad"]

_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # circular: a Concat


def _per_axis(x, a) -> list[tuple[int, int]]:
    """(begin, end) for every axis of x; torch lists pairs from the last dim backwards."""
    p = a["pad"]
    if len(p) % 2 or len(p) // 2 > x.rank:
        fail(f"pad: needs pairs (begin, end) for at most {x.rank} trailing dims, got {list(p)}")
    pairs = [(0, 0)] * x.rank
    for i in range(len(p) // 2):
        pairs[x.rank - 1 - i] = (p[2 * i], p[2 * i + 1])
    return pairs


def check_pad_fits(op: str, x, pairs, mode: str, what: str = "padding") -> None:
    """torch's limits where the size is known: reflect pads less than the dim, circular at most the dim
    (wrapping around once)."""
    for ax, (d, (lo, hi)) in enumerate(zip(x.shape, pairs)):
        if (mode in ("reflect", "circular") and (lo or hi) and isinstance(d, int)
                and max(lo, hi) >= d + (mode == "circular")):
            limit = "smaller than" if mode == "reflect" else "at most"
            fail(f"{op}: {mode} {what} ({lo}, {hi}) on dim {ax} must be {limit} its size {d} (input {shape_str(x)})")
        if mode == "replicate" and (lo or hi) and d == 0:  # onnxruntime's edge mode fails, as torch's does
            fail(f"{op}: replicate {what} ({lo}, {hi}) on dim {ax} copies its edge, and the dim is empty (input "
                 f"{shape_str(x)})")


def lower_pad(e, x: str, x_t, pairs, mode: str, value=None, outputs=None) -> str:
    """x padded by (begin, end) per axis in a torch mode: one ONNX Pad, but circular as a Concat per padded axis
    of x's last `begin` elements, x and its first `end` ones: Pad's mode "wrap" (opset 19) fails in onnxruntime
    1.32 on any empty input, a batch of 0 too (review70)."""
    if mode == "circular":
        padded = [ax for ax, p in enumerate(pairs) if p != (0, 0)]
        if not padded:
            return e.op("Identity", [x], outputs=outputs)
        for ax in padded:
            lo, hi = pairs[ax]
            parts = ([e.op("Slice", [x, i64(e, [-lo]), i64(e, [2**63 - 1]), i64(e, [ax])])] if lo else []) + [x] \
                + ([e.op("Slice", [x, i64(e, [0]), i64(e, [hi]), i64(e, [ax])])] if hi else [])
            x = e.op("Concat", parts, outputs=outputs if ax == padded[-1] else None, axis=ax)
        return x
    if mode in ("reflect", "replicate") and any(min(p) < 0 < max(p) for p in pairs):
        # torch reflects (or repeats the edge) of the uncropped dim, reading elements the crop then drops ((-3, 4)
        # of 6 reads x[1], (-6, 5) of 6 x[5]); onnxruntime crops first and pads what is left: pad, then crop
        x = e.op("Pad", [x, i64(e, [max(v, 0) for pair in zip(*pairs) for v in pair])], mode=_MODES[mode])
        pairs = [(min(lo, 0), min(hi, 0)) for lo, hi in pairs]
        mode, value = "constant", 0
    pads = i64(e, [p[0] for p in pairs] + [p[1] for p in pairs])
    fill = fill_array("pad", value, x_t.dtype) if mode == "constant" else None
    # a fill of 0 (not -0.0) is Pad's own default: left out; any other is the Pad's own, never one constant
    # shared by several Pads, which onnxruntime's QOperator quantizer removes after the first it rewrites
    extra = [e.const(fill, shared=False)] if fill is not None and (fill != 0 or np.signbit(fill)) else []
    return e.op("Pad", [x, pads] + extra, outputs=outputs, mode=_MODES[mode])


def _shown(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _infer(ins, a):
    x = ins[0]
    pairs = _per_axis(x, a)
    mode = a["mode"]
    if mode == "constant":
        check_fill("pad", x, a["value"])  # -inf too, torch's F.pad(x, p, value=-inf) (a log-space scan's identity)
    elif a["value"] not in (0, 0.0):  # it would be ignored
        fail(f"pad: mode \"{mode}\" fills from the tensor itself and takes no value= (got {_shown(a['value'])}); "
             "as torch's, only mode=\"constant\" fills with a value", "value")
    if any(lo < 0 or hi < 0 for lo, hi in pairs):  # a negative amount crops that side, as torch's
        if mode == "circular":
            fail(f"pad: a negative amount crops, which circular mode does not take here, got {list(a['pad'])}; "
                 "slice first (x[..., 1:])")
        for ax, (d, (lo, hi)) in enumerate(zip(x.shape, pairs)):
            if not isinstance(d, int):
                continue
            if mode == "constant" and d + min(lo, 0) + min(hi, 0) < 0:
                fail(f"pad: ({lo}, {hi}) on dim {ax} crops more than its size {d} (input {shape_str(x)})")
            if mode != "constant" and d + lo + hi < 1:  # reflect and replicate read the dim's own elements
                fail(f"pad: ({lo}, {hi}) on dim {ax} of size {d} leaves {d + lo + hi} elements; {mode} padding "
                     f"needs at least 1, as torch's (input {shape_str(x)})")
    check_pad_fits("pad", x, pairs, mode)  # reflect within the uncropped dim, as torch's
    out: list[Dim] = [dim_add(d, lo + hi) for d, (lo, hi) in zip(x.shape, pairs)]
    return [x.with_shape(tuple(out))]


def _lower(e, ins, outs, c):
    lower_pad(e, ins[0], c.in_types[0], _per_axis(c.in_types[0], c.attrs), c.attrs["mode"], c.attrs["value"], outs)


register(OpDef(
    name="pad", inputs=("x",), category="shape",
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.movement_grad", gouts[0], ins[0], op="pad",
                                              attrs={**c.attrs, "value": 0.0})],
    attrs=(Attr("pad", "ints"), Attr("mode", "str", "constant", choices=tuple(_MODES)), Attr("value", "any", 0.0)),
    infer=_infer, lower=_lower, cost=lambda c: numel(c.out_types[0].shape) if c.attrs["mode"] != "constant" else 0,
    # reflect, replicate and circular copy from a padded dim: an empty one is refused, as torch's
    nonempty=lambda ins, a: [ax for ax, p in enumerate(_per_axis(ins[0], a)) if a["mode"] != "constant" and any(p)],
    doc="Pad trailing dims, pairs (begin, end) from the last dim backwards (torch.nn.functional.pad); "
        "constant, reflect, replicate or circular. A negative amount crops that side, as torch's (not in circular "
        "mode: slice first); value= is constant mode's fill: a number, true/false, or \"-inf\"/\"inf\".",
))
