"""ops/cumprod.py, ops/repeat_interleave.py and ops/eye.py, property-based against torch (see core_harness.py
for what every run_op case checks): cumprod (with zeros, long dims, integer dtypes), repeat_interleave (any dim,
dim=none, symbolic dims, a count of 0), eye; and the diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import OPSET, SETTINGS, SYM, as_torch, close, covers, dim, rand, refused, run_op

torch = pytest.importorskip("torch")


def _with_zeros(shape, seed: int) -> np.ndarray:
    """Normal draws, about a quarter of them exact zeros (a product's zeros are where formulas with log or
    division go wrong)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return np.array(np.where(rng.random(shape) < 0.25, 0.0, x), np.float32)


# ---------------- cumprod ----------------

@covers("cumprod")
@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99), sym=SYM,
       opset=OPSET, dtype=st.sampled_from(["float32", "int64", "int32", "bool"]))
def test_cumprod_matches_torch(shape, data, seed, sym, opset, dtype):
    """Any dim but a symbolic one; zeros come out where torch's do; int32 and bool multiply in int64."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    sym = sym and d % r != 0
    rng = np.random.default_rng(seed)
    x = (_with_zeros(shape, seed) if dtype == "float32" else rng.random(shape) < 0.8 if dtype == "bool"
         else rng.integers(-3, 4, shape).astype(dtype))
    y, _ = run_op(f"cumprod(x, {d})", x=x, sym=sym, opset=opset)
    want = torch.cumprod(as_torch(x), d).numpy()
    assert y.dtype == want.dtype, (y.dtype, want.dtype)
    if dtype == "float32":
        close(y, want, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(y == 0, want == 0)
    else:
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("n", [2, 3, 8, 33, 1000])
def test_cumprod_of_long_dims(n):
    """ceil(log2 n) steps: 10 for 1000. Integers exactly (wrapping in int64 as torch's), floats near 1 within
    float32 rounding of torch's sequential product."""
    rng = np.random.default_rng(n)
    x = (1 + rng.uniform(-0.01, 0.01, (2, n))).astype(np.float32)
    y, _ = run_op("cumprod(x, 1)", x=x)
    close(y, torch.cumprod(torch.from_numpy(x), 1).numpy(), rtol=2e-5)
    i = rng.integers(-3, 4, (2, n))
    y, _ = run_op("cumprod(i, -1)", i=i)
    np.testing.assert_array_equal(y, torch.cumprod(torch.from_numpy(i), -1).numpy())


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_cumprod_of_other_float_dtypes(dtype):
    """float16 is multiplied in float32 and rounded once, as torch's CPU kernel accumulates it."""
    x = (1 + np.random.default_rng(0).uniform(-0.2, 0.2, (3, 40))).astype(dtype)
    model = archdsl.compile_source(f"model m(x: {dtype}[B, 40]) -> y {{\n    y = cumprod(x, 1)\n}}\n")
    (y,) = runtime.session(model, "cpu").run(None, {"x": x})
    assert y.dtype == x.dtype
    close(y.astype(np.float64), torch.cumprod(torch.from_numpy(x), 1).double().numpy(),
          rtol=1e-3 if dtype == "float16" else 1e-12)


@pytest.mark.parametrize("xs", [[0.0] + [2.0] * 199, [0.0, 1e20, 1e20, 2.0], [1e-30, 1e-30, 1e30, 1e30],
                                [0.5, 0.0, 1e30, 1e30], [1e30] * 3 + [1e-30] * 3])
def test_cumprod_of_float32_past_its_range_in_between_as_torch(xs):
    """Multiplied in float64 as torch's CPU kernel: the scan's segments of 2^128 were inf before they met the
    0 (NaN where torch gives 0), and 1e-30 * 1e-30 * 1e30 underflowed to 0 (torch: 1e-30)."""
    x = np.array([xs], np.float32)
    y, _ = run_op("cumprod(x, 1)", x=x)
    np.testing.assert_array_equal(y, torch.cumprod(torch.from_numpy(x), 1).numpy())


@pytest.mark.parametrize("dtype, xs", [("float16", [0.0] + [2.0] * 199), ("float64", [0.0] + [2.0] * 1099),
                                       ("float32", [0.0] + [3e38] * 17), ("float32", [0.0] + [1e20] * 33),
                                       ("float32", [2.0, 0.0, np.inf, 3.0]), ("float32", [np.inf, 0.0, 1.0]),
                                       ("float32", [0.0, np.nan, 1.0]), ("float16", [0.0, 1.0, -np.inf])])
def test_cumprod_is_zero_from_a_zero_on_as_torchs_loop(dtype, xs):
    """The scan multiplies the factors after a 0 into segments first, which overflowed to inf before they
    met it: NaN where torch gives 0 (an inf or NaN among the factors gives NaN in both)."""
    x = np.array([xs], dtype)
    model = archdsl.compile_source(f"model m(x: {dtype}[B, {len(xs)}]) -> y {{\n    y = cumprod(x, 1)\n}}\n")
    (y,) = runtime.session(model, "cpu").run(None, {"x": x})
    np.testing.assert_array_equal(y, torch.cumprod(torch.from_numpy(x), 1).numpy())


def test_cumprod_keeps_the_sign_of_its_zeros():
    """Zeroing from a 0 on wrote +0 where torch's loop gives -0 (a -0 factor, or a 0 after a negative)."""
    for xs in ([-0.0, 2.0], [-1.0, 0.0, 5.0], [0.0, -3.0, 2.0]):
        x = np.array([xs], np.float32)
        y, _ = run_op("cumprod(x, 1)", x=x)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(torch.cumprod(torch.from_numpy(x), 1).numpy()))


def test_cumprod_of_a_scalar_is_the_scalar():
    y, _ = run_op("cumprod(x, -1)", x=np.array(-2.5, np.float32))
    assert y.shape == () and y == -2.5


def test_cumprod_diagnostics():
    refused("model m(x: float32[B, T]) -> y {\n    y = cumprod(x, 1)\n}\n",
            r"cumprod: dim 1 of \[B, T\] must be a known size")
    refused("model m(x: float32[B, 4]) -> y {\n    y = cumprod(x, 2)\n}\n", "dim 2 is out of range")
    refused("model m(x: float32[B, 4]) -> y {\n    y = cumprod(x)\n}\n", "missing argument 'dim'")


# ---------------- repeat_interleave ----------------

@covers("repeat_interleave")
@SETTINGS
@given(shape=st.lists(dim, min_size=0, max_size=3), data=st.data(), repeats=st.integers(0, 3),
       seed=st.integers(0, 99), sym=st.sampled_from([False, True, "all"]), opset=OPSET,
       dtype=st.sampled_from(["float32", "int64", "bool"]))
def test_repeat_interleave_matches_torch(shape, data, repeats, seed, sym, opset, dtype):
    r = len(shape)
    d = data.draw(st.sampled_from([None] + list(range(-r, r))))
    x = rand(*shape, seed=seed)
    x = np.array(x > 0 if dtype == "bool" else x * 5, dtype)
    y, _ = run_op(f"repeat_interleave(x, {repeats}" + ("" if d is None else f", dim={d}") + ")", x=x,
                  sym=sym if shape else False, opset=opset)
    np.testing.assert_array_equal(y, torch.repeat_interleave(as_torch(x), repeats, dim=d).numpy())


def test_repeat_interleave_shapes_and_forms():
    g = archdsl.check_source("model m(x: float32[B, T, 3]) -> (a, b, c) {\n    a = x -> repeat_interleave(2, 1)\n"
                             "    b = repeat_interleave(x, 3)\n    c = repeat_interleave(x, repeats=0, dim=-1)\n}\n")
    assert [str(v.type) for _, v in g.outputs] == ["float32[B, 2*T, 3]", "float32[9*B*T]", "float32[B, T, 0]"]


def test_repeat_interleave_diagnostics():
    refused("model m(x: float32[B, 4]) -> y {\n    y = repeat_interleave(x, -1, 0)\n}\n", "must not be negative")
    refused("model m(x: float32[B, 4]) -> y {\n    y = repeat_interleave(x, 2, 2)\n}\n", "dim 2 is out of range")
    refused("model m(x: float32[]) -> y {\n    y = repeat_interleave(x, 2, 0)\n}\n", "a 0-d tensor has no dim 0")
    refused("model m(x: float32[B, 4], r: int64[4]) -> y {\n    y = repeat_interleave(x, r, 1)\n}\n",
            "argument 'repeats' expects an integer")


# ---------------- eye ----------------

@covers("eye")
@SETTINGS
@given(n=st.integers(0, 5), m=st.one_of(st.none(), st.integers(0, 5)), opset=OPSET,
       dtype=st.sampled_from(["float32", "float64", "float16", "int64", "int32", "bool"]))
def test_eye_matches_torch(n, m, opset, dtype):
    """A constant: the model's input is only there to have one."""
    call = f'eye({n}' + ("" if m is None else f", {m}") + f', dtype="{dtype}")'
    y, _ = run_op(f'cast({call}, "float32") + x', x=np.zeros((), np.float32), opset=opset)
    np.testing.assert_array_equal(y, torch.eye(n, n if m is None else m).numpy())
    g = archdsl.check_source(f'model m() -> y {{\n    y = eye({n}, m={m if m is not None else "none"}, '
                             f'dtype="{dtype}")\n}}\n')
    assert str(g.outputs[0][1].type) == f"{dtype}[{n}, {n if m is None else m}]"


@pytest.mark.parametrize("level", [0, 2])
def test_a_large_eye_is_not_written_out(level):
    """EyeLike over ConstantOfShape: eye(1024) was 4 MiB of float32 in the file."""
    model = archdsl.compile_source("model m(x: float32[B, 1024]) -> y {\n    y = x @ eye(1024)\n}\n",
                                   opt_level=level)
    assert model.ByteSize() < 4096 and "EyeLike" in {n.op_type for n in model.graph.node}


def test_eye_in_arithmetic():
    x = rand(2, 3)
    y, _ = run_op("x @ eye(3) + 2 * eye(2, 3)", x=x)
    close(y, x + 2 * np.eye(2, 3))


def test_eye_diagnostics():
    refused("model m(x: float32[B, 4]) -> y {\n    y = eye(B)\n}\n", "'n' must be known when the graph is built")
    refused("model m(x: float32[B, 4]) -> y {\n    y = x -> eye(3)\n}\n", "argument 'n' expects an integer")
    refused("model m(x: float32[B, 4]) -> y {\n    y = eye(2, dtype=\"int8\")\n}\n", "'dtype' must be one of")
    refused("model m(x: float32[B, 4]) -> y {\n    y = eye(-2)\n}\n", "must not be negative")
