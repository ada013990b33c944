"""Ops whose ONNX form changes at an opset are built and run at every opset archdsl supports: a limit set one
too high or too low was invisible where only 17 and the newest were tested (ReduceMean takes axes as an input
from 18, GridSample's modes are renamed at 20)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime
from archdsl.driver import MIN_OPSET

OPSETS = list(range(MIN_OPSET, runtime.newest_opset() + 1))
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("opset", OPSETS)
def test_reductions_build_and_run_at_every_opset(opset):
    src = "model m(x: float32[B, 8, 3]) -> (a, b, c) {\n    a = mean(x, dim=1)\n    b = sum(x, dim=(1, 2))\n" \
          "    c = amax(x, dim=-1)\n}\n"
    x = RNG.standard_normal((2, 8, 3)).astype(np.float32)
    a, b, c = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x})
    np.testing.assert_allclose(a, x.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, x.sum((1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(c, x.max(-1))


@pytest.mark.parametrize("opset", OPSETS)
def test_grid_sample_builds_and_runs_at_every_opset(opset):
    torch = pytest.importorskip("torch")
    src = "model m(x: float32[B, 2, 5, 6], g: float32[B, 4, 3, 2]) -> y {\n" \
          "    y = grid_sample(x, g, mode=\"bilinear\", align_corners=false)\n}\n"
    x = RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)
    g = RNG.uniform(-1.1, 1.1, (1, 4, 3, 2)).astype(np.float32)
    (y,) = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x, "g": g})
    want = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(g), mode="bilinear",
                                           align_corners=False)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-6)
