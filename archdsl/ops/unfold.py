"""unfold and fold (torch.nn.functional.unfold / fold, nn.Unfold / nn.Fold): im2col and its adjoint col2im.

unfold is a grouped Conv (group = C) with a constant one-hot weight [C*kh*kw, 1, kh, kw]: output channel
c*kh*kw + i*kw + j of group c reads input channel c at kernel offset (i, j) times 1.0, every other tap times 0,
so each output is one input element (exact; torch's channel-major order), then a Reshape to [N, C*kh*kw, L].
fold is the adjoint: a Reshape to [N, C*kh*kw, Lh, Lw] and a grouped ConvTranspose with the same weight, which
adds every block's values back at the positions they came from (overlaps summed). The ConvTranspose's
output_padding is (H + 2p - d(k-1) - 1) mod s, so the output is output_size also where the last stride does
not reach the end. Each is the other's gradient."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, dim_mul, numel
from ._common import float_input, i64, positive, reduce_op, shape_str
from .registry import Attr, OpDef, fail, give_numbers, register
from .shapes import expand, window_out

__all__: list[str] = []

_GEOM = (Attr("dilation", "ints", 1), Attr("padding", "ints", 0), Attr("stride", "ints", 1))


def _geom(name: str, a: dict):
    """(kernel, dilation, padding, stride), each a pair (one number is used for both spatial dims, as torch)."""
    k, d, p, s = (expand(a[n], 2, n) for n in ("kernel_size", "dilation", "padding", "stride"))
    positive(name, a, "kernel_size", "dilation", "stride")
    return k, d, p, s


def _blocks(name: str, size, k: int, d: int, p: int, s: int, axis: str):
    """The number of block positions along one spatial dim: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    eff = d * (k - 1) + 1
    if isinstance(size, int) and size + 2 * p < eff:
        fail(f"{name}: the {axis} block of {eff} (kernel {k}, dilation {d}) is larger than the padded {axis} of "
             f"{size + 2 * p} ({size} + 2*{p} padding); no block fits")
    return window_out(size, k, s, 2 * p, d)


def _grid(name: str, hw, k, d, p, s) -> tuple:
    """(Lh, Lw): the block positions over a height and width."""
    return tuple(_blocks(name, hw[i], k[i], d[i], p[i], s[i], axis) for i, axis in enumerate(("height", "width")))


def _unfold_infer(ins, a):
    x = ins[0]
    float_input("unfold", x)
    windows = ("; torch's Tensor.unfold(-1, size, step), windows along one dim of [N, C, L], is "
               "unsqueeze(x, 2) -> unfold([1, size], stride=[1, step]): [N, C*size, windows]")
    if x.rank not in (3, 4):
        series = ("; torch's Tensor.unfold(-1, size, step) of [N, L] is unsqueeze(x, 1) -> unsqueeze(2) -> "
                  "unfold([1, size], stride=[1, step]): [N, size, windows]") if x.rank == 2 else ""
        fail(f"unfold: expected a rank-4 input [N, C, H, W] (or an unbatched [C, H, W]), got {shape_str(x)}"
             + series)
    k, d, p, s = _geom("unfold", a)
    c = x.shape[-3]
    if not isinstance(c, int):
        unbatched = f" (a rank-3 input is an unbatched [C, H, W], so its C is {c})" if x.rank == 3 else ""
        fail(f"unfold: the channel dim must be a known size (the lowering's one-hot weight has C*kh*kw rows), "
             f"got {c}{unbatched}" + (windows if x.rank == 3 else ""))
    lh, lw = _grid("unfold", x.shape[-2:], k, d, p, s)
    return [x.with_shape(tuple(x.shape[:-3]) + (c * k[0] * k[1], dim_mul(lh, lw)))]


def _fold_infer(ins, a):
    x = ins[0]
    float_input("fold", x)
    if x.rank not in (2, 3):
        fail(f"fold: expected a rank-3 input [N, C*kh*kw, L] (or an unbatched [C*kh*kw, L]), got {shape_str(x)}")
    k, d, p, s = _geom("fold", a)
    out = expand(a["output_size"], 2, "output_size")
    if any(o <= 0 for o in out):
        fail(f"fold: output_size must be positive, got {list(out)}")
    ck, n_blocks = x.shape[-2], x.shape[-1]
    if not isinstance(ck, int) or ck % (k[0] * k[1]):
        fail(f"fold: the channel dim {ck} of {shape_str(x)} must be a known multiple of kh*kw = {k[0] * k[1]} "
             f"(kernel_size {list(k)})")
    lh, lw = _grid("fold", out, k, d, p, s)
    if n_blocks != lh * lw:
        why = "" if isinstance(n_blocks, int) else " (a symbolic block count cannot be checked; give it a number)"
        fail(f"fold: output_size {list(out)} with kernel_size {list(k)}, dilation {list(d)}, padding {list(p)}, "
             f"stride {list(s)} makes {lh}*{lw} = {lh * lw} blocks, but the input {shape_str(x)} has {n_blocks}"
             + why)
    return [x.with_shape(tuple(x.shape[:-2]) + (ck // (k[0] * k[1]),) + tuple(out))]


def _one_hot(c: int, k, dtype) -> np.ndarray:
    """[C*kh*kw, 1, kh, kw]: row c*kh*kw + i*kw + j is 1 at (i, j)."""
    kk = k[0] * k[1]
    w = np.zeros((c * kk, 1, k[0], k[1]), dtype)
    w.reshape(c, kk, kk)[:, np.arange(kk), np.arange(kk)] = 1
    return w


def _wide(e, x: str, t: TensorType):
    """onnxruntime has no bfloat16 Conv/ConvTranspose (and ONNX none below opset 22): bfloat16 is moved in
    float32 (exact: the ops only copy and add)."""
    if t.dtype is DType.bfloat16:
        return e.op("Cast", [x], to=DType.float32.onnx), np.float32
    return x, t.dtype.numpy


def _narrow(e, y: str, t: TensorType, outs) -> None:
    if t.dtype is DType.bfloat16:
        e.op("Cast", [y], outputs=outs, to=t.dtype.onnx)
    else:
        e.op("Identity", [y], outputs=outs)


def _unfold_lower(e, ins, outs, c):
    t, (o,) = c.in_types[0], c.out_types
    k, d, p, s = _geom("unfold", c.attrs)
    x, np_dt = _wide(e, ins[0], t)
    if t.rank == 3:
        x = e.op("Unsqueeze", [x, i64(e, [0])])
    ch = t.shape[-3]
    y = e.op("Conv", [x, e.const(_one_hot(ch, k, np_dt))], kernel_shape=list(k), strides=list(s),
             dilations=list(d), pads=list(p) * 2, group=ch)
    if isinstance(o.shape[-1], int) or t.rank == 3:
        n_blocks = o.shape[-1] if isinstance(o.shape[-1], int) else -1
        shape = i64(e, [ch * k[0] * k[1], n_blocks] if t.rank == 3 else [0, ch * k[0] * k[1], n_blocks])
    else:  # Lh*Lw read from the conv's output: a -1 cannot be resolved in an empty batch
        sizes = e.op("Shape", [y])
        area = reduce_op(e, "ReduceProd", e.op("Slice", [sizes, i64(e, [2]), i64(e, [4])]), [0], 1)
        shape = e.op("Concat", [e.op("Slice", [sizes, i64(e, [0]), i64(e, [2])]), area], axis=0)
    _narrow(e, e.op("Reshape", [y, shape]), t, outs)


def _fold_lower(e, ins, outs, c):
    t, (o,) = c.in_types[0], c.out_types
    k, d, p, s = _geom("fold", c.attrs)
    out = expand(c.attrs["output_size"], 2, "output_size")
    x, np_dt = _wide(e, ins[0], t)
    ch = o.shape[-3]
    lh, lw = _grid("fold", out, k, d, p, s)
    x = e.op("Reshape", [x, i64(e, ([1] if t.rank == 2 else [0]) + [ch * k[0] * k[1], lh, lw])])
    # ConvTranspose makes (L - 1)s - 2p + d(k - 1) + 1 + output_padding: the remainder the blocks leave
    extra = [(out[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) % s[i] for i in range(2)]
    y = e.op("ConvTranspose", [x, e.const(_one_hot(ch, k, np_dt))], kernel_shape=list(k), strides=list(s),
             dilations=list(d), pads=list(p) * 2, output_padding=extra, group=ch)
    if t.rank == 2:
        y = e.op("Reshape", [y, i64(e, [ch, *out])])
    _narrow(e, y, t, outs)


def _settings(a: dict) -> dict:
    return {n: a[n] for n in ("kernel_size", "dilation", "padding", "stride")}


def _unfold_grad(b, c, ins, outs, gouts):
    """fold of the incoming gradient back onto x's spatial size (each x element gets the sum over the blocks
    that copied it)."""
    if gouts[0] is None:
        return [None]
    hw = c.in_types[0].shape[-2:]
    if not all(isinstance(v, int) for v in hw):
        fail(f"unfold: the gradient (a fold onto the input's {list(hw)}) needs known height and width; "
             f"{give_numbers(*hw)}")
    return [b.op("fold", gouts[0], output_size=tuple(hw), **_settings(c.attrs))]


def _fold_grad(b, c, ins, outs, gouts):
    """unfold of the incoming gradient: each block value was added to one output position."""
    if gouts[0] is None:
        return [None]
    return [b.op("unfold", gouts[0], **_settings(c.attrs))]


_DIFF = ("Float inputs only (integers are refused: ONNX Conv has no integer form); bfloat16 is moved in "
         "float32, float16 and float64 go to Conv/ConvTranspose as they are (onnxruntime's CPU has no float64 "
         "Conv: such a model is valid ONNX that other runtimes run). Exact for finite values; unlike torch's "
         "copies, an inf or NaN spreads NaN over its blocks (unfold: every output of each block it lies in; "
         "fold: the whole area of its block), the one-hot weight's zeros times it. "
         "kernel_size, dilation, padding, stride: one number or [h, w], as torch.")

register(OpDef(
    name="unfold", inputs=("x",), category="tensor",
    attrs=(Attr("kernel_size", "ints"),) + _GEOM,
    infer=_unfold_infer, lower=_unfold_lower, grad=_unfold_grad, cost=lambda c: numel(c.out_types[0].shape),
    nonempty=lambda ins, a: range(ins[0].rank - 2, ins[0].rank),
    doc="Sliding blocks as columns (torch.nn.functional.unfold, nn.Unfold, im2col): [N, C, H, W] (or [C, H, W]) "
        "to [N, C*kh*kw, L], row c*kh*kw + i*kw + j, L = Lh*Lw block positions, as torch. Lowered to a grouped "
        "Conv with a constant one-hot weight and a Reshape. C must be known; a symbolic N works, and symbolic "
        "H/W make L a formula (the gradient, a fold onto H, W, needs them known). " + _DIFF,
))

register(OpDef(
    name="fold", inputs=("x",), category="tensor",
    attrs=(Attr("output_size", "ints"), Attr("kernel_size", "ints")) + _GEOM,
    infer=_fold_infer, lower=_fold_lower, grad=_fold_grad, cost=lambda c: numel(c.in_types[0].shape),
    doc="Columns back to an image, overlaps summed (torch.nn.functional.fold, nn.Fold, col2im): [N, C*kh*kw, "
        "L] (or [C*kh*kw, L]) to [N, C, *output_size], the adjoint of unfold. Lowered to a Reshape to [N, "
        "C*kh*kw, Lh, Lw] and a grouped ConvTranspose with the one-hot weight (output_padding takes up a last "
        "stride that does not reach the edge). L must be a number that equals the positions output_size gives "
        "(a symbolic L is refused; torch checks it at run time). " + _DIFF,
))
