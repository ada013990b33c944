"""Computations that reach no output: what the dead_code pass will drop, said to the user before it does
(`z = x -> linear(3)` never read: `check` counted its 15 parameters, the built model had none)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .graph import Graph, Node

__all__ = ["Unused", "dead_nodes", "still_there", "unused_results"]


@dataclass(frozen=True)
class Unused:
    node: Node | None   # the last node of a dead chain (nothing reads it); None for a parameter nothing reads
    params: int         # elements of the parameters (and buffers) only dead nodes read
    trainable: int = 0  # of which trainable: what the build's parameter count leaves out
    kept: bool = False  # dead_code does not run (-O0, or disabled) and no other pass removed it either
    names: tuple = ()   # those parameters' names
    span: object = None  # where to warn: the dead node's, or the parameter's
    params_stay: bool = False  # a train step leaves the node out but keeps its parameters (unchanged)
    shared: bool = False  # it reads parameters that live nodes read too (a layer's first call, layer() the rest)
    called: str | None = None  # the name `name = ...` gave an unnamed node's result: said instead of mean_0

    def message(self) -> str:
        called = self.node and (self.called or self.node.name)
        what = f"'{called}' ({self.node.op}) is computed but reaches no output: " if self.node else \
            f"parameter '{self.names[0]}' is made but nothing reads it and it is no output: "
        if self.node is None:  # the parameter itself: its values are the count
            how = "keeps it" if self.kept else "leaves it out"  # kept: at -O0, or in a train step (unchanged)
            return what + f"the built model {how} ({self.params:,} values)"
        if self.kept:
            held = f", with its {self.params:,} parameters" if self.params else ""
            return what + f"the built model keeps it{held} (the dead_code pass, on at -O1 and up, leaves it out)"
        if self.params_stay:
            return what + (f"the built model leaves it out; its {self.params:,} parameters stay in the train step, "
                           "unchanged (nothing reads them)")
        if self.shared and not self.params:  # `f(x) as f` made to be called with layer("f") alone (capsule hunt)
            return what + "the built model leaves it out, not the parameters it reads, which the rest of the " \
                "model reads"
        dropped = f", and its {self.params:,} parameters with it" if self.params else ""
        return what + f"the built model leaves it out{dropped}"


def dead_nodes(g: Graph) -> set[int]:
    """ids of the nodes no output depends on: a backward walk as dead_code's, changing nothing."""
    dead: set[int] = set()
    for node in reversed(g.nodes):
        if all(all(id(u) in dead for u in o.uses) and not g.is_output(o) for o in node.outputs):
            dead.add(id(node))
    return dead


def unused_results(g: Graph) -> list[Unused]:
    """One entry per dead chain's end, in program order, then one per parameter nothing reads at all (a
    `parameter(...) as p` never used: check said nothing, and the build left it out but counted it)."""
    unread = [Unused(None, _numel(v.type.shape), _numel(v.type.shape) if v.kind == "param" else 0,
                     names=(v.name,), span=v.span)
              for v in g.params.values() if not v.uses and not g.is_output(v)]
    return _dead_chains(g) + unread


def _dead_chains(g: Graph) -> list[Unused]:
    dead = dead_nodes(g)
    if not dead:
        return []
    only_dead = {id(v) for v in g.params.values() if v.uses and all(id(u) in dead for u in v.uses)}
    ends = [n for n in g.nodes if id(n) in dead and not any(o.uses for o in n.outputs)]
    out, seen = [], set()  # a node or parameter two dead ends share is counted at the first
    for end in ends:
        stack, params, trainable, names, shared = [end], 0, 0, [], False
        while stack:  # the dead region that ends here: its own parameters
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            for v in n.inputs:
                shared |= v.is_param and id(v) not in only_dead
                if v.is_param and id(v) in only_dead and id(v) not in seen:
                    seen.add(id(v))
                    names.append(v.name)
                    params += _numel(v.type.shape)
                    trainable += _numel(v.type.shape) if v.kind == "param" else 0
                elif v.producer is not None and id(v.producer) in dead:
                    stack.append(v.producer)
        if params or not all(o.shape_read for o in end.outputs):  # not a view made for shape() alone
            out.append(Unused(end, params, trainable, names=tuple(names), span=end.span, shared=shared,
                              called=_called(g, end)))
    return out


def _called(g: Graph, node: Node) -> str | None:
    """The spec's name for an unnamed node's result (`loss = mean(d)`), where it has one; a node named with
    `as` keeps that name."""
    own = node.name.rpartition(".")[2].partition("#")[0]
    if id(node) in g.labelled or own.rpartition("_")[0] != node.op or not own.rpartition("_")[2].isdigit():
        return None
    return next((g.assigned[id(o)][1] for o in node.outputs if id(o) in g.assigned), None)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) else 1
    return n


def still_there(unused: list[Unused], g: Graph) -> list[Unused]:
    """Once the passes have run on g without dead_code: kept where the dead node, or a parameter only it read
    (fold_batchnorm replaces the node and keeps the conv's weight, folded), is still in g; fold_constants may have
    computed the rest away."""
    there = {id(n) for n in g.nodes}
    names, todo = set(), list(g.params.values())
    while todo:  # a parameter, or one a derived parameter (conv.weight.folded) is computed from
        v = todo.pop()
        names.add(v.name)
        todo += getattr(v.spec, "sources", ())
    return [replace(u, kept=(u.node is not None and id(u.node) in there) or any(n in names for n in u.names))
            for u in unused]
