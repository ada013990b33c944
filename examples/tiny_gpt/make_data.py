"""Write train.npz and val.npz of generated token sequences (no download): each sequence repeats a random
motif of 2 to 4 tokens from a vocabulary of 16, e.g. 3 9 14 3 9 14 3 ... A causal language model can only
guess a motif's first tokens, but once it has seen one period it can continue the sequence exactly, which
needs attention back to the same place in the last period (what GPT-2's heads do for repeated text).

`input_ids` [N, 16] are a sequence's first 16 tokens, `labels` [N, 16] the next token at every position."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

VOCAB, LENGTH = 16, 16


def sequences(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, LENGTH + 1] tokens, each row a motif of 2 to 4 random tokens repeated."""
    period = rng.integers(2, 5, n)
    motif = rng.integers(0, VOCAB, (n, 4))
    return np.take_along_axis(motif, np.arange(LENGTH + 1)[None] % period[:, None], 1).astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for train.npz and val.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 6000), ("val", 500)):
        seq = sequences(n, rng)
        np.savez(out / f"{name}.npz", input_ids=seq[:, :-1], labels=seq[:, 1:])
    print(f"wrote {out / 'train.npz'} (6000 sequences) and {out / 'val.npz'} (500), {LENGTH} tokens each")


if __name__ == "__main__":
    main()
