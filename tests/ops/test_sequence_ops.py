"""lstm / gru against torch.nn.LSTM / GRU with the same weights, rms_norm against numpy, and the shape rules.

Weights come from the compiled model's own initializers (named like a torch state_dict) and are loaded into
the torch module, so no weights file is needed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError
from archdsl.ops import OpCall, get

_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _compile(src: str, **kw) -> onnx.ModelProto:
    m = archdsl.compile_source(src, **kw)
    onnx.checker.check_model(m, full_check=True)
    return m


def _weights(m: onnx.ModelProto, prefix: str) -> dict[str, np.ndarray]:
    return {i.name[len(prefix):]: numpy_helper.to_array(i) for i in m.graph.initializer if i.name.startswith(prefix)}


def _b(v: bool) -> str:
    return "true" if v else "false"


# ---------------------------------------------------------------- lstm / gru vs torch

def _rnn_case(cell, b, t, f, h, layers, bidirectional, bias, batch_first, with_state, seed, lengths=False):
    """lengths=True: a padded batch with each sequence's length (lengths=), against torch's packed sequence
    padded back with zeros."""
    torch = pytest.importorskip("torch")
    dirs = 2 if bidirectional else 1
    x_dims = "B, T, {f}" if batch_first else "T, B, {f}"
    state_names = ["h0", "c0"] if cell == "lstm" else ["h0"]
    extra_in = "".join(f", {s}: float32[{layers * dirs}, B, {h}]" for s in state_names) if with_state else ""
    state_kw = "".join(f", {s}={s}" for s in state_names) if with_state else ""
    if lengths:
        extra_in, state_kw = extra_in + ", lens: int64[B]", state_kw + ", lengths=lens"
    outs = ["y", "hn"] + (["cn"] if cell == "lstm" else [])
    src = f"""
model m(x: float32[{x_dims.format(f=f)}]{extra_in}) -> ({", ".join(outs)}) {{
    {", ".join(outs)} = {cell}(x, {h}, num_layers={layers}, bidirectional={_b(bidirectional)}, bias={_b(bias)},
        batch_first={_b(batch_first)}, return_state=true{state_kw}) as rnn
}}
"""
    m = _compile(src, seed=seed)
    ref = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(
        f, h, num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first)
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in _weights(m, "rnn.").items()}, strict=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, f) if batch_first else (t, b, f)).astype(np.float32)
    feeds = {"x": x}
    states = [rng.standard_normal((layers * dirs, b, h)).astype(np.float32) for _ in state_names]
    if with_state:
        feeds.update(zip(state_names, states))
    lens = rng.integers(1, t + 1, b)
    if lengths:
        lens[rng.integers(b)] = t  # torch pads back to the longest
        feeds["lens"] = lens
    got = runtime.session(m).run(None, feeds)
    with torch.no_grad():
        init = None
        if with_state:
            ts = [torch.from_numpy(s) for s in states]
            init = tuple(ts) if cell == "lstm" else ts[0]
        if lengths:
            packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lens),
                                                             batch_first=batch_first, enforce_sorted=False)
            y, st_ = ref(packed, init)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=batch_first, total_length=t)
        else:
            y, st_ = ref(torch.from_numpy(x), init)
    want = [y.numpy()] + ([s.numpy() for s in st_] if cell == "lstm" else [st_.numpy()])
    assert got[0].shape == ((b, t, dirs * h) if batch_first else (t, b, dirs * h))
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


_sizes = {"b": st.integers(1, 3), "t": st.integers(1, 5), "f": st.integers(1, 6), "h": st.integers(1, 6),
          "layers": st.integers(1, 3), "bidirectional": st.booleans(), "bias": st.booleans(),
          "batch_first": st.booleans(), "with_state": st.booleans(), "seed": st.integers(0, 2**16),
          "lengths": st.booleans()}


@_SETTINGS
@given(**_sizes)
def test_lstm_matches_torch(b, t, f, h, layers, bidirectional, bias, batch_first, with_state, seed, lengths):
    _rnn_case("lstm", b, t, f, h, layers, bidirectional, bias, batch_first, with_state, seed, lengths)


@_SETTINGS
@given(**_sizes)
def test_gru_matches_torch(b, t, f, h, layers, bidirectional, bias, batch_first, with_state, seed, lengths):
    _rnn_case("gru", b, t, f, h, layers, bidirectional, bias, batch_first, with_state, seed, lengths)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_lengths_match_torch_packed_sequences(cell, bidirectional):
    """Lengths from 1 to T in one batch, two layers: outputs past each length are zero, the final state is
    each sequence's last real step's (the reverse direction starts there), as torch's packed sequences."""
    for seed in range(3):
        _rnn_case(cell, 4, 5, 3, 4, 2, bidirectional, True, seed % 2 == 0, seed == 1, seed, lengths=True)


@pytest.mark.parametrize("cell, gates", [("lstm", 4), ("gru", 3)])
def test_rnn_params_use_torch_names_and_shapes(cell, gates):
    g = archdsl.check_source(f"model m(x: float32[B, T, 5]) -> y {{ y = x -> {cell}(7, num_layers=2, "
                             f"bidirectional=true) as rnn }}")
    shapes = {k: tuple(v.type.shape) for k, v in g.params.items()}
    for layer, fan_in in ((0, 5), (1, 14)):
        for sfx in ("", "_reverse"):
            assert shapes[f"rnn.weight_ih_l{layer}{sfx}"] == (gates * 7, fan_in)
            assert shapes[f"rnn.weight_hh_l{layer}{sfx}"] == (gates * 7, 7)
            assert shapes[f"rnn.bias_ih_l{layer}{sfx}"] == (gates * 7,)
            assert shapes[f"rnn.bias_hh_l{layer}{sfx}"] == (gates * 7,)
    assert len(shapes) == 16
    assert g.outputs[0][1].type.shape[-1] == 14


def test_rnn_symbolic_dims_run_at_other_sizes():
    m = _compile("model m(x: float32[B, T, 3]) -> y { y = x -> gru(4, num_layers=2) }")
    sess = runtime.session(m)
    for b, t in ((1, 1), (3, 7)):
        (y,) = sess.run(None, {"x": np.ones((b, t, 3), np.float32)})
        assert y.shape == (b, t, 4) and np.isfinite(y).all()


@pytest.mark.parametrize("src, msg", [
    ("model m(x: float32[B, 5]) -> y { y = x -> lstm(4) }", r"expected an input \[B, T, features\]"),
    ("model m(x: int64[B, T, 5]) -> y { y = x -> gru(4) }", "float"),
    ("model m(x: float32[B, T, 5], h: float32[1, B, 3]) -> y { y = x -> gru(4, h0=h) }", "initial state"),
    ("model m(x: float32[B, T, 5], h: float32[1, B, 4]) -> y { y = x -> lstm(4, h0=h) }", "h0 and c0"),
    ("model m(x: float32[B, T, 5]) -> y { y = x -> lstm(4, dropout=1.5) }", "dropout"),
    ("model m(x: float32[B, T, 5]) -> y { y = x -> lstm(0) }", "positive"),
    ("model m(x: float32[B, T, 5], n: float32[B]) -> y { y = x -> lstm(4, lengths=n) }",
     r"lengths must be int64 \(or int32\) \[B\], each sequence's length, got float32\[B\]"),
    ("model m(x: float32[B, T, 5], n: int64[B, 1]) -> y { y = x -> gru(4, lengths=n) }", r"lengths must be int64"),
    ("model m(x: float32[B, T, 5], n: int64[3]) -> y { y = x -> gru(4, lengths=n) }", r"lengths must be int64"),
])
def test_rnn_shape_errors_are_diagnostics(src, msg):
    with pytest.raises(ArchError, match=msg):
        archdsl.check_source(src)


def test_rnn_cost_counts_the_gate_matmuls():
    g = archdsl.check_source("model m(x: float32[2, 10, 8]) -> y { y = x -> lstm(16) }")
    node = g.nodes[0]
    c = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
    flops = get("lstm").cost(c)
    assert flops >= 2 * 20 * 4 * 16 * (8 + 16)


# ---------------------------------------------------------------- rms_norm vs numpy

def _rms_ref(x, w, eps, k):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=axes, keepdims=True) + eps)
    return (y * w if w is not None else y).astype(np.float32)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), k=st.integers(1, 2), affine=st.booleans(),
       eps=st.sampled_from([None, 1e-6, 1e-2]), opset=st.sampled_from([22, 23, None]), seed=st.integers(0, 999))
def test_rms_norm_matches_numpy(shape, k, affine, eps, opset, seed):
    k = min(k, len(shape))
    ns = shape[len(shape) - k:]
    dims = ", ".join(map(str, shape))
    eps_arg = "none" if eps is None else repr(eps)
    src = f"""model m(x: float32[{dims}]) -> y {{
    y = x -> rms_norm(normalized_shape={ns}, eps={eps_arg}, elementwise_affine={_b(affine)}) as norm
}}"""
    m = _compile(src, seed=seed, opset=opset)
    w = _weights(m, "norm.").get("weight")
    if affine:  # the initializer is ones; give it values that matter
        w = np.random.default_rng(seed).standard_normal(ns).astype(np.float32)
        for init in m.graph.initializer:
            if init.name == "norm.weight":
                init.CopyFrom(numpy_helper.from_array(w, "norm.weight"))
    x = np.random.default_rng(seed + 1).standard_normal(shape).astype(np.float32)
    (y,) = runtime.session(m).run(None, {"x": x})
    np.testing.assert_allclose(y, _rms_ref(x, w, eps if eps is not None else np.finfo(np.float32).eps, k),
                               rtol=1e-4, atol=1e-5)


def test_rms_norm_lowers_to_the_native_op_from_opset_23():
    src = "model m(x: float32[B, 8]) -> y { y = x -> rms_norm }"
    ops_23 = {n.op_type for n in _compile(src, opset=23).graph.node}
    ops_22 = {n.op_type for n in _compile(src, opset=22).graph.node}
    assert "RMSNormalization" in ops_23 and "RMSNormalization" not in ops_22 and "ReduceMean" in ops_22


def test_rms_norm_matches_torch():
    torch = pytest.importorskip("torch")
    m = _compile("model m(x: float32[B, T, 16]) -> y { y = x -> rms_norm(eps=1e-5) as norm }")
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype(np.float32)
    (y,) = runtime.session(m).run(None, {"x": x})
    ref = torch.nn.RMSNorm(16, eps=1e-5)
    np.testing.assert_allclose(y, ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [17, 22, 23])
def test_float16_rms_norm_keeps_a_small_eps_and_large_values(opset):
    """Below opset 23 the decomposition ran in float16: eps=1e-8 became 0 (a zero row gave NaN, torch 0) and
    x*x overflowed past 255. It now runs in float32, as torch does for half inputs."""
    torch = pytest.importorskip("torch")
    m = _compile("model m(x: float16[B, 8]) -> y { y = x -> rms_norm(eps=1e-8) as norm }", opset=opset)
    x = np.zeros((3, 8), np.float16)
    x[1] = np.arange(8)
    x[2] = 1000 * np.arange(8)  # x*x up to 4.9e7: past float16's 65504
    so = runtime.session(m)
    (y,) = so.run(None, {"x": x})
    want = torch.nn.functional.rms_norm(torch.from_numpy(x).float(), (8,), eps=1e-8).half().numpy()
    assert y.dtype == np.float16 and np.isfinite(y).all()
    np.testing.assert_allclose(y.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_rms_norm_default_eps_is_torchs(dtype):
    """torch computes 16-bit inputs in float32 with float32's epsilon; float16's own (2**-10) halved the first
    row's result, bfloat16's (2**-7) more."""
    torch = pytest.importorskip("torch")
    from archdsl.ops.rmsnorm import default_eps
    from archdsl.types import DTYPES
    x = torch.tensor([[.01, .02, -.01, .03], [1e-3, 0, 0, 0]]).to(getattr(torch, dtype))
    F = torch.nn.functional
    assert torch.equal(F.rms_norm(x, (4,)), F.rms_norm(x, (4,), eps=default_eps(DTYPES[dtype])))
    if dtype in ("float16", "float64"):
        m = _compile(f"model m(x: {dtype}[B, 4]) -> y {{ y = x -> rms_norm }}")
        (y,) = runtime.session(m).run(None, {"x": x.numpy()})
        np.testing.assert_allclose(y.astype(np.float64), F.rms_norm(x, (4,)).double().numpy(), rtol=2e-3)


@pytest.mark.parametrize("norm", ["rms_norm(eps=1e-10)", "layernorm(eps=1e-10)", "group_norm(2, eps=1e-10)"])
def test_float16_norms_train_through_a_zero_row(norm):
    """The gradient rules made eps a float16 constant: 1e-10 became 0 and a zero row's update was NaN. They
    now compute in float32, as torch's kernels do."""
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    mod = driver.load(text=f"model m(x: float16[B, 8]) -> y {{\n    y = x -> {norm} as rn "
                           "-> linear(3) as fc\n}\n", file="t.arch")
    ct = driver.build_train(mod, None, driver.CompileOptions(),
                            TrainConfig(loss="mse", optimizer=OptimConfig("sgd"), lr=0.1))
    sess = runtime.session(ct.step_model)
    x = np.zeros((2, 8), np.float16)
    x[1] = np.arange(8)
    out = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {"x": x, "labels": np.ones((2, 3), np.float16)})))
    assert np.isfinite(out["rn.weight.new"]).all() and np.isfinite(out["loss"])


@pytest.mark.parametrize("src, msg", [
    ("model m(x: float32[B, 8]) -> y { y = x -> rms_norm([4]) }", "does not match"),
    ("model m(x: int64[B, 8]) -> y { y = x -> rms_norm }", "float"),
    ("model m(x: float32[B, T]) -> y { y = x -> rms_norm }", "must be a known size"),
])
def test_rms_norm_errors(src, msg):
    with pytest.raises(ArchError, match=msg):
        archdsl.check_source(src)


# ---------------------------------------------------------------- x[:, -1] on a symbolic dim

@pytest.mark.parametrize("k", [-1, -2, 0])
def test_negative_index_into_a_symbolic_dim_counts_from_the_end(k):
    m = _compile(f"model m(x: float32[B, T, 3]) -> y {{ y = x[:, {k}] }}")
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    (y,) = runtime.session(m).run(None, {"x": x})
    np.testing.assert_array_equal(y, x[:, k])


# ---------------------------------------------------------------- eq, take, optional tensor arguments

def test_eq_makes_a_padding_mask():
    m = _compile("model m(ids: int64[B, T]) -> (pad, y) { pad = eq(ids, 0); y = masked_fill(cast(ids, \"float32\"), "
                 "pad, -1.0) }")
    ids = np.array([[3, 0, 2], [0, 0, 1]], np.int64)
    pad, y = runtime.session(m).run(None, {"ids": ids})
    np.testing.assert_array_equal(pad, ids == 0)
    np.testing.assert_array_equal(y, np.where(ids == 0, -1.0, ids).astype(np.float32))


def test_take_looks_up_rows_of_an_existing_table():
    m = _compile("model m(ids: int64[B, T]) -> (a, b) { a = ids -> embedding(10, 4) as emb; "
                 "b = take(ref(\"emb.weight\"), ids) }")
    assert sum(1 for i in m.graph.initializer if i.name == "emb.weight") == 1
    a, b = runtime.session(m).run(None, {"ids": np.array([[1, 9], [0, 3]], np.int64)})
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("src, msg", [
    ("model m(a: int64[B], b: float32[B]) -> y { y = eq(a, b) }", "dtypes differ"),
    ("model m(a: float32[4, 3], i: float32[2]) -> y { y = take(a, i) }", "indices must be"),
])
def test_eq_take_errors(src, msg):
    with pytest.raises(ArchError, match=msg):
        archdsl.check_source(src)


def test_take_along_another_axis():
    m = _compile("model m(x: float32[2, 5, 3], i: int64[4]) -> y { y = take(x, i, axis=1) }")
    x = np.arange(30, dtype=np.float32).reshape(2, 5, 3)
    i = np.array([4, 0, 0, 2], np.int64)
    (y,) = runtime.session(m).run(None, {"x": x, "i": i})
    np.testing.assert_array_equal(y, np.take(x, i, axis=1))


def test_take_with_a_number_takes_that_position():
    """The number became a float32 constant like the tensor beside it: 'indices must be int64 or int32'."""
    m = _compile("model m(x: float32[2, 5, 3]) -> y { y = take(x, 3, axis=1) + take(x, -1, axis=1) }")
    x = np.arange(30, dtype=np.float32).reshape(2, 5, 3)
    (y,) = runtime.session(m).run(None, {"x": x})
    np.testing.assert_array_equal(y, x[:, 3] + x[:, -1])


def test_a_tensor_compares_unequal_to_none():
    src = """
block maybe_masked(x, mask=none) {
    if mask != none {
        return masked_fill(x, mask, 0.0)
    }
    return x
}
model m(x: float32[B, 3], k: bool[B, 3]) -> (a, b) {
    a = maybe_masked(x)
    b = maybe_masked(x, k)
    assert not (x == none)
}
"""
    g = archdsl.check_source(src)
    assert [n.op for n in g.nodes] == ["masked_fill"]


@pytest.mark.skipif(tuple(int(p) for p in __import__("onnx").__version__.split(".")[:2]) < (1, 23),
                    reason="onnx's reference GRU takes sequence_lens from 1.23 (1.19 fails on it)")
def test_padded_steps_are_zero_in_the_graph_itself():
    """ONNX leaves Y's steps past sequence_lens to the runtime (onnx's reference evaluator computes them; onnxruntime
    writes zeros): the graph zeroes them, so every runtime gives the zeros REFERENCE promises."""
    import onnx.reference
    src = "model m(x: float32[B, 6, 4], n: int64[B]) -> y {\n    y = gru(x, lengths=n, hidden_size=5)\n}\n"
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    n = np.array([3, 6])
    for opt in (0, 2):
        m = archdsl.compile_source(src, opt_level=opt)
        y = onnx.reference.ReferenceEvaluator(m).run(None, {"x": x, "n": n})[0]
        assert not y[0, 3:].any() and y[0, :3].all() and y[1].all()
        np.testing.assert_allclose(y, runtime.session(m).run(None, {"x": x, "n": n})[0], rtol=1e-5, atol=1e-6)
