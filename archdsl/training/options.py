"""What a training run is told: `archdsl train`'s flags as the loop takes them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import ArchError
from ..lower.weights import check_seed
from ..runtime import MAX_THREADS

__all__ = ["LoopOptions"]


@dataclass(frozen=True)
class LoopOptions:
    data: str
    val: str | None = None
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int | None = None  # --val and --epochs 0 evaluation (None: batch_size)
    output: Path = Path("weights.npz")
    checkpoint: Path | None = None
    resume: bool = False
    provider: str = "auto"
    threads: int | None = None
    seed: int = 0
    quiet: bool = False
    schedule: str = "constant"  # "cosine": lr * (1 + cos(pi * u)) / 2, "linear": lr * (1 - u), u the run's progress
    schedule_per: str = "epoch"  # u = (epoch - 1) / epochs, or "batch": (update - 1) / updates of the whole run
    patience: int | None = None  # stop after this many epochs without a lower val_loss; -o holds the best epoch's
    warmup: int = 0  # update s (from 1, over the whole run) at min(1, s / warmup) of the schedule's lr
    milestones: tuple[int, ...] = ()  # "step": lr * gamma ** (the milestones passed: epochs, or updates per batch)
    gamma: float = 0.1
    # the spec checked at the sizes a data file gives its symbolic dims (path, sizes), before any step runs
    check_sizes: Callable[[str, dict], None] | None = None
    weights_file: str | None = None  # --weights: what --epochs 0 evaluates is named so

    @property
    def eval_size(self) -> int:
        """--batch-size unless told: a loss that mixes a batch's examples (a contrastive one) is another number
        at another size (a CLIP's: 2.73 at 4, 4.67 at 16)."""
        return self.eval_batch_size or self.batch_size

    def validate(self) -> None:
        """What `archdsl train` checks of its flags, for a caller of run_training (batch_size=0 was a
        ZeroDivisionError, patience without val a KeyError, schedule="exp" taken as constant; review116)."""
        for name, least, optional in (("epochs", 0, False), ("batch_size", 1, False), ("warmup", 0, False),
                                      ("eval_batch_size", 1, True), ("patience", 1, True), ("threads", 0, True)):
            v = getattr(self, name)
            if v is None and optional:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
                raise ArchError(f"{name} takes an integer of {least} or more{' or None' if optional else ''}, got "
                                f"{v!r}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise ArchError(f"threads takes 0 (onnxruntime's default) to {MAX_THREADS}, got {self.threads}")
        check_seed(self.seed)
        if self.patience is not None and not self.val:
            raise ArchError("patience needs val (it watches the held-out loss)")
        for name, known in (("schedule", ("constant", "cosine", "linear", "step")),
                            ("schedule_per", ("epoch", "batch"))):
            if getattr(self, name) not in known:
                raise ArchError(f"{name} takes one of {', '.join(known)}, got {getattr(self, name)!r}")
        ms = tuple(self.milestones)
        if not all(isinstance(m, numbers.Integral) and not isinstance(m, bool) and m > 0 for m in ms) or \
                list(ms) != sorted(set(ms)):
            raise ArchError(f"milestones takes positive integers, increasing, got {list(ms)!r}")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, numbers.Real) or not 0 < self.gamma < math.inf:
            raise ArchError(f"gamma must be a positive number, got {self.gamma!r}")
