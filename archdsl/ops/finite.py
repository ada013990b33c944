"""isnan, isinf, isfinite and nan_to_num (torch's): masks of the values a model should not pass on, and
their replacement. An integer or bool tensor has no NaN or infinity, so its masks are constant."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType
from ._common import elementwise_cost, fill_array, narrow_into, wide_np, wide_outputs, widen
from .registry import Attr, OpDef, register


def _mask_infer(ins, a):
    return [TensorType(DType.bool, ins[0].shape)]


def _nan(e, x: str) -> str:
    return e.op("IsNaN", [x])


def _inf(e, x: str, t: TensorType, **signs) -> str:
    """IsInf takes float16/bfloat16 only from opset 20: 16-bit floats are tested in float32 (exactly)."""
    return e.op("IsInf", [widen(e, x, t)], **signs)


def _everywhere(e, x: str, value: bool, outs) -> None:
    """The constant mask of an integer or bool tensor, of its shape (x == x is true)."""
    same = e.op("Equal", [x, x], outputs=outs if value else None)
    if not value:
        e.op("Not", [same], outputs=outs)


def _mask(kind: str):
    def lower(e, ins, outs, c):
        t = c.in_types[0]
        if not t.dtype.is_float:
            _everywhere(e, ins[0], kind == "isfinite", outs)
        elif kind == "isnan":
            e.op("IsNaN", ins, outputs=outs)
        elif kind == "isinf":
            e.op("Identity", [_inf(e, ins[0], t)], outputs=outs)
        else:
            e.op("Not", [e.op("Or", [_nan(e, ins[0]), _inf(e, ins[0], t)])], outputs=outs)
    return lower


for _name, _doc in (("isnan", "true where an element is NaN"),
                    ("isinf", "true where an element is inf or -inf"),
                    ("isfinite", "true where an element is neither NaN nor infinite")):
    register(OpDef(name=_name, inputs=("x",), category="math", infer=_mask_infer, elementwise=True,
                   lower=_mask(_name), cost=elementwise_cost,
                   doc=f"A bool tensor, {_doc} (torch.{_name}); an integer or bool tensor has none: "
                       + ("all true." if _name == "isfinite" else "all false.")))


def _nan_to_num_infer(ins, a):
    t = ins[0]
    if t.dtype.is_float:
        for k in ("nan", "posinf", "neginf"):
            if a[k] is not None:
                fill_array("nan_to_num", a[k], t.dtype, named_infinity=False)
    return [t]


def _nan_to_num_lower(e, ins, outs, c):
    """Three Wheres, in float32 for 16-bit floats (onnxruntime has no bfloat16 Where); an integer or bool
    tensor is returned as it is."""
    t = c.in_types[0]
    if not t.dtype.is_float:
        e.op("Identity", ins, outputs=outs)
        return
    low, top = t.dtype.limits()
    a = c.attrs
    x, f = widen(e, ins[0], t), wide_np(t)
    wide = TensorType(DType.float32, t.shape) if t.dtype.is_16bit else t

    def value(v, default):
        return e.const(np.array(default if v is None else v, f))

    y = e.op("Where", [_inf(e, x, wide, detect_positive=0), value(a["neginf"], low), x])
    y = e.op("Where", [_inf(e, x, wide, detect_negative=0), value(a["posinf"], top), y])
    y = e.op("Where", [_nan(e, x), value(a["nan"], 0.0), y], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _nan_to_num_grad(b, c, ins, outs, gouts):
    """torch's: the gradient passes where x is finite, 0 where it was replaced."""
    keep = b.op("cast", b.op("isfinite", ins[0]), dtype=c.in_types[0].dtype.label)
    return [b.op("mul", gouts[0], keep)]


register(OpDef(
    name="nan_to_num", inputs=("x",), category="math",
    attrs=(Attr("nan", "float", 0.0, doc="what NaN becomes"),
           Attr("posinf", "float?", None, doc="what inf becomes; the dtype's largest finite value by default"),
           Attr("neginf", "float?", None, doc="what -inf becomes; the dtype's lowest finite value by default")),
    infer=_nan_to_num_infer, elementwise=True, lower=_nan_to_num_lower, cost=elementwise_cost,
    grad=_nan_to_num_grad,
    doc="NaN, inf and -inf replaced by finite numbers (torch.nan_to_num): nan=0.0, posinf and neginf the "
        "dtype's largest and lowest finite values unless given; a value that does not fit the dtype is refused. "
        "Integer and bool tensors are returned as they are. The gradient passes where x is finite.",
))
