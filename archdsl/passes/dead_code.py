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
    live: dict[int, int] = {}  # a value's readers not yet found dead (erasing one by one rescanned use lists)

    def readers(v) -> int:
        if id(v) not in live:
            live[id(v)] = len({id(u) for u in v.uses})
        return live[id(v)]

    dead = []
    for node in reversed(g.nodes):
        if any(rw.is_output(o) or readers(o) for o in node.outputs):
            continue
        dead.append(node)
        for v in {id(v): v for v in node.inputs}.values():
            live[id(v)] = readers(v) - 1
    rw.erase_all(dead)
    changed = rw.commit()
    n_params, n_consts = len(g.params), len(g.consts)
    g.prune_params()
    return changed or len(g.params) != n_params or len(g.consts) != n_consts
