"""pad: torch.nn.functional.pad, for asymmetric padding that a conv's own `padding` cannot say
(DDPM's (0, 1, 0, 1) before a stride-2 conv, a TCN's causal left padding)."""

from __future__ import annotations

import numpy as np

from ..types import Dim, dim_add, numel
from ._common import fill_array, shape_str
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []

_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _per_axis(x, a) -> list[tuple[int, int]]:
    """(begin, end) for every axis of x; torch lists pairs from the last dim backwards."""
    p = a["pad"]
    if len(p) % 2 or len(p) // 2 > x.rank:
        fail(f"pad: needs pairs (begin, end) for at most {x.rank} trailing dims, got {list(p)}")
    pairs = [(0, 0)] * x.rank
    for i in range(len(p) // 2):
        pairs[x.rank - 1 - i] = (p[2 * i], p[2 * i + 1])
    return pairs


def _infer(ins, a):
    x = ins[0]
    pairs = _per_axis(x, a)
    mode = a["mode"]
    if mode == "constant":
        fill_array("pad", a["value"], x.dtype, named_infinity=False)  # pad takes a number, not "inf"
    out: list[Dim] = []
    for d, (lo, hi) in zip(x.shape, pairs):
        if (mode in ("reflect", "circular") and (lo or hi) and isinstance(d, int)
                and max(lo, hi) >= d + (mode == "circular")):
            fail(f"pad: {mode} padding ({lo}, {hi}) must be smaller than the dim {d} of {shape_str(x)}")
        out.append(dim_add(d, lo + hi))
    return [x.with_shape(tuple(out))]


def _lower(e, ins, outs, c):
    x = c.in_types[0]
    mode = c.attrs["mode"]
    if mode == "circular" and e.opset < 19:
        fail("pad: circular padding needs opset 19 or newer")
    pairs = _per_axis(x, c.attrs)
    pads = e.const(np.array([p[0] for p in pairs] + [p[1] for p in pairs], dtype=np.int64))
    extra = [e.const(fill_array("pad", c.attrs["value"], x.dtype))] if mode == "constant" else []
    e.op("Pad", [ins[0], pads] + extra, outputs=outs, mode=_MODES[mode])


register(OpDef(
    name="pad", inputs=("x",), category="shape",
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.movement_grad", gouts[0], ins[0], op="pad",
                                              attrs={**c.attrs, "value": 0.0})],
    attrs=(Attr("pad", "ints"), Attr("mode", "str", "constant", choices=tuple(_MODES)), Attr("value", "float", 0.0)),
    infer=_infer, lower=_lower, cost=lambda c: numel(c.out_types[0].shape) if c.attrs["mode"] != "constant" else 0,
    doc="Pad trailing dims, pairs (begin, end) from the last dim backwards (torch.nn.functional.pad); "
        "constant, reflect, replicate or circular.",
))
