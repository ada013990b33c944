"""sinusoidal_embedding: fixed sin/cos features of a timestep or position, [...] -> [..., dim].

With half = dim // 2, frequencies f_i = exp(-log(max_period) * i / (half - freq_shift)), i < half:
- DDPM / tensor2tensor timestep embedding (the default): [sin(t f), cos(t f)], freq_shift=1;
- "Attention Is All You Need" positions: interleave=true, freq_shift=0 (pe[2i] = sin, pe[2i+1] = cos);
- flip_sin_to_cos=true puts cos first (guided-diffusion, diffusers). An odd dim gets a zero last column."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, TensorType, numel
from .registry import Attr, OpDef, fail, register

__all__ = ["frequencies", "reference"]


def _denominator(dim: int, freq_shift: float) -> float:
    denom = dim // 2 - freq_shift
    if denom <= 0:
        fail(f"sinusoidal_embedding: dim {dim} is too small for freq_shift {freq_shift} (half - shift must be > 0)")
    return denom


def frequencies(dim: int, max_period: float, freq_shift: float) -> np.ndarray:
    # float32 throughout, as the reference implementations compute it
    return np.exp(np.arange(dim // 2, dtype=np.float32) * np.float32(-math.log(max_period)
                                                                     / _denominator(dim, freq_shift)))


def reference(t: np.ndarray, dim: int, max_period: float = 10000.0, freq_shift: float = 1.0,
              flip_sin_to_cos: bool = False, interleave: bool = False) -> np.ndarray:
    """numpy reference: what the lowering computes (float32)."""
    args = t.astype(np.float32)[..., None] * frequencies(dim, max_period, freq_shift)
    first, second = (np.cos(args), np.sin(args)) if flip_sin_to_cos else (np.sin(args), np.cos(args))
    emb = np.stack([first, second], -1).reshape(*t.shape, -1) if interleave else np.concatenate([first, second], -1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros(t.shape + (1,), np.float32)], -1)
    return emb


def _check(a) -> None:
    if a["dim"] < 2:
        fail(f"sinusoidal_embedding: dim must be at least 2, got {a['dim']}", "dim")
    if a["max_period"] <= 0:
        fail(f"sinusoidal_embedding: max_period must be positive, got {a['max_period']}", "max_period")
    _denominator(a["dim"], a["freq_shift"])  # not the table itself: a dim of 2**30 made 4 GB to check a shape


def _infer(ins, a):
    t = ins[0]
    if t.dtype is DType.bool:
        fail("sinusoidal_embedding: input must be numbers (int or float), got bool")
    _check(a)
    dtype = t.dtype if t.dtype.is_float else DType.float32
    return [TensorType(dtype, t.shape + (a["dim"],))]


def _lower(e, ins, outs, c):
    """16-bit outputs are computed in float32 and cast at the end, as diffusers does: t * freq in 16 bits
    loses the phase of any position past a few hundred, and ONNX's Sin and Cos take bfloat16 only from
    opset 22."""
    a = c.attrs
    t_t, o_t = c.in_types[0], c.out_types[0]
    low = o_t.dtype.is_16bit
    work = DType.float32 if low else o_t.dtype
    final = None if low else outs
    freqs = frequencies(a["dim"], a["max_period"], a["freq_shift"]).astype(work.numpy)
    t = ins[0] if t_t.dtype == work else e.op("Cast", [ins[0]], to=work.onnx)
    t = e.op("Unsqueeze", [t, e.const(np.array([-1], dtype=np.int64))])
    args = e.op("Mul", [t, e.const(freqs)])
    s, co = e.op("Sin", [args]), e.op("Cos", [args])
    first, second = (co, s) if a["flip_sin_to_cos"] else (s, co)
    odd = a["dim"] % 2 == 1
    if a["interleave"]:
        pair = e.op("Concat",
                    [e.op("Unsqueeze", [p, e.const(np.array([-1], dtype=np.int64))]) for p in (first, second)],
                    axis=-1)
        shape = e.const(np.array([0] * t_t.rank + [2 * (a["dim"] // 2)], dtype=np.int64))
        emb = e.op("Reshape", [pair, shape], outputs=None if odd else final)
    else:
        emb = e.op("Concat", [first, second], axis=-1, outputs=None if odd else final)
    if odd:
        pads = [0] * (t_t.rank + 1) + [0] * t_t.rank + [1]
        emb = e.op("Pad", [emb, e.const(np.array(pads, dtype=np.int64))], outputs=final)
    if low:
        e.op("Cast", [emb], to=o_t.dtype.onnx, outputs=outs)


register(OpDef(
    name="sinusoidal_embedding", inputs=("t",), category="layer", synonyms=False,  # dim is a width
    attrs=(Attr("dim", "int"), Attr("max_period", "float", 10000.0), Attr("freq_shift", "float", 1.0),
           Attr("flip_sin_to_cos", "bool", False), Attr("interleave", "bool", False)),
    infer=_infer, lower=_lower, cost=lambda c: 3 * numel(c.out_types[0].shape),
    doc="Fixed sin/cos embedding of timesteps or positions [...] -> [..., dim] (DDPM default, also Whisper's; "
        "interleave=true, freq_shift=0 for the Transformer's).",
))
