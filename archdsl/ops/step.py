"""heaviside: the step function of Rosenblatt's perceptron, 1 where x > 0 else 0.

`value_at_zero` plays the role of torch.heaviside's `values` (default 0: a threshold unit fires only
above its threshold). Lowered as Cast(Greater(x, 0)), plus a Where on x == 0 when value_at_zero != 0."""

from __future__ import annotations

import numpy as np

from ._common import elementwise_cost, fill_array, float_input
from .registry import Attr, OpDef, register

__all__: list[str] = []


def _infer(ins, a):
    float_input("heaviside", ins[0])
    # a constant of x's dtype: 1e6 in float16 would be inf
    fill_array("heaviside: value_at_zero", a["value_at_zero"], ins[0].dtype, named_infinity=False)
    return [ins[0]]


def _lower(e, ins, outs, c):
    t = c.in_types[0]
    zero = e.const(np.array(0, dtype=t.dtype.numpy))
    v0 = c.attrs["value_at_zero"]
    fired = e.op("Cast", [e.op("Greater", [ins[0], zero])], to=t.dtype.onnx, outputs=None if v0 else outs)
    if v0:
        at_zero = e.op("Equal", [ins[0], zero])
        e.op("Where", [at_zero, e.const(np.array(v0, dtype=t.dtype.numpy)), fired], outputs=outs)


register(OpDef(
    name="heaviside", inputs=("x",), category="activation", aliases=("step",), elementwise=True,
    attrs=(Attr("value_at_zero", "float", 0.0),), infer=_infer, lower=_lower, cost=elementwise_cost,
    doc="Step function: 1 where x > 0, 0 where x < 0, value_at_zero at 0 (torch.heaviside).",
))
