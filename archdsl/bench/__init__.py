"""The benchmark against torch.onnx.export (`archdsl bench`, `python -m archdsl.bench`)."""

from __future__ import annotations

from .run import main

__all__ = ["main"]
