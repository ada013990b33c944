"""Evaluate IR nodes on constant inputs by running their own lowering in one small onnxruntime session.

Using each op's lowering (rather than a second numpy implementation of every op) means a folded value is
exactly what the unfolded model would compute. All nodes folded in one pass share one session."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir import Node, Value
from ..ops import OpCall, SharedValues
from ..types import is_static

__all__ = ["evaluate"]


class _MiniEmitter(SharedValues):
    """The part of the lowering emitter an op's lowering rule uses (op, const, shared, opset)."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def at(self, prefix: str, doc: str) -> None:
        pass

    def _fresh(self, stem: str) -> str:
        self._n += 1
        return f"_k{self._n}_{stem}"

    def op(self, op_type, inputs, outputs=None, n_out: int = 1, domain: str = "", **attrs):
        name = self._fresh(op_type)
        if outputs is None:
            outputs = [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, domain=domain or None,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def const(self, array, stem: str = "const") -> str:
        name = self._fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name


def evaluate(nodes: list[Node], wanted: list[Value], feeds: dict[int, np.ndarray], opset: int) -> list[np.ndarray]:
    """Values of `wanted`, computing `nodes` (in order) from `feeds` (id(value) -> array: the constants and
    the static-shape stand-ins the nodes read)."""
    e = _MiniEmitter(opset)
    names: dict[int, str] = {}
    inputs, init = [], []
    for i, (vid, arr) in enumerate(feeds.items()):
        names[vid] = f"in{i}"
        init.append(numpy_helper.from_array(np.array(arr, order="C"), f"in{i}"))  # ascontiguousarray made a
        # 0-d constant 1-d: unsqueeze/expand/sum of tensor(1.0) folded to [2], not a scalar
    for k, node in enumerate(nodes):
        outs = [f"n{k}:{i}" for i in range(len(node.outputs))]
        for o, n in zip(node.outputs, outs):
            names[id(o)] = n
        call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
        node.opdef.lower(e, [names[id(v)] for v in node.inputs], outs, call)
    outputs = []
    for v in wanted:
        assert is_static(v.type.shape)
        outputs.append(helper.make_tensor_value_info(names[id(v)], v.type.dtype.onnx, list(v.type.shape)))
    graph = helper.make_graph(e.nodes, "fold", inputs, outputs, initializer=init + e.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]), onnx.IR_VERSION)
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 4  # errors reach the caller as exceptions; no raw log line too
    so.intra_op_num_threads = 1
    # 16-bit floats: onnxruntime's CPU computes them in float32, and run with its optimizations off it dropped
    # the rounding Cast pairs between them (3.0h * 0.1 - 0.3 folded to -4.9e-5, where the model unfolded, whose
    # constants onnxruntime folds node by node, gives torch's 0): fold them as the unfolded model's session does
    half = any(o.type.dtype.is_16bit and o.type.dtype.is_float for n in nodes for o in n.outputs)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if half else \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run([names[id(v)] for v in wanted], {})
