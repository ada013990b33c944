"""group_norm: torch.nn.GroupNorm (statistics per sample and group of channels, per-channel affine).

Lowered at every opset as reshape to [N, G, C/G * spatial], LayerNormalization over the last axis, reshape back,
per-channel affine (instance_norm too, with a group per channel). onnxruntime's LayerNormalization kernel
keeps its sums in double: its InstanceNormalization and ReduceMean sum in float32, so a constant 3.3 over
128x128 came out as 0.07 rather than 0 (the mean off by 2e-7, divided by sqrt(eps)), and a mean of 3000 with
spread 0.01 as noise (error 4.9; torch 0.017, LayerNormalization 0.008; measured 2026-12-06). ONNX's
GroupNormalization (opset 21+) is not used: onnxruntime has no kernel for it and expands its function body,
whose one-pass variance (E[x^2] - E[x]^2) in float32 cancels (mean 1000, std 1: error 0.2; mean 1e4: NaN).
float64 takes two explicit passes (in double throughout), bfloat16 the float32 path and back (its statistics
in float32, as torch's)."""

from __future__ import annotations

import numpy as np

from ..types import DType, numel
from ._common import (
    channels_last_hint,
    check_norm_eps,
    float_input,
    i64,
    narrowed,
    positive,
    reduce_op,
    shape_str,
    standardized,
    widened,
)
from .registry import Attr, Init, OpDef, ParamSpec, fail, register

__all__ = ["channel_params", "check_channel_params", "lower_grouped", "normalized_forward"]


def _channels(x, a) -> int:
    if x.rank < 2 or not isinstance(x.shape[1], int):
        fail(f"group_norm: expected an input [N, C, ...] with a known C, got {shape_str(x)}{channels_last_hint(x)}")
    positive("group_norm", a, "num_groups")
    c, g = x.shape[1], a["num_groups"]
    if c % g:
        fail(f"group_norm: num_groups={g} must divide the {c} channels of {shape_str(x)}", "num_groups")
    return c


def channel_params(c: int, affine: bool) -> list[ParamSpec]:
    """A norm's per-channel affine parameters, named as torch's state_dict."""
    return [ParamSpec("weight", (c,), Init("ones")), ParamSpec("bias", (c,), Init("zeros"))] if affine else []


def _params(ins, a):
    return channel_params(_channels(ins[0], a), a["affine"])


def check_channel_params(op: str, params, c: int) -> None:
    for p in params:
        if p.shape != (c,):
            fail(f"{op}: parameter shape {shape_str(p)} does not match {c} channels")


def _infer(ins, a):
    x = ins[0]
    float_input("group_norm", x)
    check_norm_eps("group_norm", a["eps"], "the channel count comes from the input, so torch's GroupNorm(num_groups, "
                   "num_channels) is group_norm(num_groups) here; eps=1e-3 sets eps")
    check_channel_params("group_norm", ins[1:], _channels(x, a))
    return [x]


def _grouped_shape(e, x: str, x_t, g: int) -> tuple[str, int | str]:
    """[N, G, C/G * spatial] as Reshape's shape, without -1 (ONNX cannot infer a -1 from an empty batch, which
    torch's GroupNorm takes), and its last size: a number, or a 1-D tensor where the spatial sizes are
    symbolic (multiplied at run time; G is read from the shape too: of a shape with one computed size,
    onnxruntime's ReshapeFusion makes that size -1 again)."""
    spatial, per = x_t.shape[2:], x_t.shape[1] // g
    if all(isinstance(d, int) for d in spatial):
        size = per * int(np.prod(spatial, dtype=np.int64))
        return e.const(np.array([0, g, size], dtype=np.int64)), size
    shape = e.op("Shape", [x])
    sizes = e.op("Slice", [shape, i64(e, [2]), i64(e, [x_t.rank])])
    groups = e.op("Div", [e.op("Slice", [shape, i64(e, [1]), i64(e, [2])]), i64(e, [per])])
    per_group = e.op("Mul", [reduce_op(e, "ReduceProd", sizes, [0], 1), i64(e, [per])])
    return e.op("Concat", [i64(e, [0]), groups, per_group], axis=0), per_group


def lower_grouped(e, ins, outs, x_t, g: int, eps: float, affine: bool) -> None:
    """x [N, C, ...] normalized per example and group of C/g channels (biased variance), then the optional
    per-channel affine: group_norm's lowering, and instance_norm's (g = C)."""
    x = ins[0]
    if x_t.dtype is DType.bfloat16:
        x = e.op("Cast", [x], to=DType.float32.onnx)
    shape, size = _grouped_shape(e, x, x_t, g)
    grouped = e.op("Reshape", [x, shape])
    dt = np.float64 if x_t.dtype is DType.float64 else np.float16 if x_t.dtype is DType.float16 else np.float32
    if x_t.dtype is DType.float64:
        normed = standardized(e, grouped, [2], eps, dt)
    else:  # a scale of ones the group's size: a constant shape is folded by onnxruntime when the session loads
        length = i64(e, [size]) if isinstance(size, int) else size
        ones = e.op("Expand", [e.const(np.ones(1, dtype=dt)), length])
        normed = e.op("LayerNormalization", [grouped, ones], axis=2, epsilon=eps)
    last = None if x_t.dtype is DType.bfloat16 or affine else outs
    y = e.op("Reshape", [normed, e.op("Shape", [ins[0]])], outputs=last)
    if x_t.dtype is DType.bfloat16:
        y = e.op("Cast", [y], to=DType.bfloat16.onnx, outputs=None if affine else outs)
    if affine:
        per_channel = e.const(np.array([x_t.shape[1]] + [1] * (x_t.rank - 2), dtype=np.int64))
        y = e.op("Mul", [y, e.op("Reshape", [ins[1], per_channel])])
        e.op("Add", [y, e.op("Reshape", [ins[2], per_channel])], outputs=outs)


def _lower(e, ins, outs, c):
    lower_grouped(e, ins, outs, c.in_types[0], c.attrs["num_groups"], c.attrs["eps"], c.attrs["affine"])


def normalized_forward(x_t, groups: int, eps: float):
    """The norm as ops, for its gradient: x [N, C, ...] normalized per example over [N, groups, -1] (biased
    variance), reshaped back, then the optional per-channel affine; 16-bit inputs in float32, as torch's. The
    mean is taken in float64, as the forward's LayerNormalization sums (onnxruntime's float32 ReduceMean
    does not: a constant 3.3 got a mean off by 2e-7, the gradient of a mean of 3000 with spread 0.01 3x the
    old error); the deviations, then small, are squared and averaged in float32."""
    def forward(r, x, *wb):
        h = widened(r, x, x_t.dtype)
        grouped = r.op("reshape", h, shape=(x_t.shape[0], groups, -1))
        if x_t.dtype is DType.float64:
            mean = r.op("mean", grouped, dim=(2,), keepdim=True)
        else:
            mean = r.op("cast", r.op("mean", r.op("cast", grouped, dtype="float64"), dim=(2,), keepdim=True),
                        dtype="float32")
        d = r.op("sub", grouped, mean)
        var = r.op("mean", r.op("mul", d, d), dim=(2,), keepdim=True)
        y = r.reshape_like(r.op("mul", d, r.op("reciprocal", r.op("sqrt", r.op("add", var, r.const(eps, like=h))))), x)
        y = narrowed(r, y, x_t.dtype)
        if wb:
            per = (x_t.shape[1],) + (1,) * (x_t.rank - 2)
            y = r.op("add", r.op("mul", y, r.op("reshape", wb[0], shape=per)), r.op("reshape", wb[1], shape=per))
        return y
    return forward


def _grad(b, c, ins, outs, gouts):
    return b.vjp(normalized_forward(c.in_types[0], c.attrs["num_groups"], c.attrs["eps"]), list(ins), gouts)


register(OpDef(
    name="group_norm", grad=_grad, inputs=("x",), category="layer", aliases=("groupnorm",),
    attrs=(Attr("num_groups", "int"), Attr("eps", "float", 1e-5), Attr("affine", "bool", True)),
    params=_params, infer=_infer, lower=_lower, cost=lambda c: 5 * numel(c.out_types[0].shape),
    nonempty=lambda ins, a: range(1, ins[0].rank),  # onnxruntime's LayerNormalization refuses an empty row
    doc="Group normalization over groups of channels (torch.nn.GroupNorm); lowered through LayerNormalization "
        "over each group at every opset (onnxruntime's GroupNormalization and InstanceNormalization lose "
        "precision where a group's mean is large next to its spread). A spatial size of 0 known only at run "
        "time is an onnxruntime error there (LayerNormalization refuses an empty row; torch gives an empty map): "
        "`archdsl run` says so first.",
))
