"""An lstm's lengths= read from data: each in 1..T (torch's pack_padded_sequence refuses 0 and more than
T), checked by `archdsl train` before any step and by `archdsl run` for a given input; `run` draws random
ones in that range. onnxruntime ran a 0 silently and refused one past T mid-run, naming no example."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main

_SPEC = ("param T = 6\nmodel tag(ids: int64[B, T], lengths: int64[B]) -> logits {\n"
         "    logits = ids -> embedding(20, 8) as emb -> lstm(6, bidirectional=true, lengths=lengths) as lstm\n"
         "        -> linear(4) as head\n}\n")


@pytest.mark.parametrize("bad, words", [(0, "'lengths'[1] is 0"), (7, "'lengths'[1] is 7")])
def test_train_refuses_lengths_outside_one_to_t_before_any_step(tmp_path, capsys, bad, words):
    spec = tmp_path / "tag.arch"
    spec.write_text(_SPEC)
    rng = np.random.default_rng(0)
    lengths = np.array([6, bad, 3, 6, 2, 1, 6, 5])
    np.savez(tmp_path / "d.npz", ids=rng.integers(0, 20, (8, 6)), lengths=lengths, labels=rng.integers(0, 4, (8, 6)))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"d.npz: {words}, but the lstm it feeds (lstm) takes lengths 1..6, the time steps of its input " \
           "(1 out of range)" in err
    assert not (tmp_path / "w.npz").exists()
    lengths[1] = 4
    np.savez(tmp_path / "d.npz", ids=rng.integers(0, 20, (8, 6)), lengths=lengths, labels=rng.integers(0, 4, (8, 6)))
    assert main(argv) == 0


def test_run_draws_lengths_within_the_runs_steps_and_checks_given_ones(tmp_path, capsys):
    spec = tmp_path / "tag.arch"
    spec.write_text(_SPEC.replace("param T = 6\n", ""))  # T symbolic: its size is this run's
    for seed in range(3):
        assert main(["run", str(spec), "--batch", "16", "--dim", "T=3", "--seed", str(seed),
                     "--save", str(tmp_path / "o.npz")]) == 0
        drawn = np.load(tmp_path / "o.npz")["input:lengths"]
        assert drawn.min() >= 1 and drawn.max() <= 3 and len(set(drawn.tolist())) > 1  # were 0 or 1
    capsys.readouterr()
    np.save(tmp_path / "len.npy", np.array([3, 1, 2, 5]))
    assert main(["run", str(spec), "--batch", "4", "--dim", "T=4", "--input", f"lengths={tmp_path / 'len.npy'}"]) == 1
    assert "'lengths'[3] is 5, but the lstm it feeds (lstm) takes lengths 1..4" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "4", "--dim", "T=5", "--input", f"lengths={tmp_path / 'len.npy'}"]) == 0


def test_lengths_feeding_layers_of_different_steps_are_held_to_the_fewest(tmp_path, capsys):
    """One lengths input read by an lstm over 5 steps and one over 10 was checked (and drawn) against the
    last layer's 10, and onnxruntime then refused a 7 mid-run."""
    spec = tmp_path / "two.arch"
    spec.write_text("model m(x: float32[B, 10, 4], x2: float32[B, 5, 4], L: int64[B]) -> (y, y2) {\n"
                    "    y = lstm(x2, lengths=L, hidden_size=3)\n    y2 = lstm(x, lengths=L, hidden_size=3)\n}\n")
    for seed in range(3):
        assert main(["run", str(spec), "--batch", "16", "--seed", str(seed), "--save", str(tmp_path / "o.npz")]) == 0
        assert np.load(tmp_path / "o.npz")["input:L"].max() <= 5
    capsys.readouterr()
    np.save(tmp_path / "L.npy", np.array([7, 1, 2, 3]))
    assert main(["run", str(spec), "--batch", "4", "--input", f"L={tmp_path / 'L.npy'}"]) == 1
    assert "'L'[0] is 7, but the lstm it feeds (lstm_0) takes lengths 1..5" in capsys.readouterr().err
