"""grid_sample and affine_grid (torch.nn.functional's): sampling an image at computed coordinates, as spatial
transformers, optical-flow warps and deformable sampling do.

grid_sample lowers to ONNX GridSample, which onnxruntime computes as torch does at points within a few million
pixels (the grid clipped to [-8, 8] first, where every farther point samples alike, but for reflection) and
finite ones (torch's NaN for a NaN or infinite point added where torch gives it); its gradient
(bilinear and nearest) is an internal op written out in ONNX: the four corners' weights scattered back into
the image, their differences into the grid. affine_grid is a MatMul of the transform with a constant grid."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType
from ._common import float_input, narrow_into, reduce_op, shape_str, wide_np, wide_outputs, widen
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register

_MODES = ("bilinear", "nearest", "bicubic")
_PADDING = ("zeros", "border", "reflection")


def _grid_sample_infer(ins, a):
    x, grid = ins
    float_input("grid_sample", x)
    if x.rank != 4:
        fail(f"grid_sample: expected an image [N, C, H, W], got {shape_str(x)} (volumes, [N, C, D, H, W], are not "
             "supported)")
    if grid.dtype != x.dtype:
        fail(f"grid_sample: the grid is {grid.dtype}, the image {x.dtype}; cast one to the other")
    if grid.rank != 4 or grid.shape[3] != 2:
        fail(f"grid_sample: the grid must be [N, H_out, W_out, 2] (x, y in [-1, 1]), got {shape_str(grid)}")
    if grid.shape[0] != x.shape[0]:
        fail(f"grid_sample: the grid's batch {grid.shape[0]} is not the image's {x.shape[0]}")
    return [TensorType(x.dtype, (x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]))]


def _grid_sample_lower(e, ins, outs, c):
    t = c.out_types[0]
    mode = c.attrs["mode"]
    if e.opset >= 20:  # GridSample 20 renamed the interpolations for N-d
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    x, grid = (widen(e, v, t) for v in ins)  # onnxruntime's CPU GridSample has no 16-bit kernel
    pad = c.attrs["padding_mode"]
    f = wide_np(t)
    carry = c.attrs["mode"] == "bicubic" or pad == "zeros" and c.attrs["mode"] == "bilinear"
    raw = grid
    if pad == "zeros" and c.attrs["mode"] == "nearest":  # torch's nearest takes a NaN point as outside: 0
        grid = e.op("Where", [e.op("IsNaN", [grid]), e.const(np.array(8.0, f)), grid])
    if pad != "reflection":  # past ~2^24 pixels onnxruntime's kernel read wrong pixels (border: 0 or twice the
        # edge; zeros: an edge pixel at 1e20). Every point past 8 samples as 8 does, padding alone or the edge
        grid = e.op("Clip", [grid, e.const(np.array(-8.0, f)), e.const(np.array(8.0, f))])  # (specials hunt)
    y = e.op("GridSample", [x, grid], outputs=None if carry else wide_outputs(t, outs), mode=mode,
             padding_mode=pad, align_corners=int(c.attrs["align_corners"]))
    if carry:  # torch's bicubic, and bilinear with zeros padding, give NaN at a NaN or infinite point, where
        # onnxruntime gave a blend of pixels (inf: 0 or the edge)
        bad = reduce_op(e, "ReduceSum", e.op("Mul", [raw, e.const(np.array(0.0, f))]), [3], 0)  # 0, or NaN
        y = e.op("Add", [y, e.op("Unsqueeze", [bad, _i64(e, [1])])], outputs=wide_outputs(t, outs))
    narrow_into(e, y, t, outs)


def _grid_sample_grad(b, c, ins, outs, gouts):
    if c.attrs["mode"] == "bicubic":
        fail("grid_sample: no gradient for mode=\"bicubic\" (bilinear and nearest have one); train with "
             "mode=\"bilinear\"")
    gx, ggrid = b.op("autodiff.grid_sample_grad", gouts[0], ins[0], ins[1], **c.attrs)
    return [gx if b.needs(0) else None, ggrid if b.needs(1) else None]


register(OpDef(
    name="grid_sample", inputs=("x", "grid"), category="vision",
    attrs=(Attr("mode", "str", "bilinear", choices=_MODES),
           Attr("padding_mode", "str", "zeros", choices=_PADDING),
           Attr("align_corners", "bool", False)),
    infer=_grid_sample_infer, lower=_grid_sample_lower, grad=_grid_sample_grad,
    cost=lambda c: int(np.prod([d if isinstance(d, int) else 1 for d in c.out_types[0].shape])) * 4,
    doc="Sample the image x [N, C, H, W] at the grid's points [N, H_out, W_out, 2] (x then y, -1 and 1 the edges: "
        "the corner pixels' centres with align_corners=true, their outer edges otherwise) into [N, C, H_out, "
        "W_out] (torch.nn.functional.grid_sample, ONNX GridSample). mode: bilinear, nearest "
        "(halves to even) or bicubic; padding_mode, what lies outside: zeros, border (the edge pixel) or "
        "reflection. Gradients to the image and the grid as torch's for bilinear and nearest (none for "
        "bicubic), at any sizes. Float tensors; 16-bit ones sample in float32.",
))


# ---------------- the gradient ----------------

def _coordinate(e, g: str, n: str, a: dict, f):
    """torch's grid_sampler_compute_source_index: the pixel coordinate of a grid value along an axis of n pixels
    (a scalar tensor: a constant, or read from the image's shape at run time), and its derivative with respect
    to that value (the unnormalization's scale times the padding's slope)."""
    k = lambda v: e.const(np.array(v, f))  # noqa: E731
    zero, one = k(0), k(1)
    top = e.op("Sub", [n, one])
    scale = e.op("Mul", [top if a["align_corners"] else n, k(0.5)])
    ix = e.op("Mul", [e.op("Add", [g, one]), scale])
    if not a["align_corners"]:
        ix = e.op("Sub", [ix, k(0.5)])
    slope = scale
    if a["mode"] == "nearest" and a["padding_mode"] == "reflection":  # onnxruntime's forward rounds, then
        ix = e.op("Round", [ix])  # reflects (torch's the reverse): the gradient goes to the pixel it read
    if a["padding_mode"] == "reflection":  # over [0, n - 1] with align_corners, else [-0.5, n - 0.5]
        lo, span = (zero, top) if a["align_corners"] else (k(-0.5), n)
        d = e.op("Sub", [ix, lo])
        sign = e.op("Where", [e.op("Less", [d, zero]), k(-1), one])
        d = e.op("Abs", [d])
        empty = e.op("Equal", [span, zero])  # one pixel with align_corners: every coordinate reflects to 0
        safe = e.op("Where", [empty, one, span])
        extra = e.op("Mod", [d, safe], fmod=1)
        odd = e.op("Equal", [e.op("Mod", [e.op("Floor", [e.op("Div", [d, safe])]), k(2)], fmod=1), one])
        ix = e.op("Where", [odd, e.op("Sub", [e.op("Add", [span, lo]), extra]), e.op("Add", [extra, lo])])
        ix = e.op("Where", [empty, zero, ix])
        sign = e.op("Where", [odd, e.op("Neg", [sign]), sign])
        slope = e.op("Mul", [slope, e.op("Where", [empty, zero, sign])])
    if a["padding_mode"] in ("border", "reflection"):  # clipped into the image: no slope where it was clipped
        inside = e.op("And", [e.op("Greater", [ix, zero]), e.op("Less", [ix, top])])
        slope = e.op("Mul", [slope, e.op("Cast", [inside], to=_onnx(f))])
        ix = e.op("Min", [e.op("Max", [ix, zero]), top])
    return ix, slope


def _onnx(f) -> int:
    return DType.float64.onnx if f is np.float64 else DType.float32.onnx


def _corner(e, iy: str, ix: str, h: str, w: str, f):
    """A corner's flat index y * W + x (clipped into the image) and whether it lies inside (1 or 0); h and w
    are the image's sizes as scalar tensors."""
    zero, one = e.const(np.array(0, f)), e.const(np.array(1, f))
    h1, w1 = e.op("Sub", [h, one]), e.op("Sub", [w, one])
    inside = e.op("And", [e.op("And", [e.op("GreaterOrEqual", [ix, zero]), e.op("LessOrEqual", [ix, w1])]),
                          e.op("And", [e.op("GreaterOrEqual", [iy, zero]), e.op("LessOrEqual", [iy, h1])])])
    cx = e.op("Min", [e.op("Max", [ix, zero]), w1])
    cy = e.op("Min", [e.op("Max", [iy, zero]), h1])
    flat = e.op("Cast", [e.op("Add", [e.op("Mul", [cy, w]), cx])], to=DType.int64.onnx)
    return flat, e.op("Cast", [inside], to=_onnx(f))


def _size(e, x: str, t: TensorType, axis: int, f) -> str:
    """The image's size along an axis as a float scalar: a constant when known, else read from its shape."""
    d = t.shape[axis]
    if isinstance(d, int):
        return e.const(np.array(d, f))
    return e.op("Cast", [e.op("Squeeze", [e.op("Shape", [x], start=axis, end=axis + 1), _i64(e, [0])])],
                to=_onnx(f))


def _grid_sample_grad_lower(e, ins, outs, c):
    g, x, grid = ins
    tx, tg = c.in_types[1], c.in_types[2]
    f = wide_np(tx)
    g, x, grid = (widen(e, v, tx) for v in (g, x, grid))
    h, w = _size(e, x, tx, 2, f), _size(e, x, tx, 3, f)
    flat_g = e.op("Reshape", [g, _i64(e, [0, 0, -1])])                        # [N, C, P], P = H_out * W_out
    flat_x = e.op("Reshape", [x, _i64(e, [0, 0, -1])])                        # [N, C, H * W]
    coords = e.op("Reshape", [grid, _i64(e, [0, 1, -1, 2])])                 # [N, 1, P, 2]
    gx = e.op("Squeeze", [e.op("Slice", [coords, _i64(e, [0]), _i64(e, [1]), _i64(e, [3])]), _i64(e, [3])])
    gy = e.op("Squeeze", [e.op("Slice", [coords, _i64(e, [1]), _i64(e, [2]), _i64(e, [3])]), _i64(e, [3])])
    ix, sx = _coordinate(e, gx, w, c.attrs, f)                               # [N, 1, P]
    iy, sy = _coordinate(e, gy, h, c.attrs, f)
    every = e.op("Shape", [flat_g])

    def spread(v):  # [N, 1, P] over the channels
        return e.op("Expand", [v, every])

    zeros = e.op("Expand", [e.const(np.zeros((), f)), e.op("Shape", [flat_x])])
    if c.attrs["mode"] == "nearest":
        flat, inside = _corner(e, e.op("Round", [iy]), e.op("Round", [ix]), h, w, f)
        upd = e.op("Mul", [flat_g, inside])
        dx = e.op("ScatterElements", [zeros, spread(flat), upd], axis=2, reduction="add")
        dgrid = e.op("Expand", [e.const(np.zeros((), f)), e.op("Shape", [grid])])  # torch's: no slope
    else:
        x0, y0 = e.op("Floor", [ix]), e.op("Floor", [iy])
        one = e.const(np.array(1, f))
        x1, y1 = e.op("Add", [x0, one]), e.op("Add", [y0, one])
        wx1, wy1 = e.op("Sub", [ix, x0]), e.op("Sub", [iy, y0])
        wx0, wy0 = e.op("Sub", [one, wx1]), e.op("Sub", [one, wy1])
        corners = {}
        for name, (cy, cx, wgt) in {"00": (y0, x0, e.op("Mul", [wy0, wx0])), "01": (y0, x1, e.op("Mul", [wy0, wx1])),
                                    "10": (y1, x0, e.op("Mul", [wy1, wx0])),
                                    "11": (y1, x1, e.op("Mul", [wy1, wx1]))}.items():
            flat, inside = _corner(e, cy, cx, h, w, f)
            idx = spread(flat)
            value = e.op("Mul", [e.op("GatherElements", [flat_x, idx], axis=2), inside])   # 0 outside the image
            corners[name] = (idx, e.op("Mul", [wgt, inside]), value)
        dx = e.op("ScatterElements", [
            zeros, e.op("Concat", [corners[k][0] for k in corners], axis=2),
            e.op("Concat", [e.op("Mul", [flat_g, corners[k][1]]) for k in corners], axis=2)], axis=2, reduction="add")
        v = {k: corners[k][2] for k in corners}
        dvx = e.op("Add", [e.op("Mul", [e.op("Sub", [v["01"], v["00"]]), wy0]),
                           e.op("Mul", [e.op("Sub", [v["11"], v["10"]]), wy1])])
        dvy = e.op("Add", [e.op("Mul", [e.op("Sub", [v["10"], v["00"]]), wx0]),
                           e.op("Mul", [e.op("Sub", [v["11"], v["01"]]), wx1])])
        gix = e.op("Mul", [e.op("ReduceSum", [e.op("Mul", [flat_g, dvx]), _i64(e, [1])], keepdims=1), sx])
        giy = e.op("Mul", [e.op("ReduceSum", [e.op("Mul", [flat_g, dvy]), _i64(e, [1])], keepdims=1), sy])
        dgrid = e.op("Reshape", [e.op("Concat", [e.op("Unsqueeze", [gix, _i64(e, [3])]),
                                                 e.op("Unsqueeze", [giy, _i64(e, [3])])], axis=3),
                                 e.op("Shape", [grid])])
    narrow_into(e, e.op("Reshape", [dx, e.op("Shape", [x])], outputs=wide_outputs(tx, outs[:1])), tx, outs[:1])
    narrow_into(e, e.op("Identity", [dgrid], outputs=wide_outputs(tg, outs[1:])), tg, outs[1:])


register(OpDef(
    name="autodiff.grid_sample_grad", inputs=("g", "x", "grid"), category="internal",
    attrs=(Attr("mode", "str"), Attr("padding_mode", "str"), Attr("align_corners", "bool")),
    infer=lambda ins, a: [ins[1], ins[2]], lower=_grid_sample_grad_lower, cost=lambda c: 0,
    doc="grid_sample's gradients to the image and the grid (bilinear, nearest)",
))


# ---------------- affine_grid ----------------

def _base_grid(h: int, w: int, align: bool, f) -> np.ndarray:
    """[H * W, 3]: each output pixel's (x, y, 1) in [-1, 1] coordinates, row by row (torch's linspace, scaled
    by (n - 1) / n without align_corners)."""
    def axis(n):
        v = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        return v if align else v * (n - 1) / n
    ys, xs = np.meshgrid(axis(h), axis(w), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)], axis=1).astype(f)


def _affine_size(theta: TensorType, a: dict) -> tuple[int, int]:
    size = a["size"]
    if len(size) != 4:
        fail(f"affine_grid: size is [N, C, H, W] as torch's, got {list(size)} (volumes, [N, C, D, H, W], are not "
             "supported)")
    h, w = size[2], size[3]
    if not (isinstance(h, int) and isinstance(w, int)) or h < 1 or w < 1:
        fail(f"affine_grid: the output height and width must be positive numbers, got {h} and {w}")
    if size[0] != theta.shape[0]:  # a fixed 2 beside theta's B ran at any B, where torch raises (review96 hunt)
        fail(f"affine_grid: size's batch {size[0]} is not theta's {theta.shape[0]}"
             + (f": write {theta.shape[0]} (the batch it takes at run time)" if not isinstance(theta.shape[0], int)
                else ""))
    return h, w


def _affine_infer(ins, a):
    theta = ins[0]
    float_input("affine_grid", theta)
    if theta.rank != 3 or tuple(theta.shape[1:]) != (2, 3):
        fail(f"affine_grid: theta must be [N, 2, 3] (one 2-D affine transform per image), got {shape_str(theta)}")
    h, w = _affine_size(theta, a)
    return [TensorType(theta.dtype, (theta.shape[0], h, w, 2))]


def _affine_lower(e, ins, outs, c):
    t = c.in_types[0]
    h, w = _affine_size(t, c.attrs)
    base = e.const(_base_grid(h, w, c.attrs["align_corners"], t.dtype.numpy))          # [H * W, 3]
    grid = e.op("MatMul", [base, e.op("Transpose", ins, perm=[0, 2, 1])])               # [N, H * W, 2]
    e.op("Reshape", [grid, _i64(e, [0, h, w, 2])], outputs=outs)


def _affine_grad(b, c, ins, outs, gouts):
    """Linear in theta: g [N, H, W, 2] read as [N, H * W, 2], transposed, times the constant grid."""
    t = c.in_types[0]
    h, w = _affine_size(t, c.attrs)
    g = b.op("reshape", gouts[0], shape=(t.shape[0], h * w, 2))
    return [b.op("matmul", b.op("transpose", g, dim0=1, dim1=2),
                 b.const(_base_grid(h, w, c.attrs["align_corners"], np.float64), like=ins[0]))]


register(OpDef(
    name="affine_grid", inputs=("theta",), category="vision",
    attrs=(Attr("size", "dims", doc="[N, C, H, W] of the output image"), Attr("align_corners", "bool", False)),
    infer=_affine_infer, lower=_affine_lower, grad=_affine_grad,
    cost=lambda c: 6 * int(np.prod([d if isinstance(d, int) else 1 for d in c.out_types[0].shape[:3]])),
    doc="The sampling grid [N, H, W, 2] of one 2-D affine transform per image, theta [N, 2, 3], for grid_sample "
        "(torch.nn.functional.affine_grid): each output pixel's (x, y, 1) in [-1, 1] coordinates times theta's "
        "rows; size = [N, C, H, W] as torch's (H and W numbers; N may be a symbol), align_corners as "
        "grid_sample's. A MatMul with a constant grid; the gradient to theta is exact.",
))
