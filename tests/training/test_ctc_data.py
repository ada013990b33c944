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


def test_an_alignment_ctc_cannot_make_is_named_before_training(tmp_path, capsys):
    """An input length too short for its target (plus a blank between equal neighbours) is an infinite loss at
    any weights, torch's too: training stopped mid-epoch blaming the learning rate (review95, review96 hunts).
    Named before training; zero_infinity=true trains through it."""
    spec = tmp_path / "c.arch"
    spec.write_text(_SPEC)
    d = _data()
    d["t"][5, :2], d["n"][5] = [3, 3], 2  # [3, 3] needs 3 frames: 2 cannot hold it
    np.savez(tmp_path / "bad.npz", **d)
    args = ["train", str(spec), "--epochs", "1", "-o", str(tmp_path / "w.npz"), "--quiet", "--data",
            str(tmp_path / "bad.npz")]
    assert main(args) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "example 5's input length 2 cannot hold its target of length 2: CTC needs 3 frames" in said, said
    assert "zero_infinity=true" in said
    spec.write_text(_SPEC.replace("ctc_loss(permute(lp, [1, 0, 2]), t, n, k)",
                                  "ctc_loss(permute(lp, [1, 0, 2]), t, n, k, zero_infinity=true)"))
    assert main(args) == 0


def test_the_frames_ctc_needs_are_where_torchs_loss_turns_infinite():
    """check_ctc_alignments' count against torch: inf exactly where an input length is below the target's length
    plus its equal neighbours, over random targets with many repeats."""
    torch = pytest.importorskip("torch")
    from archdsl import driver
    from archdsl.diagnostics import ArchError
    from archdsl.training.data import check_ctc_alignments
    g = driver.elaborate_model(driver.load(text=_SPEC, file="c.arch"), "c")
    rng = np.random.default_rng(1)
    for _ in range(200):
        t = rng.integers(1, 3, (1, 3))  # two classes: equal neighbours are common
        k, n = rng.integers(0, 4, 1), rng.integers(0, 7, 1)
        lp = torch.randn(6, 1, 5).log_softmax(-1)
        inf = torch.isinf(torch.nn.functional.ctc_loss(lp, torch.from_numpy(t), torch.from_numpy(n),
                                                       torch.from_numpy(k), reduction="none"))[0].item()
        try:
            check_ctc_alignments("d.npz", {"t": t, "n": n, "k": k}, g)
            refused = False
        except ArchError:
            refused = True
        assert refused == inf, (t, n, k)
