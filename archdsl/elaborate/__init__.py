"""Elaboration: AST to IR, evaluating everything that is known at compile time."""

from __future__ import annotations

from .module import DEFINE_FILE, Module, elaborate_model, load_file, load_source, noting_overrides, parse_define

__all__ = ["DEFINE_FILE", "Module", "elaborate_model", "load_file", "load_source", "noting_overrides",
           "parse_define"]
