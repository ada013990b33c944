"""run_training's LoopOptions from Python: what `archdsl train` checks of its flags, checked for a caller that
passes the options itself (review116: batch_size=0 was a ZeroDivisionError, patience without val a KeyError,
schedule="exp" and a negative warmup were taken)."""

from __future__ import annotations

import pytest

from archdsl.diagnostics import ArchError
from archdsl.training.loop import LoopOptions


@pytest.mark.parametrize("given, said", [
    ({"batch_size": 0}, "batch_size takes an integer of 1 or more, got 0"),
    ({"batch_size": "16"}, "batch_size takes an integer of 1 or more, got '16'"),
    ({"epochs": -1}, "epochs takes an integer of 0 or more, got -1"),
    ({"warmup": -1}, "warmup takes an integer of 0 or more, got -1"),
    ({"eval_batch_size": 0}, "eval_batch_size takes an integer of 1 or more or None, got 0"),
    ({"patience": 2}, "patience needs val"),
    ({"threads": 10**6}, "threads takes 0 (onnxruntime's default) to 256"),
    ({"seed": -1}, "seed must be an integer in 0..4294967295, got -1"),
    ({"seed": 2**64}, "seed must be an integer in 0..4294967295"),
    ({"schedule": "exp"}, "schedule takes one of constant, cosine, linear, step, got 'exp'"),
    ({"schedule_per": "step"}, "schedule_per takes one of epoch, batch"),
    ({"milestones": (3, 2)}, "milestones takes positive integers, increasing, got [3, 2]"),
    ({"gamma": float("nan")}, "gamma must be a positive number"),
])
def test_options_the_cli_refuses_are_refused(given, said):
    with pytest.raises(ArchError) as e:
        LoopOptions(data="d.npz", **given).validate()
    assert e.value.message == said or e.value.message.startswith(said)


def test_the_defaults_and_the_clis_own_forms_pass():
    LoopOptions(data="d.npz").validate()
    LoopOptions(data="d.npz", val="v.npz", patience=3, schedule="step", milestones=(2, 5), gamma=0.5, threads=0,
                seed=2**32 - 1, eval_batch_size=64, epochs=0).validate()
