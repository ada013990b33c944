"""Convolution in a train step as matrix products in channels-last layout (im2col), with its gradients.

onnxruntime's CPU Conv takes a weight that is a graph input (as every trained weight is) on its generic
path: per image, an im2col and a GEMM of [Cout, K*Cin] by [K*Cin, P]; with few output positions per image
(deep ResNet layers: P = 4) that streams the whole weight once per image. Its ConvTranspose (the input
gradient) is slower still. Measured on ResNet-18 (64x64, batch 16, 1 thread, CPU time): Conv 86 ms,
ConvTranspose 125 ms, against ~3 ms for one [N*P, K*Cin] x [K*Cin, Cout] MatMul per layer and direction.

So a conv that trains is rewritten (train_mode.TRAIN_FORMS) to `autodiff.conv_gemm` (3x3 stride-1 convs
with enough output tiles take Winograd instead, conv_winograd.py):
    col = the K shifted windows of x (NHWC rows, one Gather)        [N*P, K*Cin]
    y   = col @ w'^T (+ bias)    (w' = w with columns in col's order) [N*P, Cout]
its second output `col` is kept for the weight gradient, gw = gy^T @ col, and the input gradient is
dcol = gy @ w' summed back onto x's grid (col2im: a Gather of the rows reading each position, a ReduceSum).
Every GEMM is one large MatMul/Gemm that MLAS runs near peak regardless of where the weight comes from. The
ResNet-18 step went from 369 to ~290 ms with this form alone."""

from __future__ import annotations

import math

import numpy as np

from ..ops import Attr, OpDef, fail, register
from ..ops._common import i64 as _i64
from ..types import TensorType, dim_mul

__all__ = ["MIN_CHANNELS", "conv_gemm_fits"]

MIN_CHANNELS = 16  # fewer input channels: the window rows are strided copies of a few values (measured slower)
MAX_COL_FLOATS_PER_EXAMPLE = 1 << 21  # K * Cin * (input positions) floats (8 MiB) per example: col is kept


def conv_gemm_fits(x_t: TensorType, w_shape, groups: int) -> bool:
    """Whether a conv of this input takes the GEMM form (else it trains on the Conv lowering)."""
    if groups != 1 or not all(isinstance(d, int) for d in x_t.shape[1:]):
        return False
    cin, k = x_t.shape[1], w_shape[2:]
    return cin >= MIN_CHANNELS and math.prod(k) * cin * math.prod(x_t.shape[2:]) <= MAX_COL_FLOATS_PER_EXAMPLE


def _geom(a):
    n = len(a["kernel"])
    return n, list(a["kernel"]), list(a["stride"]), list(a["dilation"]), list(a["pads"])


def _out_spatial(spatial, a):
    n, k, s, d, p = _geom(a)
    return [(spatial[i] + p[i] + p[n + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]


def _to_last(e, x, n):
    return e.op("Transpose", [x], perm=[0] + list(range(2, n + 2)) + [1])


def _windows(spatial, a) -> np.ndarray:
    """[P, K] flat input position read by each (output position, window offset); prod(spatial) (a zero row
    appended to x) where the window reads padding."""
    n, k, s, d, p = _geom(a)
    so = _out_spatial(spatial, a)
    pos = np.zeros((math.prod(so), math.prod(k)), dtype=np.int64)
    inside = np.ones_like(pos, dtype=bool)
    for i in range(n):
        o = np.arange(so[i]).reshape([-1 if j == i else 1 for j in range(n)] + [1] * n)
        w = np.arange(k[i]).reshape([1] * n + [-1 if j == i else 1 for j in range(n)])
        r = np.broadcast_to(o * s[i] + w * d[i] - p[i], tuple(so) + tuple(k)).reshape(pos.shape)
        inside &= (r >= 0) & (r < spatial[i])
        pos = pos * spatial[i] + np.clip(r, 0, spatial[i] - 1)
    return np.where(inside, pos, math.prod(spatial))


def _pad_row(e, t, rank_axis):
    """One zero row appended along axis 1 of a rank-3 tensor (what Gather reads for padding)."""
    return e.op("Pad", [t, _i64(e, [0, 0, 0, 0, 1, 0])]) if rank_axis else t


def _ck(e, t, k: int, c: int, to_ck: bool):
    """Rows [.., K*C] <-> [.., C*K] (window-major <-> channel-major)."""
    shape = [-1, k, c] if to_ck else [-1, c, k]
    t = e.op("Transpose", [e.op("Reshape", [t, _i64(e, shape)])], perm=[0, 2, 1])
    return e.op("Reshape", [t, _i64(e, [-1, k * c])])


def _w_rows(e, w, n, cout, order, kk):
    """w [Cout, Cin, *k] as [Cout, K*Cin] in the column order of col (a transpose only for "kc")."""
    if order == "kc" and kk > 1:
        w = e.op("Transpose", [w], perm=[0] + list(range(2, n + 2)) + [1])
    return e.op("Reshape", [w, _i64(e, [cout, -1])])


# ---- forward ----
def _gemm_infer(ins, a):
    x, w = ins[0], ins[1]
    n = len(a["kernel"])
    so = _out_spatial(x.shape[2:], a)
    if len(so) != n or any(v <= 0 for v in so):
        fail("conv: the output would be empty")
    rows = dim_mul(x.shape[0], math.prod(so))
    kc = math.prod(a["kernel"]) * x.shape[1]
    return [x.with_shape((x.shape[0], w.shape[0]) + tuple(so)), x.with_shape((rows, kc))]


def _gemm_lower(e, ins, outs, c):
    """col by one Gather of C-float rows of x (channels-last, flattened, one zero row for padding): measured
    3x faster than K Slices + a Concat on the channel axis. Columns are window-major ("kc": the weight is
    transposed to match) or, where the weight is larger than col (deep layers), channel-major ("ck": col is
    transposed instead and the weight is read as it is)."""
    x, w = ins[0], ins[1]
    x_t, w_t = c.in_types[0], c.in_types[1]
    a = c.attrs
    n, k, s, d, p = _geom(a)
    cin, cout, kk = x_t.shape[1], w_t.shape[0], math.prod(k)
    spatial = list(x_t.shape[2:])
    so = _out_spatial(spatial, a)
    idx = _windows(spatial, a)
    xf = e.op("Reshape", [_to_last(e, x, n), _i64(e, [-1, math.prod(spatial), cin])])
    if kk == 1 and np.array_equal(idx[:, 0], np.arange(math.prod(spatial))):
        col = e.op("Reshape", [xf, _i64(e, [-1, cin])], outputs=[outs[1]])
    else:
        col = e.op("Gather", [_pad_row(e, xf, (idx == math.prod(spatial)).any()), e.const(idx.reshape(-1))], axis=1)
        col = e.op("Reshape", [col, _i64(e, [-1, kk * cin])])
        if a["order"] == "ck" and kk > 1:
            col = _ck(e, col, kk, cin, True)
        e.op("Identity", [col], outputs=[outs[1]])
    y = e.op("Gemm", [outs[1], _w_rows(e, w, n, cout, a["order"], kk)] + ([ins[2]] if len(ins) > 2 else []), transB=1)
    y = e.op("Reshape", [y, _i64(e, [-1] + so + [cout])])
    e.op("Transpose", [y], outputs=[outs[0]], perm=[0, n + 1] + list(range(1, n + 1)))


def _gemm_grad(b, c, ins, outs, gouts):
    g = gouts[0]
    if g is None:
        return [None] * len(ins)
    geom = dict(c.attrs)
    gm = b.op("autodiff.conv_gemm_rows", g)
    res = [None] * len(ins)
    if b.needs(0):
        res[0] = b.op("autodiff.conv_gemm_dx", gm, ins[1], input_shape=tuple(c.in_types[0].shape[2:]),
                      batch=c.in_types[0].shape[0], **geom)
    if b.needs(1):
        res[1] = b.op("autodiff.conv_gemm_dw", gm, outs[1], kernel=geom["kernel"], order=geom["order"])
    if len(ins) > 2 and b.needs(2):
        res[2] = b.op("sum", gm, dim=(0,))
    return res


_GEOM = (Attr("kernel", "any"), Attr("stride", "any"), Attr("dilation", "any"), Attr("pads", "any"),
         Attr("order", "str", "kc"))


def _internal(name, inputs, infer, lower, attrs=(), doc="", grad=None):
    register(OpDef(name=f"autodiff.{name}", inputs=inputs, attrs=tuple(attrs), infer=infer, lower=lower,
                   cost=lambda c: 0, category="internal", doc=doc, grad=grad))


_internal("conv_gemm", ("x", "w", "bias?"), _gemm_infer, _gemm_lower, _GEOM, grad=_gemm_grad,
          doc="a conv as one GEMM over the windows of x in channels-last layout; outputs y and the window "
              "matrix [N*P, K*Cin] (kept for the weight gradient)")


# ---- gradients ----
def _rows_infer(ins, a):
    g = ins[0]
    rows = dim_mul(g.shape[0], math.prod(g.shape[2:]))
    return [g.with_shape((rows, g.shape[1]))]


def _rows_lower(e, ins, outs, c):
    g_t = c.in_types[0]
    gh = _to_last(e, ins[0], g_t.rank - 2)
    e.op("Reshape", [gh, _i64(e, [-1, g_t.shape[1]])], outputs=outs)


_internal("conv_gemm_rows", ("g",), _rows_infer, _rows_lower, doc="g [N, C, *S] as channels-last rows [N*P, C]")


def _dw_infer(ins, a):
    gm, col = ins
    cout, kc = gm.shape[1], col.shape[1]
    kk = math.prod(a["kernel"])
    return [gm.with_shape((cout, kc // kk) + tuple(a["kernel"]))]


def _dw_lower(e, ins, outs, c):
    gm, col = ins
    cout, kc = c.in_types[0].shape[1], c.in_types[1].shape[1]
    k = list(c.attrs["kernel"])
    n = len(k)
    w = e.op("Gemm", [gm, col], transA=1)  # [Cout, K*Cin]
    if c.attrs["order"] == "ck" or math.prod(k) == 1:
        e.op("Reshape", [w, _i64(e, [cout, kc // math.prod(k)] + k)], outputs=outs)
        return
    w = e.op("Reshape", [w, _i64(e, [cout] + k + [kc // math.prod(k)])])
    e.op("Transpose", [w], outputs=outs, perm=[0, n + 1] + list(range(1, n + 1)))


_internal("conv_gemm_dw", ("gm", "col"), _dw_infer, _dw_lower, (Attr("kernel", "any"), Attr("order", "str", "kc")),
          doc="weight gradient of conv_gemm: gm^T @ col, back in [Cout, Cin, *k] layout")


def _dx_infer(ins, a):
    w = ins[1]
    return [w.with_shape((a["batch"], w.shape[1]) + tuple(a["input_shape"]))]


def _dx_lower(e, ins, outs, c):
    """col2im as a gather too: each input position sums the (output position, window) rows of dcol that read
    it. Gather them as [N, J, S, C] (J = the most windows reading one position; missing ones read a zero
    row), then ReduceSum over J. Measured faster than a Pad per window and a Sum (0.07-2.1 ms against
    0.4-2.5 ms on ResNet-18's layers)."""
    gm, w = ins
    w_t = c.in_types[1]
    a = c.attrs
    n, k, s, d, p = _geom(a)
    cout, cin, kk = w_t.shape[0], w_t.shape[1], math.prod(k)
    spatial = list(a["input_shape"])
    S = math.prod(spatial)
    idx = _windows(spatial, a).reshape(-1)  # row p*K + k of dcol reads position idx[p*K + k]
    dcol = e.op("MatMul", [gm, _w_rows(e, w, n, cout, a["order"], kk)])  # [N*P, K*Cin]
    if a["order"] == "ck" and kk > 1:
        dcol = _ck(e, dcol, kk, cin, False)
    order = np.argsort(idx, kind="stable")
    counts = np.bincount(idx, minlength=S + 1)[:S]
    J = int(counts.max())
    table = np.full((J, S), idx.size, dtype=np.int64)  # idx.size: the zero row
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for j in range(J):
        has = counts > j
        table[j, has] = order[starts[has] + j]
    dcol = e.op("Reshape", [dcol, _i64(e, [-1, idx.size, cin])])
    if J == 1 and np.array_equal(table[0], np.arange(S)):
        gx = dcol
    else:
        gx = e.op("Gather", [_pad_row(e, dcol, (table == idx.size).any()), e.const(table.reshape(-1))], axis=1)
        if J > 1:
            gx = e.op("ReduceSum", [e.op("Reshape", [gx, _i64(e, [-1, J, S * cin])]), _i64(e, [1])], keepdims=0)
    gx = e.op("Reshape", [gx, _i64(e, [-1] + spatial + [cin])])
    e.op("Transpose", [gx], outputs=outs, perm=[0, n + 1] + list(range(1, n + 1)))


_internal("conv_gemm_dx", ("gm", "w"), _dx_infer, _dx_lower,
          _GEOM + (Attr("input_shape", "any"), Attr("batch", "any")),
          doc="input gradient of conv_gemm: gm @ w' scattered back onto x's grid (col2im)")
