"""upsample: torch.nn.Upsample / F.interpolate over the spatial dims, lowered to ONNX Resize.

Coordinate mappings as torch computes them: nearest = floor(dst / scale) ("asymmetric" + "floor"),
nearest-exact = floor((dst + 0.5) / scale), linear modes and bicubic = "half_pixel" or "align_corners"
(bicubic: Keys' kernel with a = -0.75 over 4 neighbours, edges replicated, as torch's)."""

from __future__ import annotations

import math

import numpy as np

from ..types import Dim, DType, Sym, dim_floordiv, dim_mul, numel
from ._common import float_input, shape_str
from .registry import Attr, OpDef, fail, give_numbers, register, spatial_axes

__all__: list[str] = []

_LINEAR_RANK = {"linear": 3, "bilinear": 4, "trilinear": 5}
_INTERPOLATING = {**_LINEAR_RANK, "bicubic": 4}  # weighted sums of neighbours: align_corners applies
_CUBIC_A = -0.75  # torch's bicubic (and ONNX Resize's cubic_coeff_a default)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plan(x, a, like=None) -> tuple[list | None, list | None]:
    """Per spatial dim: (scales, sizes), exactly one of them given; both None for `like` (its sizes, read at
    run time)."""
    if x.rank < 3:
        fail(f"upsample: expected an input [N, C, spatial...], got {shape_str(x)}")
    n = x.rank - 2
    mode = a["mode"]
    if mode in _INTERPOLATING and x.rank != _INTERPOLATING[mode]:
        fail(f'upsample: mode "{mode}" needs a rank-{_INTERPOLATING[mode]} input, got {shape_str(x)}')
    if a["align_corners"] and mode not in _INTERPOLATING:
        fail(f'upsample: align_corners needs a linear mode (linear, bilinear, trilinear) or bicubic, not "{mode}"')
    sf, size = a["scale_factor"], a["size"]
    if like is not None:
        if sf is not None or size is not None:
            fail("upsample: give one of scale_factor, size and like")
        if like.rank != x.rank:
            fail(f"upsample: like= takes its spatial sizes from a tensor of x's rank {x.rank}, got {shape_str(like)}")
        return None, None
    if (sf is None) == (size is None):
        fail("upsample: give exactly one of scale_factor, size and like")
    if size is not None:
        sizes = list(size) * n if len(size) == 1 else list(size)
        if len(sizes) != n or any(s <= 0 for s in sizes):
            fail(f"upsample: size {list(size)} needs {n} positive values for {shape_str(x)}")
        return None, sizes
    scales = [sf] * n if _is_num(sf) else list(sf) if isinstance(sf, (list, tuple)) else None
    if scales is None or len(scales) != n or not all(_is_num(s) and s > 0 for s in scales):
        fail(f"upsample: scale_factor must be a positive number or {n} of them, got {sf}")
    return [float(s) for s in scales], None


def _out(d: Dim, scale: float) -> Dim:
    if isinstance(d, int):
        return math.floor(d * scale)
    if float(scale).is_integer():
        return dim_mul(d, int(scale))
    if (k := _halving(scale)) is not None:  # floor(H*0.5) is H//2, as a stride-2 pool's
        return dim_floordiv(d, k)
    return Sym.opaque(f"floor({d}*{scale!r})")  # repr: the whole float (1/3 as 0.333333 floored 3 to 0)


def _infer(ins, a):
    x = ins[0]
    float_input("upsample", x)
    like = ins[1] if len(ins) > 1 else None
    if 0 in x.shape[2:]:  # onnxruntime gives an empty map (or fails); torch refuses
        fail(f"upsample: {shape_str(x)} is empty (an empty slice?): nothing to resize")
    scales, sizes = _plan(x, a, like)
    spatial = list(like.shape[2:]) if like is not None else sizes if sizes is not None else \
        [_out(d, s) for d, s in zip(x.shape[2:], scales)]
    if any(isinstance(d, int) and d <= 0 for d in spatial):
        fail(f"upsample: output size {spatial} is empty")
    return [x.with_shape(x.shape[:2] + tuple(spatial))]


def _lower(e, ins, outs, c):
    mode, align = c.attrs["mode"], c.attrs["align_corners"]
    scales, sizes = _plan(c.in_types[0], c.attrs, c.in_types[1] if len(ins) > 1 else None)
    if mode in _INTERPOLATING:
        kw = {"mode": "cubic" if mode == "bicubic" else "linear",
              "coordinate_transformation_mode": "align_corners" if align else "half_pixel"}
        if mode == "bicubic":
            kw["cubic_coeff_a"] = _CUBIC_A
    elif mode == "nearest":
        kw = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:  # nearest-exact
        kw = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
    x = c.in_types[0]
    if scales is not None:
        _apply_plan(e, ins[0], _axis_plan(x, scales, c.out_types[0].shape[2:], mode), outs, kw)
        return
    if mode not in _INTERPOLATING:  # size= or like=: torch's positions at (float)(n / out), where Resize divides
        # by out / n (14 to 2 read 6 for torch's 7); known lengths as constants, the rest computed at run time
        # (a kept or doubled length maps alike: n / out is then 1 or 0.5, exactly)
        targets = sizes if sizes is not None else list(c.in_types[1].shape[2:])
        fused = _fused(x.rank, targets)
        small = _small_at_run_time(e, ins, targets) if fused is None and mode == "nearest-exact" else None
        plan = []
        for i, (n, out) in enumerate(zip(x.shape[2:], targets)):
            if not (isinstance(n, int) and isinstance(out, int)):
                plan.append(("gather", _run_positions(e, ins, 2 + i, out, mode, fused, small)))
                continue
            step = np.float32(n / out)
            if small is None:
                plan.append(_moved(_positions(n, out, step, mode, bool(fused)), n))
                continue
            plain, fma = (_positions(n, out, step, mode, f) for f in (False, True))  # the run's sizes choose
            plan.append(_moved(plain, n) if np.array_equal(plain, fma) else
                        ("gather", e.op("Where", [small, e.const(plain), e.const(fma)])))
        _apply_plan(e, ins[0], plan, outs, kw)
        return
    def resize(v: str, lead: int, outputs) -> str:
        front = e.op("Shape", [v], start=0, end=lead)
        rest = e.op("Shape", [ins[1]], start=2) if len(ins) > 1 else e.const(np.array(sizes, dtype=np.int64))
        return e.op("Resize", [v, "", "", e.op("Concat", [front, rest], axis=0)], outputs=outputs, **kw)
    if _leaks(kw, x.rank):
        _folded(e, ins[0], resize, outs)
    else:
        resize(ins[0], 2, outs)


def _leaks(kw: dict, rank: int) -> bool:
    """Whether onnxruntime's linear Resize would blend examples and channels: its 1-D kernel takes every axis as
    one to interpolate, N and C at scale 1 too, where it weighs the next index by 0, and 0 * NaN (or inf) made
    another example's output NaN (specials hunt). Its 2-D and 3-D kernels keep N and C apart (a kept spatial
    length they blend as torch does: torch's NaN leaks along it alike)."""
    return kw["mode"] == "linear" and rank == 3


def _folded(e, x: str, resize, outs) -> str:
    """A 1-D linear Resize as a 2-D one over [N * C, 1, 1, L], reshaped back. `resize(v, lead, outputs)`
    resizes v's axes from `lead` on."""
    v = e.op("Reshape", [x, e.op("Concat", [e.const(np.array([-1, 1, 1], dtype=np.int64)), e.op("Shape", [x], start=2)],
                                 axis=0)])
    y = resize(v, 3, None)
    back = e.op("Concat", [e.op("Shape", [x], start=0, end=2), e.op("Shape", [y], start=3)], axis=0)
    return e.op("Reshape", [y, back], outputs=outs)


def _apply_plan(e, x: str, plan: list[tuple], outs, kw: dict) -> None:
    """The axes Resize takes (the rest at scale 1: kept as they are), then a Gather of torch's positions per
    axis; the last op writes the output (an Identity after it kept onnxruntime from fusing what reads it)."""
    gathers = [(2 + i, idx) for i, (how, idx) in enumerate(plan) if how == "gather"]
    y = x
    if any(how == "resize" for how, _ in plan):
        at = None if gathers else outs
        if _leaks(kw, 2 + len(plan)):
            y = _folded(e, y, lambda v, lead, outputs: _resize_all(e, v, [("keep", None)] + plan, kw, outputs), at)
        else:
            y = _resize_all(e, y, plan, kw, at)
    for k, (axis, idx) in enumerate(gathers):
        idx = idx if isinstance(idx, str) else e.const(idx)  # a name: positions computed at run time
        y = e.op("Gather", [y, idx], axis=axis, outputs=outs if k == len(gathers) - 1 else None)
    if y == x:  # no length changes and none moves: a copy
        e.op("Identity", [y], outputs=outs)


def _resize_all(e, x: str, plan: list[tuple], kw: dict, outs) -> str:
    """One Resize of every axis, a kept one at scale 1."""
    sc = e.const(np.array([1.0, 1.0] + [sc if how == "resize" else 1.0 for how, sc in plan], dtype=np.float32))
    return e.op("Resize", [x, "", sc], outputs=outs, **kw)


def _run_positions(e, ins, axis: int, out, mode: str, fused: bool | None, small: str | None) -> str:
    """_positions computed in the graph, for an axis whose length or target is known only at run time: floor of
    float32 (dst [+ 0.5]) times float32(n) / float32(out), as torch's kernel does in float, at most n - 1
    (nearest-exact's fused form in double, where one rounding to float32 is the fma's; `small`, a run-time
    condition, picks between the two forms where the run's sizes decide, as in 2-D)."""
    f32, f64 = DType.float32.onnx, DType.float64.onnx
    n = e.op("Shape", [ins[0]], start=axis, end=axis + 1)
    size = e.const(np.array([out], dtype=np.int64)) if isinstance(out, int) else \
        e.op("Shape", [ins[1]], start=axis, end=axis + 1)
    dst = e.op("Cast", [e.op("Range", [e.const(np.array(0, dtype=np.int64)), e.op("Squeeze", [size]),
                                       e.const(np.array(1, dtype=np.int64))])], to=f32)
    step = e.op("Div", [e.op("Cast", [n], to=f32), e.op("Cast", [size], to=f32)])
    if mode == "nearest-exact":
        half = e.const(np.array(0.5, dtype=np.float32))
        dst = e.op("Add", [dst, half])
        plain = e.op("Floor", [e.op("Mul", [dst, step])])
        if fused is not False:  # fma(step, dst + 0.5, -0.5): the double product is exact, rounded once
            prod = e.op("Mul", [e.op("Cast", [step], to=f64), e.op("Cast", [dst], to=f64)])
            t = e.op("Cast", [e.op("Sub", [prod, e.const(np.array(0.5, dtype=np.float64))])], to=f32)
            t = e.op("Max", [t, e.const(np.array(0.0, dtype=np.float32))])
            fma = e.op("Floor", [e.op("Add", [t, half])])
            plain = fma if fused else e.op("Where", [small, plain, fma])
        src = plain
    else:
        src = e.op("Floor", [e.op("Mul", [dst, step])])
    src = e.op("Cast", [src], to=DType.int64.onnx)
    return e.op("Min", [src, e.op("Sub", [n, e.const(np.array([1], dtype=np.int64))])])


def _fused(rank: int, outs) -> bool | None:
    """Whether torch's nearest-exact kernel computes positions in its fused form (see _positions): its 1-D and
    3-D kernels do, its 2-D one where the output's two lengths add up to more than 128 (torch 2.13, measured);
    None where that sum is the run's to know."""
    if rank != 4:
        return True
    if all(isinstance(o, int) for o in outs):
        return sum(outs) > 128
    return None


def _small_at_run_time(e, ins, outs) -> str:
    """A bool [1]: the 2-D output's lengths (numbers, or like='s) add up to 128 or less."""
    parts = [e.const(np.array([o], dtype=np.int64)) if isinstance(o, int) else
             e.op("Shape", [ins[1]], start=2 + i, end=3 + i) for i, o in enumerate(outs)]
    return e.op("LessOrEqual", [e.op("Add", parts), e.const(np.array([128], dtype=np.int64))])


def _halving(scale: float) -> int | None:
    """k where scale is 1/k with k a power of two (0.5, 0.25: floor(n * scale) is n // k, exactly), else None."""
    inv = 1 / scale
    return int(inv) if inv.is_integer() and int(inv) & (int(inv) - 1) == 0 else None


def _exact(scale: float) -> bool:
    """A scale whose mapping onnxruntime's float32 Resize computes as torch does: whole, or 1/2**k."""
    return float(scale).is_integer() or _halving(scale) is not None


def _axis_plan(x, scales: list, out_shape, mode: str) -> list[tuple]:
    """Per spatial axis how it resizes: ("resize", the float32 scale), ("gather", torch's source positions) or
    ("keep", None). A known length takes the float32 scale onnxruntime truncates to torch's length
    (_ort_scale), and in the nearest modes torch's positions, floorf(dst * (float)(1 / scale)) (of dst + 0.5 for
    nearest-exact) at most n - 1, where Resize divides by the float32 scale (at 1.2, row 14 for torch's 15);
    scales that are whole or 1/2**k map alike and stay Resize. torch's 2-D nearest kernel (torch 2.13, measured
    over 948 shapes) copies a kept length and halves a doubled one while the output's two lengths add up to 128
    or less; beside a symbolic axis that is the run's to decide, and such a length stays Resize (REFERENCE)."""
    axes = list(zip(x.shape[2:], scales, out_shape))
    known = all(isinstance(n, int) and isinstance(out, int) for n, _, out in axes)
    fused = bool(_fused(x.rank, [out for _, _, out in axes]))  # beside a symbolic axis, 2-D takes the plain form
    two_d = mode == "nearest" and x.rank == 4
    small = two_d and known and sum(out for _, _, out in axes) <= 128
    gathered = known and x.dtype is DType.float64 and mode not in _INTERPOLATING  # onnxruntime has no float64 Resize
    plan = []
    for n, scale, out in axes:
        if not isinstance(n, int) or not isinstance(out, int):
            plan.append(("resize", scale))
        elif out == n and (scale == 1.0 or small):
            plan.append(("keep", None))
        elif mode in _INTERPOLATING or (two_d and not known and out in (n, 2 * n)) or \
                _exact(scale) and not (small and out == 2 * n) and not gathered:  # kept or doubled beside a
            plan.append(("resize", _ort_scale(n, scale, out)))  # symbolic axis: the run's
        elif small and out == 2 * n:
            plan.append(("gather", np.arange(out, dtype=np.int64) >> 1))
        else:
            plan.append(_moved(_positions(n, out, np.float32(1.0 / scale), mode, fused), n))
    return plan


def _positions(n: int, out: int, step: np.float32, mode: str, fused: bool = False) -> np.ndarray:
    """torch's nearest source positions along an axis of n: floorf(dst * step), of dst + 0.5 for nearest-exact,
    at most n - 1 (step: (float)(1 / scale), or (float)(n / out) for a size). `fused`: nearest-exact as torch's
    1-D and 3-D kernels (and its 2-D one for large outputs) compute it, floorf(max(fmaf(step, dst + 0.5, -0.5),
    0) + 0.5): where (dst + 0.5) * n / out is whole it can round up where the plain product rounds down (2 to
    41, output 20: row 1, not 0)."""
    if mode == "nearest-exact" and fused:
        d = np.arange(out, dtype=np.float64) + 0.5
        t = np.maximum(np.float32(np.float64(step) * d - 0.5), np.float32(0))  # exact in double, rounded once
        return np.minimum(np.floor(t + np.float32(0.5)), n - 1).astype(np.int64)
    d = np.arange(out, dtype=np.float32) + np.float32(0.5 if mode == "nearest-exact" else 0.0)
    return np.minimum(np.floor(d * step), n - 1).astype(np.int64)


def _moved(idx: np.ndarray, n: int) -> tuple:
    """A plan step: positions that are each of the n as it is (same length too) move nothing."""
    return ("keep", None) if np.array_equal(idx, np.arange(n)) else ("gather", idx)


def _ort_scale(n: int, scale: float, want: int) -> float:
    """A float32 scale that onnxruntime sizes n to torch's length with: it truncates float32(scale) * n,
    computed in float32, where torch floors the double product (0.58 on 50: 29 against torch's 28). The scale
    moves by an ulp or two; its mapping with it, by as little."""
    f = np.float32(scale)
    for _ in range(16):
        got = int(f * np.float32(n))
        if got == want:
            return float(f)
        f = np.nextafter(f, np.float32(np.inf if got < want else 0.0))
    return float(np.float32(scale))


def _cubic(t: float) -> list[float]:
    """Keys' weights of the 4 neighbours floor(src) - 1 .. floor(src) + 2, t = src - floor(src)."""
    a = _CUBIC_A
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1          # |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a      # 1 < |x| < 2
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _interp_weights(size: int, out: int, align_corners: bool, scale: float | None, cubic: bool) -> np.ndarray:
    """The [out, size] matrix of torch's linear or bicubic interpolation along one dim (half_pixel or
    align_corners), so that y = W x: upsampling is linear, and its gradient is W^T g. Linear clamps the
    source position at 0; bicubic does not, and replicates the edge for neighbours outside (as torch)."""
    w = np.zeros((out, size))
    for i in range(out):
        if align_corners:
            src = i * (size - 1) / (out - 1) if out > 1 else 0.0
        else:
            step = 1.0 / scale if scale is not None else size / out
            src = (i + 0.5) * step - 0.5
            if not cubic:
                src = max(src, 0.0)
        lo = int(np.floor(src))
        frac = src - lo
        if cubic:
            for k, wk in enumerate(_cubic(frac)):
                w[i, min(max(lo - 1 + k, 0), size - 1)] += wk
            continue
        lo = min(lo, size - 1)
        hi = min(lo + 1, size - 1)
        w[i, lo] += 1.0 - frac
        w[i, hi] += frac
    return w


def _grad(b, c, ins, outs, gouts):
    """nearest modes move elements (g scattered back where the forward took them: a Gather of torch's
    positions, or Resize); linear modes and bicubic are y = W x along each dim, so g x W, and a copy where no
    size changes (onnxruntime's Resize copies then, even at a scale of 1.2)."""
    x_t, g = c.in_types[0], gouts[0]
    like = [None] * (len(ins) - 1)  # no gradient reaches the tensor that only lends its sizes
    if c.attrs["mode"] not in _INTERPOLATING:  # the forward itself moves positions: whatever it does, this follows
        return [b.op("autodiff.movement_grad", g, *ins, op="upsample", attrs=dict(c.attrs), positions="int32"),
                *like]
    if tuple(c.out_types[0].shape[2:]) == tuple(x_t.shape[2:]):  # onnxruntime copies the input then, any scale
        return [g, *like]
    if all(d == 1 for d in x_t.shape[2:]):  # from one pixel (a pooled branch, ASPP's): every output is a copy of it
        return [b.op("sum", g, dim=tuple(range(2, x_t.rank)), keepdim=True), *like]
    scales, _ = _plan(x_t, c.attrs, c.in_types[1] if len(ins) > 1 else None)
    n = x_t.rank - 2
    out_sp = c.out_types[0].shape[2:]
    if not all(isinstance(d, int) for d in tuple(x_t.shape[2:]) + tuple(out_sp)):
        fail(f"upsample: the gradient of mode \"{c.attrs['mode']}\" needs known spatial sizes (its weights are "
             f"a matrix per axis), got {shape_str(x_t)} to {shape_str(c.out_types[0])}; "
             f"{give_numbers(*x_t.shape[2:], *out_sp)}, or use mode=\"nearest\", whose gradient takes any size")
    for i in range(n):
        ax = 2 + i
        w = _interp_weights(x_t.shape[ax], out_sp[i], c.attrs["align_corners"], scales[i] if scales else None,
                            c.attrs["mode"] == "bicubic")
        if ax != x_t.rank - 1:
            g = b.op("transpose", g, dim0=ax, dim1=-1)
        g = b.op("matmul", g, b.const(w, like=g))  # [..., out] @ [out, in]
        if ax != x_t.rank - 1:
            g = b.op("transpose", g, dim0=ax, dim1=-1)
    return [g, *like]


def _cost(c):
    per = {"bicubic": 16}.get(c.attrs["mode"], 4 if c.attrs["mode"] in _LINEAR_RANK else 1)
    return per * numel(c.out_types[0].shape)


register(OpDef(
    name="upsample", inputs=("x", "like?"), category="layer", aliases=("interpolate",),
    attrs=(Attr("scale_factor", "any", None),
           Attr("mode", "str", "nearest",
                choices=("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic")),
           Attr("align_corners", "bool", False, none="torch's align_corners=None is false: leave it out"),
           Attr("size", "ints?", None, symbolic="to another tensor's run-time size: upsample(x, like=that_tensor) "
                "(torch's F.interpolate(x, size=skip.shape[2:]))")),
    infer=_infer, lower=_lower, cost=_cost, grad=_grad, nonempty=spatial_axes,
    doc="Resize the spatial dims by scale_factor, to size, or to the spatial sizes of like= (a skip "
        "connection's, read at run time: torch's F.interpolate(x, size=skip.shape[2:])) (torch.nn.Upsample); "
        "nearest, nearest-exact, (bi/tri)linear and bicubic (torch's a = -0.75, no antialias) with align_corners. "
        "Known sizes: torch's output lengths and nearest positions; in the linear modes a scale that keeps a "
        "size (1.2 on 4) maps that dim through the scale, as ONNX Resize, where torch copies it; over symbolic "
        "sizes onnxruntime's float32 lengths and positions at scales neither whole nor 1/2**k (REFERENCE). "
        "Gradient: nearest at any sizes; the other modes need known spatial sizes (or a 1x1 input).",
))
