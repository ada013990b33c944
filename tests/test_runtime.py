"""archdsl.runtime: the shapes of random inputs and the check that inputs agree on their dim names."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from archdsl.runtime import dim_conflict, input_specs


class _Sess:
    def __init__(self, **inputs):
        self._inputs = [SimpleNamespace(name=k, shape=v, type="tensor(float)") for k, v in inputs.items()]

    def get_inputs(self):
        return self._inputs


def test_random_inputs_agree_on_every_dim_name():
    sess = _Sess(x=["B", "T", 4], y=["T", "B"], z=["S", None, 2])
    specs = {n: s for n, s, _ in input_specs(sess, batch=3)}
    assert specs == {"x": (3, 8, 4), "y": (8, 3), "z": (3, 8, 2)}   # a new name first met as dim 0: the batch
    specs = {n: s for n, s, _ in input_specs(sess, batch=3, dims={"T": 5, "S": 2})}
    assert specs == {"x": (3, 5, 4), "y": (5, 3), "z": (2, 8, 2)}


def test_dim_conflict_names_the_first_disagreement():
    shapes = {"x": ["B", "T", 4], "y": ["B", "T"], "w": [4, 4]}
    ok = {"x": np.zeros((2, 3, 4)), "y": np.zeros((2, 3)), "w": np.zeros((4, 4))}
    assert dim_conflict(shapes, ok) is None
    assert dim_conflict(shapes, {**ok, "y": np.zeros((2, 5))}) == "dim 'T' is 3 in 'x' but 5 in 'y'"
    assert dim_conflict(shapes, {**ok, "y": np.zeros((7, 3))}) == "dim 'B' is 2 in 'x' but 7 in 'y'"
    assert dim_conflict(shapes, {**ok, "y": np.zeros((7, 3))}, skip_first=True) is None   # dim 0: examples
    assert dim_conflict(shapes, {"x": ok["x"]}) is None   # an input not given is not compared


def test_a_session_that_must_not_spin_sleeps_between_runs():
    """The training benchmark times steps in turn: a spinning pool of one side slowed the next (a -O2 ViT step
    measured 1.15x its -O1 step at 2 threads, 0.8x once neither spun)."""
    from archdsl import driver, runtime
    m = driver.compile_source("model m(x: float32[B, 4]) -> y { y = x -> relu }")
    opts = runtime.session(m, "cpu", 2, spin=False).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_thread_count_reaches_onnxruntime():
    """--threads N of run and train: N intra-op threads, one inter-op (a session of 0 takes every core)."""
    from archdsl import driver, runtime
    m = driver.compile_source("model m(x: float32[B, 4]) -> y { y = x -> relu }")
    for n in (1, 3):
        opts = runtime.session(m, "cpu", n).get_session_options()
        assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (n, 1)


def test_an_unknown_provider_is_refused():
    """runtime.session(model, "gpu") fell back to the CPU silently."""
    import pytest

    from archdsl import ArchError, runtime
    with pytest.raises(ArchError, match="provider must be auto, cpu or cuda, got 'gpu'"):
        runtime.providers("gpu")


def test_formula_dims_are_sized_from_their_symbols():
    """An input declared [B, T + 1, 4], or torch's per-head mask [heads*B, T, T], has the dim_param "(T+1)" or
    "2*B": run sized it as a name of its own (8, or the batch), so the inputs disagreed and onnxruntime failed
    inside the model. It is the formula at its symbols' sizes now, and given arrays are checked against it."""
    from archdsl.runtime import formula_size
    assert formula_size("(T+1)", {"T": 5}) == 6 and formula_size("2*B", {"B": 3}) == 6
    assert formula_size("((H-1)//2+1)", {"H": 7}) == 4 and formula_size("(W*(H/2))", {"W": 3, "H": 4}) == 6
    assert formula_size("(H/2)", {"H": 3}) is None and formula_size("(T+1)", {}) is None
    assert formula_size("__import__('os')", {}) is None
    sess = _Sess(p=["B", "(T+1)", 4], x=["B", "T", 4], m=["2*B", "T", "T"])
    specs = {n: s for n, s, _ in input_specs(sess, batch=3, dims={"T": 5})}
    assert specs == {"p": (3, 6, 4), "x": (3, 5, 4), "m": (6, 5, 5)}
    shapes = {"p": ["B", "(T+1)", 4], "x": ["B", "T", 4]}
    assert dim_conflict(shapes, {"x": np.zeros((2, 5, 4)), "p": np.zeros((2, 6, 4))}) is None
    assert dim_conflict(shapes, {"x": np.zeros((2, 5, 4)), "p": np.zeros((2, 9, 4))}) == \
        "dim '(T+1)' of 'p' is 9, but 6 at T=5"


def test_dim_names_from_other_tools_are_names_not_formulas():
    """`batch-size` or `seq len` (a model exported elsewhere) read as the formula batch - size = 0: run fed
    empty tensors. Only archdsl's own formulas ((T+1), 2*B, B*(H//2)) are formulas."""
    from archdsl.runtime import dim_names, is_name, solve_formula
    assert is_name("batch-size") and is_name("seq len") and is_name("T")
    assert not is_name("(T+1)") and not is_name("2*B") and not is_name("B*(H//2)") and not is_name("")
    assert dim_names("batch-size") == ["batch-size"] and dim_names("(T+1)") == ["T"]
    specs = {n: s for n, s, _ in input_specs(_Sess(x=["batch-size", "seq-len", 4]), batch=3)}
    assert specs == {"x": (3, 8, 4)}
    specs = {n: s for n, s, _ in input_specs(_Sess(x=["2*B", "(T+1)"]), batch=3)}
    assert specs == {"x": (6, 9)}  # B met only in a first dim's formula: the batch
    assert solve_formula("(T+1)", 7) == ("T", 6) and solve_formula("2*B", 6) == ("B", 3)
    assert solve_formula("2*B", 7) is None and solve_formula("(T+1)", 1) is None and solve_formula("T", 3) is None


def test_given_inputs_whose_formulas_disagree_on_a_symbol_are_refused():
    """a: [2*B, 4] and b: [3*B, 4], both given 6 rows, make B 3 and 2: the run went ahead."""
    shapes = {"a": ["2*B", 4], "b": ["3*B", 4]}
    assert dim_conflict(shapes, {"a": np.zeros((6, 4)), "b": np.zeros((9, 4))}) is None
    assert dim_conflict(shapes, {"a": np.zeros((6, 4)), "b": np.zeros((6, 4))}) == \
        "dim '2*B' of 'a' makes B=3, but dim '3*B' of 'b' makes B=2"


def test_run_timed_reports_the_median_of_repeat_runs_after_a_warmup(monkeypatch):
    """--repeat N times N runs after one warm-up run and reports their median (not the last, the worst or
    one run's time)."""
    from archdsl import runtime
    calls = []
    sess = SimpleNamespace(run=lambda names, feeds: calls.append(1) or [len(calls)])
    clock = iter([0.0, 0.005, 1.0, 1.001, 2.0, 2.003, 3.0, 3.009, 4.0, 4.002])  # 5, 1, 3, 9, 2 ms
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    outs, ms = runtime.run_timed(sess, {}, repeat=5)
    assert len(calls) == 6 and outs == [6]  # the warm-up, then 5 timed; the last run's outputs
    assert abs(ms - 3.0) < 1e-9
