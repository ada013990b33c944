"""ops/reductions.py, property-based against torch (see core_harness.py for what every run_op case checks):
var/std with correction, logsumexp, normalize, cosine_similarity; their edge cases (no degrees of freedom,
rows of -inf, zero rows, broadcast inputs) and diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import NEWEST, OPSET, SETTINGS, SYM, as_torch, b, close, covers, dim, rand, refused, run_op

SYM_ALL = st.sampled_from([False, True, "all"])  # "all": every dim of x symbolic, counts read at run time

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a: np.ndarray):
    return as_torch(a, double=True)


def _dims(draw, r: int):
    """none, or a non-empty list of distinct dims of a rank-r tensor, some negative."""
    if draw(st.booleans()):
        return None
    axes = draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r, unique=True))
    return [a - r if draw(st.booleans()) else a for a in axes]


# ---------------- var, std ----------------

@covers("var", "std")
@pytest.mark.parametrize("fn", ["var", "std"])
@SETTINGS
@given(shape=st.lists(st.integers(2, 4), min_size=1, max_size=3), data=st.data(), keepdim=st.booleans(),
       correction=st.sampled_from([0, 1, 0.5, -1]), opset=OPSET, sym=SYM_ALL)
def test_var_std_match_torch(fn, shape, data, keepdim, correction, opset, sym):
    x = rand(*shape, seed=len(shape)) * 3
    d = _dims(data.draw, len(shape))
    y, _ = run_op(f"{fn}(x, dim={d if d is not None else 'none'}, correction={correction}, keepdim={b(keepdim)})",
                  x=x, opset=opset, sym=sym)
    want = getattr(torch, fn)(_t(x), dim=d, correction=correction, keepdim=keepdim).numpy()
    close(y, want)


@pytest.mark.parametrize("fn", ["var", "std"])
@pytest.mark.parametrize("batch, correction", [(1, 1), (2, 2), (2, 3), (3, 1)])
def test_var_over_a_symbolic_dim_divides_like_torch(fn, batch, correction):
    """N known only at run time: the divisor is max(0, N - correction), inf or nan where it is 0, as torch."""
    x = rand(batch, 3, seed=batch)
    y, _ = run_op(f"{fn}(x, 0, correction={correction})", x=x, sym=True)
    with pytest.warns(UserWarning) if batch - correction <= 0 else _no_warning():
        want = getattr(torch, fn)(_t(x), 0, correction=correction).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("opset", [17, NEWEST])
def test_std_of_float16_is_computed_in_float32(opset):
    """Squares of 300 overflow float16 (65504): the statistics are taken in float32, as torch's."""
    x = np.array([[300.0, -300.0, 100.0, 0.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    y, _ = run_op("cast(std(cast(x, 'float16'), 1), 'float32')", x=x, opset=opset)
    want = torch.std(torch.tensor(x).half(), 1).float().numpy()
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want, rtol=1e-3)


def test_var_and_std_of_float32_are_computed_in_float64():
    """As torch's CPU kernel: onnxruntime's float32 ReduceMean sums in float32, and a mean of 1e4 with spread
    1e-3 gave a variance 4e-3 off (torch 5e-8); squares of 1e19 made the std inf."""
    rng = np.random.default_rng(0)
    x = (1e4 + 1e-3 * rng.standard_normal((2, 4096))).astype(np.float32)
    for fn in ("var", "std"):
        y, _ = run_op(f"{fn}(x, 1)", x=x)
        want = getattr(torch, fn)(torch.from_numpy(x).double(), 1).numpy()
        np.testing.assert_allclose(y, want, rtol=1e-6)
    x = np.array([[1e19, -2e19, 3e19, 5e18], [1e-25, -2e-25, 3e-25, 5e-26]], np.float32)
    y, _ = run_op("std(x, 1)", x=x)
    np.testing.assert_allclose(y, torch.std(torch.from_numpy(x), 1).numpy(), rtol=1e-6)


# ---------------- logsumexp ----------------

@covers("logsumexp")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), keepdim=st.booleans(), opset=OPSET,
       sym=SYM_ALL, scale=st.sampled_from([1.0, 100.0]))
def test_logsumexp_matches_torch(shape, data, keepdim, opset, sym, scale):
    """Values of +-100s: exp overflows float32 without the max subtracted."""
    x = (rand(*shape, seed=len(shape)) * scale).astype(np.float32)
    d = _dims(data.draw, len(shape)) or [0]
    y, _ = run_op(f"logsumexp(x, {d}, keepdim={b(keepdim)})", x=x, opset=opset, sym=sym)
    close(y, torch.logsumexp(_t(x), d, keepdim=keepdim).numpy())


def test_logsumexp_of_infinite_rows_is_as_torch():
    x = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0], [-np.inf, 0.0, 1.0], [88.0, 89.0, 90.0]],
                 np.float32)
    y, _ = run_op("logsumexp(x, [1])", x=x)
    np.testing.assert_allclose(y, torch.logsumexp(torch.tensor(x), 1).numpy(), rtol=1e-6)
    assert y[0] == -np.inf and y[1] == np.inf


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_logsumexp_of_integers_is_float32_as_torch(dtype):
    x = np.array([[1, 2, 3], [-4, 0, 5]]).astype(dtype)
    y, _ = run_op("logsumexp(x, [0, 1])", x=x)
    want = torch.logsumexp(torch.tensor(x), (0, 1)).numpy()
    assert y.dtype == want.dtype == np.float32
    close(y, want)


# ---------------- normalize ----------------

@covers("normalize")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), p=st.sampled_from([2.0, 1.0, 3.0, 0.5]),
       opset=OPSET, sym=SYM_ALL, zero_row=st.booleans())
def test_normalize_matches_torch(shape, data, p, opset, sym, zero_row):
    """Unit p-norm rows; a zero row stays zero (divided by eps)."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    x = rand(*shape, seed=r)
    if zero_row:
        x[(0,) * (r - 1)] = 0.0 if r > 1 else x[0]
    y, _ = run_op(f"normalize(x, p={p}, dim={d})", x=x, opset=opset, sym=sym)
    close(y, F.normalize(_t(x), p=p, dim=d).numpy())


def test_normalize_by_default_is_along_dim_1_with_eps():
    x = np.array([[3.0, 4.0], [1e-14, 0.0]], np.float32)
    y, _ = run_op("x -> normalize", x=x)
    close(y, F.normalize(torch.tensor(x)).numpy(), rtol=1e-6, atol=0)
    y, _ = run_op("normalize(x, eps=0.1)", x=x)
    close(y, F.normalize(torch.tensor(x), eps=0.1).numpy(), rtol=1e-6, atol=0)


# ---------------- cosine_similarity ----------------

@covers("cosine_similarity")
@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), opset=OPSET, sym=SYM)
def test_cosine_similarity_matches_torch_with_broadcasting(shape, data, opset, sym):
    """x2 has some dims of 1 (or fewer dims): both are broadcast before the norms, as torch's."""
    r = len(shape)
    shape2 = [data.draw(st.sampled_from([s, 1])) for s in shape][data.draw(st.integers(0, r - 1)):]
    d = data.draw(st.integers(-r, r - 1))
    x1, x2 = rand(*shape, seed=r), rand(*shape2, seed=r + 1)
    y, _ = run_op(f"cosine_similarity(x1, x2, dim={d})", x1=x1, x2=x2, opset=opset, sym=sym and shape2[:1] != [1]
                  and len(shape2) == r)
    close(y, F.cosine_similarity(_t(x1), _t(x2), dim=d).numpy())


def test_cosine_similarity_clamps_each_norm_as_torch_2():
    """torch 2.x: x1 / max(||x1||, eps) times x2 / max(||x2||, eps), not x1.x2 / max(||x1|| ||x2||, eps)
    (torch 1.x): a tiny x1 against a unit x2 gives ||x1|| / eps, not 1; two parallel vectors of norm 1e-5 give
    1 (their product of norms, 1e-10, is below eps: torch 1.x gave 0.01)."""
    x1 = np.array([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [1e-5, 0.0, 0.0]], np.float32)
    x2 = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0], [2e-5, 0.0, 0.0]], np.float32)
    y, _ = run_op("cosine_similarity(x1, x2)", x1=x1, x2=x2)
    want = F.cosine_similarity(torch.tensor(x1), torch.tensor(x2)).numpy()
    close(y, want, rtol=1e-6, atol=0)
    assert abs(y[0] - 0.1) < 1e-6 and abs(y[3] - 1.0) < 1e-6  # 1e-9 / 1e-8; parallel


# ---------------- diagnostics ----------------

@pytest.mark.parametrize("text, words", [
    ("var(x, 1, correction=3)", r"var: correction=3 leaves no degrees of freedom over 3 elements of \[2, 3\]"),
    ("std(x[:, :1], 1)", r"std: correction=1 leaves no degrees of freedom over 1 element of \[2, 1\]"),
    ("var(cast(x, 'int64'))", "var: needs a float tensor, got int64"),
    ("std(x, 2)", "dim 2 is out of range for a tensor of rank 2"),
    ("var(x, [1, -1])", "dim 1 appears more than once"),
    ("logsumexp(x)", "logsumexp.*dim"),
    ("normalize(x, p=0)", "normalize: p must be > 0, got 0"),
    ("normalize(x, eps=-1)", "normalize: eps must be >= 0"),
    ("normalize(x, dim=2)", "normalize: dim 2 is out of range"),
    ("normalize(m)", "normalize: input must be a float tensor, got bool"),
    ("normalize(sum(x))", "normalize: needs a tensor of at least 1 dim"),
    ("cosine_similarity(x, x[:, :2])", "cannot broadcast cosine_similarity inputs"),
    ("cosine_similarity(x, cast(x, 'float16'))", r"cosine_similarity: dtypes differ \(float32 vs float16\)"),
    ("cosine_similarity(x, m)", "cosine_similarity: x2 must be a float tensor, got bool"),
    ("cosine_similarity(x, x, dim=-3)", "cosine_similarity: dim -3 is out of range"),
    ("cosine_similarity(sum(x), sum(x), dim=0)", "cosine_similarity: needs tensors of at least 1 dim"),
])
def test_refusals_name_the_problem(text, words):
    refused(f"model m(x: float32[2, 3], m: bool[2, 3]) -> y {{ y = {text} }}", words)


@pytest.mark.parametrize("opset", [17, 19, 20, None])
def test_amax_and_amin_of_bools_at_every_opset(opset):
    """ONNX ReduceMax/ReduceMin take bool from opset 20; below, the build refused amax of a mask (torch takes
    it). They are any and all: the reduction runs over int32 there and is cast back."""
    import archdsl
    from archdsl import runtime
    src = "model m(x: float32[B, 8]) -> (a, b) {\n    m = x > 0.0\n    a = amax(m, dim=[1])\n" \
          "    b = amin(m, dim=[0], keepdim=true)\n}\n"
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    x[0], x[1] = 1, -1
    a, b = runtime.session(archdsl.compile_source(src, opset=opset), "cpu").run(None, {"x": x})
    assert a.dtype == b.dtype == np.bool_
    np.testing.assert_array_equal(a, torch.amax(torch.from_numpy(x > 0), dim=1).numpy())
    np.testing.assert_array_equal(b, torch.amin(torch.from_numpy(x > 0), dim=0, keepdim=True).numpy())


@pytest.mark.parametrize("op, words", [("mean", "the mean of no elements is NaN"),
                                       ("amax", "torch refuses amax over no elements"),
                                       ("amin", "torch refuses amin over no elements")])
def test_a_reduction_over_an_empty_dim_is_refused(op, words):
    """onnxruntime gave 0 for the mean and -inf for amax of x[..., 4:4]; torch NaN, and an error. sum is 0."""
    src = f"model m(x: float32[B, 3, 8]) -> y {{\n    y = {op}(x[:, :, 4:4], [2])\n}}\n"
    with pytest.raises(archdsl.ArchError, match=f"{op}: dim 2 of .* is empty: {words}"):
        archdsl.check_source(src)
    archdsl.check_source(src.replace(op, "sum"))


@pytest.mark.parametrize("call, words", [("global_avgpool(x)", "global_avgpool: .* is empty"),
                                         ("global_maxpool(x)", "global_maxpool: .* is empty"),
                                         ("maxpool1d(x, 1)", "maxpool1d: the input's length is 0"),
                                         ("conv1d(x, 2, 1)", "conv1d: the input's length is 0")])
def test_a_pool_or_conv_over_an_empty_dim_is_refused(call, words):
    """They built, and onnxruntime failed inside GlobalAveragePool (torch: NaN, or an error)."""
    src = f"model m(z: float32[2, 4, 3]) -> y {{\n    x = z[:, :, 3:]\n    y = {call}\n}}\n"
    with pytest.raises(archdsl.ArchError, match=words):
        archdsl.check_source(src)


@pytest.mark.parametrize("call", ["instancenorm(t)", "group_norm(t, 1)", "layernorm(t, [0])",
                                  "adaptive_avgpool1d(t, 4)", "adaptive_maxpool1d(t, 1)", "conv_transpose1d(t, 4, 3)"])
def test_a_layer_over_an_empty_input_is_refused(call):
    """instance_norm and group_norm of x[:, :, 5:] built, and onnxruntime died of a segfault; an adaptive pool
    gave 0 or -inf, or 'division by zero'; a transposed conv its bias alone."""
    src = f"model m(x: float32[2, 3, 5]) -> y {{\n    t = x[:, :, 5:]\n    y = {call}\n}}\n"
    with pytest.raises(archdsl.ArchError, match=r"its input float32\[2, 3, 0\] is empty"):
        archdsl.check_source(src)


@pytest.mark.parametrize("decl, shapes", [("[B, 4, T]", [(0, 4, 3), (3, 4, 7)]), ("[B, 4, 5]", [(0, 4, 5)]),
                                          ("[B, 4]", [(0, 4), (2, 4)]), ("[B, 4, H, W]", [(0, 4, 3, 5), (2, 4, 3, 5)])])
@pytest.mark.parametrize("opset", [17, NEWEST])
def test_group_norm_takes_an_empty_batch_as_torch_does(decl, shapes, opset):
    """Its Reshape to [0, G, -1] failed on a batch of 0 (ONNX cannot infer -1 from no elements); torch's
    GroupNorm gives an empty result. Symbolic spatial sizes are multiplied at run time."""
    for dtype in ("float32", "float64"):
        model = archdsl.compile_source(f"model a(x: {dtype}{decl}) -> y {{\n    y = x -> group_norm(2) as gn\n}}\n",
                                       opset=opset)
        for shape in shapes:
            x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
            y = runtime.session(model).run(None, {"x": x})[0]
            want = torch.nn.functional.group_norm(torch.from_numpy(x), 2, eps=1e-5).numpy()
            assert y.shape == want.shape
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("expr", ["sum(x)", "sum(x, dim=[1])", "sum(x, dim=[0], keepdim=true)",
                                  "sum(x, dim=[2, 0])", "sum(x, dim=[0, 1, 2], keepdim=true)"])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_sums_are_exact_as_torchs(expr, dtype):
    """onnxruntime's int64 ReduceSum goes through double: 2**60 + 1 + 1 + 1 came back as 2**60. The sums are
    exact (and wrap on overflow) as torch's, also over an empty batch."""
    model = archdsl.compile_source(f"model m(x: {dtype}[B, 4, 3]) -> y {{\n    y = {expr}\n}}\n")
    sess = runtime.session(model)
    rng = np.random.default_rng(0)
    big = {"int64": [2**60 + 1, 2**53 + 1, 2**62, 2**62], "int32": [2**31 - 1] * 4, "bool": [True] * 4}[dtype]
    for n in (2, 0):
        x = rng.integers(0, 2 if dtype == "bool" else 9, (n, 4, 3)).astype(dtype)
        if n:
            x[:, :, 0] = big
        code = expr.replace("true", "True").replace("sum(x", "torch.sum(x")
        t = eval(code, {"torch": torch, "x": torch.from_numpy(x)})
        y = sess.run(None, {"x": x})[0]
        assert y.dtype == np.int64 and y.shape == tuple(t.shape) and y.tolist() == t.tolist(), (n, y, t)
