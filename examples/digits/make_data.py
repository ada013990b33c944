"""Write train.npz and val.npz from scikit-learn's bundled digits (no download): 8x8 images scaled to
[0, 1] as `x` [N, 1, 8, 8] float32 and `labels` int64; a fixed, stratified 80/20 split."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for train.npz and val.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn (its bundled digits are the data): "
                         'pip install -e ".[examples]" in the repository, or pip install scikit-learn') from None
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.2, random_state=args.seed, stratify=y)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "train.npz", x=xt, labels=yt)
    np.savez(out / "val.npz", x=xv, labels=yv)
    print(f"wrote {out / 'train.npz'} ({len(yt)} images) and {out / 'val.npz'} ({len(yv)} images)")


if __name__ == "__main__":
    main()
