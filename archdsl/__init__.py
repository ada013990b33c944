"""archdsl: a declarative language for deep-learning architectures and its compiler to ONNX.

The compiler's API (compile_source, check_file, ...) loads on first use: `import archdsl` itself stays light, so
that the command line can take Ctrl-C as `interrupted` while numpy, onnx and onnxruntime are still loading."""

from __future__ import annotations

import importlib

from ._version import __version__
from .diagnostics import ArchError, ArchWarning

__all__ = ["__version__", "ArchError", "ArchWarning", "CompileOptions", "Compiled", "check_file", "check_source",
           "compile_file", "compile_source"]

_FROM_DRIVER = ("CompileOptions", "Compiled", "check_file", "check_source", "compile_file", "compile_source")


def __getattr__(name: str):
    if name in _FROM_DRIVER:
        from . import driver
        return getattr(driver, name)
    if name.startswith("_"):  # archdsl.__main__ would run the command line on the program's own argv
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # a submodule by attribute (archdsl.runtime), as an eager import of the package made them
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_DRIVER))
