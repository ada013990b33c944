"""Parameter values: PyTorch-style default init (seeded, vectorized) or loaded by name from a file."""

from __future__ import annotations

import json
import math
import numbers
import os
import threading
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import files
from ..diagnostics import ArchError
from ..ir import Graph
from ..ops import ParamSpec
from ..types import DType

__all__ = ["SEED_MAX", "check_seed", "CHUNK", "Chunked", "chunk_count", "file_bytes", "fill_chunk", "materialize",
           "initial_weights", "load_weights", "narrow_float", "npy_bfloat16", "npz_member", "numpy_reason", "raw_bytes",
           "read_exactly", "read_npz", "resident", "save_weights", "whole_numbers", "write_npz"]


SEED_MAX = 2**32 - 1  # the weights draw from (seed, name, block) as 32-bit words; dropout takes it as int64
CHUNK = 1 << 18  # elements per independently seeded block of a generated parameter (1 MiB of float32)
_GENERATED = ("uniform", "normal", "trunc_normal")


@dataclass(frozen=True)
class Chunked:
    """A parameter as consecutive C-order blocks: what the streaming writer takes instead of a whole array.
    A block is valid until the next one is asked for (its buffer is reused)."""
    shape: tuple[int, ...]
    dtype: np.dtype
    pieces: Iterator[np.ndarray]


def chunk_count(spec: ParamSpec) -> int:
    """Blocks of a randomly initialized parameter, 0 for the constant inits (zeros, ones, constant)."""
    return -(-math.prod(spec.shape) // CHUNK) if spec.init.kind in _GENERATED else 0


def materialize(name: str, spec: ParamSpec, dtype: DType, seed: int) -> np.ndarray:
    """Each block k of a parameter draws from its own stream (seed, crc32(name), k): adding a layer never
    changes the others, and the blocks of one parameter can be generated on several threads (or streamed
    to the file one at a time) with the same values as here."""
    shape = tuple(spec.shape)
    init = spec.init
    if init.kind in _GENERATED:
        arr = np.empty(math.prod(shape), np.float32)
        for k in range(chunk_count(spec)):
            fill_chunk(name, spec, seed, k, arr[k * CHUNK:(k + 1) * CHUNK])
        arr = arr.reshape(shape)
    elif init.kind == "zeros":
        arr = np.zeros(shape, np.float32)
    elif init.kind == "ones":
        arr = np.ones(shape, np.float32)
    elif init.kind == "constant":
        arr = np.full(shape, init.a, np.float32)
    else:
        raise ValueError(f"unknown init {init.kind}")
    return cast(arr, dtype)


def fill_chunk(name: str, spec: ParamSpec, seed: int, k: int, out: np.ndarray) -> None:
    """Block k of a randomly initialized parameter (float32, flat) into `out`."""
    bits = np.random.PCG64DXSM(np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(name.encode()), k]))
    init = spec.init
    if init.kind == "uniform":
        out[...] = _unit_floats(bits, out.size)
        out *= np.float32(init.b - init.a)
        out += np.float32(init.a)
        return
    std = float(init.b)
    _normal(bits, out, std)
    # truncated at 2 std (TensorFlow's and JAX's truncated normal; torch's trunc_normal_ cuts at a=-2, b=2
    # absolute by default, almost no cut at std 0.02, unless given a=-2*std, b=2*std): redraw, don't clip
    if init.kind == "trunc_normal":
        cut = np.float32(2.0 * std)
        bad = np.flatnonzero(np.abs(out) > cut)
        while bad.size:
            redraw = np.empty(bad.size, np.float32)
            _normal(bits, redraw, std)
            out[bad] = redraw
            bad = bad[np.abs(redraw) > cut]
    if init.a:
        out += np.float32(init.a)
    if init.zero_row is not None:  # the part of that row inside this block
        width = spec.shape[-1]
        lo, hi = init.zero_row * width - k * CHUNK, (init.zero_row + 1) * width - k * CHUNK
        out[max(lo, 0):max(min(hi, out.size), 0)] = 0


def _unit_floats(bits: np.random.BitGenerator, n: int) -> np.ndarray:
    """n float32 uniforms in [0, 1) with 23 random bits each, straight from the generator's raw 64-bit words
    (numpy's own float32 path costs 2-3x more per number)."""
    r = bits.random_raw((n + 1) // 2).view(np.uint32)[:n]
    r >>= np.uint32(9)
    r |= np.uint32(0x3F800000)  # exponent of [1, 2)
    u = r.view(np.float32)
    u -= np.float32(1.0)
    return u


def _normal(bits: np.random.BitGenerator, out: np.ndarray, std: float) -> None:
    """N(0, std^2) in float32 by Box-Muller, in blocks that stay in cache: ~2.5 ns per number against ~15 ns
    for whole-parameter passes over memory (and 8.6 ns for numpy's float32 ziggurat). std rides in the radius,
    std * sqrt(-2 log u), and the angle is 2 pi times the [1, 2) float the bits make (cos and sin repeat every
    2 pi): five passes over a block fewer than scaling z afterwards and shifting the uniforms to [0, 1)
    (2.75 -> 2.45 ns per number, 2026-12-07). With 23-bit uniforms
    |z| <= 5.64: a tail of probability 2e-8 is cut."""
    n = out.size
    h = (n + 1) // 2
    w = bits.random_raw(h).view(np.uint32)
    w >>= np.uint32(9)
    w |= np.uint32(0x3F800000)  # exponent of [1, 2)
    f = w.view(np.float32)
    r, theta = f[:h], f[h:]
    np.subtract(np.float32(2.0), r, out=r)  # (0, 1], exactly: log is finite
    np.log(r, out=r)
    r *= np.float32(-2.0)
    np.sqrt(r, out=r)
    with np.errstate(over="ignore"):  # a trunc_normal's std up to 1.7e38: the draws past 2 std are redrawn
        r *= np.float32(std)  # not inside the sqrt: std * std underflows float32 below std ~ 4e-23
    theta *= np.float32(2.0 * math.pi)
    np.cos(theta, out=out[:h])
    out[:h] *= r
    np.sin(theta, out=theta)  # in place: no temporary to allocate (and page-fault) per block
    np.multiply(theta[:n - h], r[:n - h], out=out[h:])


def whole_numbers(value) -> bool:
    """Integers, or floats that are all finite whole numbers: what an integer parameter or buffer may be given."""
    kind = np.asarray(value).dtype.kind
    if kind != "f":
        return kind in "iu"
    a = resident(np.asarray(value))
    return bool(np.all(np.isfinite(a)) and np.array_equal(a, np.round(a)))


def cast(arr: np.ndarray, dtype: DType) -> np.ndarray:
    return arr.astype(dtype.numpy)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """A `.npz` or `.safetensors` file, keyed by parameter name (`layer1.0.conv1.weight`)."""
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        files.refuse_special(p, f"cannot read weights from {p}")  # an .npz is checked by read_npz
        try:
            return read_safetensors(p)
        except FileNotFoundError:
            raise ArchError(f"weights file not found: {p}") from None
        except OSError as e:
            raise ArchError(f"cannot read weights from {p}: {e.strerror or e}") from None
        except ValueError as e:  # a corrupt or foreign file
            raise ArchError(f"cannot read weights from {p}: {e}; weights are an .npz or .safetensors file keyed by "
                            "parameter name") from None
    return read_npz(p, "weights", "weights are an .npz or .safetensors file keyed by parameter name")


_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
                       "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A .safetensors file's arrays as read-only views of the file, mapped, not read: a build streams them into
    the model, so a checkpoint of many GB needs no memory of its size (safetensors' own numpy loader copies
    every tensor first). The header is checked before anything is mapped; ValueError says what is wrong."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("too short for a safetensors file")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ValueError("not a safetensors file (its header length is past the end of the file)")
        if n > 100 << 20:  # safetensors' own limit
            raise ValueError(f"not a safetensors file (a header of {n:,} bytes; at most 100 MiB)")
        try:
            header = json.loads(f.read(n), object_pairs_hook=_unique_keys)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ValueError("not a safetensors file (its header is not JSON)") from None
        except ValueError as e:
            if "digits" not in str(e):  # a name twice (_unique_keys)
                raise
            raise ValueError("not a safetensors file (a number in its header is thousands of digits long)") \
                from None  # more digits than Python converts (4300): its own message gave advice about sys
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file (its header is not a JSON object)")
    start, end = 8 + n, size
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            code, shape, (lo, hi) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"'{name}': no dtype, shape and data_offsets in the header") from None
        if not isinstance(code, str) or code not in _SAFETENSORS_DTYPES:  # ["F32"] was unhashable: a crash
            raise ValueError(f"'{name}': dtype {code} is not one archdsl reads (one of "
                             f"{', '.join(_SAFETENSORS_DTYPES)})")
        dtype = _dtype(_SAFETENSORS_DTYPES[code])
        if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
                or type(lo) is not int or type(hi) is not int or not 0 <= lo <= hi <= end - start
                or hi - lo != math.prod(shape) * dtype.itemsize):
            raise ValueError(f"'{name}': its shape {shape} and data_offsets {[lo, hi]} do not fit the file")
        entries.append((name, dtype, tuple(shape), start + lo))
    at = start  # the tensors fill the data, in order of offset, without gap or overlap (as safetensors checks)
    for name, dtype, shape, offset in sorted(entries, key=lambda e: (e[3], math.prod(e[2]) * e[1].itemsize)):
        if offset != at:
            raise ValueError(f"'{name}' starts at byte {offset - start} of the data, where "
                             f"{'a gap' if offset > at else 'another tensor'} is")
        at += math.prod(shape) * dtype.itemsize
    if at != end:
        raise ValueError(f"the tensors end at byte {at - start} of the data, which has {end - start}")
    out = {}
    mapped = _map(path) if any(math.prod(s) for _, _, s, _ in entries) else None
    for name, dtype, shape, offset in entries:
        count = math.prod(shape)
        if count == 0:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.asarray(mapped[offset:offset + count * dtype.itemsize]).view(dtype).reshape(shape)
    return out


@dataclass(frozen=True)
class _Mapping:
    address: int
    size: int
    file: BinaryIO  # open on the file that was mapped (the same inode, should the path be replaced meanwhile)


_MAPPINGS: dict[int, _Mapping] = {}  # id(memmap) -> where it lies; an entry goes when its memmap does


def _map(path: Path) -> np.memmap:
    """The file mapped read-only, remembered while it is mapped so that `file_bytes` can find its arrays."""
    f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed when the mapping is collected
    try:
        mapped = np.memmap(f, np.uint8, "r")
    except BaseException:
        f.close()
        raise
    key = id(mapped)
    _MAPPINGS[key] = _Mapping(mapped.__array_interface__["data"][0], mapped.nbytes, f)
    weakref.finalize(mapped, _unmapped, key, f)
    return mapped


def _unmapped(key: int, f: BinaryIO) -> None:
    _MAPPINGS.pop(key, None)
    f.close()


def file_bytes(arr: np.ndarray) -> tuple[BinaryIO, int] | None:
    """(an open file, offset) whose next arr.nbytes bytes are exactly arr's, where arr is a C-contiguous array
    lying in a .safetensors file read_safetensors mapped: the writer reads them from the file in 1 MiB pieces
    (GPT-2 small's 500 MB in 0.10 s, where the same bytes written from the mapping took 0.11-0.24 s, depending on
    how the file came into the page cache: slowest when copied by `cp`). A mapping is read-only, so an array in it
    still holds the file's bytes."""
    if not _MAPPINGS or not arr.flags.c_contiguous or not arr.nbytes:
        return None
    address = arr.__array_interface__["data"][0]
    for m in list(_MAPPINGS.values()):
        if m.address <= address and address + arr.nbytes <= m.address + m.size:
            return m.file, address - m.address
    return None


_POSITION = threading.Lock()  # where there is no pread (Windows): one seek-and-read at a time


def _read_at(f: BinaryIO, view: memoryview, offset: int) -> int:
    """Bytes of f from offset into view, not moving the file's position, which threads (and forked processes)
    sharing one loaded checkpoint share: a seek then read by two builds at once wrote wrong weights."""
    if hasattr(os, "preadv"):
        return os.preadv(f.fileno(), [view], offset)
    if hasattr(os, "pread"):  # macOS
        data = os.pread(f.fileno(), len(view), offset)
        view[:len(data)] = data
        return len(data)
    with _POSITION:
        f.seek(offset)
        return f.readinto(view) or 0


def read_exactly(f: BinaryIO, view: memoryview, offset: int) -> None:
    """view filled from f at offset; a file cut short meanwhile is an error (through the mapping it was
    SIGBUS, which killed the process)."""
    done = 0
    while done < len(view):
        n = _read_at(f, view[done:], offset + done)
        if n <= 0:
            raise ArchError(f"the weights file {f.name} was cut short while the model was being written")
        done += n


def resident(arr: np.ndarray) -> np.ndarray:
    """arr, or where it lies in a mapped weights file, a copy read from the file: for values computed on (a
    cast, a folded BatchNorm), which through the mapping would also raise SIGBUS on a file cut short."""
    source = file_bytes(arr)
    if source is None:
        return arr
    out = np.empty(arr.shape, arr.dtype)
    read_exactly(source[0], memoryview(out.reshape(-1).view(np.uint8)), source[1])  # bytes: bfloat16 has no buffer
    return out


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose names are all different: a name given twice is two tensors, one of them lost."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"'{twice}' is named twice in the header")
    return out


def _dtype(name: str) -> np.dtype:
    if name[0] in "<?iu":
        return np.dtype(name)
    import ml_dtypes  # onnx's own dependency: numpy has no bfloat16 or float8
    return np.dtype(getattr(ml_dtypes, name))


def numpy_reason(e: Exception, member: bool = False) -> str:
    """Why numpy did not load a file or an archive member, in words a user can act on: for anything that is
    not .npy/.npz numpy guesses a pickle and says to allow_pickle, which archdsl never does; a damaged .npy
    header came as Python's repr of a syntax node."""
    if "Object arrays" in str(e) or ("pickle" in str(e) and member):
        return "it holds Python objects (an object array), which are not loaded"
    if "pickle" in str(e):
        return "not a .npy or .npz file"
    if "malformed node" in str(e) or "header" in str(e).lower() and "<ast." in str(e):
        return "its .npy header is damaged"
    if isinstance(e, OSError) and e.strerror:  # "[Errno 13] Permission denied: 'w.npz'": the file named twice
        return e.strerror
    return str(e)


def npy_bfloat16(arr: np.ndarray) -> np.ndarray:
    """numpy's .npy format writes ml_dtypes' bfloat16 as raw 2-byte values (|V2) and reads it back so: such an
    array as the bfloat16 it holds (no other type comes back as 2 raw bytes; it was said as "void16")."""
    dt = arr.dtype
    return arr.view(_dtype("bfloat16")) if dt.kind == "V" and dt.names is None and dt.itemsize == 2 and \
        dt.subdtype is None else arr


def narrow_float(dtype) -> bool:
    """ml_dtypes' narrow floats (numpy kind 'V'): bfloat16 from a safetensors file or a dict of arrays, float8
    from a dict (safetensors' numpy loader cannot read float8)."""
    import ml_dtypes
    if dtype.kind != "V":  # numpy's finfo, which ml_dtypes falls back to, takes complex types too
        return False
    try:
        ml_dtypes.finfo(dtype)
    except (TypeError, ValueError):
        return False
    return True


def raw_bytes(dtype: np.dtype) -> str | None:
    """What to say of an array numpy read as raw bytes: a float8 saved to an .npy (its kind is not recorded)."""
    if dtype.kind != "V" or dtype.names is not None or narrow_float(dtype):  # bfloat16 is a type numpy keeps
        return None
    if dtype.itemsize != 1:
        return f"raw {dtype.itemsize}-byte values (of no type numpy records)"
    return ("raw 1-byte values (numpy's .npy format does not record ml_dtypes' float8 types; save them as float32, "
            "or in a .safetensors file)")


def npz_member(z, k: str) -> np.ndarray:
    """One array of an open .npz. numpy hands back a member that is no .npy array (no magic, or a name without
    .npy) as its raw bytes, which were read on as an array: a ValueError here."""
    a = z[k]
    if not isinstance(a, np.ndarray):
        raise ValueError("it is not a .npy array (a damaged or foreign member)")
    return npy_bfloat16(a)


def read_npz(path: str | Path, what: str, expected: str) -> dict[str, np.ndarray]:
    """Every array of an .npz, by name; anything else (a .npy, a text file, a torch.save zip, a corrupt
    archive) a diagnostic that says so. `what` names the file's role, `expected` what it should hold."""
    with open_npz(path, what, expected) as z:
        out = {}
        for k in z.files:
            try:
                out[k] = npz_member(z, k)
            except Exception as e:  # noqa: BLE001 - a corrupt member, or an object array
                raise ArchError(f"cannot read {what} from {path}: '{k}': {numpy_reason(e, member=True)}; "
                                f"{expected}") from None
        return out


def open_npz(path: str | Path, what: str, expected: str):
    """The .npz, open (its arrays not read yet: a typo'd name is said before any long work), or read_npz's
    diagnostic for what it is instead."""
    files.refuse_special(path, f"cannot read {what} from {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ArchError(f"{what} file not found: {path}") from None
    except OSError as e:  # a directory, no permission: said as the OS says it, without the file's format
        raise ArchError(f"cannot read {what} from {path}: {e.strerror or e}") from None
    except Exception as e:  # a corrupt or foreign file; np.load guesses pickle for anything else
        raise ArchError(f"cannot read {what} from {path}: {numpy_reason(e)}; {expected}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy: one array, no names
        raise ArchError(f"cannot read {what} from {path}: it holds one unnamed array; {expected}")
    try:
        members = z.zip.namelist()
        if any(m.endswith("data.pkl") for m in members):
            how = ("safetensors.torch.save_file(state_dict, 'w.safetensors'), which keeps bfloat16, or "
                   "numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()}), bfloat16 tensors .float() "
                   "first (numpy has no bfloat16)" if what == "weights" else
                   "numpy.savez(path, x=x.numpy(), labels=labels.numpy()), one array per name")
            raise ArchError(f"cannot read {what} from {path}: it is a torch.save file (pickled); {expected} ({how})")
        if not all(m.endswith(".npy") for m in members):
            raise ArchError(f"cannot read {what} from {path}: a zip archive of other files, not an .npz; "
                            f"{expected}")
        if len(set(members)) != len(members):  # numpy reads the last copy, silently
            twice = next(m for i, m in enumerate(members) if m in members[:i])
            raise ArchError(f"cannot read {what} from {path}: '{twice.removesuffix('.npy')}' is stored twice in "
                            f"it; {expected}")
    except BaseException:
        z.close()
        raise
    return z


def save_weights(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        import re

        from safetensors import SafetensorError
        from safetensors.numpy import save_file
        try:
            save_file({k: np.require(v, requirements="C") for k, v in arrays.items()}, str(p))  # 0-d stays 0-d
        except SafetensorError as e:  # its I/O errors are no OSError: a full disk was an internal error
            code = re.search(r"os error (\d+)", str(e))
            raise (OSError(int(code[1]), os.strerror(int(code[1]))) if code else OSError(str(e))) from None
        files.umask_mode(p)
    else:
        with open(p, "wb") as f:
            write_npz(f, arrays)


def write_npz(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """What np.savez(f, **arrays) writes, without reading the names `file` and `allow_pickle` as its own
    arguments: an output or parameter so named was an internal error, or silently left out."""
    import zipfile
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(a), allow_pickle=False)


def check_seed(seed) -> None:
    """A seed as every use takes it whole: the weights' 32-bit words, run_training's shuffling, a build's."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= SEED_MAX:
        raise ArchError(f"seed must be an integer in 0..{SEED_MAX}, got {seed!r}")


def initial_weights(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """The values a build with this seed gives each parameter and buffer of an (unoptimized) IR graph, by name,
    before any pass derives new ones (BatchNorm folding): what a torch state_dict would hold. The seed as a
    build takes it (a -1 was seed 4294967295's weights, 2**32 + 5 seed 5's; review116)."""
    if not isinstance(graph, Graph):  # a ModelProto: an AttributeError on .params
        raise ArchError(f"initial_weights takes the IR graph of a spec (archdsl.check_file(path)), got "
                        f"{type(graph).__name__}")
    check_seed(seed)
    return {name: materialize(name, v.spec, v.type.dtype, seed) for name, v in graph.params.items()}
