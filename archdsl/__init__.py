"""archdsl: a declarative language for deep-learning architectures and its compiler to ONNX."""

from __future__ import annotations

from ._version import __version__
from .diagnostics import ArchError
from .driver import Compiled, CompileOptions, check_file, check_source, compile_file, compile_source

__all__ = ["__version__", "ArchError", "CompileOptions", "Compiled", "check_file", "check_source", "compile_file",
           "compile_source"]
