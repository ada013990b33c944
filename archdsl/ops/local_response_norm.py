"""local_response_norm: torch.nn.LocalResponseNorm (AlexNet's and the original GoogLeNet's LRN), across channels:
    b_c = a_c / (k + alpha / size * sum_{j in W(c)} a_j^2) ^ beta,
W(c) torch's window: size // 2 channels before c, (size - 1) // 2 after, clipped to [0, C).

Lowered as x / (k + alpha / size * S(x^2)) ^ beta, S the window sum written as a Pad and ceil(log2 size)
rounds of Slice/Add (sums of 1, 2, 4, ... channels, then the binary digits of size), 16-bit floats in float32.
Not ONNX LRN: its window for an even size is the mirror image of torch's, and onnxruntime's CPU kernel keeps a
running sum along the channels (adding the new square, subtracting the old), so one large channel corrupts
channels far outside its window (a review: [1e6, 1, 2, 3, ...] size 3 gave 1.19 for torch's 2.00 five channels
away, inf or nan at alpha=1); it also refuses alpha or beta <= 0, which torch takes, and has no float64.

The gradient is that decomposition's: S is linear, and its transpose is the window sum with `before` and
`after` swapped."""

from __future__ import annotations

import numpy as np

from ..types import numel
from ._common import float_input, narrow_into, narrowed, shape_str, wide_np, wide_outputs, widen, widened
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []

_END = np.iinfo(np.int64).max


def _infer(ins, a):
    x = ins[0]
    float_input("local_response_norm", x)
    if x.rank < 3:
        fail(f"local_response_norm: expected an input [N, C, ...] of rank 3 or more, got {shape_str(x)} (as torch: "
             f"it normalizes across the channels of each position)")
    if a["size"] < 1:
        fail(f"local_response_norm: size must be at least 1 (the channels in the window), got {a['size']}", "size")
    if not isinstance(x.shape[1], int) and a["size"] > _MAX_SYMBOLIC:  # padded past any size a dim can have
        fail(f"local_response_norm: size {a['size']} over a symbolic channel count ({x.shape[1]}) pads the channels "
             f"past the dim limit; sizes up to {_MAX_SYMBOLIC} are taken (a window of 2C-1 covers every channel)")
    return [x]


_MAX_SYMBOLIC = 2**16


def _window(size: int, channels) -> tuple[int, int]:
    """torch's window around a channel: (channels before, channels after), at most C - 1 of each where C is
    known (a wider window reads zeros there: a size of 2**63 - 1 made a Pad past any dim onnxruntime takes)."""
    before, after = size // 2, (size - 1) // 2
    if isinstance(channels, int):
        before, after = min(before, channels - 1), min(after, channels - 1)
    return before, after


def window_sum(e, v: str, rank: int, before: int, after: int) -> str:
    """sum_{j = c - before}^{c + after} v_j along axis 1, zeros past either end. The padded tensor P has
    length L = C + n - 1 (n = before + after + 1); S_m (the sums of m neighbours, length L - m + 1) doubles as
    S_2m[i] = S_m[i] + S_m[i + m]; the result adds S_(2^b)[off:off + C] over the binary digits b of n."""
    n = before + after + 1
    if n == 1:
        return v
    pads = [0] * (2 * rank)
    pads[1], pads[rank + 1] = before, after
    sums = {1: e.op("Pad", [v, _i64(e, pads)], mode="constant")}

    def part(s: str, start: int, trim: int) -> str:
        """s (holding sums of m) from `start`, `trim` elements short of its end (C elements in all)."""
        return e.op("Slice", [s, _i64(e, [start]), _i64(e, [-trim if trim else _END]), _i64(e, [1])])
    m = 1
    while 2 * m <= n:
        sums[2 * m] = e.op("Add", [part(sums[m], 0, m), part(sums[m], m, 0)])
        m *= 2
    acc, off = None, 0
    while m:
        if n & m:
            term = part(sums[m], off, n - m - off)
            acc = term if acc is None else e.op("Add", [acc, term])
            off += m
        m //= 2
    return acc


def _decomposed(e, x: str, t, a, outs) -> None:
    """x / (k + alpha / size * S(x^2)) ^ beta, in float32 for 16-bit inputs."""
    dt = wide_np(t)
    h = widen(e, x, t)
    s = window_sum(e, e.op("Mul", [h, h]), t.rank, *_window(a["size"], t.shape[1]))
    d = e.op("Add", [e.op("Mul", [s, e.const(np.array(a["alpha"] / a["size"], dt))]), e.const(np.array(a["k"], dt))])
    y = e.op("Div", [h, e.op("Pow", [d, e.const(np.array(a["beta"], dt))])], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _lower(e, ins, outs, c):
    _decomposed(e, ins[0], c.in_types[0], c.attrs, outs)


def _grad(b, c, ins, outs, gouts):
    t, a = c.in_types[0], c.attrs
    before, after = _window(a["size"], t.shape[1])

    def forward(r, x):
        h = widened(r, x, t.dtype)
        s = r.op("autodiff.channel_window_sum", r.op("mul", h, h), before=before, after=after)
        d = r.op("add", r.op("mul", s, r.const(a["alpha"] / a["size"], like=h)), r.const(a["k"], like=h))
        return narrowed(r, r.op("div", h, r.op("pow", d, r.const(a["beta"], like=h))), t.dtype)
    return b.vjp(forward, list(ins), gouts)


register(OpDef(
    name="local_response_norm", inputs=("x",), category="layer", aliases=("lrn",),
    attrs=(Attr("size", "int"), Attr("alpha", "float", 1e-4), Attr("beta", "float", 0.75), Attr("k", "float", 1.0)),
    infer=_infer, lower=_lower, grad=_grad, cost=lambda c: 6 * numel(c.in_types[0].shape),
    doc="Local response normalization across channels (torch.nn.LocalResponseNorm, AlexNet): x / (k + alpha / "
        "size * sum of x^2 over `size` neighbouring channels) ^ beta, torch's window (size // 2 channels before, "
        "(size - 1) // 2 after). Input [N, C, ...], rank 3 or more; no parameters. Lowered as Pad, log2(size) "
        "rounds of Slice/Add, Pow, Div (16-bit floats in float32), not ONNX LRN: onnxruntime's LRN cancels "
        "large squares in a running sum (wrong far from a large channel), refuses alpha or beta <= 0, and ONNX's "
        "window for an even size is the mirror image of torch's.",
))


# ---------------- the window sum, an internal op (the decomposition's, for the gradient) ----------------

def _ws_lower(e, ins, outs, c):
    y = window_sum(e, ins[0], c.in_types[0].rank, c.attrs["before"], c.attrs["after"])
    e.op("Identity", [y], outputs=outs)


def _ws_grad(b, c, ins, outs, gouts):
    """Linear; its transpose sums the same window mirrored."""
    if gouts[0] is None:
        return [None]
    return [b.op("autodiff.channel_window_sum", gouts[0], before=c.attrs["after"], after=c.attrs["before"])]


register(OpDef(
    name="autodiff.channel_window_sum", inputs=("x",), category="internal",
    attrs=(Attr("before", "int"), Attr("after", "int")),
    infer=lambda ins, a: [ins[0]], lower=_ws_lower, grad=_ws_grad, cost=lambda c: 0,
    doc="sum of x over channels c - before .. c + after along dim 1 (zeros past the ends)",
))
