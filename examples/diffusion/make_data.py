"""Write the denoising data for a diffusion model of scikit-learn's bundled digits (no download).

Each 8x8 image x0, scaled to [-1, 1], is noised to a random step t of the forward process,
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with eps ~ N(0, 1), and the UNet learns to predict eps from
(x_t, t): DDPM's simplified loss, a plain mean squared error. `--draws` noisy copies of every training image
(each with its own t and eps) make train.npz: `x` [N, 1, 8, 8], `t` [N], `labels` (eps) [N, 1, 8, 8]; val.npz
holds two draws of every held-out image. digits.npz keeps the clean images for judging the samples.
The noise schedule is the cosine one of Nichol & Dhariwal (2021) over T = 100 steps, its betas capped at 0.95."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

STEPS = 100


def schedule(steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """(beta_t, abar_t) for t = 0..steps-1: abar follows cos^2 (s = 0.008). The paper caps each beta at 0.999;
    over 100 steps the last one reaches that cap, and sampling's first step, which divides by sqrt(1 - beta),
    then multiplies the network's error by 32 (the samples came out as noise). Capped at 0.95 it is 4.5."""
    s = 0.008
    f = np.cos((np.arange(steps + 1) / steps + s) / (1 + s) * np.pi / 2) ** 2
    beta = np.minimum(1 - f[1:] / f[:-1], 0.95)
    return beta, np.cumprod(1 - beta)


def noised(x0: np.ndarray, draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x0 = np.repeat(x0, draws, axis=0)
    t = rng.integers(0, STEPS, len(x0))
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    abar = schedule()[1][t][:, None, None, None]
    return {"x": (np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps).astype(np.float32), "t": t.astype(np.int64),
            "labels": eps}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for train.npz, val.npz, digits.npz")
    ap.add_argument("--draws", type=int, default=8, help="noisy copies of each training image (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.draws < 1:
        ap.error("--draws must be at least 1")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn (its bundled digits are the data): "
                         'pip install -e ".[examples]" in the repository, or pip install scikit-learn') from None
    d = load_digits()
    x = (d.images / 8.0 - 1.0).astype(np.float32)[:, None]      # pixel values 0..16 -> [-1, 1]
    xt, xv, yt, yv = train_test_split(x, d.target, test_size=0.2, random_state=args.seed, stratify=d.target)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = noised(xt, args.draws, rng)
    np.savez(out / "train.npz", **train)
    np.savez(out / "val.npz", **noised(xv, 2, rng))
    np.savez(out / "digits.npz", train=xt, train_labels=yt, val=xv, val_labels=yv)
    print(f"wrote {out / 'train.npz'} ({len(train['t'])} noisy images: {len(xt)} digits x {args.draws}), "
          f"{out / 'val.npz'} and {out / 'digits.npz'}")


if __name__ == "__main__":
    main()
