"""archdsl.runtime: the shapes and values of random inputs, the check that inputs agree on their dim names, the
memory checks, the opset probe and onnxruntime's messages."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from archdsl import ArchError, runtime
from archdsl.runtime import dim_conflict, input_specs, random_feeds


class _Sess:
    def __init__(self, types=None, **inputs):
        types = types or {}
        self._inputs = [SimpleNamespace(name=k, shape=v, type=types.get(k, "tensor(float)"))
                        for k, v in inputs.items()]

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


def test_the_newest_opset_is_the_newest_onnxruntime_loads(monkeypatch):
    """The probe starts at onnx's newest opset: starting one below it, every default build and --opset warning
    said onnxruntime stopped one opset short (R01)."""
    top = onnx.defs.onnx_opset_version()

    def fake(limit):
        def session(data, providers=None):
            if onnx.load_model_from_string(data).opset_import[0].version > limit:
                raise RuntimeError("unsupported opset")
        return SimpleNamespace(InferenceSession=session)
    try:
        for limit, want in ((top, top), (top - 2, top - 2), (10, 17)):
            runtime.newest_opset.cache_clear()
            monkeypatch.setitem(sys.modules, "onnxruntime", fake(limit))
            assert runtime.newest_opset() == want
    finally:
        monkeypatch.undo()
        runtime.newest_opset.cache_clear()


def test_zero_threads_is_onnxruntimes_default():
    """--threads 0 is documented as onnxruntime's default (one per core): it was refused as out of range (R02)."""
    from archdsl import driver
    m = driver.compile_source("model m(x: float32[B, 4]) -> y { y = x -> relu }")
    runtime.session(m, "cpu", 0)
    with pytest.raises(ArchError, match="threads must be 0"):
        runtime.session(m, "cpu", -1)


def test_a_formula_dim_of_size_zero_is_zero():
    """y: [B, 2*T] beside an empty x: [B, T] (T=0, given by --input) is empty too, not 8 (R12)."""
    specs = {n: s for n, s, _ in input_specs(_Sess(x=["B", "T", 4], y=["B", "2*T", 4]), batch=1, dims={"T": 0})}
    assert specs == {"x": (1, 0, 4), "y": (1, 0, 4)}


def test_weights_listed_as_inputs_are_not_counted_against_the_memory_free(monkeypatch):
    """An initializer that is also a graph input (a train step's state; an old exporter's weights) is held by
    the session already: counted, a 4 MB table made a run of a few KB 'too large' (R15)."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [1000, 1000], np.zeros(10**6, np.float32))
    g = helper.make_graph([helper.make_node("Gather", ["W", "ids"], ["y"])], "g",
                          [helper.make_tensor_value_info("W", TensorProto.FLOAT, [1000, 1000]),
                           helper.make_tensor_value_info("ids", TensorProto.INT64, ["B"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 1000])], [w])
    monkeypatch.setattr(runtime, "_free_memory", lambda: 1 << 20)
    assert runtime.too_large(helper.make_model(g), {"B": 1}) is None
    assert "holds 3.82 MiB" in runtime.too_large(helper.make_model(g), {"B": 1000})


def test_random_inputs_that_fit_one_by_one_but_not_together_are_refused(monkeypatch):
    """Two inputs of 4000 bytes each with 6000 free: the sum is what the run holds (R19)."""
    monkeypatch.setattr(runtime, "_free_memory", lambda: 6000)
    sess = _Sess(a=["B", "N"], b=["B", "N"])
    with pytest.raises(ArchError, match="the random inputs would take 7.81 KiB"):
        random_feeds(sess, dims={"N": 1000})
    assert set(random_feeds(sess, dims={"N": 500})) == {"a", "b"}


def test_each_input_draws_its_own_values():
    """Two inputs of one shape drew the same numbers (one stream): x - y was exactly 0 (R20)."""
    f = random_feeds(_Sess(x=["B", 4], y=["B", 4]), batch=3)
    assert not np.array_equal(f["x"], f["y"])
    assert np.array_equal(random_feeds(_Sess(y=["B", 4]), batch=3)["y"], f["y"])  # one input's values alone


def test_only_a_scalar_seed_draws_31_bit_numbers_and_bools_draw_both_values():
    """A data input named seed with a shape (ids) is drawn in [0, 2) as other integers; a bool mask holds both
    values (R21: seed[B] drew up to 2**31; R22: masks all false)."""
    types = {"seed": "tensor(int64)", "ids": "tensor(int64)", "m": "tensor(bool)"}
    f = random_feeds(_Sess(types, seed=["B"], ids=["B"], m=["B"]), batch=64)
    assert set(np.unique(f["seed"])) == {0, 1} and set(np.unique(f["ids"])) == {0, 1}
    assert set(np.unique(f["m"])) == {False, True}
    assert random_feeds(_Sess({"seed": "tensor(int64)"}, seed=[]))["seed"] >= 2


def test_an_input_past_numpys_limit_is_said_as_such():
    """2**60 float32s (2**62 bytes): numpy cannot make it, said before the memory check (R18)."""
    with pytest.raises(ArchError, match="more than any machine has"):
        random_feeds(_Sess(x=["T"]), dims={"T": 2**60})


def test_byte_counts_past_a_thousand_units_are_written_whole():
    """'1,500 GiB', not '1.5e+03 GiB' (R17)."""
    assert [runtime._bytes(n) for n in (512, 1536, 1500 * 2**30)] == ["512 bytes", "1.5 KiB", "1,500 GiB"]


def test_an_onnxruntime_message_is_one_line():
    """onnxruntime's shape errors span lines (R28)."""
    e = RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x\n"
                     " index: 1 Got: 5 Expected: 4\n Please fix either the inputs/outputs or the model.")
    assert runtime.ort_message(e) == ("2 : INVALID_ARGUMENT : Got invalid dimensions for input: x index: 1 Got: 5 "
                                      "Expected: 4 Please fix either the inputs/outputs or the model.")


def test_run_timed_times_at_least_one_run():
    """repeat=0 (the function's own floor; the CLI refuses it first) had no median (R26)."""
    calls = []
    sess = SimpleNamespace(run=lambda names, feeds: calls.append(1) or [len(calls)])
    outs, ms = runtime.run_timed(sess, {}, repeat=0)
    assert len(calls) == 2 and outs == [2] and ms >= 0
