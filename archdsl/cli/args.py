"""Value types for command-line flags shared by several commands."""

from __future__ import annotations

import argparse

from ..driver import SEED_MAX

__all__ = ["seed", "threads"]


def seed(text: str) -> int:
    """--seed: 0 .. 2**32 - 1, so that every use (weights, random inputs, shuffling, dropout) takes it whole."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be in 0..{SEED_MAX}, got {value}")
    return value


def threads(text: str) -> int:
    """--threads: onnxruntime's intra-op threads; 0 leaves its default (one per core)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (onnxruntime's default) or more, got {value}")
    return value
