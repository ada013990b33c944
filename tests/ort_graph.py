"""The ops onnxruntime's CPU actually runs for a model: its optimized graph, for tests of what a lowering
choice makes onnxruntime do (a fusion that fires, a layout it keeps)."""

from __future__ import annotations

import tempfile

import onnx
import onnxruntime as ort


def ort_ops(model: onnx.ModelProto) -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.log_severity_level = 4
        so.optimized_model_filepath = f"{d}/opt.onnx"
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(f"{d}/opt.onnx").graph.node]
