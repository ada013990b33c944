"""A learning rate of 0, as torch's optimizers take it (lr=0 was refused): every weight stays, to the bit,
while the optimizer's moments and BatchNorm's running statistics move, at float32 and float16, for each
optimizer (AdamW's decay is lr * wd: none)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from archdsl import driver, runtime
from archdsl.autodiff import OptimConfig, TrainConfig

SPEC = ("model m(x: DT[B, 3, 6, 6]) -> y {\n    y = x -> conv2d(4, 3, padding=1) as conv -> batchnorm2d as bn -> relu"
        " -> global_avgpool -> flatten -> linear(2) as fc\n}\n")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("opt", [OptimConfig("sgd", momentum=0.9), OptimConfig("adam"),
                                 OptimConfig("adamw", weight_decay=0.1)])
def test_a_zero_learning_rate_moves_no_weight(dtype, opt):
    ct = driver.build_train(driver.load(text=SPEC.replace("DT", dtype), file="t.arch"), None,
                            driver.CompileOptions(), TrainConfig(loss="mse", optimizer=opt, lr=0.0))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}
    sess = runtime.session(ct.step_model, "cpu")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 3, 6, 6)).astype(dtype), "labels": rng.standard_normal((4, 2)).astype(dtype)}
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs() if i.name in feeds}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    weights = [n for n in init if n.startswith(("conv.", "fc.", "bn.")) and n.endswith(("weight", "bias"))]
    assert len(weights) == 6
    for name in weights:
        np.testing.assert_array_equal(out[f"{name}.new"], init[name], err_msg=name)
    moved = [n for n in out if n.endswith(".new") and n[:-4] in init and n[:-4] not in weights
             and not np.array_equal(out[n], init[n[:-4]])]
    assert any("running_mean" in n for n in moved) and any("running_var" in n for n in moved), moved
    assert len(moved) > 2, moved  # the momentum buffers or Adam's moments


def test_a_tiny_learning_rate_moves_a_zero_bias_as_torch_does():
    """Adam's first step from a zero bias is -lr * sign(g) (m / sqrt(v) is +-1, eps aside): at lr 1e-31 the
    floor that keeps k finite was added to the step size and doubled it (review57)."""
    src = ("model m(x: float32[B, 3]) -> y {\n    y = (x -> linear(2, bias=false) as fc) + "
           "parameter([2], init=\"zeros\") as bias\n}\n")
    ct = driver.build_train(driver.load(text=src, file="t.arch"), None, driver.CompileOptions(),
                            TrainConfig(loss="mse", optimizer=OptimConfig("adam", eps=1e-40), lr=1e-31))
    sess = runtime.session(ct.step_model, "cpu")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 3)).astype(np.float32), "labels": rng.standard_normal((4, 2)).astype("f4")}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {
        i.name: feeds[i.name] for i in sess.get_inputs() if i.name in feeds})))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}
    assert not init["bias"].any()
    np.testing.assert_allclose(np.abs(out["bias.new"]), 1e-31, rtol=1e-5)
