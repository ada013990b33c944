"""Train a small DDPM denoising UNet on scikit-learn's digits on onnxruntime, then draw new digits with it.

    python examples/diffusion/train.py     # data -> archdsl train -> archdsl build --weights -> sampling

The same as running, in this folder:
    python make_data.py
    archdsl train ../../specs/ddpm_unet.arch -D resolution=8 -D in_channels=1 -D ch=16 -D 'ch_mult=[1,2]' \\
        -D num_res_blocks=1 -D 'attn_resolutions=[4]' -D groups=8 -D dropout_p=0.0 \\
        --data train.npz --val val.npz --loss mse --epochs 6 --batch-size 128 --lr 3e-3 --schedule cosine -o unet.npz
    archdsl build ../../specs/ddpm_unet.arch -D ... (the same -D values) --weights unet.npz -o unet.onnx
then DDPM's ancestral sampling with onnxruntime: 100 denoising steps from pure noise. The samples are judged
two ways, each beside held-out real digits and beside noise: how confidently a digit classifier (logistic
regression, fit on the training digits) names them, and how far each lies from its nearest training digit.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "specs" / "ddpm_unet.arch"
DEFINES = ["resolution=8", "in_channels=1", "ch=16", "ch_mult=[1,2]", "num_res_blocks=1", "attn_resolutions=[4]",
           "groups=8", "dropout_p=0.0"]


def sample(sess, n: int, schedule, rng: np.random.Generator) -> np.ndarray:
    """DDPM ancestral sampling (Ho et al. 2020, algorithm 2) with the posterior variance beta~_t."""
    beta, abar = schedule
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    for t in range(len(beta) - 1, -1, -1):
        eps = sess.run(None, {"x": x, "t": np.full(n, t, np.int64)})[0]
        mean = (x - beta[t] / np.sqrt(1 - abar[t]) * eps) / np.sqrt(1 - beta[t])
        noise = np.sqrt(beta[t] * (1 - abar_prev[t]) / (1 - abar[t])) * rng.standard_normal(x.shape) if t else 0.0
        x = (mean + noise).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def judge(samples: np.ndarray, digits: dict, rng: np.random.Generator) -> dict:
    """Classifier confidence and nearest-training-digit distance of the samples, of held-out real digits and of
    clipped Gaussian noise (what the samples started from)."""
    from sklearn.linear_model import LogisticRegression
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    train = flat(digits["train"])
    clf = LogisticRegression(max_iter=2000).fit(train, digits["train_labels"])
    noise = np.clip(rng.standard_normal((len(samples), 64)), -1.0, 1.0)

    def nearest(a):
        d2 = (a * a).sum(1)[:, None] - 2 * a @ train.T + (train * train).sum(1)[None]
        return float(np.sqrt(np.maximum(d2.min(1), 0.0)).mean())

    sets = {"samples": flat(samples), "held-out digits": flat(digits["val"]), "noise": noise}
    res = {k: {"confident": float((clf.predict_proba(v).max(1) >= 0.9).mean()), "nearest": nearest(v)}
           for k, v in sets.items()}
    res["classifier accuracy"] = float(clf.score(flat(digits["val"]), digits["val_labels"]))
    res["classes"] = np.bincount(clf.predict(sets["samples"]), minlength=10).tolist()
    return res


def show(img: np.ndarray) -> str:
    return "\n".join("".join(" .:-=+*#%@"[min(9, int((v + 1) / 2 * 10))] for v in row) for row in img)


def main(out: Path = HERE / "out", epochs: int = 6, draws: int = 8, samples: int = 200) -> dict:
    import importlib.util

    from archdsl import runtime
    from archdsl.cli import main as archdsl

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("diffusion_make_data", HERE / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_data.main(["--out", str(out), "--draws", str(draws)])
    defines = [a for d in DEFINES for a in ("-D", d)]
    rc = archdsl(["train", str(SPEC), *defines, "--data", str(out / "train.npz"), "--val", str(out / "val.npz"),
                  "--loss", "mse", "--epochs", str(epochs), "--batch-size", "128", "--lr", "3e-3",
                  "--schedule", "cosine", "-o", str(out / "unet.npz")])
    assert rc == 0, "archdsl train failed"
    rc = archdsl(["build", str(SPEC), *defines, "--weights", str(out / "unet.npz"), "-o", str(out / "unet.onnx")])
    assert rc == 0, "archdsl build failed"
    rng = np.random.default_rng(1)
    x = sample(runtime.session(out / "unet.onnx", "cpu"), samples, make_data.schedule(), rng)
    with np.load(out / "digits.npz") as z:
        res = judge(x, dict(z), rng)
    print("\n\n".join(show(img) for img in x[:3, 0]))
    print(f"{samples} samples in {time.perf_counter() - t0:.1f}s in all "
          f"(the classifier names {100 * res['classifier accuracy']:.1f}% of held-out digits right):")
    for k in ("samples", "held-out digits", "noise"):
        print(f"  {k:>15}: classifier >= 90% sure of {100 * res[k]['confident']:.1f}%, "
              f"nearest training digit {res[k]['nearest']:.2f} away on average")
    print("  the samples' classes:", res["classes"])
    return res


if __name__ == "__main__":
    main()
