"""Small helpers the op definitions share: inits, cost formulas, dtype checks."""

from __future__ import annotations

import math

from ..types import TensorType, numel
from .registry import Init, OpCall, fail

__all__ = ["kaiming_uniform", "bias_uniform", "float_input", "elementwise_cost", "same_type", "shape_str"]


def kaiming_uniform(fan_in: int) -> Init:
    """PyTorch's default for Linear/Conv weights: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Init("uniform", -bound, bound)


bias_uniform = kaiming_uniform


def shape_str(t: TensorType) -> str:
    return "[" + ", ".join(map(str, t.shape)) + "]"


def float_input(op: str, t: TensorType, what: str = "input") -> None:
    if not t.dtype.is_float:
        fail(f"{op}: {what} must be a float tensor, got {t.dtype}")


def elementwise_cost(c: OpCall) -> int:
    return sum(numel(t.shape) for t in c.out_types)


def same_type(ins: list[TensorType], a: dict) -> list[TensorType]:
    return [ins[0]]
