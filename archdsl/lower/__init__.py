"""Lowering: IR to ONNX."""

from __future__ import annotations

from .emitter import Emitter
from .onnx_model import MIN_OPSET, LowerResult, lower_graph, param_arrays, value_info
from .stream import write_streaming
from .weights import initial_weights, load_weights, materialize, save_weights

__all__ = ["Emitter", "LowerResult", "MIN_OPSET", "initial_weights", "load_weights", "lower_graph", "materialize",
           "param_arrays", "save_weights", "value_info", "write_streaming"]
