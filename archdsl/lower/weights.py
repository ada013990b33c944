"""Parameter values: PyTorch-style default init (seeded, vectorized) or loaded by name from a file."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from ..diagnostics import ArchError
from ..ops import ParamSpec
from ..types import DType

__all__ = ["materialize", "initial_weights", "load_weights", "save_weights"]


def materialize(name: str, spec: ParamSpec, dtype: DType, seed: int) -> np.ndarray:
    """Each parameter draws from its own stream (seed, crc32(name)), so adding a layer never changes others."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode())])
    shape = tuple(spec.shape)
    init = spec.init
    if init.kind == "uniform":  # drawn in float32 directly: 3x faster than float64 then a cast
        arr = rng.random(size=shape, dtype=np.float32)
        arr *= np.float32(init.b - init.a)
        arr += np.float32(init.a)
    elif init.kind == "normal":
        arr = _standard_normal(rng, shape)
        arr *= np.float32(init.b)
        arr += np.float32(init.a)
    elif init.kind == "trunc_normal":
        arr = _standard_normal(rng, shape)
        out = np.abs(arr) > 2.0  # truncated at 2 std, as torch's trunc_normal_: redraw, don't clip
        while out.any():
            arr[out] = _standard_normal(rng, (int(out.sum()),))
            out = np.abs(arr) > 2.0
        arr *= np.float32(init.b)
        arr += np.float32(init.a)
    elif init.kind == "zeros":
        arr = np.zeros(shape, np.float32)
    elif init.kind == "ones":
        arr = np.ones(shape, np.float32)
    elif init.kind == "constant":
        arr = np.full(shape, init.a, np.float32)
    else:
        raise ValueError(f"unknown init {init.kind}")
    return cast(arr, dtype)


def _standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """N(0, 1) in float32 by Box-Muller over float32 uniforms: 2.2x faster than numpy's float32 ziggurat
    (4.1 vs 8.9 ns per number measured), and normals dominate the weights of transformers (GPT-2: 124M).
    u1 lies in (0, 1] with 24-bit steps, so |z| <= 5.77: a tail of probability 1e-8 is cut."""
    n = math.prod(shape)
    h = (n + 1) // 2
    u = rng.random(2 * h, dtype=np.float32)
    r, theta = u[:h], u[h:]
    np.subtract(np.float32(1.0), r, out=r)
    np.log(r, out=r)
    r *= np.float32(-2.0)
    np.sqrt(r, out=r)
    theta *= np.float32(2.0 * math.pi)
    out = np.empty(2 * h, np.float32)
    np.cos(theta, out=out[:h])
    np.sin(theta, out=out[h:])
    out[:h] *= r
    out[h:] *= r
    return out[:n].reshape(shape)


def cast(arr: np.ndarray, dtype: DType) -> np.ndarray:
    if dtype is DType.bfloat16:
        import ml_dtypes
        return arr.astype(ml_dtypes.bfloat16)
    return arr.astype(dtype.np)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """A `.npz` or `.safetensors` file, keyed by parameter name (`layer1.0.conv1.weight`)."""
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.numpy import load_file
            return dict(load_file(str(p)))
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ArchError(f"weights file not found: {p}") from None
    except Exception as e:  # a corrupt or foreign file
        raise ArchError(f"cannot read weights from {p}: {e}") from None


def save_weights(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(p))
    else:
        with open(p, "wb") as f:
            np.savez(f, **arrays)


def initial_weights(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """The values a build with this seed gives each parameter and buffer of an (unoptimized) IR graph, by name,
    before any pass derives new ones (BatchNorm folding): what a torch state_dict would hold."""
    return {name: materialize(name, v.spec, v.type.dtype, seed) for name, v in graph.params.items()}
