"""Losses of one unbatched example: cross_entropy of logits [C] against one label [], bce_with_logits of a
scalar. Their gradients made an invalid OneHot (indices of rank 0) and a [1]-shaped update of a [3] bias."""

from __future__ import annotations

import onnx
import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

_LOGITS = "model m(x: float32[4]) -> logits {\n    logits = x -> linear(3) as fc\n}\n"
_SCALAR = "model m(x: float32[4]) -> logit {\n    logit = sum(x -> linear(3) as fc)\n}\n"


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_of_one_label_trains_like_torch(smoothing):
    ct, fwd = compile_step(None, config(loss="cross_entropy", opt="sgd", lr=1.0, label_smoothing=smoothing),
                           text=_LOGITS)
    onnx.checker.check_model(ct.step_model, full_check=True)
    one_step_like_torch(ct, fwd, batches(ct, 1, 1, 3, seed=2))


def test_bce_of_a_scalar_trains_like_torch():
    ct, fwd = compile_step(None, config(loss="bce_with_logits", opt="sgd", lr=1.0), text=_SCALAR)
    onnx.checker.check_model(ct.step_model, full_check=True)
    bias = next(o for o in ct.step_model.graph.output if o.name == "fc.bias.new")
    assert [d.dim_value for d in bias.type.tensor_type.shape.dim] == [3]
    one_step_like_torch(ct, fwd, batches(ct, 1, 1, 2, seed=3))
