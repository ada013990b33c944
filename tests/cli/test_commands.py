"""The command line end to end: every subcommand, its --help, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from archdsl import __version__
from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")
LENET = str(ROOT / "specs" / "lenet5.arch")


def test_build_writes_a_checked_model(tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    assert main(["build", MLP, "-o", str(out)]) == 0
    assert "203,530 params" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_outputs_the_os_refuses_are_diagnostics(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    assert main(["build", MLP, "-o", str(tmp_path / "adir")]) == 1
    assert f"error: cannot write {tmp_path / 'adir'}: it is a directory" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["build", MLP, "-o", str(blocked / "m.onnx")]) == 1   # a file where a folder should be
    err = capsys.readouterr().err
    assert f"error: cannot write {blocked / 'm.onnx'}:" in err and "internal error" not in err
    assert main(["build", str(tmp_path / "adir")]) == 1
    assert "is a directory, not a .arch file" in capsys.readouterr().err
    assert main(["build", MLP, "-o", str(tmp_path / "adir" / "m.onnx"), "--external-data"]) == 0
    (tmp_path / "adir" / "m2.onnx.data").mkdir()  # was reported as m2.onnx, after generating the weights
    assert main(["build", MLP, "-o", str(tmp_path / "adir" / "m2.onnx"), "--external-data"]) == 1
    assert f"cannot write {tmp_path / 'adir' / 'm2.onnx.data'}: it is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "adir").iterdir()) == ["m.onnx", "m.onnx.data", "m2.onnx.data"]
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 784), np.float32), labels=np.zeros(4, np.int64))
    for flag in ("-o", "--checkpoint"):
        args = ["train", MLP, "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
        assert main(args + [flag, str(tmp_path / "adir")]) == 1
        assert "it is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "d.npz", "file"]   # nothing half-written


def test_an_opset_onnx_does_not_know_is_refused(capsys):
    top = onnx.defs.onnx_opset_version()
    assert main(["build", MLP, "--opset", str(top + 1)]) == 2
    assert f"--opset {top + 1} is not supported (17..{top})" in capsys.readouterr().err
    from archdsl import compile_file
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match=f"opset {top + 1} is not supported"):   # the Python API too
        compile_file(MLP, opset=top + 1)


def test_build_default_output_name(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.arch"
    spec.write_text("model tiny(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["build", "tiny.arch"]) == 0
    assert (tmp_path / "tiny.onnx").is_file()


def test_build_emit_ir(capsys):
    assert main(["build", MLP, "--emit", "ir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model mlp(x: float32[B, 784]) -> (logits)")
    assert "linear(x, fc1.weight, fc1.bias)" in out


def test_build_emit_ir_optimizes_for_the_opset_asked(tmp_path, capsys):
    from archdsl.ops._kernels import runs_natively
    spec = tmp_path / "att.arch"
    spec.write_text("model att(q: float32[B, 2, T, 8], k: float32[B, 2, T, 8], v: float32[B, 2, T, 8]) -> y {\n"
                    "    y = softmax(q @ transpose(k) / 4.0) @ v\n}\n")
    fused = {}
    for opset in (17, 24):
        assert main(["build", str(spec), "--emit", "ir", "-O2", "--opset", str(opset)]) == 0
        fused[opset] = "scaled_dot_product_attention" in capsys.readouterr().out
    assert fused == {17: False, 24: runs_natively("Attention", 24)}


def test_define_changes_the_model(capsys):
    assert main(["check", MLP, "-D", "hidden=32"]) == 0
    assert "params: 25,450" in capsys.readouterr().out  # 784*32+32 + 32*10+10


def test_check_prints_signature_and_params(capsys):
    assert main(["check", LENET]) == 0
    out = capsys.readouterr().out
    assert "lenet5(x: float32[B, 1, 32, 32]) -> (logits: float32[B, 10])" in out
    assert "params: 61,706" in out



def test_a_result_that_reaches_no_output_is_a_warning(tmp_path, capsys):
    """`z = x -> linear(3)` never read: check and build counted its 15 parameters, and the built model had none,
    without a word. A weight it shares with a live layer is not counted as dropped."""
    spec = tmp_path / "u.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    z = x -> linear(3) as fc -> relu\n"
                    "    w = x -> linear(4) as head\n    v = x @ ref(\"head.weight\")\n    y = w\n}\n")
    for argv in (["check", str(spec)], ["build", str(spec), "-o", str(tmp_path / "u.onnx")]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.count("warning:") == 2, err
        assert "u.arch:2:33: warning: 'relu_0' (relu) is computed but reaches no output: the built model leaves it " \
               "out, and its 15 parameters with it\n   2 |     z = x -> linear(3) as fc -> relu\n" in err
        assert "u.arch:4:9: warning: 'matmul_0' (matmul) is computed but reaches no output: the built model leaves " \
               "it out\n" in err
    assert main(["check", MLP]) == 0 and capsys.readouterr().err == ""

def test_summary_json(capsys):
    assert main(["summary", str(ROOT / "specs" / "resnet.arch"), "-D", "depth=18", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["params"] == 11_689_512
    assert rep["buffers"] == 2 * 4800  # running mean and var of every BatchNorm channel
    assert rep["flops"] > 3e9 and len(rep["layers"]) > 50
    assert {"name", "op", "shape", "params", "flops"} <= set(rep["layers"][0])


def test_summary_sizes_symbolic_dims_and_says_which_it_counted_as_one(tmp_path, capsys):
    """FLOPs were labelled "batch 1" while every other symbolic dim also counted as 1 (GPT-2 per token)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    y = ids -> embedding(10, 4) as emb -> linear(4) as fc\n}\n")
    assert main(["summary", str(spec)]) == 0
    assert "FLOPs at batch 1, T=1 (--dim T=N sizes it): 32" in capsys.readouterr().out  # 2 * 4 * 4
    assert main(["summary", str(spec), "--dim", "T=8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["flops"] == 8 * 32 and rep["flops_unsized"] == []
    assert main(["summary", str(spec), "--dim", "S=8"]) == 1
    assert "--dim S: the model has no symbolic dim 'S' (its symbolic dims: B, T)" in capsys.readouterr().err
    assert main(["summary", str(spec), "--dim", "T=x"]) == 2
    two = tmp_path / "two.arch"  # a dim that only one of the models has sizes that one
    two.write_text("model enc(x: float32[B, T, 4]) -> y { y = x -> linear(4) }\n"
                   "model head(z: float32[B, 8]) -> y { y = z -> linear(2) }\n")
    assert main(["summary", str(two), "--dim", "T=16"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs at batch 1, T=16: 512" in out and "FLOPs at batch 1: 32" in out


def test_summary_dim_sizes_formula_dims_like_fixed_ones(tmp_path, capsys):
    """After a strided conv L is `(L-1)//2+1`: --dim L=64 counted it as 1 (144 FLOPs against 4,608)."""
    body = "    y = x -> conv1d(4, 3, stride=2, padding=1) -> conv1d(4, 3, padding=1)\n}\n"
    (tmp_path / "s.arch").write_text("model m(x: float32[B, 2, L]) -> y {\n" + body)
    (tmp_path / "f.arch").write_text("model m(x: float32[B, 2, 64]) -> y {\n" + body)
    assert main(["summary", str(tmp_path / "s.arch"), "--dim", "L=64", "--json"]) == 0
    sized = json.loads(capsys.readouterr().out)["flops"]
    assert main(["summary", str(tmp_path / "f.arch"), "--json"]) == 0
    assert sized == json.loads(capsys.readouterr().out)["flops"] > 4000


def test_summary_counts_a_tied_weight_in_one_layer(tmp_path, capsys):
    """The per-layer column counted a tied table in every layer that reads it, so it summed past the total."""
    spec = tmp_path / "tied.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    h = ids -> embedding(10, 6) as emb\n"
                    "    y = h @ ref(\"emb.weight\").T\n}\n")
    assert main(["summary", str(spec), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["params"] == 60 and sum(r["params"] for r in rep["layers"]) == 60


def test_summary_table(capsys):
    assert main(["summary", MLP]) == 0
    out = capsys.readouterr().out
    assert "fc1" in out and "200,960" in out and "203,530" in out


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


@pytest.mark.parametrize("arr, what", [(np.ones((2, 5), np.float32), "float32[2, 5]"),
                                       (np.ones((2, 784), np.float64), "float64[2, 784]"),
                                       (np.ones(784, np.float32), "float32[784]")])
def test_run_input_of_the_wrong_shape_or_dtype_is_a_diagnostic(tmp_path, capsys, arr, what):
    x = tmp_path / "x.npy"
    np.save(x, arr)
    assert main(["run", MLP, "--input", f"x={x}"]) == 1
    err = capsys.readouterr().err
    assert f"--input x: the model takes float32[B, 784], {x} holds {what}" in err
    assert "internal error" not in err


def test_run_input_from_an_npz(tmp_path, capsys):
    """By the input's name, or the file's only array; an .npz was an internal error before."""
    np.savez(tmp_path / "named.npz", labels=np.zeros(3, np.int64), x=np.ones((3, 784), np.float32))
    np.savez(tmp_path / "only.npz", data=np.ones((2, 784), np.float32))
    np.savez(tmp_path / "two.npz", a=np.ones((2, 784), np.float32), b=np.ones((2, 784), np.float32))
    assert main(["run", MLP, "--input", f"x={tmp_path / 'named.npz'}", "--repeat", "1"]) == 0
    assert "logits: [3, 10]" in capsys.readouterr().out
    assert main(["run", MLP, "--input", f"x={tmp_path / 'only.npz'}", "--repeat", "1"]) == 0
    assert "logits: [2, 10]" in capsys.readouterr().out
    assert main(["run", MLP, "--input", f"x={tmp_path / 'two.npz'}"]) == 1
    assert "holds 2 arrays (a, b) and none is called 'x'" in capsys.readouterr().err
    (tmp_path / "cut.npz").write_bytes((tmp_path / "two.npz").read_bytes()[:300])
    assert main(["run", MLP, "--input", f"x={tmp_path / 'cut.npz'}"]) == 1
    assert "--input x: cannot read" in capsys.readouterr().err


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
    assert "gpt2.arch:76:5: error: sequence length is longer than n_positions" in err
    assert "note: checked at the sizes of this run: B=1, T=40" in err and "onnxruntime" not in err
    assert main(["run", *gpt, "--dim", "T=32", "--batch", "2"]) == 0
    assert "logits: [2, 32, 16]" in capsys.readouterr().out


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

def test_run_refuses_a_batch_the_model_cannot_take(tmp_path, capsys):
    spec = tmp_path / "fixed.arch"
    spec.write_text("model m(x: float32[2, 4]) -> y {\n    y = x -> linear(3)\n}\n")
    assert main(["run", str(spec), "--batch", "4"]) == 1  # ran at 2, silently, before
    assert "--batch 4: no input of the model has a symbolic first dim (x: [2, 4])" in capsys.readouterr().err
    assert main(["run", str(spec), "--repeat", "1"]) == 0
    assert "y: [2, 3]" in capsys.readouterr().out



@pytest.mark.parametrize("flags", [["--batch", "99999999999999999999"], ["--dim", "B=9223372036854775807"]])
def test_run_sizes_past_any_memory_are_a_diagnostic(flags, capsys):
    """numpy's ValueError for an array past 2**63 bytes was an internal error (exit 70)."""
    assert main(["run", MLP, *flags]) == 1
    assert "more than any machine has" in capsys.readouterr().err

def test_run_on_an_onnx_file_refuses_compile_flags(tmp_path, capsys):
    """-O, --weights, -D ... cannot change an already compiled model: they were silently ignored."""
    model = tmp_path / "m.onnx"
    assert main(["build", MLP, "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["run", str(model), "--weights", "w.npz", "-O", "1"]) == 2
    assert "--weights, -O apply to a .arch spec; m.onnx is already compiled" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["check"], ["summary"], ["build", "-o", "out.onnx"], ["train", "--data", "d.npz"]])
def test_an_onnx_file_where_a_spec_goes_says_so(tmp_path, capsys, command):
    """Not "the file is not UTF-8" at some byte of the protobuf."""
    model = tmp_path / "m.onnx"
    assert main(["build", MLP, "-o", str(model)]) == 0
    capsys.readouterr()
    assert main([command[0], str(model), *command[1:]]) == 1
    assert "m.onnx is a compiled ONNX model, not a .arch spec (`archdsl run` runs it)" in capsys.readouterr().err


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


def test_run_refuses_inputs_that_disagree_on_a_dim_name(tmp_path, capsys):
    spec = tmp_path / "two.arch"   # y with T = 1 would broadcast silently in onnxruntime
    spec.write_text("model m(x: float32[B, T, 4], y: float32[B, T, 4]) -> z {\n    z = x + y\n}\n")
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.ones((1, 3, 4), np.float32))
    np.save(y, np.ones((1, 1, 4), np.float32))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"y={y}"]) == 1
    assert "--input: dim 'T' is 3 in 'x' but 1 in 'y'" in capsys.readouterr().err
    np.save(y, np.ones((1, 3, 4), np.float32))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"y={y}"]) == 0
    np.save(x, np.ones((2, 5, 4), np.float32))   # alone: the random y takes B = 2 and T = 5 from it
    assert main(["run", str(spec), "--input", f"x={x}"]) == 0
    assert "z: [2, 5, 4] float32" in capsys.readouterr().out
    assert main(["run", str(spec), "--input", f"x={x}", "--dim", "T=6"]) == 1   # an explicit --dim disagrees
    assert "--dim T=6: --input x has 5 for dim 'T'" in capsys.readouterr().err


def test_run_a_model_onnxruntime_cannot_load_is_a_diagnostic(tmp_path, capsys):
    spec = tmp_path / "bf16.arch"   # valid ONNX; onnxruntime's CPU provider has no bfloat16 Gemm
    spec.write_text("model m(x: bfloat16[B, 4]) -> y {\n    y = x -> linear(3)\n}\n")
    assert main(["run", str(spec), "--provider", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime cannot load the model:") and "internal error" not in err


def test_run_unknown_input_is_a_diagnostic(tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 784), np.float32))
    assert main(["run", MLP, "--input", f"nope={x}"]) == 1
    assert "no input 'nope'" in capsys.readouterr().err


def test_ops_lists_the_registry(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "conv2d(x, out_channels, kernel_size" in out and "linear(" in out


def _subcommands() -> list[str]:
    import argparse

    from archdsl.cli import make_parser
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_every_subcommand_has_help(capsys):
    names = _subcommands()
    assert {"build", "check", "summary", "run", "ops"} <= set(names)
    for argv in [["--help"]] + [[n, "--help"] for n in names]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        out = capsys.readouterr().out
        assert e.value.code == 0, argv
        assert out.startswith(f"usage: archdsl {argv[0] if len(argv) > 1 else ''}".rstrip()), argv
        if len(argv) > 1:
            assert "-h, --help" in out and len(out.splitlines()) > 3, argv
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    for flag in ("-o", "-D", "--model", "--opset", "--seed", "--emit"):
        assert flag in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["build"], ["frobnicate"], ["build", MLP, "--opset", "x"],
                                  ["build", MLP, "--emit", "pdf"], ["build", MLP, "--opset", "12"], []])
def test_usage_errors_exit_2(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2


@pytest.mark.parametrize("argv", [["run", MLP, "--seed", "-5"], ["build", MLP, "--seed", str(2**32)],
                                  ["train", MLP, "--data", "d.npz", "--seed", "x"],
                                  ["run", MLP, "--threads", "-1"],
                                  ["train", MLP, "--data", "d.npz", "--threads", "-2"]])
def test_a_seed_or_thread_count_out_of_range_is_a_usage_error(argv, capsys):
    """`run --seed -5` was an internal error (numpy refuses negative seeds); build masked it to 32 bits; a
    negative thread count went to onnxruntime."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and f"argument {argv[-2]}" in capsys.readouterr().err


def test_training_flags_without_train_are_a_usage_error(tmp_path, capsys):
    """`build --loss mse` wrote an inference model and ignored the flag."""
    out = tmp_path / "m.onnx"
    assert main(["build", MLP, "--loss", "mse", "--lr", "0.1", "-o", str(out)]) == 2
    assert "--loss, --lr need --train" in capsys.readouterr().err and not out.exists()
    assert main(["build", MLP, "--train", "--loss", "mse", "-o", str(out)]) == 0


def test_missing_file_is_a_diagnostic(capsys):
    assert main(["check", "does/not/exist.arch"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_script_and_module_entry_points(tmp_path):
    """The installed `archdsl` script and `python -m archdsl` behave the same, and a diagnostic has no traceback."""
    bad = tmp_path / "bad.arch"
    bad.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> lineer(3)\n}\n")
    exe = Path(sys.executable).parent / "archdsl"
    runs = [[sys.executable, "-m", "archdsl"]] + ([[str(exe)]] if exe.exists() else [])
    for cmd in runs:
        ok = subprocess.run(cmd + ["check", MLP], capture_output=True, text=True, env=dict(os.environ))
        assert ok.returncode == 0 and "params: 203,530" in ok.stdout
        r = subprocess.run(cmd + ["build", str(bad), "-o", str(tmp_path / "bad.onnx")], capture_output=True, text=True)
        assert r.returncode == 1
        assert "bad.arch:2:14: error: unknown name 'lineer'; did you mean 'linear'?" in r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "bad.onnx").exists()


def test_a_diagnostic_into_a_closed_pipe_still_exits_1(tmp_path):
    """`archdsl check bad.arch 2>&1 | head -c0` exited 0: the BrokenPipeError of printing the diagnostic was
    taken for a reader that stopped early."""
    bad = tmp_path / "bad.arch"
    bad.write_text("model m(x: float32[B, 8]) -> y {\n    y = x -> linar(3)\n}\n")
    r, w = os.pipe()
    os.close(r)  # nobody will read: the first write fails with EPIPE
    proc = subprocess.run([sys.executable, "-m", "archdsl", "check", str(bad)], stdout=w, stderr=w, check=False)
    os.close(w)
    assert proc.returncode == 1



@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["ops"], ["passes"], ["check", MLP], ["summary", MLP, "--json"],
                                  ["build", MLP, "--emit", "ir"]])
def test_output_that_cannot_be_written_is_an_error_not_a_traceback(argv):
    """`archdsl ops > /dev/full` printed a traceback, `check` an internal error (exit 70)."""
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "archdsl", *argv], stdout=full, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == "error: cannot write the output to stdout: No space left on device"

@pytest.mark.parametrize("flags,words", [
    (["--lr", "-1"], "the learning rate must be positive and finite"),
    (["--lr", "nan"], "the learning rate must be positive and finite"),
    (["--betas", "2", "3"], "betas must be in [0, 1)"),
    (["--eps", "-1"], "eps > 0"),
    (["--weight-decay", "-1"], "weight decay must be >= 0"),
    (["--label-smoothing", "2"], "label smoothing must be in [0, 1]"),
    (["--label-smoothing", "0.1", "--loss", "mse"], "label smoothing applies to the cross_entropy loss only"),
    (["--nesterov"], "nesterov needs the sgd optimizer"),
    (["--optimizer", "adamw", "--momentum", "0.9"], "momentum is an sgd setting"),
    (["--disable-pass", "nosuch"], "--disable-pass: unknown pass 'nosuch'"),
])
def test_bad_flag_values_are_usage_errors(tmp_path, capsys, flags, words):
    """Exit 2 as the help promises for usage errors (these were 1, the status of a bad spec), before any work."""
    assert main(["build", MLP, "--train", "-o", str(tmp_path / "t.onnx")] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("archdsl build: error: ") and words in err
    assert not list(tmp_path.iterdir())
    if flags[0] != "--disable-pass":
        assert main(["train", MLP, "--data", str(tmp_path / "none.npz"), "-o", str(tmp_path / "w.npz")] + flags) == 2
        assert words in capsys.readouterr().err
    else:
        for command in (["summary", MLP], ["run", MLP]):
            assert main(command + flags) == 2
            assert words in capsys.readouterr().err


def _uint8_model(path):
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Cast", ["img"], ["y"], to=TensorProto.FLOAT)], "g",
                          [helper.make_tensor_value_info("img", TensorProto.UINT8, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def test_run_feeds_every_integer_dtype_and_names_what_it_cannot_feed(tmp_path, capsys):
    """A uint8 input got float32 random data (onnxruntime refused it) and a uint8 --input was refused as
    'the model takes float32'; an upper-case .ONNX was read as a spec."""
    model = tmp_path / "u8.ONNX"
    _uint8_model(model)
    assert main(["run", str(model)]) == 0
    np.save(tmp_path / "u8.npy", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert main(["run", str(model), "--input", f"img={tmp_path / 'u8.npy'}"]) == 0
    assert "mean 2.5" in capsys.readouterr().out
    np.save(tmp_path / "f.npy", np.zeros((2, 3), np.float32))
    assert main(["run", str(model), "--input", f"img={tmp_path / 'f.npy'}"]) == 1
    assert "the model takes uint8[N, 3]" in capsys.readouterr().err
    spec = tmp_path / "bf.arch"
    spec.write_text('model m(x: bfloat16[B, 4]) -> y {\n    y = cast(x, "float32")\n}\n')
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "input 'x' is tensor(bfloat16), which cannot be fed from Python" in err and "internal" not in err


def test_run_blames_the_given_inputs_that_disagree_and_never_ignores_batch(tmp_path, capsys):
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, T, 8], ids: int64[B, T], mask: bool[B, T]) -> y {\n"
                    "    y = x + cast(unsqueeze(ids, -1), \"float32\") + cast(unsqueeze(mask, -1), \"float32\")\n}\n")
    x, mask = tmp_path / "x.npy", tmp_path / "m.npy"
    np.save(x, np.ones((3, 5, 8), np.float32))
    np.save(mask, np.zeros((3, 4), bool))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"mask={mask}"]) == 1
    assert "dim 'T' is 5 in 'x' but 4 in 'mask'" in capsys.readouterr().err  # not in the random 'ids'
    assert main(["run", str(spec), "--batch", "4", "--dim", "B=2"]) == 1
    assert "--batch 4 and --dim B=2 disagree" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "4", "--input", f"x={x}"]) == 1
    assert "--batch 4: --input x has 3 for dim 'B'" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "3", "--input", f"x={x}"]) == 0
    masked = tmp_path / "mask.arch"  # T is first met as x's second dim: --batch never sizes it
    masked.write_text("model m(x: float32[B, T, 4], mask: float32[T, T]) -> y {\n    y = mask @ x\n}\n")
    assert main(["run", str(masked), "--batch", "2", "--dim", "T=5", "--repeat", "1"]) == 0
    assert "y: [2, 5, 4] float32" in capsys.readouterr().out


def test_metadata_is_strict_json_for_non_finite_params(tmp_path):
    import json
    spec = tmp_path / "m.arch"
    spec.write_text("param big = 1e308 * 10.0\nparam nan = big - big\n"
                    "model m(x: float32[B, 2]) -> y {\n    y = x * 2.0\n}\n")
    out = tmp_path / "m.onnx"
    assert main(["build", str(spec), "-o", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["archdsl.params"], parse_constant=lambda c: pytest.fail(c)) == {"big": "inf",
                                                                                           "nan": "nan"}


def test_ops_markdown_is_the_reference_table(capsys):
    """`archdsl ops --markdown` left '|' unescaped (abs's |x| broke its row), unlike the table it documents."""
    assert main(["ops", "--markdown"]) == 0
    out = capsys.readouterr().out
    ref = (ROOT / "grammar" / "REFERENCE.md").read_text()
    assert out.strip() in ref
    assert all(line.count("|") == 4 for line in out.strip().splitlines()[2:]), "three cells a row"
    assert "`concat([xs, ...], axis=1)`" in out  # a variadic input is one list


def test_calling_getitem_says_to_use_brackets(tmp_path, capsys):
    spec = tmp_path / "g.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = getitem(x, 0)\n}\n")
    assert main(["check", str(spec)]) == 1
    assert "getitem is written with brackets (x[0], x[:, 1:3]), not called" in capsys.readouterr().err
