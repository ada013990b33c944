"""The activations and elementwise ops MobileNetV2/V3-style models need (clamp, hardtanh, relu6, hardsigmoid,
hardswish, elu, softplus, mish, minimum, maximum, sin, cos) and the comparisons (lt, le, gt, ge, ne, and the
operators < <= > >=), each in the one-op harness (core_harness.run_op) against torch itself, at points
that include the kinks and both sides of softplus's threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archdsl import check_source
from archdsl.diagnostics import ArchError

from .core_harness import FEW, NEWEST, SYM, close, covers, dim, rand, run_op

torch = pytest.importorskip("torch")
F = torch.nn.functional

# exactly on the kinks: clamp's bounds below, hardtanh's -1/1, relu6's 0/6, the hard ops' -3/3, softplus's 20
EDGES = np.array([-20.0, -6.0, -3.0, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5, 3.0, 6.0, 7.0, 20.0, 21.0, 40.0],
                 np.float32)

_ACTS = {  # text -> torch
    "clamp(x, 0, 6)": lambda x: torch.clamp(x, 0, 6),
    "clamp(x, min=-0.5)": lambda x: torch.clamp(x, min=-0.5),
    "clamp(x, max=2.5)": lambda x: torch.clamp(x, max=2.5),
    "clip(x, -1.0, 1)": lambda x: torch.clamp(x, -1.0, 1),
    "clamp(x, 3, 3)": lambda x: torch.clamp(x, 3, 3),
    "hardtanh(x)": F.hardtanh,
    "hardtanh(x, -3, 2.5)": lambda x: F.hardtanh(x, -3.0, 2.5),
    "relu6(x)": F.relu6,
    "x -> relu6": F.relu6,
    "hardsigmoid(x)": F.hardsigmoid,
    "hardswish(x)": F.hardswish,
    "elu(x)": F.elu,
    "elu(x, alpha=0.5)": lambda x: F.elu(x, 0.5),
    "softplus(x)": F.softplus,
    "softplus(x, beta=2, threshold=5)": lambda x: F.softplus(x, 2.0, 5.0),
    "softplus(x, beta=0.5, threshold=1.0)": lambda x: F.softplus(x, 0.5, 1.0),
    "softplus(x, threshold=2)": lambda x: F.softplus(x, 1.0, 2.0),
    "softplus(x, threshold=-1000)": lambda x: F.softplus(x, 1.0, -1000.0),  # x everywhere; exp(1000) overflows
    "mish(x)": F.mish,
    "sin(x)": torch.sin,
    "cos(x)": torch.cos,
}


def _torch(fn, x):
    return fn(torch.from_numpy(np.asarray(x, np.float64))).numpy()


@covers("clamp", "hardtanh", "relu6", "hardsigmoid", "hardswish", "elu", "softplus", "mish", "sin", "cos")
@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("text", sorted(_ACTS))
@FEW
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 9), sym=SYM)
def test_pointwise_ops_match_torch(text, opset, shape, seed, sym):
    x = rand(*shape, seed=seed) * 4
    y, _ = run_op(text, x=x, sym=sym, opset=opset)
    close(y, _torch(_ACTS[text], x))


@pytest.mark.parametrize("text", sorted(_ACTS))
def test_pointwise_ops_at_their_kinks_and_far_out(text):
    """On the kinks themselves, and far enough out that exp overflows float32 (softplus and mish at +-100
    must be x and 0, not inf or nan)."""
    x = np.concatenate([EDGES, -EDGES, [100.0, -100.0, 1e4, -1e4]]).astype(np.float32)
    y, _ = run_op(text, x=x)
    assert np.isfinite(y).all()
    close(y, _torch(_ACTS[text], x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text", sorted(_ACTS))
def test_infinities_go_through_as_in_torch(text):
    """clamp with one bound gave the dtype's largest finite value for inf (onnxruntime's Clip without that
    bound), where torch keeps inf; every activation takes +-inf as torch does."""
    x = np.array([np.inf, -np.inf, 1.0, -1.0], np.float32)
    y, _ = run_op(text, x=x)
    want = _torch(_ACTS[text], x)
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    close(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [17, 18, 21, NEWEST])
def test_float64_hardsigmoid_and_hardswish_are_torchs_at_every_opset(opset):
    """ONNX's HardSigmoid takes alpha as a float32 (1/6 rounded: 3e-8 off torch's float64), and onnxruntime has no
    float64 kernel for either but at opset 18 (difffuzz2 hunt): written out, they are torch's to the last bit."""
    import archdsl
    from archdsl import runtime
    x = np.concatenate([np.linspace(-4, 4, 17), EDGES, -EDGES, [np.inf, -np.inf, 1e300]])
    for text in ("hardsigmoid(x)", "hardswish(x)"):
        model = archdsl.compile_source(f"model m(x: float64[N]) -> y {{\n    y = {text}\n}}\n", opset=opset)
        (y,) = runtime.session(model).run(None, {"x": x})
        assert y.dtype == np.float64
        want = _torch(_ACTS[text], x)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
        np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_clamp_of_integers_keeps_the_dtype(dtype):
    x = np.arange(-5, 6).astype(dtype)
    y, _ = run_op("clamp(x, -2, 3)", x=x)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, torch.clamp(torch.from_numpy(x), -2, 3).numpy())


@covers("minimum", "maximum")
@pytest.mark.parametrize("fn", ["minimum", "maximum"])
@FEW
@given(data=st.data(), seed=st.integers(0, 9), dtype=st.sampled_from(["float32", "int64"]))
def test_minimum_maximum_broadcast_like_torch(fn, data, seed, dtype):
    out = data.draw(st.lists(dim, min_size=1, max_size=3))
    sa = [d if data.draw(st.booleans()) else 1 for d in out]
    sb = [d if data.draw(st.booleans()) else 1 for d in out][data.draw(st.integers(0, len(out) - 1)):]
    a, c = (np.round(rand(*s, seed=seed + i) * 2).astype(dtype) for i, s in enumerate((sa, sb)))  # with ties
    y, _ = run_op(f"{fn}(a, c)", a=a, c=c)
    want = getattr(torch, fn)(torch.from_numpy(a), torch.from_numpy(c)).numpy()
    np.testing.assert_array_equal(y, want)
    k = 1 if dtype == "int64" else 0.5  # a number takes the tensor's dtype
    y, _ = run_op(f"{fn}({k}, a)", a=a)
    ta = torch.from_numpy(a)
    np.testing.assert_array_equal(y, getattr(torch, fn)(ta, torch.tensor(k, dtype=ta.dtype)).numpy())


_CMP = {"<": ("lt", torch.lt), "<=": ("le", torch.le), ">": ("gt", torch.gt), ">=": ("ge", torch.ge),
        "!=": ("ne", torch.ne)}


@pytest.mark.parametrize("sym_", sorted(_CMP))
@FEW
@given(data=st.data(), seed=st.integers(0, 9), dtype=st.sampled_from(["float32", "int64"]))
def test_comparisons_broadcast_like_torch(sym_, data, seed, dtype):
    name, fn = _CMP[sym_]
    out = data.draw(st.lists(dim, min_size=1, max_size=3))
    sa = [d if data.draw(st.booleans()) else 1 for d in out]
    sb = [d if data.draw(st.booleans()) else 1 for d in out][data.draw(st.integers(0, len(out) - 1)):]
    a, c = (np.round(rand(*s, seed=seed + i)).astype(dtype) for i, s in enumerate((sa, sb)))  # equal ones too
    ta, tc = torch.from_numpy(a), torch.from_numpy(c)
    for text in [f"{name}(a, c)"] + ([f"a {sym_} c"] if sym_ != "!=" else []):
        y, _ = run_op(text, a=a, c=c)
        assert y.dtype == np.bool_
        np.testing.assert_array_equal(y, fn(ta, tc).numpy())
    if sym_ != "!=":  # a number on either side becomes a constant of the tensor's dtype (1.0 is whole)
        y, _ = run_op(f"a {sym_} 1.0", a=a)
        np.testing.assert_array_equal(y, fn(ta, torch.tensor(1, dtype=ta.dtype)).numpy())
        y, _ = run_op(f"0 {sym_} a", a=a)
        np.testing.assert_array_equal(y, fn(torch.tensor(0, dtype=ta.dtype), ta).numpy())


def test_comparison_ops_have_torchs_aliases():
    a, c = rand(2, 3, seed=1), rand(3, seed=2)
    for alias, fn in (("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater),
                      ("greater_equal", np.greater_equal), ("not_equal", np.not_equal)):
        y, _ = run_op(f"{alias}(a, c)", a=a, c=c)
        np.testing.assert_array_equal(y, fn(a, c))


def _refused(src: str, words: str):
    import archdsl
    with pytest.raises(ArchError) as e:
        archdsl.check_source(src, file="t.arch")
    assert words in e.value.message, e.value.message


@pytest.mark.parametrize("expr, words", [
    ("clamp(x)", "clamp: give min, max or both"),
    ("clamp(x, 2, 1.5)", "clamp: min=2 is greater than max=1.5"),
    ("hardtanh(x, 1, -1)", "hardtanh: min_val=1 is greater than max_val=-1"),
    ("clamp(x, max=1e39)", "clamp: max: value 1e+39 does not fit float32"),
    ("clamp(i, 0.5)", "clamp: min: value 0.5 does not fit the int64 tensor"),
    ("clamp(m, 0)", "clamp: no ordering on bool tensors"),
    ("relu6(i)", "relu6: input must be a float tensor"),
    ("softplus(x, beta=0)", "softplus: beta must not be 0"),
    ("minimum(x, i)", "minimum: dtypes differ (float32 vs int64)"),
    ("maximum(m, m)", "no arithmetic on bool tensors"),
    ("x < i", "lt ('<'): dtypes differ (float32 vs int64)"),
    ("m >= m", "ge ('>='): bool tensors have no order"),
    ("i < 2.5", "lt(): 2.5 is not a whole number and the tensor is int64"),
    ("x == x", "operator '==' compares a tensor only with none; for elementwise comparison use eq(a, b)"),
    ("x != x", "use ne(a, b)"),
    ("x % i", "'%': dtypes differ (float32 vs int64)"),
    ("m // m", "'//': no arithmetic on bool tensors"),
    ("x * min(x, 1)", "min() takes numbers, got tensor float32[3]; for tensors use minimum(a, b) elementwise, "
                      "amin(x)"),
    ("x * max([1, x])", "max() takes numbers, got tensor float32[3]; for tensors use maximum(a, b) elementwise, "
                        "amax(x)"),
    ("(1 - i) * -3.4028234663852886e38", "mul(): the number -3.4028234663852886e+38 is a float and the tensor "
                                         "beside it is int64"),  # a port's finfo.min mask: "does not fit int64"
    ("i < 1e30", "lt(): the number 1e+30 lies outside int64's range, so the comparison is the same for every "
                 "element"),  # as lt(i, 1e30), which said it did not fit (t5 hunt)
    ("i < 9223372036854775808.0", "the number 9.223372036854776e+18 lies outside"),  # not 9.22337e+18 (review57)
    ("x * min(x, dim=0)", "or amin(x, dim) and argmin(x, dim) for the values and indices torch.min(x, dim) gives"),
    ("x * max(x, dim=0)", "or amax(x, dim) and argmax(x, dim)"),  # torch's keyword form said only "does not
    # take (tensor float32[3], dim=int 0)" (vqvae hunt)
])
def test_misuse_is_a_diagnostic(expr, words):
    _refused(f"model m(x: float32[3], i: int64[3], m: bool[3]) -> y {{\n    y = {expr}\n}}\n", words)


def test_min_max_of_numbers_are_unchanged():
    y, _ = run_op("x * (min(3, 2.5) + max([1, 4]) + sin(0.0) + cos(0.0))", x=np.ones(2, np.float32))
    close(y, np.full(2, 2.5 + 4 + 0 + 1))


def test_a_dtype_mismatch_says_to_cast_and_that_integer_sums_are_int64():
    """sum of int32 is int64 now (torch's), so `sum(x, dim=1) + x[:, 0]` over int32 stopped building with a
    bare "dtypes differ (int64 vs int32)"."""
    with pytest.raises(ArchError, match=r"'\+': dtypes differ \(int64 vs int32\); cast one to the other "
                                                r"\(archdsl does not promote as torch does\): cast\(x, \"int64\"\); "
                                                r"sum and cumsum of integers give int64"):
        check_source("model m(x: int32[B, 4]) -> y {\n    y = sum(x, dim=1) + x[:, 0]\n}\n")
    with pytest.raises(ArchError, match=r"minimum: dtypes differ \(float32 vs int64\); cast one to the "
                                                r"other \(archdsl does not promote as torch does\)$"):
        check_source("model m(x: float32[2], i: int64[2]) -> y {\n    y = minimum(x, i)\n}\n")


@pytest.mark.parametrize("beta, threshold", [(0.1, 20.0), (2.0, 20.0), (3.0, 1.0), (1.0, 5.0)])
def test_float16_softplus_with_a_beta_is_torchs(beta, threshold):
    """torch computes a half softplus in float32 with beta as a float32; beta rounded to float16 first put 1817
    of these 4002 values an ulp off at beta = 0.1."""
    import archdsl
    from archdsl import runtime
    x = np.concatenate([np.linspace(-30, 30, 4001), [0.0]]).astype(np.float16)
    m = archdsl.compile_source(f"model m(x: float16[N]) -> y {{ y = softplus(x, {beta}, {threshold}) }}")
    y = runtime.session(m).run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, F.softplus(torch.from_numpy(x), beta, threshold).numpy())


def test_clamp_takes_bounds_known_at_run_time_as_torch():
    """torch.clamp(x, min=t) with a tensor t, and torchvision's boxes.clamp(max=width) of a run-time width, were
    refused ("expects a number, got tensor", "must be known when the graph is built") (detection hunt): as
    maximum and minimum, forward and gradient as torch's (away from ties)."""
    import archdsl
    from archdsl import driver, runtime
    from archdsl.autodiff import OptimConfig, TrainConfig
    src = ("model m(s: float32[B, N], img: float32[B, 3, H, W], w: float32[B, 1]) -> (y, loss) {\n"
           "    h = s * parameter([1], init=\"ones\") as k\n"
           "    y = clamp(h, 0, shape(img)[3]) + clamp(h, min=-w, max=w) + clamp(h, max=shape(img)[2])\n"
           "    loss = sum(y)\n}\n")
    rng = np.random.default_rng(0)
    s, w = (rng.standard_normal((2, 9)) * 6).astype(np.float32), np.abs(rng.standard_normal((2, 1))).astype(np.float32)
    img = np.zeros((2, 3, 4, 5), np.float32)
    y, _ = runtime.session(archdsl.compile_source(src)).run(None, {"s": s, "img": img, "w": w})
    t, tw = torch.from_numpy(s).requires_grad_(), torch.from_numpy(w)
    want = t.clamp(0, 5) + torch.clamp(t, -tw, tw) + t.clamp(max=4)
    np.testing.assert_array_equal(y, want.detach().numpy())
    ct = driver.build_train(driver.load(text=src, file="t.arch"), None, driver.CompileOptions(),
                            TrainConfig(loss="model", lr=1.0, optimizer=OptimConfig("sgd")))
    sess = runtime.session(ct.step_model)
    feeds = {"s": s, "img": img, "w": w}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {
        i.name: feeds[i.name] for i in sess.get_inputs() if i.name in feeds})))
    k = torch.ones(1, requires_grad=True)
    h = torch.from_numpy(s) * k
    (h.clamp(0, 5) + torch.clamp(h, -tw, tw) + h.clamp(max=4)).sum().backward()
    np.testing.assert_allclose(1 - out["k.new"], k.grad.numpy(), rtol=1e-5)
    with pytest.raises(archdsl.ArchError, match=":2:9: clamp: dtypes differ"):  # said as the clamp (review58)
        archdsl.check_source("model m(x: float32[B, 4], t: int64[B, 4]) -> y {\n    y = clamp(x, min=t)\n}\n")
    with pytest.raises(archdsl.ArchError) as e:  # the message's body too (review59)
        archdsl.check_source("model m(x: float32[B, 4], t: float32[B, 3]) -> y {\n    y = clamp(x, min=t)\n}\n")
    assert "clamp: cannot broadcast clamp operands" in e.value.message and "maximum" not in e.value.message


def test_clamp_with_one_tensor_bound_passes_the_whole_gradient_at_its_number_bound():
    """clamp(x, min=t, max=1.0) at x = 1.0 gave x half the gradient: the number bound went to minimum with the
    tensor one, whose tie split sent the other half to the constant (review94a hunt). torch gives x all of it."""
    from .core_harness import grads_of
    x = np.array([1.0, 0.3, -1.0, 2.0], np.float32)
    t = np.array([-1.0, -1.0, -2.0, 0.0], np.float32)  # x at the number bounds 1.0 and -1.0, not at t
    for expr, want in (("clamp(x, min=t, max=1.0)", lambda a, b: torch.clamp(a, min=b, max=torch.tensor(1.0))),
                       ("clamp(x, min=-1.0, max=t + 3.0)", lambda a, b: torch.clamp(a, min=torch.tensor(-1.0),
                                                                                  max=b + 3.0))):
        src = f"model m(x: float32[4], t: float32[4]) -> y {{\n    y = {expr}\n}}\n"
        got = grads_of(src, {"x": x, "t": t}, np.ones(4, np.float32), ["x"])
        a = torch.from_numpy(x).requires_grad_()
        want(a, torch.from_numpy(t)).sum().backward()
        np.testing.assert_array_equal(got["x"], a.grad.numpy(), err_msg=expr)
    # a symbolic size as the bound: maximum gave x half at a tie, the other half lost to the size (review97)
    src = "model m(x: float32[4], k: float32[N]) -> y {\n    y = clamp(x, min=N, max=N + 1)\n}\n"
    v = np.array([6.0, 7.0, 1.0, 8.0], np.float32)
    got = grads_of(src, {"x": v, "k": np.zeros(6, np.float32)}, np.ones(4, np.float32), ["x"])["x"]
    a = torch.from_numpy(v).requires_grad_()
    torch.clamp(a, 6.0, 7.0).sum().backward()
    np.testing.assert_array_equal(got, a.grad.numpy())


@pytest.mark.parametrize("act", ["relu(v)", "clamp(v, min=0.0)", "clamp(v, min=0.0, max=5.0)", "relu6(v)",
                                 "hardtanh(v, min_val=0.0, max_val=5.0)", "maximum(v, zeros_like(v))",
                                 "hardswish(v - 4.0)", "hardsigmoid(v - 3.0)"])
def test_a_masked_gradient_is_zero_whatever_arrives(act):
    """sqrt(relu(v)) where 0 arrives at v = 0 sends 0/0 = NaN into relu, and at v < 0 an infinite gradient: a 0/1
    mask times it kept the NaN where torch's masked gradient (a where) gives 0, and a written-out 1.5-entmax
    trained into NaN (crf hunt). The gradient to x against torch's, NaN where torch has NaN."""
    torch = pytest.importorskip("torch")
    from .core_harness import grads_of
    x = np.array([-1.0, 0.0, 2.0, -3.0], np.float32)
    r = np.array([0.0, 0.0, 1.0, 1.0], np.float32)  # 0 arrives at the first two
    got = grads_of(f"model m(x: float32[4]) -> y {{\n    v = x\n    y = sqrt({act})\n}}\n", {"x": x}, r, ["x"])["x"]
    t = torch.tensor(x, requires_grad=True)
    v = t
    ref = {"relu(v)": torch.relu(v), "clamp(v, min=0.0)": v.clamp(min=0.0),
           "clamp(v, min=0.0, max=5.0)": v.clamp(0.0, 5.0), "relu6(v)": torch.nn.functional.relu6(v),
           "hardtanh(v, min_val=0.0, max_val=5.0)": torch.nn.functional.hardtanh(v, 0.0, 5.0),
           "maximum(v, zeros_like(v))": torch.maximum(v, torch.zeros_like(v)),
           "hardswish(v - 4.0)": torch.nn.functional.hardswish(v - 4.0),
           "hardsigmoid(v - 3.0)": torch.nn.functional.hardsigmoid(v - 3.0)}[act]
    (torch.sqrt(ref) * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-6)  # equal_nan: NaN only where torch's is


@pytest.mark.parametrize("expr, feeds, torch_fn", [
    ("where(isnan(b), 0.0, abs(a - b))", {"a": [1.0, 2.0, 3.0], "b": [0.0, float("nan"), 5.0]},
     lambda t, a, b: t.where(t.isnan(b), t.zeros(()), (a - b).abs())),
    ("remainder(a, b)", {"a": [1.0, 1.0, 2.0, 3.0, 1.0], "b": [0.1, 0.2, 0.4, 0.5, -float("inf")]},
     lambda t, a, b: t.remainder(a, b)),
    ("maximum(a, b)", {"a": [1.0, float("nan"), 2.0, 3.0], "b": [float("nan"), 1.0, 2.0, 1.0]},
     lambda t, a, b: t.maximum(a, b)),
    ("minimum(a, b)", {"a": [1.0, float("nan"), 2.0, 3.0], "b": [float("nan"), 1.0, 2.0, 1.0]},
     lambda t, a, b: t.minimum(a, b)),
])
def test_gradients_at_nan_operands_and_float_quotients_are_torchs(expr, feeds, torch_fn):
    """abs at a NaN input gave NaN (torch's sgn is 0 there: a masked L1 loss over missing targets trained into
    NaN); remainder's gradient to b used floor(a / b) = 10 for 1 % 0.1, whose quotient is 9; maximum/minimum
    with a NaN operand gave all of g to the second operand, torch gives it to both (gradnan, review82 hunts)."""
    torch = pytest.importorskip("torch")
    from .core_harness import grads_of
    a, b = (np.array(feeds[k], np.float64) for k in "ab")
    n = len(a)
    r = np.ones(n, np.float64)
    got = grads_of(f"model m(a: float64[{n}], b: float64[{n}]) -> y {{\n    y = {expr}\n}}\n", {"a": a, "b": b}, r,
                   ["a", "b"])
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch_fn(torch, ta, tb).sum().backward()
    np.testing.assert_allclose(got["a"], ta.grad.numpy())
    np.testing.assert_allclose(got["b"], tb.grad.numpy())


def test_normalize_below_p_1_at_an_exact_zero_and_float64_log_softmax_of_nan_rows_are_torchs():
    """normalize(x, p=0.5) gave NaN at a 0 beside nonzero values (|h|^(p-1) = inf times sign 0; norm masked it);
    float64 log_softmax of a row holding NaN or inf gave finite positive values from onnxruntime's kernel
    (44.05), where torch's are NaN (gradnan hunt)."""
    torch = pytest.importorskip("torch")
    from .core_harness import grads_of
    x = np.array([[1.0, 0.0, 2.0]])
    r = np.ones_like(x)
    got = grads_of("model m(x: float64[1, 3]) -> y {\n    y = normalize(x, p=0.5, dim=1)\n}\n", {"x": x}, r, ["x"])
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.normalize(t, p=0.5, dim=1).sum().backward()
    np.testing.assert_allclose(got["x"], t.grad.numpy(), rtol=1e-9)
    rows = np.array([[0.0, 1.0, np.nan, 2.0], [1.0, 2.0, 3.0, np.inf], [1.0, 2.0, 3.0, 4.0]])
    import archdsl
    from archdsl import runtime
    model = archdsl.compile_source("model m(x: float64[3, 4]) -> y {\n    y = log_softmax(x, axis=1)\n}\n")
    y = runtime.session(model).run(None, {"x": rows})[0]
    np.testing.assert_allclose(y, torch.log_softmax(torch.from_numpy(rows), 1).numpy(), rtol=1e-12)


@pytest.mark.parametrize("opset", [17, NEWEST])
def test_float64_leaky_relu_and_elu_keep_their_slope_in_float64_at_every_opset(opset):
    """The slope and alpha went to ONNX as float32 attributes (leaky_relu's 0.01 came out 2.2e-8 relative off
    torch's float64), and onnxruntime has the float64 kernels at opset 18 only (numerics3 hunt)."""
    torch = pytest.importorskip("torch")
    import archdsl
    from archdsl import runtime
    x = np.array([-3, -1, -0.1, 0.5, 2, 30, -1e300, np.nan, -0.0, 0.0, -np.inf, np.inf, -1e-10], np.float64)
    F = torch.nn.functional
    for expr, ref in [("leaky_relu(x)", F.leaky_relu), ("leaky_relu(x, 0.1)", lambda t: F.leaky_relu(t, 0.1)),
                      ("elu(x, alpha=0.1)", lambda t: F.elu(t, 0.1)), ("elu(x)", F.elu)]:
        model = archdsl.compile_source(f"model m(x: float64[13]) -> y {{\n    y = {expr}\n}}\n", opset=opset)
        y = runtime.session(model).run(None, {"x": x})[0]
        want = ref(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)
        assert np.array_equal(np.signbit(y), np.signbit(want)), expr  # -0 kept


def test_float64_cross_entropy_of_nan_logits_and_bce_far_from_zero_are_exact():
    """float64 cross_entropy read onnxruntime's LogSoftmax, which gave -45.55 for a row holding NaN past its
    first place (torch: NaN); float64 bce_with_logits took log(1 + exp(-|x|)), 0 at x = 40 where the loss is
    4.2e-18 (lossfns hunt)."""
    torch = pytest.importorskip("torch")
    import math

    import archdsl
    from archdsl import runtime
    F = torch.nn.functional
    z = np.array([[0.5, np.nan, 1.0], [0.1, 0.2, 0.3], [0.5, np.inf, 1.0]])
    y = np.array([0, 1, 0])
    model = archdsl.compile_source('model m(z: float64[3, 3], y: int64[3]) -> loss {\n'
                                   '    loss = cross_entropy(z, y, reduction="none")\n}\n')
    got = runtime.session(model).run(None, {"z": z, "y": y})[0]
    np.testing.assert_allclose(got, F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), reduction="none"),
                               rtol=1e-12)
    x = np.array([20.0, 30.0, 40.0, 700.0])
    model = archdsl.compile_source('model m(x: float64[4], t: float64[4]) -> l {\n'
                                   '    l = bce_with_logits(x, t, reduction="none")\n}\n')
    got = runtime.session(model).run(None, {"x": x, "t": np.ones(4)})[0]
    np.testing.assert_allclose(got, [math.log1p(math.exp(-v)) for v in x], rtol=1e-14)
