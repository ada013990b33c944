"""Elaboration: AST to IR, evaluating everything that is known at compile time."""

from __future__ import annotations

from .defines import DEFINE_FILE, parse_define, parse_defines
from .module import Module, elaborate_model, load_file, load_source, noting_overrides

__all__ = ["DEFINE_FILE", "Module", "elaborate_model", "load_file", "load_source", "noting_overrides",
           "parse_define", "parse_defines"]
