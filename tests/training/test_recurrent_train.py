"""Training through lstm and gru: the train step (gradient of the recurrence unrolled over a fixed length) against
torch.nn.LSTM/GRU + linear head + cross-entropy with the same weights and batches, and the diagnostics for
what cannot be trained yet (a symbolic sequence length); dropout between stacked layers, drawn from the seed."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import driver
from archdsl.diagnostics import ArchError

from .harness import batches, compile_step, config, initial, ort_steps, rel, torch_steps

SPECS = Path(__file__).parent / "specs"

# lstm: 2 layers, bidirectional, batch_first, head on output + final h_n (return_state);
# gru: 2 layers, bidirectional, batch_first=false, head on every step
CASES = {
    "lstm-sgd": ("lstm_tiny.arch", config(opt="sgd", lr=0.1)),
    "gru-sgd": ("gru_tiny.arch", config(opt="sgd", lr=0.1)),
    "lstm-adamw-1layer": ("lstm_tiny.arch", config(opt="adamw", lr=1e-2), ["layers=1", "bidirectional=false"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_recurrent_step_matches_torch(case):
    """Two steps on onnxruntime vs torch autograd in float64: loss and every updated parameter (embedding
    included, so the gradient w.r.t. the recurrent layer's input is checked) within 1e-4 relative; the
    update (new - initial) within 1e-3, or twice torch's own float32 distance where that is larger."""
    pytest.importorskip("torch")
    spec, cfg, *defines = CASES[case]
    ct, fwd = compile_step(str(SPECS / spec), cfg, defines[0] if defines else None)
    onnx.checker.check_model(ct.step_model, full_check=True)
    data = batches(ct, 2, 3, 10, seed=1)
    init = initial(ct)
    lo, so = ort_steps(ct, data)
    lt, st = torch_steps(ct, fwd, data)
    l64, s64 = torch_steps(ct, fwd, data, np.float64)
    assert any(".weight_hh_l" in k for k in s64[0]), "the recurrent weights are trained"
    for step in (0, 1):
        assert rel(lo[step], l64[step]) <= 1e-4, (case, step, lo, l64)
        assert set(so[step]) >= set(s64[step])
        for name, ref in s64[step].items():
            ours, start = so[step][name], init[name]
            assert rel(ours, ref) <= 1e-4, f"{case} step {step + 1}: {name} off by {rel(ours, ref):.2e}"
            assert np.any(ref != start), f"{name} is not updated"
            bound = max(1e-3, 2 * rel(st[step][name] - start, ref - start))
            d = rel(ours - start, ref - start)
            assert d <= bound, f"{case} step {step + 1}: update of {name} off by {d:.2e}"


def _steps_like_torch(ct, fwd, data) -> None:
    """Every step's loss within 1e-5 and every state's update within 1e-4 (relative) of torch's in float64."""
    init = initial(ct)
    lo, so = ort_steps(ct, data)
    l64, s64 = torch_steps(ct, fwd, data, np.float64)
    for step in range(len(data)):
        assert rel(lo[step], l64[step]) <= 1e-5, (step, lo, l64)
        for name, ref in s64[step].items():
            assert rel(so[step][name] - init[name], ref - init[name]) <= 1e-4, (step, name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_batch_with_lengths_trains_like_torch_packed_sequences(cell):
    """lengths= in a train step: the unrolled recurrence keeps each sequence's state past its length and
    zeroes its outputs there, so two SGD-momentum steps equal torch's on packed sequences (float64)."""
    pytest.importorskip("torch")
    ct, fwd = compile_step(str(SPECS / "lstm_lengths.arch"), config(opt="sgd", lr=0.1, momentum=0.9),
                           [f'cell="{cell}"'])
    data = batches(ct, 2, 4, 10, seed=3)
    for i, feeds in enumerate(data):
        feeds["lens"] = np.array([[5, 1, 3, 4], [2, 5, 5, 1]][i], np.int64)
    _steps_like_torch(ct, fwd, data)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_a_one_step_layers_hidden_weights_decay_as_torchs(cell, opt):
    """One time step and no initial state: torch computes 0 @ W_hh^T, so W_hh has a zero gradient, which weight
    decay moves; the unrolled step left the matmul out, so W_hh was left as it was and warned as reached only
    through detach (difffuzz3 hunt). Two steps against torch's in float64."""
    pytest.importorskip("torch")
    src = (f"model m(x: float32[B, 1, 3]) -> y {{\n    y = x -> {cell}(4, bidirectional=true) as rnn "
           "-> flatten(1) -> linear(2) as fc\n}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", archdsl.ArchWarning)
        ct, fwd = compile_step(None, config(loss="mse", opt=opt, lr=0.1, weight_decay=0.1), text=src)
    data = batches(ct, 2, 4, 2, seed=7)
    _steps_like_torch(ct, fwd, data)
    moved = ort_steps(ct, data)[1][-1]["rnn.weight_hh_l0"] - initial(ct)["rnn.weight_hh_l0"]
    assert np.abs(moved).max() > 1e-4


ASR = """
model asr(x: float32[B, 7, 6], y: int64[B, 3], il: int64[B], tl: int64[B]) -> loss {
    h = x -> lstm(5, bidirectional=true, lengths=il) as rnn
    lp = h -> linear(4) as out -> log_softmax(axis=2) -> permute([1, 0, 2])        # [T, B, C], blank 0
    loss = ctc_loss(lp, y, il, tl)
}
"""


def test_a_ctc_model_trains_like_torch():
    """A tiny speech recognizer: a bidirectional LSTM over padded frames (lengths=) and ctc_loss as the spec's
    own loss; two SGD-momentum steps equal torch's (nn.LSTM on packed sequences, F.ctc_loss) in float64."""
    pytest.importorskip("torch")
    ct, fwd = compile_step(None, config(loss="model", opt="sgd", lr=0.1, momentum=0.9), text=ASR)
    data = batches(ct, 2, 3, 4, seed=5)
    rng = np.random.default_rng(5)
    for feeds in data:
        feeds["y"] = rng.integers(1, 4, (3, 3)).astype(np.int64)
        feeds["il"] = np.array([7, 4, 6], np.int64)
        feeds["tl"] = np.array([3, 2, 1], np.int64)
    _steps_like_torch(ct, fwd, data)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_symbolic_sequence_length_is_a_diagnostic(cell, batch_first):
    shape = "B, T, 8" if batch_first else "T, B, 8"
    src = (f"model m(x: float32[{shape}]) -> y {{\n"
           f"    y = x -> {cell}(4, batch_first={'true' if batch_first else 'false'}) as rnn\n"
           f"          -> linear(2) as fc\n}}\n")
    with pytest.raises(ArchError) as e:
        compile_step(None, config(loss="mse", opt="sgd"), text=src)
    msg = e.value.message
    assert msg.startswith(f"{cell}: training needs a fixed sequence length") and "has length T" in msg, msg
    assert e.value.span is not None and e.value.span.line == 2, "at the recurrent layer"
    notes = " ".join(n for n, _ in e.value.notes)
    assert ("[B, LENGTH, ...]" if batch_first else "[LENGTH, B, ...]") in notes and "-D T=LENGTH" in notes, notes


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sequence_length_computed_from_the_inputs_size_names_that_size(cell):
    """After strided convs the recurrent layer's length is ((L+3)//4): the note said -D T=LENGTH, a T the file
    did not have, and to write its own input [B, LENGTH, ...], which is no model input (newuser5 hunt)."""
    src = ("param L = none\nmodel m(x: float32[B, 1, L]) -> y {\n"
           "    h = x -> conv1d(4, 5, stride=2, padding=2) as c1 -> conv1d(4, 5, stride=2, padding=2) as c2\n"
           f"    y = h -> permute([0, 2, 1]) -> {cell}(4) as rnn -> linear(2) as fc\n}}\n")
    with pytest.raises(ArchError) as e:
        compile_step(None, config(loss="mse", opt="sgd"), text=src)
    notes = " ".join(n for n, _ in e.value.notes)
    assert "computed from the model's size L: give it a number in the model's input (-D L=LENGTH" in notes, notes
    assert f"the {cell} runs ((L+3)//4) steps" in notes and "-D T=" not in notes and "LENGTH, ...]" not in notes


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_time_major_dims_read_batch_first_say_so(cell):
    """[T, B, 8] into gru() (batch first, archdsl's default): the training error advised -D B=16, the batch
    fixed as the sequence length; check passed it without a word, stepping over B."""
    src = f"model m(x: float32[T, B, 8]) -> y {{\n    y = x -> {cell}(4) as rnn\n}}\n"
    hint = (f"{cell} reads [T, B, 8] as [batch, steps, features] (batch_first=true, the default), so T is taken for "
            "the batch and B for the time steps; for time-major input write batch_first=false (torch's default)")
    with pytest.warns(archdsl.ArchWarning, match=re.escape(hint)):
        driver.check_source(src)
    with pytest.raises(ArchError) as e:
        compile_step(None, config(loss="mse", opt="sgd"), text=src)
    assert e.value.message == f"{cell}: training needs a fixed sequence length, and {hint}"
    with pytest.warns(archdsl.ArchWarning, match=r"lstm reads \[B, T, 8\] as \[steps, batch, features\] "
                      r"\(batch_first=false\), so T is taken for the batch and B for the time steps; for "
                      "batch-first input leave batch_first=false out"):
        driver.check_source("model m(x: float32[B, T, 8]) -> y {\n    y = x -> lstm(4, batch_first=false)\n}\n")
    with pytest.warns(archdsl.ArchWarning, match=r"reads \[16, B, 8\] as \[batch, steps, features\]"):  # -D T=16
        driver.check_source(f"model m(x: float32[16, B, 8]) -> y {{\n    y = x -> {cell}(4)\n}}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape, first in (("B, T, 8", "true"), ("T, B, 8", "false"), ("N, 16, 8", "true"), ("T, S, 8", "true"),
                             ("16, 8, 8", "true")):
            driver.check_source(f"model m(x: float32[{shape}]) -> y {{\n    y = x -> {cell}(4, batch_first={first})\n"
                                "}\n")


def test_fixed_length_from_a_param_trains():
    """The fix the diagnostic suggests: the length as a file-level param."""
    src = "param T = 3\nmodel m(x: float32[B, T, 8]) -> y { y = x -> lstm(4) as rnn -> linear(2) as fc }\n"
    ct, _ = compile_step(None, config(loss="mse", opt="sgd"), text=src, defines=["T=2"])
    onnx.checker.check_model(ct.step_model, full_check=True)
    x = next(i for i in ct.step_model.graph.input if i.name == "x")
    assert x.type.tensor_type.shape.dim[1].dim_value == 2


def test_a_none_param_is_symbolic_until_d_fixes_it():
    """`param T = none`: the inference model keeps T symbolic, and -D T=... makes it trainable (the library's
    lstm.arch could not be trained at all: its T was a plain symbol, and -D T=16 named no param)."""
    src = "param T = none\nmodel m(x: float32[B, T, 8]) -> y { y = x -> gru(4) as rnn -> linear(2) as fc }\n"
    g = driver.check_source(src)
    assert str(g.inputs[0].type.shape[1]) == "T"
    with pytest.raises(ArchError, match="training needs a fixed sequence length"):
        compile_step(None, config(loss="mse", opt="sgd"), text=src)
    ct, _ = compile_step(None, config(loss="mse", opt="sgd"), text=src, defines=["T=5"])
    x = next(i for i in ct.step_model.graph.input if i.name == "x")
    assert x.type.tensor_type.shape.dim[1].dim_value == 5


def test_the_library_recurrent_classifier_trains_with_a_fixed_length():
    spec = str(Path(__file__).resolve().parents[2] / "specs" / "lstm.arch")
    defines = ["vocab=50", "embed_dim=8", "hidden=8", "pdrop=0.2", "T=6"]
    ct, _ = compile_step(spec, config(opt="sgd"), defines=defines)
    onnx.checker.check_model(ct.step_model, full_check=True)
    assert "seed" in {i.name for i in ct.step_model.graph.input}, "the dropout between layers is active"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_between_layers_trains_and_its_gradient_matches_finite_differences(cell):
    """Dropout between stacked layers (torch's `dropout=` of LSTM/GRU) is drawn from seed and step; the
    step's gradient (SGD, lr 1: grad = old - new) is the derivative of the very loss the step computes,
    through both layers, both directions and the final state."""
    states = "hn, cn" if cell == "lstm" else "hn"
    src = (f"model m(x: float64[2, 4, 3]) -> y {{\n"
           f"    seq, {states} = x -> {cell}(3, num_layers=2, dropout=0.5, bidirectional=true,\n"
           f"                                return_state=true) as rnn\n"
           f"    y = concat([seq[:, -1], hn[-1]], axis=-1)\n}}\n")
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=1.0), text=src)
    onnx.checker.check_model(ct.step_model, full_check=True)
    assert "seed" in {i.name for i in ct.step_model.graph.input}
    import onnxruntime as ort
    sess = ort.InferenceSession(ct.step_model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(0)
    labels = next(i for i in ct.step_model.graph.input if i.name == "labels")
    feeds = {"x": rng.standard_normal((2, 4, 3)),
             "labels": rng.standard_normal([d.dim_value for d in labels.type.tensor_type.shape.dim]),
             "seed": np.array(3, np.int64), "step": np.array(0, np.int64)}

    def run(**over):
        return dict(zip(names, sess.run(None, {**feeds, **over})))

    base = run()
    assert run(seed=np.array(4, np.int64))["loss"] != base["loss"], "the masks come from the seed"
    w0 = initial(ct)
    for pname in ("rnn.weight_ih_l0", "rnn.weight_hh_l1_reverse"):
        out_name = next(o for o, i in ct.info.state.items() if i == pname)
        grad = w0[pname] - base[out_name]
        assert np.abs(grad).max() > 0
        v = rng.standard_normal(grad.shape)
        eps = 1e-5
        fd = run(**{pname: w0[pname] + eps * v})["loss"] - run(**{pname: w0[pname] - eps * v})["loss"]
        assert np.isclose(float(np.sum(grad * v)), float(fd) / (2 * eps), rtol=1e-6, atol=1e-9), pname


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_on_one_layer_keeps_the_onnx_forward(cell):
    """With one layer there is nothing to drop between (torch ignores it too): the step keeps ONNX's own
    LSTM/GRU for the forward."""
    ct, _ = compile_step(None, config(loss="mse", opt="sgd"),
                         text=f"model m(x: float32[B, 5, 8]) -> y {{ y = x -> {cell}(4, dropout=0.25) as rnn "
                              f"-> linear(2) as fc }}")
    onnx.checker.check_model(ct.step_model, full_check=True)
    assert cell.upper() in {n.op_type for n in ct.step_model.graph.node}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_one_between_layers_drops_everything_as_torch_does(cell):
    """dropout=1.0 was refused ("must be in [0, 1)") where torch takes it: the second layer then sees zeros
    (a mask would scale by 1 / (1 - p)). The step's loss is torch's in training mode (float64)."""
    torch = pytest.importorskip("torch")
    states = "hn, cn" if cell == "lstm" else "hn"
    src = (f"model m(x: float64[2, 4, 3]) -> y {{\n"
           f"    seq, {states} = x -> {cell}(3, num_layers=2, dropout=1.0, return_state=true) as rnn\n"
           f"    y = concat([seq[:, -1], hn[-1]], axis=-1)\n}}\n")
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=1.0), text=src)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 4, 3)), "labels": rng.standard_normal((2, 6))}
    import onnxruntime as ort
    sess = ort.InferenceSession(ct.step_model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert "seed" not in {i.name for i in sess.get_inputs()}, "nothing is drawn"
    loss = sess.run(["loss"], {i.name: feeds.get(i.name, initial(ct).get(i.name)) for i in sess.get_inputs()})[0]
    ref = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(3, 3, num_layers=2, dropout=1.0,
                                                             batch_first=True).double().train()
    ref.load_state_dict({k.removeprefix("rnn."): torch.from_numpy(v) for k, v in initial(ct).items()
                         if k.startswith("rnn.") and "/" not in k})  # not its constants
    seq, state = ref(torch.from_numpy(feeds["x"]))
    hn = state[0] if cell == "lstm" else state
    want = torch.nn.functional.mse_loss(torch.cat([seq[:, -1], hn[-1]], -1), torch.from_numpy(feeds["labels"]))
    assert np.isclose(float(loss), float(want), rtol=1e-12), (float(loss), float(want))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_float64_recurrent_layer_trains_like_torch(cell):
    """onnxruntime has no float64 LSTM or GRU kernel: the step built, then failed at its first batch ("GRU
    operator does not support double") unless dropout made it unroll (rnn2 hunt). It trains on the unrolled
    form, as torch's float64 does."""
    pytest.importorskip("torch")
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1),
                           text=f"model m(x: float64[B, 5, 3]) -> y {{\n    y = x -> {cell}(4, num_layers=2) as rnn "
                                f"-> linear(2) as fc\n}}\n")
    assert cell.upper() not in {n.op_type for n in ct.step_model.graph.node}
    _steps_like_torch(ct, fwd, batches(ct, 2, 3, 10, seed=1))


def test_a_float64_recurrent_models_validation_blames_the_runtime_not_the_data(tmp_path, capsys):
    """Its inference model keeps ONNX LSTM, which onnxruntime has no float64 kernel for: --val failed
    "on a batch of examples 0, 1, 2, 3" of the validation file (review58)."""
    from archdsl.cli import main
    spec = tmp_path / "r.arch"
    spec.write_text("model m(x: float64[B, 5, 3]) -> y {\n    h = x -> lstm(4) as rnn\n"
                    "    y = h[:, -1] -> linear(2) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 5, 3)), labels=rng.standard_normal((8, 2)))
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--epochs", "1",
            "-o", str(tmp_path / "w.npz")]
    assert main(args) == 0
    assert main([*args, "--val", str(tmp_path / "d.npz")]) == 1
    err = capsys.readouterr().err
    assert "onnxruntime cannot run this model on its provider" in err and "batch of examples" not in err
