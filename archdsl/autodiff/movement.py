"""The gradient of any op that only moves or copies elements (pad in every mode, take, nearest upsampling):
run the op's own lowering on a tensor of element positions, then scatter-add g to the positions each output
element was read from. One rule for all of them, exact by construction: no second description of the op.

Positions start at 1 so that a constant fill (pad's value, set to 0 here) lands in a slot that is dropped."""

from __future__ import annotations

import numpy as np

from ..ops import Attr, OpCall, OpDef, fail, get, register
from ..ops._common import i64 as _i64
from ..ops._common import numel_tensor, reshape_like
from ..types import DTYPES, DType, TensorType
from .kernels import scatter_add

__all__: list[str] = []


def _lower(e, ins, outs, c):
    g, x, *extra = ins
    g_t, x_t, *extra_t = c.in_types
    pos_dt = DTYPES[c.attrs["positions"]]
    n = numel_tensor(e, x, x_t)
    n1 = e.op("Add", [n, _i64(e, [1])])
    pos = e.op("Range", [e.const(np.array(1, np.int64)), e.op("Squeeze", [n1]), e.const(np.array(1, np.int64))])
    if pos_dt is not DType.int64:
        if pos_dt is DType.int32 and isinstance(x_t.shape, tuple) and all(isinstance(d, int) for d in x_t.shape) \
                and int(np.prod(x_t.shape, dtype=np.int64)) >= 2**31 - 1:
            fail("gradient: tensor too large for int32 positions")
        pos = e.op("Cast", [pos], to=pos_dt.onnx)
    pos = reshape_like(e, pos, x, x_t)
    op = get(c.attrs["op"])
    sel = f"{outs[0]}/positions"
    call = OpCall((TensorType(pos_dt, x_t.shape), *extra_t), (TensorType(pos_dt, g_t.shape),), dict(c.attrs["attrs"]))
    op.lower(e, [pos] + list(extra), [sel], call)
    idx = e.op("Reshape", [sel, _i64(e, [-1])])
    if pos_dt is not DType.int64:
        idx = e.op("Cast", [idx], to=DType.int64.onnx)
    acc = scatter_add(e, n1, idx, e.op("Reshape", [g, _i64(e, [-1])]), x_t.dtype)
    acc = e.op("Slice", [acc, _i64(e, [1]), n1, _i64(e, [0])])
    reshape_like(e, acc, x, x_t, outs)


register(OpDef(
    name="autodiff.movement_grad", inputs=("g", "x", "*extra"), category="internal",
    attrs=(Attr("op", "str"), Attr("attrs", "any"), Attr("positions", "str", "int64")),
    infer=lambda ins, a: [ins[1]], lower=_lower, cost=lambda c: 0,
    doc="gradient of an op that moves elements: g scattered back to where each output element came from",
))

