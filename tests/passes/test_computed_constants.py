"""check_computed_constants: an integer division by a divisor computed from constants that holds a 0 is a diagnostic
at the division's line, at every -O level (onnxruntime refused to load such a model, with no spec line)."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import EvalError, ShapeError


@pytest.mark.parametrize("divisor", ["(tensor([1, 2, 1, 2]) - 1)", "(tensor([1, 1, 1, 1]) * 0)", "(tensor(3) // 4)",
                                     "abs(tensor(0))", "tensor([[1], [0]])[1]",
                                     "positions(ids)"])  # ids lends only its fixed dim: -O0 wrote the model
@pytest.mark.parametrize("op", ["//", "%", "fmod"])
@pytest.mark.parametrize("level", [0, 2])
def test_a_computed_zero_divisor_is_a_diagnostic(divisor, op, level):
    y = f"fmod(ids, {divisor})" if op == "fmod" else f"ids {op} {divisor}"
    src = f"model m(ids: int64[B, 4]) -> y {{\n    y = {y}\n}}\n"
    with pytest.raises(EvalError, match="integer division by zero: the divisor, computed from constants") as e:
        archdsl.compile_source(src, opt_level=level)
    assert (e.value.span.line, e.value.span.col) == (2, 9)


def test_a_constant_read_twice_at_every_step_is_walked_once(monkeypatch):
    """a = a + a, 16 times: each node's inputs are looked at once (walked as a tree, 2**16 visits; at 30 steps
    the build did not end)."""
    from archdsl.passes import computed_constants as cc
    src = "model m(ids: int64[B, 2]) -> y {\n    a = tensor([1, 1])\n" + "    a = a + a\n" * 16 + \
        "    y = ids // a\n}\n"
    g = archdsl.check_source(src)
    divisor = next(n for n in g.nodes if n.op == "floordiv").inputs[1]
    looked = []
    real = cc.lends_shape_only
    monkeypatch.setattr(cc, "lends_shape_only", lambda n, i: looked.append(n) or real(n, i))
    assert len(cc._from_constants(divisor)) == 16 and len(looked) == 32


def test_divisors_that_hold_no_zero_or_are_not_constant_build():
    for body in ("ids // (tensor([1, 2, 3, 4]) + 1)", "ids % ids", "ids // (positions(ids) + 1)",
                 "ids // (ids * 0 + 2)",
                 "cast(ids, \"float32\") // (tensor([1.0]) - 1.0)"):  # a float // 0 is inf, as torch's
        archdsl.compile_source(f"model m(ids: int64[B, 4]) -> y {{\n    y = {body}\n}}\n")
    with pytest.raises(EvalError):  # in a train step's model too
        from archdsl import driver
        from archdsl.autodiff import OptimConfig, TrainConfig
        src = ("model m(x: float32[B, 4], ids: int64[B, 4]) -> y {\n"
               "    y = (x -> linear(4) as fc) * cast(ids // (tensor([2, 2, 2, 2]) - 2), \"float32\")\n}\n")
        driver.build_train(driver.load(text=src), None, driver.CompileOptions(),
                           TrainConfig(loss="mse", optimizer=OptimConfig("sgd"), lr=0.1))


def test_check_leaves_out_a_division_no_output_reads(tmp_path, capsys):
    """The default build drops it (and builds); check refused it."""
    from archdsl.cli import main
    spec = tmp_path / "z.arch"
    spec.write_text("model m(ids: int64[B, 2]) -> y {\n    z = ids // (tensor([1, 1]) - 1)\n    y = ids + 1\n}\n")
    assert main(["check", str(spec)]) == 0 and "reaches no output" in capsys.readouterr().err
    assert main(["build", str(spec), "-o", str(tmp_path / "z.onnx")]) == 0
    assert main(["build", str(spec), "-O0", "-o", str(tmp_path / "z0.onnx")]) == 1  # -O0 keeps it: onnxruntime
    assert "integer division by zero" in capsys.readouterr().err                    # would refuse the model


@pytest.mark.parametrize("body, said", [
    ('y = x -> lstm(4, batch_first=false, lengths=cast(tensor([6, 3]), "int32"))',
     "lstm 'lstm_0' reads 6 among the lengths of its 5 steps (1..5)"),
    ("y = ctc_loss(log_softmax(x, axis=2), tensor([[1, 2, 3], [1, 0, 0]]), tensor([6, 5]) + 0, tensor([3, 1]))",
     "ctc_loss 'ctc_loss_0' reads 6 among the input_lengths of its 5 frames (0..5)"),
    ("y = cross_entropy(x[0], tensor([1, 4]) + 0)", "cross_entropy 'cross_entropy_0' reads 4 among the labels of "
                                                    "its 4 classes (0..3)"),
])
@pytest.mark.parametrize("level", [0, 2])
def test_labels_and_lengths_computed_from_constants_must_fit(body, said, level):
    """The checker refuses a plain constant; one written as an expression (int32 lengths are a cast) got past it,
    -O2 then folded it into the very constant, and a ctc_loss gave a number torch refuses (8.44) where
    onnxruntime did not fail as it does for lstm and cross_entropy."""
    with pytest.raises(ShapeError, match=__import__("re").escape(said)):
        archdsl.compile_source(f"model m(x: float32[5, 2, 4]) -> y {{\n    {body}\n}}\n", opt_level=level)


@pytest.mark.parametrize("body, said", [
    ("y = tensor([1, 7]) + 0 -> embedding(5, 4) as emb", "embedding 'emb' reads indices computed from constants, "
                                                         "1..7, but its table has 5 rows (0..4)"),
    ("y = x[0] + sum(tensor([2, 3]) - 3 -> embedding(5, 4) as emb, dim=0)",
     "embedding 'emb' reads indices computed from constants, -1..0, but its table has 5 rows (0..4)"),
    ("y = take(x, tensor([0, 4]) + 1, axis=1)", "take 'take_0' reads indices computed from constants, 1..5, but "
                                                 "its table has 5 entries along axis 1 (-5..4)"),
    ("y = positions(x[0], dim=1) + 3 -> embedding(6, 4) as emb", "reads indices computed from constants, 3..6"),
])
@pytest.mark.parametrize("level", [0, 2])
def test_indices_computed_from_constants_must_fit_their_table(body, said, level):
    """As labels: a plain constant past its table is refused, one written as an expression built, then failed
    in onnxruntime (1..7 of 5 rows) or read a row counted from the end (-1: the last row, where torch raises)."""
    with pytest.raises(ShapeError, match=__import__("re").escape(said)):
        archdsl.compile_source(f"model m(x: float32[2, 5, 4]) -> y {{\n    {body}\n}}\n", opt_level=level)


def test_indices_computed_from_constants_that_fit_build():
    archdsl.compile_source("model m(x: float32[2, 5, 4]) -> y {\n    y = tensor([3, 7]) - 3 -> embedding(5, 4) as e\n"
                           "    z = take(x, tensor([0, 4]) - 5, axis=1)\n}\n")
    # no positions at all read no row, wherever they would start (torch's Embedding(8, 4)(arange(9, 9)))
    g = archdsl.check_source("model m(x: float32[B, 6]) -> y {\n    p = positions(x[:, 0:0], dim=1, start=9)\n"
                             "    y = p -> embedding(8, 4) as pos\n}\n")
    assert str(g.outputs[0][1].type) == "float32[0, 4]"


def test_the_apis_check_refuses_what_archdsl_check_does():
    """check_source and check_file returned "the checked IR" of a spec `archdsl check` refuses."""
    with pytest.raises(ShapeError, match="reads 6 among the lengths of its 5 steps"):
        archdsl.check_source('model m(x: float32[5, 2, 4]) -> y {\n    y = x -> lstm(4, batch_first=false, '
                             'lengths=cast(tensor([6, 3]), "int32"))\n}\n')
    with pytest.raises(EvalError, match="integer division by zero"):
        archdsl.check_source("model m(ids: int64[B, 4]) -> y {\n    y = ids // (tensor([1, 2, 1, 2]) - 1)\n}\n")


# mutdriver hunt: each test below failed a mutant the suite let by
def test_the_apis_check_leaves_out_a_division_no_output_reads():
    """check_source, as `archdsl check`: a zero divisor in a computation no output reads is a warning (the
    default build drops it), not an error (D34: the API checked the dead nodes too, and raised)."""
    import warnings
    src = "model m(ids: int64[B, 2]) -> y {\n    z = ids // (tensor([1, 1]) - 1)\n    y = ids + 1\n}\n"
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        g = archdsl.check_source(src)
    assert g.outputs and any("reaches no output" in str(w.message) for w in got)
