"""A 3x3 stride-1 conv in a train step by Winograd's F(m x m, 3x3), m = 4 or 2: (m+2)^2 multiplications per
m x m output tile and channel pair instead of 9 m^2, so its three GEMMs (forward, input and weight gradient)
do 4x (m = 4) or 2.25x (m = 2) fewer flops than the direct im2col GEMMs (conv_train.py).

With a = m + 2, d the a x a input tiles (stride m), g the 3x3 kernels and vec the row-major flattening,
    V = Bk vec(d)  [a*a, T*N, Cin]    U = Gk vec(g)  [a*a, Cout, Cin]    M[t] = V[t] @ U[t]^T  (a*a GEMMs)
    y tiles = Ak M  [m*m, T*N, Cout],  Bk = B^T (x) B^T, Gk = G (x) G, Ak = A^T (x) A^T (Lavin & Gray, 2015).
Activations are laid out [H*W, N*C] (spatial outer), so the tiles are one Gather of whole N*C rows and every
transform is one MatMul by a small constant. The gradients are the transposed maps: dM = Ak^T dy,
dV = dM @ U, dU = dM^T @ V, dw = Gk^T dU, dx = overlap-add of Bk^T dV (ScatterND adds, one per tile parity).

Measured on ResNet-18 (64x64, batch 16, one thread, CPU time per step, timed alternately in one process):
direct GEMMs only 255 ms, F(2x2) where T*N >= 64 226 ms, F(4x4) first then F(2x2) 218 ms. Below 64 rows
(layer4: 16 rows, 512 channels) the small GEMMs and the larger transformed weight lose (275 vs 250 ms).
float32 rounding: F(4x4) gradients are ~2e-6 off float64 against 2e-7 for the direct form (the transforms
have entries up to 8 and 1/24); tests/autodiff/test_conv_train.py bounds it."""

from __future__ import annotations

import numpy as np

from ..ops import Attr, OpDef, fail, register
from ..ops._common import i64 as _i64
from ..types import TensorType, dim_mul
from .kernels import zeros_of

__all__ = ["MIN_TILE_ROWS", "WINOGRAD_TILES", "tile_rows", "winograd_fits"]

MIN_TILE_ROWS = 64  # tiles x batch rows per GEMM below which the direct im2col GEMM is used
WINOGRAD_TILES = (4, 2)  # output tile sizes m tried in order: the first with MIN_TILE_ROWS rows is used

_F23 = ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],  # B^T, G, A^T of F(2, 3)
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]])
_F43 = ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],  # F(4, 3)
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])


def _mats(m: int):
    """Bk [a*a, a*a], Gk [a*a, 9], Ak [m*m, a*a] (a = m + 2) for F(m x m, 3x3)."""
    bt, g, at = (np.array(v, dtype=np.float64) for v in {2: _F23, 4: _F43}[m])
    return np.kron(bt, bt), np.kron(g, g), np.kron(at, at)


def _f(e, a, t: TensorType):
    return e.const(np.ascontiguousarray(a).astype(t.dtype.numpy))


def winograd_fits(x_t: TensorType, w_shape, attrs_k, stride, dilation, groups) -> bool:
    """3x3, stride 1, known sizes; float32/float64 only (the transforms' rounding is too coarse for 16 bits)."""
    return (x_t.rank == 4 and x_t.dtype.label in ("float32", "float64") and groups == 1
            and tuple(attrs_k) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and all(isinstance(d, int) for d in x_t.shape[1:]))


def _tiles(size, pads, m):
    """Output size and tile counts per spatial dim."""
    out = [size[i] + pads[i] + pads[2 + i] - 2 for i in range(2)]
    return out, [-(-o // m) for o in out]


def _tile_index(size, pads, m) -> np.ndarray:
    """[a*a * T] flat input position of tile element (i, j) of tile (ta, tb); H*W (a zero row) outside x."""
    out, (th, tw) = _tiles(size, pads, m)
    al = m + 2
    i = np.arange(al).reshape(al, 1, 1, 1)
    j = np.arange(al).reshape(1, al, 1, 1)
    a = np.arange(th).reshape(1, 1, th, 1)
    b = np.arange(tw).reshape(1, 1, 1, tw)
    r, c = m * a + i - pads[0], m * b + j - pads[1]
    inside = (r >= 0) & (r < size[0]) & (c >= 0) & (c < size[1])
    return np.where(inside, r * size[1] + c, size[0] * size[1]).reshape(-1)


def _hw_rows(e, x, t: TensorType):
    """x [N, C, H, W] as [H*W, N*C] plus one zero row."""
    n_, c, h, w = t.shape
    xr = e.op("Reshape", [e.op("Transpose", [x], perm=[2, 3, 0, 1]), _i64(e, [h * w, -1])])
    return e.op("Pad", [xr, _i64(e, [0, 0, 1, 0])])


# ---- forward: (y, V, U) ----
def _wino_infer(ins, a):
    x, w = ins[0], ins[1]
    m = a["m"]
    out, (th, tw) = _tiles(x.shape[2:], a["pads"], m)
    if any(o <= 0 for o in out):
        fail("conv: the output would be empty")
    rows = dim_mul(x.shape[0], th * tw)
    aa = (m + 2) ** 2
    return [x.with_shape((x.shape[0], w.shape[0]) + tuple(out)), x.with_shape((aa, rows, x.shape[1])),
            x.with_shape((aa, w.shape[0], x.shape[1]))]


def _wino_lower(e, ins, outs, c):
    x, w = ins[0], ins[1]
    x_t, w_t = c.in_types[0], c.in_types[1]
    cin, cout = x_t.shape[1], w_t.shape[0]
    size, pads, m = list(x_t.shape[2:]), list(c.attrs["pads"]), c.attrs["m"]
    aa = (m + 2) ** 2
    bk, gk, ak = _mats(m)
    out, (th, tw) = _tiles(size, pads, m)
    d = e.op("Gather", [_hw_rows(e, x, x_t), e.const(_tile_index(size, pads, m))], axis=0)  # [a*a*T, N*C]
    d = e.op("Reshape", [d, _i64(e, [aa, -1])])
    v = e.op("MatMul", [_f(e, bk, x_t), d])  # [a*a, T*N*C]
    e.op("Reshape", [v, _i64(e, [aa, -1, cin])], outputs=[outs[1]])
    # U as [16, Co, C]: Gk @ w[Co*C, 9]^T and V @ U^T are GEMMs with a transposed operand, which onnxruntime
    # fuses (FusedMatMul); an explicit Transpose of the weight ([Co, C, 3, 3] -> [3, 3, C, Co]) measured
    # 3.5 ms per 256x256 layer, more than the GEMM it feeds.
    w2 = e.op("Reshape", [w, _i64(e, [-1, 9])])
    u = e.op("MatMul", [_f(e, gk, x_t), e.op("Transpose", [w2], perm=[1, 0])])  # [a*a, Co*C]
    e.op("Reshape", [u, _i64(e, [aa, cout, cin])], outputs=[outs[2]])
    prod = e.op("MatMul", [outs[1], e.op("Transpose", [outs[2]], perm=[0, 2, 1])])  # [a*a, T*N, Co]
    y = e.op("MatMul", [_f(e, ak, x_t), e.op("Reshape", [prod, _i64(e, [aa, -1])])])  # [m*m, T*N*Co]
    y = e.op("Reshape", [y, _i64(e, [m, m, th, tw, -1])])
    # two Transposes: [th, m, tw, m, N*Co] (whole rows move), then to NCHW. One 6-d Transpose to
    # [N, Co, th, m, tw, m] (the tile column innermost) and its mirror in conv_wino_dm measured 11 ms more
    # per ResNet-18 step (204 vs 193 ms).
    y = e.op("Reshape", [e.op("Transpose", [y], perm=[2, 0, 3, 1, 4]), _i64(e, [m * th * m * tw, -1, cout])])
    y = e.op("Reshape", [e.op("Transpose", [y], perm=[1, 2, 0]), _i64(e, [-1, cout, m * th, m * tw])])
    if out != [m * th, m * tw]:
        y = e.op("Slice", [y, _i64(e, [0, 0]), _i64(e, out), _i64(e, [2, 3])])
    if len(ins) > 2:
        y = e.op("Add", [y, e.op("Reshape", [ins[2], _i64(e, [1, cout, 1, 1])])])
    e.op("Identity", [y], outputs=[outs[0]])


def _wino_grad(b, c, ins, outs, gouts):
    g = gouts[0]
    if g is None:
        return [None] * len(ins)
    res = [None] * len(ins)
    m = c.attrs["m"]
    dm = b.op("autodiff.conv_wino_dm", g, m=m)
    if b.needs(0):
        res[0] = b.op("autodiff.conv_wino_dx", dm, outs[2], input_shape=tuple(c.in_types[0].shape[2:]),
                      batch=c.in_types[0].shape[0], pads=c.attrs["pads"], m=m)
    if b.needs(1):
        res[1] = b.op("autodiff.conv_wino_dw", outs[1], dm, m=m)
    if len(ins) > 2 and b.needs(2):
        res[2] = b.op("sum", g, dim=(0, 2, 3))
    return res


def _internal(name, inputs, infer, lower, attrs=(), doc="", grad=None):
    register(OpDef(name=f"autodiff.{name}", inputs=inputs, attrs=tuple(attrs), infer=infer, lower=lower,
                   cost=lambda c: 0, category="internal", doc=doc, grad=grad))


_M = Attr("m", "int", 2)
_internal("conv_wino", ("x", "w", "bias?"), _wino_infer, _wino_lower, (Attr("pads", "any"), _M), grad=_wino_grad,
          doc="a 3x3 stride-1 conv by Winograd F(m x m, 3x3), m = 2 or 4; outputs y, the transformed input tiles "
              "V and the transformed kernels U (kept for the gradients)")


# ---- gradients ----
def _dm_infer(ins, a):
    g, m = ins[0], a["m"]
    th, tw = (-(-g.shape[2] // m), -(-g.shape[3] // m))
    return [g.with_shape(((m + 2) ** 2, dim_mul(g.shape[0], th * tw), g.shape[1]))]


def _dm_lower(e, ins, outs, c):
    """dM = Ak^T dy tiles: dy [N, Co, H, W] -> [m, m, th, tw, N, Co] -> [a*a, T*N, Co]."""
    g_t, m = c.in_types[0], c.attrs["m"]
    cout, h, w = g_t.shape[1:]
    th, tw = -(-h // m), -(-w // m)
    g = ins[0]
    if (h, w) != (m * th, m * tw):
        g = e.op("Pad", [g, _i64(e, [0, 0, 0, 0, 0, 0, m * th - h, m * tw - w])])
    g = e.op("Reshape", [g, _i64(e, [-1, cout, m * th * m * tw])])
    g = e.op("Reshape", [e.op("Transpose", [g], perm=[2, 0, 1]), _i64(e, [th, m, tw, m, -1])])  # HW(NC)
    g = e.op("Transpose", [g], perm=[1, 3, 0, 2, 4])  # [m, m, th, tw, N*Co]
    dm = e.op("MatMul", [_f(e, _mats(m)[2].T, g_t), e.op("Reshape", [g, _i64(e, [m * m, -1])])])
    e.op("Reshape", [dm, _i64(e, [(m + 2) ** 2, -1, cout])], outputs=outs)


_internal("conv_wino_dm", ("g",), _dm_infer, _dm_lower, (_M,),
          doc="gradient of conv_wino wrt its tile products M")


def _dw_lower(e, ins, outs, c):
    v, dm = ins
    cin, cout = c.in_types[0].shape[2], c.in_types[1].shape[2]
    aa = c.in_types[0].shape[0]
    du = e.op("MatMul", [e.op("Transpose", [dm], perm=[0, 2, 1]), v])  # [a*a, Co, C]
    du = e.op("Transpose", [e.op("Reshape", [du, _i64(e, [aa, -1])])], perm=[1, 0])  # fused into the MatMul
    dg = e.op("MatMul", [du, _f(e, _mats(c.attrs["m"])[1], c.in_types[0])])  # [Co*C, 9]
    e.op("Reshape", [dg, _i64(e, [cout, cin, 3, 3])], outputs=outs)


_internal("conv_wino_dw", ("v", "dm"), lambda ins, a: [ins[0].with_shape((ins[1].shape[2], ins[0].shape[2], 3, 3))],
          _dw_lower, (_M,), doc="weight gradient of conv_wino: Gk^T (V^T @ dM)")


def _dx_lower(e, ins, outs, c):
    """Overlap-add of the tiles: ScatterND (reduction add) of the rows of dd onto [H*W, N*C] zeros in four
    calls, one per part of the tile: rows i < m or not, columns j < m or not. Within a part no two tiles
    meet, so no call has a repeated target (onnxruntime runs a ScatterND's rows in parallel with no guard for
    repeats: reduction add then loses updates), and each position sums its tiles in a fixed order. Tile rows
    outside x are left out. Measured 0.49 ms against 1.1-1.4 ms for a Gather of the <= 4 rows per position
    and a ReduceSum (layer1 of ResNet-18)."""
    dm, u = ins
    t = c.in_types[0]
    cin = c.in_types[1].shape[2]
    size, pads, m = list(c.attrs["input_shape"]), list(c.attrs["pads"]), c.attrs["m"]
    a = m + 2
    dv = e.op("MatMul", [dm, u])  # [a*a, T*N, C]
    dd = e.op("MatMul", [_f(e, _mats(m)[0].T, t), e.op("Reshape", [dv, _i64(e, [a * a, -1])])])  # [a*a, T*N*C]
    idx = _tile_index(size, pads, m)  # row r of dd (as [a*a*T, N*C]) came from input position idx[r]
    hw = size[0] * size[1]
    _, (th, tw) = _tiles(size, pads, m)
    part_of = np.broadcast_to((np.arange(a).reshape(a, 1) >= m) * 2 + (np.arange(a) >= m), (th, tw, a, a))
    part_of = part_of.transpose(2, 3, 0, 1).reshape(-1)  # per row (i, j, ta, tb): 2 * (i >= m) + (j >= m)
    dd = e.op("Reshape", [dd, _i64(e, [idx.size, -1])])
    row = e.op("Shape", [dd], start=1, end=2)
    dx = zeros_of(e, e.op("Concat", [_i64(e, [hw]), row], axis=0), t.dtype)
    for p in range(4):
        rows = np.nonzero((part_of == p) & (idx < hw))[0]
        if rows.size:
            part = e.op("Gather", [dd, e.const(rows.astype(np.int64))], axis=0)
            dx = e.op("ScatterND", [dx, e.const(idx[rows].reshape(-1, 1)), part], reduction="add")
    dx = e.op("Reshape", [dx, _i64(e, size + [-1, cin])])
    e.op("Transpose", [dx], outputs=outs, perm=[2, 3, 0, 1])


_internal("conv_wino_dx", ("dm", "u"),
          lambda ins, a: [ins[1].with_shape((a["batch"], ins[1].shape[2]) + tuple(a["input_shape"]))],
          _dx_lower, (Attr("input_shape", "any"), Attr("batch", "any"), Attr("pads", "any"), _M),
          doc="input gradient of conv_wino: overlap-add of the tiles Bk^T (dM @ U^T)")


def tile_rows(x_t: TensorType, pads, m: int, batch_guess: int = 32) -> int:
    _, (th, tw) = _tiles(x_t.shape[2:], pads, m)
    n = x_t.shape[0] if isinstance(x_t.shape[0], int) else batch_guess
    return n * th * tw

