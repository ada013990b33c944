"""Train a small DCGAN on scikit-learn's digits on onnxruntime, from two archdsl train steps, then draw digits.

    python examples/gan/train.py

archdsl compiles each network's update into its own train step (gan.arch):
    archdsl build gan.arch --model d_step --train --optimizer adam --lr 2e-4 --betas 0.5 0.999 --accumulate 2 -o d.onnx
    archdsl build gan.arch --model g_step --train --optimizer adam --lr 2e-4 --betas 0.5 0.999 --freeze D -o g.onnx
and this script alternates them as torch's DCGAN tutorial does its two optimizers, handing each step the other's
new weights (never its step counter or Adam moments), keeps an exponential moving average of the generator's
weights, builds the generator with them (archdsl build --model generator --weights g_ema.npz) and judges its
digits with a classifier fit on real ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE / "gan.arch"
OPTIMIZER = ["--optimizer", "adam", "--lr", "2e-4", "--betas", "0.5", "0.999"]  # the tutorial's Adam


class Step:
    """One train step: its session and its state, which starts as the model's initializers and is replaced by
    the step's outputs after each run (the metadata's archdsl.train_state: output -> the input it replaces)."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper

        from archdsl import runtime
        model = onnx.load(path)
        self.replaces = json.loads(next(p.value for p in model.metadata_props if p.key == "archdsl.train_state"))
        start = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.state = {name: start[name] for name in self.replaces.values()}
        self.session = runtime.session(path, "cpu", threads=1)  # networks this small run fastest on one thread
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: dict, keep: bool = True) -> dict:
        out = dict(zip(self.outputs, self.session.run(None, {**self.state, **feeds})))
        if keep:
            self.state.update({name: out[o] for o, name in self.replaces.items()})
        return out


def shared(step: Step, prefix: str) -> list[str]:
    """The weights and BatchNorm buffers of one network in a step's state: what the two steps hand each other.
    Not `step`, `lr` or the Adam moments, which each step keeps for the parameters it updates."""
    return [k for k in step.state if k.startswith(prefix) and not k.endswith(("exp_avg", "exp_avg_sq", "grad_sum"))]


def digits() -> dict:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn (its bundled digits are the data): "
                         'pip install -e ".[examples]" in the repository, or pip install scikit-learn') from None
    d = load_digits()
    x = (d.images / 8.0 - 1.0).astype(np.float32)[:, None]  # [-1, 1], as the generator's tanh
    xt, xv, yt, yv = train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target)
    return {"train": xt, "train_labels": yt, "val": xv, "val_labels": yv}


def judge(samples: np.ndarray, data: dict, rng: np.random.Generator) -> dict:
    """How often a digit classifier (logistic regression fit on the training digits) is at least 90% sure of
    its answer: for the samples, for held-out real digits and for noise of the same range."""
    from sklearn.linear_model import LogisticRegression
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    clf = LogisticRegression(max_iter=2000).fit(flat(data["train"]), data["train_labels"])
    noise = rng.uniform(-1.0, 1.0, (len(samples), 64))
    sure = {k: float((clf.predict_proba(flat(v)).max(1) >= 0.9).mean())
            for k, v in (("samples", samples), ("held-out digits", data["val"]), ("noise", noise))}
    return {**sure, "classes": np.bincount(clf.predict(flat(samples)), minlength=10).tolist()}


def show(img: np.ndarray) -> str:
    return "\n".join("".join(" .:-=+*#%@"[min(9, int((v + 1) / 2 * 10))] for v in row) for row in img)


def main(out: Path = HERE / "out", iterations: int = 1500, batch: int = 64, samples: int = 200) -> dict:
    from archdsl import runtime
    from archdsl.cli import main as archdsl

    t0 = time.perf_counter()
    data = digits()
    out = Path(out)
    for model, extra in (("d_step", ["--accumulate", "2"]), ("g_step", ["--freeze", "D"])):
        rc = archdsl(["build", str(SPEC), "--model", model, "--train", *OPTIMIZER, *extra,
                      "-o", str(out / f"{model}.onnx")])
        assert rc == 0, f"archdsl build --model {model} failed"
    d, g = Step(out / "d_step.onnx"), Step(out / "g_step.onnx")
    d_weights, d_buffers = shared(d, "D."), [k for k in shared(d, "D.") if ".running_" in k]
    g_weights = shared(g, "G.")
    ema = {k: g.state[k].copy() for k in g_weights}
    rng = np.random.default_rng(0)
    real_t, fake_t = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
    no_lr = np.array(0.0, np.float32)
    losses = []
    for it in range(1, iterations + 1):
        real = data["train"][rng.choice(len(data["train"]), batch, replace=False)]
        z = rng.standard_normal((batch, 16, 1, 1)).astype(np.float32)
        # the discriminator: real, then the generator's fakes (its train-mode output, from a run that keeps
        # nothing), the update on the second of the two accumulated half-batches
        d_real = d({"image": real, "target": real_t, "apply": np.array(False)})["loss"]
        fake = g({"z": z, "lr": no_lr}, keep=False)["image"]
        d_fake = d({"image": fake, "target": fake_t, "apply": np.array(True)})["loss"]
        g.state.update({k: d.state[k] for k in d_weights})  # the new discriminator into the generator's step
        g_loss = g({"z": z})["loss"]
        d.state.update({k: g.state[k] for k in d_buffers})  # its BatchNorm statistics moved on the fakes there
        for k in g_weights:  # buffers copied, weights averaged
            ema[k] = g.state[k] if ".running_" in k else 0.999 * ema[k] + 0.001 * g.state[k]
        losses.append((float(d_real + d_fake) / 2, float(g_loss)))  # each half's loss was doubled
        if it % max(1, iterations // 5) == 0:
            print(f"iteration {it}: loss_D {np.mean([a for a, _ in losses[-100:]]):.3f}  "
                  f"loss_G {np.mean([b for _, b in losses[-100:]]):.3f}")
    np.savez(out / "g_ema.npz", **ema)
    rc = archdsl(["build", str(SPEC), "--model", "generator", "--weights", str(out / "g_ema.npz"),
                  "-o", str(out / "generator.onnx")])
    assert rc == 0, "archdsl build --model generator failed"
    z = rng.standard_normal((samples, 16, 1, 1)).astype(np.float32)
    drawn = runtime.session(out / "generator.onnx", "cpu").run(None, {"z": z})[0]
    res = judge(drawn, data, rng)
    res["losses"] = losses
    print("\n\n".join(show(img) for img in drawn[:3, 0]))
    print(f"{iterations} iterations, {samples} samples in {time.perf_counter() - t0:.1f}s; a digit classifier is "
          f">= 90% sure of its answer for")
    for k in ("samples", "held-out digits", "noise"):
        print(f"  {k:>15}: {100 * res[k]:.1f}%")
    print("  the samples' classes:", res["classes"])
    return res


if __name__ == "__main__":
    main()
