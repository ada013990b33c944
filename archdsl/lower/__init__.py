"""Lowering: IR to ONNX."""

from __future__ import annotations

from .emitter import Emitter
from .onnx_model import MIN_OPSET, LowerResult, lower_graph, value_info
from .weights import initial_weights, load_weights, materialize, save_weights

__all__ = ["Emitter", "LowerResult", "MIN_OPSET", "initial_weights", "load_weights", "lower_graph", "materialize", "save_weights",
           "value_info"]
