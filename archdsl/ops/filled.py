"""zeros_like, ones_like, full_like: a tensor of x's shape filled with one value (torch.zeros_like and kin).

x * 0 is not zeros where x holds inf or NaN, and an int tensor of ones from a float x needs a cast; these read
x's shape only (Expand of a scalar to Shape(x), at run time for symbolic dims), so no gradient reaches x."""

from __future__ import annotations

from ..types import DTYPES, TensorType, describe, unknown_dtype
from ._common import fill_array
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []


def _dtype(name: str, x: TensorType, a):
    if a["dtype"] is None:
        return x.dtype
    if a["dtype"] not in DTYPES:
        fail(f"{name}: {unknown_dtype(a['dtype'])}", "dtype")
    return DTYPES[a["dtype"]]


def _value(name: str, a) -> object:
    v = a.get("value", 0 if name == "zeros_like" else 1)
    if isinstance(v, bool):  # torch.full_like(mask, True)
        return int(v)
    if not isinstance(v, (int, float, str)) or isinstance(v, str) and v not in ("inf", "-inf"):
        fail(f'{name}: value must be a number, true, false, "inf" or "-inf", got {describe(v)}')
    return v


def _make(name: str, doc: str, attrs: tuple) -> None:
    def infer(ins, a):
        dt = _dtype(name, ins[0], a)
        fill_array(name, _value(name, a), dt)  # fits the dtype (0.5 in an int tensor is refused)
        return [TensorType(dt, ins[0].shape)]

    def lower(e, ins, outs, c):
        dt = c.out_types[0].dtype
        scalar = e.const(fill_array(name, _value(name, c.attrs), dt))
        e.op("Expand", [scalar, e.op("Shape", ins)], outputs=outs)

    register(OpDef(name=name, inputs=("x",), category="tensor", attrs=attrs + (Attr("dtype", "str?", None),),
                   infer=infer, lower=lower, cost=lambda c: 0,
                   grad=lambda b, c, ins, outs, gouts: [None], doc=doc))


_make("zeros_like", "Zeros of x's shape (torch.zeros_like), x's dtype unless dtype= is given; no gradient to x.", ())
_make("ones_like", "Ones of x's shape (torch.ones_like), x's dtype unless dtype= is given; no gradient to x.", ())
_make("full_like", 'value everywhere in x\'s shape (torch.full_like; true/false, and "inf" and "-inf" for a '
      "float), x's dtype unless dtype= is given; no gradient to x.", (Attr("value", "any"),))
