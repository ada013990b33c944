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
            derived = "fc.weight.T" if "T" in shape else "fc.weight.folded"
            assert derived in {t.name for t in m.graph.initializer}, "the pass made its parameter"
            assert "BatchNormalization" not in {n.op_type for n in m.graph.node}
        (outs[level],) = runtime.session(m).run(None, {"x": x})
    assert outs[0].reshape(-1)[0] == pytest.approx(1e-9, rel=1e-6)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-9, atol=0)


def test_a_float64_batchnorm_fold_adds_eps_in_float64():
    """A variance of 0 leaves eps alone under the root: eps as a float32 (1e-5 + 2.5e-14) moved -O2's
    outputs by 1e-8 relative to -O0's."""
    src = "model m(x: float64[B, 3]) -> y {\n    y = x -> linear(2, bias=false) as c -> batchnorm as bn\n}\n"
    r = np.random.default_rng(0)
    weights = {"c.weight": r.standard_normal((2, 3)), "bn.weight": np.ones(2), "bn.bias": np.zeros(2),
               "bn.running_mean": np.zeros(2), "bn.running_var": np.zeros(2)}
    x = r.standard_normal((4, 3))
    y0, y2 = (runtime.session(archdsl.compile_source(src, opt_level=level, weights=weights)).run(None, {"x": x})[0]
              for level in (0, 2))
    np.testing.assert_allclose(y2, y0, rtol=1e-13, atol=0)


def test_a_folded_float16_weight_beyond_its_range_is_a_diagnostic(tmp_path):
    """A float16 conv folded with its BatchNorm (300 * 10 / sqrt(1e-3)) exceeds 65504: -O2 wrote an inf
    weight with only numpy's overflow warning. -O1 keeps the two and builds; a weights file whose float32
    value does not fit float16 is refused the same way."""
    src = "model m(x: float16[B, 1, 4, 4]) -> y {\n    y = x -> conv2d(1, 1, bias=false) as c -> batchnorm as bn\n}\n"
    weights = {"c.weight": np.full((1, 1, 1, 1), 300, np.float32), "bn.weight": np.full(1, 10, np.float32),
               "bn.bias": np.zeros(1, np.float32), "bn.running_mean": np.zeros(1, np.float32),
               "bn.running_var": np.full(1, 1e-3, np.float32)}
    np.savez(tmp_path / "w.npz", **weights)
    with pytest.raises(archdsl.ArchError, match=r"'c.weight.folded': the weight an -O2 pass derives .* beyond "
                                                r"float16's range \(65504\); onnxruntime folds a conv's batchnorm "
                                                r"the same way when it loads the model"):
        archdsl.compile_source(src, weights=str(tmp_path / "w.npz"))
    m = archdsl.compile_source(src, opt_level=1, weights=str(tmp_path / "w.npz"))
    assert all(np.isfinite(np.frombuffer(t.raw_data, np.float16)).all() for t in m.graph.initializer)
    # what it says, run: onnxruntime's own fold of -O1's model overflows (inf) unless turned off (review108 hunt),
    # and the conv and batchnorm kept in float32 give the number at every level
    import onnxruntime as ort
    x = np.full((1, 1, 4, 4), 1e-3, np.float16)
    want = 1e-3 * 300 * 10 / np.sqrt(1e-3 + 1e-5)
    off = ort.SessionOptions()
    off.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert not np.isfinite(runtime.session(m).run(None, {"x": x})[0]).any()
    for sess in (ort.InferenceSession(m.SerializeToString(), off, providers=["CPUExecutionProvider"]),
                 ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"],
                                      disabled_optimizers=["ConvBNFusion"])):
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=2e-3)
    kept = ('model m(x: float16[B, 1, 4, 4]) -> y {\n    y = cast(cast(x, "float32") -> conv2d(1, 1, bias=false) as c '
            '-> batchnorm as bn, "float16")\n}\n')
    for level in (0, 1, 2):
        np.testing.assert_allclose(runtime.session(archdsl.compile_source(kept, opt_level=level, weights=weights))
                                   .run(None, {"x": x})[0], want, rtol=2e-3)
    linear = src.replace("[B, 1, 4, 4]", "[B, 1]").replace("conv2d(1, 1, bias=false)", "linear(1, bias=false)")
    with pytest.raises(archdsl.ArchError, match=r"beyond float16's range \(65504\); build with -O1, or "
                                                r"--disable-pass fold_batchnorm$"):  # onnxruntime folds no Gemm's
        archdsl.compile_source(linear, weights={**weights, "c.weight": np.full((1, 1), 300, np.float32)})
    m = archdsl.compile_source(linear, opt_level=1, weights={**weights, "c.weight": np.full((1, 1), 300, np.float32)})
    np.testing.assert_allclose(runtime.session(m).run(None, {"x": x[:, :, 0, 0]})[0], want, rtol=2e-3)
    np.savez(tmp_path / "big.npz", **{**weights, "c.weight": np.full((1, 1, 1, 1), 1e5, np.float32)})
    with pytest.raises(archdsl.ArchError, match="the value given reaches 100000, beyond float16's range"):
        archdsl.compile_source(src, opt_level=0, weights=str(tmp_path / "big.npz"))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_a_float64_weight_beyond_the_models_range_is_a_diagnostic(dtype, tmp_path):
    """1e40 was cast to float32 first, became inf there with only numpy's warning, and the check then saw
    no finite value to complain about."""
    src = f"model m(x: {dtype}[B, 4]) -> y {{\n    y = x -> linear(2, bias=false) as fc\n}}\n"
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.full((2, 4), 1e40, np.float64)})
    with pytest.raises(archdsl.ArchError, match=f"'fc.weight': the value given reaches 1e\\+40, beyond "
                                                f"{dtype}'s range"):
        archdsl.compile_source(src, opt_level=0, weights=str(tmp_path / "w.npz"))


_BN = {"bn.weight": np.full(1, 10, np.float32), "bn.bias": np.zeros(1, np.float32),
       "bn.running_mean": np.zeros(1, np.float32), "bn.running_var": np.full(1, 1e-3, np.float32)}


@pytest.mark.parametrize("conv, dims", [("conv1d", 1), ("conv3d", 3), ("conv_transpose2d", 2)])
def test_a_folded_float16_conv_of_any_rank_sends_the_user_past_onnxruntimes_fold(conv, dims):
    """Every conv onnxruntime's ConvBNFusion folds at load gets that advice: -O1's model is inf there too."""
    shape = ", ".join(["4"] * dims)
    src = (f"model m(x: float16[B, 1, {shape}]) -> y {{\n    y = x -> {conv}(1, 1, bias=false) as c -> batchnorm "
           "as bn\n}\n")
    weights = {**_BN, "c.weight": np.full((1, 1) + (1,) * dims, 300, np.float32)}
    with pytest.raises(archdsl.ArchError, match=r"beyond float16's range \(65504\); onnxruntime folds a conv's "
                                                r"batchnorm the same way"):
        archdsl.compile_source(src, weights=weights)
    m = archdsl.compile_source(src, opt_level=1, weights=weights)  # what the advice says: -O1 overflows too
    x = np.full((1, 1) + (4,) * dims, 1e-3, np.float16)
    assert not np.isfinite(runtime.session(m).run(None, {"x": x})[0]).any()
