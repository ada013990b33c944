"""Typed IR: graph, checker, printer."""

from __future__ import annotations

from .check import check
from .graph import Graph, Node, Value, infer_node
from .printer import print_graph

__all__ = ["Graph", "Node", "Value", "check", "infer_node", "print_graph"]
