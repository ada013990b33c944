"""The train-step and eval ONNX models: lowered like any model, then every state tensor (parameters,
buffers, optimizer state, lr, step, seed) is also made a graph input, its initializer the default value,
so the first step needs only data and later steps feed back what the previous one returned."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper

from ..autodiff import TrainConfig, TrainStep, build_train_step
from ..diagnostics import ArchError
from ..ir import Graph
from ..lower import lower_graph

__all__ = ["TRAIN_CONFIG_KEY", "TRAIN_STATE_KEY", "expose_initializers", "lower_train_step", "train_metadata"]

TRAIN_STATE_KEY = "archdsl.train_state"
TRAIN_CONFIG_KEY = "archdsl.train"


def expose_initializers(model: onnx.ModelProto, names: list[str]) -> None:
    """Make each named initializer a graph input too (an overridable default, ONNX IR version >= 4)."""
    inits = {t.name: t for t in model.graph.initializer}
    have = {i.name for i in model.graph.input}
    for name in names:
        if name in have:
            continue
        t = inits.get(name)
        if t is None:
            raise ArchError(f"internal: no initializer '{name}' to expose as an input")
        model.graph.input.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))


def train_metadata(step: TrainStep) -> dict:
    """The step's settings (its loss resolved: a config may leave it to the model) and its inputs."""
    info = step.config.describe()
    info.update(inputs=step.data_inputs, output=step.output, params=step.params, buffers=step.buffers,
                state_inputs=step.state_inputs)
    return {TRAIN_STATE_KEY: json.dumps(step.state, sort_keys=False), TRAIN_CONFIG_KEY: json.dumps(info)}


def _labels_range(step: TrainStep, graph: Graph, metadata: dict) -> dict:
    """--loss cross_entropy's labels are class indices below the output's class count: added to the
    archdsl.int_inputs the forward recorded (`archdsl run STEP.onnx` drew 0s and 1s for them)."""
    pred = dict(graph.outputs).get(step.output)
    classes = pred.type.shape[-1] if pred is not None and pred.type.rank else None
    if step.config.loss != "cross_entropy" or not isinstance(classes, int):
        return {}
    ranges = json.loads(metadata.get("archdsl.int_inputs", "{}"))
    ignore = {} if step.config.ignore_index is None else {"ignore": step.config.ignore_index}
    return {"archdsl.int_inputs": json.dumps({**ranges, "labels": {"low": 0, "high": classes, **ignore}},
                                             sort_keys=True)}


def lower_train_step(graph: Graph, cfg: TrainConfig, *, opset: int, seed: int, weights: dict | None,
                     metadata: dict, doc: str, optimize=None) -> tuple[onnx.ModelProto, TrainStep]:
    """Build the train step from a checked forward graph (consumed), optimize (`optimize(graph)`), lower."""
    step = build_train_step(graph, cfg)
    if optimize is not None:
        optimize(graph)
        if "seed" in step.state_inputs and "seed" not in graph.params:  # read only by dropped random calls
            step.state_inputs.remove("seed")
        lost = [n for n in step.state_inputs if n not in graph.params]
        if lost:
            raise ArchError(f"internal: optimizing the train step removed the state input '{lost[0]}'")
    if weights is not None:
        unknown = sorted(set(weights) - set(step.state_inputs))
        if unknown:
            raise ArchError(f"weights file has {len(unknown)} name{'s' if len(unknown) > 1 else ''} the train step "
                            f"does not: '{unknown[0]}'")
    if "seed" in step.state_inputs and "seed" not in (weights or {}):  # dropout's stream follows --seed
        weights = {**(weights or {}), "seed": np.array(seed, np.int64)}
        metadata = {**metadata, "archdsl.seed": str(seed)}  # also where the weights were given
    meta = {**metadata, **train_metadata(step), **_labels_range(step, graph, metadata)}
    res = lower_graph(graph, opset=opset, seed=seed, weights=weights, metadata=meta, doc=doc)
    expose_initializers(res.model, step.state_inputs)
    return res.model, step
