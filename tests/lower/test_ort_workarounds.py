"""Emitted forms that keep clear of onnxruntime faults (lower/ort_workarounds.py). Each model runs in a process of
its own: the fault was a segfault, which would take the test run with it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import archdsl
from archdsl import runtime
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


_TWIN = """
import sys, numpy as np, archdsl
from archdsl import runtime
src, level = sys.argv[1], int(sys.argv[2])
outs = []
for dt in ("float16", "float32"):
    sess = runtime.session(archdsl.compile_source(src.replace("DT", dt), opt_level=level), "cpu", threads=1)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 3 for d in i.shape]).astype(dt)
             for i in sess.get_inputs()}
    outs.append([y.astype(np.float64) for y in sess.run(None, feeds)])
print(max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-3)) for a, b in zip(*outs)))
"""


@pytest.mark.parametrize("src", [
    # a Transpose the graph outputs as well stays where it is (moved after the MatMul, 't' was made by no node)
    "model m(x: DT[B, T, 5]) -> (t, y) {\n    t = transpose(x, 0, 1)\n    y = linear(t, 3) as fc\n}\n",
    # a Transpose another op reads is left alone (its Add was rewritten to a MatMul)
    "model m(x: DT[B, T, 5]) -> y {\n    y = transpose(x, 0, 1) + x[:, 0]\n}\n",
    # a MatMul reading the Transpose on both sides is left alone (its right side was made by no node)
    "model m(x: DT[4, 4]) -> y {\n    t = transpose(x, 0, 0)\n    y = t @ t\n}\n",
    # a constant matrix on the right (folded at -O2: its rank is the initializer's; left alone, a segfault)
    "model m(x: DT[B, T, 5]) -> y {\n    w = cast(tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], "
    "[9.0, 1.0]]), \"DT\")\n    y = transpose(x, 0, 1) @ w\n}\n",
])
@pytest.mark.parametrize("level", [0, 2])
def test_a_float16_transpose_the_rewrite_leaves_alone_runs_as_its_float32_twin(src, level):
    r = subprocess.run([sys.executable, "-c", _TWIN, src, str(level)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert float(r.stdout.strip().splitlines()[-1]) < 2e-2, r.stdout


@pytest.mark.parametrize("level", [0, 2])
def test_only_the_square_of_a_centred_cast_is_written_as_a_product(level):
    """pow(d, 3.0) of the same d stays a Pow: d * d is its square alone."""
    src = ("model m(x: int64[B, 4]) -> y {\n    t = cast(x, \"float32\")\n"
           "    d = t - mean(t, -1, keepdim=true)\n    y = pow(d, 3.0)\n}\n")
    x = np.array([[1, 2, 3, 5], [0, -1, 4, 4]])
    y = runtime.session(archdsl.compile_source(src, opt_level=level)).run(None, {"x": x})[0]
    t = x.astype(np.float64)
    d = t - t.mean(-1, keepdims=True)
    np.testing.assert_allclose(y, d ** 3, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("level", [0, 2])
def test_the_square_written_as_a_product_leaves_no_unread_exponent(level):
    """The Pow's 2 that d * d no longer reads is left out of the file (onnxruntime warns of each unread
    initializer at every load)."""
    src = ("model m(x: int64[B, 4]) -> y {\n    t = cast(x, \"float32\")\n"
           "    d = t - mean(t, -1, keepdim=true)\n    y = mean(pow(d, 2.0), -1, keepdim=true)\n}\n")
    model = archdsl.compile_source(src, opt_level=level)
    read = {i for n in model.graph.node for i in n.input}
    assert [t.name for t in model.graph.initializer if t.name not in read] == []


def test_a_dead_float16_transpose_stays_at_O0_as_the_warning_says():
    """-O0 keeps a result that reaches no output, and says so: the rewrite of another Transpose dropped a dead one
    with no readers (all() of none is true)."""
    src = ("model m(x: float16[B, T, 5]) -> y {\n    t = transpose(x, 0, 1)\n"
           "    y = linear(transpose(x, 0, 1), 3) as fc\n}\n")
    with pytest.warns(archdsl.ArchWarning, match="'t' \\(transpose\\) is computed but reaches no output: the built "
                                                 "model keeps it"):
        model = archdsl.compile_source(src, opt_level=0)
    assert [n.op_type for n in model.graph.node if list(n.input) == ["x"]] == ["Transpose"]


@pytest.mark.parametrize("level", [0, 2])
def test_the_rewrites_keep_to_the_graphs_onnxruntime_faulted_on(level):
    """Scope (graph only: the numbers are the same either way): a float32 Transpose into a MatMul keeps its order
    (onnxruntime fuses it into a FusedMatMul), and a hand-written layer norm over no Cast, or a square of a value
    no mean was taken from, keeps its Pow (LayerNormFusion may fuse it)."""
    def ops(src):
        return [n.op_type for n in archdsl.compile_source(src, opt_level=level).graph.node]
    got = ops("model m(x: float32[B, T, 5]) -> y {\n    y = linear(transpose(x, 0, 1), 3) as fc\n}\n")
    assert got.index("MatMul") > [i for i, o in enumerate(got) if o == "Transpose"][0]
    assert "Pow" in ops("model m(x: float32[B, 4]) -> y {\n    d = x - mean(x, -1, keepdim=true)\n"
                        "    y = d / sqrt(mean(pow(d, 2.0), -1, keepdim=true) + 1e-05)\n}\n")
    for centre in ("amax(t, -1, keepdim=true)", "mean(t * 2.0, -1, keepdim=true)"):  # no mean, or not t's
        assert "Pow" in ops(f"model m(x: int64[B, 4]) -> y {{\n    t = cast(x, \"float32\")\n"
                            f"    y = pow(t - {centre}, 2.0)\n}}\n")
