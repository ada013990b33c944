"""Value types for command-line flags shared by several commands."""

from __future__ import annotations

import argparse

from ..driver import SEED_MAX
from ..runtime import MAX_THREADS

__all__ = ["THREADS_HELP", "positive", "seed", "some_threads", "threads"]


def _integer(text: str, low: int, high: int | None, bounds: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < low or high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
    return value


def seed(text: str) -> int:
    """--seed: 0 .. 2**32 - 1, so that every use (weights, random inputs, shuffling, dropout) takes it whole."""
    return _integer(text, 0, SEED_MAX, f"in 0..{SEED_MAX}")


THREADS_HELP = f"intra-op threads, at most {MAX_THREADS} (default and 0: onnxruntime's, one per core)"
DEFINE_HELP = ("override a file-level param (repeatable); a bare word is a string: -D size=small, -D size=7b "
               "(inf and -inf are infinity for a float param); "
               "ALIAS.NAME=VALUE sets a param of the file imported `as ALIAS`")


def positive(text: str) -> int:
    """A count of at least 1 (the training benchmark's --repeat: 0 steps had no median)."""
    return _integer(text, 1, None, "at least 1")


def threads(text: str) -> int:
    """--threads: onnxruntime's intra-op threads; 0 leaves its default (one per core)."""
    return _integer(text, 0, MAX_THREADS, f"0 (onnxruntime's default) to {MAX_THREADS}")


def some_threads(text: str) -> int:
    """--threads where both sides need a count (the training benchmark sets torch's too): 1 .. MAX_THREADS."""
    return _integer(text, 1, MAX_THREADS, f"1 to {MAX_THREADS}")
