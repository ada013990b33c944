"""ops/more_activations.py, property-based against torch (see core_harness.py for what every run_op case
checks): selu, celu, glu, logsigmoid, softsign, prelu (its learned weight named and shaped as torch's
state_dict); float16/bfloat16 decompositions; diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import NEWEST, OPSET, SETTINGS, SYM, as_torch, close, covers, dim, grads_of, rand, refused, run_op

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a: np.ndarray):
    return as_torch(a, double=True)


_POINTWISE = {
    "selu(x)": F.selu, "celu(x)": F.celu, "celu(x, alpha=0.5)": lambda t: F.celu(t, 0.5),
    "celu(x, 2.5)": lambda t: F.celu(t, 2.5), "logsigmoid(x)": F.logsigmoid, "softsign(x)": F.softsign,
}


@covers("selu", "celu", "logsigmoid", "softsign")
@pytest.mark.parametrize("expr", list(_POINTWISE))
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), seed=st.integers(0, 99), opset=OPSET, sym=SYM)
def test_pointwise_match_torch(expr, shape, seed, opset, sym):
    x = rand(*shape, seed=seed) * 4
    y, _ = run_op(expr, x=x, opset=opset, sym=sym)
    close(y, _POINTWISE[expr](_t(x)).numpy())


@pytest.mark.parametrize("expr", list(_POINTWISE))
@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("opset", [17, NEWEST])
def test_pointwise_in_other_float_dtypes_match_torch(expr, dtype, opset):
    """The decompositions (ONNX Celu is float32-only, Selu bfloat16 only from 22) against torch in the same
    dtype (bfloat16 models are only checked, in test_core_ops: onnxruntime's CPU provider lacks the kernels)."""
    x = rand(2, 5, seed=3) * 4
    y, _ = run_op(f"cast({expr.replace('(x', f'(cast(x, {dtype!r})')}, 'float32')", x=x, opset=opset)
    want = _POINTWISE[expr](torch.tensor(x).to(getattr(torch, dtype))).float().numpy()
    tol = {"float16": 2e-3, "float64": 1e-6}[dtype]
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def test_logsigmoid_does_not_underflow():
    """log(sigmoid(-100)) is log(0) = -inf in float32; torch gives -100 (and ~0 at +100)."""
    x = np.array([-100.0, -30.0, 0.0, 30.0, 100.0], np.float32)
    y, _ = run_op("logsigmoid(x)", x=x)
    np.testing.assert_allclose(y, F.logsigmoid(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-12)
    assert y[0] == -100.0


def test_logsigmoid_keeps_its_tail():
    """log(1 + exp(-x)) was 0 from x = 17 (1 + 4e-8 rounds to 1) and 17% off at 15: log1p keeps it."""
    x = np.array([10.0, 15.0, 17.0, 20.0, 30.0, 88.0], np.float32)
    y, _ = run_op("logsigmoid(x)", x=x)
    np.testing.assert_allclose(y, F.logsigmoid(torch.tensor(x, dtype=torch.float64)).numpy(), rtol=1e-5)


# ---------------- glu ----------------

@covers("glu")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3), data=st.data(), opset=OPSET, sym=SYM)
def test_glu_matches_torch(shape, data, opset, sym):
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    shape[d] *= 2
    x = rand(*shape, seed=r)
    sym = sym and d % r != 0
    y, _ = run_op(f"glu(x, {d})", x=x, opset=opset, sym=sym)
    close(y, F.glu(_t(x), d).numpy())
    if d == -1:
        y, _ = run_op("x -> glu", x=x, opset=opset, sym=sym)
        close(y, F.glu(_t(x)).numpy())


# ---------------- prelu ----------------

@covers("prelu")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=4), per_channel=st.booleans(), opset=OPSET, sym=SYM)
def test_prelu_matches_torch(shape, per_channel, opset, sym):
    """One slope, or one per channel (dim 1) broadcast over the dims after it; the weight as torch's."""
    n = shape[1] if per_channel and len(shape) > 1 else 1
    x = rand(*shape, seed=len(shape))
    y, w = run_op(f"x -> prelu({n}) as act", x=x, opset=opset, sym=sym)
    assert list(w) == ["act.weight"] and w["act.weight"].shape == (n,)
    close(y, F.prelu(_t(x), _t(w["act.weight"])).numpy())


def test_prelu_of_a_0d_tensor_stays_0d():
    x = np.array([[1.0, -2.0], [-3.0, 0.5]], np.float32)
    y, w = run_op("sum(x) -> prelu as act", x=x)
    close(y, F.prelu(torch.tensor(x).sum(), torch.tensor(w["act.weight"])).numpy())


def test_prelu_weight_is_named_shaped_and_initialized_as_torch():
    """nn.PReLU(num_parameters=3, init=0.1): the state_dict's `weight`, [3], all 0.1."""
    from onnx import numpy_helper
    model = archdsl.compile_source("model m(x: float32[B, 3, 5]) -> y { y = x -> prelu(3, init=0.1) as act }")
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    want = torch.nn.PReLU(3, 0.1).state_dict()
    assert list(want) == ["weight"]
    np.testing.assert_array_equal(init["act.weight"], want["weight"].numpy())


# ---------------- diagnostics ----------------

@pytest.mark.parametrize("text, words", [
    ("selu(cast(x, 'int64'))", "selu: input must be a float tensor, got int64"),
    ("softsign(m)", "softsign: input must be a float tensor, got bool"),
    ("celu(x, alpha=0)", "celu: alpha must not be 0"),
    ("glu(x)", r"glu: dim -1 of \[2, 3, T\] .*symbolic|glu: dim -1 of \[2, 3, T\] must be a known size"),
    ("glu(x, 1)", r"glu: dim 1 of \[2, 3, T\] has odd size 3"),
    ("glu(x, 3)", "glu: dim 3 is out of range"),
    ("glu(sum(x))", "glu: needs a tensor of at least 1 dim"),
    ("x -> prelu(4)", r"prelu: num_parameters=4 does not match the 3 channels \(dim 1\) of \[2, 3, T\]"),
    ("x -> transpose(1, 2) -> prelu(3)", r"prelu: num_parameters=3 needs a known channel dim 1, got T in \[2, T, 3\]"),
    ("x[0, 0] -> prelu(2)", r"prelu: num_parameters=2 needs a channel dim 1, but the input is \[T\]"),
    ("x -> prelu(0)", "prelu: num_parameters must be at least 1"),
    ("m -> prelu", "prelu: input must be a float tensor, got bool"),
    ("logsigmoid(cast(x, 'int32'))", "logsigmoid: input must be a float tensor, got int32"),
])
def test_refusals_name_the_problem(text, words):
    refused(f"model m(x: float32[2, 3, T], m: bool[2, 3]) -> y {{ y = {text} }}", words)


@pytest.mark.parametrize("expr, ref", [("sigmoid(x)", torch.sigmoid), ("silu(x)", F.silu),
                                       ("glu(concat([x, x], axis=0))", lambda t: F.glu(torch.cat([t, t]), 0))])
def test_float64_sigmoids_keep_their_tail(expr, ref):
    """onnxruntime's float64 Sigmoid is 3.6e-8 off at -20, 0.1% at -30 and 0 from about -37 (ops2 hunt);
    written as 1 / (1 + exp(-x)) it is torch's to float64 rounding, down to -700."""
    from archdsl import runtime
    x = np.array([-700.0, -40.0, -30.0, -20.0, -15.0, 0.0, 3.0, 40.0])
    model = archdsl.compile_source(f"model m(x: float64[8]) -> y {{\n    y = {expr}\n}}\n")
    (y,) = runtime.session(model).run(None, {"x": x})
    np.testing.assert_allclose(y, ref(torch.from_numpy(x)).numpy(), rtol=1e-13, atol=0)


def test_tanh_keeps_its_gradients_sign_where_onnxruntime_rounds_past_one():
    """onnxruntime's float32 Tanh gives 1.0000001 at 8.3: the gradient g * (1 - y * y) came out negative there, and
    SAC's log(1 - tanh(u) ** 2 + 1e-6) trained the other way (rl hunt)."""
    u = np.linspace(-20, 20, 40001).astype(np.float32)
    a, = runtime.session(archdsl.compile_source("model m(u: float32[N]) -> a {\n    a = tanh(u)\n}\n")).run(
        None, {"u": u})
    np.testing.assert_allclose(a, torch.tanh(torch.from_numpy(u)).numpy(), atol=3e-7, rtol=0)
    g = grads_of("model m(u: float32[40001]) -> y {\n    y = tanh(u)\n}\n", {"u": u}, np.ones_like(u), ["u"])["u"]
    assert (g >= 0).all()
