"""Parameters whose value is a function of other parameters (a folded BatchNorm, a transposed weight).

A pass that changes a parameter cannot compute its value: weights exist only at lowering time
(seeded init or a loaded file), and counting/checking must never materialize them. So the pass
makes a new parameter whose spec is a `DerivedSpec`: the source parameter Values and a numpy
function. The lowering sees `spec.derive` and calls it with a resolver that materializes (or loads)
each source, recursively, so derived parameters of derived parameters work too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir import Graph, Value
from ..ops import Init, ParamSpec
from ..types import TensorType

__all__ = ["DerivedSpec", "derived_param", "fresh_param_name", "swap_params"]


@dataclass(frozen=True)
class DerivedSpec(ParamSpec):
    sources: tuple = ()
    fn: Callable[..., np.ndarray] | None = None

    def derive(self, resolve: Callable[[Value], np.ndarray]) -> np.ndarray:
        """The value, given `resolve(source_value) -> ndarray`; computed in float32, cast by the caller."""
        arrays = [np.asarray(resolve(v), dtype=np.float32) for v in self.sources]
        out = np.asarray(self.fn(*arrays), dtype=np.float32)
        if tuple(out.shape) != tuple(self.shape):
            raise ValueError(f"derived parameter '{self.name}': computed {out.shape}, expected {self.shape}")
        return np.ascontiguousarray(out)


def derived_param(name: str, type: TensorType, sources: list[Value], fn: Callable[..., np.ndarray],
                  trainable: bool = True) -> Value:
    """A parameter Value, not yet in `graph.params` (the caller places it, keeping the dict's order)."""
    spec = DerivedSpec(name, tuple(type.shape), Init("zeros"), trainable, tuple(sources), fn)
    return Value(type, "param" if trainable else "buffer", name=name, spec=spec,
                 span=sources[0].span if sources else None)


def fresh_param_name(g: Graph, want: str, taken: set[str]) -> str:
    """`want` if free, else `want#1`, `want#2`, ..."""
    name, k = want, 0
    while name in g.params or name in taken:
        k += 1
        name = f"{want}#{k}"
    return name


def swap_params(g: Graph, swaps: dict[str, list[Value]]) -> None:
    """Rebuild `g.params` once: each name in `swaps` is replaced, in place, by the listed Values
    (which may include the old one, to keep it and add new ones right after it)."""
    if not swaps:
        return
    out: dict[str, Value] = {}
    for k, v in g.params.items():
        for nv in swaps.get(k, [v]):
            out[nv.name] = nv
    g.params = out
