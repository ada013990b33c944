"""Typed IR: graph, checker, printer."""

from __future__ import annotations

from .check import check
from .graph import Graph, Node, Value, infer_node, provenance
from .printer import print_graph
from .unused import Unused, dead_nodes, still_there, unused_results

__all__ = ["Graph", "Node", "Unused", "Value", "check", "dead_nodes", "infer_node", "print_graph", "provenance",
           "still_there", "unused_results"]
