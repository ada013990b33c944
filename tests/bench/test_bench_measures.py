"""What the bench's figures are measured as (mutbench hunt: each of these could change with every other bench
test still passing): the ratio's direction and its interval, medians rather than means, the rotation of who
runs first, warm-up runs, sessions that never spin, the sync outside the compile clock, peak memory as the
compile's growth, the defaults --help promises, and the table's cells being the figures they are labelled."""

from __future__ import annotations

import os
import time

import pytest

from archdsl.bench import child, latency, main, run
from archdsl.bench.latency import alternate, median_ratio
from archdsl.bench.report import _speedup, render

from .test_bench import MACHINE


class _Clock:
    """time.perf_counter for bench.latency: advanced only by the fake sessions' runs."""
    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _Timed:
    """A session whose runs take the given milliseconds in turn (warm-up runs included), logging who ran."""
    def __init__(self, clock: _Clock, label: str, ms: list[float], log: list):
        self.clock, self.label, self.ms, self.log, self.n = clock, label, ms, log, 0

    def run(self, outputs, feeds):
        self.clock.now += self.ms[self.n % len(self.ms)] / 1e3
        self.n += 1
        self.log.append(self.label)


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(latency, "time", c)
    return c


def test_the_ratio_is_o2_over_the_other_side_with_an_interval_around_it(clock):
    """-O2 twice as fast as dynamo reads 0.50, inside its interval; each side's ms is its median round, one slow
    round (a machine hiccup) left out."""
    log: list = []
    ms = {"O2": [2.0], "dynamo": [4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 100.0]}

    def make(label):
        return _Timed(clock, label, ms[label], log), {}
    out = run._timed(make, ["O2", "dynamo"], 12, "latency_ms", "ratio", "latency_error")
    assert out["latency_ms"] == pytest.approx({"O2": 2.0, "dynamo": 4.0})
    assert out["ratio"] == pytest.approx({"dynamo": 0.5})
    lo, hi = out["ratio_ci"]["dynamo"]
    assert lo <= 0.5 <= hi and hi < 1


def test_median_ratio_is_the_median_of_the_per_round_ratios():
    assert median_ratio([1.0, 1.0, 10.0], [1.0, 1.0, 1.0]) == 1.0  # a mean would say 4
    assert median_ratio([3.0, 1.0, 8.0], [1.0, 1.0, 2.0]) == 3.0


def test_rounds_rotate_who_runs_first_after_two_warm_up_runs_each(clock):
    log: list = []
    runs = {k: (_Timed(clock, k, [1.0], log), {}) for k in "abc"}
    alternate(runs, rounds=3)
    assert "".join(log) == "aabbcc" + "abc" + "bca" + "cab"


def test_bench_sessions_never_spin(tmp_path):
    """A spinning pool took the next session's cores: of two equally fast sessions the one created second ran
    ~9% faster (see bench/latency.py)."""
    import archdsl
    path = tmp_path / "m.onnx"
    path.write_bytes(archdsl.compile_source("model m(x: float32[B, 4]) -> y { y = relu(x) }").SerializeToString())
    sess = latency.make_session(str(path), threads=2)
    options = sess.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


def test_the_compile_clock_starts_after_the_sync(monkeypatch):
    """Flushing earlier runs' dirty pages is outside the clock: a build would pay for writing back the one
    before it."""
    monkeypatch.setattr(os, "sync", lambda: time.sleep(0.3))
    t0 = child._start_clock()
    assert time.perf_counter() - t0 < 0.2


def test_peak_memory_is_what_the_compile_adds(tmp_path):
    """The peak over the process's size before the clock (numpy, onnx and onnxruntime imported: ~100 MB), not
    the process's whole peak."""
    r = run._child(["mlp", "50", "16", str(tmp_path / "mlp.onnx")])
    assert 0 <= r["peak_mb"] < 40, r


def test_the_o0_compile_is_built_at_o0(tmp_path):
    """The table's "nodes O0" and "ORT ms O0" are an -O0 build's (the test that ran both levels is a slow one)."""
    rows = {level: run._child(["archdsl", "efficientnet_b0", str(level), str(tmp_path / f"e{level}.onnx")])
            for level in (0, 2)}
    assert rows[0]["nodes"] > rows[2]["nodes"]
    assert all(0 <= r["peak_mb"] < 40 for r in rows.values()), rows  # its growth (~14 MB), not the process (~95)


@pytest.mark.parametrize("flags,rounds,compile_runs,choice_rounds", [
    ([], 30, 3, 90), (["--quick"], 8, 1, 24), (["--rounds", "2"], 2, 3, 10)])
def test_the_defaults_are_the_ones_help_gives(flags, rounds, compile_runs, choice_rounds, monkeypatch):
    """--help: 30 rounds (--quick 8), compiles the median of 3 (--quick 1), the lowering choices 3x as many
    rounds as the models, at least 10."""
    from archdsl.bench import choices
    seen: dict = {}
    monkeypatch.setattr(run, "bench_model", lambda m, work, opts, reason: seen.update(vars(opts)) or {"model": "M"})
    monkeypatch.setattr(choices, "measure_choices", lambda opset, threads, n: seen.update(choice_rounds=n) or [])
    assert main(["--models", "resnet50", "--scaling", "0", "--no-cuda", "--no-torch", *flags]) == 0
    assert (seen["rounds"], seen["compile_runs"], seen["choice_rounds"]) == (rounds, compile_runs, choice_rounds)


def test_the_table_shows_each_figure_in_its_own_cell(capsys):
    """The whole row: peak memory archdsl/torch and the agreement with torch eager at its end."""
    res = {"machine": MACHINE, "threads": 2, "rounds": 3, "torch": "yes", "scaling": [],
           "models": [{"model": "M", "archdsl_O0": {"seconds": 1.0, "peak_mb": 111.0, "nodes": 12},
                       "archdsl_O2": {"seconds": 0.5, "peak_mb": 222.0, "nodes": 8},
                       "torch_dynamo": {"seconds": 25.0, "peak_mb": 900.0, "nodes": 20},
                       "latency_ms": {"O0": 2.0, "O2": 1.0, "dynamo": 1.25}, "ratio": {"dynamo": 0.8},
                       "max_abs_diff": "3.1e-06"}],
           "choices": [{"choice": "C", "shape": "[1]", "opset": 23, "emits": "E", "fused_ms": 1.0,
                        "decomposed_ms": 3.0, "ratio": 0.34}]}
    render(res, ["dynamo"], markdown=True)
    out = capsys.readouterr().out
    assert "| 12/8/20 | 2.0 / 1.0 | 1.2 | 0.80 | 222/900 | 3.1e-06 |" in out
    assert "| C | [1] | 23 | 1.000 | 3.000 | 0.34 | E |" in out
    render({**res, "torch": "not installed"}, [], markdown=True)
    assert "no torch comparison: not installed" in capsys.readouterr().out


def test_a_cuda_variant_row_shows_its_own_ratio(capsys):
    res = {"machine": MACHINE, "threads": 2, "rounds": 3, "torch": "yes", "scaling": [],
           "models": [{"model": "M", "cuda_ms": {"O2": 2.0, "O2@21": 0.5, "dynamo": 1.0},
                       "cuda_ratio": {"dynamo": 2.0}, "cuda_ratio_ci": {"dynamo": (1.9, 2.1)},
                       "cuda_ratio@O2@21": {"dynamo": 0.5}, "cuda_ratio@O2@21_ci": {"dynamo": (0.4, 0.6)}}]}
    render(res, ["dynamo"], markdown=True)
    out = capsys.readouterr().out
    assert "| M | 2.00 / 1.00 | 2.00 (1.90-2.10) |" in out
    assert "|   --opset 21 | 0.50 / 1.00 | 0.50 (0.40-0.60) |" in out


def test_speedups_below_ten_keep_a_decimal():
    assert [_speedup(x) for x in (9.94, 9.96, 1.44, 26.4)] == ["9.9x", "10x", "1.4x", "26x"]


def test_each_choice_is_run_at_the_opsets_that_have_it():
    """RMSNormalization from opset 23 (an error row at 22 otherwise), Attention timed at 23 and 24 (onnxruntime
    has a kernel there); the ratio is fused over decomposed."""
    from archdsl.bench.choices import measure_choices
    for opset in (22, 23):
        rows = measure_choices(opset, threads=1, rounds=1)
        names = {r["choice"].split(" vs ")[0] for r in rows}
        assert not [r for r in rows if "error" in r], rows
        assert ("RMSNormalization" in names) == ("Attention" in names) == (opset >= 23)
        for r in rows:
            assert r["ratio"] == pytest.approx(r["fused_ms"] / r["decomposed_ms"])
    assert any(r["choice"] == "Attention vs MatMul/Softmax (opset 23)" for r in rows)
