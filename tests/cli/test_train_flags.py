"""Each optimizer flag of `build --train` reaches the step: the CLI's model is the one the API builds with that
setting, and not the one without it (only the flags' refusals were tested: --eps and --nesterov could have
been dropped unnoticed)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from archdsl import driver
from archdsl.autodiff import OptimConfig, TrainConfig
from archdsl.cli import main

MLP = Path(__file__).resolve().parents[2] / "specs" / "mlp.arch"


def _graph(path) -> bytes:
    return onnx.load(str(path)).graph.SerializeToString(deterministic=True)


@pytest.mark.parametrize("flags,flag,opt", [
    (["--optimizer", "adamw"], ["--eps", "1e-3"], OptimConfig("adamw", eps=1e-3)),
    (["--optimizer", "adam"], ["--betas", "0.5", "0.9"], OptimConfig("adam", betas=(0.5, 0.9))),
    (["--optimizer", "sgd", "--momentum", "0.9"], ["--nesterov"], OptimConfig("sgd", momentum=0.9, nesterov=True)),
    (["--optimizer", "sgd", "--momentum", "0.9"], ["--dampening", "0.5"],
     OptimConfig("sgd", momentum=0.9, dampening=0.5)),
    (["--optimizer", "adam"], ["--amsgrad"], OptimConfig("adam", amsgrad=True)),
    (["--optimizer", "sgd", "--momentum", "0.9"], ["--weight-decay", "0.1"],
     OptimConfig("sgd", momentum=0.9, weight_decay=0.1)),
])
def test_an_optimizer_flag_reaches_the_step(tmp_path, flags, flag, opt):
    assert main(["build", str(MLP), "--train", *flags, *flag, "-o", str(tmp_path / "cli.onnx")]) == 0
    ct = driver.build_train(driver.load(MLP), None, driver.CompileOptions(), TrainConfig(optimizer=opt, lr=1e-3))
    driver.write_model(ct.step_model, tmp_path / "api.onnx")
    assert _graph(tmp_path / "cli.onnx") == _graph(tmp_path / "api.onnx")
    assert main(["build", str(MLP), "--train", *flags, "-o", str(tmp_path / "base.onnx")]) == 0
    assert _graph(tmp_path / "base.onnx") != _graph(tmp_path / "cli.onnx")


@pytest.mark.parametrize("flag, setting", [(["--clip-grad-value", "0.5"], {"clip_grad_value": 0.5}),
                                           (["--clip-grad-norm", "1.0"], {"clip_grad_norm": 1.0})])
def test_a_clipping_flag_reaches_the_step(tmp_path, flag, setting):
    assert main(["build", str(MLP), "--train", "--optimizer", "sgd", *flag, "-o", str(tmp_path / "cli.onnx")]) == 0
    ct = driver.build_train(driver.load(MLP), None, driver.CompileOptions(),
                            TrainConfig(optimizer=OptimConfig("sgd"), lr=1e-3, **setting))
    driver.write_model(ct.step_model, tmp_path / "api.onnx")
    assert _graph(tmp_path / "cli.onnx") == _graph(tmp_path / "api.onnx")
    assert main(["build", str(MLP), "--train", "--optimizer", "sgd", "-o", str(tmp_path / "base.onnx")]) == 0
    assert _graph(tmp_path / "base.onnx") != _graph(tmp_path / "cli.onnx")
