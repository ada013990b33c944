"""Training on onnxruntime: the train-step/eval model export and the `archdsl train` loop."""

from __future__ import annotations

from .export import TRAIN_CONFIG_KEY, TRAIN_STATE_KEY, expose_initializers, lower_train_step

__all__ = ["TRAIN_CONFIG_KEY", "TRAIN_STATE_KEY", "expose_initializers", "lower_train_step"]
