"""Arithmetic with numpy broadcasting, matmul, and pointwise math."""

from __future__ import annotations

import numpy as np

from ..types import DType, numel
from ._common import (
    bfloat16_from,
    cast_hint,
    elementwise_cost,
    float_input,
    narrow_into,
    shape_str,
    wide_np,
    wide_outputs,
    widen,
)
from .registry import OpDef, fail, register
from .shapes import broadcast

_BINARY = {"add": ("Add", "+"), "sub": ("Sub", "-"), "mul": ("Mul", "*"), "div": ("Div", "/"), "pow": ("Pow", "**")}


def _pow_grad(b, c, ins, outs, gouts):
    """d(a^e)/da = e a^(e-1), 0 where e == 0; d(a^e)/de = a^e log a, 0 where a == 0 and e >= 0 (torch's
    conventions: the plain formulas give 0 * inf = NaN there, as for relu(x) ** p at x = 0; at a negative e
    a^e is infinite and so is the gradient)."""
    g, (x, y), t = gouts[0], ins, c.in_types
    e = y if t[1].dtype == t[0].dtype else b.op("cast", y, dtype=t[0].dtype.label)
    ga = gb = None
    if b.needs(0):
        ga = b.op("mul", g, b.op("mul", e, b.op("pow", x, b.op("sub", e, b.const(1, like=e)))))
        if e.kind != "const" or not e.data.all():
            ga = b.op("where", b.op("eq", e, b.const(0, like=e)), b.const(0, like=ga), ga)
        ga = b.sum_to(ga, t[0].shape)
    if b.needs(1):
        gb = b.op("mul", g, b.op("mul", outs[0], b.op("log", x)))
        zero = b.op("eq", x, b.const(0, like=x))
        if e.kind != "const" or (e.data < 0).any():
            zero = b.op("logical_and", zero, b.op("ge", e, b.const(0, like=e)))
        gb = b.sum_to(b.op("where", zero, b.const(0, like=gb), gb), t[1].shape)
    return [ga, gb]


def _div_grad(b, c, ins, outs, gouts):
    ga = b.op("div", gouts[0], ins[1])
    gb = b.sum_to(b.op("neg", b.op("mul", ga, outs[0])), c.in_types[1].shape) if b.needs(1) else None
    return [b.sum_to(ga, c.in_types[0].shape) if b.needs(0) else None, gb]


_BINARY_GRAD = {
    "add": lambda b, c, ins, outs, gouts: [b.sum_to(gouts[0], c.in_types[0].shape),
                                           b.sum_to(gouts[0], c.in_types[1].shape)],
    "sub": lambda b, c, ins, outs, gouts: [b.sum_to(gouts[0], c.in_types[0].shape),
                                           b.sum_to(b.op("neg", gouts[0]), c.in_types[1].shape)
                                           if b.needs(1) else None],
    "mul": lambda b, c, ins, outs, gouts: [
        b.sum_to(b.op("mul", gouts[0], ins[1]), c.in_types[0].shape) if b.needs(0) else None,
        b.sum_to(b.op("mul", gouts[0], ins[0]), c.in_types[1].shape) if b.needs(1) else None],
    "div": _div_grad, "pow": _pow_grad,
}


def _no_bool(what: str, *types) -> None:
    """ONNX has no arithmetic on bool tensors: a model using it would fail the checker."""
    if any(t.dtype is DType.bool for t in types):
        fail(f"{what}: no arithmetic on bool tensors; cast(x, \"float32\") first")


def _binary(name, onnx_op, sym):
    def infer(ins, a):
        x, y = ins
        _no_bool(f"'{sym}'", x, y)
        if name == "div" and not x.dtype.is_float:  # ONNX truncates where torch's `/` gives a float
            fail(f"'/': dividing {x.dtype} tensors would truncate (torch gives floats); cast(x, \"float32\") first")
        if name == "pow" and not x.dtype.is_float and y.dtype.is_float:  # ONNX keeps the base's dtype
            fail(f"'**': the {x.dtype} base with a {y.dtype} exponent would truncate (torch gives floats); "
                 f"cast(x, \"{y.dtype}\") first")
        if x.dtype != y.dtype and not (name == "pow" and x.dtype.is_float and not y.dtype.is_float):
            fail(f"'{sym}': dtypes differ ({x.dtype} vs {y.dtype})" + cast_hint(x, y))
        return [x.with_shape(broadcast(x.shape, y.shape, f"'{sym}' operands"))]

    register(OpDef(
        name=name, inputs=("a", "b"), category="math", infer=infer, elementwise=True,
        lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs),
        cost=elementwise_cost, doc=f"a {sym} b with broadcasting", grad=_BINARY_GRAD[name],
    ))


for _n, (_op, _s) in _BINARY.items():
    _binary(_n, _op, _s)



def _same_dtypes_broadcast(label: str):
    """The shape rule of a binary op on two tensors of one (non-bool) dtype, broadcast."""
    def infer(ins, a):
        x, y = ins
        _no_bool(label, x, y)
        if x.dtype != y.dtype:
            fail(f"{label}: dtypes differ ({x.dtype} vs {y.dtype})" + cast_hint(x, y))
        return [x.with_shape(broadcast(x.shape, y.shape, f"{label} operands"))]
    return infer


def _off_sign(e, r, b, f):
    """Where a truncated remainder r is nonzero with another sign than the divisor b (numpy dtype f): there
    torch's floor rounding (and Python's) differs from truncation by one step."""
    zero = e.const(np.zeros((), f))
    return e.op("And", [e.op("Not", [e.op("Equal", [r, zero])]),
                        e.op("Xor", [e.op("Less", [r, zero]), e.op("Less", [b, zero])])])


def _float_remainder(e, a, b, f, outs=None):
    """torch's own: fmod (exact), plus b where its sign is off. a - floor(a / b) * b gave -2 for 3e7 % 0.3 and
    0 for 1e10 % 3.0."""
    r = e.op("Mod", [a, b], fmod=1)
    return e.op("Where", [_off_sign(e, r, b, f), e.op("Add", [r, b]), r], outputs=outs)


def _float_floordiv(e, a, b, f, outs=None):
    """torch's rule: (a - fmod(a, b)) / b, one less where fmod's sign is off, rounded to the nearest whole
    number; 0 takes the sign of a / b, and b = 0 gives a / b. Floor(a / b) gave 10 for 1.0 // 0.1 (torch: 9)."""
    r = e.op("Mod", [a, b], fmod=1)
    one, zero = e.const(np.ones((), f)), e.const(np.zeros((), f))
    div = e.op("Div", [e.op("Sub", [a, r]), b])
    div = e.op("Where", [_off_sign(e, r, b, f), e.op("Sub", [div, one]), div])
    low = e.op("Floor", [div])
    up = e.op("Greater", [e.op("Sub", [div, low]), e.const(np.array(0.5, f))])
    rounded = e.op("Where", [up, e.op("Add", [low, one]), low])
    quotient = e.op("Div", [a, b])
    signed_zero = e.op("Mul", [quotient, zero])  # |a| < |b| here: a / b is finite
    # the -0 in the second branch: onnxruntime's Where gives +0 for a -0 it picks from the first (and it swaps
    # Where(Not(c), x, y)'s branches: |div| > 0 rather than Not(div == 0))
    out = e.op("Where", [e.op("Greater", [e.op("Abs", [div]), zero]), rounded, signed_zero])
    return e.op("Where", [e.op("Equal", [b, zero]), quotient, out], outputs=outs)


def _floordiv_lower(e, ins, outs, c):
    """Python's // (torch.div(rounding_mode="floor")). Integers: ONNX's Div truncates toward zero, one less
    where the remainder's sign is off (a - (a % b) first overflowed: INT64_MAX // -2). Floats: torch's rule
    (_float_floordiv); 16-bit ones computed in float32."""
    a, b = ins
    t = c.in_types[0]
    if t.dtype.is_float:
        y = _float_floordiv(e, widen(e, a, t), widen(e, b, t), wide_np(t), wide_outputs(t, outs))
        narrow_into(e, y, t, outs)
        return
    f = t.dtype.numpy
    minus_one = e.op("Equal", [b, e.const(np.array(-1, f))])  # INT_MIN / -1 traps (SIGFPE); -a wraps, as torch's
    safe = e.op("Where", [minus_one, e.const(np.array(1, f)), b])
    off = _off_sign(e, e.op("Mod", [a, safe], fmod=1), safe, f)
    q = e.op("Sub", [e.op("Div", [a, safe]), e.op("Cast", [off], to=t.dtype.onnx)])
    e.op("Where", [minus_one, e.op("Neg", [a]), q], outputs=outs)


def _remainder_lower(e, ins, outs, c):
    """torch.remainder / Python's %: the sign of the divisor. ONNX's Mod with fmod=0 does that for integers;
    floats take torch's rule (_float_remainder), 16-bit ones in float32."""
    a, b = ins
    t = c.in_types[0]
    if not t.dtype.is_float:
        e.op("Mod", [a, b], fmod=0, outputs=outs)
        return
    y = _float_remainder(e, widen(e, a, t), widen(e, b, t), wide_np(t), wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


register(OpDef(
    name="floordiv", inputs=("a", "b"), category="math", infer=_same_dtypes_broadcast("'//'"), elementwise=True,
    lower=_floordiv_lower, cost=elementwise_cost,
    doc="a // b with broadcasting, rounded toward -inf as Python (torch.div(a, b, rounding_mode=\"floor\")); "
        "no gradient: a train step through it is refused, as through torch's // (floor(a / b) trains, with the "
        "zero gradient of torch.div(a, b, rounding_mode=\"floor\"), and can be 1 more where a / b rounds up to "
        "a whole number: 1 // 0.1 is 9). An integer b of 0 is a build error where it is known when building and "
        "fails at run time otherwise, also over no elements (p // B at B = 0, which torch gives as empty).",
))


def _quotient_grad(rounding: str):
    """torch's for a - b * round(a / b) (fmod: trunc; %: floor): g for a, -g * round(a / b) for b, the floor
    quotient the forward used (floordiv: 1 // 0.1 is 9), not floor(1 / 0.1) = 10, a gradient of another
    function (gradnan hunt)."""
    def grad(b, c, ins, outs, gouts):
        g = gouts[0]
        q = b.op("floordiv", ins[0], ins[1]) if rounding == "floor" else b.op(rounding, b.op("div", ins[0], ins[1]))
        gb = b.op("neg", b.op("mul", g, q)) if b.needs(1) else None
        return [b.sum_to(g, c.in_types[0].shape) if b.needs(0) else None,
                b.sum_to(gb, c.in_types[1].shape) if gb is not None else None]
    return grad


register(OpDef(
    name="fmod", inputs=("a", "b"), category="math", infer=_same_dtypes_broadcast("fmod"), elementwise=True,
    lower=lambda e, ins, outs, c: e.op("Mod", ins, outputs=outs, fmod=1), cost=elementwise_cost,
    grad=_quotient_grad("trunc"),
    doc="The remainder of a / b truncated toward zero, the sign of a, with broadcasting (torch.fmod, C's fmod, "
        "ONNX Mod with fmod=1); % is the remainder with the sign of b. A float b of 0 gives NaN; an integer b of "
        "0 is a build error where it is a constant or computed from constants alone, and fails at run time otherwise.",
))


register(OpDef(
    name="remainder", inputs=("a", "b"), category="math", infer=_same_dtypes_broadcast("'%'"), elementwise=True,
    lower=_remainder_lower, cost=elementwise_cost, grad=_quotient_grad("floor"),
    doc="a % b with broadcasting, the sign of b as Python (torch.remainder); torch's gradient (1 for a, "
        "-floor(a / b) for b). An integer b of 0 is a build error where it is known when building and fails at "
        "run time otherwise, also over no elements (p % B at B = 0, which torch gives as empty).",
))

def _matmul_infer(ins, a):
    x, y = ins
    _no_bool("'@'", x, y)
    if x.dtype != y.dtype:
        fail(f"'@': dtypes differ ({x.dtype} vs {y.dtype})" + cast_hint(x, y))
    if x.rank < 1 or y.rank < 1:
        fail("'@': operands must have at least one dim")
    xs, ys = x.shape, y.shape
    k1 = xs[-1]
    k2 = ys[-2] if y.rank >= 2 else ys[0]
    if k1 != k2:
        fail(f"'@': inner dims differ ({k1} vs {k2}) for {shape_str(x)} @ {shape_str(y)}")
    if x.rank >= 2 and y.rank >= 2:
        out = broadcast(xs[:-2], ys[:-2], "'@' batch dims") + (xs[-2], ys[-1])
    elif y.rank >= 2:
        out = ys[:-2] + (ys[-1],)
    else:
        out = xs[:-1]
    return [x.with_shape(out)]


def _matmul_lower(e, ins, outs, c):
    """A matrix times a vector goes through the vector as a column ([K, 1]): onnxruntime 1.32's
    MatmulTransposeFusion folds a Transpose of the matrix into a FusedMatMul that reads a 1-d right operand
    wrongly (a.T @ b gave a.reshape(6, 4) @ b: review103 hunt)."""
    if c.in_types[1].rank == 1 and c.in_types[0].rank >= 2:
        last = e.const(np.array([-1], np.int64))
        column = e.op("Unsqueeze", [ins[1], last])
        return e.op("Squeeze", [e.op("MatMul", [ins[0], column]), last], outputs=outs)
    return e.op("MatMul", ins, outputs=outs)


def _matmul_cost(c):
    x = c.in_types[0]
    k = x.shape[-1] if isinstance(x.shape[-1], int) else 1
    return 2 * numel(c.out_types[0].shape) * k


def _matmul_grad(b, c, ins, outs, gouts):
    """ga = g b^T, gb = a^T g (summed over broadcast batch dims); a 1-D operand is a row / column."""
    g, (x, y), (xt, yt) = gouts[0], ins, c.in_types
    if xt.rank == 1 and yt.rank == 1:
        return [b.op("mul", g, y) if b.needs(0) else None, b.op("mul", g, x) if b.needs(1) else None]
    x2 = b.op("unsqueeze", x, dim=0) if xt.rank == 1 else x
    y2 = b.op("unsqueeze", y, dim=1) if yt.rank == 1 else y
    g2 = b.op("unsqueeze", g, dim=-2) if xt.rank == 1 else b.op("unsqueeze", g, dim=-1) if yt.rank == 1 else g
    res = [None, None]
    if b.needs(0):
        ga = b.sum_to(b.op("matmul", g2, b.op("transpose", y2)), x2.type.shape)
        res[0] = b.op("squeeze", ga, dim=(0,)) if xt.rank == 1 else ga
    if b.needs(1):
        gb = b.sum_to(b.op("matmul", b.op("transpose", x2), g2), y2.type.shape)
        res[1] = b.op("squeeze", gb, dim=(-1,)) if yt.rank == 1 else gb
    return res


register(OpDef(
    name="matmul", inputs=("a", "b"), category="math", infer=_matmul_infer, grad=_matmul_grad,
    lower=_matmul_lower, cost=_matmul_cost,
    doc="Matrix product with batch broadcasting (a @ b)",
))

_UNARY = {"neg": ("Neg", "-x"), "exp": ("Exp", "e^x"), "log": ("Log", "natural log"), "sqrt": ("Sqrt", "square root"),
          "abs": ("Abs", "|x|"), "erf": ("Erf", "error function"), "reciprocal": ("Reciprocal", "1 / x"),
          "sin": ("Sin", "sine (radians)"), "cos": ("Cos", "cosine (radians)")}


_UNARY_GRAD = {
    "neg": lambda b, x, y, g: b.op("neg", g),
    "exp": lambda b, x, y, g: b.op("mul", g, y),
    "log": lambda b, x, y, g: b.op("div", g, x),
    "sqrt": lambda b, x, y, g: b.op("div", g, b.op("mul", y, b.const(2.0, like=y))),
    "abs": lambda b, x, y, g: b.op("mul", g, b.op("sign", x)),  # sign(NaN) 0, as torch's sgn (gradnan hunt)
    "erf": lambda b, x, y, g: b.op("mul", g, b.op("mul", b.op("exp", b.op("neg", b.op("mul", x, x))),
                                                  b.const(1.1283791670955126, like=x))),
    "reciprocal": lambda b, x, y, g: b.op("neg", b.op("mul", g, b.op("mul", y, y))),
    "sin": lambda b, x, y, g: b.op("mul", g, b.op("cos", x)),
    "cos": lambda b, x, y, g: b.op("neg", b.op("mul", g, b.op("sin", x))),
}


def _unary(name, onnx_op, doc):
    def infer(ins, a):
        if name != "neg" and name != "abs":
            float_input(name, ins[0])
        _no_bool(name, ins[0])
        return [ins[0]]

    def lower(e, ins, outs, c):
        if onnx_op in ("Sin", "Cos"):  # the others take bfloat16 from opset 13
            bfloat16_from(e, c.in_types[0], name, f"ONNX {onnx_op} takes")
        e.op(onnx_op, ins, outputs=outs)

    register(OpDef(name=name, inputs=("x",), category="math", infer=infer, elementwise=True,
                   lower=lower, cost=elementwise_cost, doc=doc,
                   grad=lambda b, c, ins, outs, gouts: [_UNARY_GRAD[name](b, ins[0], outs[0], gouts[0])]))


for _n, (_op, _d) in _UNARY.items():
    _unary(_n, _op, _d)


def _pick_grad(cmp):
    """torch.minimum/maximum: g to the operand that wins, g/2 to each on a tie, summed over broadcast dims; the
    loser's share is 0 whatever g is (a where, as torch's masked_fill): a 0/1 mask times g made an infinite or
    NaN g NaN there (sqrt(maximum(x, 0)) at x < 0; crf hunt). Where either is NaN neither loses: each gets g,
    as torch's (the second alone got it: review82, gradnan hunts)."""
    def grad(b, c, ins, outs, gouts):
        x, y, g = ins[0], ins[1], gouts[0]
        zero = b.const(0.0, like=g)
        ties, half = b.op("eq", x, y), b.op("mul", g, b.const(0.5, like=g))
        ga = b.op("where", b.op(cmp, y, x), zero, b.op("where", ties, half, g))  # all of g to each where either
        gb = b.op("where", b.op(cmp, x, y), zero, b.op("where", ties, half, g))  # is NaN, as torch's
        return [b.sum_to(ga, c.in_types[0].shape) if b.needs(0) else None,
                b.sum_to(gb, c.in_types[1].shape) if b.needs(1) else None]
    return grad


def _pick(name, onnx_op, cmp, doc):
    register(OpDef(name=name, inputs=("a", "b"), category="math", infer=_same_dtypes_broadcast(name), elementwise=True,
                   lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs), cost=elementwise_cost,
                   grad=_pick_grad(cmp), doc=doc))


_pick("minimum", "Min", "lt", "Elementwise min(a, b) with broadcasting (torch.minimum); a tie gives each side "
      "half the gradient. The smallest element of one tensor is amin.")
_pick("maximum", "Max", "gt", "Elementwise max(a, b) with broadcasting (torch.maximum); a tie gives each side "
      "half the gradient. The largest element of one tensor is amax.")
