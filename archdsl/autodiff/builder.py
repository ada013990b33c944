"""What a gradient rule writes into. A rule never imports the IR: it receives a GradBuilder and emits
registry ops through it, so every gradient node is shape-checked by the same rules as the forward graph."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..ir import Graph, Node, Value
from ..types import Dim, DType, TensorType

__all__ = ["GradBuilder"]


class GradBuilder:
    """Emits IR nodes named after the forward node they differentiate, at that node's source span.

    Handles (the values a rule passes around) are opaque to the rule; it reads their types with `type()`."""

    def __init__(self, graph: Graph, node: Node | None, needs: list[bool] | None = None, tag: str = "grad",
                 sink: list[Node] | None = None):
        self._g = graph
        self._node = node
        self._needs = needs or []
        self._tag = tag
        self._count = 0
        self._sink = sink if sink is not None else graph.nodes

    # ---- what a rule asks ----
    def needs(self, i: int) -> bool:
        """Whether input i of the forward node needs a gradient (rules skip costly work otherwise)."""
        return i < len(self._needs) and self._needs[i]

    @staticmethod
    def type(h: Value) -> TensorType:
        return h.type

    # ---- emitting ----
    def op(self, name: str, *inputs: Value, **attrs):
        """One registry op; returns its output (a tuple when it has several). Omitted attrs take defaults."""
        opdef = ops.get(name)
        full = ops.call_attrs(opdef, attrs, f"gradient of {self._where()}")
        self._count += 1
        name = f"{self._node.name}.{self._tag}{self._count}" if self._node is not None else f"{self._tag}{self._count}"
        node = self._g.make_node(opdef.name, list(inputs), full, name,
                                 self._node.span if self._node is not None else None)
        self._sink.append(node)
        outs = node.outputs
        return outs[0] if len(outs) == 1 else tuple(outs)

    def const(self, value, like: Value | None = None, dtype=None) -> Value:
        """A constant of `like`'s dtype (or numpy `dtype`)."""
        np_dtype = dtype if dtype is not None else like.type.dtype.numpy
        return self._g.add_const(np.asarray(value, dtype=np_dtype),
                                 self._node.span if self._node is not None else None)

    # ---- helpers shared by many rules ----
    def sum_to(self, g: Value, shape: tuple[Dim, ...]) -> Value:
        """Undo broadcasting: sum g over the dims that broadcasting added or stretched, down to `shape`."""
        gs = g.type.shape
        if tuple(gs) == tuple(shape):
            return g
        lead = len(gs) - len(shape)
        if lead > 0:
            g = self.op("sum", g, dim=tuple(range(lead)))
            gs = g.type.shape
        axes = tuple(i for i, d in enumerate(shape) if d == 1 and gs[i] != 1)
        if axes:
            g = self.op("sum", g, dim=axes, keepdim=True)
        return g

    def broadcast_to(self, g: Value, like: Value) -> Value:
        """Stretch g (same rank, 1s where `like` is larger) to like's shape."""
        if tuple(g.type.shape) == tuple(like.type.shape):
            return g
        return self.op("expand", g, like, shape=tuple(like.type.shape))

    def zeros_like(self, x: Value) -> Value:
        return self.op("autodiff.zeros_like", x)

    def reshape_like(self, g: Value, x: Value) -> Value:
        if tuple(g.type.shape) == tuple(x.type.shape):
            return g
        return self.op("autodiff.reshape_like", g, x)

    def count(self, x: Value, dims: tuple[int, ...] | None = None, dtype: DType | None = None) -> Value:
        """Number of elements of x over `dims` (all when none) as a scalar of x's float dtype (or `dtype`)."""
        shape = x.type.shape
        axes = range(len(shape)) if dims is None else [d % len(shape) for d in dims]
        sel = [shape[i] for i in axes]
        dt = dtype or (x.type.dtype if x.type.dtype.is_float else None)
        if all(isinstance(d, int) for d in sel):
            return self.const(float(np.prod(sel, dtype=np.int64)), dtype=dt.numpy if dt else np.float32)
        return self.op("autodiff.count", x, dims=tuple(axes) if dims is not None else None,
                       dtype=(dt.label if dt else "float32"))

    def over_count(self, g: Value, x: Value, dims: tuple[int, ...] | None = None) -> Value:
        """g / the number of elements of x over `dims`, a mean's gradient; float16 divides in float32: a count
        past 65,504 is inf there, and a mean over 65,536 values gave every gradient 0."""
        if x.type.dtype is not DType.float16:
            return self.op("div", g, self.count(x, dims))
        wide = self.op("div", self.op("cast", g, dtype="float32"), self.count(x, dims, DType.float32))
        return self.op("cast", wide, dtype="float16")

    def vjp(self, fn, inputs: list[Value], gouts: list[Value | None]) -> list[Value | None]:
        """Gradients of `inputs` through a composite: `fn(b, *inputs)` recomputes the op from simpler registry
        ops (returning its outputs), and those are differentiated by their own rules. For ops whose gradient
        is easiest to state as "the gradient of this decomposition" (norms, attention, interpolation)."""
        from .engine import vjp
        start = len(self._sink)
        outs = fn(GradBuilder(self._g, self._node, tag="recompute", sink=self._sink), *inputs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        return vjp(self._g, self._sink[start:], outs, gouts, inputs)

    def scalar(self, value: float, like: Value) -> Value:
        return self.const(value, like=like)

    def _where(self) -> str:
        return f"{self._node.op} '{self._node.name}'" if self._node is not None else "the loss"
