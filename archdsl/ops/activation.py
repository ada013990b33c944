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


def _simple(name, onnx_op, doc, flops=1, **fixed):
    register(OpDef(
        name=name, inputs=("x",), category="activation", infer=_float_same(name),
        lower=lambda e, ins, outs, c: e.op(onnx_op, ins, outputs=outs, **fixed),
        cost=lambda c: flops * elementwise_cost(c), doc=doc,
    ))


_simple("relu", "Relu", "max(x, 0)")
_simple("sigmoid", "Sigmoid", "1 / (1 + exp(-x))", flops=4)
_simple("tanh", "Tanh", "hyperbolic tangent", flops=4)


def _scalar(e, c, v):
    return e.const(np.array(v, dtype=c.in_types[0].dtype.np))


register(OpDef(
    name="leaky_relu", inputs=("x",), category="activation", attrs=(Attr("negative_slope", "float", 0.01),),
    infer=_float_same("leaky_relu"),
    lower=lambda e, ins, outs, c: e.op("LeakyRelu", ins, outputs=outs, alpha=c.attrs["negative_slope"]),
    cost=elementwise_cost, doc="x if x > 0 else negative_slope * x",
))


def _silu_lower(e, ins, outs, c):
    s = e.op("Sigmoid", ins)
    e.op("Mul", [ins[0], s], outputs=outs)


register(OpDef(
    name="silu", inputs=("x",), category="activation", aliases=("swish",), infer=_float_same("silu"),
    lower=_silu_lower, cost=lambda c: 5 * elementwise_cost(c), doc="x * sigmoid(x)",
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
    e.op("Mul", [e.op("Mul", [x, t]), _scalar(e, c, 0.5)], outputs=outs)


register(OpDef(
    name="gelu", inputs=("x",), category="activation",
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


register(OpDef(
    name="softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("softmax"),
    lower=lambda e, ins, outs, c: e.op("Softmax", ins, outputs=outs, axis=c.attrs["axis"]),
    cost=lambda c: 5 * elementwise_cost(c), doc="exp(x) / sum(exp(x)) along axis",
))
register(OpDef(
    name="log_softmax", inputs=("x",), category="activation", attrs=(Attr("axis", "int", -1),),
    infer=_softmax_infer("log_softmax"),
    lower=lambda e, ins, outs, c: e.op("LogSoftmax", ins, outputs=outs, axis=c.attrs["axis"]),
    cost=lambda c: 5 * elementwise_cost(c), doc="log(softmax(x)) along axis",
))

_ = fail
