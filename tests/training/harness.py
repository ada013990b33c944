"""Run N train steps of a spec on onnxruntime (the exported step, state fed back) and in torch eager
(autograd + torch.optim on the same graph, same initial values, same batches)."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from archdsl import driver, runtime
from archdsl.autodiff import OptimConfig, TrainConfig

__all__ = ["batches", "compile_step", "config", "initial", "one_step_like_torch", "ort_steps", "rel", "torch_steps"]


DROPOUT = """
model m(x: float32[B, 64]) -> y {
    y = x -> linear(64) as fc -> dropout(0.25) -> linear(3) as out
}
"""


def config(loss="cross_entropy", opt="sgd", lr=0.1, **kw) -> TrainConfig:
    smooth, ignore, clip = kw.pop("label_smoothing", 0.0), kw.pop("ignore_index", None), kw.pop("clip", None)
    clip_value = kw.pop("clip_value", None)
    return TrainConfig(loss=loss, optimizer=OptimConfig(opt, **kw), lr=lr, label_smoothing=smooth,
                       ignore_index=ignore, clip_grad_norm=clip, clip_grad_value=clip_value)


def compile_step(spec: str, cfg: TrainConfig, defines=None, text: str | None = None):
    if text is not None:
        mod = driver.load(text=text, file="t.arch", defines=defines)
    else:
        mod = driver.load(spec, defines=defines)
    ct = driver.build_train(mod, None, driver.CompileOptions(), cfg)
    fwd = driver.elaborate_model(mod, ct.eval_model.graph.name)
    return ct, fwd


def batches(ct, n: int, batch: int, classes: int, seed: int = 0, dims=None) -> list[dict]:
    """Random data for every data input, and labels (class indices, or floats for mse/bce)."""
    rng = np.random.default_rng(seed)
    sess = runtime.session(ct.eval_model, "cpu")
    out = []
    for _ in range(n):
        feeds = {}
        for name, shape, dt in runtime.input_specs(sess, batch, dims):
            if name not in ct.info.data_inputs:
                continue
            feeds[name] = (rng.standard_normal(shape).astype(dt) if np.issubdtype(dt, np.floating)
                           else rng.integers(0, classes, shape).astype(dt))
        if not ct.info.labelled:  # the model computes its own loss: its inputs are all the data
            out.append(feeds)
            continue
        lab = next(i for i in ct.step_model.graph.input if i.name == "labels")
        shape = [d.dim_value if d.dim_value else batch if i == 0 else (dims or {}).get(d.dim_param, 8)
                 for i, d in enumerate(lab.type.tensor_type.shape.dim)]
        if lab.type.tensor_type.elem_type == 7:
            feeds["labels"] = rng.integers(0, classes, shape).astype(np.int64)
        else:  # the model's float dtype (float64 labels for a float64 model)
            feeds["labels"] = rng.random(shape).astype(helper.tensor_dtype_to_np_dtype(lab.type.tensor_type.elem_type))
        out.append(feeds)
    return out


def initial(ct) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}


def ort_steps(ct, data: list[dict], provider: str = "cpu"):
    sess = runtime.session(ct.step_model, provider)
    names = [o.name for o in sess.get_outputs()]
    state: dict = {}
    losses, states = [], []
    for feeds in data:
        res = dict(zip(names, sess.run(None, {**feeds, **state})))
        losses.append(float(res["loss"]))
        state = {inp: res[out] for out, inp in ct.info.state.items()}
        states.append(state)
    return losses, states


def torch_steps(ct, fwd, data: list[dict], dtype=np.float32):
    """`dtype=np.float64` gives a reference free of float32 rounding (for ill-conditioned nets)."""
    import torch

    from archdsl.training.torch_ref import TorchGraph, torch_loss, torch_optimizer
    cfg = ct.info.config
    o = cfg.optimizer
    cast = lambda d: {k: v.astype(dtype) if v.dtype == np.float32 else v for k, v in d.items()}
    data = [cast(f) for f in data]
    tg = TorchGraph(fwd, cast(initial(ct)))
    opt = torch_optimizer(o, list(tg.params.values()), cfg.lr)
    losses, states = [], []
    for feeds in data:
        opt.zero_grad()
        pred = tg.forward(feeds)[ct.info.output]
        loss = torch_loss(cfg.loss, pred, feeds["labels"], cfg.label_smoothing, cfg.ignore_index) \
            if ct.info.labelled else pred
        loss.backward()
        if cfg.clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(list(tg.params.values()), cfg.clip_grad_value)
        if cfg.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(tg.params.values()), cfg.clip_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        with torch.no_grad():
            states.append({k: v.detach().numpy().copy() for k, v in {**tg.params, **tg.buffers}.items()})
    return losses, states


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def one_step_like_torch(ct, fwd, data: list[dict]) -> None:
    """The first step's loss within 1e-5 and every state's update within 1e-4 (relative) of torch's in
    float64."""
    init = initial(ct)
    lo, so = ort_steps(ct, data)
    l64, s64 = torch_steps(ct, fwd, data, np.float64)
    assert abs(lo[0] - l64[0]) <= 1e-5 * abs(l64[0])
    for name, ref in s64[0].items():
        assert rel(so[0][name] - init[name], ref - init[name]) < 1e-4, name


def linear_run(tmp_path, n: int = 16) -> list[str]:
    """`archdsl train` of a one-linear spec on n random examples, to -o w.npz (the checkpoint w.ckpt.npz)."""
    spec = tmp_path / "t.arch"
    spec.write_text("model t(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((n, 4)).astype(np.float32), labels=rng.integers(0, 3, n))
    return ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz")]
