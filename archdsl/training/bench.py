"""One train step on onnxruntime against the same step in torch eager, side by side, as a table.

    python -m archdsl.training.bench [--models mlp lenet5 resnet18 gpt2] [--threads N] [--provider cpu|cuda]

The onnxruntime side runs the exported step as `archdsl train` does (state bound as OrtValues, fed back);
the torch side runs the same graph eagerly (archdsl.training.torch_ref), loss.backward() and the
torch.optim step. Both use the same thread count; the median of --repeat steps after warm-up is shown,
the two sides timed alternately (step by step) so that a busy machine slows both alike.
ratio = onnxruntime / torch (below 1: the exported step is faster)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..cli.args import some_threads
from ..diagnostics import ArchError
from ..runtime import MAX_THREADS

__all__ = ["MODELS", "main"]

ROOT = Path(__file__).resolve().parents[2]
MODELS = {  # name: (spec, defines, batch, symbolic dims)
    "mlp": ("specs/mlp.arch", [], 64, {}),
    "lenet5": ("specs/lenet5.arch", [], 64, {}),
    "resnet18": ("specs/resnet.arch", ["depth=18", "resolution=64", "classes=10"], 16, {}),
    "gpt2": ("specs/gpt2.arch", ["n_layer=2", "pdrop=0.0"], 4, {"T": 128}),
}


def _data(ct, batch: int, dims: dict, classes: int, seed: int = 0) -> dict:
    from .. import runtime
    rng = np.random.default_rng(seed)
    sess = runtime.session(ct.eval_model, "cpu")
    feeds = {}
    for name, shape, dt in runtime.input_specs(sess, batch, dims):
        if name in ct.info.data_inputs:
            feeds[name] = (rng.standard_normal(shape).astype(dt) if np.issubdtype(dt, np.floating)
                           else rng.integers(0, classes, shape).astype(dt))
    out_shape = next(o for o in ct.eval_model.graph.output if o.name == ct.info.output)
    dims_l = [d.dim_value or (batch if i == 0 else dims.get(d.dim_param, 8))
              for i, d in enumerate(out_shape.type.tensor_type.shape.dim)]
    feeds["labels"] = rng.integers(0, min(classes, dims_l[-1]), dims_l[:-1]).astype(np.int64)
    return feeds


def _time_pair(fa, fb, repeat: int, clock: str, warmup: int = 2) -> tuple[float, float]:
    """Median ms of fa and of fb. clock "cpu" counts this process's CPU time (steady on a shared machine, and
    with one thread the work itself), "wall" elapsed time. Timed alternately (a, b, a, b, ...) so that load
    from other processes on a shared machine falls on both sides alike."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeat):
        for f, ts in ((fa, ta), (fb, tb)):
            t0 = now()
            f()
            ts.append((now() - t0) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def bench_one(name: str, threads: int, repeat: int, provider: str, optimizer: str, clock: str = "wall") -> dict:
    import torch

    from .. import driver
    from ..autodiff import OptimConfig, TrainConfig
    from .loop import Trainer
    from .torch_ref import TorchGraph, torch_loss, torch_optimizer
    spec, defines, batch, dims = MODELS[name]
    cfg = TrainConfig(optimizer=OptimConfig(optimizer, momentum=0.9 if optimizer == "sgd" else 0.0), lr=1e-3)
    mod = driver.load(ROOT / spec, defines=defines)
    t0 = time.perf_counter()
    ct = driver.build_train(mod, None, driver.CompileOptions(), cfg)
    compile_s = time.perf_counter() - t0
    feeds = _data(ct, batch, dims, 10)
    trainer = Trainer(ct, provider, threads)

    torch.set_num_threads(threads)
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}
    dev = "cuda" if provider == "cuda" else "cpu"
    tg = TorchGraph(driver.elaborate_model(mod, ct.eval_model.graph.name), init, dev)
    o = cfg.optimizer
    opt = torch_optimizer(o.name, list(tg.params.values()), cfg.lr, o.momentum, o.nesterov, o.weight_decay)

    def torch_step():
        opt.zero_grad()
        pred = tg.forward(feeds)[ct.info.output]
        loss = torch_loss(cfg.loss, pred, feeds["labels"])
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    ort_ms, torch_ms = _time_pair(lambda: trainer.train_step(feeds, want_pred=False), torch_step, repeat, clock)
    params = sum(int(np.prod(init[p].shape)) for p in ct.info.params)
    return {"model": name, "params": params, "batch": batch, "nodes": len(ct.step_model.graph.node),
            "compile_s": compile_s, "ort_ms": ort_ms, "torch_ms": torch_ms, "ratio": ort_ms / torch_ms,
            "provider": trainer.step.get_providers()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m archdsl.training.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--threads", type=some_threads, default=2,
                    help=f"intra-op threads for both, 1 to {MAX_THREADS} (default 2)")
    ap.add_argument("--repeat", type=int, default=10, help="timed steps (median; default 10)")
    ap.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adamw")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: process CPU time (steadier on a busy machine)")
    args = ap.parse_args(argv)
    try:
        rows = [bench_one(m, args.threads, args.repeat, args.provider, args.optimizer, args.clock)
                for m in args.models]
    except ArchError as e:  # e.g. --provider cuda without a CUDA onnxruntime
        print(f"{ap.prog}: error: {e.message}", file=sys.stderr)
        return 1
    head = (f"{'model':<10} {'params':>12} {'batch':>5} {'nodes':>6} {'onnxruntime ms':>15} {'torch ms':>10} "
            f"{'ratio':>7}")
    print(f"one train step ({args.optimizer}), {rows[0]['provider']} vs torch eager, {args.threads} threads, "
          f"{args.clock} clock, median of {args.repeat}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<10} {r['params']:>12,} {r['batch']:>5} {r['nodes']:>6} {r['ort_ms']:>15.2f} "
              f"{r['torch_ms']:>10.2f} {r['ratio']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
