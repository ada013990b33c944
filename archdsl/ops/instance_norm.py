"""instance_norm: torch.nn.InstanceNorm1d/2d/3d (statistics per example and channel over the spatial dims,
biased variance; affine=true adds a learned per-channel weight and bias). No running statistics
(track_running_stats): the same normalization in training and inference, torch's default.

Lowered as group_norm with a group per channel (LayerNormalization over each channel's values), not as ONNX
InstanceNormalization: onnxruntime's kernel sums in float32, and a constant channel of 3.3 over 128x128 came
out as 0.018 rather than 0, a mean of 3000 with spread 0.01 as noise (groupnorm.py)."""

from __future__ import annotations

from ..types import numel
from ._common import channels_last_hint, check_norm_eps, float_input, shape_str
from .groupnorm import channel_params, lower_grouped, normalized_forward
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []


def _channels(x) -> int:
    if x.rank < 3 or not isinstance(x.shape[1], int):
        fail(f"instance_norm: expected an input [N, C, spatial...] with a known C, got {shape_str(x)}"
             f"{channels_last_hint(x)}")
    return x.shape[1]


def _params(ins, a):
    return channel_params(_channels(ins[0]), a["affine"])


def _infer(ins, a):
    x = ins[0]
    float_input("instance_norm", x)
    check_norm_eps("instance_norm", a["eps"], "the channel count comes from the input, so torch's "
                   "InstanceNorm2d(num_features) is instance_norm with no argument here; eps=1e-3 sets eps")
    c = _channels(x)
    if all(d == 1 for d in x.shape[2:]):
        fail(f"instance_norm: needs more than 1 spatial element per channel, got {shape_str(x)} (torch refuses "
             f"it too: every output would be the bias)")
    for p in ins[1:]:
        if p.shape != (c,):
            fail(f"instance_norm: parameter shape {shape_str(p)} does not match {c} channels")
    return [x]


def _lower(e, ins, outs, c):
    x_t = c.in_types[0]
    lower_grouped(e, ins, outs, x_t, x_t.shape[1], c.attrs["eps"], c.attrs["affine"])


def _grad(b, c, ins, outs, gouts):
    """group_norm's with one group per channel."""
    x_t = c.in_types[0]
    return b.vjp(normalized_forward(x_t, x_t.shape[1], c.attrs["eps"]), list(ins), gouts)


register(OpDef(
    name="instance_norm", grad=_grad, inputs=("x",), category="layer", aliases=("instancenorm",),
    attrs=(Attr("eps", "float", 1e-5), Attr("affine", "bool", False)),
    params=_params, infer=_infer, lower=_lower, cost=lambda c: 5 * numel(c.out_types[0].shape),
    nonempty=lambda ins, a: range(1, ins[0].rank),  # as group_norm's: LayerNormalization refuses an empty row
    doc="Instance normalization (torch.nn.InstanceNorm1d/2d/3d): per example and channel over the spatial "
        "dims, biased variance; affine=true learns weight (ones) and bias (zeros) of C, named as torch's "
        "state_dict. No running statistics (track_running_stats=false, torch's default). Lowered through "
        "LayerNormalization over each channel (onnxruntime's InstanceNormalization loses precision where a "
        "channel's mean is large next to its spread).",
))
