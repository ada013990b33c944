"""A transposed matrix times a vector: onnxruntime 1.32's MatmulTransposeFusion folds the Transpose into a
FusedMatMul that read a 1-d right operand wrongly (a.T @ b gave a.reshape(6, 4) @ b, 2.3 off: review103 hunt),
so matmul lowers a vector on the right as a column."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime


@pytest.mark.parametrize("expr, shapes, ref", [
    ("a.T @ b", ((4, 6), (4,)), lambda a, b: a.T @ b),
    ("matmul(transpose(a, 0, 1), b)", ((4, 6), (4,)), lambda a, b: a.T @ b),
    ("transpose(a, 1, 2) @ b", ((3, 4, 6), (4,)), lambda a, b: a.transpose(0, 2, 1) @ b),
    ("permute(a, [1, 0, 2]) @ b", ((2, 3, 4), (4,)), lambda a, b: a.transpose(1, 0, 2) @ b),
    ("(a * 2.0).T @ b", ((5, 3), (5,)), lambda a, b: (a * 2).T @ b),
    ("b @ a.T", ((4, 6), (6,)), lambda a, b: b @ a.T),
])
@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_transposed_matrix_times_a_vector_is_numpys(expr, shapes, ref, level, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(dtype) for s in shapes)
    src = (f"model m(a: {dtype}[{', '.join(map(str, shapes[0]))}], b: {dtype}[{shapes[1][0]}]) -> y {{\n"
           f"    y = {expr}\n}}\n")
    y = runtime.session(archdsl.compile_source(src, opt_level=level)).run(None, {"a": a, "b": b})[0]
    np.testing.assert_allclose(y, ref(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)
