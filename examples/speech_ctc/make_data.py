"""Write train.npz and val.npz of generated "utterances" (no download): each says 1 to 4 words from a vocabulary
of 8, every word a sound of its own (a fixed random spectrum of 12 features, rising and falling over its 2 to 4
frames), with silence of 0 to 2 frames around them and noise over everything, padded to 24 frames. Which frames
belong to which word is not given: a recognizer trained with CTC finds the alignment itself.

`x` [N, 24, 12] the frames, `frames` [N] how many are real, `words` [N, 4] the words (1..8, padded with 0),
`count` [N] how many words."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

WORDS, FEATURES, FRAMES, MAX_WORDS = 8, 12, 24, 4


def utterances(n: int, rng: np.random.Generator, sounds: np.ndarray):
    x = np.zeros((n, FRAMES, FEATURES), np.float32)
    frames = np.zeros(n, np.int64)
    words = np.zeros((n, MAX_WORDS), np.int64)
    count = rng.integers(1, MAX_WORDS + 1, n)
    for i in range(n):
        t = int(rng.integers(0, 3))
        for j in range(count[i]):
            w = int(rng.integers(1, WORDS + 1))
            length = int(rng.integers(2, 5))
            envelope = np.sin(np.pi * (np.arange(length) + 0.5) / length)[:, None]
            x[i, t:t + length] = envelope * sounds[w - 1]
            words[i, j] = w
            t += length + int(rng.integers(0, 3))
        frames[i] = min(t + int(rng.integers(0, 3)), FRAMES)
    x += rng.normal(0, 0.3, x.shape).astype(np.float32)
    x[np.arange(FRAMES)[None, :] >= frames[:, None]] = 0  # the padding
    return x, frames, words, count


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for train.npz and val.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sounds = rng.normal(0, 1, (WORDS, FEATURES)).astype(np.float32)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 3000), ("val", 300)):
        x, frames, words, count = utterances(n, rng, sounds)
        np.savez(out / f"{name}.npz", x=x, frames=frames, words=words, count=count)
    print(f"wrote {out / 'train.npz'} (3000 utterances) and {out / 'val.npz'} (300), {FRAMES} frames each")


if __name__ == "__main__":
    main()
