"""The checker: every node's shape rule runs again over the whole graph; SSA order is verified."""

from __future__ import annotations

from .. import ops
from ..diagnostics import ArchError, ShapeError
from .graph import Graph, infer_node

__all__ = ["check"]


def check(graph: Graph) -> Graph:
    """Raise a diagnostic at the node's span if a value is used before it is defined or a type disagrees."""
    defined = {id(v) for v in graph.inputs} | {id(v) for v in graph.params.values()} | {id(v) for v in graph.consts}
    users: dict[int, set[int]] = {}  # a value's use list as a set, made once: a list scan per read was quadratic
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
    rule = ops.get(node.op).indexes
    if rule is None:
        return
    ids, table, axis = rule
    known = _span(node.inputs[ids])
    t = node.inputs[table].type
    ax = node.attrs[axis] if isinstance(axis, str) else axis
    n = t.shape[ax % t.rank] if t.rank else None
    if known is None or not isinstance(n, int):
        return
    first, last = known
    low = 0 if node.op == "embedding" else -n
    if last >= n or first < low:
        has = f"has {n} rows" if node.op == "embedding" else f"has {n} entries along axis {ax}"
        what = "positions" if node.inputs[ids].kind != "const" else "indices"
        allowed = f"0..{n - 1}" if low == 0 else f"{-n}..{n - 1}"
        raise ShapeError(f"{node.op} '{node.name}' reads {what} {first}..{last}, but its table {has} "
                         f"({allowed})", node.span)
