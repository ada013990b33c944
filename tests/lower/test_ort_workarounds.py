"""Emitted forms that keep clear of onnxruntime faults (lower/ort_workarounds.py). Each model runs in a process of
its own: the fault was a segfault, which would take the test run with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from archdsl.runtime import newest_opset

_RUN = """
import sys, numpy as np, archdsl
from archdsl import runtime
src, opset, level = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
feeds = {"x": rng.standard_normal((2, 3, 5)), "v": rng.standard_normal(5), "w": rng.standard_normal((3, 5, 4)),
         "s": rng.standard_normal((2, 5, 5))}
ys = []
for dt in ("float16", "float32"):
    model = archdsl.compile_source(src.replace("DT", dt), opset=opset, opt_level=level)
    sess = runtime.session(model, "cpu", threads=1)
    given = {i.name: feeds[i.name].astype(dt) for i in sess.get_inputs()}
    ys.append(sess.run(None, given)[0].astype(np.float64))
print(np.abs(ys[0] - ys[1]).max() / np.abs(ys[1]).max())
"""


@pytest.mark.parametrize("body", [
    "y = linear(transpose(x, 0, 1), 3) as fc",
    "y = x -> lstm(16) as rnn -> linear(5) as head",
    "y = x -> gru(2, num_layers=2, bidirectional=true) as rn -> multihead_attention(embed_dim=4, num_heads=4) as mh",
    "y = x -> gru(4) as rn -> linear(3) as fc",
    "t = transpose(x, 0, 1)\n    y = linear(t, 3) as q + linear(t, 3) as k",  # two readers: each rewritten
    # right sides that are no matrix broadcast otherwise: left alone (a rewrite failed or gave wrong numbers: review78)
    "q = x -> linear(4) as wq -> reshape([B, T, 2, 2]) -> permute([0, 2, 1, 3])\n    y = q @ q.T -> softmax",
    "y = transpose(x, 0, 1) @ v",
    "y = transpose(x, 0, 1) @ w",
    "y = linear(transpose(s, 1, 2), 5) as fc",  # moves the last axis: left alone (rewritten, wrong numbers)
])
@pytest.mark.parametrize("opset, level", [(17, 2), (newest_opset(), 0), (newest_opset(), 2)])  # 28 with onnx 1.23
def test_a_float16_transpose_into_a_matmul_runs_as_its_float32_twin(body, opset, level):
    """onnxruntime 1.32's MatmulTransposeFusion crashed creating the session of a float16 Transpose (last axis
    kept) into a MatMul: a time-major recurrent layer or transpose(x, 0, 1) before a linear or an attention
    (difffuzz4 hunt). The MatMul goes first now; the output is the float32 model's to float16 rounding."""
    inputs = ("s: DT[B, 5, 5]" if "(s," in body else "x: DT[B, T, 5]") + (
        ", v: DT[5]" if "@ v" in body else ", w: DT[T, 5, 4]" if "@ w" in body else "")
    src = f"model m({inputs}) -> y {{\n    {body}\n}}\n"
    r = subprocess.run([sys.executable, "-c", _RUN, src, str(opset), str(level)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert float(r.stdout.strip().splitlines()[-1]) < 2e-2, r.stdout


@pytest.mark.parametrize("dtype", ["int64", "float16", "float64"])
@pytest.mark.parametrize("level", [0, 2])
def test_a_hand_written_layer_norm_over_a_cast_input_loads_and_is_numpys(dtype, level):
    """onnxruntime's LayerNormFusion fused `d / sqrt(mean(d ** 2) + eps) * g + b` of d = t - mean(t), t a Cast's
    output, into a LayerNormalization reading the Cast's source, and refused the model (INVALID_GRAPH for int64,
    "T bound to different types" for float16: review106 hunt). The square is written d * d there."""
    import numpy as np

    import archdsl
    from archdsl import runtime
    src = (f"model m(x: {dtype}[B, 4]) -> y {{\n    t = cast(x, \"float32\")\n"
           "    g = parameter([4], init=\"ones\") as g\n    b = parameter([4]) as b\n"
           "    d = t - mean(t, -1, keepdim=true)\n"
           "    y = d / sqrt(mean(pow(d, 2.0), -1, keepdim=true) + 1e-05) * g + b\n}\n")
    model = archdsl.compile_source(src, opt_level=level)
    assert "Pow" not in {n.op_type for n in model.graph.node}
    x = np.array([[1, 2, 3, 5], [0, -1, 4, 4]]).astype(dtype)
    y = runtime.session(model).run(None, {"x": x})[0]
    t = x.astype(np.float64)
    d = t - t.mean(-1, keepdims=True)
    np.testing.assert_allclose(y, d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5), rtol=1e-5, atol=1e-6)
