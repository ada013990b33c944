"""ops/bitwise.py against torch: bitwise and/or/xor/not of int64, int32 and bool tensors (with broadcasting and
numbers), Instant-NGP's spatial hash, the opset-18 requirement for integers, and the hints for Python's operators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl

from .core_harness import SETTINGS, SYM, covers, refused, run_op

torch = pytest.importorskip("torch")

_TORCH = {"bitwise_and": torch.bitwise_and, "bitwise_or": torch.bitwise_or, "bitwise_xor": torch.bitwise_xor}


@covers("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not")
@SETTINGS
@given(op=st.sampled_from(sorted(_TORCH)), dtype=st.sampled_from(["int64", "int32", "bool"]),
       seed=st.integers(0, 99), sym=SYM, row=st.booleans())
def test_bitwise_ops_match_torch(op, dtype, seed, sym, row):
    rng = np.random.default_rng(seed)
    draw = (lambda s: rng.random(s) > 0.5) if dtype == "bool" else (lambda s: rng.integers(-2**20, 2**20, s))
    a, b = draw((3, 4)).astype(dtype), draw((1, 4) if row else (3, 4)).astype(dtype)
    y, _ = run_op(f"{op}(a, b)", a=a, b=b, sym=sym)
    np.testing.assert_array_equal(y, _TORCH[op](torch.from_numpy(a), torch.from_numpy(b)).numpy())
    n, _ = run_op("bitwise_not(a)", a=a, sym=sym)
    np.testing.assert_array_equal(n, torch.bitwise_not(torch.from_numpy(a)).numpy())


def test_the_spatial_hash_of_a_hash_grid_matches_torch():
    """Instant-NGP: (x * 1) ^ (y * 2654435761) ^ (z * 805459861) mod T, with a number beside each tensor."""
    rng = np.random.default_rng(0)
    p = rng.integers(0, 2**16, (64, 3))
    y, _ = run_op("bitwise_xor(bitwise_xor(p[:, 0] * 1, p[:, 1] * 2654435761), p[:, 2] * 805459861) % 524288", p=p)
    t = torch.from_numpy(p)
    np.testing.assert_array_equal(y, ((t[:, 0] * 1 ^ t[:, 1] * 2654435761) ^ t[:, 2] * 805459861) % 524288)
    m, _ = run_op("bitwise_and(p, 255)", p=p)
    np.testing.assert_array_equal(m, p & 255)


def test_integer_bitwise_ops_need_opset_18_and_floats_are_refused():
    src = "model m(a: int64[B, 3], b: bool[B, 3]) -> (y, z) {\n    y = bitwise_xor(a, a)\n    z = bitwise_not(b)\n}\n"
    with pytest.raises(archdsl.ArchError, match=r"bitwise_xor: ONNX BitwiseXor is in opset 18 and later; this build "
                                                r"targets opset 17"):
        archdsl.compile_source(src, opset=17)
    archdsl.compile_source(src.replace("bitwise_xor(a, a)", "a"), opset=17)  # a bool's not is Not, at any opset
    refused("model m(x: float32[B, 3]) -> y {\n    y = bitwise_and(x, x)\n}\n", "takes integer or bool tensors")
    refused("model m(a: int64[B, 3], b: int32[B, 3]) -> y {\n    y = bitwise_or(a, b)\n}\n", "dtypes differ")


@pytest.mark.parametrize("op, said", [("a ^ a", "bitwise_xor(a, b)"), ("a & a", "bitwise_and(a, b)"),
                                      ("a | a", "bitwise_or(a, b)"), ("~a", "bitwise_not(x)")])
def test_pythons_bitwise_operators_say_which_op(op, said):
    with pytest.raises(archdsl.ArchError, match="unexpected character") as e:
        archdsl.check_source(f"model m(a: int64[B, 3]) -> y {{\n    y = {op}\n}}\n")
    assert f"is {said}" in e.value.message


@pytest.mark.parametrize("expr, said", [("bitwise_xor(b, 2)", 'no arithmetic on bool tensors; cast(x, "int64") first'),
                                        ("bitwise_and(i, 2.0)", "the number 2.0 is a float; bitwise ops take "
                                                                "integers")])
def test_a_number_beside_a_bitwise_op_gets_integer_advice(expr, said):
    """The arithmetic ops' advice, cast(x, "float32"), is refused by a bitwise op (review64)."""
    refused(f"model m(b: bool[B, 3], i: int32[B, 3]) -> y {{\n    y = {expr}\n}}\n", said.replace("(", r"\(")
            .replace(")", r"\)"))
