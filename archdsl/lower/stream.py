"""Write a model file without ever holding its weights in a ModelProto.

`archdsl build` lowers the graph without weights (a small skeleton), then appends one protobuf fragment
per parameter as it is generated: `graph { initializer { <tensor> } }`. Protobuf merges repeated
occurrences of a message field, so the file reads back as one model (onnx, onnxruntime and every protobuf
parser do this; it is in the wire-format spec). The weights' bytes go from the numpy array to the file
with no intermediate copy, which saves the 2-3 full copies of building and serializing a ModelProto
(GPT-2 small: about 1 s and 1 GB less). Generated parameters arrive in 1 MiB blocks (weights.Chunked)
made on worker threads just ahead of the writer, so memory is independent of the model size (GPT-2 small:
peak 345 -> 22 MB, build 1.1-1.35 -> 0.41-0.59 s measured on the 2-core machine). With external
data, tensors of 1 KiB or more go to `<file>.data` instead, at increasing offsets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import onnx
from onnx import numpy_helper

from .onnx_model import RAW_DTYPES
from .weights import Chunked, file_bytes, read_exactly

__all__ = ["INLINE_LIMIT", "write_streaming"]

INLINE_LIMIT = 1024  # bytes: smaller tensors stay in the model file even with external data (as onnx does)
# given weights go to the file in 1 MiB writes: GPT-2 small's, from their mapped .safetensors file, took 0.26 s
# to build written a tensor per write (154 MB at once), 0.15 s in 1 MiB pieces (128 KiB to 4 MiB: 0.15-0.20 s)
PIECE = 1 << 20
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, length: int) -> bytes:
    """Tag of a length-delimited field, then its length."""
    return _varint((field << 3) | 2) + _varint(length)


def _tensor_parts(name: str, arr, data: BinaryIO | None, data_name: str, offset: int):
    """(serialized tensor head, raw byte pieces to follow inline or None, bytes written to the data file)."""
    if isinstance(arr, Chunked):
        dtype, shape, nbytes = arr.dtype, arr.shape, math.prod(arr.shape) * arr.dtype.itemsize
        pieces = (memoryview(p).cast("B") for p in arr.pieces)
    else:
        dtype, shape = arr.dtype, arr.shape
        code = RAW_DTYPES.get(dtype)
        if code is None or dtype.byteorder == ">":
            return numpy_helper.from_array(arr, name).SerializeToString(), None, 0
        source = file_bytes(arr)
        if source is not None:
            nbytes, pieces = arr.nbytes, _read(*source, arr.nbytes)
        else:
            arr = np.ascontiguousarray(arr)
            raw = memoryview(arr.reshape(-1)).cast("B")
            nbytes, pieces = raw.nbytes, (raw[i:i + PIECE] for i in range(0, max(raw.nbytes, 1), PIECE))
    head = onnx.TensorProto(name=name, data_type=RAW_DTYPES[dtype], dims=shape)
    if data is not None and nbytes >= INLINE_LIMIT:
        for piece in pieces:
            data.write(piece)
        head.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(nbytes))):
            entry = head.external_data.add()
            entry.key, entry.value = k, v
        return head.SerializeToString(), None, nbytes
    return head.SerializeToString(), (nbytes, pieces), 0


def _read(f, offset: int, nbytes: int):
    """nbytes of a mapped weights file from offset, in PIECE-sized reads into one buffer (each piece is written
    before the next is read)."""
    buf = memoryview(bytearray(min(PIECE, nbytes)))
    for done in range(0, nbytes, PIECE):
        piece = buf[:min(PIECE, nbytes - done)]
        read_exactly(f, piece, offset + done)
        yield piece


def write_streaming(skeleton: onnx.ModelProto, arrays: Iterable[tuple[str, np.ndarray | Chunked]], f: BinaryIO,
                    data: BinaryIO | None = None, data_name: str = "") -> None:
    """The skeleton, then each (name, array) as an initializer; into `data` (named `data_name` in the
    model) when external data is wanted. A `Chunked` parameter is written block by block as it comes."""
    f.write(skeleton.SerializeToString(deterministic=True))
    offset = 0
    for name, arr in arrays:
        head, raw, written = _tensor_parts(name, arr, data, data_name, offset)
        offset += written
        nbytes = raw[0] if raw is not None else 0
        tensor_len = len(head) + (len(_key(_TENSOR_RAW_DATA, nbytes)) + nbytes if raw is not None else 0)
        graph_key = _key(_GRAPH_INITIALIZER, tensor_len)
        f.write(_key(_MODEL_GRAPH, len(graph_key) + tensor_len))
        f.write(graph_key)
        f.write(head)
        if raw is not None:
            f.write(_key(_TENSOR_RAW_DATA, nbytes))
            done = 0
            for piece in raw[1]:
                f.write(piece)
                done += piece.nbytes
            if done != nbytes:
                raise RuntimeError(f"internal: {name} streamed {done} bytes, its header says {nbytes}")
