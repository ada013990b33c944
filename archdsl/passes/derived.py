"""Parameters whose value is a function of other parameters (a folded BatchNorm, a transposed weight).

A pass that changes a parameter cannot compute its value: weights exist only at lowering time
(seeded init or a loaded file), and counting/checking must never materialize them. So the pass
makes a new parameter whose spec is a `DerivedSpec`: the source parameter Values and a numpy
function. The lowering sees `spec.derive` and calls it with a resolver that materializes (or loads)
each source, recursively, so derived parameters of derived parameters work too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Value
from ..ops import Init, ParamSpec
from ..types import DType, TensorType

__all__ = ["DerivedSpec", "ParamEdits", "derived_param"]


@dataclass(frozen=True)
class DerivedSpec(ParamSpec):
    sources: tuple = ()
    fn: Callable[..., np.ndarray] | None = None

    def derive(self, resolve: Callable[[Value], np.ndarray]) -> np.ndarray:
        """The value, given `resolve(source_value) -> ndarray`; computed in float64 when a source is float64
        (a float32 fold lost what -O0 kept), else in float32; cast by the caller."""
        work = np.float64 if any(v.type.dtype is DType.float64 for v in self.sources) else np.float32
        arrays = [np.asarray(resolve(v), dtype=work) for v in self.sources]
        out = np.asarray(self.fn(*arrays), dtype=work)
        if tuple(out.shape) != tuple(self.shape):
            raise ValueError(f"derived parameter '{self.name}': computed {out.shape}, expected {self.shape}")
        return np.ascontiguousarray(out)


def derived_param(name: str, type: TensorType, sources: list[Value], fn: Callable[..., np.ndarray],
                  trainable: bool = True) -> Value:
    """A parameter Value, not yet in `graph.params` (the caller places it, keeping the dict's order)."""
    spec = DerivedSpec(name, tuple(type.shape), Init("zeros"), trainable, tuple(sources), fn)
    return Value(type, "param" if trainable else "buffer", name=name, spec=spec,
                 span=sources[0].span if sources else None)


class ParamEdits:
    """Parameters a pass adds or replaces (by name), applied to `g.params` once, keeping its order:
    a replacement takes the old one's place, a new one follows the parameter it was made from.
    Later edits of the same name win, so a fold of a fold needs no special case."""

    def __init__(self, g: Graph):
        self.g = g
        self.values: dict[str, Value] = {}
        self.after: dict[str, str] = {}

    def fresh(self, want: str) -> str:
        """`want` if free, else `want#1`, `want#2`, ..."""
        name, k = want, 0
        while name in self.g.params or name in self.values:
            k += 1
            name = f"{want}#{k}"
        return name

    def set(self, v: Value, after: str | None = None) -> None:
        if v.name not in self.g.params and v.name not in self.after and after is not None:
            self.after[v.name] = after
        self.values[v.name] = v

    def apply(self) -> None:
        if not self.values:
            return
        followers: dict[str, list[str]] = {}
        for name, a in self.after.items():
            followers.setdefault(a, []).append(name)
        out: dict[str, Value] = {}

        def put(name: str, v: Value) -> None:
            out[name] = v
            for f in followers.get(name, ()):
                put(f, self.values[f])
        for k, v in self.g.params.items():
            put(k, self.values.get(k, v))
        for name, v in self.values.items():  # anchors that were never in the graph (defensive)
            out.setdefault(name, v)
        self.g.params = out
        self.values.clear()
        self.after.clear()
