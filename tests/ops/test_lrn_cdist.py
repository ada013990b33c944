"""ops/local_response_norm.py and ops/cdist.py, property-based against torch (see core_harness.py for what every
run_op case checks): local_response_norm (the decomposition, not ONNX LRN; large channels, alpha/beta <= 0; ranks
3 to 5, 16-bit and float64), cdist (p in 0, 0.5, 1, 2, 3.5, inf; broadcast batch dims; zero distances; the
difference form where torch's matmul form cancels); symbolic dims, and the diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import OPSET, SETTINGS, as_torch, close, covers, rand, refused, run_op

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _ops(model) -> set[str]:
    return {n.op_type for n in model.graph.node}


# ---------------- local_response_norm ----------------

@covers("local_response_norm")
@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 7), rest=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       size=st.integers(1, 8), alpha=st.sampled_from([1e-4, 0.5, 3.0]), beta=st.sampled_from([0.75, 1.3]),
       k=st.sampled_from([1.0, 2.0]), seed=st.integers(0, 99), sym=st.sampled_from([False, True, "all"]),
       opset=OPSET)
def test_local_response_norm_matches_torch(n, c, rest, size, alpha, beta, k, seed, sym, opset):
    """Ranks 3 to 5 (onnxruntime's LRN kernel takes only 4-d), windows wider than C, even sizes (ONNX's
    window is the mirror image of torch's there); every dim symbolic or none."""
    x = rand(n, c, *rest, seed=seed) * 2
    y, _ = run_op(f"x -> local_response_norm({size}, alpha={alpha}, beta={beta}, k={k})", x=x, sym=sym, opset=opset)
    close(y, F.local_response_norm(as_torch(x, double=True), size, alpha, beta, k).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_lowering(size):
    """Never ONNX LRN (its even-size window is torch's mirror image; onnxruntime's kernel is a running sum).
    torch's defaults."""
    model = archdsl.compile_source(f"model m(x: float32[B, 6, 4, 4]) -> y {{\n    y = x -> "
                                   f"local_response_norm({size})\n}}\n", opt_level=0)
    assert "LRN" not in _ops(model)
    x = rand(2, 6, 4, 4) * 30  # large enough that alpha=1e-4 matters
    (y,) = runtime.session(model, "cpu").run(None, {"x": x})
    close(y, torch.nn.LocalResponseNorm(size)(as_torch(x, double=True)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha, big", [(1e-4, 1e6), (1.0, 1e6), (1e-4, 1e20)])
def test_local_response_norm_far_from_a_large_channel(alpha, big):
    """One channel much larger than the others changes only its own window, as torch's (onnxruntime's LRN
    kernel, a running sum, gave 1.19 for 2.00 five channels away, and inf/nan at alpha=1)."""
    x = np.array([big, 1, 2, 3, 1.5, 0.7, 2.2, 1.1], np.float32).reshape(1, 8, 1, 1)
    y, _ = run_op(f"x -> local_response_norm(3, alpha={alpha})", x=x)
    want = F.local_response_norm(torch.from_numpy(x), 3, alpha).numpy()  # float32: 1e20 squared is inf there too
    assert np.isfinite(y).all()
    close(y, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("alpha, beta", [(-0.05, 0.75), (1e-4, -0.5), (1e-4, 0.0), (0.0, 0.75)])
def test_local_response_norm_takes_what_torch_takes(alpha, beta):
    """alpha or beta <= 0 (onnxruntime's LRN refused to load such a model)."""
    x = rand(2, 6, 3, 3, seed=3) * 2
    y, _ = run_op(f"x -> local_response_norm(3, alpha={alpha}, beta={beta})", x=x)
    close(y, F.local_response_norm(as_torch(x, double=True), 3, alpha, beta).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("size", [3, 4])
def test_local_response_norm_dtypes(dtype, size):
    """16-bit floats in float32 and rounded once; float64 throughout.
    bfloat16 is cast to and from inside the model (onnxruntime's Python API takes no bfloat16 arrays)."""
    x = rand(2, 5, 3, seed=1) * 3
    bf = dtype == "bfloat16"
    arg = 'cast(x, "bfloat16")' if bf else "x"
    call = f"local_response_norm({arg}, {size}, alpha=1.0)"
    body = f'cast({call}, "float32")' if bf else call
    model = archdsl.compile_source(f"model m(x: {'float32' if bf else dtype}[B, 5, 3]) -> y {{\n    y = {body}\n}}\n")
    if dtype == "bfloat16":
        feed = x
        rounded = torch.from_numpy(x).bfloat16().double()
    else:
        feed = x.astype(dtype)
        rounded = torch.from_numpy(feed).double()
    (y,) = runtime.session(model, "cpu").run(None, {"x": feed})
    assert y.dtype == feed.dtype
    tol = {"float16": 1e-3, "bfloat16": 8e-3, "float64": 1e-12}[dtype]
    close(y.astype(np.float64), F.local_response_norm(rounded, size, 1.0).numpy(), rtol=tol, atol=tol)


def test_local_response_norm_diagnostics():
    src = "model m(x: {t}) -> y {{\n    y = x -> {call}\n}}\n"
    refused(src.format(t="float32[B, 4, 3]", call="local_response_norm(0)"), "size must be at least 1")
    refused(src.format(t="float32[B, 4, 3]", call="local_response_norm(-2)"), "must not be negative")
    refused(src.format(t="float32[B, 4]", call="local_response_norm(3)"),
            r"expected an input \[N, C, \.\.\.\] of rank 3 or more, got \[B, 4\]")
    refused(src.format(t="int64[B, 4, 3]", call="local_response_norm(3)"), "must be a float tensor")
    refused(src.format(t="float32[B, 4, 3]", call="local_response_norm()"), "missing argument 'size'")


# ---------------- cdist ----------------

def _torch_cdist(a, b, p):
    return torch.cdist(as_torch(a, double=True), as_torch(b, double=True), float(p),
                       compute_mode="donot_use_mm_for_euclid_dist").numpy()


@covers("cdist")
@SETTINGS
@given(batch=st.lists(st.integers(1, 3), max_size=2), data=st.data(), rows=st.integers(1, 5),
       rows2=st.integers(1, 5), m=st.integers(1, 4), p=st.sampled_from([0, 0.5, 1, 2, 3.5, "inf"]),
       seed=st.integers(0, 99), sym=st.booleans(), opset=OPSET)
def test_cdist_matches_torch(batch, data, rows, rows2, m, p, seed, sym, opset):
    """x2's batch dims broadcast against x1's (1s, fewer dims); a row of x2 copies one of x1 (distance 0) and
    some coordinates agree exactly (p = 0 counts the others)."""
    batch2 = [data.draw(st.sampled_from([d, 1])) for d in batch][data.draw(st.integers(0, len(batch))):]
    a = np.round(rand(*batch, rows, m, seed=seed) * 2) / 2  # on a grid of 1/2: equal coordinates happen
    b = np.round(rand(*batch2, rows2, m, seed=seed + 1) * 2) / 2
    a[..., 0, :] = b[..., 0, :]
    sym = sym and len(batch2) == len(batch) > 0 and batch2[0] == batch[0]  # dim 0 of both is B
    y, _ = run_op(f"cdist(a, b, {p if p != 'inf' else chr(34) + p + chr(34)})", a=a, b=b, sym=sym, opset=opset)
    close(y, _torch_cdist(a, b, p), rtol=1e-5, atol=1e-5)


def test_cdist_shapes_and_symbolic_dims():
    g = archdsl.check_source("model m(a: float32[B, P, M], b: float32[R, M], c: float32[2, 1, 3, M]) -> (x, y) {\n"
                             "    x = cdist(a, b)\n    y = cdist(c, a, p=1)\n}\n")
    assert [str(v.type) for _, v in g.outputs] == ["float32[B, P, R]", "float32[2, B, 3, P]"]
    model = archdsl.compile_source("model m(a: float32[B, P, M], b: float32[R, M]) -> y {\n"
                                   "    y = cdist(a, b, \"inf\")\n}\n")
    a, b = rand(2, 3, 4), rand(5, 4, seed=1)
    (y,) = runtime.session(model, "cpu").run(None, {"a": a, "b": b})
    close(y, _torch_cdist(a, b, "inf"))


@pytest.mark.parametrize("p", [0, 0.5, 1, 2, 3.5, "inf"])
def test_cdist_of_points_without_coordinates_is_zero(p):
    """No features (0 fed to a symbolic M): every distance is 0, as torch's; p = "inf" gave -inf (ReduceMax
    of nothing)."""
    pp = f'"{p}"' if p == "inf" else p
    model = archdsl.compile_source(f"model m(a: float32[B, 3, M], b: float32[4, M]) -> y {{\n"
                                   f"    y = cdist(a, b, p={pp})\n}}\n")
    a, b = np.zeros((2, 3, 0), np.float32), np.zeros((4, 0), np.float32)
    (y,) = runtime.session(model, "cpu").run(None, {"a": a, "b": b})
    close(y, _torch_cdist(a, b, p))
    assert y.shape == (2, 3, 4) and not y.any()
    a, b = rand(2, 3, 4), rand(4, 4, seed=1)  # with features the guard changes nothing
    (y,) = runtime.session(model, "cpu").run(None, {"a": a, "b": b})
    close(y, _torch_cdist(a, b, p), rtol=1e-5, atol=1e-6)


def test_cdist_is_the_difference_form():
    """Near points far from the origin: the difference form is exact to float32 rounding of the inputs,
    where torch's default (the matmul expansion past 25 rows) loses everything."""
    rng = np.random.default_rng(0)
    a = (1000 + rng.standard_normal((40, 3))).astype(np.float32)
    b = (a + np.float32(1e-2) * rng.standard_normal((40, 3)).astype(np.float32)).astype(np.float32)
    y, _ = run_op("cdist(a, b)", a=a, b=b)
    exact = _torch_cdist(a, b, 2)
    close(y, exact, rtol=1e-5, atol=1e-4)
    mm = torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).numpy()  # torch's default: the matmul form
    assert np.abs(np.diag(mm) - np.diag(exact)).max() > 1e-3  # the failure this op avoids does happen
    model = archdsl.compile_source("model m(a: float32[40, 3], b: float32[40, 3]) -> y {\n"
                                   "    y = cdist(a, b)\n}\n", opt_level=0)
    assert "MatMul" not in _ops(model) and "Sqrt" in _ops(model)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("p", [2, 3.5, "inf"])
def test_cdist_dtypes(dtype, p):
    a, b = rand(2, 3, 4), rand(5, 4, seed=1)
    pp = f'"{p}"' if p == "inf" else p
    model = archdsl.compile_source(f"model m(a: {dtype}[2, 3, 4], b: {dtype}[5, 4]) -> y {{\n"
                                   f"    y = cdist(a, b, p={pp})\n}}\n")
    a, b = a.astype(dtype), b.astype(dtype)
    (y,) = runtime.session(model, "cpu").run(None, {"a": a, "b": b})
    assert y.dtype == a.dtype
    tol = 2e-3 if dtype == "float16" else 1e-12
    close(y.astype(np.float64), _torch_cdist(a, b, p), rtol=tol, atol=tol)


def test_cdist_diagnostics():
    src = "model m(a: {a}, b: {b}) -> y {{\n    y = cdist(a, b{rest})\n}}\n"
    ok = {"a": "float32[B, 3, 4]", "b": "float32[5, 4]"}
    refused(src.format(**ok, rest=", -1"), r"p must be >= 0 .*got -1")
    refused(src.format(**ok, rest=", \"-inf\""), r'p must be a number >= 0 or "inf"')
    refused(src.format(**ok, rest=", p=true"), r'p must be a number >= 0 or "inf"')
    refused(src.format(a="float32[B, 3, 4]", b="float32[5, 3]", rest=""),
            r"must have the same last dim \(the features compared\), got 4 and 3")
    refused(src.format(a="float32[B, 3, M]", b="float32[5, N]", rest=""), "got M and N")
    refused(src.format(a="float32[4]", b="float32[5, 4]", rest=""), r"x1 must be \[\.\.\., rows, features\]")
    refused(src.format(a="float32[3, 4]", b="float32[]", rest=""), r"x2 must be \[\.\.\., rows, features\]")
    refused(src.format(a="float32[2, 3, 4]", b="float32[3, 5, 4]", rest=""), "cannot broadcast cdist batch dims")
    refused(src.format(a="float32[3, 4]", b="float64[5, 4]", rest=""), "dtypes differ")
    refused(src.format(a="int64[3, 4]", b="int64[5, 4]", rest=""), "must be a float tensor")


def test_lrn_wider_than_the_channels_pads_them_at_most_c_minus_1():
    """A window past every channel reads zeros there: size 100 on 3 channels is torch's, and a size of
    2**63 - 1 built a Pad past any dim onnxruntime takes (the model failed to load)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for size in (100, 2**63 - 1):
        m = archdsl.compile_source(f"model m(x: float32[B, 3, 4, 4]) -> y {{ y = local_response_norm(x, {size}) }}")
        y = runtime.session(m).run(None, {"x": x})[0]
        if size == 100:
            np.testing.assert_allclose(y, F.local_response_norm(torch.from_numpy(x), size).numpy(), rtol=1e-5)
    with pytest.raises(archdsl.ArchError, match="pads the channels past the dim limit"):
        archdsl.check_source("model m(x: float32[B, C, 4, 4]) -> y { y = local_response_norm(x, 2 ** 40) }")
