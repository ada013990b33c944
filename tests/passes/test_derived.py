"""Derived parameters (passes/derived.py) of float64 models are computed in float64: pretranspose_linear and
fold_batchnorm rounded them through float32, so -O2 lost what -O0 kept (1 + 1e-9 became 1)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime


@pytest.mark.parametrize("shape,tail", [("B, T, 2", ""), ("B, 2", " -> batchnorm as bn")])
def test_float64_weights_keep_their_precision_at_o2(shape, tail, tmp_path):
    """A 3-D linear gets a pre-transposed weight; a 2-D one followed by BatchNorm a folded one."""
    src = f"model m(x: float64[{shape}]) -> y {{\n    y = x -> linear(1, bias=false) as fc{tail}\n}}\n"
    weights = {"fc.weight": np.array([[1.0 + 1e-9, -1.0]])}
    if tail:
        weights.update({"bn.weight": np.ones(1), "bn.bias": np.zeros(1), "bn.running_mean": np.zeros(1),
                        "bn.running_var": np.ones(1) - 1e-5})  # eps 1e-5: the folded scale is exactly 1
    path = tmp_path / "w.npz"
    np.savez(path, **weights)
    x = np.ones((1, 3, 2) if "T" in shape else (1, 2))
    outs = {}
    for level in (0, 2):
        m = archdsl.compile_source(src, opt_level=level, weights=str(path))
        if level == 2:
            derived = "fc.weight.T" if "T" in shape else "fc.weight"
            assert derived in {t.name for t in m.graph.initializer}, "the pass made its parameter"
            assert "BatchNormalization" not in {n.op_type for n in m.graph.node}
        (outs[level],) = runtime.session(m).run(None, {"x": x})
    assert outs[0].reshape(-1)[0] == pytest.approx(1e-9, rel=1e-6)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-9, atol=0)
