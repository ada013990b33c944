"""Typed SSA dataflow graph with explicit use-def links.

Values know their producer and their uses; node inputs change only through
`Graph.set_input` and `Graph.replace_all_uses_with`, so use lists never drift."""

from __future__ import annotations

import collections
import re
from typing import Iterable

import numpy as np

from .. import ops
from ..diagnostics import ArchError, ShapeError, Span
from ..ops import OpDef, ParamSpec
from ..ops._common import shape_str
from ..types import DType, TensorType, is_formula

__all__ = ["Value", "Node", "Graph", "provenance"]


class Value:
    """An SSA value: a graph input, a parameter or buffer, a constant, or a node output."""

    __slots__ = ("type", "kind", "name", "producer", "index", "uses", "spec", "data", "span", "shape_read")

    def __init__(self, type: TensorType, kind: str, name: str | None = None, producer: "Node | None" = None,
                 index: int = 0, spec: ParamSpec | None = None, data: np.ndarray | None = None,
                 span: Span | None = None):
        self.type = type
        self.kind = kind  # input | param | buffer | const | node
        self.name = name
        self.producer = producer
        self.index = index
        self.uses: list[Node] = []
        self.spec = spec
        self.data = data
        self.span = span
        # the spec read its shape, rank or dtype (`shape(d[:, :1])`): a node kept only for that is no dead result
        self.shape_read = False

    @property
    def is_param(self) -> bool:
        return self.kind in ("param", "buffer")

    def __repr__(self) -> str:
        return f"Value({self.name or self.kind}: {self.type})"


class Node:
    __slots__ = ("op", "inputs", "outputs", "attrs", "name", "span", "slots")

    def __init__(self, op: str, inputs: list[Value], attrs: dict, name: str, span: Span | None):
        self.op = op
        self.inputs = inputs
        self.outputs: list[Value] = []
        self.attrs = attrs
        self.name = name
        self.span = span
        # a wide node's input positions by value id, made by Graph.replace_all_uses_with, kept by set_input: a
        # pass that rewires each of a 16k-input concat's inputs scanned them all per input (10 s)
        self.slots: dict[int, list[int]] | None = None

    @property
    def opdef(self) -> OpDef:
        return ops.get(self.op)

    def __repr__(self) -> str:
        return f"Node({self.op} {self.name})"


_WIDE = 16  # inputs past which a node keeps its input positions (Node.slots)


class Graph:
    def __init__(self, name: str, span: Span | None = None):
        self.name = name
        self.span = span
        self.inputs: list[Value] = []  # changed by add_input and remove_input only
        self._input_named: dict[str, Value] = {}
        self.params: dict[str, Value] = {}
        self.consts: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[tuple[str, Value]] = []
        self.meta: dict[str, str] = {}
        self.warnings: list[tuple[str, Span | None]] = []  # said by check and build, changing nothing
        self.misreads: list[tuple[str, Span | None]] = []  # those of them of a call read otherwise than torch's
        # (argument order, layout), which often fail layers later: said with such an error
        self.implicit: list[Value] = []  # inputs the spec does not declare (randn_like's `seed`): dropped unread
        self.symbolic_answers: list[bool] = []  # the spec's is_symbolic answers outside asserts, which the spec
        # elaborated at a run's sizes gives again (elaborate.elaborate_model's `general`)
        self.assigned: dict[int, tuple[Value, str]] = {}  # id(value) -> (value, the name `name = ...` first gave
        # it): what a warning about an unnamed node calls it (`loss = mean(...)` never used was 'mean_0'); the
        # value is held so that its id names no other
        self.labelled: set[int] = set()  # ids of the nodes named with `as` (whatever the name looks like)

    @property
    def outputs(self) -> list[tuple[str, Value]]:
        return self._outputs

    @outputs.setter
    def outputs(self, items) -> None:
        """Outputs are set whole (or added by set_output), so which values are outputs is known at once: a
        train step has thousands, and asking each rewrite to scan them made CSE quadratic (800 linears: 54 s)."""
        self._outputs = list(items)
        self._output_ids = collections.Counter(id(v) for _, v in self._outputs)

    def is_output(self, v: Value) -> bool:
        return self._output_ids[id(v)] > 0

    # ---- construction ----
    def add_input(self, name: str, type: TensorType, span: Span | None = None) -> Value:
        v = Value(type, "input", name=name, span=span)
        self.inputs.append(v)
        self._input_named.setdefault(name, v)
        return v

    def remove_input(self, v: Value) -> None:
        self.inputs.remove(v)
        if self._input_named.get(v.name) is v:
            del self._input_named[v.name]

    def input_named(self, name: str) -> Value | None:
        """Asked per parameter and per random call: a scan of the inputs each time was quadratic (4,000
        inputs, each through its own linear: 5 s)."""
        return self._input_named.get(name)

    def add_param(self, name: str, spec: ParamSpec, dtype: DType, span: Span | None = None) -> Value:
        clash = self.input_named(name)
        if clash is not None:  # in ONNX an initializer named like an input is that input's default
            raise ArchError(f"parameter '{name}' has the name of a model input; name it apart with 'as'", span,
                            [(f"input '{name}' is declared here", clash.span)] if clash.span else [])
        if name in self.params:
            prev = self.params[name]
            raise ArchError(f"parameter '{name}' is defined twice; name the layers apart with 'as', or, to use the "
                            "same weights again (a GAN's discriminator on real and fake), label the first call "
                            "(D(a) as disc) and call layer(\"disc\") after", span,
                            [("first defined here", prev.span)] if prev.span else [])
        v = Value(TensorType(dtype, tuple(spec.shape)), "param" if spec.trainable else "buffer", name=name,
                  spec=spec, span=span)
        self.params[name] = v
        return v

    def add_const(self, data: np.ndarray, span: Span | None = None) -> Value:
        dt = next((d for d in DType if d.np is not None and np.dtype(d.np) == data.dtype), None)
        if dt is None and data.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 (DType.bfloat16 has no numpy type)
            dt = DType.bfloat16
        if dt is None:
            raise ValueError(f"a constant of dtype {data.dtype} has no archdsl dtype")
        v = Value(TensorType(dt, tuple(int(s) for s in data.shape)), "const", data=data, span=span)
        self.consts.append(v)
        return v

    def make_node(self, op: str, inputs: list[Value], attrs: dict, name: str, span: Span | None,
                  out_types: list[TensorType] | None = None) -> Node:
        """A node whose output types come from the op's shape rule (unless given); not yet placed."""
        node = Node(op, list(inputs), dict(attrs), name, span)
        if out_types is None:
            out_types = infer_node(node)
        node.outputs = [Value(t, "node", producer=node, index=i, span=span) for i, t in enumerate(out_types)]
        for v in node.inputs:
            v.uses.append(node)
        return node

    def add_node(self, op: str, inputs: list[Value], attrs: dict, name: str, span: Span | None = None) -> Node:
        node = self.make_node(op, inputs, attrs, name, span)
        self.nodes.append(node)
        return node

    def set_output(self, name: str, value: Value) -> None:
        self._outputs.append((name, value))
        self._output_ids[id(value)] += 1

    # ---- mutation helpers: the only way inputs change ----
    def set_input(self, node: Node, i: int, value: Value) -> None:
        old = node.inputs[i]
        old.uses.remove(node)
        node.inputs[i] = value
        value.uses.append(node)
        if node.slots is not None:
            node.slots[id(old)].remove(i)
            node.slots.setdefault(id(value), []).append(i)

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        if old is new:
            return
        users, old.uses = old.uses, []
        done: set[int] = set()
        for node in users:
            if id(node) in done:  # read twice: both places went at its first turn
                continue
            done.add(id(node))
            if node.slots is None and len(node.inputs) > _WIDE:
                node.slots = {}
                for i, v in enumerate(node.inputs):
                    node.slots.setdefault(id(v), []).append(i)
            if node.slots is None:
                at = [i for i, v in enumerate(node.inputs) if v is old]
            else:
                at = node.slots.pop(id(old), [])
                node.slots.setdefault(id(new), []).extend(at)
            for i in at:
                node.inputs[i] = new
        new.uses.extend(users)
        if self.is_output(old):
            self.outputs = [(n, new if v is old else v) for n, v in self.outputs]

    def remove_node(self, node: Node) -> None:
        for v in node.outputs:
            if v.uses or self.is_output(v):
                raise ValueError(f"removing {node} whose output is still used")
        for v in node.inputs:
            v.uses.remove(node)
        self.nodes.remove(node)

    # ---- queries ----
    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.params.values()
        yield from self.consts
        for n in self.nodes:
            yield from n.outputs

    def trainable(self) -> list[Value]:
        return [v for v in self.params.values() if v.kind == "param"]

    def buffers(self) -> list[Value]:
        return [v for v in self.params.values() if v.kind == "buffer"]

    def param_count(self) -> int:
        return sum(int(np.prod(v.type.shape, dtype=np.int64)) for v in self.trainable())

    def buffer_count(self) -> int:
        return sum(int(np.prod(v.type.shape, dtype=np.int64)) for v in self.buffers())

    def param_bytes(self) -> dict[str, int]:
        """The bytes of each parameter and buffer, as a model file (or a train step's state) holds them."""
        return {k: int(np.prod(v.type.shape, dtype=np.int64)) * np.dtype(v.type.dtype.numpy).itemsize
                for k, v in self.params.items()}

    def prune_params(self) -> None:
        """Drop parameters and constants no node reads (after passes, or an unused layer)."""
        self.params = {k: v for k, v in self.params.items() if v.uses or self.is_output(v)}
        self.consts = [v for v in self.consts if v.uses or self.is_output(v)]


_OPERATORS = frozenset({"getitem", "add", "sub", "mul", "div", "pow", "floordiv", "remainder", "matmul", "neg",
                        "lt", "le", "gt", "ge"})


def infer_node(node: Node) -> list[TensorType]:
    try:
        return list(node.opdef.infer([v.type for v in node.inputs], node.attrs))
    except ShapeError as e:
        e.with_span(node.span)
        if node.op not in _OPERATORS and not e.message.startswith((node.op, "'", "(")):  # "dim1 3 is out of
            # range ...": say whose (an operator's message names its '+' or its slice itself)
            e.message = f"{node.op}: {e.message}"
            e.args = (e.message,)
        if not e.notes:
            e.notes = provenance(node.inputs, node.span, e.message)
        raise e from None


def provenance(inputs, at, message: str | None = None) -> list:
    """Where each data input of a failing op was made, when that is elsewhere in the source (`at`, its span);
    with the `message`, only the inputs it is about: it shows their shape or dtype, or speaks of the input
    (kernel_size=0 or clamp's bounds are about no input)."""
    notes = []
    for v in inputs:
        if v.kind in ("param", "buffer", "const"):
            continue
        if message is not None and shape_str(v.type) not in message and \
                not re.search(rf"\b({v.type.dtype}|input)\b", message):
            continue
        span = v.producer.span if v.producer is not None else v.span
        # the failing op's own span (x -> f -> g: each node starts where the chain does) says nothing new; the left
        # operand of `a * w - b * w` starts there too but ends before it, and is said (keypoints hunt)
        if span is None or (at and (span.line, span.col, span.end_line, span.end_col) ==
                            (at.line, at.col, at.end_line, at.end_col)):
            continue
        what = f"'{v.name}'" if v.kind == "input" else f"the {v.producer.op} '{v.producer.name}'"
        note = (f"{v.type} comes from {what}", span)
        if note not in notes:  # `keep + keep`: one note
            notes.append(note)
        notes.extend(n for n in _made(v, message) if n not in notes)
    return notes[:3]


def _made(v, message: str | None) -> list:
    """Where a formula dim the message names was made, when ops that keep it lie between (a linear's wrong
    width through a reshape's -1, then relu and dropout: the note named the dropout alone; review118)."""
    notes = []
    for d in dict.fromkeys(d for d in v.type.shape if not isinstance(d, int) and is_formula(d)):
        if message is not None and str(d) not in message:
            continue
        node, seen = v.producer, set()
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            up = next((i for i in node.inputs if d in i.type.shape), None)
            if up is None:
                break
            node = up.producer
        if node is not None and node is not v.producer and up is None and node.span is not None:
            notes.append((f"{d} is made by the {node.op} '{node.name}'", node.span))
    return notes
