"""More activations, torch semantics: selu, celu, glu, logsigmoid, softsign, and prelu (a layer with a learned
slope). Decomposed into core ONNX ops where the dedicated op lacks a dtype at opset 17 (Selu, Softsign and
Softplus take bfloat16 only from 22, Celu only float32)."""

from __future__ import annotations

import numpy as np

from ..types import numel
from ._common import elementwise_cost, float_input, narrow_into, shape_str, sigmoid, wide_np, wide_outputs, widen
from .activation import exp_side, float_same, neg_part, scalar
from .logexp import log1p_of
from .registry import Attr, Init, OpDef, ParamSpec, fail, register
from .shapes import norm_axis

__all__: list[str] = []

# torch.nn.SELU's constants (Klambauer et al., 2017)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ---------------- selu ----------------

def _selu_lower(e, ins, outs, c):
    x = ins[0]
    if c.in_types[0].dtype.label == "float32":
        e.op("Selu", [x], outputs=outs, alpha=SELU_ALPHA, gamma=SELU_SCALE)
        return
    pos = e.op("Greater", [x, scalar(e, c, 0.0)])
    y = e.op("Where", [pos, x, neg_part(e, c, x, SELU_ALPHA, 1.0)])
    e.op("Mul", [y, scalar(e, c, SELU_SCALE)], outputs=outs)


register(OpDef(
    name="selu", inputs=("x",), category="activation", elementwise=True, infer=float_same("selu"),
    lower=_selu_lower, cost=lambda c: 4 * elementwise_cost(c),
    grad=lambda b, c, ins, outs, gouts: [exp_side(b, ins[0], gouts[0], SELU_SCALE, SELU_SCALE * SELU_ALPHA, 1.0)],
    doc="scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha = 1.6733, scale = 1.0507 (torch.nn.SELU; ONNX "
        "Selu for float32).",
))


# ---------------- celu ----------------

def _celu_infer(ins, a):
    float_input("celu", ins[0])
    if a["alpha"] == 0:
        fail("celu: alpha must not be 0 (alpha * (exp(x / alpha) - 1))")
    return [ins[0]]


def _celu_lower(e, ins, outs, c):
    x, alpha = ins[0], c.attrs["alpha"]
    if c.in_types[0].dtype.label == "float32":
        e.op("Celu", [x], outputs=outs, alpha=alpha)
        return
    pos = e.op("Greater", [x, scalar(e, c, 0.0)])
    e.op("Where", [pos, x, neg_part(e, c, x, alpha, 1.0 / alpha)], outputs=outs)


register(OpDef(
    name="celu", inputs=("x",), category="activation", elementwise=True, attrs=(Attr("alpha", "float", 1.0),),
    infer=_celu_infer, lower=_celu_lower, cost=lambda c: 4 * elementwise_cost(c),
    grad=lambda b, c, ins, outs, gouts: [exp_side(b, ins[0], gouts[0], 1.0, 1.0, 1.0 / c.attrs["alpha"])],
    doc="x if x > 0 else alpha * (exp(x / alpha) - 1) (torch.nn.CELU; ONNX Celu for float32).",
))


# ---------------- glu ----------------

def _glu_half(x, a) -> tuple[int, int]:
    ax = norm_axis(a["dim"], x.rank, "glu: dim") if x.rank else fail("glu: needs a tensor of at least 1 dim")
    n = x.shape[ax]
    if not isinstance(n, int):
        fail(f"glu: dim {a['dim']} of {shape_str(x)} must be a known size to be halved, got {n}")
    if n % 2:
        fail(f"glu: dim {a['dim']} of {shape_str(x)} has odd size {n}; glu halves it")
    return ax, n // 2


def _glu_infer(ins, a):
    x = ins[0]
    float_input("glu", x)
    ax, h = _glu_half(x, a)
    return [x.with_shape(x.shape[:ax] + (h,) + x.shape[ax + 1:])]


def _glu_lower(e, ins, outs, c):
    ax, h = _glu_half(c.in_types[0], c.attrs)
    first, second = e.op("Split", [ins[0], e.const(np.array([h, h], dtype=np.int64))], axis=ax, n_out=2)
    e.op("Mul", [first, sigmoid(e, second, c.in_types[0].dtype)], outputs=outs)


def _glu_grad(b, c, ins, outs, gouts):
    """Through split + a * sigmoid(b)."""
    ax, h = _glu_half(c.in_types[0], c.attrs)

    def forward(r, x):
        first, second = r.op("split", x, sizes=(h,), axis=ax)
        return r.op("mul", first, r.op("sigmoid", second))
    return b.vjp(forward, list(ins), gouts)


register(OpDef(
    name="glu", inputs=("x",), category="activation", attrs=(Attr("dim", "int", -1),),
    infer=_glu_infer, lower=_glu_lower, grad=_glu_grad, cost=lambda c: 5 * elementwise_cost(c),
    doc="Gated linear unit (torch.nn.functional.glu): dim is split into halves a and b, a * sigmoid(b); the "
        "size of dim must be known and even.",
))


# ---------------- logsigmoid, softsign ----------------

def _logsigmoid_lower(e, ins, outs, c):
    """min(x, 0) - log1p(exp(-|x|)): no exp overflow, no log(0) where sigmoid underflows (x = -100), and the
    tail kept where 1 + exp(-x) rounds to 1 (log(1 + exp(-17)) was 0, torch's -4.1e-8)."""
    t = c.out_types[0]
    f = wide_np(t)
    x = widen(e, ins[0], t)
    tail = log1p_of(e, e.op("Exp", [e.op("Neg", [e.op("Abs", [x])])]), f, finite=True)  # exp(-|x|) in [0, 1]
    y = e.op("Sub", [e.op("Min", [x, e.const(np.array(0, f))]), tail], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


register(OpDef(
    name="logsigmoid", inputs=("x",), category="activation", elementwise=True, infer=float_same("logsigmoid"),
    lower=_logsigmoid_lower, cost=lambda c: 5 * elementwise_cost(c),
    grad=lambda b, c, ins, outs, gouts: [b.op("mul", gouts[0], b.op("sigmoid", b.op("neg", ins[0])))],
    doc="log(sigmoid(x)) (torch.nn.LogSigmoid), computed as min(x, 0) - log1p(exp(-|x|)): finite where "
        "sigmoid(x) underflows (-100 at x = -100), and accurate in the tail (-4.1e-8 at x = 17).",
))


def _softsign_grad(b, c, ins, outs, gouts):
    """g / (1 + |x|)^2."""
    d = b.op("add", b.const(1.0, like=ins[0]), b.op("abs", ins[0]))
    return [b.op("div", gouts[0], b.op("mul", d, d))]


register(OpDef(
    name="softsign", inputs=("x",), category="activation", elementwise=True, infer=float_same("softsign"),
    lower=lambda e, ins, outs, c: e.op("Div", [ins[0], e.op("Add", [scalar(e, c, 1.0), e.op("Abs", ins)])],
                                       outputs=outs),
    cost=lambda c: 3 * elementwise_cost(c), grad=_softsign_grad,
    doc="x / (1 + |x|) (torch.nn.Softsign).",
))


# ---------------- prelu ----------------

def _prelu_channels(x, a) -> int:
    n = a["num_parameters"]
    if n < 1:
        fail(f"prelu: num_parameters must be at least 1, got {n}")
    if n > 1:
        if x.rank < 2:
            fail(f"prelu: num_parameters={n} needs a channel dim 1, but the input is {shape_str(x)} "
                 "(as torch: a 0-d or 1-d input has one channel)")
        if not isinstance(x.shape[1], int):
            fail(f"prelu: num_parameters={n} needs a known channel dim 1, got {x.shape[1]} in {shape_str(x)}")
        if x.shape[1] != n:
            fail(f"prelu: num_parameters={n} does not match the {x.shape[1]} channels (dim 1) of {shape_str(x)}")
    return n


def _prelu_params(ins, a):
    return [ParamSpec("weight", (_prelu_channels(ins[0], a),), Init("constant", a["init"]))]


def _prelu_infer(ins, a):
    x = ins[0]
    float_input("prelu", x)
    n = _prelu_channels(x, a)
    if len(ins) > 1 and tuple(ins[1].shape) != (n,):
        fail(f"prelu: weight shape {shape_str(ins[1])} does not match num_parameters={n}")
    return [x]


def _per_channel(x_rank: int, n: int) -> tuple:
    """The slope's shape against x: [C, 1, ...] over dims 1.. (ONNX PRelu broadcasts from the right); a 0-d
    x takes a 0-d slope (a [1] one would make the result [1])."""
    if x_rank == 0:
        return ()
    return (n,) + (1,) * (x_rank - 2) if n > 1 else (1,)


def _prelu_lower(e, ins, outs, c):
    t, n = c.in_types[0], c.attrs["num_parameters"]
    shape = _per_channel(t.rank, n)
    w = ins[1] if shape == (n,) else e.op("Reshape", [ins[1], e.const(np.array(shape, dtype=np.int64))])
    e.op("PRelu", [ins[0], w], outputs=outs)


def _prelu_grad(b, c, ins, outs, gouts):
    """Through where(x > 0, x, w x), w shaped per channel: its gradient sums x g where x <= 0."""
    t, n = c.in_types[0], c.attrs["num_parameters"]
    shape = _per_channel(t.rank, n)

    def forward(r, x, w):
        slope = w if shape == (n,) else r.op("reshape", w, shape=shape)
        return r.op("where", r.op("gt", x, r.const(0.0, like=x)), x, r.op("mul", x, slope))
    return b.vjp(forward, list(ins), gouts)


register(OpDef(
    name="prelu", inputs=("x",), category="layer", grad=_prelu_grad,
    attrs=(Attr("num_parameters", "int", 1), Attr("init", "float", 0.25)),
    params=_prelu_params, infer=_prelu_infer, lower=_prelu_lower, cost=lambda c: 2 * numel(c.out_types[0].shape),
    doc="x if x > 0 else weight * x, weight learned (torch.nn.PReLU): one slope, or num_parameters slopes along "
        "the channel dim 1, each starting at init. The parameter is `weight`, shape [num_parameters], as "
        "torch's state_dict. ONNX PRelu.",
))
