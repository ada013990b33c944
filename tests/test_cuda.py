"""On onnxruntime's CUDA provider, where it is installed (skipped elsewhere; CI has no GPU): every spec gives
the CPU's outputs, and train steps the CPU's losses. Run on an H200 on 2026-12-04 (README, Benchmark): outputs
within 1.3e-6 relative with TF32 off, losses within 2e-4 (held here to 1e-3; ResNet-18's were 10% apart by
its third step under TF32 convolutions, so it is not here)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from archdsl import driver, runtime

HAVE_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
pytestmark = pytest.mark.skipif(not HAVE_CUDA, reason="onnxruntime has no CUDAExecutionProvider here")


def _cuda(model):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=[
        ("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    return sess


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    if a.dtype.kind != "f":
        return float((a != b).any())
    return float(np.abs(a.astype(np.float64) - b).max() / (np.abs(b).max() + 1e-12)) if b.size else 0.0


def _spec_models():
    from .passes.test_specs import SMALL, SPECS
    return [(p, m) for p in SPECS for m in driver.select_models(driver.load(p, defines=SMALL.get(p.stem)), None)]


@pytest.mark.parametrize("path, model", _spec_models() if HAVE_CUDA else [], ids=lambda v: getattr(v, "stem", v))
def test_every_spec_gives_the_cpu_outputs_on_cuda(path, model):
    from .passes.test_specs import DIMS, _build, _perturbed_weights
    built = _build(path, model, 2, None, _perturbed_weights(path, model))
    cpu = runtime.session(built.model, "cpu")
    feeds = runtime.random_feeds(cpu, 2, DIMS, seed=3)
    want = cpu.run(None, feeds)
    got = _cuda(built.model).run(None, feeds)
    assert max(_relative(g, w) for g, w in zip(got, want)) < 1e-5


@pytest.mark.parametrize("name", ["mlp", "lenet5", "gpt2", "vit"])
def test_train_steps_give_the_cpu_losses_on_cuda(name):
    from archdsl.autodiff import OptimConfig, TrainConfig
    from archdsl.training.bench import MODELS, ROOT, _data
    from archdsl.training.loop import Trainer
    spec, defines, batch, dims = MODELS[name]
    cfg = TrainConfig(loss="cross_entropy", optimizer=OptimConfig("adamw"), lr=1e-3)
    ct = driver.build_train(driver.load(ROOT / spec, defines=defines), None, driver.CompileOptions(opt_level=2), cfg)
    feeds = _data(ct, batch, dims, 10)
    trainers = {p: Trainer(ct, p, 2) for p in ("cpu", "cuda")}
    losses = {p: [t.train_step(feeds, want_pred=False)[0] for _ in range(3)] for p, t in trainers.items()}
    assert trainers["cuda"].step.get_providers()[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)
