"""Micro-benchmarks behind archdsl's lowering choices, on onnxruntime CPU: each fused ONNX op against
the decomposition archdsl would emit otherwise, alternated round by round (median ratio). The bench
prints them so the choices can be re-checked on another machine or onnxruntime version."""

from __future__ import annotations

import math
import statistics

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .latency import alternate, make_session
from .report import error_text

__all__ = ["measure_choices"]


def _session(nodes, inputs, outputs, inits, opset: int, threads: int, value_info=()):
    ops = [helper.make_opsetid("", opset)]
    g = helper.make_graph(nodes, "choice", inputs, outputs, initializer=inits, value_info=list(value_info))
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = helper.find_min_ir_version_for(ops)
    return make_session(m.SerializeToString(), threads)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _c(name, v):
    return numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


def _gelu(approx: str, opset: int):
    """After a bias Add, as in every MLP: onnxruntime fuses Add + Gelu (either form) into one kernel, so
    the isolated op would mislead (alone, the erf Gelu measured 1.9x its decomposition on 2 threads, while
    after the Add both run as the same fused kernel)."""
    x = [_vi("x0", ["B", "T", 3072])]
    add = helper.make_node("Add", ["x0", "bias"], ["x"])
    y = [_vi("y", ["B", "T", 3072])]
    bias = _c("bias", np.random.default_rng(1).standard_normal(3072))
    fused = ([add, helper.make_node("Gelu", ["x"], ["y"], approximate=approx)], [bias])
    if approx == "tanh":
        dec = [add, helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x2", "x"], ["x3"]),
               helper.make_node("Mul", ["x3", "k"], ["a"]), helper.make_node("Add", ["x", "a"], ["b"]),
               helper.make_node("Mul", ["b", "s"], ["c"]), helper.make_node("Tanh", ["c"], ["t"]),
               helper.make_node("Add", ["t", "one"], ["t1"]), helper.make_node("Mul", ["x", "t1"], ["m"]),
               helper.make_node("Mul", ["m", "half"], ["y"])]
        inits = [bias, _c("k", 0.044715), _c("s", math.sqrt(2 / math.pi)), _c("one", 1.0), _c("half", 0.5)]
    else:
        dec = [add, helper.make_node("Div", ["x", "r2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
               helper.make_node("Add", ["e", "one"], ["t1"]), helper.make_node("Mul", ["x", "t1"], ["m"]),
               helper.make_node("Mul", ["m", "half"], ["y"])]
        inits = [bias, _c("r2", math.sqrt(2)), _c("one", 1.0), _c("half", 0.5)]
    return x, y, fused, (dec, inits), {"x0": np.random.default_rng(0).standard_normal((1, 128, 3072), np.float32)}


def _linear(opset: int):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((768, 3072)) * 0.02).astype(np.float32)
    b = np.zeros(3072, np.float32)
    x, y = [_vi("x", ["B", "T", 768])], [_vi("y", ["B", "T", 3072])]
    mm = ([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
          [_c("w", w), _c("b", b)])
    gemm = ([helper.make_node("Reshape", ["x", "s1"], ["x2"]), helper.make_node("Gemm", ["x2", "w", "b"], ["g"]),
             helper.make_node("Shape", ["x"], ["sh"], end=2), helper.make_node("Concat", ["sh", "n"], ["s2"], axis=0),
             helper.make_node("Reshape", ["g", "s2"], ["y"])],
            [_c("w", w), _c("b", b), numpy_helper.from_array(np.array([-1, 768]), "s1"),
             numpy_helper.from_array(np.array([3072]), "n")])
    return x, y, mm, gemm, {"x": rng.standard_normal((1, 128, 768), np.float32)}


def _layernorm(opset: int):
    x, y = [_vi("x", ["B", "T", 768])], [_vi("y", ["B", "T", 768])]
    g, b = _c("g", np.ones(768)), _c("b", np.zeros(768))
    fused = ([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)], [g, b])
    if opset >= 18:  # ReduceMean's axes became an input at 18 (an attribute before: --opset 17 failed here)
        axes, mean = [numpy_helper.from_array(np.array([-1]), "ax")], lambda i, o: helper.make_node(
            "ReduceMean", [i, "ax"], [o])
    else:
        axes, mean = [], lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=[-1])
    dec = ([mean("x", "mu"), helper.make_node("Sub", ["x", "mu"], ["d"]),
            helper.make_node("Mul", ["d", "d"], ["d2"]), mean("d2", "var"),
            helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
            helper.make_node("Div", ["d", "sd"], ["n"]), helper.make_node("Mul", ["n", "g"], ["ng"]),
            helper.make_node("Add", ["ng", "b"], ["y"])], [g, b, *axes, _c("eps", 1e-5)])
    return x, y, fused, dec, {"x": np.random.default_rng(0).standard_normal((1, 128, 768), np.float32)}


def _rmsnorm(opset: int):
    """As archdsl's fallback writes it (rms_norm below opset 23): x * 1/sqrt(mean(x*x) + eps) * weight."""
    x, y = [_vi("x", ["B", "T", 768])], [_vi("y", ["B", "T", 768])]
    g = _c("g", np.random.default_rng(1).random(768))
    fused = ([helper.make_node("RMSNormalization", ["x", "g"], ["y"], axis=-1, epsilon=1e-6)], [g])
    dec = ([helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("ReduceMean", ["x2", "ax"], ["ms"]),
            helper.make_node("Add", ["ms", "eps"], ["me"]), helper.make_node("Sqrt", ["me"], ["rms"]),
            helper.make_node("Reciprocal", ["rms"], ["inv"]), helper.make_node("Mul", ["x", "inv"], ["n"]),
            helper.make_node("Mul", ["n", "g"], ["y"])],
           [g, numpy_helper.from_array(np.array([-1]), "ax"), _c("eps", 1e-6)])
    return x, y, fused, dec, {"x": np.random.default_rng(0).standard_normal((1, 128, 768), np.float32)}


def _attention(opset: int):
    shp = ["B", 12, "T", 64]
    x = [_vi(n, shp) for n in "qkv"]
    y = [_vi("y", shp)]
    fused = ([helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)], [])
    t = 128
    causal = np.where(np.tril(np.ones((t, t), bool)), 0, -np.inf)  # added, as archdsl's decomposition does
    dec = ([helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["s0"]), helper.make_node("Mul", ["s0", "sc"], ["s"]),
            helper.make_node("Add", ["s", "causal"], ["sm"]),
            helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["y"])],
           [_c("sc", 1 / 8.0), _c("causal", causal)])
    rng = np.random.default_rng(0)
    return x, y, fused, dec, {n: rng.standard_normal((1, 12, t, 64), np.float32) for n in "qkv"}


def _channel_scale(opset: int):
    """A conv's map scaled per channel by a gate computed from it (squeeze-excitation), then another conv:
    the gate upsampled to the map's size first (expand_channel_scale; onnxruntime's CPU keeps the blocked
    conv layout) against the broadcast Mul (it reorders the map out to NCHW and back)."""
    c, hw = 96, 56
    rng = np.random.default_rng(0)
    w1, w2 = (_c(n, rng.standard_normal((c, c, 1, 1)) * 0.1) for n in ("w1", "w2"))
    x, y = [_vi("x", ["B", c, hw, hw])], [_vi("y", ["B", c, hw, hw])]
    gate = [helper.make_node("Conv", ["x", "w1"], ["h"]), helper.make_node("GlobalAveragePool", ["h"], ["p"]),
            helper.make_node("Sigmoid", ["p"], ["s"])]
    up = helper.make_node("Resize", ["s", "", "sc"], ["su"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    expanded = (gate + [up, helper.make_node("Mul", ["h", "su"], ["m"]), helper.make_node("Conv", ["m", "w2"], ["y"])],
                [w1, w2, _c("sc", [1, 1, hw, hw])], [_vi("su", ["B", c, hw, hw])])  # named B, as archdsl writes it
    broadcast = (gate + [helper.make_node("Mul", ["h", "s"], ["m"]), helper.make_node("Conv", ["m", "w2"], ["y"])],
                 [w1, w2])
    return x, y, expanded, broadcast, {"x": rng.standard_normal((1, c, hw, hw)).astype(np.float32)}


def measure_choices(opset: int, threads: int = 2, rounds: int = 30) -> list[dict]:
    """One row per choice: fused-op ms, decomposition ms, median ratio fused/decomposed, the two outputs' largest
    difference (they compute the same thing, or the ratio compares nothing), at `opset` (and
    Attention also at 24, the newest opset onnxruntime 1.32 has an Attention kernel for)."""
    from ..ops._kernels import runs_natively
    cases = [("Bias + Gelu(tanh) vs Tanh decomposition", "[1, 128, 3072]", lambda o: _gelu("tanh", o), opset,
              "Gelu (opset 20+)"),
             ("Bias + Gelu(erf) vs Erf decomposition", "[1, 128, 3072]", lambda o: _gelu("none", o), opset,
              "Gelu (opset 20+)"),
             ("LayerNormalization vs ReduceMean decomposition", "[1, 128, 768]", _layernorm, opset,
              "LayerNormalization"),
             ("RMSNormalization vs ReduceMean decomposition", "[1, 128, 768]", _rmsnorm, opset,
              "RMSNormalization (opset 23+)"),
             ("Reshape+Gemm+Reshape vs MatMul+Add (3-D linear)", "[1, 128, 768] x [768, 3072]", _linear, opset,
              "MatMul+Add (fewer nodes)"),
             ("Resize(gate) + Mul vs broadcast Mul (SE after a conv)", "[1, 96, 56, 56] * [1, 96, 1, 1]",
              _channel_scale, opset, "Resize + Mul (expand_channel_scale)")]
    cases += [(f"Attention vs MatMul/Softmax (opset {o})", "[1, 12, 128, 64] causal", _attention, o,
               "Attention" if runs_natively("Attention", o) else "MatMul/Softmax (no Attention kernel)")
              for o in sorted({min(24, opset), opset}) if o >= 23]
    rows = []
    for title, shape, make, o, emits in cases:
        if "Gelu" in title and o < 20 or "RMS" in title and o < 23:
            continue
        try:
            x, y, fused, dec, feeds = make(o)
            a = _session(fused[0], x, y, fused[1], o, threads, *fused[2:])  # [value_info] last, if any
            b = _session(dec[0], x, y, dec[1], o, threads, *dec[2:])
            ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
            diff = float(np.max(np.abs(ya - yb)))
            if not diff <= 1e-4 * max(1.0, float(np.max(np.abs(yb)))):  # a ratio of two different computations
                raise ValueError(f"the two sides' outputs differ by {diff:.3g}")
            times = alternate({"fused": (a, feeds), "dec": (b, feeds)}, rounds)
        except Exception as e:  # noqa: BLE001 - one choice that cannot run is a row saying so, not a lost run
            rows.append({"choice": title, "shape": shape, "opset": o, "emits": emits, "error": error_text(e)})
            continue
        rows.append({"choice": title, "shape": shape, "opset": o, "fused_ms": statistics.median(times["fused"]),
                     "decomposed_ms": statistics.median(times["dec"]),
                     "ratio": statistics.median(p / q for p, q in zip(times["fused"], times["dec"])),
                     "emits": emits, "max_abs_diff": diff})
    return rows
