"""Values a model computes from constants alone that an op cannot take: an integer divisor holding a 0
(`ids // (tensor([1, 1]) - 1)`: onnxruntime, which folds such a divisor itself, refused to load the model with
no line of the spec), and labels or lengths out of their op's range (`lengths=cast(tensor([6, 3]), "int32")`
over 5 steps: onnxruntime failed at run time; a ctc_loss input length past its frames gave a number torch
refuses), and indices past their table (`tensor([1, 7]) + 0` into 5 rows: a failure at run time; `- 3`: a
row counted from the end). The checker (ir/check.py) refuses a plain constant; these are computed, and known
when building all the same. Not a pass: a check on the graph about to be lowered, at every -O level (such a value is a
constant by then at -O1 and -O2, and is evaluated here at -O0)."""

from __future__ import annotations

import numpy as np

from ..diagnostics import EvalError
from ..ir import Graph, Value, dead_nodes
from ..ir.check import check_indices, check_values, index_rule, value_rules
from ..types import is_static
from ._evaluate import evaluate
from .fold_constants import lends_shape_only, stand_in

__all__ = ["check_computed_constants"]

_DIVIDING = ("floordiv", "remainder", "fmod")
_MAX_NODES = 64  # a value computed by more than this is left to onnxruntime


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


def _value(v: Value, order: dict, opset) -> np.ndarray | None:
    """v's value where constants alone make it, else None."""
    if v.kind == "const":
        return v.data
    nodes = _from_constants(v)
    if not nodes:
        return None
    nodes.sort(key=lambda n: order[id(n)])
    made = {id(o) for n in nodes for o in n.outputs}
    consts = {id(x): x.data if x.kind == "const" else stand_in(x) for n in nodes for x in n.inputs
              if id(x) not in made}
    try:
        return np.asarray(evaluate(nodes, [v], consts, opset() if callable(opset) else opset)[0])
    except Exception:  # noqa: BLE001 - a kernel onnxruntime lacks: it says so when the model loads
        return None


def check_computed_constants(g: Graph, opset, live_only: bool = False) -> None:
    """`opset`: the one to evaluate at, or a function giving it (`archdsl check` asks onnxruntime only where a
    value is to be evaluated). `live_only`: nodes no output reads are left out (`archdsl check`, as the
    default build drops them)."""
    order = {id(n): i for i, n in enumerate(g.nodes)}
    dead = dead_nodes(g) if live_only else set()
    for node in g.nodes:
        if id(node) in dead:
            continue
        if node.op in _DIVIDING and not node.inputs[1].type.dtype.is_float:
            value = _value(node.inputs[1], order, opset)
            if value is not None and not np.all(value != 0):
                raise EvalError("integer division by zero: the divisor, computed from constants, holds a 0 "
                                "(onnxruntime would refuse to load the model)", node.span)
        for v, low, high, also, what in value_rules(node):
            if (value := _value(v, order, opset)) is not None:  # a constant too: folded at -O1 and -O2
                check_values(node, value, low, high, also, what)
        if (rule := index_rule(node)) is not None and getattr(rule[0].producer, "op", None) != "positions" and \
                (value := _value(rule[0], order, opset)) is not None and value.size and value.dtype.kind in "iu":
            # a constant the passes folded too; positions() alone the checker bounds without running it
            check_indices(node, int(value.min()), int(value.max()), rule, "indices computed from constants,")
