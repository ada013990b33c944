"""Ops written as other registry ops (ctc_loss's recursion): one description serves both the lowering and
the gradient. The gradient rule differentiates it (GradBuilder.vjp); `lower_expanded` lowers it here, each
registry op through its own shape rule and lowering, with no IR nodes in between. A decomposition only uses
`r.op(name, *inputs, **attrs)`, `r.const(value, like=..., dtype=...)` and `r.type(handle)`, which both
builders provide."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import DType, TensorType
from .registry import OpCall, call_attrs, get

__all__ = ["lower_expanded"]

_BY_NUMPY = {np.dtype(d.numpy): d for d in DType}


@dataclass(frozen=True)
class _Handle:
    name: str
    type: TensorType


class _Expander:
    """The builder a decomposition writes into at lowering time: every op lowered on the spot."""

    def __init__(self, e, stem: str):
        self._e, self._stem, self._count = e, stem, 0

    def op(self, name: str, *inputs: _Handle, **attrs):
        opdef = get(name)
        full = call_attrs(opdef, attrs, f"the decomposition lowered into {self._stem}")
        in_types = tuple(h.type for h in inputs)
        out_types = tuple(opdef.infer(list(in_types), full))
        self._count += 1
        names = [f"{self._stem}/{name}{self._count}" + (f"_{i}" if len(out_types) > 1 else "")
                 for i in range(len(out_types))]
        opdef.lower(self._e, [h.name for h in inputs], names, OpCall(in_types, out_types, full, names[0]))
        outs = tuple(_Handle(n, t) for n, t in zip(names, out_types))
        return outs[0] if len(outs) == 1 else outs

    def const(self, value, like: _Handle | None = None, dtype=None) -> _Handle:
        arr = np.asarray(value, dtype=dtype if dtype is not None else like.type.dtype.numpy)
        return _Handle(self._e.const(arr), TensorType(_BY_NUMPY[arr.dtype], arr.shape))

    @staticmethod
    def type(h: _Handle) -> TensorType:
        return h.type


def lower_expanded(decompose):
    """A lowering that runs `decompose(r, c, inputs)` with the builder above, its results into the outputs."""
    def lower(e, ins, outs, c: OpCall):
        r = _Expander(e, outs[0])
        results = decompose(r, c, [_Handle(n, t) for n, t in zip(ins, c.in_types)])
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        for h, out in zip(results, outs):
            e.op("Identity", [h.name], outputs=[out])
    return lower
