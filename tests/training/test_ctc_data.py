"""Data a spec's ctc_loss reads directly is checked before training as labels are: a target past the classes
or a target length past the padding failed inside onnxruntime naming no example; a negative length trained."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main

_SPEC = ("model c(x: float32[B, 6, 4], t: int64[B, 3], n: int64[B], k: int64[B]) -> loss {\n"
         "    lp = x -> linear(5) as fc -> log_softmax(dim=-1)\n"
         "    loss = ctc_loss(permute(lp, [1, 0, 2]), t, n, k)\n}\n")


def _data(**changes) -> dict:
    rng = np.random.default_rng(0)
    d = {"x": rng.standard_normal((8, 6, 4)).astype(np.float32), "t": rng.integers(1, 5, (8, 3)),
         "n": np.full(8, 6), "k": np.full(8, 2)}
    d["t"][:, 2] = -1  # padding past each target's length: any value, as torch
    for key, (idx, v) in changes.items():
        d[key][idx] = v
    return d


@pytest.mark.parametrize("changes, words", [
    ({"t": ((3, 0), 5)}, "'t'[3, 0] is 5, but the ctc_loss it feeds (ctc_loss_0) takes a class of its log_probs, 0..4"),
    ({"k": (2, 4)}, "'k'[2] is 4, but the ctc_loss it feeds (ctc_loss_0) takes a target length, 0..3"),
    ({"k": (2, -1)}, "'k'[2] is -1"),
    ({"n": (1, 7)}, "'n'[1] is 7, but the ctc_loss it feeds (ctc_loss_0) takes an input length, 0..6"),
])
def test_ctc_data_out_of_range_is_named(tmp_path, capsys, changes, words):
    spec = tmp_path / "c.arch"
    spec.write_text(_SPEC)
    np.savez(tmp_path / "ok.npz", **_data())
    np.savez(tmp_path / "bad.npz", **_data(**changes))
    args = ["train", str(spec), "--epochs", "1", "-o", str(tmp_path / "w.npz"), "--quiet", "--data"]
    assert main(args + [str(tmp_path / "ok.npz")]) == 0
    capsys.readouterr()
    assert main(args + [str(tmp_path / "bad.npz")]) == 1
    assert words in " ".join(capsys.readouterr().err.split())
