"""The CUDA table's variants of the -O2 build (--opset 21, without expand_channel_scale), timed beside it.
No GPU here: the "CUDA" sessions are CPU ones, which is all the bookkeeping needs."""

from __future__ import annotations

from argparse import Namespace

import onnx

from archdsl import driver
from archdsl.bench import run
from archdsl.bench.models import BenchModel
from archdsl.bench.report import render

SE = """model se(x: float32[B, 3, 16, 16]) -> y {
    h = x -> conv2d(16, 3, padding=1) -> relu -> maxpool2d(3, 2, padding=1) -> conv2d(16, 3, padding=1)
    s = h -> global_avgpool -> conv2d(16, 1) -> sigmoid
    y = (h * s) -> conv2d(16, 1) -> relu
}
"""
MLP = "model mlp(x: float32[B, 8]) -> y { y = x -> linear(4) -> relu }\n"


def _spec(tmp_path, text: str) -> BenchModel:
    (tmp_path / "m.arch").write_text(text)
    return BenchModel("tiny", "Tiny", str(tmp_path / "m.arch"))


def _bench(monkeypatch, tmp_path, m: BenchModel, opset=None) -> dict:
    def child(args):  # the builds in-process: the torch side is archdsl's -O0 build
        kind = args[0]
        if kind not in ("archdsl", "torch"):
            return {"error": "not timed here"}
        out = args[3]
        model = driver.compile_file(m.path, opt_level=int(args[2]) if kind == "archdsl" else 0, opset=opset)
        onnx.save(model, out)
        return {"seconds": 0.1, "nodes": len(model.graph.node), "peak_mb": 1.0}
    monkeypatch.setattr(run, "_child", child)
    monkeypatch.setattr(run, "example_inputs", lambda _: [("x", (1, 3, 16, 16), "float32")])
    cpu = run.make_session
    monkeypatch.setattr(run, "make_session", lambda path, threads=2, provider="cpu": cpu(path, threads))
    opts = Namespace(opset=opset, exporters=["dynamo"], rounds=2, threads=1, cuda=True, check_outputs=False,
                     compile_runs=1)
    return run.bench_model(m, tmp_path, opts, None)


def _render(row: dict) -> None:
    machine = {k: "?" for k in ("cpu", "cores", "memory", "python", "onnx", "onnxruntime", "providers", "torch")}
    render({"machine": machine, "threads": 1, "rounds": 2, "torch": "yes", "models": [row], "scaling": []},
           ["dynamo"], markdown=True)


def test_variants_are_timed_beside_the_default_build_and_rendered(monkeypatch, tmp_path, capsys):
    row = _bench(monkeypatch, tmp_path, _spec(tmp_path, SE))
    assert set(row["cuda_ms"]) == {"O2", "O2@21", "O2-ecs", "dynamo"}
    assert set(row["cuda_ratio"]) == {"O2@21", "O2-ecs", "dynamo"}
    for v in ("O2@21", "O2-ecs"):  # each variant against torch's export, not against the other builds
        assert set(row[f"cuda_ratio@{v}"]) == set(row[f"cuda_ratio@{v}_ci"]) == {"dynamo"}
    assert not list(tmp_path.glob("tiny_*"))  # the variants' files go with the others
    _render(row)
    out = capsys.readouterr().out
    ms = row["cuda_ms"]
    assert f"| Tiny | {ms['O2']:.2f} / {ms['dynamo']:.2f} |" in out
    assert f"|   --opset 21 | {ms['O2@21']:.2f} / {ms['dynamo']:.2f} |" in out
    assert f"|   --disable-pass expand_channel_scale | {ms['O2-ecs']:.2f} / {ms['dynamo']:.2f} |" in out


def test_variants_the_default_build_already_is_are_left_out(tmp_path):
    """No opset-21 variant of a build at opset 21 or below; none without a pass that changes nothing."""
    se, mlp = _spec(tmp_path, SE), BenchModel("mlp", "MLP", str(tmp_path / "mlp.arch"))
    (tmp_path / "mlp.arch").write_text(MLP)
    nodes = {m.key: len(driver.compile_file(m.path).graph.node) for m in (se, mlp)}
    assert set(run.cuda_variants(se, None, tmp_path, nodes["tiny"])) == {"O2@21", "O2-ecs"}
    assert set(run.cuda_variants(se, 21, tmp_path, len(driver.compile_file(se.path, opset=21).graph.node))) == \
        {"O2-ecs"}
    assert set(run.cuda_variants(mlp, None, tmp_path, nodes["mlp"])) == {"O2@21"}
    built = onnx.load(str(tmp_path / "tiny_O2@21.onnx"))
    assert [o.version for o in built.opset_import if o.domain in ("", "ai.onnx")] == [21]


def test_a_variant_that_fails_to_build_is_a_note(monkeypatch, tmp_path, capsys):
    """The default build is still timed; a crash there lost the whole run's figures."""
    def boom(*a, **k):
        raise RuntimeError("no opset 21 here")
    monkeypatch.setattr(run, "cuda_variants", boom)
    row = _bench(monkeypatch, tmp_path, _spec(tmp_path, SE))
    assert set(row["cuda_ms"]) == {"O2", "dynamo"}
    _render(row)
    assert "- Tiny, CUDA variants not built: RuntimeError: no opset 21 here" in capsys.readouterr().out


def test_torchs_exports_are_timed_on_cuda_where_archdsl_failed_to_build(monkeypatch, tmp_path):
    """The CUDA labels always began with O2: a failed -O2 build made the row 'KeyError: O2'."""
    m = _spec(tmp_path, SE)

    def child(args):
        if args[0] != "torch":
            return {"error": "exit 1: boom"}
        onnx.save(driver.compile_file(m.path, opt_level=0), args[3])
        return {"seconds": 0.1, "nodes": 1, "peak_mb": 1.0}
    monkeypatch.setattr(run, "_child", child)
    monkeypatch.setattr(run, "example_inputs", lambda _: [("x", (1, 3, 16, 16), "float32")])
    cpu = run.make_session
    monkeypatch.setattr(run, "make_session", lambda path, threads=2, provider="cpu": cpu(path, threads))
    opts = Namespace(opset=None, exporters=["dynamo"], rounds=2, threads=1, cuda=True, check_outputs=False,
                     compile_runs=1)
    row = run.bench_model(m, tmp_path, opts, None)
    assert "cuda_error" not in row and set(row["cuda_ms"]) == {"dynamo"}


def test_no_cuda_row_where_nothing_is_left_to_time(monkeypatch, tmp_path):
    """-O2 failed and torch is not there: no labels, where alternate_orders said ZeroDivisionError."""
    m = _spec(tmp_path, SE)

    def child(args):  # -O0 builds (timed on the CPU), -O2 fails
        if args[0] != "archdsl" or args[2] != "0":
            return {"error": "exit 1: boom"}
        onnx.save(driver.compile_file(m.path, opt_level=0), args[3])
        return {"seconds": 0.1, "nodes": 1, "peak_mb": 1.0}
    monkeypatch.setattr(run, "_child", child)
    monkeypatch.setattr(run, "example_inputs", lambda _: [("x", (1, 3, 16, 16), "float32")])
    opts = Namespace(opset=None, exporters=[], rounds=2, threads=1, cuda=True, check_outputs=False,
                     compile_runs=1)
    row = run.bench_model(m, tmp_path, opts, "no torch")
    assert "latency_ms" in row and "cuda_error" not in row and "cuda_ms" not in row
