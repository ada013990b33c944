"""Pointwise activations and softmax."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType
from ._common import bfloat16_from, elementwise_cost, fill_array, float_input, log_softmax_of, sigmoid, wide_np, widen
from .logexp import expm1_of
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis


def float_same(name):
    def infer(ins, a):
        float_input(name, ins[0])
        return [ins[0]]
    return infer


def _one_minus(b, v):
    return b.op("sub", b.const(1.0, like=v), v)


_GRAD = {  # (b, x, y, g) -> gx
    "relu": lambda b, x, y, g: b.op("autodiff.relu_grad", g, y),
    "sigmoid": lambda b, x, y, g: b.op("mul", g, b.op("mul", y, _one_minus(b, y))),
    # 1 - y * y at least 0: onnxruntime's float32 Tanh gives up to 1.0000002 for |x| of 8.2-9.0, where the
    # gradient changed sign (SAC's log(1 - tanh(u) ** 2 + 1e-6) trained the other way: rl hunt). Not clipped in
    # the model itself: a Clip after Tanh took the map out of onnxruntime's blocked conv layout
    "tanh": lambda b, x, y, g: b.op("mul", g, b.op("relu", _one_minus(b, b.op("mul", y, y)))),
}


def _pointwise_grad(fn):
    return lambda b, c, ins, outs, gouts: [fn(b, ins[0], outs[0], gouts[0])]


def _simple(name, onnx_op, doc, flops=1, **fixed):
    register(OpDef(
        name=name, inputs=("x",), category="activation", infer=float_same(name), elementwise=True,
        lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs, **fixed),
        cost=lambda c: flops * elementwise_cost(c), doc=doc, grad=_pointwise_grad(_GRAD[name]),
    ))


_simple("relu", "Relu", "max(x, 0)")
register(OpDef(
    name="sigmoid", inputs=("x",), category="activation", infer=float_same("sigmoid"), elementwise=True,
    lower=lambda e, ins, outs, c: sigmoid(e, ins[0], c.in_types[0].dtype, outs),
    cost=lambda c: 4 * elementwise_cost(c), doc="1 / (1 + exp(-x))", grad=_pointwise_grad(_GRAD["sigmoid"]),
))
_simple("tanh", "Tanh", "hyperbolic tangent", flops=4)


def scalar(e, c, v):
    return e.const(np.array(v, dtype=c.in_types[0].dtype.numpy))


register(OpDef(
    name="leaky_relu", inputs=("x",), category="activation", elementwise=True,
    attrs=(Attr("negative_slope", "float", 0.01),),
    infer=float_same("leaky_relu"),
    lower=lambda e, ins, outs, c: _leaky_lower(e, ins, outs, c), cost=elementwise_cost,
    doc="x if x > 0 else negative_slope * x",
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.leaky_relu_grad", gouts[0], ins[0],
                                              slope=c.attrs["negative_slope"])],
))


def _leaky_lower(e, ins, outs, c):
    """ONNX LeakyRelu; float64 written out, the slope a float64 constant: the float attribute rounded 0.01 to
    float32 (2.2e-8 relative off torch: numerics3 hunt), and onnxruntime has its float64 kernel at opset 18 alone."""
    x = ins[0]
    if c.in_types[0].dtype is not DType.float64:
        e.op("LeakyRelu", ins, outputs=outs, alpha=c.attrs["negative_slope"])
        return
    slope = scalar(e, c, c.attrs["negative_slope"])
    e.op("Where", [e.op("Greater", [x, scalar(e, c, 0.0)]), x, e.op("Mul", [x, slope])], outputs=outs)


def _silu_lower(e, ins, outs, c):
    s = sigmoid(e, ins[0], c.in_types[0].dtype)
    e.op("Mul", [ins[0], s], outputs=outs)


def _silu_grad(b, x, y, g):
    """d(x s(x)) = s (1 + x (1 - s))."""
    s = b.op("sigmoid", x)
    return b.op("mul", g, b.op("mul", s, b.op("add", b.const(1.0, like=x), b.op("mul", x, _one_minus(b, s)))))


register(OpDef(
    name="silu", inputs=("x",), category="activation", aliases=("swish",), infer=float_same("silu"), elementwise=True,
    lower=_silu_lower, grad=_pointwise_grad(_silu_grad), cost=lambda c: 5 * elementwise_cost(c), doc="x * sigmoid(x)",
))


def _gelu_lower(e, ins, outs, c):
    approx = c.attrs["approximate"]
    if e.opset >= 20 and c.in_types[0].dtype is not DType.float64:  # onnxruntime's float64 Gelu (tanh form)
        e.op("Gelu", ins, outputs=outs, approximate=approx)             # is float32-exact (5.6e-9 off torch);
        return                                                          # the ops below keep float64's 2e-16
    x = ins[0]
    if approx == "tanh":
        x3 = e.op("Mul", [e.op("Mul", [x, x]), x])
        inner = e.op("Mul", [e.op("Add", [x, e.op("Mul", [x3, scalar(e, c, 0.044715)])]),
                             scalar(e, c, math.sqrt(2.0 / math.pi))])
        t = e.op("Add", [e.op("Tanh", [inner]), scalar(e, c, 1.0)])
    else:
        t = e.op("Add", [e.op("Erf", [e.op("Div", [x, scalar(e, c, math.sqrt(2.0))])]), scalar(e, c, 1.0)])
    # halve x first: x * (1 + t) overflows for x above half the dtype's largest value (onnxruntime fuses the
    # erf form into its Gelu kernel in either order)
    e.op("Mul", [e.op("Mul", [x, scalar(e, c, 0.5)]), t], outputs=outs)


def _gelu_grad(b, c, ins, outs, gouts):
    """exact: Phi(x) + x phi(x); tanh form: 0.5 (1 + t) + 0.5 x (1 - t^2) u'(x), u = k (x + 0.044715 x^3)."""
    x, g = ins[0], gouts[0]
    k = lambda v: b.const(v, like=x)
    mul, add = (lambda p, q: b.op("mul", p, q)), (lambda p, q: b.op("add", p, q))
    x2 = mul(x, x)
    if c.attrs["approximate"] == "tanh":
        s2pi = math.sqrt(2.0 / math.pi)
        t = b.op("tanh", mul(add(x, mul(mul(x2, x), k(0.044715))), k(s2pi)))
        du = mul(add(k(1.0), mul(x2, k(3 * 0.044715))), k(s2pi))
        d = add(mul(add(k(1.0), t), k(0.5)), mul(mul(mul(x, _one_minus(b, mul(t, t))), du), k(0.5)))
    else:
        cdf = mul(add(k(1.0), b.op("erf", mul(x, k(1.0 / math.sqrt(2.0))))), k(0.5))
        pdf = mul(b.op("exp", mul(x2, k(-0.5))), k(1.0 / math.sqrt(2.0 * math.pi)))
        d = add(cdf, mul(x, pdf))
    return [mul(g, d)]


register(OpDef(
    name="gelu", inputs=("x",), category="activation", grad=_gelu_grad, elementwise=True,
    attrs=(Attr("approximate", "str", "none", choices=("none", "tanh")),),
    infer=float_same("gelu"), lower=_gelu_lower, cost=lambda c: 8 * elementwise_cost(c),
    doc='Gaussian error linear unit; approximate="tanh" for the GPT-2 form. ONNX Gelu at opset 20+ (float64: its '
        'decomposition, at float64 precision).',
))


# ---- clamps and the hard activations of MobileNetV2/V3 ----
def _clip(e, x: str, c, low, high, outputs):
    """ONNX Clip with its bounds as inputs of x's dtype. An absent bound of a float is -inf or inf: left out,
    onnxruntime clips to the dtype's largest finite value, so clamp(x, min=0.0) turned inf into 3.4e38."""
    t = c.in_types[0].dtype
    if t.is_float:
        low, high = (-math.inf if low is None else low), (math.inf if high is None else high)
    bounds = ["" if v is None else e.const(np.array(v, dtype=t.numpy)) for v in (low, high)]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return e.op("Clip", [x] + bounds, outputs=outputs)


def _window(low, high, closed, scale=1.0):
    """Gradient g * scale where x lies between the bounds (autodiff.window_grad), 0 elsewhere."""
    return lambda b, c, ins, outs, gouts: [b.op("autodiff.window_grad", gouts[0], ins[0], low=low(c.attrs),
                                                high=high(c.attrs), closed=closed, scale=scale)]


def _bounds(name, names, low, high, dtype):
    """Bounds become constants of the tensor's dtype (one that does not fit is a diagnostic); low <= high."""
    for what, v in zip(names, (low, high)):
        if v is not None:
            fill_array(f"{name}: {what}", v, dtype, named_infinity=False)
    if low is not None and high is not None and low > high:
        fail(f"{name}: {names[0]}={_num(low)} is greater than {names[1]}={_num(high)}")


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _clamp_infer(ins, a):
    x = ins[0]
    if x.dtype is DType.bool:
        fail("clamp: no ordering on bool tensors; cast(x, \"float32\") first")
    if a["min"] is None and a["max"] is None:
        fail("clamp: give min, max or both (clamp(x, min=0.0, max=6.0))")
    _bounds("clamp", ("min", "max"), a["min"], a["max"], x.dtype)
    return [x]


register(OpDef(
    name="clamp", inputs=("x",), category="activation", aliases=("clip",), elementwise=True,
    attrs=(Attr("min", "number?", None), Attr("max", "number?", None)), infer=_clamp_infer,
    lower=lambda e, ins, outs, c: _clip(e, ins[0], c, c.attrs["min"], c.attrs["max"], outs),
    cost=lambda c: 2 * elementwise_cost(c), grad=_window(lambda a: a["min"], lambda a: a["max"], closed=True),
    doc="x limited to [min, max], either bound optional (torch.clamp, ONNX Clip); the gradient passes where "
        "min <= x <= max, the bounds included. A bound known at run time only, a tensor (torch.clamp(x, min=t)) "
        "or a symbolic size (boxes clamped to an image's width), makes maximum(x, min) or minimum(x, max) for a "
        "tensor, whose gradient at x equal to that bound is shared between them (torch gives x all of it), and a "
        "where for a size, which takes no gradient (x gets all of it, as torch); a number bound beside it stays "
        "this op's, all of its gradient to x. Number bounds with min > max are refused (torch gives max "
        "everywhere).",
))


def _hardtanh_infer(ins, a):
    float_input("hardtanh", ins[0])
    _bounds("hardtanh", ("min_val", "max_val"), a["min_val"], a["max_val"], ins[0].dtype)
    return [ins[0]]


register(OpDef(
    name="hardtanh", inputs=("x",), category="activation", elementwise=True,
    attrs=(Attr("min_val", "float", -1.0), Attr("max_val", "float", 1.0)), infer=_hardtanh_infer,
    lower=lambda e, ins, outs, c: _clip(e, ins[0], c, c.attrs["min_val"], c.attrs["max_val"], outs),
    cost=lambda c: 2 * elementwise_cost(c),
    grad=_window(lambda a: a["min_val"], lambda a: a["max_val"], closed=False),
    doc="x limited to [min_val, max_val] (torch.nn.Hardtanh, ONNX Clip); unlike clamp the gradient is 0 at "
        "the bounds.",
))
register(OpDef(
    name="relu6", inputs=("x",), category="activation", elementwise=True, infer=float_same("relu6"),
    lower=lambda e, ins, outs, c: _clip(e, ins[0], c, 0.0, 6.0, outs), cost=lambda c: 2 * elementwise_cost(c),
    grad=_window(lambda a: 0.0, lambda a: 6.0, closed=False),
    doc="min(max(x, 0), 6) = hardtanh(x, 0, 6) (MobileNetV2); gradient 0 at 0 and 6, as torch's.",
))


def _hard(name, onnx_op, lower_extra=None):
    """hardsigmoid and hardswish: ONNX ops of their own, bfloat16 there only from opset 22; float64 written out
    as torch computes it, clip(x + 3, 0, 6) / 6 (times x): ONNX's alpha attribute is a float32 (1/6 rounded,
    3e-8 off torch), and onnxruntime has no float64 kernel but at opset 18 (difffuzz2 hunt)."""
    def lower(e, ins, outs, c):
        t = c.in_types[0].dtype
        if t is DType.float64:
            three, six = (e.const(np.array(v, np.float64)) for v in (3.0, 6.0))
            clipped = e.op("Clip", [e.op("Add", [ins[0], three]), e.const(np.array(0.0, np.float64)), six])
            if name == "hardswish":
                clipped = e.op("Mul", [ins[0], clipped])
            e.op("Div", [clipped, six], outputs=outs)
            return
        bfloat16_from(e, c.in_types[0], name, f"ONNX {onnx_op} takes")
        e.op(onnx_op, ins, outputs=outs, **(lower_extra or {}))
    return lower


register(OpDef(
    name="hardsigmoid", inputs=("x",), category="activation", elementwise=True, infer=float_same("hardsigmoid"),
    # ONNX's default alpha is 0.2 (Keras's hard sigmoid); torch's is relu6(x + 3) / 6
    lower=_hard("hardsigmoid", "HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    cost=lambda c: 3 * elementwise_cost(c), grad=_window(lambda a: -3.0, lambda a: 3.0, False, scale=1.0 / 6.0),
    doc="relu6(x + 3) / 6 (torch.nn.Hardsigmoid, MobileNetV3); gradient 1/6 where -3 < x < 3.",
))
register(OpDef(
    name="hardswish", inputs=("x",), category="activation", elementwise=True, infer=float_same("hardswish"),
    lower=_hard("hardswish", "HardSwish"), cost=lambda c: 4 * elementwise_cost(c),
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.hardswish_grad", gouts[0], ins[0])],
    doc="x * relu6(x + 3) / 6 (torch.nn.Hardswish, MobileNetV3); gradient 0 at x <= -3, 1 at x >= 3.",
))


# ---- smooth activations ----
def _elu_lower(e, ins, outs, c):
    """ONNX Elu; float64 written out as torch's kernel computes it, alpha * expm1(x) below 0 (-0 among them, which
    stays -0), alpha a float64 constant (as leaky_relu: numerics3 hunt)."""
    bfloat16_from(e, c.in_types[0], "elu", "ONNX Elu takes")
    x = ins[0]
    if c.in_types[0].dtype is not DType.float64:
        e.op("Elu", ins, outputs=outs, alpha=c.attrs["alpha"])
        return
    e.op("Where", [e.op("Greater", [x, scalar(e, c, 0.0)]), x, neg_part(e, c, x, c.attrs["alpha"], 1.0)],
         outputs=outs)


def neg_part(e, c, x: str, alpha: float, inner: float) -> str:
    """alpha * (exp(inner * x) - 1), the negative side of elu/selu/celu where it is written out; float64 through
    expm1 (exp(x) - 1 was 8e-8 relative off torch at -1e-10, and +0 at -0: review84 hunt)."""
    z = x if inner == 1.0 else e.op("Mul", [x, scalar(e, c, inner)])
    m1 = expm1_of(e, z, np.float64) if c.in_types[0].dtype is DType.float64 else \
        e.op("Sub", [e.op("Exp", [z]), scalar(e, c, 1.0)])
    return e.op("Mul", [m1, scalar(e, c, alpha)])


def exp_side(b, x, g, pos: float, neg: float, inner: float):
    """g pos where x > 0, else g neg exp(inner x): the gradient of the elu family (elu, selu, celu; torch's
    takes the second side at x = 0). exp(inner x), not from y, which cancels to nothing for very negative x."""
    z = x if inner == 1.0 else b.op("mul", x, b.const(inner, like=x))
    slope = b.op("mul", b.op("exp", z), b.const(neg, like=x))
    return b.op("where", b.op("gt", x, b.const(0.0, like=x)), g if pos == 1.0 else b.op("mul", g, b.const(pos, like=x)),
                b.op("mul", g, slope))


def _elu_grad(b, c, ins, outs, gouts):
    return [exp_side(b, ins[0], gouts[0], 1.0, c.attrs["alpha"], 1.0)]


register(OpDef(
    name="elu", inputs=("x",), category="activation", elementwise=True, attrs=(Attr("alpha", "float", 1.0),),
    infer=float_same("elu"), lower=_elu_lower, grad=_elu_grad, cost=lambda c: 4 * elementwise_cost(c),
    doc="x if x > 0 else alpha * (exp(x) - 1) (torch.nn.ELU).",
))


def _past_threshold_is_x(threshold: float, dtype) -> bool:
    """Whether softplus(x) (and sigmoid(x)) round to x (and 1) above the threshold in the dtype, so torch's
    switch to x there changes nothing and needs no Where (float32 and the 16-bit types at the default 20)."""
    import ml_dtypes
    return threshold > 0 and math.exp(-min(threshold, 700.0)) < float(ml_dtypes.finfo(dtype.numpy).eps) / 4


def _softplus_parts(c):
    beta, thr = c.attrs["beta"], c.attrs["threshold"]
    return beta, thr, not (beta == 1.0 and _past_threshold_is_x(thr, c.in_types[0].dtype))


def _softplus_lower(e, ins, outs, c):
    """ONNX Softplus (x + log(1 + exp(-x)) for x > 0: no overflow) of beta x, over beta; x where beta x >
    threshold, as torch."""
    beta, thr, switch = _softplus_parts(c)
    bfloat16_from(e, c.in_types[0], "softplus", "ONNX Softplus takes")
    x = ins[0]
    if not switch:
        e.op("Softplus", [x], outputs=outs)
        return
    t = c.in_types[0]
    if t.dtype.is_16bit:  # in float32, as torch's kernel: beta rounded to float16 first was an ulp off
        x = widen(e, x, t)

    def k(v):
        return e.const(np.array(v, dtype=wide_np(t)))
    z = x if beta == 1.0 else e.op("Mul", [x, k(beta)])
    sp = e.op("Softplus", [z])
    sp = sp if beta == 1.0 else e.op("Div", [sp, k(beta)])
    y = e.op("Where", [e.op("Greater", [z, k(thr)]), x, sp], outputs=None if t.dtype.is_16bit else outs)
    if t.dtype.is_16bit:
        e.op("Cast", [y], to=t.dtype.onnx, outputs=outs)


def _softplus_grad(b, c, ins, outs, gouts):
    """g sigmoid(beta x), g where beta x > threshold."""
    beta, thr, switch = _softplus_parts(c)
    x, g = ins[0], gouts[0]
    z = x if beta == 1.0 else b.op("mul", x, b.const(beta, like=x))
    d = b.op("sigmoid", z)
    if switch:
        d = b.op("where", b.op("gt", z, b.const(thr, like=z)), b.const(1.0, like=z), d)
    return [b.op("mul", g, d)]


def _softplus_infer(ins, a):
    float_input("softplus", ins[0])
    if a["beta"] == 0:
        fail("softplus: beta must not be 0 (log(1 + exp(beta x)) / beta)")
    return [ins[0]]


register(OpDef(
    name="softplus", inputs=("x",), category="activation", elementwise=True, infer=_softplus_infer,
    attrs=(Attr("beta", "float", 1.0), Attr("threshold", "float", 20.0)),
    lower=_softplus_lower, grad=_softplus_grad, cost=lambda c: 5 * elementwise_cost(c),
    doc="log(1 + exp(beta x)) / beta, and x where beta x > threshold (torch.nn.Softplus).",
))


def _mish_lower(e, ins, outs, c):
    """x tanh(softplus(x)), decomposed at every opset: onnxruntime's CPU provider has no Mish kernel (it
    expands ONNX Mish, opset 18+, into this same function body), and Mish has no bfloat16 before 22."""
    bfloat16_from(e, c.in_types[0], "mish", "ONNX Softplus takes")
    e.op("Mul", [ins[0], e.op("Tanh", [e.op("Softplus", ins)])], outputs=outs)


def _mish_grad(b, c, ins, outs, gouts):
    """tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = softplus(x)."""
    x, g = ins[0], gouts[0]
    t = b.op("tanh", b.op("softplus", x))
    d = b.op("add", t, b.op("mul", b.op("mul", x, b.op("sigmoid", x)), _one_minus(b, b.op("mul", t, t))))
    return [b.op("mul", g, d)]


register(OpDef(
    name="mish", inputs=("x",), category="activation", elementwise=True, infer=float_same("mish"),
    lower=_mish_lower, grad=_mish_grad, cost=lambda c: 7 * elementwise_cost(c),
    doc="x * tanh(softplus(x)) (torch.nn.Mish).",
))


def _softmax_infer(name):
    def infer(ins, a):
        float_input(name, ins[0])
        norm_axis(a["axis"], ins[0].rank)
        return [ins[0]]
    return infer


def _softmax_grad(b, c, ins, outs, gouts):
    """y (g - sum(g y))."""
    y, g, ax = outs[0], gouts[0], c.attrs["axis"]
    dot = b.op("sum", b.op("mul", g, y), dim=(ax,), keepdim=True)
    return [b.op("mul", y, b.op("sub", g, dot))]


def _log_softmax_grad(b, c, ins, outs, gouts):
    """g - exp(y) sum(g)."""
    y, g, ax = outs[0], gouts[0], c.attrs["axis"]
    return [b.op("sub", g, b.op("mul", b.op("exp", y), b.op("sum", g, dim=(ax,), keepdim=True)))]


def _log_softmax_lower(e, ins, outs, c):
    t = c.in_types[0]
    log_softmax_of(e, ins[0], c.attrs["axis"] % t.rank, t.dtype, outputs=outs)


register(OpDef(
    name="softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("softmax"), grad=_softmax_grad,
    lower=lambda e, ins, outs, c: e.op("Softmax", ins, outputs=outs, axis=c.attrs["axis"]),
    cost=lambda c: 5 * elementwise_cost(c), doc="exp(x) / sum(exp(x)) along axis",
))
register(OpDef(
    name="log_softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("log_softmax"), grad=_log_softmax_grad,
    lower=_log_softmax_lower, cost=lambda c: 5 * elementwise_cost(c), doc="log(softmax(x)) along axis",
))

