"""Pointwise activations and softmax."""

from __future__ import annotations

import math

import numpy as np

from ._common import elementwise_cost, float_input
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis


def _float_same(name):
    def infer(ins, a):
        float_input(name, ins[0])
        return [ins[0]]
    return infer


def _one_minus(b, v):
    return b.op("sub", b.const(1.0, like=v), v)


_GRAD = {  # (b, x, y, g) -> gx
    "relu": lambda b, x, y, g: b.op("autodiff.relu_grad", g, y),
    "sigmoid": lambda b, x, y, g: b.op("mul", g, b.op("mul", y, _one_minus(b, y))),
    "tanh": lambda b, x, y, g: b.op("mul", g, _one_minus(b, b.op("mul", y, y))),
}


def _pointwise_grad(fn):
    return lambda b, c, ins, outs, gouts: [fn(b, ins[0], outs[0], gouts[0])]


def _simple(name, onnx_op, doc, flops=1, **fixed):
    register(OpDef(
        name=name, inputs=("x",), category="activation", infer=_float_same(name), elementwise=True,
        lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs, **fixed),
        cost=lambda c: flops * elementwise_cost(c), doc=doc, grad=_pointwise_grad(_GRAD[name]),
    ))


_simple("relu", "Relu", "max(x, 0)")
_simple("sigmoid", "Sigmoid", "1 / (1 + exp(-x))", flops=4)
_simple("tanh", "Tanh", "hyperbolic tangent", flops=4)


def _scalar(e, c, v):
    return e.const(np.array(v, dtype=c.in_types[0].dtype.numpy))


register(OpDef(
    name="leaky_relu", inputs=("x",), category="activation", elementwise=True,
    attrs=(Attr("negative_slope", "float", 0.01),),
    infer=_float_same("leaky_relu"),
    lower=lambda e, ins, outs, c: e.op("LeakyRelu", ins, outputs=outs, alpha=c.attrs["negative_slope"]),
    cost=elementwise_cost, doc="x if x > 0 else negative_slope * x",
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.leaky_relu_grad", gouts[0], ins[0],
                                              slope=c.attrs["negative_slope"])],
))


def _silu_lower(e, ins, outs, c):
    s = e.op("Sigmoid", ins)
    e.op("Mul", [ins[0], s], outputs=outs)


def _silu_grad(b, x, y, g):
    """d(x s(x)) = s (1 + x (1 - s))."""
    s = b.op("sigmoid", x)
    return b.op("mul", g, b.op("mul", s, b.op("add", b.const(1.0, like=x), b.op("mul", x, _one_minus(b, s)))))


register(OpDef(
    name="silu", inputs=("x",), category="activation", aliases=("swish",), infer=_float_same("silu"), elementwise=True,
    lower=_silu_lower, grad=_pointwise_grad(_silu_grad), cost=lambda c: 5 * elementwise_cost(c), doc="x * sigmoid(x)",
))


def _gelu_lower(e, ins, outs, c):
    approx = c.attrs["approximate"]
    if e.opset >= 20:
        e.op("Gelu", ins, outputs=outs, approximate=approx)
        return
    x = ins[0]
    if approx == "tanh":
        x3 = e.op("Mul", [e.op("Mul", [x, x]), x])
        inner = e.op("Mul", [e.op("Add", [x, e.op("Mul", [x3, _scalar(e, c, 0.044715)])]),
                             _scalar(e, c, math.sqrt(2.0 / math.pi))])
        t = e.op("Add", [e.op("Tanh", [inner]), _scalar(e, c, 1.0)])
    else:
        t = e.op("Add", [e.op("Erf", [e.op("Div", [x, _scalar(e, c, math.sqrt(2.0))])]), _scalar(e, c, 1.0)])
    # halve x first: x * (1 + t) overflows for x above half the dtype's largest value (onnxruntime fuses the
    # erf form into its Gelu kernel in either order)
    e.op("Mul", [e.op("Mul", [x, _scalar(e, c, 0.5)]), t], outputs=outs)


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
    infer=_float_same("gelu"), lower=_gelu_lower, cost=lambda c: 8 * elementwise_cost(c),
    doc='Gaussian error linear unit; approximate="tanh" for the GPT-2 form. ONNX Gelu at opset 20+.',
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


register(OpDef(
    name="softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("softmax"), grad=_softmax_grad,
    lower=lambda e, ins, outs, c: e.op("Softmax", ins, outputs=outs, axis=c.attrs["axis"]),
    cost=lambda c: 5 * elementwise_cost(c), doc="exp(x) / sum(exp(x)) along axis",
))
register(OpDef(
    name="log_softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("log_softmax"), grad=_log_softmax_grad,
    lower=lambda e, ins, outs, c: e.op("LogSoftmax", ins, outputs=outs, axis=c.attrs["axis"]),
    cost=lambda c: 5 * elementwise_cost(c), doc="log(softmax(x)) along axis",
))

_ = fail
