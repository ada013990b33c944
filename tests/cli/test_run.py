"""`archdsl run` end to end: a spec or an .onnx, the sizes it runs at checked against the spec, and what
onnxruntime cannot do said as a diagnostic (its inputs: test_run_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")
LENET = str(ROOT / "specs" / "lenet5.arch")


def test_run_arch_and_onnx(tmp_path, capsys):
    assert main(["run", LENET, "--batch", "3", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "logits: [3, 10] float32" in out and "median latency" in out
    model = tmp_path / "m.onnx"
    assert main(["build", MLP, "-o", str(model)]) == 0
    x = tmp_path / "x.npy"
    np.save(x, np.ones((5, 784), np.float32))
    assert main(["run", str(model), "--input", f"x={x}", "--repeat", "1"]) == 0
    assert "logits: [5, 10]" in capsys.readouterr().out


def test_run_refuses_a_dim_the_model_does_not_have(capsys):
    assert main(["run", MLP, "--dim", "T=4"]) == 1  # ignored before: a typo in SYM went unnoticed
    assert "--dim T: the model has no symbolic dim 'T' (its symbolic dims: B)" in capsys.readouterr().err


def test_run_checks_the_spec_at_the_sizes_it_runs(capsys):
    """gpt2.arch asserts T <= n_positions, which holds for a symbolic T: `run --dim T=40` with 32 positions
    failed inside onnxruntime (a broadcast of 32 by 40) instead of at the assert."""
    gpt = [str(ROOT / "specs" / "gpt2.arch"), "-D", "n_layer=1", "-D", "n_head=2", "-D", "n_embd=8", "-D", "vocab=16",
           "-D", "n_positions=32", "--repeat", "1"]
    assert main(["run", *gpt, "--dim", "T=40"]) == 1
    err = capsys.readouterr().err
    assert "gpt2.arch:78:5: error: sequence length is longer than n_positions" in err
    assert "note: checked at the sizes of this run: B=1, T=40" in err and "onnxruntime" not in err
    assert main(["run", *gpt, "--dim", "T=32", "--batch", "2"]) == 0
    assert "logits: [2, 32, 16]" in capsys.readouterr().out


def test_a_branch_on_is_symbolic_is_checked_as_built(tmp_path, capsys):
    """`if is_symbolic(T)` took its other side at a run's sizes (T a number there): run, train and summary --dim
    refused the model for code the built .onnx does not have (newuser7 hunt). In an assert it still reads the
    sizes, so that gpt2.arch's `assert is_symbolic(t) or t <= n_positions` checks a run (the test above)."""
    spec = tmp_path / "ist.arch"
    spec.write_text("model m(x: float32[B, T, 4]) -> logits {\n    h = x -> linear(3) as fc\n"
                    "    if is_symbolic(T) {\n        logits = mean(h, dim=1)\n    } else {\n"
                    "        logits = h -> conv2d(3, 3)\n    }\n"
                    "    assert is_symbolic(T) or T <= 6, \"T at most 6\"\n}\n")
    assert main(["run", str(spec), "--dim", "T=5"]) == 0
    assert "logits: [1, 3]" in capsys.readouterr().out
    assert main(["summary", str(spec), "--dim", "T=5"]) == 0
    capsys.readouterr()
    both = tmp_path / "both.arch"  # both branches elaborate at T=5: the built one is compared (review82 hunt)
    both.write_text("model m(x: float32[B, T, 4]) -> y {\n    if is_symbolic(T) {\n        y = mean(x, dim=1)\n"
                    "    } else {\n        y = mean(x, dim=2)\n    }\n}\n")
    assert main(["run", str(both), "--dim", "T=5", "--repeat", "1"]) == 0
    assert "y: [1, 4]" in capsys.readouterr().out
    assert main(["run", str(spec), "--dim", "T=7"]) == 1
    assert "error: T at most 6" in capsys.readouterr().err
    guarded = tmp_path / "guarded.arch"  # a check that is_symbolic guards still runs at a run's sizes (review81)
    for check in ("    if not is_symbolic(T) {\n        assert T <= 6, \"T at most 6\"\n    }\n",
                  "    ok = is_symbolic(T) or T <= 6\n    assert ok, \"T at most 6\"\n"):
        guarded.write_text(f"model m(x: float32[B, T, 4]) -> y {{\n{check}    y = x -> linear(3) as fc\n}}\n")
        assert main(["run", str(guarded), "--dim", "T=7"]) == 1
        assert "error: T at most 6" in capsys.readouterr().err
        assert main(["run", str(guarded), "--dim", "T=6", "--repeat", "1"]) == 0
        capsys.readouterr()


def test_an_empty_batch_or_length_runs_where_onnxruntime_runs_it(tmp_path, capsys):
    """Checking the spec with a symbol bound to 0 refused what runs: a dim shared by two inputs ('a dim must be a
    positive integer'), a reshape to [B * T, 4], a layernorm over an empty T (review49): 0 stays symbolic."""
    np.save(tmp_path / "b0.npy", np.zeros((0, 4), np.float32))
    np.save(tmp_path / "t0.npy", np.zeros((2, 0, 4), np.float32))
    spec = tmp_path / "e.arch"
    for sig, body, inputs in (("x: float32[B, 4], mask: float32[B, 4]", "y = (x * mask) -> linear(2) as fc",
                               {"x": "b0", "mask": "b0"}),
                              ("x: float32[B, T, 4]", "y = reshape(x, [B * T, 4]) -> linear(2) as fc", {"x": "t0"}),
                              ("x: float32[B, T, 4]", "y = x -> layernorm(4) as ln", {"x": "t0"})):
        spec.write_text(f"model m({sig}) -> y {{\n    {body}\n}}\n")
        feeds = [a for k, v in inputs.items() for a in ("--input", f"{k}={tmp_path / v}.npy")]
        assert main(["run", str(spec), *feeds, "--repeat", "1"]) == 0, capsys.readouterr().err
        assert "empty" in capsys.readouterr().out


def test_a_slice_longer_than_the_run_gives_is_a_diagnostic(tmp_path, capsys):
    """x[:, -3:] (or x[:, 0:3]) is typed 3 long and comes out 2 long at T=2: run printed y: [1, 2, 4] against
    a declared [B, 3, 4] and exited 0, and a mean over the slice silently averaged 2 rows. From the spec the
    slice is named before anything runs; from the .onnx, the output."""
    spec = tmp_path / "short.arch"
    for body in ("y = x[:, {}] * 2.0", "y = mean(x[:, {}], dim=1)"):
        for index in ("-3:", "0:3"):
            spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    " + body.format(index) + "\n}\n")
            assert main(["run", str(spec), "--dim", "T=3", "--repeat", "1"]) == 0
            capsys.readouterr()
            assert main(["run", str(spec), "--dim", "T=2", "--repeat", "1"]) == 1
            err = " ".join(capsys.readouterr().err.split())
            col = body.index("x[") + 5
            assert (f"short.arch:2:{col}: error: getitem 'getitem_0' is typed float32[B, 3, 4] but comes out "
                    f"float32[1, 2, 4] at B=1, T=2: the spec assumes a longer input") in err, err
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    y = x[:, -3:] * 2.0\n}\n")
    assert main(["build", str(spec), "-o", str(tmp_path / "short.onnx")]) == 0
    assert main(["run", str(tmp_path / "short.onnx"), "--dim", "T=2", "--repeat", "1"]) == 1
    assert ("error: output 'y' came out [1, 2, 4] at B=1, T=2, but the model declares [B, 3, 4]"
            in capsys.readouterr().err)


def test_run_takes_an_output_of_unknown_rank(tmp_path, capsys):
    """onnxruntime shows an output without a shape as [], like a scalar: the declared-shape check refused a
    Reshape to a run-time shape."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 6])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g", [x, s], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dyn.onnx")
    np.save(tmp_path / "s.npy", np.array([2, 3], np.int64))
    assert main(["run", str(tmp_path / "dyn.onnx"), "--input", f"s={tmp_path / 's.npy'}", "--repeat", "1"]) == 0
    assert "y: [2, 3] float32" in capsys.readouterr().out


def test_positions_past_a_table_are_a_diagnostic(tmp_path, capsys):
    """A position table shorter than the run's T: onnxruntime's optimized Gather returned 4 rows where the
    checker promised [T, 3], and `run --dim T=8` exited 0 (a spec without gpt2.arch's assert)."""
    spec = tmp_path / "pos.arch"
    spec.write_text("model pos(ids: int64[B, T], x: float32[B, T, 5]) -> (y, z) {\n"
                    "    y = positions(ids) -> embedding(4, 3) as pe\n"
                    "    z = take(x, positions(x, start=2), axis=2)\n}\n")
    assert main(["run", str(spec), "--dim", "T=3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "y: [3, 3] float32" in out and "z: [1, 3, 3] float32" in out
    assert main(["run", str(spec), "--dim", "T=5", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert "pos.arch:2:27: error: embedding 'pe' reads positions 0..4, but its table has 4 rows" in err
    assert "note: checked at the sizes of this run: B=1, T=5" in err
    spec.write_text(spec.read_text().replace("embedding(4, 3)", "embedding(8, 3)"))
    assert main(["run", str(spec), "--dim", "T=4", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert "reads positions 2..5, but its table has 5 entries along axis 2" in err


@pytest.mark.parametrize("expr,ok", [("take(t, tensor([0, 8, -9]))", True), ("take(t, tensor([9]))", False),
                                     ("take(t, tensor([-10]))", False), ("embedding(tensor([0, 4]), 5, 2)", True),
                                     ("embedding(tensor([-1, 2]), 5, 2)", False),
                                     ("gather(t, 0, tensor([[8, -9]]))", True), ("gather(t, 0, tensor([[9]]))", False)])
def test_constant_indices_outside_the_table_are_a_diagnostic(expr, ok):
    """A constant index table (Swin's relative position index) past the table built, and failed in
    onnxruntime only; negative indices count from the end in take and gather (ONNX Gather), not in embedding."""
    src = f"model m(x: float32[2]) -> y {{\n    t = parameter([9, 2]) as t\n    y = {expr}\n}}\n"
    if ok:
        archdsl.check_source(src)
    else:
        with pytest.raises(archdsl.ArchError, match=r"reads indices .*, but its table has"):
            archdsl.check_source(src)


def test_an_output_of_infinities_prints_without_a_numpy_warning(tmp_path, capsys):
    """inf - inf in the printed std made numpy warn "invalid value encountered in subtract" on stderr."""
    import warnings
    spec = tmp_path / "inf.arch"
    spec.write_text('model m(x: float32[B, 3]) -> y {\n    y = full_like(x, "-inf")\n}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["run", str(spec), "--repeat", "1"]) == 0
    assert "y: [1, 3] float32  mean -inf  std nan  min -inf  max -inf" in capsys.readouterr().out


def test_run_keeps_embedding_ids_within_the_table(tmp_path, capsys):
    """Random ids were 0 or 1 whatever the table (a 1-row embedding failed in onnxruntime's Gather); given
    ids past the table failed there too, and an id of -1 quietly read the last row (torch refuses it)."""
    spec = tmp_path / "emb.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    y = ids -> embedding(1, 8) as emb\n}\n")
    assert main(["run", str(spec), "--repeat", "1"]) == 0
    spec.write_text(spec.read_text().replace("embedding(1, 8)", "embedding(100, 8)"))
    for value, words in ((100, "is 100"), (-1, "is -1")):
        np.save(tmp_path / "ids.npy", np.full((1, 4), value, np.int64))
        assert main(["run", str(spec), "--input", f"ids={tmp_path / 'ids.npy'}"]) == 1
        err = capsys.readouterr().err
        assert f"ids.npy: 'ids'[0, 0] {words}, but the embedding it indexes (emb) has 100 rows: ids are 0..99" in err
    spec.write_text("model m(ids: int64[]) -> y {\n    y = embedding(ids, 10, 4) as emb\n}\n")  # 0-d ids: left
    np.save(tmp_path / "ids.npy", np.array(12, np.int64))  # unchecked by 6cce0cc (review57)
    assert main(["run", str(spec), "--input", f"ids={tmp_path / 'ids.npy'}"]) == 1
    assert "'ids'[] is 12, but the embedding it indexes (emb) has 10 rows" in capsys.readouterr().err


@pytest.mark.parametrize("body, shape", [("gather(x, 1, i)", "B, 1"), ("take(x, i, axis=1)", "B, 1"),
                                         ("scatter_add(zeros_like(x), 1, i, x)", "B, 1"),
                                         ("index_add(x, 1, i, x)", "1")])
def test_run_keeps_indices_within_what_they_index(tmp_path, capsys, body, shape):
    """gather's (and take's, scatter_add's, index_add's) index inputs were drawn 0 or 1 as any integer input:
    out of range for a dim of 1, and the run stopped with onnxruntime's raw error (moe hunt); given ones past
    the end are said before the run."""
    spec = tmp_path / "g.arch"
    spec.write_text(f"model m(x: float32[B, 1], i: int64[{shape}]) -> y {{\n    y = {body}\n}}\n")
    for _ in range(3):  # random draws
        assert main(["run", str(spec), "--batch", "4", "--repeat", "1"]) == 0, capsys.readouterr().err
    np.save(tmp_path / "i.npy", np.full((2, 1) if "B" in shape else (1,), 1, np.int64))
    np.save(tmp_path / "x.npy", np.ones((2, 1), np.float32))
    assert main(["run", str(spec), "--input", f"i={tmp_path / 'i.npy'}", "--input", f"x={tmp_path / 'x.npy'}"]) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert f"'i'[0{', 0' if 'B' in shape else ''}] is 1, but " in said and " of what " in said and \
        " has 1 row: ids are -1..0" in said, said


def test_run_refuses_a_batch_the_model_cannot_take(tmp_path, capsys):
    spec = tmp_path / "fixed.arch"
    spec.write_text("model m(x: float32[2, 4]) -> y {\n    y = x -> linear(3)\n}\n")
    assert main(["run", str(spec), "--batch", "4"]) == 1  # ran at 2, silently, before
    assert "--batch 4: no input of the model has a symbolic first dim (x: [2, 4])" in capsys.readouterr().err
    assert main(["run", str(spec), "--repeat", "1"]) == 0
    assert "y: [2, 3]" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--batch", "99999999999999999999"], ["--dim", "B=9223372036854775807"]])
def test_run_sizes_past_any_memory_are_a_diagnostic(flags, capsys, tmp_path):
    """numpy's ValueError for an array past 2**63 bytes was an internal error (exit 70). The spec's own limits
    speak first; a compiled model's largest node at those sizes."""
    assert main(["run", MLP, *flags]) == 1
    assert "mlp.arch:8:11: error: input 'x' has " in capsys.readouterr().err
    assert main(["build", MLP, "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["run", str(tmp_path / "m.onnx"), *flags]) == 1
    assert "error: at these sizes Gemm 'fc1/Gemm_1@mlp.arch:9' holds " in capsys.readouterr().err

def test_run_on_an_onnx_file_refuses_compile_flags(tmp_path, capsys):
    """-O, --weights, -D ... cannot change an already compiled model: they were silently ignored."""
    model = tmp_path / "m.onnx"
    assert main(["build", MLP, "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["run", str(model), "--weights", "w.npz", "-O", "1"]) == 2
    assert "--weights, -O apply to a .arch spec; m.onnx is already compiled" in capsys.readouterr().err


def test_run_on_cuda_never_quietly_runs_on_the_cpu(tmp_path, capsys, monkeypatch):
    import onnxruntime as ort

    from archdsl import runtime
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    assert main(["run", MLP, "--provider", "cuda"]) == 1   # not in this build: said so
    assert capsys.readouterr().err.startswith("error: --provider cuda: CUDAExecutionProvider is not available")
    digits = str(ROOT / "examples" / "digits" / "digits.arch")
    out = tmp_path / "w.npz"
    assert main(["train", digits, "--data", str(tmp_path / "d.npz"), "-o", str(out), "--provider", "cuda",
                 "--quiet"]) == 1
    assert "--provider cuda: CUDAExecutionProvider is not available" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())   # nothing written
    # a CUDA build without its libraries lists the provider, then falls back to the CPU with a warning
    monkeypatch.setattr(runtime, "providers", lambda choice: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert main(["run", MLP, "--provider", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "onnxruntime runs this model on CPUExecutionProvider, not CUDAExecutionProvider" in err
    assert "internal error" not in err


def test_run_a_model_onnxruntime_cannot_load_is_a_diagnostic(tmp_path, capsys):
    spec = tmp_path / "bf16.arch"   # valid ONNX; onnxruntime's CPU provider has no bfloat16 Gemm
    spec.write_text("model m(x: bfloat16[B, 4]) -> y {\n    y = x -> linear(3)\n}\n")
    assert main(["run", str(spec), "--provider", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:2:5: error: onnxruntime cannot load the model:") and "internal error" not in err
    assert "   2 |     y = x -> linear(3)\n" in err


def test_run_of_a_bfloat16_output_says_why_it_cannot_show_it(tmp_path, capsys):
    """onnxruntime ran the model, then could not give its bfloat16 output to numpy: that was reported as
    'could not run the model'."""
    spec = tmp_path / "bf.arch"
    spec.write_text('model s(x: float32[B, 4]) -> y {\n    y = cast(x, "bfloat16")\n}\n')
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "output 'y' is tensor(bfloat16), which onnxruntime's Python API cannot hand over" in err
    assert "could not run" not in err


def test_sizes_too_large_for_memory_are_a_diagnostic_before_any_input_is_drawn(tmp_path, capsys, monkeypatch):
    """--dim T=2147483648 drew the random inputs before checking the spec at those sizes, and a run of the
    .onnx had onnxruntime allocate: the OOM killer ended both (exit 137). The spec's checks now come first, and
    a node whose inputs and outputs at the run's sizes exceed the memory free is named (the memory free is
    patched small here, so that a failing check allocates little)."""
    from archdsl import runtime
    spec = tmp_path / "seq.arch"
    spec.write_text("model s(ids: int64[B, T]) -> y {\n"
                    "    y = ids -> embedding(100, 16) as emb -> linear(4) as head\n}\n")
    assert main(["run", str(spec), "--dim", "T=2147483648"]) == 1
    err = capsys.readouterr().err
    assert "seq.arch:2:16: error: embedding makes a dim of 2147483648" in err
    assert "note: checked at the sizes of this run: B=1, T=2147483648" in err
    assert main(["build", str(spec), "-o", str(tmp_path / "seq.onnx")]) == 0
    monkeypatch.setattr(runtime, "_free_memory", lambda: 1 << 20)  # 1 MiB free
    monkeypatch.setattr(runtime, "random_feeds", lambda *a, **k: pytest.fail("drew the inputs first"))
    for target in (str(spec), str(tmp_path / "seq.onnx")):
        assert main(["run", target, "--dim", "T=50000", "--repeat", "1"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert ("error: at these sizes MatMul 'head/MatMul_2@seq.arch:2' holds 3.81 MiB of inputs and outputs at "
                "once, more than the 1 MiB of memory free: give smaller sizes (the sizes of this run: B=1, "
                "T=50000)") in err, err
        assert (target.endswith(".arch")) == ("seq.arch:2:5: error: at these sizes" in err and "2 | y = ids" in err)
    monkeypatch.undo()
    assert main(["run", str(tmp_path / "seq.onnx"), "--dim", "T=50", "--repeat", "1"]) == 0
    assert "y: [1, 50, 4] float32" in capsys.readouterr().out


def test_too_large_counts_a_nodes_inputs_and_outputs_together(monkeypatch):
    """The MatMul of x [1, 1000, 16] into [1, 1000, 8] holds 64,000 + 32,000 bytes of activations at once, more
    than any other node (the bias Add: 32,000 + 32,000); the weights are not counted again (the model and the
    session hold them, and the memory free is net of them: a 512 MiB weight refused a run that needed 100 KB
    more). A size it is not told is not counted, and without a figure for the memory free nothing is checked."""
    from archdsl import runtime
    model = archdsl.compile_source("model m(x: float32[B, T, 16]) -> y {\n    y = x -> linear(8) as fc\n}\n")
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    monkeypatch.setattr(runtime, "_free_memory", lambda: 96_000)
    assert runtime.too_large(model, {"B": 1, "T": 1000}) is None
    monkeypatch.setattr(runtime, "_free_memory", lambda: 95_999)
    assert runtime.too_large(model, {"B": 1, "T": 1000}) == (
        "at these sizes MatMul 'fc/MatMul_1@<string>:2' holds 93.8 KiB of inputs and outputs at once, more than the "
        "93.7 KiB of memory free: give smaller sizes")
    assert runtime.too_large(model, {"B": 1}) is None
    monkeypatch.setattr(runtime, "_free_memory", lambda: None)
    assert runtime.too_large(model, {"B": 1, "T": 10 ** 9}) is None


def test_a_sequence_or_string_output_is_refused_before_running(tmp_path, capsys):
    """An .onnx whose output is a sequence (SplitToSequence) printed its header and then an internal error
    ('list' object has no attribute 'shape', exit 70); a string input was said to be unfeedable "from Python"."""
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("SplitToSequence", ["x"], ["o"], axis=0)], "seqout",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_sequence_value_info("o", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "seq.onnx"))
    assert main(["run", str(tmp_path / "seq.onnx"), "--repeat", "1"]) == 1
    out = capsys.readouterr()
    assert ("error: output 'o' is seq(tensor(float)): archdsl run prints and saves numeric tensors only" in out.err
            and "internal" not in out.err and out.out == "")
    g = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "strs",
                          [helper.make_tensor_value_info("s", TensorProto.STRING, [2])],
                          [helper.make_tensor_value_info("t", TensorProto.STRING, [2])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "str.onnx"))
    assert main(["run", str(tmp_path / "str.onnx"), "--repeat", "1"]) == 1
    assert "error: output 't' is tensor(string)" in capsys.readouterr().err


def test_an_onnxruntime_failure_at_a_node_shows_its_spec_line(tmp_path, capsys):
    """onnxruntime names the node it fails on, and archdsl's node names end in @file.arch:LINE: the error of a
    spec's run shows that line (it was the message alone); the same model run as an .onnx has no source."""
    spec = tmp_path / "f64conv.arch"
    spec.write_text("model c(x: float64[B, 3, 8, 8]) -> y {\n    y = x -> conv2d(4, 3)\n}\n")
    assert main(["run", str(spec), "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:2:5: error: onnxruntime cannot load the model:" in err and "Conv" in err
    assert "   2 |     y = x -> conv2d(4, 3)\n" in err and "^^^^^^^^^^^^^^^^^^^^^" in err
    assert main(["build", str(spec), "-o", str(tmp_path / "c.onnx")]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path / "c.onnx"), "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime cannot load the model:") and "|" not in err


def test_a_node_line_is_not_shown_from_one_of_two_files_of_its_name(tmp_path, capsys):
    """Node names carry the file's base name only: with a/blk.arch and b/blk.arch imported, the line of the
    wrong one was shown under the error."""
    for sub, body in (("a", "x * 2.0"), ("b", "x -> relu")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "blk.arch").write_text(f"block {sub}(x) {{\n    y = x\n    return {body}\n}}\n")
    spec = tmp_path / "main.arch"
    spec.write_text('import "a/blk.arch" as a\nimport "b/blk.arch" as b\n'
                    "model m(x: bfloat16[B, 4]) -> y {\n    y = x -> a.a -> b.b\n}\n")
    assert main(["run", str(spec), "--provider", "cpu", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime cannot load the model:") and "blk.arch:3" in err and " | " not in err


def test_run_report_counts_the_flops_at_the_runs_sizes(tmp_path, capsys):
    """run --dim T=16 --report printed the FLOPs at every symbolic dim 1, where summary --dim counts them at 16;
    then at batch 1 whatever --batch or an --input file's sizes were."""
    gpt = [str(ROOT / "specs" / "gpt2.arch"), "-D", "n_embd=64", "-D", "n_layer=2", "-D", "n_head=4", "-D",
           "vocab=100"]
    assert main(["summary", *gpt, "--dim", "B=3", "--dim", "T=16"]) == 0
    summary = capsys.readouterr().out
    np.save(tmp_path / "ids.npy", np.zeros((3, 16), np.int64))
    for sizes in (["--batch", "3", "--dim", "T=16"], ["--input", f"input_ids={tmp_path / 'ids.npy'}"]):
        assert main(["run", *gpt, *sizes, "--repeat", "1", "--report"]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("FLOPs"))
        assert line.startswith("FLOPs (B=3, T=16): ")
        assert line.split(": ")[1].split()[0] in summary  # the same count as summary's at B=3, T=16


def test_a_kernel_onnxruntime_lacks_is_named_with_what_to_do(tmp_path, capsys):
    """float64 erf (and gelu, which onnxruntime expands into nodes of its own, named '') failed with
    onnxruntime's bare message: no location for the expanded ones, and no word on what to do."""
    for body, located in (("y = erf(x)", True), ("y = gelu(x)", False)):
        spec = tmp_path / "f64.arch"
        spec.write_text(f"model m(x: float64[B, 8]) -> y {{\n    {body}\n}}\n")
        import onnxruntime as ort
        try:
            ort.InferenceSession(archdsl.compile_file(spec).SerializeToString(), providers=["CPUExecutionProvider"])
            pytest.skip("this onnxruntime has float64 kernels for these")
        except ort.capi.onnxruntime_pybind11_state.NotImplemented:  # what the run below reports
            pass
        assert main(["run", str(spec), "--provider", "cpu"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "kernel for this model's types: grammar/REFERENCE.md lists the float64 and bfloat16 ops" in err
        assert ("f64.arch:2:5: error:" in err) == located
        assert ("a node onnxruntime made from the model's own" in err) != located


def test_run_sizes_formula_dims_and_says_where_batch_does_not_apply(tmp_path, capsys):
    """An input of [B, T + 1, 4] beside one of [B, T, 4] failed in onnxruntime ('broadcast 5 by 8'); --batch
    on a model whose symbolic dims are first met past dim 0 was ignored without a word; and a model from
    another tool with an unnamed batch dim ([?, 3]) refused --batch."""
    spec = tmp_path / "ext.arch"
    spec.write_text("model m(x: float32[B, T, 4], p: float32[B, T + 1, 4]) -> y {\n"
                    "    y = (x + p[:, 1:]) -> linear(3) as fc -> mean(dim=1)\n}\n")
    assert main(["run", str(spec), "--dim", "T=3", "--batch", "2", "--repeat", "1"]) == 0
    assert "y: [2, 3] float32" in capsys.readouterr().out
    np.save(tmp_path / "x5.npy", np.ones((1, 5, 4), np.float32))
    np.save(tmp_path / "p9.npy", np.ones((1, 9, 4), np.float32))
    assert main(["run", str(spec), "--input", f"x={tmp_path / 'x5.npy'}", "--repeat", "1"]) == 0
    assert main(["run", str(spec), "--input", f"x={tmp_path / 'x5.npy'}", "--input", f"p={tmp_path / 'p9.npy'}"]) == 1
    assert "dim '(T+1)' of 'p' is 9, but 6 at T=5" in capsys.readouterr().err
    assert main(["run", str(spec), "--input", f"p={tmp_path / 'p9.npy'}", "--repeat", "1"]) == 0  # T=8 from p
    pair = tmp_path / "pair.arch"  # --batch against a formula dim's given size: it crashed (StopIteration)
    pair.write_text("model m(x: float32[B, 4], p: float32[2 * B, 4]) -> y {\n    y = sum(x, [0]) + sum(p, [0])\n}\n")
    np.save(tmp_path / "p6.npy", np.zeros((6, 4), np.float32))
    assert main(["run", str(pair), "--batch", "2", "--input", f"p={tmp_path / 'p6.npy'}"]) == 1
    assert "--batch 2: --input p has 3 for dim 'B'" in capsys.readouterr().err
    late = tmp_path / "late.arch"
    late.write_text("model m(a: float32[4, N], b: float32[N]) -> y {\n    y = a * b\n}\n")
    assert main(["run", str(late), "--batch", "3"]) == 1
    assert "--batch 3: dim 'N' is first met as dim 1 of 'a', so no dim is the batch; size it with --dim N=3" in \
        capsys.readouterr().err
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "foreign.onnx")
    assert main(["run", str(tmp_path / "foreign.onnx"), "--batch", "2", "--repeat", "1"]) == 0
    assert "y: [2, 3] float32" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "foreign.onnx"), "--dim", "T=3"]) == 1
    assert "(it names no symbolic dim)" in capsys.readouterr().err


def test_run_batch_and_given_sizes_of_formula_dims(tmp_path, capsys):
    """--batch on [2*B, T] beside [T, B] (B first met past a first dim) was ignored without a word; a given
    input no whole B fits, or whose formula archdsl cannot solve, was compared with the formula at default
    sizes ('is 7, but 2 at B=1; inputs that share a dim name must agree')."""
    late = tmp_path / "late.arch"
    late.write_text("model m(x: float32[2 * B, T], t: float32[T, B]) -> y {\n    y = x\n}\n")
    assert main(["run", str(late), "--batch", "3"]) == 1
    assert "--batch 3: the first dim of 'x', 2*B, is a formula of 'B', which is first met as dim 1 of 't', so no " \
        "dim is the batch; size it with --dim B=3" in capsys.readouterr().err
    pair = tmp_path / "pair.arch"
    pair.write_text("model m(x: float32[2 * B, T], t: float32[B, T]) -> y {\n    y = x\n}\n")
    assert main(["run", str(pair), "--batch", "3", "--repeat", "1"]) == 0
    assert "y: [6, 8] float32" in capsys.readouterr().out
    from onnx import TensorProto, helper  # B met only in a first dim's formula: the batch; --dim must agree
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["2*B", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["2*B", 4])])
    only = tmp_path / "only.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), only)
    assert main(["run", str(only), "--batch", "3", "--repeat", "1"]) == 0
    assert "y: [6, 4] float32" in capsys.readouterr().out
    assert main(["run", str(only), "--batch", "3", "--dim", "B=2"]) == 1
    assert "--batch 3 and --dim B=2 disagree" in capsys.readouterr().err
    np.save(tmp_path / "x7.npy", np.ones((7, 8), np.float32))
    assert main(["run", str(pair), "--input", f"x={tmp_path / 'x7.npy'}"]) == 1
    assert "--input x: dim '2*B' is 7, which no whole B gives" in capsys.readouterr().err
    half = tmp_path / "half.arch"
    half.write_text("model m(x: float32[B, T // 2], t: float32[B, T]) -> y {\n    y = x\n}\n")
    np.save(tmp_path / "x3.npy", np.ones((2, 3), np.float32))
    assert main(["run", str(half), "--input", f"x={tmp_path / 'x3.npy'}"]) == 1
    assert "dim '(T//2)' is 3; archdsl solves a dim for its symbol only where the formula is linear in one: give " \
        "--dim T=N" in capsys.readouterr().err
    assert main(["run", str(half), "--input", f"x={tmp_path / 'x3.npy'}", "--dim", "T=7", "--repeat", "1"]) == 0


def test_run_refuses_a_pipe_for_an_input_or_a_model(tmp_path, capsys):
    """--input x=FIFO waited for a writer forever (and with one, numpy could not seek it); a FIFO named m.onnx
    was 'no such file'."""
    import os
    os.mkfifo(tmp_path / "x.npy")
    assert main(["run", MLP, "--input", f"x={tmp_path / 'x.npy'}"]) == 1
    assert f"--input x: cannot read {tmp_path / 'x.npy'}: not a regular file (a pipe or a device)" in \
        capsys.readouterr().err
    os.mkfifo(tmp_path / "m.onnx")
    assert main(["run", str(tmp_path / "m.onnx")]) == 1
    assert "is not a regular file (a pipe or a device), not a model" in capsys.readouterr().err


def test_run_an_onnx_file_whose_name_is_not_utf8(tmp_path, capsys):
    """onnxruntime opens files by UTF-8 names: a name of other bytes was a pybind11 'incompatible constructor
    arguments' error, though build had written it; one with external data cannot be built so."""
    import os
    out = str(tmp_path / os.fsdecode(b"m\xff.onnx"))
    assert main(["build", LENET, "-o", out]) == 0
    assert main(["run", out, "--repeat", "1"]) == 0
    assert "logits: [1, 10] float32" in capsys.readouterr().out
    assert main(["build", LENET, "-o", out + "2", "--external-data"]) == 1
    assert "ONNX records the name of the data file as UTF-8" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == [os.fsdecode(b"m\xff.onnx")]


def test_run_refuses_an_empty_batch_into_an_lstm(tmp_path):
    """onnxruntime 1.32 ends the process (SIGABRT) on an LSTM or GRU given no examples: run said nothing.
    In a subprocess, so that a regression fails this test, not the whole run of the tests."""
    import subprocess
    import sys
    spec = tmp_path / "l.arch"
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    y = x -> gru(8)\n}\n")
    np.save(tmp_path / "e.npy", np.zeros((0, 5, 4), np.float32))
    assert main(["build", str(spec), "-o", str(tmp_path / "l.onnx")]) == 0
    for model in (spec, tmp_path / "l.onnx"):
        res = subprocess.run([sys.executable, "-m", "archdsl", "run", str(model), "--input", f"x={tmp_path / 'e.npy'}",
                              "--repeat", "1"], capture_output=True, text=True, timeout=300)
        assert res.returncode == 1 and "reaches an LSTM or GRU, and onnxruntime (1.32) ends the process" in \
            res.stderr, res
    spec.write_text("model m(x: float32[B, T, 4], z: float32[N, 3]) -> (y, w) {\n    y = x -> gru(8)\n"
                    "    w = z -> linear(2)\n}\n")  # an empty input that reaches no GRU runs
    np.save(tmp_path / "z.npy", np.zeros((0, 3), np.float32))
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 4), np.float32))
    assert main(["run", str(spec), "--input", f"z={tmp_path / 'z.npy'}", "--input", f"x={tmp_path / 'x.npy'}",
                 "--repeat", "1"]) == 0


def test_a_model_with_external_weights_under_a_non_utf8_name_is_a_diagnostic(tmp_path, capsys):
    """onnxruntime opens by UTF-8 names: such a model goes as bytes, and its .data file then is looked for in the
    cwd (an onnxruntime error naming another path; a file of that name there would be read as its weights)."""
    import os
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 64]) -> y {\n    y = x -> linear(64) as fc\n}\n")
    folder = tmp_path / os.fsdecode(b"bad\xffdir")
    folder.mkdir()
    for flags in (["--external-data"], []):
        out = folder / ("ext.onnx" if flags else "inline.onnx")
        assert main(["build", str(spec), "-o", str(out), *flags]) == 0
    capsys.readouterr()
    assert main(["run", str(folder / "ext.onnx")]) == 1
    assert "onnxruntime opens models by UTF-8 file names" in capsys.readouterr().err
    assert main(["run", str(folder / "inline.onnx")]) == 0  # no weights beside it: read and handed over as bytes
