"""The pass manager: named passes, optimization levels as lists of names, repetition to a fixpoint.

Every pass has one contract: `fn(graph, ctx) -> bool` (did it change anything). A level is the list of
passes at or below it; `-O0` runs none, `-O1` the safe cleanups, `-O2` (the default) everything that pays
off on onnxruntime. A failure names the pass that failed."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..diagnostics import ArchError, did_you_mean
from ..ir import Graph

__all__ = [
    "DEFAULT_LEVEL",
    "MAX_ROUNDS",
    "TRAIN_LEVEL",
    "Pass",
    "PassContext",
    "PassError",
    "PassStat",
    "all_passes",
    "optimize",
    "passes_for",
    "register_pass",
]

DEFAULT_LEVEL = 2
MAX_ROUNDS = 8
TRAIN_LEVEL = 1  # a train step runs the -O1 cleanups: later passes derive parameters (BatchNorm folding,
#                  pre-transposed weights) and would hide the ones the step updates by name


class PassError(RuntimeError):
    """An optimization pass broke (a bug in archdsl, not in the input); names the pass."""


@dataclass(frozen=True)
class PassContext:
    opset: int = 17
    inference: bool = True  # a training graph keeps dropout and BatchNorm as written
    train_forward: bool = False  # a train step's forward graph before autodiff: only the train_forward passes


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[[Graph, PassContext], bool]
    level: int
    doc: str
    inference_only: bool = False
    train_forward: bool = False  # also runs (at its level) on a train step's forward graph, before autodiff

    @property
    def in_train_steps(self) -> bool:
        return self.train_forward or (self.level <= TRAIN_LEVEL and not self.inference_only)


@dataclass
class PassStat:
    name: str
    round: int
    changed: bool
    nodes_before: int
    nodes_after: int
    params_before: int
    params_after: int
    seconds: float = 0.0


_PASSES: dict[str, Pass] = {}


def register_pass(name: str, level: int, doc: str, inference_only: bool = False, train_forward: bool = False):
    def deco(fn):
        _PASSES[name] = Pass(name, fn, level, doc, inference_only, train_forward)
        return fn
    return deco


def all_passes() -> list[Pass]:
    """In pipeline order (registration order)."""
    return list(_PASSES.values())


def passes_for(level: int, disabled=(), inference: bool = True, train_forward: bool = False) -> list[Pass]:
    known = {p.name for p in all_passes()}
    for name in disabled:
        if name not in known:
            raise ArchError(f"unknown pass '{name}'{did_you_mean(name, known)} (passes: {', '.join(sorted(known))})")
    return [p for p in all_passes() if p.level <= level and p.name not in disabled
            and (p.train_forward if train_forward else inference or not p.inference_only)]


def _param_elems(g: Graph) -> int:
    """Elements of every parameter and buffer (math.prod on int shapes: np.prod per parameter was a third of
    the compile time of a 100k-node model)."""
    return sum(math.prod(v.type.shape) for v in g.params.values())


def optimize(g: Graph, level: int = DEFAULT_LEVEL, disabled=(), ctx: PassContext | None = None,
             verify: bool = False) -> list[PassStat]:
    """Run the passes of `level` in order, round after round, until none changes the graph.
    `verify` runs the checker after every pass that changed something (tests do)."""
    ctx = ctx or PassContext()
    pipeline = passes_for(level, disabled, ctx.inference, ctx.train_forward)
    stats: list[PassStat] = []
    if not pipeline:
        return stats
    from ..ir import check
    for rnd in range(1, MAX_ROUNDS + 1):
        any_change = False
        p0 = _param_elems(g)
        for p in pipeline:
            n0 = len(g.nodes)
            t0 = time.perf_counter()
            try:
                changed = bool(p.fn(g, ctx))
                if changed and verify:
                    check(g)
            except ArchError as e:
                msg = e.message if hasattr(e, 'message') else e
                raise PassError(f"optimization pass '{p.name}' failed: {msg}") from e
            except Exception as e:
                raise PassError(f"optimization pass '{p.name}' failed: {type(e).__name__}: {e}") from e
            p1 = _param_elems(g) if changed else p0
            stats.append(PassStat(p.name, rnd, changed, n0, len(g.nodes), p0, p1, time.perf_counter() - t0))
            p0 = p1
            any_change |= changed
        if not any_change:
            break
    return stats
