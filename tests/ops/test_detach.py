"""ops/detach.py: the value unchanged at every dtype and opset, dropped from inference graphs, kept in a
train step (where tests/training/test_detach_train.py checks that no gradient flows through it)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import archdsl

from .core_harness import OPSET, SETTINGS, SYM, covers, dim, rand, run_op


@covers("detach")
@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=4), seed=st.integers(0, 99), sym=SYM, opset=OPSET,
       dtype=st.sampled_from([np.float32, np.int64, np.bool_]), name=st.sampled_from(["detach", "stop_gradient"]))
def test_detach_is_the_value(shape, seed, sym, opset, dtype, name):
    x = rand(*shape, seed=seed) * 3
    x = x > 0 if dtype is np.bool_ else x.astype(dtype)
    y, _ = run_op(f"{name}(x) * 1" if dtype is not np.bool_ else f"{name}(x)", opset=opset, sym=sym, x=x)
    np.testing.assert_array_equal(y, x)


SRC = "model m(x: float32[B, 4]) -> y {\n    y = detach(x -> linear(3) as fc) -> relu\n}\n"


def test_an_inference_graph_drops_it_and_O0_keeps_an_identity():
    ops = lambda m: [n.op_type for n in m.graph.node]
    assert "Identity" not in ops(archdsl.compile_source(SRC, opt_level=1))
    assert "Identity" in ops(archdsl.compile_source(SRC, opt_level=0))


def test_the_train_step_keeps_it():
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    src = "model m(x: float32[B, 4]) -> y {\n    y = detach(x -> linear(3) as fc) -> linear(2) as out\n}\n"
    mod = driver.load(text=src, file="t.arch")
    ct = driver.build_train(mod, None, driver.CompileOptions(), TrainConfig(loss="mse", optimizer=OptimConfig("sgd")))
    forward = [n.op for n in ct.graph.nodes]
    assert "detach" in forward, forward
