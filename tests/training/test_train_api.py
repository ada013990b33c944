"""compile_train_file's own arguments from Python: a train= that is no TrainConfig, fields of the wrong kind
and with_weights=False were tracebacks deep in the build, or quietly ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl import driver
from archdsl.autodiff import OptimConfig, TrainConfig
from archdsl.diagnostics import ArchError

MLP = Path(__file__).resolve().parents[2] / "specs" / "mlp.arch"


@pytest.mark.parametrize("train,said", [
    (None, "train takes an archdsl.autodiff.TrainConfig"),
    ({"lr": 0.1}, "train takes an archdsl.autodiff.TrainConfig"),
    (TrainConfig(optimizer="adam"), "optimizer takes an OptimConfig"),
    (TrainConfig(lr="0.1"), "lr takes a number, got '0.1'"),
    (TrainConfig(accumulate="2"), "accumulate takes an integer"),
    (TrainConfig(clip_grad_norm=True), "clip_grad_norm takes a number or None"),
    (TrainConfig(optimizer=OptimConfig("adam", betas=(0.9,))), "betas takes two numbers"),
    (TrainConfig(optimizer=OptimConfig("sgd", momentum="0.9")), "momentum takes a number"),
    (TrainConfig(optimizer=OptimConfig("adam", amsgrad="no")), "amsgrad takes true or false, got 'no'"),
    (TrainConfig(lr=__import__("fractions").Fraction(1, 10)), "lr takes a number"),  # went on into the JSON
    (TrainConfig(lr=__import__("numpy").clongdouble(0.1 + 5j)), "lr takes a number"),  # lost its 5j
    # past float64: OverflowErrors (review116); past float32: the step's constant inf, trained to NaN
    (TrainConfig(lr=10**400), "the learning rate must be 0 or more and finite, got inf"),
    (TrainConfig(clip_grad_norm=10**400), "the gradient norm to clip to must be positive and finite, got inf"),
    (TrainConfig(clip_grad_value=1e39), r"the gradient value to clip to 1e\+39 is inf in float32"),
    (TrainConfig(optimizer=OptimConfig("adamw", weight_decay=10**400)), "weight decay must be >= 0 and finite"),
    (TrainConfig(optimizer=OptimConfig("sgd", momentum=1e300)), r"momentum 1e\+300 is inf in float32"),
    (TrainConfig(optimizer=OptimConfig("adam", eps=-10**400)), "eps must be >= 0 and finite, got -inf"),
    (TrainConfig(lr=1e-50), "the learning rate 1e-50 is 0.0 in float32, the step's lr input"),  # never moves
    (TrainConfig(optimizer=OptimConfig("adamw", weight_decay=-1e300)), r"weight decay must be >= 0 and finite, "
                                                                       r"got -1e\+300"),  # not "inf in float32"
    (TrainConfig(loss=""), "loss takes a name or None"), (TrainConfig(output=""), "output takes a name or None"),
])
def test_a_train_config_of_the_wrong_kind_is_said(train, said):
    with pytest.raises(ArchError, match=said):
        driver.compile_train_file(MLP, train)


@pytest.mark.parametrize("field", ["freeze", "no_decay"])
def test_patterns_that_are_no_strings_are_said(field):
    """freeze=3 was a bare "'int' object is not iterable" (review116)."""
    with pytest.raises(ArchError, match=f"^{field} takes a pattern or a list of patterns \\(strings\\), got 3$"):
        TrainConfig(**{field: 3})
    assert getattr(TrainConfig(**{field: {"fc1.*": 1}.keys()}), field) == ("fc1.*",)  # strings: taken (review119)


def test_a_train_step_refuses_with_weights_false():
    """The step holds its weights as its state: the option was taken and ignored."""
    with pytest.raises(ArchError, match="with_weights=false does not apply to a train step"):
        driver.compile_train_file(MLP, TrainConfig(), with_weights=False)
    assert driver.compile_train_file(MLP, TrainConfig(lr=0.1, optimizer=OptimConfig("adamw"))).step_model.graph.node


def test_numpy_numbers_in_a_train_config_are_taken_as_pythons():
    """np.float32(0.1) for lr went into the metadata's JSON (a TypeError), for clip_grad_value into clamp's
    argument check; an array of betas was refused."""
    import numpy as np
    for train in (TrainConfig(lr=np.float32(0.1), accumulate=np.int64(2), clip_grad_value=np.float32(0.5)),
                  TrainConfig(optimizer=OptimConfig("adam", betas=np.array([0.8, 0.99]), amsgrad=np.bool_(True))),
                  TrainConfig(lr=np.longdouble(0.1), optimizer=OptimConfig("adam", betas=(np.float32(0.8), 0.99)))):
        assert driver.compile_train_file(MLP, train).step_model.graph.node


def test_a_train_step_past_what_an_in_memory_model_holds_says_to_build_to_a_file(monkeypatch):
    """A step whose parameters and optimizer state pass 2 GiB came back, and every use of it raised EncodeError
    (api3 hunt); here at a threshold made small."""
    monkeypatch.setattr(driver, "EXTERNAL_DATA_THRESHOLD", 1_000_000)  # mlp: 0.8 MB of weights, 1.6 with momentum
    with pytest.raises(ArchError, match="the train step.s state .* build it to a file, .*archdsl build SPEC --train"):
        driver.compile_train_file(MLP, TrainConfig(optimizer=OptimConfig("sgd", momentum=0.9)))


def test_the_options_and_model_are_said_in_the_apis_words():
    """file= was offered ("did you mean 'file'?") and refused; model= was said as "--model zz" (api3 hunt)."""
    with pytest.raises(ArchError) as e:
        driver.compile_train_file(MLP, TrainConfig(), file="x.arch")
    assert "unknown option 'file'" in e.value.message and "'file'?" not in e.value.message
    with pytest.raises(ArchError, match="^.*model='zz': no model 'zz'"):
        driver.compile_train_file(MLP, TrainConfig(), model="zz")
    with pytest.raises(ArchError, match="build_file takes a loaded module, archdsl.driver.load"):
        driver.build_file(str(MLP), None, driver.CompileOptions(), "o.onnx")


def test_the_apis_freeze_takes_one_pattern_as_a_string():
    """TrainConfig(freeze="fc1") froze the parameters matching 'f' and 'c', letter by letter (a str is a
    sequence); a pattern that is no string is an ArchError, not a TypeError from deep in the matching."""
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    from archdsl.diagnostics import ArchError
    cfg = TrainConfig(freeze="fc1", no_decay="*.bias", optimizer=OptimConfig("adamw"))
    assert (cfg.freeze, cfg.no_decay) == (("fc1",), ("*.bias",))
    src = "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8) as fc1 -> tanh -> linear(3) as fc2\n}\n"
    step = driver.build_train(driver.load(text=src), None, driver.CompileOptions(), cfg)
    inputs = {i.name for i in step.step_model.graph.input}
    assert "fc2.weight.exp_avg" in inputs and "fc1.weight.exp_avg" not in inputs  # fc1 frozen: no optimizer state
    with pytest.raises(ArchError, match=r"freeze takes a pattern or a list of patterns \(strings\), got \[1\]"):
        TrainConfig(freeze=(1,))
    assert TrainConfig(freeze=None, no_decay=None).freeze == ()  # none: nothing frozen, as before
