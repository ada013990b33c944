"""Value types for command-line flags shared by several commands."""

from __future__ import annotations

import argparse

__all__ = ["SEED_MAX", "seed"]

SEED_MAX = 2**32 - 1  # the weights draw from (seed, name, block) as 32-bit words; dropout takes it as int64


def seed(text: str) -> int:
    """--seed: 0 .. 2**32 - 1, so that every use (weights, random inputs, shuffling, dropout) takes it whole."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be in 0..{SEED_MAX}, got {value}")
    return value
