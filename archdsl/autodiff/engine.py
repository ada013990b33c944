"""Reverse-mode differentiation on the IR: one backward walk over the nodes, each op's gradient rule
(from the registry) emitting IR through a GradBuilder. Gradients of a value used several times are summed."""

from __future__ import annotations

from ..diagnostics import ArchError, quoted
from ..ir import Graph, Node, Value
from ..ops import OpCall
from .builder import GradBuilder

__all__ = ["gradients", "prune_dead", "vjp"]


def gradients(graph: Graph, target: Value, wrt: list[Value], seed: Value | None = None) -> list[Value | None]:
    """d target / d w for each w in `wrt` (None where target does not depend on w, and at the later places
    of a w listed twice: its first place has the whole gradient), appended to `graph`.

    `target` is a scalar unless `seed` (the incoming gradient, target's shape) is given."""
    if seed is None:
        if target.type.shape:
            raise ArchError(f"internal: differentiating a non-scalar {target.type} needs a seed gradient")
        seed = GradBuilder(graph, None).const(1.0, like=target)
    return vjp(graph, list(graph.nodes), [target], [seed], wrt)


def vjp(graph: Graph, nodes: list[Node], outputs: list[Value], gouts: list[Value | None],
        wrt: list[Value]) -> list[Value | None]:
    """The vector-Jacobian product through `nodes` (in order): given gradients `gouts` of `outputs`, the
    gradients of `wrt`. New nodes are appended to graph.nodes."""
    depends = {id(v) for v in wrt}
    for n in nodes:
        if any(id(v) in depends for v in n.inputs):
            depends.update(id(o) for o in n.outputs if o.type.dtype.is_float)
    reaches = {id(o) for o, g in zip(outputs, gouts) if g is not None}
    for n in reversed(nodes):
        if any(id(o) in reaches for o in n.outputs):
            reaches.update(id(v) for v in n.inputs)
    grads: dict[int, Value] = {}
    for o, g in zip(outputs, gouts):
        if g is not None:
            grads[id(o)] = g if id(o) not in grads else GradBuilder(graph, None).op("add", grads[id(o)], g)
    for node in reversed(nodes):
        gs = [grads.get(id(o)) for o in node.outputs]
        if all(g is None for g in gs):
            continue
        needs = [id(v) in depends and id(v) in reaches and v.type.dtype.is_float for v in node.inputs]
        if not any(needs):
            continue
        rule = node.opdef.grad
        if rule is None:
            raise _no_rule(node, wrt, nodes, [v for v, need in zip(node.inputs, needs) if need], depends)
        b = GradBuilder(graph, node, needs)
        call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
        try:
            res = list(rule(b, call, list(node.inputs), list(node.outputs), gs))
        except ArchError as err:  # a rule that cannot differentiate this use says why, at the node
            raise err.with_span(node.span) from None
        if len(res) != len(node.inputs):
            raise ArchError(f"internal: the gradient rule of {node.op} returned {len(res)} gradients for "
                            f"{len(node.inputs)} inputs", node.span)
        for v, need, gv in zip(node.inputs, needs, res):
            if not need or gv is None:
                continue
            if gv.type != v.type:
                raise ArchError(f"internal: the gradient rule of {node.op} '{node.name}' made {gv.type} for an "
                                f"input of type {v.type}", node.span)
            prev = grads.get(id(v))
            grads[id(v)] = gv if prev is None else b.op("add", prev, gv)
    # A value in several positions of wrt (sdpa(h, h, h)) has one summed gradient: give it to its first
    # position only, since the caller adds up every position's gradient again.
    first = {}
    for i, w in enumerate(wrt):
        first.setdefault(id(w), i)
    return [grads.get(id(w)) if first[id(w)] == i else None for i, w in enumerate(wrt)]


def _no_rule(node: Node, wrt: list[Value], nodes: list[Node], inputs: list[Value], depends: set[int]) -> ArchError:
    """Name the op and the parameters behind it (those its `inputs` depend on, not every parameter of the
    model), so the user sees why the loss cannot reach them."""
    behind = {id(v) for v in inputs}
    for n in reversed(nodes[:next(i for i, n in enumerate(nodes) if n is node)]):
        if any(id(o) in behind for o in n.outputs):
            behind.update(id(v) for v in n.inputs if id(v) in depends)
    shown = quoted(w.name for w in dict.fromkeys(w for w in wrt if id(w) in behind) if w.name)
    return ArchError(f"cannot train through {node.op} '{node.name}': the op has no gradient rule, and it lies "
                     f"on the path from {shown or 'the parameters'} to the loss", node.span,
                     [("make the layer's inputs constant, or drop it from the trained path", None)])


def prune_dead(graph: Graph) -> int:
    """Drop nodes whose outputs nobody reads (gradient work a rule did but no one needs). Returns the count."""
    live = {id(v) for _, v in graph.outputs}
    kept: list[Node] = []
    removed = 0
    for node in reversed(graph.nodes):
        if any(id(o) in live for o in node.outputs):
            live.update(id(v) for v in node.inputs)
            kept.append(node)
        else:
            for v in node.inputs:
                v.uses.remove(node)
            removed += 1
    graph.nodes = list(reversed(kept))
    graph.consts = [c for c in graph.consts if c.uses or id(c) in live]
    return removed
