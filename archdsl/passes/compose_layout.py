"""compose_layout: a chain of two layout ops becomes one.

Rules: 1. permute/transpose after permute/transpose: one permute with the composed order
(out[i] = x[p1[p2[i]]]); an identity result is then dropped by remove_noops.
2. reshape/flatten/squeeze/unsqueeze after reshape/flatten/squeeze/unsqueeze: one reshape of the first
input to the last output's shape, when that shape can be lowered from it (each symbolic dim a dim of the
input or, but for one, a product of its dims), and not where it would read run-time shapes (slices of its
Shape and a Concat in place of a constant target) unless one of the two already reads them, nor where the
size left to ONNX's -1 cannot be written out from the input's dims (it names no size beside a 0: the two ran
at batch 0).
The first node stays while something else reads it (dead_code removes it otherwise)."""

from __future__ import annotations

from ..diagnostics import ShapeError
from ..ir import Graph, Node
from ..ops.run_time_dims import plan_dim
from ..ops.shape_ops import flatten_reads_shape, reshape_reads_shape, sizes_written_out
from ..ops.shapes import norm_axis
from ..types import Sym
from ._rewrite import Rewriter
from .manager import PassContext, register_pass

_RESHAPES = {"reshape", "flatten", "squeeze", "unsqueeze"}
_PERMUTES = {"permute", "transpose"}


def perm_of(node: Node) -> list[int]:
    r = node.inputs[0].type.rank
    if node.op == "permute":
        return [d % r for d in node.attrs["dims"]]
    p = list(range(r))
    a, b = node.attrs["dim0"] % r, node.attrs["dim1"] % r
    p[a], p[b] = p[b], p[a]
    return p


def lowerable_reshape(src_shape: tuple, target: tuple) -> bool:
    """Whether the lowering can write every size of the target from the input's dims: the last that is not one
    of them is left to the element count (sizes_written_out checks it), and any other must be a product, a
    multiple or a fraction of the input's dims (run_time_dims' exact tiers: a formula can undercount, as
    x[:, 3:] at T = 1 does)."""
    left = [d for d in target if isinstance(d, Sym) and d not in src_shape]
    plans = [plan_dim(d, src_shape, lambda s: s in src_shape) for d in left[:-1]]
    return all(p is not None and p[0] != "formula" for p in plans)


def _reads_shape(node: Node) -> bool:
    """Whether the node's lowering reads its target from the input's shape at run time (ops/shape_ops);
    squeeze and unsqueeze lower to ops with no target."""
    src = node.inputs[0].type.shape
    if node.op == "flatten":
        return bool(src) and flatten_reads_shape(src, *(norm_axis(node.attrs[k], len(src))
                                                       for k in ("start_dim", "end_dim")))
    return node.op == "reshape" and reshape_reads_shape(src, tuple(node.attrs["shape"]))


def _reads_more_shapes(inner: Node, node: Node, merged: Node) -> bool:
    """The merged reshape's target is read at run time (a symbolic dim that moves: [B, T] unsqueezed twice to
    [B, 1, 1, T]) where neither of the two reads one: more nodes than it saves (BERT-base's mask: 382 nodes
    merged, 379 not)."""
    return _reads_shape(merged) and not (_reads_shape(inner) or _reads_shape(node))


@register_pass("compose_layout", level=1, doc="merge chains of transposes/permutes and of reshapes")
def compose_layout(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    for node in g.nodes:
        if node.op not in _RESHAPES and node.op not in _PERMUTES:
            continue
        x = node.inputs[0]
        inner = x.producer
        if inner is None or rw.is_dead(inner) or len(inner.outputs) != 1:
            continue
        out = node.outputs[0]
        if node.op in _PERMUTES and inner.op in _PERMUTES:
            p1, p2 = perm_of(inner), perm_of(node)
            new = g.make_node("permute", [inner.inputs[0]], {"dims": tuple(p1[i] for i in p2)}, node.name, node.span)
        elif node.op in _RESHAPES and inner.op in _RESHAPES:
            src = inner.inputs[0]
            if not lowerable_reshape(src.type.shape, out.type.shape):
                continue
            try:
                new = g.make_node("reshape", [src], {"shape": tuple(out.type.shape)}, node.name, node.span)
            except ShapeError:
                continue
        else:
            continue
        if new.outputs[0].type != out.type or new.op == "reshape" and (
                _reads_more_shapes(inner, node, new) or not sizes_written_out(src.type.shape, out.type.shape)):
            for v in new.inputs:
                v.uses.remove(new)
            continue
        rw.insert_before(node, new)
        rw.replace(out, new.outputs[0])
        rw.erase(node)
    return rw.commit()
