"""Does the installed onnxruntime run an ONNX op as its own kernel at a given opset?

Some newer ONNX ops are functions: a runtime without a kernel for that op version expands the function
body instead, often slower than archdsl's own decomposition. Measured with onnxruntime 1.32 on CPU, two
threads, [1, 12, 128, 64] causal: Attention has a kernel at opsets 23-24 (0.59 ms, against 0.63 ms for
MatMul/Softmax/MatMul with the causal mask added) but at 25+ runs as its function body (1.4 ms, 2x the
decomposition). Lowerings ask here before emitting such an op; the answer is probed once per (op, opset)
and cached."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..types import difference_bounds, is_formula

__all__ = ["attention_scale_fits", "never_empty", "runs_natively"]

_FLOAT32_MAX = 3.4028234663852886e38


@functools.cache
def runs_natively(op_type: str, opset: int, n_inputs: int = 3, rank: int = 4, **attrs) -> bool:
    """True when onnxruntime's CPU provider keeps `op_type` as one node (or when onnxruntime is absent)."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return True
    import os
    import tempfile
    shape = [1, 2, 4, 8][-rank:]
    ins = [f"i{k}" for k in range(n_inputs)]
    node = helper.make_node(op_type, ins, ["o"], **attrs)
    g = helper.make_graph([node], "probe", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ins],
                          [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    ops = [helper.make_opsetid("", opset)]
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = helper.find_min_ir_version_for(ops)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        so.optimized_model_filepath = path
        ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        import onnx
        nodes = onnx.load(path).graph.node
        return len(nodes) == 1 and nodes[0].op_type == op_type
    except Exception:  # noqa: BLE001 - not loadable at this opset: no kernel
        return False
    finally:
        os.unlink(path)


def attention_scale_fits(scale: float) -> bool:
    """onnxruntime's Attention takes the scale as a float32 attribute and refuses one <= 0: a scale positive as
    a Python float can be 0 in float32 (1e-50, or two factors 1e-30 multiplied by fuse_attention), or inf past
    float32's range (mutpasses2 hunt: the model failed to load)."""
    return math.isfinite(scale) and abs(scale) <= _FLOAT32_MAX and float(np.float32(scale)) > 0


def never_empty(*dims) -> bool:
    """No dim can be 0 at run time: onnxruntime's Attention kernel refuses an empty batch, query or key
    ("q_sequence_length > 0"), which the MatMul/Softmax decomposition computes. A plain symbol (B, T) is a
    model input's size, taken to be at least 1, and so is a sum of them with no negative part (a KV cache's
    keys, P+S: at least the queries' S, though P is 0 at the first step; kvcache hunt); another formula (T-1,
    from x[:, 1:]) can be 0."""
    return all(d > 0 if isinstance(d, int) else d.coef > 0 and (not is_formula(d) or _sum_of_sizes(d))
               for d in dims)


def _sum_of_sizes(d) -> bool:
    """A formula of whole sizes, each added with a positive factor and nothing taken away (P+S, 2*T+1)."""
    least, _ = difference_bounds(d, 0)
    return least is not None and least >= 0
