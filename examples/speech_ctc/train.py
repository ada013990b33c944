"""Train a small CTC speech recognizer on generated utterances on onnxruntime, then transcribe held-out ones.

    python examples/speech_ctc/train.py      # data -> archdsl train -> archdsl build --weights -> decoding

The same as running, in this folder:
    python make_data.py
    archdsl train speech.arch --model ctc --loss model --data train.npz --val val.npz --epochs 6 \\
        --batch-size 32 --lr 3e-3 --schedule cosine -o speech.npz
    archdsl build speech.arch --model recognize --weights speech.npz -o speech.onnx
then greedy CTC decoding of each held-out utterance: the most likely symbol per frame, repeats merged, blanks
dropped.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def greedy(log_probs: np.ndarray, frames: np.ndarray) -> list[list[int]]:
    """Per utterance: the best symbol of each real frame, repeats merged, blanks (0) dropped."""
    out = []
    for lp, n in zip(log_probs, frames):
        best = lp[:n].argmax(-1)
        out.append([int(s) for i, s in enumerate(best) if s != 0 and (i == 0 or s != best[i - 1])])
    return out


def main(out: Path = HERE / "out", epochs: int = 6) -> float:
    import importlib.util

    from archdsl import runtime
    from archdsl.cli import main as archdsl

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("speech_ctc_make_data", HERE / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_data.main(["--out", str(out)])
    arch = str(HERE / "speech.arch")
    rc = archdsl(["train", arch, "--model", "ctc", "--loss", "model", "--data", str(out / "train.npz"),
                  "--val", str(out / "val.npz"), "--epochs", str(epochs), "--batch-size", "32", "--lr", "3e-3",
                  "--schedule", "cosine", "-o", str(out / "speech.npz")])
    assert rc == 0, "archdsl train failed"
    rc = archdsl(["build", arch, "--model", "recognize", "--weights", str(out / "speech.npz"),
                  "-o", str(out / "speech.onnx")])
    assert rc == 0, "archdsl build failed"
    with np.load(out / "val.npz") as z:
        x, frames, words, count = z["x"], z["frames"], z["words"], z["count"]
    log_probs = runtime.session(out / "speech.onnx", "cpu").run(None, {"x": x, "frames": frames})[0]
    got = greedy(log_probs, frames)
    want = [list(map(int, w[:c])) for w, c in zip(words, count)]
    exact = float(np.mean([g == w for g, w in zip(got, want)]))
    print(f"speech.onnx transcribes {100 * exact:.1f}% of {len(want)} held-out utterances exactly, "
          f"{time.perf_counter() - t0:.1f}s in all")
    print("for example:", want[0], "->", got[0])
    return exact


if __name__ == "__main__":
    main()
