"""One compile in a fresh process, so its time and peak memory are its own.

    python -m archdsl.bench.child archdsl MODEL_KEY LEVEL OUT.onnx [OPSET]
    python -m archdsl.bench.child archdsl-graph MODEL_KEY LEVEL OUT.onnx [OPSET]   (no weights: the compiler alone)
    python -m archdsl.bench.child archdsl-given MODEL_KEY LEVEL OUT.onnx [OPSET]   (--weights: a checkpoint of
        the same weights, written beside OUT before the clock, as torch's exporters are given a module's)
    python -m archdsl.bench.child torch MODEL_KEY dynamo|legacy OUT.onnx
    python -m archdsl.bench.child mlp N_LAYERS WIDTH OUT.onnx
    python -m archdsl.bench.child write N_BYTES OUT     (the floor: writing that many bytes, nothing else)

Imports, probing onnxruntime's newest opset and (for torch) building the module happen before the clock
starts; the timed part is what a user waits for: `archdsl build` (parse, elaborate, optimize, lower with weights,
write the file) or `torch.onnx.export` to a file. Every clock starts after flushing the page cache's dirty
pages (outside the clock), so no compile pays for writing back the one before it. Prints one JSON line:
seconds, peak_mb (peak RSS growth), nodes."""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    """Current RSS, after resetting the peak (VmHWM) so that start-up peaks do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    hwm = _status_mb("VmHWM")
    return hwm if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mlp_source(layers: int, width: int) -> str:
    return (f"model deep_mlp(x: float32[B, {width}]) -> y {{\n    h = x\n"
            f"    repeat {layers} as i {{ h = h -> linear({width}) as \"fc{{i}}\" -> relu }}\n    y = h\n}}\n")


def _start_clock() -> float:
    """Flush earlier runs' dirty pages first: each compile writes hundreds of MB, and the kernel throttles a
    writer while a previous one's pages are still going to disk (500 MB took 0.16 s into a clean page cache
    and 0.4-1.0 s right after other writes on the development machine), so without this a build's time
    depended on what ran before it."""
    import os
    os.sync()
    return time.perf_counter()


def _warm(opset: int | None = None) -> None:
    """Once-per-process start-up outside the clock, like imports: probing onnxruntime's newest opset and its
    kernels."""
    from ..ops._kernels import runs_natively
    from ..runtime import newest_opset
    runs_natively("Attention", opset or newest_opset())


def _checkpoint(m, out: str) -> str:
    """OUT.safetensors: the weights a build with seed 0 gives, as a checkpoint a user would load."""
    import gc

    from .. import driver
    from ..lower import initial_weights, save_weights
    path = out + ".safetensors"
    weights = initial_weights(driver.check_file(m.path, defines=m.defines))
    save_weights(path, weights)
    del weights
    gc.collect()
    return path


def _archdsl(key: str, level: int, out: str, weights: bool = True, opset: int | None = None,
             given: bool = False) -> dict:
    from .. import driver
    from .models import by_key
    _warm(opset)
    m = by_key(key)
    checkpoint = _checkpoint(m, out) if given else None
    before = _rss_mb()
    t0 = _start_clock()
    mod = driver.load(m.path, defines=m.defines)
    if weights:  # what `archdsl build` does (with --weights CHECKPOINT when given)
        c, _ = driver.build_file(mod, None, driver.CompileOptions(opt_level=level, opset=opset, weights=checkpoint),
                                 out)
    else:  # the compiler alone: parse, elaborate, optimize, lower, write a model without initializers
        c = driver.build(mod, None, driver.CompileOptions(opt_level=level, opset=opset), skeleton=True)
        driver.write_model(c.model, out)
    return {"seconds": time.perf_counter() - t0, "peak_mb": max(0.0, _peak_mb() - before),
            "nodes": len(c.model.graph.node)}


def _mlp(layers: int, width: int, out: str) -> dict:
    from .. import driver
    _warm()
    src = mlp_source(layers, width)
    before = _rss_mb()
    t0 = _start_clock()
    c, _ = driver.build_file(driver.load(text=src, file="deep_mlp.arch"), None, driver.CompileOptions(), out)
    return {"seconds": time.perf_counter() - t0, "peak_mb": max(0.0, _peak_mb() - before),
            "nodes": len(c.model.graph.node), "ir_nodes": len(c.graph.nodes)}


def _torch(key: str, exporter: str, out: str) -> dict:
    import torch

    from .models import by_key, example_inputs, torch_module
    m = by_key(key)
    module = torch_module(m)
    ins = example_inputs(m)
    args = tuple(torch.ones(s, dtype=torch.int64) if dt == "int64" else torch.randn(s) for _, s, dt in ins)
    names = [n for n, _, _ in ins]
    before = _rss_mb()
    t0 = _start_clock()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, args, out, dynamo=True, input_names=names, verbose=False)
        else:
            torch.onnx.export(module, args, out, dynamo=False, input_names=names)
    seconds = time.perf_counter() - t0
    import onnx
    nodes = len(onnx.load(out, load_external_data=False).graph.node)
    return {"seconds": seconds, "peak_mb": max(0.0, _peak_mb() - before), "nodes": nodes}


def _write(nbytes: int, out: str) -> dict:
    """What writing a model's bytes costs by itself here (1 MiB blocks from one buffer, into the page cache
    as every exporter does): the part of a build no compiler can avoid on this disk."""
    import numpy as np
    block = np.zeros(1 << 20, np.uint8)
    t0 = _start_clock()
    with open(out, "wb") as f:
        left = nbytes
        while left > 0:
            f.write(block[:min(left, block.size)])
            left -= block.size
    return {"seconds": time.perf_counter() - t0, "bytes": nbytes}


def main(argv: list[str]) -> int:
    kind = argv[0]
    try:
        if kind in ("archdsl", "archdsl-graph", "archdsl-given"):
            res = _archdsl(argv[1], int(argv[2]), argv[3], weights=kind != "archdsl-graph",
                           opset=int(argv[4]) if len(argv) > 4 else None, given=kind == "archdsl-given")
        elif kind == "torch":
            res = _torch(argv[1], argv[2], argv[3])
        elif kind == "write":
            res = _write(int(argv[1]), argv[2])
        elif kind == "mlp":
            res = _mlp(int(argv[1]), int(argv[2]), argv[3])
        else:
            raise SystemExit(f"unknown kind {kind}")
    except Exception as e:  # noqa: BLE001 - reported in the table, not a crash of the benchmark
        res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    sys.stdout.flush()
    print("BENCH-RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
