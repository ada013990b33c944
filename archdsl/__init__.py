"""archdsl: a declarative language for deep-learning architectures and its compiler to ONNX."""

from __future__ import annotations

__version__ = "0.1.0"

from .diagnostics import ArchError  # noqa: E402
from .driver import Compiled, CompileOptions, check_file, check_source, compile_file, compile_source  # noqa: E402

__all__ = ["__version__", "ArchError", "CompileOptions", "Compiled", "check_file", "check_source", "compile_file",
           "compile_source"]
