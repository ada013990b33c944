"""`archdsl bench --compile-runs N`: every compile is run N times, the sides alternated, each into a fresh
file (a build replacing its previous output paid ~0.16 s more for the rename), and the median run reported."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from archdsl.bench import run
from archdsl.bench.models import by_key


def test_median_run_is_the_middle_one_and_a_failure_wins():
    rs = [{"seconds": 3.0, "peak_mb": 30}, {"seconds": 1.0, "peak_mb": 10}, {"seconds": 2.0, "peak_mb": 20}]
    assert run.median_run(rs) == {"seconds": 2.0, "peak_mb": 20, "runs": [3.0, 1.0, 2.0]}
    assert run.median_run(rs[:2])["seconds"] == 1.0  # an even count: the lower middle
    assert run.median_run([*rs, {"error": "exit 1: boom"}]) == {"error": "exit 1: boom"}


def test_compiles_alternate_into_fresh_files_and_report_the_median(monkeypatch, tmp_path):
    calls, times = [], iter(range(100, 0, -1))

    def child(args):
        out = Path(args[-1] if args[0] == "write" else args[3])
        assert not list(out.parent.glob(out.name + "*")), f"{out.name} was not removed before the run"
        out.write_bytes(b"x" * 10)
        (out.parent / (out.name + ".data")).write_bytes(b"")  # external data, removed with it
        calls.append(args[0] if args[0] != "torch" else f"torch-{args[2]}")
        return {"seconds": float(next(times)), "nodes": 1, "peak_mb": 1.0} | ({"bytes": 10} if args[0] == "write"
                                                                                else {})
    monkeypatch.setattr(run, "_child", child)
    opts = Namespace(opset=None, exporters=["dynamo"], rounds=0, threads=1, cuda=False, check_outputs=False,
                     compile_runs=3)
    row = run.bench_model(by_key("resnet50"), tmp_path, opts, None)
    one = ["archdsl", "archdsl", "write", "archdsl-graph", "archdsl-given", "torch-dynamo"]
    assert calls == one * 3
    for key in ("archdsl_O0", "archdsl_O2", "archdsl_graph", "archdsl_given", "torch_dynamo", "write_floor"):
        assert len(row[key]["runs"]) == 3 and row[key]["seconds"] == sorted(row[key]["runs"])[1], key
    assert not list(tmp_path.iterdir())  # every file of the model removed at the end
