"""What an op's lowering rule writes into: ONNX nodes and constants, named deterministically."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from ..diagnostics import utf8
from ..ops import SharedValues, fail

__all__ = ["CONSTANT_BYTES", "Emitter"]

CONSTANT_BYTES = 2**30


class Emitter(SharedValues):
    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.prefix = ""
        self.doc = ""
        self._count = 0
        self._const_cache: dict[tuple, str] = {}
        self.const_bytes = 0  # of every constant so far (the parameters are not constants)
        self._largest: tuple[int, str] = (0, "")  # its bytes, and where in the spec it is made
        self.dim_sources: dict = {}  # a symbolic dim (Sym) -> (value, axis) that has it
        self._dim_cache: dict = {}

    def at(self, prefix: str, doc: str) -> None:
        """Name what follows after one IR node (its layer name and source location)."""
        self.prefix = prefix
        self.doc = utf8(doc)  # the spec's file name, as the OS gave it

    def _fresh(self, stem: str) -> str:
        self._count += 1
        return f"{self.prefix}/{stem}_{self._count}"

    def op(self, op_type: str, inputs, outputs=None, n_out: int = 1, domain: str = "", **attrs):
        name = self._fresh(op_type)
        if outputs is None:
            outputs = [f"{name}:{i}" for i in range(n_out)]
        node = helper.make_node(op_type, list(inputs), list(outputs), name=f"{name}@{self.doc}" if self.doc else name,
                                doc_string=self.doc, domain=domain or None,
                                **{k: v for k, v in attrs.items() if v is not None})
        self.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def const(self, array: np.ndarray, stem: str = "const", shared: bool = True) -> str:
        """A constant as an initializer; equal constants are shared, unless `shared` is false (a tool that
        rewrites one reader assumes it is the only one: onnxruntime's quantizer with a Pad's fill)."""
        array = np.asarray(array)
        if array.nbytes > CONSTANT_BYTES:  # before its bytes are copied for the key (eye(50000): minutes, 9 GB)
            self._too_many(array.nbytes)
        key = (array.dtype.str, array.shape, array.tobytes())
        if shared and key in self._const_cache:
            return self._const_cache[key]
        if self.const_bytes + array.nbytes > CONSTANT_BYTES:
            self._too_many(array.nbytes)
        self.const_bytes += array.nbytes  # a shared constant is one initializer, counted once
        self._largest = max(self._largest, (array.nbytes, self.doc))
        name = self._fresh(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        if shared:
            self._const_cache[key] = name
        return name

    def _too_many(self, nbytes: int) -> None:
        """Constants past protobuf's 2 GiB were an internal EncodeError after minutes."""
        big, where = self._largest
        largest = f"; the largest so far, {_size(big)}, is made at {where}" if big > nbytes and where else ""
        fail(f"this op makes a constant of {_size(nbytes)} as it is written to ONNX, which takes the model's "
             f"constants {_size(self.const_bytes + nbytes - CONSTANT_BYTES)} past the {_size(CONSTANT_BYTES)} "
             f"they may take (protobuf holds 2 GiB besides external data){largest}; make them smaller")

    def note_dims(self, value: str, shape) -> None:
        """Remember where each symbolic dim of a value lowered so far can be read at run time (the first
        value that has it: a model input, or a node's output before any later reader)."""
        for axis, d in enumerate(shape):
            if not isinstance(d, int):
                self.dim_sources.setdefault(d, (value, axis))

    def dim(self, d) -> str | None:
        """A symbolic dim's run-time size as an int64 [1] tensor, read from the shape of a value noted
        earlier; None when no such value has it."""
        if d not in self._dim_cache:
            src = self.dim_sources.get(d)
            if src is None:
                return None
            self._dim_cache[d] = self.op("Shape", [src[0]], start=src[1], end=src[1] + 1)
        return self._dim_cache[d]


def _size(n: int) -> str:
    if n < 2**20:
        return f"{n:,} bytes"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
