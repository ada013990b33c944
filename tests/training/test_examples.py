"""The runnable scenarios end to end: examples/digits, tiny_gpt, diffusion, speech_ctc and gan as their scripts
run them, and specs/transformer.arch's translator trained by `archdsl train` and read back through its built model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archdsl import runtime
from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str):
    """examples/NAME/train.py as a module (the examples are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"{name}_train", ROOT / "examples" / name / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_example_reaches_97_percent(tmp_path):
    """The issue's example end to end (about 10 s): data -> archdsl train -> build --weights -> >= 97% held out."""
    assert _example("digits").main(tmp_path) >= 0.97


def test_digits_example_without_scikit_learn_says_so_and_makes_no_folder(tmp_path, monkeypatch):
    """Its data comes from scikit-learn: without it the script says so in one line, and left an empty out/."""
    fake = tmp_path / "fake"
    (fake / "sklearn").mkdir(parents=True)
    (fake / "sklearn" / "__init__.py").write_text("raise ImportError('no scikit-learn here')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))  # make_data.py runs in a child process
    with pytest.raises(SystemExit) as e:
        _example("digits").main(tmp_path / "out")
    assert e.value.code == 1 and not (tmp_path / "out").exists()


def test_tiny_gpt_example_continues_held_out_sequences(tmp_path):
    """examples/tiny_gpt end to end (6 to 13 s idle, up to a minute beside other work): a 2-layer GPT-2 from
    specs/gpt2.arch trained by archdsl train on generated motifs, then greedy generation with the built model:
    the share of held-out sequences not also in the training set continued exactly (97.0% of 263 measured;
    98.4% of all 500)."""
    assert _example("tiny_gpt").main(tmp_path) >= 0.9


def test_speech_ctc_example_transcribes_held_out_utterances(tmp_path):
    """examples/speech_ctc end to end (4 to 9 s idle, up to 21 s beside other work): a bidirectional GRU over
    padded frames (lengths=) trained with ctc_loss by archdsl train, then greedy CTC decoding with the built
    recognizer (98.0% exact measured)."""
    assert _example("speech_ctc").main(tmp_path) >= 0.9


def test_diffusion_example_runs_end_to_end(tmp_path):
    """examples/diffusion's steps on a sliver of its data (5 to 15 s): make_data, archdsl train, build --weights,
    sampling with the built UNet and the judge. The digits it draws after one short epoch prove nothing; the
    slow test below holds the example's claim."""
    res = _example("diffusion").main(tmp_path, epochs=1, draws=1, samples=10)
    assert sum(res["classes"]) == 10 and np.isfinite(res["samples"]["nearest"])
    assert res["held-out digits"]["confident"] > res["noise"]["confident"]  # the judge tells digits from noise
    assert res["held-out digits"]["nearest"] < res["noise"]["nearest"]


@pytest.mark.slow
def test_diffusion_example_draws_digits(tmp_path):
    """examples/diffusion end to end (27 s to 2 minutes, the longest test: `-m slow` runs it): a DDPM UNet from
    specs/ddpm_unet.arch trained by archdsl train draws digits that a classifier recognizes and that lie near
    the training digits, far from noise."""
    res = _example("diffusion").main(tmp_path)
    assert res["samples"]["confident"] >= 0.45 > res["noise"]["confident"]
    assert res["samples"]["nearest"] <= 3.2 < res["noise"]["nearest"]
    assert sum(c > 0 for c in res["classes"]) >= 9


def test_gan_example_runs_end_to_end(tmp_path):
    """examples/gan's loop for a few iterations (about 5 s): both train steps built, alternated with their
    weights handed over, the generator built from the averaged weights, its samples judged. A few iterations
    prove nothing of the digits; the slow test below holds the example's claim."""
    res = _example("gan").main(tmp_path, iterations=40, samples=20)
    assert len(res["losses"]) == 40 and np.isfinite(res["losses"]).all() and sum(res["classes"]) == 20
    assert res["held-out digits"] > res["noise"]


@pytest.mark.slow
def test_gan_example_draws_digits(tmp_path):
    """examples/gan end to end (30 to 60 s): a DCGAN alternating two archdsl train steps draws digits a
    classifier is sure of far more often than of noise, of every class."""
    res = _example("gan").main(tmp_path)
    assert res["samples"] >= 0.25 and res["samples"] >= res["noise"] + 0.15
    assert all(c > 0 for c in res["classes"])


def test_translator_learns_to_copy(tmp_path):
    """specs/transformer.arch's translator (tied embeddings, padding masks, causal decoder) trained by archdsl
    train on a copy task, then its built model read back: teacher-forced next-token accuracy on held-out
    sequences (>= 99.9% measured for seeds 0-2, in about 5 s)."""
    rng = np.random.default_rng(0)
    for name, n in (("train", 2000), ("val", 200)):
        y = rng.integers(2, 16, (n, 6))  # 0 is padding, 1 begins a target
        np.savez(tmp_path / f"{name}.npz", src_ids=y, tgt_ids=np.concatenate([np.ones((n, 1), np.int64), y[:, :-1]], 1),
                 labels=y)
    spec = str(ROOT / "specs/transformer.arch")
    small = [a for d in ("d_model=32", "nhead=2", "num_encoder_layers=1", "num_decoder_layers=1",
                         "dim_feedforward=64", "src_vocab=16", "tgt_vocab=16", "pdrop=0.0") for a in ("-D", d)]
    assert main(["train", spec, "--model", "translator", *small, "--data", str(tmp_path / "train.npz"),
                 "--epochs", "6", "--batch-size", "32", "--lr", "3e-3", "-o", str(tmp_path / "w.npz"), "--quiet"]) == 0
    assert main(["build", spec, "--model", "translator", *small, "--weights", str(tmp_path / "w.npz"),
                 "-o", str(tmp_path / "t.onnx")]) == 0
    with np.load(tmp_path / "val.npz") as z:
        feeds, labels = {"src_ids": z["src_ids"], "tgt_ids": z["tgt_ids"]}, z["labels"]
    logits = runtime.session(tmp_path / "t.onnx", "cpu").run(None, feeds)[0]
    assert (logits.argmax(-1) == labels).mean() >= 0.99
