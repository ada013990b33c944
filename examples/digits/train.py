"""Train the digits CNN end to end on onnxruntime and check the trained inference model.

    python examples/digits/train.py            # data -> archdsl train -> archdsl build --weights -> accuracy

The same as running, in this folder:
    python make_data.py
    archdsl train digits.arch --data train.npz --val val.npz --epochs 20 --batch-size 32 --lr 1e-3 \\
        --schedule cosine -o digits.npz
    archdsl build digits.arch --weights digits.npz -o digits.onnx
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE / "out", epochs: int = 20) -> float:
    from archdsl import runtime
    from archdsl.cli import main as archdsl

    t0 = time.perf_counter()
    made = subprocess.run([sys.executable, str(HERE / "make_data.py"), "--out", str(out)])
    if made.returncode:  # make_data.py said why
        sys.exit(made.returncode)
    spec = str(HERE / "digits.arch")
    rc = archdsl(["train", spec, "--data", str(out / "train.npz"), "--val", str(out / "val.npz"),
                  "--epochs", str(epochs), "--batch-size", "32", "--lr", "1e-3", "--schedule", "cosine",
                  "-o", str(out / "digits.npz")])
    assert rc == 0, "archdsl train failed"
    rc = archdsl(["build", spec, "--weights", str(out / "digits.npz"), "-o", str(out / "digits.onnx")])
    assert rc == 0, "archdsl build failed"
    with np.load(out / "val.npz") as z:
        x, labels = z["x"], z["labels"]
    sess = runtime.session(out / "digits.onnx", "cpu")
    logits = sess.run(None, {"x": x})[0]
    acc = float((logits.argmax(-1) == labels).mean())
    print(f"held-out accuracy of digits.onnx: {100 * acc:.2f}% ({len(labels)} images), "
          f"{time.perf_counter() - t0:.1f}s in all")
    return acc


if __name__ == "__main__":
    main()
