"""cdist: torch.cdist, the p-norm distance between every row of x1 [*, P, M] and every row of x2 [*, R, M],
giving [*, P, R] (the batch dims broadcast, as torch's).

Always the difference form: both inputs unsqueezed against each other, subtracted, and reduced over M (p = 2:
sqrt of the sum of squares; 1: sum of |d|; inf: max of |d|; 0: count of nonzeros; else (sum |d|^p)^(1/p)).
torch's default switches p = 2 to the matmul expansion ||a||^2 - 2ab + ||b||^2 for more than 25 rows,
which cancels catastrophically for near points (float32 rows about 0.015 apart near 1000 from the origin: torch's
default gives 0 for most of them, off by up to 0.69 on others); archdsl is torch's
compute_mode="donot_use_mm_for_euclid_dist". The price is a [*, P, R, M] intermediate.

The gradient is torch's (_cdist_backward): g * d / dist for p = 2, g * sign(d) for 1, g * sign(d) at every
coordinate reaching the max for inf, g * sign(d) (|d| / dist)^(p - 1) otherwise; 0 where dist is 0 (for every
p), 0 for a coordinate difference of 0 below p = 1 (where |d|^(p - 1) is infinite), and 0 for p = 0."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, numel
from ._common import float_input, narrow_into, narrowed, reduce_op, shape_str, wide_outputs, widen, widened
from .registry import Attr, OpDef, fail, register
from .shapes import broadcast

__all__: list[str] = []


def norm_p(v) -> float:
    """cdist's p: a number >= 0, or "inf"."""
    if v == "inf":
        return math.inf
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        fail(f'cdist: p must be a number >= 0 or "inf", got {v!r}')
    if not v >= 0:
        fail(f"cdist: p must be >= 0 (0 counts the differing coordinates, \"inf\" takes the largest), got {v:g}")
    return float(v)


def _infer(ins, a):
    x1, x2 = ins
    float_input("cdist", x1, "x1")
    float_input("cdist", x2, "x2")
    norm_p(a["p"])
    if x1.dtype != x2.dtype:
        fail(f"cdist: dtypes differ ({x1.dtype} vs {x2.dtype}); cast them to one")
    for name, t in (("x1", x1), ("x2", x2)):
        if t.rank < 2:
            fail(f"cdist: {name} must be [..., rows, features] (rank 2 or more), got {shape_str(t)}")
    if x1.shape[-1] != x2.shape[-1]:
        fail(f"cdist: x1 {shape_str(x1)} and x2 {shape_str(x2)} must have the same last dim (the features "
             f"compared), got {x1.shape[-1]} and {x2.shape[-1]}")
    batch = broadcast(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]), "cdist batch dims")
    return [x1.with_shape(batch + (x1.shape[-2], x2.shape[-2]))]


def _lower(e, ins, outs, c):
    t1, t2 = c.in_types
    p = norm_p(c.attrs["p"])
    wide = DType.float32 if t1.dtype.is_16bit else t1.dtype
    a, b = widen(e, ins[0], t1), widen(e, ins[1], t2)
    d = e.op("Sub", [e.op("Unsqueeze", [a, e.const(np.array([-2], np.int64))]),
                     e.op("Unsqueeze", [b, e.const(np.array([-3], np.int64))])])
    to = wide_outputs(t1, outs)
    if p == 2:
        y = e.op("Sqrt", [reduce_op(e, "ReduceSum", e.op("Mul", [d, d]), [-1], 0)], outputs=to)
    elif p == 1:
        y = reduce_op(e, "ReduceSum", e.op("Abs", [d]), [-1], 0, outputs=to)
    elif p == math.inf:
        m = t1.shape[-1]
        if isinstance(m, int) and m > 0:
            y = reduce_op(e, "ReduceMax", e.op("Abs", [d]), [-1], 0, outputs=to)
        else:  # no features (or maybe none): ReduceMax of nothing is -inf, torch's distance is 0
            top = reduce_op(e, "ReduceMax", e.op("Abs", [d]), [-1], 0)
            y = e.op("Max", [top, e.const(np.array(0, wide.numpy))], outputs=to)
    elif p == 0:
        nz = e.op("Not", [e.op("Equal", [d, e.const(np.array(0, wide.numpy))])])
        y = reduce_op(e, "ReduceSum", e.op("Cast", [nz], to=wide.onnx), [-1], 0, outputs=to)
    else:
        s = reduce_op(e, "ReduceSum", e.op("Pow", [e.op("Abs", [d]), e.const(np.array(p, wide.numpy))]), [-1], 0)
        y = e.op("Pow", [s, e.const(np.array(1.0 / p, wide.numpy))], outputs=to)
    narrow_into(e, y, t1, outs)


def _grad(b, c, ins, outs, gouts):
    t1, t2 = c.in_types
    p = norm_p(c.attrs["p"])
    if gouts[0] is None:
        return [None, None]
    if p == 0:  # a count: zero gradient, as torch's
        return [b.zeros_like(ins[0]) if b.needs(0) else None, b.zeros_like(ins[1]) if b.needs(1) else None]
    dt = t1.dtype
    x1, x2 = widened(b, ins[0], dt), widened(b, ins[1], dt)
    g, y = widened(b, gouts[0], dt), widened(b, outs[0], dt)
    k = lambda v: b.const(v, like=x1)
    d = b.op("sub", b.op("unsqueeze", x1, dim=-2), b.op("unsqueeze", x2, dim=-3))  # [*, P, R, M]
    g, y = b.op("unsqueeze", g, dim=-1), b.op("unsqueeze", y, dim=-1)
    if p == 1:
        gd = b.op("mul", g, b.op("sign", d))
    elif p == math.inf:  # every coordinate at the max gets the whole gradient (torch's); the max taken again
        ad = b.op("abs", d)   # where d is: a 16-bit output, rounded, may equal no float32 difference (gradient 0)
        top = b.op("amax", ad, dim=(-1,), keepdim=True)
        gd = b.op("where", b.op("eq", ad, top), b.op("mul", g, b.op("sign", d)), k(0.0))
    else:
        if p == 2:
            gd = b.op("div", b.op("mul", g, d), y)
        else:
            gd = b.op("mul", b.op("mul", g, b.op("sign", d)), b.op("pow", b.op("div", b.op("abs", d), y), k(p - 1)))
            if p < 1:  # |d|^(p-1) is inf at a coordinate difference of 0, times sign 0: torch's gradient is 0
                gd = b.op("where", b.op("eq", d, k(0.0)), k(0.0), gd)
        gd = b.op("where", b.op("eq", y, k(0.0)), k(0.0), gd)  # 0 / 0 there: torch's gradient is 0
    r = len(b.type(gd).shape)
    res = [None, None]
    if b.needs(0):
        res[0] = narrowed(b, b.sum_to(b.op("sum", gd, dim=(r - 2,)), t1.shape), dt)
    if b.needs(1):
        res[1] = narrowed(b, b.sum_to(b.op("neg", b.op("sum", gd, dim=(r - 3,))), t2.shape), dt)
    return res


register(OpDef(
    name="cdist", inputs=("x1", "x2"), category="math", attrs=(Attr("p", "any", 2.0),),
    infer=_infer, lower=_lower, grad=_grad,
    cost=lambda c: 3 * numel(c.out_types[0].shape) * (c.in_types[0].shape[-1]
                                                       if isinstance(c.in_types[0].shape[-1], int) else 1),
    doc="p-norm distance between each row of x1 [*, P, M] and each row of x2 [*, R, M] (torch.cdist), giving "
        "[*, P, R]; the batch dims broadcast. p >= 0 or \"inf\" (0 counts the differing coordinates, inf takes "
        "the largest). Always the exact difference form (Sub of the unsqueezed inputs, then Sqrt of the sum of "
        "squares for p = 2, sum of |d| for 1, ReduceMax for inf, (sum |d|^p)^(1/p) otherwise), i.e. torch's "
        "compute_mode=\"donot_use_mm_for_euclid_dist\": torch's default uses the matmul expansion for p = 2 "
        "past 25 rows, which cancels for near points; the price is a [*, P, R, M] intermediate. The gradient "
        "is 0 at zero distance and for p = 0, as torch's.",
))
