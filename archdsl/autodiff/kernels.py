"""Helper ops that gradient rules emit but a spec never writes (category "internal", names `autodiff.*`).

Each is a registry op like any other: a shape rule and a lowering to standard ONNX. They exist where a
gradient needs an ONNX op the language does not expose (ConvTranspose, ScatterElements, MaxPool indices...)."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper, numpy_helper

from ..ops import Attr, OpCall, OpDef, fail, get, give_numbers, register
from ..ops._common import i64 as _i64
from ..ops._common import numel_tensor, reshape_like, shape_tensor
from ..ops.more_math import cumsum_infer, cumsum_lower
from ..ops.pool import ceil_end_pads, pad_past_kernel
from ..types import DTYPES, DType, TensorType
from .conv_grad import im2col_weight_grad

__all__ = ["scatter_add", "zeros_of"]


def dims_tensor(e, parts: list) -> str:
    """A shape from parts: ints, or (name, type, axis) for a dim read at run time when it is symbolic."""
    if all(isinstance(p, int) or isinstance(p[1].shape[p[2]], int) for p in parts):
        return _i64(e, [p if isinstance(p, int) else p[1].shape[p[2]] for p in parts])
    pieces = []
    for p in parts:
        if isinstance(p, int) or isinstance(p[1].shape[p[2]], int):
            pieces.append(_i64(e, [p if isinstance(p, int) else p[1].shape[p[2]]]))
        else:
            pieces.append(e.op("Shape", [p[0]], start=p[2], end=p[2] + 1))
    return e.op("Concat", pieces, axis=0)


def zeros_of(e, shape: str, dtype: DType) -> str:
    return e.op("ConstantOfShape", [shape], value=numpy_helper.from_array(np.zeros(1, dtype=dtype.numpy)))


def scatter_add(e, shape: str, idx: str, upd: str, dtype: DType, outputs=None) -> str:
    """zeros(shape) with upd added at idx along axis 0 (ScatterElements, reduction add). onnxruntime's CPU
    kernel has no 16-bit add: float16/bfloat16 gradients are summed in float32 and cast back."""
    wide = DType.float32 if dtype.is_16bit else dtype
    if wide is not dtype:
        upd = e.op("Cast", [upd], to=wide.onnx)
    out = e.op("ScatterElements", [zeros_of(e, shape, wide), idx, upd], axis=0, reduction="add",
               outputs=outputs if wide is dtype else None)
    return out if wide is dtype else e.op("Cast", [out], to=dtype.onnx, outputs=outputs)


def _internal(name, inputs, infer, lower, attrs=(), doc="", grad=None):
    register(OpDef(name=f"autodiff.{name}", inputs=inputs, attrs=tuple(attrs), infer=infer, lower=lower,
                   cost=lambda c: 0, category="internal", doc=doc, grad=grad))


def _same(ins, a):
    return [ins[0]]


# ---- shapes and counts ----
_internal("zeros_like", ("x",), _same, doc="zeros shaped like x",
          lower=lambda e, ins, outs, c: e.op("ConstantOfShape", [shape_tensor(e, ins[0], c.in_types[0])],
                                             outputs=outs, value=numpy_helper.from_array(
                                                 np.zeros(1, dtype=c.in_types[0].dtype.numpy))),
          grad=lambda b, c, ins, outs, gouts: [None])

_internal("reshape_like", ("g", "x"), lambda ins, a: [ins[0].with_shape(ins[1].shape)],
          lower=lambda e, ins, outs, c: reshape_like(e, ins[0], ins[1], c.in_types[1], outs),
          grad=lambda b, c, ins, outs, gouts: [b.reshape_like(gouts[0], ins[0]), None],
          doc="g viewed with x's shape")


def _count_lower(e, ins, outs, c):
    shape = e.op("Shape", [ins[0]])
    if c.attrs["dims"] is not None:
        shape = e.op("Gather", [shape, _i64(e, list(c.attrs["dims"]))], axis=0)
    n = e.op("ReduceProd", [shape], keepdims=0)
    e.op("Cast", [n], outputs=outs, to=DTYPES[c.attrs["dtype"]].onnx)


_internal("count", ("x",), lambda ins, a: [TensorType(DTYPES[a["dtype"]], ())], lower=_count_lower,
          attrs=(Attr("dims", "any", None), Attr("dtype", "str", "float32")),
          grad=lambda b, c, ins, outs, gouts: [None], doc="element count of x over dims, as a float scalar")


# ---- pointwise masks ----
def _zero(e, c, i=0):
    return e.const(np.array(0, dtype=c.in_types[i].dtype.numpy))


def _masked(e, keep, g, c, outs) -> None:
    """g where `keep`, else 0, as torch's masked gradients (a where): a 0/1 mask times g kept an infinite or NaN
    g (sqrt(relu(x)) at x < 0: inf * 0; sqrt(relu(x)) at 0 with 0 arriving: 0/0), which a written-out 1.5-entmax
    trained into NaN where torch's is 0 (crf hunt). onnxruntime's Where takes ~3.6x a Mul's time on its own
    (5.7 vs 1.6 ms on 16x64x32x32 with the comparison), lost in a ResNet-18 step's noise (359 vs 360 ms)."""
    e.op("Where", [keep, g, _zero(e, c, 0)], outputs=outs)


def _relu_grad_lower(e, ins, outs, c):
    """g where not(y <= 0): at y NaN g passes, as torch's threshold_backward gives (review73 hunt)."""
    _masked(e, e.op("Not", [e.op("LessOrEqual", [ins[1], _zero(e, c, 1)])]), ins[0], c, outs)


_internal("relu_grad", ("g", "y"), _same, doc="g where y > 0 (or NaN)", lower=_relu_grad_lower)


def _leaky_lower(e, ins, outs, c):
    slope = e.const(np.array(c.attrs["slope"], dtype=c.in_types[0].dtype.numpy))
    e.op("Where", [e.op("Greater", [ins[1], _zero(e, c, 1)]), ins[0], e.op("Mul", [ins[0], slope])], outputs=outs)


_internal("leaky_relu_grad", ("g", "x"), _same, lower=_leaky_lower, attrs=(Attr("slope", "float"),),
          doc="g where x > 0, else slope * g")


def _window_lower(e, ins, outs, c):
    """g * scale where low < x < high (<= at both ends when closed), else 0 (_masked); an absent bound is no
    limit: clamp's ends are in the window (torch.clamp), hardtanh's and hardsigmoid's are not."""
    g, x = ins
    a, dt = c.attrs, c.in_types[1].dtype
    tests = [("GreaterOrEqual" if a["closed"] else "Greater", a["low"]),
             ("LessOrEqual" if a["closed"] else "Less", a["high"])]
    masks = [e.op(op, [x, e.const(np.array(v, dtype=dt.numpy))]) for op, v in tests if v is not None]
    if a["scale"] != 1.0:
        g = e.op("Mul", [g, e.const(np.array(a["scale"], dtype=c.in_types[0].dtype.numpy))])
    _masked(e, masks[0] if len(masks) == 1 else e.op("And", masks), g, c, outs)


_internal("window_grad", ("g", "x"), _same, lower=_window_lower,
          attrs=(Attr("low", "float?", None), Attr("high", "float?", None), Attr("closed", "bool"),
                 Attr("scale", "float", 1.0)), doc="g * scale where x lies between low and high, else 0")


def _hardswish_lower(e, ins, outs, c):
    """torch's hardswish_backward: 0 where x <= -3, g where x >= 3, else g (x / 3 + 1/2): NaN at NaN, as torch's
    vectorized CPU kernel gives (its scalar tail, under 16 elements, gives g; it gave 0 here)."""
    g, x = ins
    k = lambda v: e.const(np.array(v, dtype=c.in_types[1].dtype.numpy))
    slope = e.op("Add", [e.op("Div", [x, k(3)]), k(0.5)])
    slope = e.op("Where", [e.op("GreaterOrEqual", [x, k(3)]), k(1), slope])
    _masked(e, e.op("Not", [e.op("LessOrEqual", [x, k(-3)])]), e.op("Mul", [g, slope]), c, outs)


_internal("hardswish_grad", ("g", "x"), _same, lower=_hardswish_lower, doc="gradient of hardswish")


def _max_grad_lower(e, ins, outs, c):
    """Share g equally among the elements equal to the max, or the min (torch's amax and amin rule)."""
    g, x, y = ins
    axes = list(c.attrs["dims"])
    if not c.attrs["keepdim"]:
        g = e.op("Unsqueeze", [g, _i64(e, axes)])
        y = e.op("Unsqueeze", [y, _i64(e, axes)])
    m = e.op("Cast", [e.op("Equal", [x, y])], to=c.in_types[1].dtype.onnx)
    cnt = e.op("ReduceSum", [m, _i64(e, axes)], keepdims=1)
    e.op("Mul", [e.op("Div", [g, cnt]), m], outputs=outs)


_internal("max_grad", ("g", "x", "y"), lambda ins, a: [ins[1]], lower=_max_grad_lower,
          attrs=(Attr("dims", "any"), Attr("keepdim", "bool")), doc="gradient of a max or min reduction")


# ---- convolution ----
def _conv_in_infer(ins, a):
    g, w = ins[:2]
    return [g.with_shape((g.shape[0], w.shape[1] * a["groups"]) + tuple(a["input_shape"]))]


def _conv_in_lower(e, ins, outs, c):
    """ConvTranspose of g. The rows a strided conv's last window left out (size - covered, 0..stride-1) come
    back as output_padding; over a symbolic dim that count is known only at run time, so the transposed conv
    pads by stride - 1 (every count) and a Slice cuts it to the forward input's size (`x`, given then):
    output_padding only adds rows at the end, the rows before keep their values."""
    a = c.attrs
    g_t, w_t = c.in_types[:2]
    n = len(a["input_shape"])
    k = w_t.shape[2:]
    out_pad, cut = [], False
    for i in range(n):
        size, so = a["input_shape"][i], g_t.shape[2 + i]
        s, d = a["stride"][i], a["dilation"][i]
        if isinstance(size, int) and isinstance(so, int):
            out_pad.append(size + a["pads"][i] + a["pads"][n + i] - ((so - 1) * s + d * (k[i] - 1) + 1))
        elif s == 1:
            out_pad.append(0)
        elif len(ins) > 2:
            out_pad.append(s - 1)
            cut = True
        else:
            fail(f"internal: conv gradient over the symbolic dim {size} needs the conv's input")
    ct = e.op("ConvTranspose", ins[:2], outputs=None if cut else outs, strides=list(a["stride"]),
              dilations=list(a["dilation"]), pads=list(a["pads"]), group=a["groups"],
              output_padding=out_pad if any(out_pad) else None)
    if cut:
        _cut_to(e, ct, ins[2], n, outs)


def _cut_to(e, wide: str, x: str, n: int, outs) -> None:
    """`wide` [N, C, spatial...] cut to the n spatial sizes of x, read at run time: a transposed conv padded by
    stride - 1 for every remainder a symbolic size may have (output_padding adds rows at the end only)."""
    e.op("Slice", [wide, _i64(e, [0] * n), e.op("Shape", [x], start=2), _i64(e, list(range(2, n + 2)))],
         outputs=outs)


_internal("conv_input_grad", ("g", "w", "x?"), _conv_in_infer, _conv_in_lower,
          attrs=(Attr("input_shape", "any"), Attr("stride", "any"), Attr("dilation", "any"), Attr("pads", "any"),
                 Attr("groups", "int")), doc="gradient of a conv wrt its input (ConvTranspose)")


def _conv_w_infer(ins, a):
    x, g = ins
    return [x.with_shape((g.shape[1], x.shape[1] // a["groups"]) + tuple(a["kernel"]))]


def _conv_w_lower(e, ins, outs, c):
    """One MatMul over the windows of x (conv_grad.py) where that fits; else a Conv of x (batch as channels)
    with g (batch as channels), where stride and dilation trade places."""
    if im2col_weight_grad(e, ins, outs, c):
        return
    a = c.attrs
    x, g = ins
    x_t, g_t = c.in_types
    n = x_t.rank - 2
    G = a["groups"]
    cin, cout = x_t.shape[1], g_t.shape[1]
    sp = list(range(2, n + 2))
    if G == 1:
        xt = e.op("Transpose", [x], perm=[1, 0] + sp)
        gt = e.op("Transpose", [g], perm=[1, 0] + sp)
    else:
        cig, cog = cin // G, cout // G
        xs = e.op("Reshape", [x, dims_tensor(e, [(x, x_t, 0), G, cig] + [(x, x_t, i) for i in sp])])
        xs = e.op("Transpose", [xs], perm=[2, 1, 0] + [i + 1 for i in sp])
        xt = e.op("Reshape", [xs, dims_tensor(e, [cig, -1] + [(x, x_t, i) for i in sp])])
        gs = e.op("Reshape", [g, dims_tensor(e, [(g, g_t, 0), G, cog] + [(g, g_t, i) for i in sp])])
        gs = e.op("Transpose", [gs], perm=[1, 2, 0] + [i + 1 for i in sp])
        gt = e.op("Reshape", [gs, dims_tensor(e, [cout, -1] + [(g, g_t, i) for i in sp])])
    y = e.op("Conv", [xt, gt], strides=list(a["dilation"]), dilations=list(a["stride"]), pads=list(a["pads"]),
             group=G)
    k = list(a["kernel"])
    y = e.op("Slice", [y, _i64(e, [0] * n), _i64(e, k), _i64(e, sp)])
    e.op("Transpose", [y], outputs=outs, perm=[1, 0] + sp)


_internal("conv_weight_grad", ("x", "g"), _conv_w_infer, _conv_w_lower,
          attrs=(Attr("kernel", "any"), Attr("stride", "any"), Attr("dilation", "any"), Attr("pads", "any"),
                 Attr("groups", "int")), doc="gradient of a conv wrt its weight")


# ---- pools ----
def _maxpool_lower(e, ins, outs, c):
    a = c.attrs
    x, g = ins
    x_t = c.in_types[0]
    dilated = any(d != 1 for d in a["dilation"])
    dil = {"dilations": list(a["dilation"])} if dilated else {}
    k, n = list(a["kernel"]), x_t.rank - 2
    dilation = list(a["dilation"]) * (n // len(a["dilation"]))
    begin, pads, ceil = list(a["pads"][:n]), list(a["pads"]), int(a["ceil_mode"])
    ends = ceil_end_pads(x_t.shape, k, a["stride"], begin, dilation, a["ceil_mode"], e.opset)
    padded, over = x, [0] * n
    if ends is not None:  # as the forward's pool: floor windows over torch's end padding below opset 22
        padded, ends, over = pad_past_kernel(e, x, x_t.dtype, k, ends)
        pads, ceil = begin + ends, 0
    pool = {"kernel_shape": k, "strides": list(a["stride"]), "pads": pads, "ceil_mode": ceil, **dil}
    _, idx = e.op("MaxPool", [padded], n_out=2, **pool)
    padding_alone = None
    sizes, pooled = x_t.shape[2:], c.in_types[1].shape[2:]
    if dilated and all(isinstance(v, int) for v in (*sizes, *pooled)):
        padding_alone = _windows_of_padding(sizes, pooled, k, a["stride"], begin, dilation)
    elif dilated:
        # at run-time sizes a pool of zeros finds them: 0 where a window reads the input, the dtype's lowest value
        # where it reads padding alone (review74 hunt)
        reads = e.op("MaxPool", [zeros_of(e, e.op("Shape", [padded]), x_t.dtype)], **pool)
        padding_alone = e.op("Cast", [e.op("Equal", [reads, e.const(np.zeros((), x_t.dtype.numpy))])],
                             to=x_t.dtype.onnx)
    if padding_alone is not None:  # their output is the dtype's lowest, of no input: no gradient
        g = e.op("Mul", [g, padding_alone if isinstance(padding_alone, str) else
                         e.const(padding_alone.astype(x_t.dtype.numpy))])
        idx = e.op("Max", [idx, _i64(e, [0])])  # (onnxruntime's index for them is anything, -5 or another's 3)
    flat, idx = e.op("Reshape", [g, _i64(e, [-1])]), e.op("Reshape", [idx, _i64(e, [-1])])
    if not any(over):
        out = scatter_add(e, numel_tensor(e, x, x_t), idx, flat, x_t.dtype)
        reshape_like(e, out, x, x_t, outs)
        return
    # the indices count the Pad's elements too: scattered over the padded tensor, then its ends cut off
    shape = e.op("Shape", [padded])
    out = scatter_add(e, e.op("ReduceProd", [shape], keepdims=1), idx, flat, x_t.dtype)
    axes = list(range(2, n + 2))
    e.op("Slice", [e.op("Reshape", [out, shape], allowzero=1), _i64(e, [0] * n), _i64(e, list(x_t.shape[2:])),
                   _i64(e, axes)], outputs=outs)


def _windows_of_padding(sizes, out, k, stride, pads, dilation):
    """1 for each window of a dilated max pool with a tap on the input, 0 for one whose taps all fall in the
    padding ([1, 1, *out]), at known sizes; None where every window reads the input (kernel 2 dilated by 3 over 2
    rows padded by 1 reads rows -1 and 2: the gradient went to x[n, c-1, 0, 3], review73 hunt)."""
    keep = np.ones((1, 1), bool)
    for size, o, ki, si, pi, di in zip(sizes, out, k, stride, pads, dilation):
        taps = np.arange(o)[:, None] * si - pi + np.arange(ki)[None, :] * di
        along = ((taps >= 0) & (taps < size)).any(axis=1)
        keep = keep[..., None] & along
    return None if keep.all() else keep


_internal("maxpool_grad", ("x", "g"), lambda ins, a: [ins[0]], _maxpool_lower,
          attrs=(Attr("kernel", "any"), Attr("stride", "any"), Attr("pads", "any"), Attr("ceil_mode", "bool"),
                 Attr("dilation", "any", (1,))),
          doc="gradient of a max pool: g scattered to the argmax of each window")


def _divisors(size: int, out: int, k: int, s: int, p: int, include_pad: bool) -> np.ndarray:
    """torch's avg_pool divisor per output position along one dim."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float64)


def _avgpool_lower(e, ins, outs, c):
    a = c.attrs
    g, _x = ins
    g_t, x_t = c.in_types
    n = x_t.rank - 2
    spatial, osp = x_t.shape[2:], g_t.shape[2:]
    if not isinstance(x_t.shape[1], int):
        fail("avgpool gradient: the channels must be a known size")
    if not all(isinstance(d, int) for d in tuple(spatial) + tuple(osp)):
        _avgpool_symbolic(e, ins, outs, c)
        return
    k, s, p = a["kernel"], a["stride"], a["pads"]
    inv = np.ones((), np.float64)
    for i in range(n):
        d = _divisors(spatial[i], osp[i], k[i], s[i], p[i], a["count_include_pad"])
        inv = np.multiply.outer(inv, 1.0 / d)
    scaled = e.op("Mul", [g, e.const(inv.astype(x_t.dtype.numpy))])
    ch = x_t.shape[1]
    ones = e.const(np.ones((ch, 1) + tuple(k), dtype=x_t.dtype.numpy))
    pb, pe, op = [], [], []
    for i in range(n):
        over = s[i] * (osp[i] - 1) + k[i] - p[i] - spatial[i]
        pb.append(p[i])
        pe.append(max(over, 0))
        op.append(max(-over, 0))
    e.op("ConvTranspose", [scaled, ones], outputs=outs, strides=list(s), pads=pb + pe, group=ch,
         output_padding=op if any(op) else None)


def _avgpool_symbolic(e, ins, outs, c):
    """The same over symbolic sizes, without ceil_mode: each window's divisor is prod(kernel) with padding
    counted, else the count of real positions under it (a Conv of ones, at run time); the transposed conv pads
    by stride - 1 and is cut to x's size, as the conv input gradient does (_conv_in_lower)."""
    a = c.attrs
    g, x = ins
    x_t = c.in_types[1]
    n, dt = x_t.rank - 2, x_t.dtype.numpy
    k, s, p = a["kernel"], a["stride"], a["pads"]
    if a["ceil_mode"]:
        fail(f"avgpool gradient: ceil_mode over a symbolic spatial dim needs known sizes, got {x_t}; "
             f"{give_numbers(*x_t.shape[2:])}, or use ceil_mode=false")
    window = np.ones((1, 1) + tuple(k), dtype=dt)
    if a["count_include_pad"]:
        scaled = e.op("Mul", [g, e.const(np.array(1.0 / math.prod(k), dtype=dt))])
    else:
        shape = e.op("Concat", [_i64(e, [1, 1]), e.op("Shape", [x], start=2)], axis=0)
        real = e.op("ConstantOfShape", [shape], value=helper.make_tensor("one", x_t.dtype.onnx, [1], [1]))
        count = e.op("Conv", [real, e.const(window)], kernel_shape=list(k), strides=list(s), pads=list(p[:n]) * 2)
        scaled = e.op("Div", [g, count])
    ones = e.const(np.ones((x_t.shape[1], 1) + tuple(k), dtype=dt))
    wide = e.op("ConvTranspose", [scaled, ones], strides=list(s), pads=list(p[:n]) * 2, group=x_t.shape[1],
                output_padding=[si - 1 for si in s] if any(si > 1 for si in s) else None)
    _cut_to(e, wide, x, n, outs)


_internal("avgpool_grad", ("g", "x"), lambda ins, a: [ins[1]], _avgpool_lower,
          attrs=(Attr("kernel", "any"), Attr("stride", "any"), Attr("pads", "any"),
                 Attr("count_include_pad", "bool"), Attr("ceil_mode", "bool", False)),
          doc="gradient of an average pool: g over each window's divisor, spread back over the window")


# ---- gathers and slices ----
def _embedding_lower(e, ins, outs, c):
    """ScatterElements (add) of the rows of g at their ids, its index expanded over the row. Not ScatterND:
    onnxruntime runs ScatterND's rows in parallel with no guard for repeated ids, and with 2 threads a
    reduction add then lost updates in every run measured; ScatterElements gave the exact sums."""
    ids, g = ins
    ids_t, g_t = c.in_types
    dim = g_t.shape[-1]
    idx = ids if ids_t.dtype is DType.int64 else e.op("Cast", [ids], to=DType.int64.onnx)
    upd = e.op("Reshape", [g, _i64(e, [-1, dim])])
    column = e.op("Reshape", [idx, _i64(e, [-1, 1])])
    if c.attrs["padding_idx"] is not None:  # the padding row gets no gradient (torch's padding_idx)
        keep = e.op("Not", [e.op("Equal", [column, _i64(e, c.attrs["padding_idx"])])])
        upd = e.op("Mul", [upd, e.op("Cast", [keep], to=g_t.dtype.onnx)])
    idx = e.op("Expand", [column, e.op("Shape", [upd])])
    scatter_add(e, _i64(e, [c.attrs["num_embeddings"], dim]), idx, upd, g_t.dtype, outputs=outs)


_internal("embedding_grad", ("ids", "g"),
          lambda ins, a: [ins[1].with_shape((a["num_embeddings"], ins[1].shape[-1]))], _embedding_lower,
          attrs=(Attr("num_embeddings", "int"), Attr("padding_idx", "int?", None)),
          doc="rows of g summed into a zero table at ids (none at the padding row)")


def _getitem_lower(e, ins, outs, c):
    """Slice a tensor of flat positions the same way, then scatter g back to those positions."""
    g, x = ins
    g_t, x_t = c.in_types
    n = numel_tensor(e, x, x_t)
    flat_pos = e.op("Range", [e.const(np.array(0, np.int64)), e.op("Squeeze", [n]), e.const(np.array(1, np.int64))])
    pos = reshape_like(e, flat_pos, x, x_t)
    sel = f"{outs[0]}/positions"
    call = OpCall((TensorType(DType.int64, x_t.shape),), (TensorType(DType.int64, g_t.shape),),
                  {"index": c.attrs["index"]})
    get("getitem").lower(e, [pos], [sel], call)
    zeros = zeros_of(e, n, x_t.dtype)
    out = e.op("ScatterElements", [zeros, e.op("Reshape", [sel, _i64(e, [-1])]),
                                   e.op("Reshape", [g, _i64(e, [-1])])], axis=0)
    reshape_like(e, out, x, x_t, outs)


_internal("getitem_grad", ("g", "x"), lambda ins, a: [ins[1]], _getitem_lower, attrs=(Attr("index", "any"),),
          doc="gradient of x[...]: g placed back where it was read, zeros elsewhere")


def _concat_grad_lower(e, ins, outs, c):
    g, *xs = ins
    ax = c.attrs["axis"] % c.in_types[0].rank
    sizes = dims_tensor(e, [(x, t, ax) for x, t in zip(xs, c.in_types[1:])])
    if len(xs) == 1:
        e.op("Identity", [g], outputs=outs)
        return
    e.op("Split", [g, sizes], outputs=outs, axis=ax)


_internal("concat_grad", ("g", "*xs"), lambda ins, a: [ins[0].with_shape(x.shape) for x in ins[1:]],
          _concat_grad_lower, attrs=(Attr("axis", "int"),), doc="g split back into the concatenated pieces")


# ---- cumsum ----
_internal("cumsum_reverse", ("g",), cumsum_infer, cumsum_lower(1), attrs=(Attr("dim", "int"),),
          doc="cumsum's gradient: the running sum from the end (ONNX CumSum with reverse=1)",
          grad=lambda b, c, ins, outs, gouts: [b.op("cumsum", gouts[0], dim=c.attrs["dim"])])

