"""batchnorm (inference: running stats) and layernorm, torch layouts."""

from __future__ import annotations

import math

from ..types import numel
from ._common import (
    channels_last_hint,
    check_norm_eps,
    elementwise_cost,
    eps_attribute_fits,
    float_input,
    narrowed,
    normalized_dims,
    shape_str,
    standardized,
    wide_np,
    widen,
    widened,
)
from .registry import Attr, Init, OpDef, ParamSpec, fail, register


def _bn_params(ins, a):
    x = ins[0]
    if x.rank < 2 or not isinstance(x.shape[1], int):  # [B, T, 64], [B, H, W, 3]: channels last
        fail(f"batchnorm: expected an input [N, C, ...] with a known C, got {shape_str(x)}{channels_last_hint(x)}")
    c = x.shape[1]
    specs = []
    if a["affine"]:
        specs += [ParamSpec("weight", (c,), Init("ones")), ParamSpec("bias", (c,), Init("zeros"))]
    specs += [ParamSpec("running_mean", (c,), Init("zeros"), trainable=False),
              ParamSpec("running_var", (c,), Init("ones"), trainable=False)]
    return specs


def _bn_infer(ins, a):
    x = ins[0]
    float_input("batchnorm", x)
    check_norm_eps("batchnorm", a["eps"], "the channel count comes from the input, so torch's "
                   "BatchNorm2d(num_features) is batchnorm2d with no argument here (and BatchNorm1d, BatchNorm3d "
                   "likewise); eps=1e-3 sets eps")
    if not 0.0 <= a["momentum"] <= 1.0:
        fail(f"batchnorm: momentum must be in [0, 1], got {a['momentum']}", "momentum")
    for p in ins[1:]:
        if p.shape != (x.shape[1],):
            fail(f"batchnorm: expected {p.shape[0]} channels, got {x.shape[1]} (input {shape_str(x)})")
    return [x]


def _bn_lower(e, ins, outs, c):
    x, *rest = ins
    if c.attrs["affine"]:
        scale, bias, mean, var = rest
    else:
        ch = c.in_types[0].shape[1]
        import numpy as np
        scale = e.const(np.ones(ch, dtype=c.in_types[0].dtype.numpy))
        bias = e.const(np.zeros(ch, dtype=c.in_types[0].dtype.numpy))
        mean, var = rest
    x_t = c.in_types[0]
    if not eps_attribute_fits(c.attrs["eps"], x_t.dtype):  # float64: (x - mean) * scale / sqrt(var + eps) + bias,
        # per channel, eps a float64 constant
        import numpy as np
        per_channel = e.const(np.array([x_t.shape[1]] + [1] * (x_t.rank - 2), dtype=np.int64))
        k = e.op("Div", [scale, e.op("Sqrt", [e.op("Add", [var, e.const(np.array(c.attrs["eps"], np.float64))])])])
        y = e.op("Mul", [e.op("Sub", [x, e.op("Reshape", [mean, per_channel])]), e.op("Reshape", [k, per_channel])])
        e.op("Add", [y, e.op("Reshape", [bias, per_channel])], outputs=outs)
        return
    e.op("BatchNormalization", [x, scale, bias, mean, var], outputs=outs, epsilon=c.attrs["eps"])


def _normalize_grad(b, g, xhat, rstd, axes, gamma=None):
    """Through xhat = (x - mean) * rstd with mean and rstd over `axes`:
    gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)), gxhat = g * gamma."""
    gxhat = b.op("mul", g, gamma) if gamma is not None else g
    m1 = b.op("mean", gxhat, dim=axes, keepdim=True)
    m2 = b.op("mean", b.op("mul", gxhat, xhat), dim=axes, keepdim=True)
    return b.op("mul", rstd, b.op("sub", b.op("sub", gxhat, m1), b.op("mul", xhat, m2)))


def _bn_grad(b, c, ins, outs, gouts):
    """Inference form (running statistics are constants here): an affine map per channel."""
    g, x = gouts[0], ins[0]
    rank = c.in_types[0].rank
    cshape = (1, c.in_types[0].shape[1]) + (1,) * (rank - 2)
    affine = c.attrs["affine"]
    rm, rv = ins[-2], ins[-1]
    rstd = b.op("reshape", b.op("reciprocal", b.op("sqrt", b.op("add", rv, b.const(c.attrs["eps"], like=rv)))),
                shape=cshape)
    axes = (0,) + tuple(range(2, rank))
    res = [None] * len(ins)
    if b.needs(0):
        scale = b.op("mul", rstd, b.op("reshape", ins[1], shape=cshape)) if affine else rstd
        res[0] = b.op("mul", g, scale)
    if affine and b.needs(1):
        xhat = b.op("mul", b.op("sub", x, b.op("reshape", rm, shape=cshape)), rstd)
        res[1] = b.op("sum", b.op("mul", g, xhat), dim=axes)
    if affine and b.needs(2):
        res[2] = b.op("sum", g, dim=axes)
    return res


register(OpDef(
    name="batchnorm", inputs=("x",), category="layer", aliases=("batchnorm1d", "batchnorm2d", "batchnorm3d"),
    alias_ranks={"batchnorm1d": ((2, 3), "BatchNorm1d"), "batchnorm2d": ((4,), "BatchNorm2d"),
                 "batchnorm3d": ((5,), "BatchNorm3d")}, grad=_bn_grad,
    attrs=(Attr("eps", "float", 1e-5),
           Attr("momentum", "float", 0.1, none="torch's momentum=None, a cumulative average of every batch's "
                                                 "statistics, is not supported here: a number (torch's default 0.1)"),
           Attr("affine", "bool", True)),
    params=_bn_params, infer=_bn_infer, lower=_bn_lower, cost=lambda c: 2 * elementwise_cost(c),
    doc="Batch normalization over dim 1 (torch.nn.BatchNorm1d/2d/3d); inference uses running statistics. "
        "batchnorm1d takes 2-D or 3-D input, batchnorm2d 4-D, batchnorm3d 5-D (as torch's), batchnorm any rank.",
))


def _norm_dims(x, a, params=(), known=False):
    return normalized_dims("layernorm", x, a["normalized_shape"], params, known)


def _ln_params(ins, a):
    ns = _norm_dims(ins[0], a, known=a["elementwise_affine"])  # no weight: any size (torch's F.layer_norm)
    if not a["elementwise_affine"]:
        return []
    specs = [ParamSpec("weight", ns, Init("ones"))]
    if a["bias"]:
        specs.append(ParamSpec("bias", ns, Init("zeros")))
    return specs


def _ln_infer(ins, a):
    x = ins[0]
    float_input("layernorm", x)
    check_norm_eps("layernorm", a["eps"], "the second number is eps, as torch's LayerNorm(normalized_shape, eps); "
                   "several normalized dims are one list: layernorm([8, 8])")
    _norm_dims(x, a, ins[1:])
    return [x]


def _ln_lower(e, ins, outs, c):
    import numpy as np
    x_t = c.in_types[0]
    ns = _norm_dims(x_t, c.attrs)
    ins = list(ins)
    if not eps_attribute_fits(c.attrs["eps"], x_t.dtype):  # float64: written out, eps a float64 constant
        y = standardized(e, ins[0], list(range(x_t.rank - len(ns), x_t.rank)), c.attrs["eps"], np.float64,
                         outputs=outs if len(ins) == 1 else None)
        if len(ins) > 1:
            y = e.op("Mul", [y, ins[1]], outputs=outs if len(ins) == 2 else None)
        if len(ins) > 2:
            e.op("Add", [y, ins[2]], outputs=outs)
        return
    if len(ins) == 1 and not all(isinstance(d, int) for d in ns):  # no scale of ones to make: written out, in
        y = standardized(e, widen(e, ins[0], x_t), list(range(x_t.rank - len(ns), x_t.rank)),  # float32 for
                         c.attrs["eps"], wide_np(x_t), outputs=None if x_t.dtype.is_16bit else outs)  # 16-bit x
        if x_t.dtype.is_16bit:
            e.op("Cast", [y], to=x_t.dtype.onnx, outputs=outs)
        return
    if len(ins) == 1:
        ins.append(e.const(np.ones(ns, dtype=x_t.dtype.numpy)))
    e.op("LayerNormalization", ins, outputs=outs, axis=-len(ns), epsilon=c.attrs["eps"])


def _ln_grad(b, c, ins, outs, gouts):
    """In float32 for 16-bit tensors (widened), as torch's kernels."""
    x_t = c.in_types[0]
    dt = x_t.dtype
    g, x = widened(b, gouts[0], dt), widened(b, ins[0], dt)
    k = len(_norm_dims(x_t, c.attrs))
    axes = tuple(range(x_t.rank - k, x_t.rank))
    lead = tuple(range(x_t.rank - k))
    d = b.op("sub", x, b.op("mean", x, dim=axes, keepdim=True))
    var = b.op("mean", b.op("mul", d, d), dim=axes, keepdim=True)
    rstd = b.op("reciprocal", b.op("sqrt", b.op("add", var, b.const(c.attrs["eps"], like=x))))
    xhat = b.op("mul", d, rstd)
    res = [None] * len(ins)
    if b.needs(0):
        w = widened(b, ins[1], dt) if len(ins) > 1 else None
        res[0] = narrowed(b, _normalize_grad(b, g, xhat, rstd, axes, w), dt)
    if len(ins) > 1 and b.needs(1):
        res[1] = narrowed(b, b.op("sum", b.op("mul", g, xhat), dim=lead) if lead else b.op("mul", g, xhat), dt)
    if len(ins) > 2 and b.needs(2):
        res[2] = narrowed(b, b.op("sum", g, dim=lead) if lead else g, dt)
    return res


register(OpDef(
    name="layernorm", inputs=("x",), category="layer", grad=_ln_grad,
    attrs=(Attr("normalized_shape", "sizes?", None), Attr("eps", "float", 1e-5),
           Attr("elementwise_affine", "bool", True), Attr("bias", "bool", True)),
    params=_ln_params, infer=_ln_infer, lower=_ln_lower,
    cost=lambda c: 5 * numel(c.out_types[0].shape),
    doc="Layer normalization over the trailing dims (torch.nn.LayerNorm); default: the last dim. The normalized "
        "dims are known sizes where there are weights; with elementwise_affine=false any size (torch's "
        "F.layer_norm), a symbolic one written out as (x - mean) / sqrt(var + eps).",
))


def _dropout_infer(ins, a):
    if not 0.0 <= a["p"] <= 1.0:
        fail(f"dropout: p must be in [0, 1], got {a['p']}", "p")
    return [ins[0]]


register(OpDef(
    name="dropout", inputs=("x",), category="layer", elementwise=True,
    attrs=(Attr("p", "float", 0.5),),
    infer=_dropout_infer, lower=lambda e, ins, outs, c: e.op("Identity", ins, outputs=outs),
    grad=lambda b, c, ins, outs, gouts: [gouts[0]],
    cost=lambda c: 0,
    doc="Dropout (torch.nn.Dropout); the identity in an inference model.",
))

def _drop_path_infer(ins, a):
    if not 0.0 <= a["p"] <= 1.0:
        fail(f"drop_path: p must be in [0, 1], got {a['p']}", "p")
    if ins[0].rank < 1:
        fail("drop_path: needs a batch dim (it drops whole examples)")
    return [ins[0]]


register(OpDef(
    name="drop_path", inputs=("x",), category="layer", attrs=(Attr("p", "float", 0.0),),
    infer=_drop_path_infer, lower=lambda e, ins, outs, c: e.op("Identity", ins, outputs=outs),
    grad=lambda b, c, ins, outs, gouts: [gouts[0]], cost=lambda c: 0,
    doc="Stochastic depth (timm's drop_path, torchvision's StochasticDepth 'row'): in training each example's "
        "x is zeroed with probability p, else scaled by 1/(1-p); the identity in an inference model.",
))

_ = math
