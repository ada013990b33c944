"""Non-finite losses and states in training, said with their likely cause: a NaN starting state, a NaN
gradient (a 0/0), or weights that diverged."""

from __future__ import annotations

import numpy as np

from ..diagnostics import ArchError
from .data import first_index

__all__ = ["check_finite_state", "examples", "not_finite"]


def check_finite_state(trainer, source: str) -> None:
    """A NaN anywhere in the starting state, or an inf in a trained parameter or its optimizer state (a
    --weights or checkpoint file), makes every loss NaN; said so here, rather than blamed on the learning
    rate after the first step. A buffer may hold an inf (a -inf additive mask)."""
    buffers = set(trainer.info.state_inputs) - set(trainer.info.params)
    buffers -= {f"{p}.{slot}" for p in trainer.info.params for slot in trainer.info.config.optimizer.state_names()}
    for name in trainer.info.state_inputs:
        a = trainer.get(name)
        if a.dtype.kind != "f":
            continue
        bad = np.isnan(a) if name in buffers else ~np.isfinite(a)
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{source}: '{name}'{at if at else ''} is {a[tuple(at)]}: training starts from "
                            f"{'numbers' if name in buffers else 'finite values'} only")


_MODEST = 1e6  # a loss or weight under it has not diverged


def not_finite(loss: float, epoch: int, step: int, steps: int, first: bool, weights: str | None = None,
               idx=(), trainer=None, last: float = 0.0) -> str:
    """Before the first update (at a learning rate above 0) the learning rate cannot be the cause: then the
    data, the model or the weights it starts from are (finite weights of 1e33 from a diverged run give an inf
    loss too). After it, a NaN loss with NaN among trained parameters whose other values stay modest, the loss
    before (`last`) modest too, may be a NaN gradient (a 0/0: sqrt or a division at 0),
    which a lower rate does not cure, or one step that diverged (the weights as they stand cannot tell: the
    failing step's own update has made them NaN either way: review83 hunt); an inf loss or huge values are a
    divergence."""
    where = f"the loss is {loss} at epoch {epoch}, step {step} of {steps} ({examples(idx)})"
    if first:
        who = f"the starting weights ({weights}) or the model give it on this data" if weights else \
            "the model gives it on this data"
        return (f"{where}, before any update moved the weights: {who} (a log or sqrt of a negative, a division "
                "by zero, a softmax over only -inf, inputs out of range?), not the learning rate")
    nan = _nan_gradient(trainer) if trainer is not None and np.isnan(loss) and abs(last) < _MODEST else None
    if nan is not None:
        return (f"{where}: '{nan}' holds NaN beside values that stayed modest: either a gradient was NaN (a 0/0: "
                "a sqrt, log or division at 0 that a zero gradient reached, inf - inf?), which a lower learning "
                "rate does not cure, or the weights diverged in one step (lower the learning rate, --lr)")
    return f"{where}; if the weights diverged, lower the learning rate (--lr)"


def _nan_gradient(trainer) -> str | None:
    """The first trained parameter holding NaN where the others' finite values stay under _MODEST, else None."""
    found, largest = None, 0.0
    for name in trainer.info.params:
        a = trainer.get(name)
        if a.dtype.kind != "f" or not a.size:
            continue
        finite = a[np.isfinite(a)]
        largest = max(largest, float(np.abs(finite).max()) if finite.size else 0.0)
        if found is None and np.isnan(a).any():
            found = name
    return found if found is not None and largest < _MODEST else None


def examples(idx) -> str:
    shown = sorted(int(i) for i in idx)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return f"example {shown[0]}" if len(shown) == 1 else f"a batch of examples {', '.join(map(str, shown[:5]))}{more}"
