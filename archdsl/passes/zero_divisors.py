"""Integer division by a divisor the model computes from constants alone (`ids // (tensor([1, 1]) - 1)`,
`ids % abs(tensor(0))`): its zero is known when building, and onnxruntime, which folds such a divisor itself,
refuses to load the model with no line of the spec. Not a pass: a check on the graph about to be lowered, at
every -O level (the divisor is a constant by then at -O1 and -O2, and is evaluated here at -O0)."""

from __future__ import annotations

import numpy as np

from ..diagnostics import EvalError
from ..ir import Graph, Value, dead_nodes
from ..types import is_static
from ._evaluate import evaluate
from .fold_constants import lends_shape_only, stand_in

__all__ = ["check_zero_divisors"]

_DIVIDING = ("floordiv", "remainder", "fmod")
_MAX_NODES = 64  # a divisor computed by more than this is left to onnxruntime


def _from_constants(v: Value) -> list | None:
    """The nodes computing v from constants (and static shapes, as fold_constants takes them: `positions(ids)`),
    or None where an input's values, a parameter or a random call feed it (or it takes too many)."""
    nodes, seen, todo = {}, set(), [v]
    while todo:
        x = todo.pop()
        if id(x) in seen or x.kind == "const":
            continue
        seen.add(id(x))
        n = x.producer
        if n is None or n.opdef.random or len(nodes) >= _MAX_NODES or \
                not all(is_static(o.type.shape) and o.type.dtype.np is not None for o in n.outputs):
            return None
        nodes[id(n)] = n
        todo.extend(u for i, u in enumerate(n.inputs) if not lends_shape_only(n, i))
    return list(nodes.values())


def check_zero_divisors(g: Graph, opset, live_only: bool = False) -> None:
    """`opset`: the one to evaluate at, or a function giving it (`archdsl check` asks onnxruntime only where a
    divisor is to be evaluated). `live_only`: divisions no output reads are left out (`archdsl check`, as the
    default build drops them)."""
    order = {id(n): i for i, n in enumerate(g.nodes)}
    dead = dead_nodes(g) if live_only else set()
    for node in g.nodes:
        if node.op not in _DIVIDING or node.inputs[1].type.dtype.is_float or id(node) in dead:
            continue
        d = node.inputs[1]
        if d.kind == "const":
            value = d.data
        else:
            nodes = _from_constants(d)
            if not nodes:
                continue
            nodes.sort(key=lambda n: order[id(n)])
            made = {id(o) for n in nodes for o in n.outputs}
            consts = {id(x): x.data if x.kind == "const" else stand_in(x)
                      for n in nodes for x in n.inputs if id(x) not in made}
            try:
                value = evaluate(nodes, [d], consts, opset() if callable(opset) else opset)[0]
            except Exception:  # noqa: BLE001 - a kernel onnxruntime lacks: it says so when the model loads
                continue
        if not np.all(np.asarray(value) != 0):
            raise EvalError("integer division by zero: the divisor, computed from constants, holds a 0 (onnxruntime "
                            "would refuse to load the model)", node.span)
