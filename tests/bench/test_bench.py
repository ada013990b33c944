"""The benchmark command: its parts on small inputs, and one run without torch (archdsl's own figures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from archdsl.bench import main
from archdsl.bench.child import mlp_source
from archdsl.bench.latency import alternate, alternate_orders, median_interval, median_ratio, ratio_interval
from archdsl.bench.models import MODELS, example_inputs
from archdsl.bench.report import render
from archdsl.bench.run import bench_scaling


def test_models_have_specs_and_inputs():
    for m in MODELS:
        assert m.path.is_file(), m.spec
    bert = next(m for m in MODELS if m.key == "bert_base")
    assert [(n, s) for n, s, _ in example_inputs(bert)] == [("input_ids", (1, 128)), ("token_type_ids", (1, 128)),
                                                             ("attention_mask", (1, 128))]


def test_deep_mlp_source_compiles_to_two_nodes_per_layer():
    from archdsl import check_source
    assert len(check_source(mlp_source(7, 4)).nodes) == 14


class _Fake:
    def __init__(self):
        self.calls = 0

    def run(self, outputs, feeds):
        self.calls += 1


def test_alternate_runs_every_session_every_round():
    a, b = _Fake(), _Fake()
    times = alternate({"a": (a, {}), "b": (b, {})}, rounds=5, warmup=1)
    assert a.calls == b.calls == 6 and len(times["a"]) == len(times["b"]) == 5
    assert median_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]) == 3.0


def test_alternate_orders_creates_sessions_in_both_orders_and_pools_rounds():
    created = []

    def make(label):
        created.append(label)
        return _Fake(), {}
    times = alternate_orders(make, ["a", "b", "c"], rounds=5)
    assert created == ["a", "b", "c", "c", "b", "a"]
    assert all(len(v) == 5 for v in times.values())


def test_median_interval_is_order_statistics_with_binomial_coverage():
    xs = [float(v) for v in range(30, 0, -1)]
    assert median_interval(xs) == (10.0, 21.0)  # k = 10: P(Bin(30, 1/2) <= 9) = 0.021 <= 0.025 < P(<= 10)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # even (min, max) covers only 94%
    assert median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    assert ratio_interval([2.0] * 30, [1.0] * 30) == (2.0, 2.0)
    rng = np.random.default_rng(0)
    covered = sum(lo <= 0.0 <= hi for lo, hi in (median_interval(list(rng.standard_normal(30))) for _ in range(4000)))
    assert 0.945 <= covered / 4000 <= 0.97  # the interval's exact coverage is 95.7%


def test_render_with_and_without_torch(capsys):
    res = {"machine": {"cpu": "cpu", "cores": 2, "memory": "1 GiB", "python": "3", "onnx": "1", "onnxruntime": "1",
                       "providers": "CPU", "torch": "2"}, "threads": 2, "rounds": 3, "torch": "yes",
           "models": [{"model": "M", "archdsl_O0": {"seconds": 1.0, "peak_mb": 10.0, "nodes": 12},
                       "archdsl_O2": {"seconds": 0.5, "peak_mb": 9.0, "nodes": 8},
                       "archdsl_given": {"seconds": 0.25, "peak_mb": 9.0, "nodes": 8},
                       "write_floor": {"seconds": 0.125, "bytes": 1000},
                       "torch_dynamo": {"seconds": 25.0, "peak_mb": 900.0, "nodes": 20},
                       "torch_legacy": {"error": "boom"},
                       "latency_ms": {"O0": 2.0, "O2": 1.0, "dynamo": 1.1}, "ratio": {"O0": 0.5, "dynamo": 0.9},
                       "ratio_ci": {"O0": None, "dynamo": (0.875, 0.93)},
                       "max_abs_diff": "1.0e-06"}],
           "scaling": [{"layers": 500, "ir_nodes": 1000, "nodes": 1000, "seconds": 0.3, "peak_mb": 5.0}]}
    render(res, ["dynamo", "legacy"], markdown=True)
    out = capsys.readouterr().out
    assert "| M | 0.50 | 0.25 | - | 0.12 | 25.00 | error | 50x / - | 100x / - | 12/8/20/error |" in out
    assert "0.90 (0.88-0.93) / -" in out and "boom" in out and "| 500 | 1,000 | 1,000 | 0.30 | 300 |" in out
    render(res, [], markdown=False)
    assert "archdsl" in capsys.readouterr().out


# what render() reads of machine()
MACHINE = {k: "?" for k in ("cpu", "cores", "memory", "python", "onnx", "onnxruntime", "providers", "torch")}


def test_render_puts_cuda_figures_in_a_table(capsys):
    res = {"machine": MACHINE, "threads": 2, "rounds": 3, "torch": "yes", "scaling": [],
           "models": [{"model": "M", "latency_ms": {"O2": 1.0}, "cuda_ms": {"O2": 0.5, "dynamo": 0.625},
                       "cuda_ratio": {"dynamo": 0.8}, "cuda_ratio_ci": {"dynamo": (0.75, 0.875)}},
                      {"model": "N", "cuda_error": "RuntimeError: onnxruntime did not enable CUDAExecutionProvider"},
                      {"model": "P", "latency_ms": {"O2": 1.0}}]}
    render(res, ["dynamo"], markdown=True)
    out = capsys.readouterr().out
    assert "| model | CUDA ms O2/dyn | CUDA latency O2/torch (95% CI) |" in out
    assert "| M | 0.50 / 0.62 | 0.80 (0.75-0.88) |" in out
    assert "| N | error | - |" in out  # the reason in the notes, as for every other failure
    assert "- N, CUDA latency: RuntimeError: onnxruntime did not enable CUDAExecutionProvider" in out
    assert "| P |" not in out.split("CUDA ms")[1]  # not timed on CUDA: no row
    res["models"] = res["models"][2:]
    render(res, ["dynamo"], markdown=True)
    assert "CUDA" not in capsys.readouterr().out  # no CUDA figures at all: no table


def test_cuda_session_refuses_to_fall_back_to_the_cpu(tmp_path):
    import onnxruntime as ort
    from onnx import TensorProto, helper, save

    from archdsl.bench.latency import make_session
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the fallback cannot be provoked here")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    make_session(str(tmp_path / "m.onnx"))  # the CPU session is fine
    with pytest.raises(RuntimeError, match="runs this model on CPUExecutionProvider, not CUDAExecutionProvider"):
        make_session(str(tmp_path / "m.onnx"), provider="cuda")


def test_write_floor_child_writes_the_bytes(tmp_path):
    from archdsl.bench.run import _child
    r = _child(["write", str(3 * (1 << 20) + 5), str(tmp_path / "f.bin")])
    assert r["bytes"] == (tmp_path / "f.bin").stat().st_size == 3 * (1 << 20) + 5 and r["seconds"] > 0


def test_given_weights_child_builds_the_model_its_own_init_builds(tmp_path):
    """archdsl-given: the weights a seed-0 build draws, written as a checkpoint before the clock and loaded with
    --weights inside it (as torch's exporters are timed on a module whose weights exist): the same model, but
    for the metadata saying where its weights came from."""
    from archdsl.bench.run import _child
    own = _child(["archdsl", "efficientnet_b0", "2", str(tmp_path / "own.onnx")])
    given = _child(["archdsl-given", "efficientnet_b0", "2", str(tmp_path / "given.onnx")])
    assert own["nodes"] == given["nodes"] and given["seconds"] > 0
    assert (tmp_path / "given.onnx.safetensors").stat().st_size > 20e6
    import onnx
    own, given = (onnx.load(str(tmp_path / f"{k}.onnx")) for k in ("own", "given"))
    meta = [{p.key: p.value for p in m.metadata_props} for m in (own, given)]
    assert meta[0].pop("archdsl.seed") == "0" and meta[1].pop("archdsl.weights") == "given.onnx.safetensors"
    assert meta[0] == meta[1]  # the rest of what they record, and the graph and weights, are the same
    for m in (own, given):
        del m.metadata_props[:]
    assert own.SerializeToString() == given.SerializeToString()


def test_scaling_child_reports_nodes_and_time(tmp_path):
    (row,) = bench_scaling([100], tmp_path)
    assert row["ir_nodes"] == 100 and row["nodes"] == 100 and row["seconds"] > 0


@pytest.mark.slow
def test_bench_runs_without_torch(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--models", "resnet50", "--rounds", "2", "--no-torch", "--scaling", "0", "--no-choices",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    (row,) = res["models"]
    assert row["archdsl_O2"]["nodes"] < row["archdsl_O0"]["nodes"]
    assert row["write_floor"]["bytes"] > 100e6 and row["write_floor"]["seconds"] > 0  # no race of timings in a test
    assert row["archdsl_given"]["nodes"] == row["archdsl_O2"]["nodes"]
    assert set(row["latency_ms"]) == {"O0", "O2"}
    assert "ResNet-50" in capsys.readouterr().out


def test_unknown_model_is_a_usage_error(capsys):
    assert main(["--models", "alexnet"]) == 2
    assert "unknown model alexnet" in capsys.readouterr().err
    assert main(["--opset", "12"]) == 2
    assert "--opset 12 is not supported" in capsys.readouterr().err


@pytest.mark.parametrize("argv,words", [
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--compile-runs", "0"], "--compile-runs must be at least 1"),
    (["--scaling", "abc"], "--scaling expects node counts"),  # a ValueError traceback before
    (["--scaling", "1000,-5"], "--scaling expects node counts"),
    (["--exporters", "dynamo,onnxscript"], "unknown exporter onnxscript"),
    (["--json", "/nonexistent/folder/r.json"], "cannot write there"),  # found out after the whole run before
    (["--json", ""], "--json needs a file name"),  # silently wrote nothing
    (["--exporters", ""], "--exporters names none"),  # printed "no torch comparison: yes"
    (["--exporters", ","], "--exporters names none"),
    (["--models", ","], "--models names none"),  # "unknown model " with an empty name
])
def test_bad_flags_are_refused_before_any_work(argv, words, capsys, monkeypatch):
    from archdsl.bench import run
    monkeypatch.setattr(run, "bench_model", lambda *a, **k: pytest.fail("benchmarked despite a bad flag"))
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_archdsl_child_builds_at_the_opset_asked(tmp_path):
    import onnx

    from archdsl.bench.run import _child
    from archdsl.ops._kernels import runs_natively
    for opset in (17, 24):
        r = _child(["archdsl-graph", "bert_base", "2", str(tmp_path / "b.onnx"), str(opset)])
        m = onnx.load(tmp_path / "b.onnx", load_external_data=False)
        assert m.opset_import[0].version == opset and r["nodes"] == len(m.graph.node)
        fused = any(n.op_type == "Attention" for n in m.graph.node)
        assert fused == (opset == 24 and runs_natively("Attention", 24))


def test_lowering_choice_microbenchmarks_run(capsys):
    from archdsl.bench.choices import measure_choices
    rows = measure_choices(24, threads=1, rounds=1)
    assert {r["choice"].split(" vs ")[0] for r in rows} >= {"Bias + Gelu(tanh)", "LayerNormalization", "Attention",
                                                           "Resize(gate) + Mul", "RMSNormalization"}
    assert all(r["fused_ms"] > 0 and r["decomposed_ms"] > 0 for r in rows)
    assert all(r["max_abs_diff"] < 1e-4 for r in rows), rows  # each pair computes the same outputs
    render({"machine": MACHINE, "threads": 1, "rounds": 1, "torch": "no", "models": [],
            "scaling": [], "choices": rows}, [], markdown=True)
    assert "| Attention vs MatMul/Softmax (opset 24) |" in capsys.readouterr().out


def test_a_lowering_choice_whose_sides_disagree_is_an_error_row(monkeypatch):
    """A ratio between two different computations would be a figure of nothing."""
    from archdsl.bench import choices
    made = choices._rmsnorm

    def wrong_eps(opset):
        x, y, fused, (nodes, inits), feeds = made(opset)
        return x, y, fused, (nodes, [i if i.name != "eps" else choices._c("eps", 1.0) for i in inits]), feeds
    monkeypatch.setattr(choices, "_rmsnorm", wrong_eps)
    rows = {r["choice"].split(" vs ")[0]: r for r in choices.measure_choices(23, threads=1, rounds=1)}
    assert "outputs differ by" in rows["RMSNormalization"]["error"]
    assert "error" not in rows["LayerNormalization"]


@pytest.mark.parametrize("count", ["0", "20000"])  # 20000: onnxruntime would start them all (21 GB, a hang)
def test_thread_counts_out_of_range_are_usage_errors(count, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--threads", count])
    assert e.value.code == 2 and "must be 1 to 256" in capsys.readouterr().err


def _stub_models(monkeypatch) -> list:
    """bench_model records what it was asked instead of measuring."""
    from archdsl.bench import run
    seen = []
    monkeypatch.setattr(run, "bench_model", lambda m, work, opts, reason: seen.append((m.key, opts.exporters, reason))
                        or {"model": m.title})
    return seen


QUICK = ["--scaling", "0", "--no-choices", "--no-cuda", "--rounds", "1"]


def test_an_exporter_named_twice_is_run_once(monkeypatch):
    seen = _stub_models(monkeypatch)
    assert main(["--models", "resnet50,", "--exporters", "legacy,legacy", *QUICK]) == 0
    assert [(k, e) for k, e, _ in seen] == [("resnet50", ["legacy"])]


def test_no_exporters_is_fine_without_torch(monkeypatch):
    seen = _stub_models(monkeypatch)
    assert main(["--models", "resnet50", "--exporters", "", "--no-torch", *QUICK]) == 0
    assert seen == [("resnet50", [], "--no-torch")]


def _results(**row):
    return {"machine": MACHINE, "threads": 2, "rounds": 3, "torch": "yes", "scaling": [],
            "models": [{"model": "M", **row}]}


def test_render_says_why_a_figure_is_missing(capsys):
    """A failed -O0 build showed `nan` for its latency; a failed "graph only" build an unexplained `error`; a
    latency that could not be measured (a model onnxruntime cannot run) lost the whole run."""
    res = _results(archdsl_O0={"error": "exit 1: boom"}, archdsl_O2={"seconds": 2.0, "nodes": 8, "peak_mb": 1.0},
                   archdsl_graph={"error": "exit 1: graph boom"}, torch_dynamo={"seconds": 2.8, "nodes": 9},
                   latency_ms={"O2": 1.0, "dynamo": 1.25}, ratio={"dynamo": 0.8})
    res["scaling"] = [{"layers": 50000, "error": "timed out after 1800s"}]
    res["choices"] = [{"choice": "LayerNormalization vs ReduceMean decomposition", "shape": "[1]", "opset": 17,
                       "emits": "LayerNormalization", "error": "Fail: opset"}]
    render(res, ["dynamo"], markdown=True)
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "| M | 2.00 | - | error | - | 2.80 | 1.4x | - | error/8/9 | - / 1.0 | 1.2 | 0.80 |" in out  # 1.4x, not 1x
    assert "- M, archdsl -O0: exit 1: boom" in out and "- M, graph only: exit 1: graph boom" in out
    assert "| 50,000 | - | - | error | - | - |" in out and "- deep MLP, 50,000 layers: timed out" in out
    assert "| LayerNormalization vs ReduceMean decomposition | [1] | 17 | error | error | - |" in out
    assert "- lowering choice LayerNormalization vs ReduceMean decomposition at opset 17: Fail: opset" in out
    render(_results(latency_error="Fail: no kernel for Erf(13)", archdsl_O2={"seconds": 1.0, "nodes": 1}),
           ["dynamo"], markdown=True)
    out = capsys.readouterr().out
    assert "| error / error | error |" in out and "- M, onnxruntime latency: Fail: no kernel for Erf(13)" in out


def test_a_model_onnxruntime_cannot_run_is_an_error_in_its_row(monkeypatch, tmp_path):
    from argparse import Namespace

    from archdsl.bench import run
    from archdsl.bench.models import by_key

    def child(args):  # what the child "wrote"
        Path(args[-1] if args[0] == "write" else args[3]).write_bytes(b"not a model")
        return {"seconds": 1.0, "nodes": 1, "peak_mb": 1.0}
    monkeypatch.setattr(run, "_child", child)
    monkeypatch.setattr(run, "example_inputs", lambda m: [])
    opts = Namespace(opset=None, exporters=[], rounds=1, threads=1, cuda=False, check_outputs=False, compile_runs=1)
    row = run.bench_model(by_key("resnet50"), tmp_path, opts, "--no-torch")
    assert "latency_ms" not in row and row["latency_error"].startswith("O0: InvalidProtobuf")  # each side named


def test_lowering_choices_run_below_opset_18():
    """ReduceMean's axes were an input, which opset 17 does not have: `--opset 17` crashed after every model."""
    from archdsl.bench.choices import measure_choices
    rows = measure_choices(17, threads=1, rounds=1)
    assert rows and all("error" not in r for r in rows)
    assert any(r["choice"].startswith("LayerNormalization") for r in rows)
    assert not any(r["choice"].startswith(("RMSNormalization", "Bias + Gelu")) for r in rows)  # 23+ and 20+ ops


def test_json_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """Through a link, and never truncated: a full disk left the previous file cut short."""
    from pathlib import Path
    _stub_models(monkeypatch)
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text('{"old": 1}')
    link.symlink_to(real)
    assert main(["--models", "resnet50", "--no-torch", *QUICK, "--json", str(link)]) == 0
    assert link.is_symlink() and json.loads(real.read_text())["models"] == [{"model": "ResNet-50"}]
    before = real.read_text()
    written = Path.write_text

    def full_disk(self, text, *a, **k):
        written(self, text[:10])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full_disk)
    assert main(["--models", "resnet50", "--no-torch", *QUICK, "--json", str(real)]) == 1
    monkeypatch.undo()
    assert real.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


@pytest.mark.parametrize("how", ["int", "term"])
def test_a_stopped_bench_ends_cleanly(how, tmp_path):
    """Ctrl-C printed a traceback; a SIGTERM left the temp folder of models (hundreds of MB) and its child
    process writing into it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = [sys.executable, "-m", "archdsl.bench", "--models", "efficientnet_b0", "--no-torch", "--rounds", "100000",
           "--scaling", "0", "--no-choices", "--no-cuda"]
    p = subprocess.Popen(cmd, env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 120
    while not any(tmp.glob("archdsl-bench-*/*.onnx")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT if how == "int" else signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == (130 if how == "int" else 128 + signal.SIGTERM)
    assert "Traceback" not in err and ("interrupted" in err) == (how == "int")
    assert list(tmp.glob("archdsl-bench-*")) == []
    from pathlib import Path
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):  # no child still building into the removed folder
        try:
            assert str(tmp).encode() not in cmdline.read_bytes()
        except OSError:  # a process that ended meanwhile
            pass


def test_a_broken_reference_module_is_a_note_not_a_traceback(tmp_path, monkeypatch):
    """$ARCHDSL_TORCH_MODELS names your own torch references: one with a SyntaxError was a traceback, and one
    without the model was blamed on archdsl/bench/torch_models.py."""
    pytest.importorskip("torch")
    import sys

    from archdsl.bench.models import by_key, torch_module
    from archdsl.bench.run import _have_torch
    (tmp_path / "broken_refs.py").write_text("def build(key):\n    return (\n")
    (tmp_path / "few_refs.py").write_text("def build(key):\n    raise KeyError(key)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ARCHDSL_TORCH_MODELS", "broken_refs")
    assert "not importable (SyntaxError" in _have_torch()
    monkeypatch.setenv("ARCHDSL_TORCH_MODELS", "few_refs")
    with pytest.raises(LookupError, match="the torch reference module few_refs has no model 'resnet50'"):
        torch_module(by_key("resnet50"))
    sys.modules.pop("few_refs", None)


def test_a_bench_whose_builds_failed_exits_1(monkeypatch, capsys):
    """Every cell an error (an installed package that lacked its specs) and the exit status 0."""
    from archdsl.bench import run
    monkeypatch.setattr(run, "_child", lambda args, timeout=0: {"error": "ImportNotFoundError: no such file"})
    assert main(["--models", "resnet50", "--no-torch", "--scaling", "0", "--no-choices", "--rounds", "1"]) == 1
    captured = capsys.readouterr()
    assert "archdsl bench: error: archdsl did not build ResNet-50" in captured.err
    assert "no such file" in captured.out


def test_the_specs_are_found_where_the_package_is():
    """A wheel carries specs/ inside the package (pyproject's force-include); a checkout has it beside."""
    from archdsl.bench.models import SPECS_DIR
    from archdsl.files import specs_dir
    assert SPECS_DIR == specs_dir() and (SPECS_DIR / "resnet.arch").is_file()
    from pathlib import Path
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '\n"specs" = "archdsl/specs"' in pyproject.split("[tool.hatch.build.targets.wheel.force-include]")[1]


def test_a_stop_while_a_child_starts_kills_the_child(monkeypatch):
    """A SIGTERM that lands while the child process is being started (inside subprocess.run's Popen, before
    the `with` that kills it on an exception) left the child building into the temp folder its parent then
    removed (and recreated it): the bench's stop test failed under load, in CI too. The stop waits until the
    child is held."""
    import signal
    import subprocess

    from archdsl.bench import run
    from archdsl.cli.signals import exit_cleanly_on_signals
    started = []
    real = subprocess.Popen

    def popen_then_stop(*args, **kwargs):
        p = real([*args[0][:1], "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(p)
        # the stop's Python handler runs before the caller holds p: Python runs it in the main thread at its
        # next bytecode, whichever thread the kernel gave the signal to (OpenBLAS's, where the main thread
        # had blocked it)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        return p
    monkeypatch.setattr(subprocess, "Popen", popen_then_stop)
    with pytest.raises(SystemExit), exit_cleanly_on_signals():
        run._child(["noop"], timeout=30)
    try:
        assert started and started[0].wait(timeout=10) is not None  # killed, not sleeping on for a minute
    finally:
        for p in started:
            p.kill()
