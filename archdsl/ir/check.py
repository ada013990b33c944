"""The checker: every node's shape rule runs again over the whole graph; SSA order is verified."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..diagnostics import ArchError, ShapeError
from ..ops.recurrent import lengths_input
from ..ops.tensor_ops import expand_unread
from .graph import Graph, infer_node
from .unused import dead_nodes

__all__ = ["check", "check_indices", "check_values", "index_rule", "value_rules"]


def check(graph: Graph) -> Graph:
    """Raise a diagnostic at the node's span if a value is used before it is defined or a type disagrees."""
    defined = {id(v) for v in graph.inputs} | {id(v) for v in graph.params.values()} | {id(v) for v in graph.consts}
    users: dict[int, set[int]] = {}  # a value's use list as a set, made once: a list scan per read was quadratic
    sizes = {d for v in graph.inputs for d in v.type.shape if not isinstance(d, int)}  # symbolic, at hand so far
    expands = any(n.op == "expand" for n in graph.nodes)
    dead = dead_nodes(graph) if expands else set()  # the sizes an expand may read: only what the build keeps
    for node in graph.nodes:
        for v in node.inputs:
            if id(v) not in defined:
                raise ArchError(f"internal: {node.op} '{node.name}' reads a value before it is defined", node.span)
            if id(v) not in users:
                users[id(v)] = {id(n) for n in v.uses}
            if id(node) not in users[id(v)]:
                raise ArchError(f"internal: use list of an input of '{node.name}' is stale", node.span)
        if node.slots is not None and sorted(i for at in node.slots.values() for i in at) != \
                list(range(len(node.inputs))) or any(node.inputs[i] is not v for v, i in _slotted(node)):
            raise ArchError(f"internal: input positions of '{node.name}' are stale", node.span)
        types = infer_node(node)
        if [o.type for o in node.outputs] != types:
            got = ", ".join(str(o.type) for o in node.outputs)
            raise ShapeError(f"{node.op} '{node.name}': recorded type {got} disagrees with its shape rule "
                             f"({', '.join(map(str, types))})", node.span)
        _check_index_range(node)
        _check_known_values(node)
        if node.op == "expand" and (why := expand_unread(node.inputs[0].type, node.inputs[1].type if len(
                node.inputs) > 1 else None, node.outputs[0].type.shape, sizes.__contains__)) is not None:
            raise ShapeError(why, node.span)  # as the lowering would: `check` says it too
        if expands and id(node) not in dead:
            sizes.update(d for o in node.outputs for d in o.type.shape if not isinstance(d, int))
        defined.update(id(o) for o in node.outputs)
    for name, v in graph.outputs:
        if id(v) not in defined:
            raise ArchError(f"internal: output '{name}' is not defined", graph.span)
    return graph


def _slotted(node):
    """(input, position) for each position Node.slots records, read back by id."""
    if node.slots is None:
        return []
    by_id = {id(v): v for v in node.inputs}
    return [(by_id.get(k), i) for k, at in node.slots.items() for i in at]


def _span(v) -> tuple[int, int] | None:
    """(lowest, highest) index a value is known to hold: positions() of a known length, or an integer constant
    (`tensor([...])`). Past a table's end onnxruntime's optimized Gather does not fail: it returns fewer rows
    than the shape checker promised (archdsl run --dim T=... of a spec with a learned position table shorter
    than T); a constant past it built, then failed in onnxruntime only."""
    if v.kind == "const" and v.data is not None and v.data.size and v.data.dtype.kind in "iu":
        return int(v.data.min()), int(v.data.max())
    p = v.producer
    n = v.type.shape[0] if v.type.rank == 1 else None
    if p is None or p.op != "positions" or not isinstance(n, int) or n < 1:
        return None
    return p.attrs["start"], p.attrs["start"] + n - 1


def _check_index_range(node) -> None:
    """Indices known at compile time must lie in the table: 0..n-1 for embedding ids (as torch), -n..n-1 for
    take and gather (ONNX Gather counts a negative index from the end)."""
    if (rule := index_rule(node)) is not None and (known := _span(rule[0])) is not None:
        check_indices(node, *known, rule, "positions" if rule[0].kind != "const" else "indices")


def index_rule(node):
    """(the indices input, its lowest allowed value, the table's length, its axis) where that length is known."""
    rule = ops.get(node.op).indexes
    if rule is None:
        return None
    ids, table, axis = rule
    t = node.inputs[table].type
    ax = node.attrs[axis] if isinstance(axis, str) else axis
    n = t.shape[ax % t.rank] if t.rank else None
    if not isinstance(n, int):
        return None
    return node.inputs[ids], 0 if node.op == "embedding" else -n, n, ax


def check_indices(node, first: int, last: int, rule, what: str) -> None:
    _, low, n, ax = rule
    if last >= n or first < low:
        has = f"has {n} rows" if node.op == "embedding" else f"has {n} entries along axis {ax}"
        allowed = f"0..{n - 1}" if low == 0 else f"{-n}..{n - 1}"
        raise ShapeError(f"{node.op} '{node.name}' reads {what} {first}..{last}, but its table {has} "
                         f"({allowed})", node.span)


def value_rules(node):
    """(input, lowest, highest, a value also allowed, what it holds) for the labels and lengths an op reads."""
    if node.op == "cross_entropy":
        logits = node.inputs[0].type
        classes = logits.shape[node.attrs["axis"] % logits.rank] if logits.rank else None
        if isinstance(classes, int):
            yield node.inputs[1], 0, classes - 1, node.attrs["ignore_index"], f"labels of its {classes} classes"
    elif node.op == "ctc_loss":
        frames, positions = node.inputs[0].type.shape[0], node.inputs[1].type.shape[-1]
        yield node.inputs[2], 0, frames, None, f"input_lengths of its {frames} frames"
        yield node.inputs[3], 0, positions, None, f"target_lengths of its {positions} label positions"
    elif (got := lengths_input(node)) is not None:
        steps = got[0].type.shape[1 if node.attrs["batch_first"] else 0]
        if isinstance(steps, int):
            yield got[1], 1, steps, None, f"lengths of its {steps} steps"


def _check_known_values(node) -> None:
    """Labels and lengths known at compile time must be ones the op takes: a constant label past the classes
    and an lstm's length past its steps built, then failed in onnxruntime only, and a ctc_loss input length
    past its frames folded into a number (torch refuses it)."""
    for v, low, high, also, what in value_rules(node):
        if v.kind == "const" and v.data is not None and v.data.dtype.kind in "iu":
            values = v.data.reshape(-1)
        elif (known := _span(v)) is not None:  # positions(): its first and last
            values = np.array(known)
        else:
            continue
        check_values(node, values, low, high, also, what)


def check_values(node, values: np.ndarray, low: int, high: int, also, what: str) -> None:
    """Values an op reads (value_rules) in low..high, or `also` (an ignore_index)."""
    values = np.asarray(values).reshape(-1)
    bad = values[((values < low) | (values > high)) & (values != (low if also is None else also))]
    if bad.size:
        raise ShapeError(f"{node.op} '{node.name}' reads {int(bad[0])} among the {what} ({low}..{high}"
                         f"{'' if also is None else f', or {also}'})", node.span)
