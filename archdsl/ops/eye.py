"""eye (torch.eye): an identity matrix, the one op with no tensor input. Its sizes are compile-time numbers:
EyeLike over a ConstantOfShape of them, a few bytes in the file where onnxruntime's CPU provider has an EyeLike
kernel for the dtype (measured: float16/32/64, int32, int64, uint64); a dense constant for the others (bool,
int8, uint8, bfloat16; eye(8192) would put 256 MiB of float32 in the file)."""

from __future__ import annotations

import numpy as np

from ..types import DTYPES, TensorType
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []


def _cols(a: dict) -> int:
    return a["n"] if a["m"] is None else a["m"]


def _infer(ins, a):
    if ins:
        fail("eye: takes no tensor, only sizes: eye(n), eye(n, m, dtype=\"float32\")")
    return [TensorType(DTYPES[a["dtype"]], (a["n"], _cols(a)))]


_EYELIKE = ("float16", "float32", "float64", "int32", "int64", "uint64")


def _lower(e, ins, outs, c):
    t = c.out_types[0]
    if t.dtype.label not in _EYELIKE:
        e.op("Identity", [e.const(np.eye(t.shape[0], t.shape[1], dtype=t.dtype.numpy))], outputs=outs)
        return
    from onnx import numpy_helper
    zeros = e.op("ConstantOfShape", [e.const(np.array(t.shape, dtype=np.int64))],
                 value=numpy_helper.from_array(np.zeros(1, dtype=t.dtype.numpy)))
    e.op("EyeLike", [zeros], outputs=outs)


# an identity over a run-time size (a graph's A + I over N nodes) compares positions instead
_SYMBOLIC = ("an identity of a run-time size is a comparison of positions: p = positions(x, dim=1), then "
             "cast(eq(unsqueeze(p, 1), unsqueeze(p, 0)), \"float32\") is [N, N]")

register(OpDef(
    name="eye", inputs=(), category="math",
    attrs=(Attr("n", "int", symbolic=_SYMBOLIC), Attr("m", "int?", None, symbolic=_SYMBOLIC),
           Attr("dtype", "str", "float32", choices=tuple(DTYPES))),
    infer=_infer, lower=_lower, cost=lambda c: 0,
    doc="The [n, m] identity matrix (m = n by default): ones on the diagonal, zeros elsewhere, of any dtype "
        "(torch.eye). A constant: n and m are compile-time numbers (a symbolic dim is refused; over a run-time "
        "size N, with p = positions(x, dim=1) of a tensor x with dim 1 of size N, "
        "cast(eq(unsqueeze(p, 1), unsqueeze(p, 0)), \"float32\") is the [N, N] identity); no gradient "
        "(no tensor input).",
))
