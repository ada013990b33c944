"""Reverse-mode autodiff on the IR and the train step built from it (loss, gradients, optimizer update)."""

from __future__ import annotations

from . import kernels, movement, train_ops  # noqa: F401  (register the internal ops)
from .builder import GradBuilder
from .engine import gradients, prune_dead
from .losses import LOSSES
from .optimizers import OPTIMIZERS, OptimConfig
from .train_step import NEW, TrainConfig, TrainStep, build_train_step

__all__ = [
           "LOSSES",
           "NEW",
           "OPTIMIZERS",
           "GradBuilder",
           "OptimConfig",
           "TrainConfig",
           "TrainStep",
           "build_train_step",
           "gradients",
           "prune_dead",
]
