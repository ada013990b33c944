"""cumprod (torch.cumprod) and its gradient. ONNX has no CumProd, and exp(cumsum(log|x|)) is neither exact nor
right at zeros, so both are scans unrolled over a dim of known size: ceil(log2 n) steps of Slice, Pad and Mul
(Hillis-Steele). Every output is the product of exactly its own elements, no logarithms; only the order the
factors meet differs from torch's left-to-right loop (integers: identical; floats: within a few ulps).

The gradient, written for zeros: out_j = x_1 ... x_j, so
    dL/dx_k = (x_1 ... x_{k-1}) * S_k,   S_k = sum_{j >= k} g_j * x_{k+1} ... x_j,
the exclusive product read off the forward output, and S from the reverse recurrence S_k = g_k + x_{k+1} S_{k+1},
itself a scan of affine maps in log2 n steps. No division anywhere, so a zero in x (at any place, several) gives
the exact gradient, as torch's cumprod_backward does by its own case analysis."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import accumulated, shape_str
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, give_numbers, register
from .shapes import norm_axis, torch_dim

__all__: list[str] = []


def _axis(x: TensorType, dim: int) -> int | None:
    """The scanned axis, None for a 0-d tensor (dim 0 or -1, as torch)."""
    ax = torch_dim("cumprod", x, dim)
    if x.rank == 0:
        return None
    if not isinstance(x.shape[ax], int):
        fail(f"cumprod: dim {dim} of {shape_str(x)} must be a known size (the product is unrolled into "
             f"log2(n) steps at build time); {give_numbers(x.shape[ax])}; or, for x > 0, "
             f"exp(cumsum(log(x), dim={dim})) at any size (NeRF's transmittance, a cumprod of 1 - alpha = "
             f"exp(-sigma * delta), is exp(-cumsum(sigma * delta, dim={dim})))")
    return ax


def _infer(ins, a):
    x = ins[0]
    _axis(x, a["dim"])
    return [x if x.dtype.is_float else TensorType(DType.int64, x.shape)]  # torch multiplies integers in int64


def _shift(e, v: str, rank: int, ax: int, n: int, s: int, fill, dt, forward: bool) -> str:
    """v moved s places along ax, the gap filled with `fill`: forward (toward the end) drops the last s
    elements, backward drops the first s."""
    cut = [0, n - s] if forward else [s, n]
    part = e.op("Slice", [v, _i64(e, [cut[0]]), _i64(e, [cut[1]]), _i64(e, [ax])])
    pads = [0] * (2 * rank)
    pads[ax if forward else rank + ax] = s
    return e.op("Pad", [part, _i64(e, pads), e.const(np.array(fill, dtype=dt))], mode="constant")


def _steps(n: int):
    s = 1
    while s < n:
        yield s
        s *= 2


def _zero_after_a_zero(e, x: str, y: str, ax: int, dt) -> str:
    """y's NaNs from x's first 0 on, up to its first inf or NaN (0 * inf is NaN in torch's loop too), set to
    0: the scan multiplies the factors after a 0 into segments first, which overflow to inf before they meet
    it (0 then 200 twos in float16, 0 then 17 values of 3e38 in float32: NaN where torch gives 0). Elsewhere
    after a 0 the scan's own signed zero stays (torch's -0 of [-1, 0, 5])."""
    def seen(mask: str) -> str:  # true from the first true along ax on
        count = e.op("CumSum", [e.op("Cast", [mask], to=DType.int64.onnx), e.const(np.array(ax, np.int64))])
        return e.op("Greater", [count, e.const(np.array(0, np.int64))])
    zero = e.const(np.array(0, dt))
    past = seen(e.op("Or", [e.op("IsInf", [x]), e.op("IsNaN", [x])]))
    after = e.op("And", [seen(e.op("Equal", [x, zero])), e.op("Not", [past])])
    return e.op("Where", [e.op("And", [after, e.op("IsNaN", [y])]), zero, y])


def _lower(e, ins, outs, c):
    """The inclusive scan y_k = x_1 ... x_k: at each step y *= y shifted forward by s (ones in the gap);
    integers and bools in int64, 16-bit floats in float32 and float32 in float64, as torch's CPU kernel
    accumulates them. The scan meets the factors in another order than torch's loop: in float32, 199 twos after
    a 0 made segments of 2^128 = inf before they met the 0 (NaN where torch gives 0), and 1e-30 * 1e-30 * 1e30
    underflowed to 0 (torch: 1e-30)."""
    x, t = ins[0], c.in_types[0]
    wide = accumulated(t.dtype) if t.dtype.is_float else DType.int64
    if wide is not t.dtype:
        x = e.op("Cast", [x], to=wide.onnx)
    ax = _axis(t, c.attrs["dim"])
    n = t.shape[ax] if ax is not None else 1
    given = x
    for s in _steps(n):
        x = e.op("Mul", [x, _shift(e, x, t.rank, ax, n, s, 1, wide.numpy, True)])
    if t.dtype.is_float and n > 1:
        x = _zero_after_a_zero(e, given, x, ax, wide.numpy)
    if t.dtype.is_float and wide is not t.dtype:
        e.op("Cast", [x], outputs=outs, to=t.dtype.onnx)
    else:
        e.op("Identity", [x], outputs=outs)


def _grad(b, c, ins, outs, gouts):
    if gouts[0] is None or not c.in_types[0].dtype.is_float:
        return [None]
    if c.in_types[0].rank == 0:
        return [gouts[0]]
    return [b.op("autodiff.cumprod_grad", gouts[0], ins[0], outs[0], dim=c.attrs["dim"])]


register(OpDef(
    name="cumprod", inputs=("x",), category="math", attrs=(Attr("dim", "int"),),
    infer=_infer, lower=_lower, grad=_grad, cost=lambda c: numel(c.in_types[0].shape),
    doc="Running product along dim (torch.cumprod); integers and bools multiply in int64, as torch. ONNX has no "
        "CumProd: the scan is unrolled into ceil(log2 n) Slice/Pad/Mul steps (Hillis-Steele), so dim must be a "
        "known size (any size; 1024 takes 10 steps). Exact products, no logarithms: zeros and signs come out as "
        "torch's; float32 is multiplied in float64 and 16-bit floats in float32 (as torch's CPU kernel), and may "
        "differ from torch's left-to-right loop in the last bits. The gradient is exact with "
        "zeros in x (no division).",
))


# ---------------- the gradient, an internal op ----------------

def _grad_lower(e, ins, outs, c):
    """dx = E * S: E the exclusive product (y shifted forward, a 1 first); S the reverse scan of the affine
    maps s -> g_k + x_{k+1} s, as pairs (A, B) = (a product of x's, a partial sum), combined
    B_k += A_k B_{k+s}, A_k *= A_{k+s}, with B = 0 and x = 1 past the end. 16-bit in float32, float32 in
    float64, as the forward: A's segments after a 0 overflowed (x = [0, 3e30, 3e30, 3e30] gave NaN where
    torch's gradient is 0)."""
    g, x, y = ins
    t = c.in_types[0]
    wide = accumulated(t.dtype)
    if wide is not t.dtype:
        g, x, y = (e.op("Cast", [v], to=wide.onnx) for v in (g, x, y))
    ax = norm_axis(c.attrs["dim"], t.rank)
    n, r, dt = t.shape[ax], t.rank, wide.numpy
    if n <= 1:
        dx = g
    else:
        excl = _shift(e, y, r, ax, n, 1, 1, dt, True)
        a = _shift(e, x, r, ax, n, 1, 1, dt, False)
        acc = g
        steps = list(_steps(n))
        for i, s in enumerate(steps):
            acc = e.op("Add", [acc, e.op("Mul", [a, _shift(e, acc, r, ax, n, s, 0, dt, False)])])
            if i + 1 < len(steps):
                a = e.op("Mul", [a, _shift(e, a, r, ax, n, s, 1, dt, False)])
        dx = e.op("Mul", [excl, acc])
    if wide is not t.dtype:
        e.op("Cast", [dx], outputs=outs, to=t.dtype.onnx)
    else:
        e.op("Identity", [dx], outputs=outs)


register(OpDef(
    name="autodiff.cumprod_grad", inputs=("g", "x", "y"), category="internal", attrs=(Attr("dim", "int"),),
    infer=lambda ins, a: [ins[1]], lower=_grad_lower, cost=lambda c: 0,
    doc="cumprod's gradient: the exclusive product times the reverse scan of g (exact with zeros)",
))
