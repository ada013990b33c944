"""dead_code: drop nodes whose results nobody reads, then parameters and constants nobody reads.

Rules: 1. a node none of whose outputs is used or a graph output is erased; erasing it may free its
producers, so one backward walk over the node list finds every dead node (linear time).
2. parameters and constants without uses leave the graph (`Graph.prune_params`)."""

from __future__ import annotations

from ..ir import Graph
from ._rewrite import Rewriter
from .manager import PassContext, register_pass


@register_pass("dead_code", level=1, doc="remove nodes, parameters and constants whose results are unused")
def dead_code(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    for node in reversed(g.nodes):
        if not any(o.uses or rw.is_output(o) for o in node.outputs):
            rw.erase(node)
    changed = rw.commit()
    n_params, n_consts = len(g.params), len(g.consts)
    g.prune_params()
    return changed or len(g.params) != n_params or len(g.consts) != n_consts
