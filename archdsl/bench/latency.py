"""onnxruntime latency, measured so that machine noise hits every model alike: the sessions run in
turn within each round (A B C, A B C, ...), and a ratio is the median of the per-round ratios.

Two effects measured on the 2-core machine decide how (BERT-base, the same two models timed in turn):
- a session's intra-op threads spin for a while after each run and take the cores of the next session's
  run; with spinning on, whichever session was created second ran ~9% faster, whatever its graph. The
  sessions here never spin (the figures are per-run latency, not throughput).
- creation order still moves a ratio by ~2% (memory placement), so `alternate_orders` measures every model
  set twice, sessions created in one order then in the reverse, and pools the rounds."""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from ..runtime import cpu_fallback

__all__ = ["alternate", "alternate_orders", "feeds_for", "make_session", "median_interval", "median_ratio",
           "ratio_interval"]


def make_session(path: str | bytes, threads: int = 2, provider: str = "cpu"):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 4  # errors reach the caller as exceptions; no raw log line too
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see the module docstring
    prov = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(path, so, providers=prov)
    fallback = cpu_fallback(sess) if provider == "cuda" else None
    if fallback:  # figures labelled CUDA would be CPU figures
        raise RuntimeError(fallback)
    return sess


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


def alternate_orders(make, labels: list[str], rounds: int) -> dict[str, list[float]]:
    """`make(label) -> (session, feeds)`, or None for a label that cannot run (left out); half the rounds with
    the sessions created in `labels` order, half in reverse (each set freed before the next), per-round
    latencies pooled by label."""
    times: dict[str, list[float]] = {k: [] for k in labels}
    first = (rounds + 1) // 2
    for order, n in ((labels, first), (labels[::-1], rounds - first)):
        if n <= 0:
            continue
        runs = {k: r for k in order if (r := make(k)) is not None}
        if not runs:
            continue
        for k, v in alternate(runs, n).items():
            times[k].extend(v)
        del runs
    return times


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median: order statistics k and n+1-k, k the largest
    with P(Binomial(n, 1/2) < k) <= (1 - level) / 2. None when there are too few values for that level."""
    xs, n = sorted(values), len(values)
    tail, k, below = (1 - level) / 2, 0, 0.0
    while below + math.comb(n, k) / 2 ** n <= tail:
        below += math.comb(n, k) / 2 ** n
        k += 1
    return (xs[k - 1], xs[n - k]) if k >= 1 else None


def ratio_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """median_interval of the per-round ratios a/b: whether a ratio is told apart from 1 by the run itself."""
    return median_interval([x / y for x, y in zip(a, b)], level)
