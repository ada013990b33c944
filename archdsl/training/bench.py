"""One train step on onnxruntime against the same step in torch eager, side by side, as a table.

    python -m archdsl.training.bench [--models mlp lenet5 resnet18 gpt2 vit] [--threads N] [--levels 1,2]

The onnxruntime side runs the exported step as `archdsl train` does (state bound as OrtValues, fed back);
the torch side runs the same graph as written eagerly (archdsl.training.torch_ref), loss.backward() and
the torch.optim step. Both use the same thread count; the median of --repeat steps after warm-up is shown,
the sides timed alternately (step by step) so that a busy machine slows them alike. --levels 1,2 builds
the step at both levels and times the three side by side (-O2 narrows ViT's last block to its class
token, narrow_rows). ratio = onnxruntime / torch (below 1: the exported step is faster)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from ..cli.args import positive, some_threads
from ..cli.signals import interruptible, stdout_closed
from ..diagnostics import ArchError
from ..files import specs_dir
from ..runtime import MAX_THREADS

__all__ = ["MODELS", "main"]

ROOT = specs_dir().parent  # the specs' paths below are ROOT/specs/...
MODELS = {  # name: (spec, defines, batch, symbolic dims)
    "mlp": ("specs/mlp.arch", [], 64, {}),
    "lenet5": ("specs/lenet5.arch", [], 64, {}),
    "resnet18": ("specs/resnet.arch", ["depth=18", "resolution=64", "classes=10"], 16, {}),
    "gpt2": ("specs/gpt2.arch", ["n_layer=2", "pdrop=0.0"], 4, {"T": 128}),
    "vit": ("specs/vit.arch", ["image=32", "patch=4", "layers=4", "heads=4", "hidden=128", "mlp_dim=256",
                               "classes=10"], 32, {}),
}
DEFAULT_MODELS = ["mlp", "lenet5", "resnet18", "gpt2"]


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


def _time_each(fns: list, repeat: int, clock: str, warmup: int = 2) -> list[float]:
    """Median ms of each function. clock "cpu" counts this process's CPU time (steady on a shared machine,
    and with one thread the work itself), "wall" elapsed time. Timed in turn (a, b, a, b, ...) so that load
    from other processes on a shared machine falls on every side alike."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    for _ in range(warmup):
        for f in fns:
            f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for f, ts in zip(fns, times):
            t0 = now()
            f()
            ts.append((now() - t0) * 1e3)
    return [statistics.median(ts) for ts in times]


def bench_one(name: str, threads: int, repeat: int, provider: str, optimizer: str, clock: str = "wall",
              levels: tuple[int, ...] = (2,)) -> list[dict]:
    """A row per optimization level, every level's step and torch's timed in turn."""
    import torch

    from .. import driver
    from ..autodiff import OptimConfig, TrainConfig
    from .loop import Trainer
    from .torch_ref import TorchGraph, torch_loss, torch_optimizer
    spec, defines, batch, dims = MODELS[name]
    momentum = 0.9 if optimizer == "sgd" else 0.0
    cfg = TrainConfig(loss="cross_entropy", optimizer=OptimConfig(optimizer, momentum=momentum), lr=1e-3)
    mod = driver.load(ROOT / spec, defines=defines)
    steps, compile_s = [], []
    for level in levels:
        t0 = time.perf_counter()
        steps.append(driver.build_train(mod, None, driver.CompileOptions(opt_level=level), cfg))
        compile_s.append(time.perf_counter() - t0)
    ct = steps[0]
    feeds = _data(ct, batch, dims, 10)
    trainers = [Trainer(c, provider, threads, spin=False) for c in steps]  # a spinning pool slows the next side

    torch.set_num_threads(threads)
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}
    dev = "cuda" if provider == "cuda" else "cpu"
    tg = TorchGraph(driver.elaborate_model(mod, ct.eval_model.graph.name), init, dev)
    o = cfg.optimizer
    opt = torch_optimizer(o, list(tg.params.values()), cfg.lr)

    def torch_step():
        opt.zero_grad()
        pred = tg.forward(feeds)[ct.info.output]
        loss = torch_loss(cfg.loss, pred, feeds["labels"])
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    *ort_ms, torch_ms = _time_each([*(lambda t=t: t.train_step(feeds, want_pred=False) for t in trainers),
                                    torch_step], repeat, clock)
    params = sum(int(np.prod(init[p].shape)) for p in ct.info.params)
    return [{"model": name, "level": level, "params": params, "batch": batch, "nodes": len(c.step_model.graph.node),
             "compile_s": cs, "ort_ms": ms, "torch_ms": torch_ms, "ratio": ms / torch_ms,
             "provider": t.step.get_providers()[0]}
            for level, c, cs, ms, t in zip(levels, steps, compile_s, ort_ms, trainers)]


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(dict.fromkeys(int(x) for x in text.split(",")))
    except ValueError:
        levels = ()
    if not levels or any(v not in (0, 1, 2) for v in levels):
        raise argparse.ArgumentTypeError(f"expected levels among 0, 1, 2 separated by commas, got '{text}'")
    return levels


def main(argv: list[str] | None = None) -> int:
    """No traceback when stopped: Ctrl-C says `interrupted` and exits 130, SIGTERM/SIGHUP exit 128 + the signal."""
    return interruptible(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="python -m archdsl.training.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=DEFAULT_MODELS,
                    help=f"default: {' '.join(DEFAULT_MODELS)}")
    ap.add_argument("--levels", type=_levels, default=(2,), metavar="L[,L]",
                    help="optimization levels of the step, timed side by side (default 2; e.g. 1,2)")
    ap.add_argument("--threads", type=some_threads, default=2,
                    help=f"intra-op threads for both, 1 to {MAX_THREADS} (default 2)")
    ap.add_argument("--repeat", type=positive, default=10, help="timed steps (median; default 10)")
    ap.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                    help="where both sides run: onnxruntime's execution provider and torch's device (default cpu)")
    ap.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adamw",
                    help="the update of both steps (default adamw; sgd with momentum 0.9)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: process CPU time, steadier on a busy machine with --threads 1 "
                         "(with more threads it sums every thread's time, a pool's waiting included)")
    args = ap.parse_args(argv)
    if stdout_closed():  # started with `>&-`: every step timed, and the table dropped
        ap.error("stdout is closed, and the table goes there")
    args.models = list(dict.fromkeys(args.models))  # each model timed once
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"{ap.prog}: error: the training benchmark compares with torch eager, which is not importable "
              f"({e}); pip install torch", file=sys.stderr)
        return 1
    try:
        rows = [r for m in args.models
                for r in bench_one(m, args.threads, args.repeat, args.provider, args.optimizer, args.clock,
                                   args.levels)]
    except ArchError as e:  # e.g. --provider cuda without a CUDA onnxruntime
        print(f"{ap.prog}: error: {e.message}", file=sys.stderr)
        return 1
    head = (f"{'model':<10} {'-O':>2} {'params':>12} {'batch':>5} {'nodes':>6} {'onnxruntime ms':>15} "
            f"{'torch ms':>10} {'ratio':>7}")
    print(f"one train step ({args.optimizer}), {rows[0]['provider']} vs torch eager, {args.threads} threads, "
          f"{args.clock} clock, median of {args.repeat}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<10} {r['level']:>2} {r['params']:>12,} {r['batch']:>5} {r['nodes']:>6} "
              f"{r['ort_ms']:>15.2f} {r['torch_ms']:>10.2f} {r['ratio']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
