"""Per-layer table and totals from the checked IR; never materializes weights."""

from __future__ import annotations

import math

from .ir import Graph
from .ops import OpCall

__all__ = ["summarize"]


def _numel(shape) -> int:
    return math.prod(d if isinstance(d, int) else 1 for d in shape)


def summarize(g: Graph) -> dict:
    """params count trainable tensors once each (tied weights once), as torch's parameters() does."""
    layers = []
    total_flops = 0
    for n in g.nodes:
        call = OpCall(tuple(v.type for v in n.inputs), tuple(o.type for o in n.outputs), n.attrs)
        cost = n.opdef.cost
        flops = int(cost(call)) if cost else 0
        total_flops += flops
        params = sum(_numel(v.type.shape) for v in n.inputs if v.kind == "param")
        layers.append({"name": n.name, "op": n.op,
                       "shape": [[d if isinstance(d, int) else str(d) for d in o.type.shape] for o in n.outputs],
                       "params": params, "flops": flops})
    return {
        "model": g.name,
        "inputs": {v.name: str(v.type) for v in g.inputs},
        "outputs": {k: str(v.type) for k, v in g.outputs},
        "params": g.param_count(),
        "buffers": g.buffer_count(),
        "flops": total_flops,
        "layers": layers,
    }
