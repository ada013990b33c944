"""Training through lstm and gru: the train step (gradient of the recurrence unrolled over a fixed length) against
torch.nn.LSTM/GRU + linear head + cross-entropy with the same weights and batches, and the diagnostics for
what cannot be trained yet (a symbolic sequence length, dropout between stacked layers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

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
    assert ("[B, 16, ...]" if batch_first else "[16, B, ...]") in notes and "-D T=" in notes, notes


def test_fixed_length_from_a_param_trains():
    """The fix the diagnostic suggests: the length as a file-level param."""
    src = "param T = 3\nmodel m(x: float32[B, T, 8]) -> y { y = x -> lstm(4) as rnn -> linear(2) as fc }\n"
    ct, _ = compile_step(None, config(loss="mse", opt="sgd"), text=src, defines=["T=2"])
    onnx.checker.check_model(ct.step_model, full_check=True)
    x = next(i for i in ct.step_model.graph.input if i.name == "x")
    assert x.type.tensor_type.shape.dim[1].dim_value == 2


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_between_layers_is_a_diagnostic(cell):
    src = (f"model m(x: float32[B, 5, 8]) -> y {{\n"
           f"    y = x -> {cell}(4, num_layers=2, dropout=0.25) as rnn -> linear(2) as fc\n}}\n")
    with pytest.raises(ArchError) as e:
        compile_step(None, config(loss="mse", opt="sgd"), text=src)
    assert "dropout between layers" in e.value.message and "not supported" in e.value.message
    assert e.value.span is not None and e.value.span.line == 2
    assert any(f"{cell}(H) -> dropout(0.25) -> {cell}(H)" in n for n, _ in e.value.notes)
    # what the note suggests trains, and so does dropout on a single layer (no layer to drop between: torch
    # ignores it too)
    for ok in (f"x -> {cell}(4) as rnn1 -> dropout(0.25) -> {cell}(4) as rnn2 -> linear(2) as fc",
               f"x -> {cell}(4, dropout=0.25) as rnn -> linear(2) as fc"):
        ct, _ = compile_step(None, config(loss="mse", opt="sgd"),
                             text=f"model m(x: float32[B, 5, 8]) -> y {{ y = {ok} }}")
        onnx.checker.check_model(ct.step_model, full_check=True)
