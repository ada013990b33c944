"""Train a 2-layer GPT-2 on repeated motifs on onnxruntime, then let the trained model continue sequences.

    python examples/tiny_gpt/train.py      # data -> archdsl train -> archdsl build --weights -> generation

The same as running, in this folder:
    python make_data.py
    archdsl train ../../specs/gpt2.arch -D n_layer=2 -D n_head=2 -D n_embd=64 -D vocab=16 -D n_positions=32 \\
        -D pdrop=0.0 --data train.npz --val val.npz --epochs 8 --batch-size 64 --lr 6e-3 --schedule cosine \\
        -o gpt.npz
    archdsl build ../../specs/gpt2.arch -D ... (the same -D values) --weights gpt.npz -o gpt.onnx
then greedy decoding with onnxruntime: the first 8 tokens of each held-out sequence in, the next 9 out.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "specs" / "gpt2.arch"
DEFINES = ["n_layer=2", "n_head=2", "n_embd=64", "vocab=16", "n_positions=32", "pdrop=0.0"]
PROMPT = 8  # two periods of the longest motif: enough to know how it goes on


def continue_greedily(sess, prompt: np.ndarray, steps: int) -> np.ndarray:
    """Append the most likely next token `steps` times (the whole prefix is fed again each time: no KV cache)."""
    ids = prompt
    for _ in range(steps):
        logits = sess.run(None, {"input_ids": ids})[0]
        ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return ids[:, prompt.shape[1]:]


def main(out: Path = HERE / "out", epochs: int = 8) -> float:
    import importlib.util

    from archdsl import runtime
    from archdsl.cli import main as archdsl

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("tiny_gpt_make_data", HERE / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_data.main(["--out", str(out)])
    defines = [a for d in DEFINES for a in ("-D", d)]
    rc = archdsl(["train", str(SPEC), *defines, "--data", str(out / "train.npz"), "--val", str(out / "val.npz"),
                  "--epochs", str(epochs), "--batch-size", "64", "--lr", "6e-3", "--schedule", "cosine",
                  "-o", str(out / "gpt.npz")])
    assert rc == 0, "archdsl train failed"
    rc = archdsl(["build", str(SPEC), *defines, "--weights", str(out / "gpt.npz"), "-o", str(out / "gpt.onnx")])
    assert rc == 0, "archdsl build failed"
    with np.load(out / "val.npz") as z:
        seq = np.concatenate([z["input_ids"], z["labels"][:, -1:]], axis=1)
    with np.load(out / "train.npz") as z:  # a motif of 2 or 3 tokens has 256 or 4096 forms: many recur
        seen = {tuple(r) for r in np.concatenate([z["input_ids"], z["labels"][:, -1:]], axis=1)}
    new = np.array([tuple(r) not in seen for r in seq])
    sess = runtime.session(out / "gpt.onnx", "cpu")
    got = continue_greedily(sess, seq[:, :PROMPT], seq.shape[1] - PROMPT)
    right = (got == seq[:, PROMPT:]).all(axis=1)
    exact, unseen = float(right.mean()), float(right[new].mean())
    print(f"gpt.onnx continues {100 * exact:.1f}% of {len(seq)} held-out sequences exactly "
          f"({seq.shape[1] - PROMPT} tokens after {PROMPT}), {100 * unseen:.1f}% of the {int(new.sum())} that are "
          f"not also in the training set; {time.perf_counter() - t0:.1f}s in all")
    print("for example:", " ".join(map(str, seq[0, :PROMPT])), "->", " ".join(map(str, got[0])))
    return unseen


if __name__ == "__main__":
    main()
