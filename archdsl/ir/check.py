"""The checker: every node's shape rule runs again over the whole graph; SSA order is verified."""

from __future__ import annotations

from ..diagnostics import ArchError, ShapeError
from .graph import Graph, infer_node

__all__ = ["check"]


def check(graph: Graph) -> Graph:
    """Raise a diagnostic at the node's span if a value is used before it is defined or a type disagrees."""
    defined = {id(v) for v in graph.inputs} | {id(v) for v in graph.params.values()} | {id(v) for v in graph.consts}
    for node in graph.nodes:
        for v in node.inputs:
            if id(v) not in defined:
                raise ArchError(f"internal: {node.op} '{node.name}' reads a value before it is defined", node.span)
            if node not in v.uses:
                raise ArchError(f"internal: use list of an input of '{node.name}' is stale", node.span)
        types = infer_node(node)
        if [o.type for o in node.outputs] != types:
            got = ", ".join(str(o.type) for o in node.outputs)
            raise ShapeError(f"{node.op} '{node.name}': recorded type {got} disagrees with its shape rule "
                             f"({', '.join(map(str, types))})", node.span)
        defined.update(id(o) for o in node.outputs)
    for name, v in graph.outputs:
        if id(v) not in defined:
            raise ArchError(f"internal: output '{name}' is not defined", graph.span)
    return graph
