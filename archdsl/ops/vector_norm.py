"""norm: torch.linalg.vector_norm (torch.norm's vector form): ||x||_p over dims, or over every element.

ReduceL2/ReduceL1 for p = 2/1, the largest/smallest |x| for +-inf, a count of nonzeros for 0, and
(sum |x|^p)^(1/p) otherwise. The gradient is torch's (linalg_vector_norm_backward): x / ||x|| for 2, sign(x) for
1, the ties of the max sharing it evenly for inf, 0 where the norm is 0 (and for p = 0), and below 1 zero where
an element is 0 (|x|^(p-1) is infinite there)."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, TensorType
from ._common import float_input, narrow_into, narrowed, reduce_op, shape_str, wide_np, wide_outputs, widen, widened
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axes


def _p(v) -> float:
    """A number (inf and -inf included, or "inf", "-inf"), or "fro" for 2, as torch's."""
    named = {"inf": math.inf, "-inf": -math.inf, "fro": 2.0}
    if isinstance(v, str) and v in named:
        return named[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        fail(f'norm: p must be a number, "inf", "-inf" or "fro", got {v!r}')
    return float(v)


def _infer(ins, a):
    x = ins[0]
    float_input("norm", x)
    p = _p(a["p"])
    axes = norm_axes(a["dim"], x.rank, "norm: dim")
    empty = [i for i in (axes or range(x.rank)) if x.shape[i] == 0]
    if empty and math.isinf(p):  # ReduceMax of nothing: -inf; torch refuses
        fail(f"norm: dim {empty[0]} of {shape_str(x)} is empty: torch refuses the {a['p']} norm over no elements")
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if a["keepdim"] else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [TensorType(x.dtype, shape)]


def _lower(e, ins, outs, c):
    t, a = c.in_types[0], c.attrs
    p, axes, keep = _p(a["p"]), norm_axes(a["dim"], t.rank), int(a["keepdim"])
    f = wide_np(t)
    x = widen(e, ins[0], t)
    to = wide_outputs(t, outs)
    if p == 2:
        y = reduce_op(e, "ReduceL2", x, axes, keep, outputs=to)
    elif p == 1:
        y = reduce_op(e, "ReduceL1", x, axes, keep, outputs=to)
    elif math.isinf(p):
        y = reduce_op(e, "ReduceMax" if p > 0 else "ReduceMin", e.op("Abs", [x]), axes, keep, outputs=to)
    elif p == 0:
        nonzero = e.op("Cast", [e.op("Not", [e.op("Equal", [x, e.const(np.array(0, f))])])], to=_onnx(t))
        y = reduce_op(e, "ReduceSum", nonzero, axes, keep, outputs=to)
    else:
        s = reduce_op(e, "ReduceSum", e.op("Pow", [e.op("Abs", [x]), e.const(np.array(p, f))]), axes, keep)
        y = e.op("Pow", [s, e.const(np.array(1.0 / p, f))], outputs=to)
    narrow_into(e, y, t, outs)


def _onnx(t: TensorType) -> int:
    return DType.float32.onnx if t.dtype.is_16bit else t.dtype.onnx


def _grad(b, c, ins, outs, gouts):
    t, a = c.in_types[0], c.attrs
    p, axes = _p(a["p"]), norm_axes(a["dim"], t.rank)
    if p == 0:  # a count: zero gradient, as torch's
        return [b.zeros_like(ins[0])]
    x, g, n = widened(b, ins[0], t.dtype), widened(b, gouts[0], t.dtype), widened(b, outs[0], t.dtype)
    if not a["keepdim"]:
        for ax in axes:
            g, n = b.op("unsqueeze", g, dim=ax), b.op("unsqueeze", n, dim=ax)
    k = lambda v: b.const(v, like=x)
    if p == 1:
        gx = b.op("mul", b.op("sign", x), g)
    elif math.isinf(p):  # the elements at the max (or min) share g evenly
        at = b.op("cast", b.op("eq", b.op("abs", x), n), dtype=b.type(x).dtype.label)
        share = b.op("div", g, b.op("sum", at, dim=tuple(axes), keepdim=True))
        gx = b.op("mul", b.op("sign", x), b.op("mul", share, at))
    elif p < 1:  # sign(x) |x|^(p-1), 0 at x = 0 where that is infinite, times g n^(1-p)
        sx = b.op("mul", b.op("sign", x), b.op("pow", b.op("abs", x), k(p - 1)))
        sx = b.op("where", b.op("eq", x, k(0.0)), k(0.0), sx)
        gx = b.op("mul", sx, b.op("mul", g, b.op("pow", n, k(1 - p))))
    else:  # x / n (p = 2), sign(x) |x|^(p-1) / n^(p-1) (1 < p < 2), x |x|^(p-2) / n^(p-1); 0 where n is 0
        scale = b.op("div", g, n if p == 2 else b.op("pow", n, k(p - 1)))
        scale = b.op("where", b.op("eq", n, k(0.0)), k(0.0), scale)
        if p == 2:
            sx = x
        elif p < 2:
            sx = b.op("mul", b.op("sign", x), b.op("pow", b.op("abs", x), k(p - 1)))
        else:
            sx = b.op("mul", x, b.op("pow", b.op("abs", x), k(p - 2)))
        gx = b.op("mul", sx, scale)
    return [narrowed(b, gx, t.dtype)]


register(OpDef(
    name="norm", inputs=("x",), category="math", aliases=("vector_norm",),
    attrs=(Attr("p", "any", 2.0, doc='a number, inf or -inf ("inf", "-inf"), or "fro" (2)'),
           Attr("dim", "ints?", None), Attr("keepdim", "bool", False)),
    infer=_infer, lower=_lower, grad=_grad,
    nonempty=lambda ins, a: (norm_axes(a["dim"], ins[0].rank) or range(ins[0].rank)) if math.isinf(_p(a["p"])) else [],
    cost=lambda c: 3 * int(np.prod(
        [d if isinstance(d, int) else 1 for d in c.in_types[0].shape])),
    doc="The vector p-norm ||x||_p over dims, or over every element (dim=none) (torch.linalg.vector_norm, "
        "torch.norm): 2 the Euclidean norm (ReduceL2), 1 the sum of |x|, inf / -inf the largest / smallest |x|, "
        "0 the count of nonzeros, else (sum |x|^p)^(1/p). The gradient is torch's: 0 where the norm is 0 (sqrt "
        "of a sum of squares would give NaN there; 0 whatever gradient arrives, where torch's is NaN if an "
        "infinite one does), the ties of a max sharing it evenly. Float tensors (16-bit "
        "ones reduce in float32).",
))
