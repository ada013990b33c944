"""Statistics and vector norms, torch semantics: var/std (with correction), logsumexp, normalize,
cosine_similarity.

16-bit inputs are computed in float32 and the result cast back, as torch's kernels accumulate in float32
(a float16 sum of squares overflows at 256)."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import (
    accumulated,
    check_eps,
    float_input,
    narrow_into,
    narrowed,
    reduce_op,
    shape_str,
    wide_np,
    wide_outputs,
    widen,
    widened,
)
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register
from .shapes import broadcast, norm_axes, norm_axis

__all__: list[str] = []


def _reduced(x: TensorType, axes: list[int], keepdim: bool) -> tuple:
    if keepdim:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _count(e, x: str, t: TensorType, axes: list[int], np_dt) -> str:
    """The number of elements over `axes` as a scalar of np_dt: a constant where the dims are known, else
    read from the shape at run time."""
    sel = [t.shape[i] for i in axes]
    if all(isinstance(d, int) for d in sel):
        return e.const(np.array(float(np.prod(sel, dtype=np.int64)), dtype=np_dt))
    dims = e.op("Gather", [e.op("Shape", [x]), _i64(e, axes)], axis=0)
    n = e.op("ReduceProd", [dims], keepdims=0)
    return e.op("Cast", [n], to=DType.float64.onnx if np.dtype(np_dt) == np.float64 else DType.float32.onnx)


# ---------------- var, std ----------------

def _var_infer(name: str):
    def infer(ins, a):
        x = ins[0]
        if not x.dtype.is_float:
            fail(f"{name}: needs a float tensor, got {x.dtype} (as torch.{name}); cast(x, \"float32\") first")
        axes = norm_axes(a["dim"], x.rank)
        sel = [x.shape[i] for i in axes]
        if all(isinstance(d, int) for d in sel):
            n = int(np.prod(sel, dtype=np.int64))
            if n == 0:  # whatever the correction, as mean's
                empty = next(i for i in axes if x.shape[i] == 0)
                fail(f"{name}: dim {empty} of {shape_str(x)} is empty: the {name} of no elements is NaN (torch's, "
                     "with a warning); reduce over a dim that holds some")
            if n - a["correction"] <= 0:
                fail(f"{name}: correction={a['correction']:g} leaves no degrees of freedom over {n} element"
                     f"{'s' if n != 1 else ''} of {shape_str(x)} (torch returns inf or nan); use a smaller "
                     f"correction (0 for the population {name})", "correction")
        return [x.with_shape(_reduced(x, axes, a["keepdim"]))]
    return infer


def _var_lower(name: str):
    def lower(e, ins, outs, c):
        """In float64 for float32 (float32 for 16-bit), as torch's CPU kernel accumulates: onnxruntime's
        float32 ReduceMean sums in float32, and a mean of 1e4 with spread 1e-3 gave a variance 2e-3 off (torch
        2e-8); squares past 3.4e38 made std(1e19 values) inf."""
        t, a = c.in_types[0], c.attrs
        axes = norm_axes(a["dim"], t.rank)
        wide = accumulated(t.dtype)
        np_dt = wide.numpy
        x = ins[0] if wide is t.dtype else e.op("Cast", [ins[0]], to=wide.onnx)
        if not axes:  # a 0-d tensor: one element (torch: nan for correction 1, refused above)
            x, axes, keep = e.op("Unsqueeze", [x, _i64(e, [0])]), [0], False
            t = TensorType(t.dtype, (1,))
        else:
            keep = bool(a["keepdim"])
        d = e.op("Sub", [x, reduce_op(e, "ReduceMean", x, axes, 1)])
        ss = reduce_op(e, "ReduceSum", e.op("Mul", [d, d]), axes, int(keep))
        # torch divides by max(0, N - correction): inf or nan where that is 0 (sizes known only at run time)
        div = e.op("Max", [e.op("Sub", [_count(e, x, t, axes, np_dt), e.const(np.array(a["correction"], np_dt))]),
                           e.const(np.array(0.0, np_dt))])
        last = outs if wide is c.in_types[0].dtype else None
        y = e.op("Div", [ss, div], outputs=None if name == "std" else last)
        if name == "std":
            y = e.op("Sqrt", [y], outputs=last)
        if last is None:
            e.op("Cast", [y], outputs=outs, to=c.in_types[0].dtype.onnx)
    return lower


def _var_grad(name: str):
    def grad(b, c, ins, outs, gouts):
        """Through sum((x - mean)^2) / max(N - correction, 0); std's sqrt first passes g / (2 std), 0 where the
        std is 0 (torch's std backward: a constant row gets no gradient, not 0 * inf = NaN)."""
        t, a = c.in_types[0], c.attrs
        axes = tuple(norm_axes(a["dim"], t.rank))

        def forward(r, x):
            h, dims, keep = widened(r, x, t.dtype), axes, a["keepdim"]
            if not dims:  # a 0-d tensor: one element
                h, dims, keep = r.op("unsqueeze", h, dim=0), (0,), False
            d = r.op("sub", h, r.op("mean", h, dim=dims, keepdim=True))
            ss = r.op("sum", r.op("mul", d, d), dim=dims, keepdim=keep)
            div = r.op("maximum", r.op("sub", r.count(h, dims), r.const(a["correction"], like=h)),
                       r.const(0.0, like=h))
            return narrowed(r, r.op("div", ss, div), t.dtype)
        g = gouts[0]
        if name == "std":
            y = outs[0]
            half = b.op("div", g, b.op("mul", y, b.scalar(2.0, y)))
            g = b.op("where", b.op("eq", y, b.scalar(0.0, y)), b.scalar(0.0, y), half)
        return b.vjp(forward, list(ins), [g])
    return grad


for _name, _what, _formula in (("var", "variance", "sum((x - mean)^2) / (N - correction)"),
                               ("std", "standard deviation", "sqrt(sum((x - mean)^2) / (N - correction))")):
    register(OpDef(
        name=_name, inputs=("x",), category="math",
        attrs=(Attr("dim", "ints?", None), Attr("correction", "float", 1), Attr("keepdim", "bool", False)),
        infer=_var_infer(_name), lower=_var_lower(_name), grad=_var_grad(_name),
        cost=lambda c: 4 * numel(c.in_types[0].shape),
        doc=f"The {_what} over dims (all when none), {_formula} (torch.{_name}; "
            f"correction=1 is Bessel's, 0 the population {_what}). A correction that leaves no degrees of freedom "
            f"is refused where N is known; at run time (symbolic dims) the divisor is max(0, N - correction), as "
            f"torch's, giving inf or nan. float32 is computed in float64 and 16-bit floats in float32, as torch's "
            f"CPU kernel accumulates them.",
    ))


# ---------------- logsumexp ----------------

def _lse_infer(ins, a):
    x = ins[0]
    axes = norm_axes(a["dim"], x.rank)
    shape = _reduced(x, axes, a["keepdim"])
    # torch computes integer and bool tensors in the default float dtype
    return [x.with_shape(shape) if x.dtype.is_float else TensorType(DType.float32, shape)]


def _lse_lower(e, ins, outs, c):
    t, a = c.in_types[0], c.attrs
    axes = norm_axes(a["dim"], t.rank)
    x = ins[0] if t.dtype.is_float else e.op("Cast", [ins[0]], to=DType.float32.onnx)
    x = widen(e, x, t)
    np_dt = wide_np(t) if t.dtype.is_float else np.float32
    # max over the dims, 0 where it is infinite (a row of -inf gives -inf, one with +inf gives +inf, not nan)
    m = reduce_op(e, "ReduceMax", x, axes, 1)
    m = e.op("Where", [e.op("IsInf", [m]), e.const(np.array(0.0, np_dt)), m])
    s = reduce_op(e, "ReduceSum", e.op("Exp", [e.op("Sub", [x, m])]), axes, int(a["keepdim"]))
    if not a["keepdim"]:
        m = e.op("Squeeze", [m, _i64(e, axes)])
    y = e.op("Add", [e.op("Log", [s]), m], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _lse_grad(b, c, ins, outs, gouts):
    """g exp(x - y): the softmax over the dims (nan on a row of -inf, as torch's)."""
    t, a = c.in_types[0], c.attrs
    if not t.dtype.is_float:
        return [None]
    axes = norm_axes(a["dim"], t.rank)
    g, y = gouts[0], outs[0]
    if not a["keepdim"]:
        for ax in axes:
            g, y = b.op("unsqueeze", g, dim=ax), b.op("unsqueeze", y, dim=ax)
    return [b.op("mul", b.broadcast_to(g, ins[0]), b.op("exp", b.op("sub", ins[0], y)))]


register(OpDef(
    name="logsumexp", inputs=("x",), category="math", attrs=(Attr("dim", "ints"), Attr("keepdim", "bool", False)),
    infer=_lse_infer, lower=_lse_lower, grad=_lse_grad, cost=lambda c: 4 * numel(c.in_types[0].shape),
    doc="log(sum(exp(x))) over dims (torch.logsumexp), computed as max + log(sum(exp(x - max))) so large "
        "values do not overflow; a row of -inf gives -inf. Integer and bool tensors give float32, as torch.",
))


# ---------------- normalize ----------------

def _normalize_infer(ins, a):
    x = ins[0]
    float_input("normalize", x)
    if not a["p"] > 0:
        fail(f"normalize: p must be > 0, got {a['p']:g}", "p")
    check_eps("normalize", a["eps"])
    if x.rank == 0:
        fail("normalize: needs a tensor of at least 1 dim, got a 0-d tensor")
    norm_axis(a["dim"], x.rank, "normalize: dim")
    return [x]


def _normalize_lower(e, ins, outs, c):
    t, a = c.in_types[0], c.attrs
    ax, p = norm_axis(a["dim"], t.rank), a["p"]
    np_dt = wide_np(t)
    h = widen(e, ins[0], t)
    if p in (1.0, 2.0):
        n = reduce_op(e, "ReduceL2" if p == 2.0 else "ReduceL1", h, [ax], 1)
    else:
        powed = e.op("Pow", [e.op("Abs", [h]), e.const(np.array(p, np_dt))])
        n = e.op("Pow", [reduce_op(e, "ReduceSum", powed, [ax], 1), e.const(np.array(1.0 / p, np_dt))])
    y = e.op("Div", [h, e.op("Max", [n, e.const(np.array(a["eps"], np_dt))])], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _normalize_grad(b, c, ins, outs, gouts):
    """y = x / d, d = max(n, eps), n = ||x||_p: g/d - [n >= eps] x_p sum(g x) / d^2 with x_p = dn/dx =
    sign(x) |x|^(p-1) / n^(p-1) (0 where n is 0, as torch's norm gradient)."""
    t, a = c.in_types[0], c.attrs
    ax, p, eps = norm_axis(a["dim"], t.rank), a["p"], a["eps"]
    h, g = widened(b, ins[0], t.dtype), widened(b, gouts[0], t.dtype)
    k = lambda v: b.const(v, like=h)
    ab = b.op("abs", h)
    if p == 2.0:
        n = b.op("sqrt", b.op("sum", b.op("mul", h, h), dim=(ax,), keepdim=True))
    else:
        n = b.op("pow", b.op("sum", b.op("pow", ab, k(p)), dim=(ax,), keepdim=True), k(1.0 / p))
    d = b.op("maximum", n, k(eps))
    safe_n = b.op("where", b.op("gt", n, k(0.0)), n, k(1.0))
    if p == 2.0:
        dn = b.op("div", h, safe_n)
    elif p == 1.0:
        dn = b.op("sign", h)
    else:
        dn = b.op("mul", b.op("sign", h), b.op("pow", b.op("div", ab, safe_n), k(p - 1.0)))
        if p < 1.0:  # |h|^(p-1) is inf at an exact 0 in the row, times sign 0: NaN (torch: 0; gradnan hunt)
            dn = b.op("where", b.op("eq", h, k(0.0)), k(0.0), dn)
    dot = b.op("sum", b.op("mul", g, h), dim=(ax,), keepdim=True)
    through = b.op("div", b.op("mul", dn, dot), b.op("mul", d, d))
    through = b.op("where", b.op("ge", n, k(eps)), through, k(0.0))
    return [narrowed(b, b.op("sub", b.op("div", g, d), through), t.dtype)]


register(OpDef(
    name="normalize", inputs=("x",), category="math",
    attrs=(Attr("p", "float", 2.0), Attr("dim", "int", 1), Attr("eps", "float", 1e-12)),
    infer=_normalize_infer, lower=_normalize_lower, grad=_normalize_grad,
    cost=lambda c: 4 * numel(c.in_types[0].shape),
    doc="x / max(||x||_p, eps) along dim (torch.nn.functional.normalize): rows scaled to unit p-norm, a row "
        "smaller than eps divided by eps. p > 0 (ReduceL2 / ReduceL1 for p = 2 / 1).",
))


# ---------------- cosine_similarity ----------------

def _cos_infer(ins, a):
    x1, x2 = ins
    float_input("cosine_similarity", x1, "x1")
    float_input("cosine_similarity", x2, "x2")
    if x1.dtype != x2.dtype:
        fail(f"cosine_similarity: dtypes differ ({x1.dtype} vs {x2.dtype}); cast them to one")
    check_eps("cosine_similarity", a["eps"])
    shape = broadcast(x1.shape, x2.shape, "cosine_similarity inputs")
    if not shape:
        fail("cosine_similarity: needs tensors of at least 1 dim, got 0-d tensors")
    ax = norm_axis(a["dim"], len(shape), "cosine_similarity: dim")
    return [x1.with_shape(shape[:ax] + shape[ax + 1:])]


def _cos_lower(e, ins, outs, c):
    """torch 2.x: sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) over dim, each input first broadcast to
    the common shape (a size-1 dim stretched along `dim` counts in its norm once per copy)."""
    t1, t2 = c.in_types
    rank = max(t1.rank, t2.rank)
    ax = norm_axis(c.attrs["dim"], rank)
    np_dt = wide_np(t1)
    a, b = widen(e, ins[0], t1), widen(e, ins[1], t2)
    if tuple(t1.shape) != tuple(t2.shape):
        a, b = e.op("Expand", [a, e.op("Shape", [b])]), e.op("Expand", [b, e.op("Shape", [a])])
    eps = e.const(np.array(c.attrs["eps"], np_dt))
    na = e.op("Max", [reduce_op(e, "ReduceL2", a, [ax], 1), eps])
    nb = e.op("Max", [reduce_op(e, "ReduceL2", b, [ax], 1), eps])
    y = reduce_op(e, "ReduceSum", e.op("Mul", [e.op("Div", [a, na]), e.op("Div", [b, nb])]), [ax], 0,
                  outputs=wide_outputs(t1, outs))
    narrow_into(e, y, t1, outs)


def _cos_grad(b, c, ins, outs, gouts):
    """y = sum(a b) / (ca cb), ca = max(||a||, eps): dy/da = b / (ca cb) - y a / (ca ||a||) (0 where ||a|| is
    0). torch 2.x clamps the norms outside autograd, so the gradient flows through ||a|| even below eps."""
    t1, t2 = c.in_types
    rank = max(t1.rank, t2.rank)
    ax = norm_axis(c.attrs["dim"], rank)
    dt = t1.dtype
    g = b.op("unsqueeze", widened(b, gouts[0], dt), dim=ax)
    y = b.op("unsqueeze", widened(b, outs[0], dt), dim=ax)
    x1, x2 = widened(b, ins[0], dt), widened(b, ins[1], dt)
    if tuple(t1.shape) != tuple(t2.shape):  # each stretched to the common shape (x + 0 of the other's shape)
        x1, x2 = b.op("add", x1, b.zeros_like(x2)), b.op("add", x2, b.zeros_like(x1))
    k = lambda v: b.const(v, like=x1)

    def norms(v):
        n = b.op("sqrt", b.op("sum", b.op("mul", v, v), dim=(ax,), keepdim=True))
        return n, b.op("maximum", n, k(c.attrs["eps"]))
    (n1, c1), (n2, c2) = norms(x1), norms(x2)
    both = b.op("mul", c1, c2)

    def part(u, v, n, cn):
        unit = b.op("where", b.op("gt", n, k(0.0)), b.op("div", u, b.op("where", b.op("gt", n, k(0.0)), n, k(1.0))),
                    k(0.0))
        d = b.op("sub", b.op("div", v, both), b.op("div", b.op("mul", y, unit), cn))
        return b.op("mul", g, d)
    out = []
    for i, (u, v, n, cn) in enumerate(((x1, x2, n1, c1), (x2, x1, n2, c2))):
        out.append(narrowed(b, b.sum_to(part(u, v, n, cn), c.in_types[i].shape), dt) if b.needs(i) else None)
    return out


register(OpDef(
    name="cosine_similarity", inputs=("x1", "x2"), category="math",
    attrs=(Attr("dim", "int", 1), Attr("eps", "float", 1e-8)),
    infer=_cos_infer, lower=_cos_lower, grad=_cos_grad, cost=lambda c: 6 * numel(c.in_types[0].shape),
    doc="Cosine of the angle between x1 and x2 along dim, broadcast to one shape, dim dropped "
        "(torch.nn.functional.cosine_similarity): sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)), torch "
        "2.x's formula (each norm clamped on its own, not their product).",
))
