"""onnxruntime latency, measured so that machine noise hits every model alike: the sessions run in
turn within each round (A B C, A B C, ...), and a ratio is the median of the per-round ratios."""

from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["alternate", "feeds_for", "make_session"]


def make_session(path: str, threads: int = 2, provider: str = "cpu"):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    prov = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(path, so, providers=prov)


def feeds_for(sess, inputs: list[tuple[str, tuple[int, ...], str]], int_high: dict, seed: int = 0) -> dict:
    """Random inputs by position (the exported model may name them differently)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for meta, (name, shape, dt) in zip(sess.get_inputs(), inputs):
        if dt == "int64":
            feeds[meta.name] = rng.integers(0, int_high.get(name, 2), shape).astype(np.int64)
        else:
            feeds[meta.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def alternate(runs: dict[str, tuple], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """runs: label -> (session, feeds). Returns label -> per-round latency in ms."""
    for sess, feeds in runs.values():
        for _ in range(warmup):
            sess.run(None, feeds)
    times: dict[str, list[float]] = {k: [] for k in runs}
    labels = list(runs)
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]  # rotate who goes first
        for k in order:
            sess, feeds = runs[k]
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))
