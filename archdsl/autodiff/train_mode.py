"""The forward graph in training mode: batchnorm on batch statistics (its running stats updated as torch
does), dropout active, random numbers drawn from the step's inputs. A table keyed by op name says which ops
behave differently when training."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..diagnostics import ArchError
from ..ir import Graph, Node, Value
from ..ops import OpCall, get
from ..ops.attention import decompose
from ..ops.conv import geometry as conv_geom
from ..ops.conv import mode_pad
from ..ops.random import KINDS, randint_bounds, stream_id
from ..ops.recurrent import check_trainable
from ..ops.recurrent import decompose as decompose_recurrent
from ..ops.sdpa import written as sdpa_written
from ..types import DType
from .builder import GradBuilder
from .conv_train import conv_gemm_fits
from .conv_winograd import MIN_TILE_ROWS, WINOGRAD_TILES, tile_rows, winograd_fits

__all__ = ["TRAIN_FORMS", "TrainInputs", "drop_seed_input", "to_training"]


class TrainInputs:
    """The step's scalar inputs a training form may read (the dropout seed is made on first use)."""

    def __init__(self, make_seed: Callable[[], Value], step: Value):
        self._make_seed = make_seed
        self._seed: Value | None = None
        self.step = step

    @property
    def seed(self) -> Value:
        if self._seed is None:
            self._seed = self._make_seed()
        return self._seed


def _batchnorm(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]]:
    x, *rest = node.inputs
    if node.attrs["affine"]:
        w, bias, rm, rv = rest
    else:
        ch = x.type.shape[1]
        w, bias = b.const(np.ones(ch), like=x), b.const(np.zeros(ch), like=x)
        rm, rv = rest
    y, new_rm, new_rv, *_ = b.op("autodiff.batchnorm_train", x, w, bias, rm, rv, eps=node.attrs["eps"],
                                   momentum=node.attrs["momentum"])
    return y, {rm.name: new_rm, rv.name: new_rv}


def _dropout(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]]:
    x = node.inputs[0]
    p = node.attrs["p"]
    if p == 0.0:
        return x, {}
    return _dropped(b, x, p, extra, stream_id(node.name)), {}


def _dropped(r, x: Value, p: float, extra: TrainInputs, stream: int) -> Value:
    """x with dropout p drawn on it; p = 1 is torch's x * 0 (a NaN or inf stays NaN, the gradient 0), where
    a mask would scale what it keeps by 1 / (1 - p)."""
    if p == 1.0:
        return r.op("mul", x, r.scalar(0.0, x))
    return r.op("mul", x, r.op("autodiff.dropout_mask", x, extra.seed, extra.step, p=p, stream=stream))


def _drop_path(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]]:
    """One draw per example: the dropout mask of x's [B, 1, ..., 1] corner, broadcast over the example."""
    x = node.inputs[0]
    p = node.attrs["p"]
    if p == 0.0:
        return x, {}
    if p == 1.0:  # every example dropped: torch's drop_path gives x * 0
        return b.op("mul", x, b.scalar(0.0, x)), {}
    corner = b.op("getitem", x, index=(("s", None, None, None),) + (("s", 0, 1, None),) * (x.type.rank - 1)) \
        if x.type.rank > 1 else x
    mask = b.op("autodiff.dropout_mask", corner, extra.seed, extra.step, p=p, stream=stream_id(node.name))
    return b.op("mul", x, mask), {}


def _random(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]]:
    """rand_like/randn_like from the step's seed and step (onnxruntime's random ops are seeded at build time)."""
    kind = KINDS[node.op]
    low, high = randint_bounds(node.attrs) if kind == "integer" else (0, 1)
    return b.op("autodiff.random_values", node.inputs[0], extra.seed, extra.step, kind=kind,
                dtype=node.outputs[0].type.dtype.label, stream=stream_id(node.name), low=low, high=high), {}


def _attention(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]] | None:
    """Attention dropout acts on the softmax weights, inside the op: train on its decomposition."""
    p = node.attrs["dropout"]
    if p == 0.0:
        return None
    stream = stream_id(node.name)

    def drop(r, probs):
        return _dropped(r, probs, p, extra, stream)

    call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
    return decompose(b, call, list(node.inputs), drop), {}


def _sdpa(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]] | None:
    """scaled_dot_product_attention's dropout_p, as multihead_attention's dropout: on the softmax weights."""
    p = node.attrs["dropout_p"]
    if p == 0.0:
        return None
    stream = stream_id(node.name)
    call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
    return sdpa_written(b, call, list(node.inputs), lambda r, probs: _dropped(r, probs, p, extra, stream)), {}


def _conv(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[Value, dict[str, Value]] | None:
    """A conv trains as GEMMs: 3x3 stride 1 by Winograd F(4x4, 3x3) or F(2x2, 3x3) where there are enough tiles
    (conv_winograd.py), others as im2col GEMMs in channels-last layout (conv_train.py). onnxruntime's
    Conv/ConvTranspose with a weight that is a graph input measured 2-4x slower than either. Grouped convs
    and few input channels keep the Conv form. A padding_mode other than zeros pads x first (the pad op), and
    the GEMMs convolve the padded x unpadded."""
    x, w = node.inputs[0], node.inputs[1]
    padded = mode_pad(x.type, node.attrs, x.type.rank - 2)
    x_t = get("pad").infer([x.type], {**get("pad").defaults(), **padded[0]})[0] if padded else x.type
    if not conv_gemm_fits(x_t, w.type.shape, node.attrs["groups"]):
        return None
    if padded:
        x = b.op("pad", x, **padded[0])
        k, s, d, pads = padded[1]
    else:
        k, s, d, pads = conv_geom(x.type, node.attrs, x.type.rank - 2)
    flat_pads = tuple(p[0] for p in pads) + tuple(p[1] for p in pads)
    if winograd_fits(x.type, w.type.shape, k, s, d, node.attrs["groups"]):
        for m in WINOGRAD_TILES:
            if tile_rows(x.type, flat_pads, m) >= MIN_TILE_ROWS:
                return b.op("autodiff.conv_wino", x, *node.inputs[1:], pads=flat_pads, m=m)[0], {}
    rows = node.outputs[0].type.shape[0] if isinstance(node.outputs[0].type.shape[0], int) else 32
    rows *= math.prod(node.outputs[0].type.shape[2:])
    y = b.op("autodiff.conv_gemm", x, *node.inputs[1:], kernel=tuple(k), stride=tuple(s), dilation=tuple(d),
             pads=flat_pads, order="ck" if w.type.shape[0] > rows else "kc")  # transpose the smaller of weight and col
    return y[0], {}


def _recurrent(b: GradBuilder, node: Node, extra: TrainInputs) -> tuple[list[Value], dict[str, Value]] | None:
    """lstm/gru dropout acts between stacked layers, inside the op: train on its unrolled decomposition
    with a mask on each layer's output but the last's (the form torch's training uses). A float64 one too:
    onnxruntime has no float64 LSTM or GRU kernel, so its train step failed at run (rnn2 hunt)."""
    p = node.attrs["dropout"] if node.attrs["num_layers"] > 1 else 0.0
    if p == 0.0 and node.inputs[0].type.dtype is not DType.float64:
        return None
    call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs)
    try:
        check_trainable(node.op, call)
    except ArchError as err:
        raise err.with_span(node.span) from None

    def drop(r, seq, layer):
        return _dropped(r, seq, p, extra, stream_id(f"{node.name}.layer{layer}"))

    return decompose_recurrent(b, node.op, call, list(node.inputs), drop if p else None), {}


TRAIN_FORMS: dict[str, Callable] = {"batchnorm": _batchnorm, "dropout": _dropout, "drop_path": _drop_path,
                                    "rand_like": _random, "randn_like": _random, "randint_like": _random,
                                    "multihead_attention": _attention, "scaled_dot_product_attention": _sdpa,
                                    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv,
                                    "lstm": _recurrent, "gru": _recurrent}


def drop_seed_input(graph: Graph) -> None:
    """The seeds random calls read at inference (the implicit `seed`, or one given seed=): the step's own seed
    (a state input, with the step number) replaces them, so an input goes when they are all that read it, or
    when it is the implicit one and nothing reads it (a dropped random call's)."""
    for v in list(graph.inputs):
        if graph.is_output(v):  # `-> (y, s)`: the step still outputs it
            continue
        only_seed = all(u.opdef.random and v is u.inputs[1] and v is not u.inputs[0] for u in v.uses)
        if v.uses and only_seed or v in graph.implicit and not v.uses:
            graph.remove_input(v)


def to_training(graph: Graph, extra: TrainInputs) -> dict[str, Value]:
    """Rewrite, in place, every op with a training form; returns buffer name -> its value after the step."""
    updates: dict[str, Value] = {}
    nodes: list[Node] = []
    seen: dict[str, int] = {}
    for node in graph.nodes:
        form = TRAIN_FORMS.get(node.op)
        if form is None:
            nodes.append(node)
            continue
        seen[node.name] = seen.get(node.name, 0) + 1
        if seen[node.name] > 1:  # a second `dropout(0.5) as d`: its own name, so its own mask stream
            node.name = f"{node.name}~{seen[node.name]}"
        b = GradBuilder(graph, node, tag="train", sink=nodes)
        made = form(b, node, extra)
        if made is None:  # this use behaves as at inference
            nodes.append(node)
            continue
        new, ups = made
        for old, value in zip(node.outputs, new if isinstance(new, (list, tuple)) else [new]):
            graph.replace_all_uses_with(old, value)
        for v in node.inputs:
            v.uses.remove(node)
        updates.update(ups)
    graph.nodes = nodes
    return updates
