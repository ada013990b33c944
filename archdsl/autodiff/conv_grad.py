"""The weight gradient of a convolution as one large matrix product (im2col), where that pays off.

gW[co, (k, ci)] = sum over (n, p) of g[n, co, p] * x_pad[n, p * stride + k * dilation, ci]: the K shifted
windows of x are cut with Slice in channels-last layout and joined along channels, so one MatMul of
[Cout, N*P] by [N*P, K*Cin] does the whole reduction. onnxruntime runs that GEMM near peak; the
alternative (a Conv of x by g with batch and channels swapped, kernels.py) is a tall-skinny product with
a few outputs per image and measured 1.5-3x slower on ResNet layers. The window matrix holds K copies of x,
so it is used only while that stays small, and with enough channels that the joined rows are not strided
copies of a few values."""

from __future__ import annotations

import itertools
import math

from ..ops._common import i64 as _i64

__all__ = ["im2col_weight_grad"]

MIN_CHANNELS = 16
MAX_WINDOW_FLOATS_PER_EXAMPLE = 1 << 20  # K * Cin * P floats (4 MiB) per example in the window matrix


def im2col_weight_grad(e, ins, outs, c) -> bool:
    """Emit the im2col form and return True, or return False (the caller emits the other form)."""
    a = c.attrs
    x, g = ins
    x_t, g_t = c.in_types
    n = x_t.rank - 2
    cin, cout = x_t.shape[1], g_t.shape[1]
    spatial, out_sp = x_t.shape[2:], g_t.shape[2:]
    k = list(a["kernel"])
    if a["groups"] != 1 or not all(isinstance(d, int) for d in (cin, cout, *spatial, *out_sp)):
        return False
    windows = math.prod(k)
    p_out = math.prod(out_sp)
    if cin < MIN_CHANNELS or windows * cin * p_out > MAX_WINDOW_FLOATS_PER_EXAMPLE:
        return False
    s, d, pads = list(a["stride"]), list(a["dilation"]), list(a["pads"])
    last = list(range(1, n + 1))
    xh = e.op("Transpose", [x], perm=[0] + [i + 1 for i in last] + [1])  # [N, *S, C]
    if any(pads):
        pad = [0] + pads[:n] + [0] + [0] + pads[n:] + [0]
        xh = e.op("Pad", [xh, _i64(e, pad)])
    axes = _i64(e, last)
    steps = _i64(e, s)
    cols = []
    for off in itertools.product(*(range(kk) for kk in k)):
        starts = [o * di for o, di in zip(off, d)]
        ends = [st + si * (so - 1) + 1 for st, si, so in zip(starts, s, out_sp)]
        cols.append(e.op("Slice", [xh, _i64(e, starts), _i64(e, ends), axes, steps]))
    col = e.op("Concat", cols, axis=n + 1) if len(cols) > 1 else cols[0]  # [N, *So, K*C]
    col = e.op("Reshape", [col, _i64(e, [-1, windows * cin])])
    gt = e.op("Transpose", [g], perm=[1, 0] + [i + 1 for i in last])  # [Co, N, *So]
    gt = e.op("Reshape", [gt, _i64(e, [cout, -1])])
    w = e.op("MatMul", [gt, col])  # [Co, K*C]
    w = e.op("Reshape", [w, _i64(e, [cout] + k + [cin])])
    e.op("Transpose", [w], outputs=outs, perm=[0, n + 1] + [i for i in last])
    return True
