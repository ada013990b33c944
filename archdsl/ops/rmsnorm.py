"""rms_norm: root-mean-square layer normalization (torch.nn.RMSNorm), as used by T5 and LLaMA.

y = x / sqrt(mean(x^2 over the normalized dims) + eps) * weight. ONNX RMSNormalization at opset 23+
(onnxruntime runs it as one kernel), a ReduceMean/Sqrt decomposition below that."""

from __future__ import annotations

import numpy as np

from ..types import DType, numel
from ._common import (
    check_norm_eps,
    eps_attribute_fits,
    float_input,
    narrowed,
    normalized_dims,
    reduce_op,
    wide_np,
    widen,
    widened,
)
from .registry import Attr, Init, OpDef, ParamSpec, register

__all__ = ["default_eps"]


def default_eps(dtype: DType) -> float:
    """torch.nn.RMSNorm's eps=None: the machine epsilon of the dtype it computes in, float32's for float16 and
    bfloat16 (torch computes them in float32; their own, 2**-10 and 2**-7, halved a [.01, .02, -.01, .03] row's
    result)."""
    return float(np.finfo(np.float64 if dtype is DType.float64 else np.float32).eps)


def _norm_dims(x, a, params=(), known=False):
    return normalized_dims("rms_norm", x, a["normalized_shape"], params, known)


def _params(ins, a):
    ns = _norm_dims(ins[0], a, known=a["elementwise_affine"])  # no weight: any size
    return [ParamSpec("weight", ns, Init("ones"))] if a["elementwise_affine"] else []


def _infer(ins, a):
    x = ins[0]
    float_input("rms_norm", x)
    check_norm_eps("rms_norm", a["eps"], "the second number is eps, as torch's RMSNorm(normalized_shape, eps); "
                   "several normalized dims are one list: rms_norm([8, 8])")
    _norm_dims(x, a, ins[1:])
    return [x]


def _lower(e, ins, outs, c):
    x_t = c.in_types[0]
    ns = _norm_dims(x_t, c.attrs)
    eps = c.attrs["eps"] if c.attrs["eps"] is not None else default_eps(x_t.dtype)
    np_dt = x_t.dtype.numpy
    scale = ins[1] if len(ins) > 1 else None
    if e.opset >= 23 and eps_attribute_fits(eps, x_t.dtype) and (
            scale is not None or all(isinstance(d, int) for d in ns)):  # a scale of ones needs known sizes
        if scale is None:
            scale = e.const(np.ones(ns, dtype=np_dt))
        e.op("RMSNormalization", [ins[0], scale], outputs=outs, axis=-len(ns), epsilon=float(eps))
        return
    axes = list(range(x_t.rank - len(ns), x_t.rank))
    x = widen(e, ins[0], x_t)  # as torch: in float32, where x*x does not overflow and a small eps is not 0
    sq = e.op("Mul", [x, x])
    ms = reduce_op(e, "ReduceMean", sq, axes, keepdims=1)
    eps_c = e.const(np.array(eps, dtype=wide_np(x_t)))
    inv = e.op("Reciprocal", [e.op("Sqrt", [e.op("Add", [ms, eps_c])])])
    y = e.op("Mul", [x, inv], outputs=outs if scale is None and not x_t.dtype.is_16bit else None)
    if x_t.dtype.is_16bit:
        y = e.op("Cast", [y], to=x_t.dtype.onnx, outputs=outs if scale is None else None)
    if scale is not None:
        e.op("Mul", [y, scale], outputs=outs)


def _grad(b, c, ins, outs, gouts):
    """Through the decomposition x / sqrt(mean(x^2) + eps) * weight."""
    x_t = c.in_types[0]
    ns = _norm_dims(x_t, c.attrs)
    eps = c.attrs["eps"] if c.attrs["eps"] is not None else default_eps(x_t.dtype)
    dims = tuple(range(x_t.rank - len(ns), x_t.rank))

    def forward(r, x, *w):
        h = widened(r, x, x_t.dtype)  # as the lowering: eps stays eps
        ms = r.op("mean", r.op("mul", h, h), dim=dims, keepdim=True)
        y = narrowed(r, r.op("mul", h, r.op("reciprocal", r.op("sqrt", r.op("add", ms, r.const(eps, like=h))))),
                     x_t.dtype)
        return r.op("mul", y, w[0]) if w else y
    return b.vjp(forward, list(ins), gouts)


register(OpDef(
    name="rms_norm", grad=_grad, inputs=("x",), category="layer", aliases=("rmsnorm",),
    attrs=(Attr("normalized_shape", "sizes?", None), Attr("eps", "float?", None),
           Attr("elementwise_affine", "bool", True)),
    params=_params, infer=_infer, lower=_lower, cost=lambda c: 4 * numel(c.out_types[0].shape),
    doc="RMS normalization over the trailing dims (torch.nn.RMSNorm; eps=none is the machine epsilon of float64 "
        "for a float64 input, else of float32, as torch's: it computes 16-bit inputs in float32); default: the last "
        "dim. ONNX RMSNormalization at opset 23+. The normalized dims are known sizes where there is a weight; with "
        "elementwise_affine=false any size (torch's F.rms_norm), a symbolic one written out.",
))
