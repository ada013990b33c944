"""--clip-grad-norm at sizes past a float type's largest: the step's constant is capped at float32's largest
(1e300 clips nothing, as torch's inf; a numpy overflow warning otherwise), and not below it (a norm of 1e5 is
torch's 1e5, not float16's 65504): mutnew6."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from archdsl.cli import main


def _lin(tmp_path, scale):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 4)) * scale).astype(np.float32)
    w0 = rng.standard_normal((2, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=np.zeros((8, 2), np.float32))
    np.savez(tmp_path / "w0.npz", **{"fc.weight": w0})
    (tmp_path / "lin.arch").write_text("model lin(x: float32[B, 4]) -> y {\n"
                                       "    y = x -> linear(2, bias=false) as fc\n}\n")
    return x, w0, ["train", str(tmp_path / "lin.arch"), "--data", str(tmp_path / "d.npz"), "--loss", "mse",
                   "--optimizer", "sgd", "--lr", "1e-3", "--batch-size", "8", "--epochs", "1", "--weights",
                   str(tmp_path / "w0.npz"), "-o", str(tmp_path / "w.npz"), "--quiet"]


def test_a_clip_norm_past_float16s_largest_clips_to_itself(tmp_path):
    torch = pytest.importorskip("torch")
    x, w0, argv = _lin(tmp_path, 1e4)
    assert main([*argv, "--clip-grad-norm", "1e5"]) == 0
    lin = torch.nn.Linear(4, 2, bias=False)
    lin.weight.data = torch.from_numpy(w0.copy())
    torch.nn.functional.mse_loss(lin(torch.from_numpy(x)), torch.zeros(8, 2)).backward()
    torch.nn.utils.clip_grad_norm_(lin.parameters(), 1e5)
    want = w0 - 1e-3 * lin.weight.grad.numpy()
    np.testing.assert_allclose(np.load(tmp_path / "w.npz")["fc.weight"], want, rtol=1e-4)


def test_a_clip_norm_past_float32s_largest_builds_without_a_numpy_warning(tmp_path):
    _, _, argv = _lin(tmp_path, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main([*argv, "--clip-grad-norm", "1e300"]) == 0
