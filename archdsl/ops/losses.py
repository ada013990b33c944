"""Losses as ops: a spec that computes its own loss (`loss = cross_entropy(logits, y) + 0.1 * mean(z * z)`)
is trained on it, and `archdsl train --loss` builds the same nodes. Each reduces as torch's (`reduction`: the
mean by default, the sum, or none); their gradients are autodiff's helper ops (autodiff/train_ops.py)."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import float_input, log_softmax_of, narrow, reduce_op, widen
from ._common import i64 as _i64
from .logexp import log1p_of
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis, parity_hint

__all__ = ["BCE_ATTRS", "CE_ATTRS", "REDUCTIONS", "kept_labels", "labels64", "squashed_logits", "squashing"]

REDUCTIONS = ("mean", "sum", "none")

_OWN_SQUASH = {"cross_entropy": ("softmax", "log_softmax"), "bce_with_logits": ("sigmoid", "sigmoid")}


_VALUES_KEPT = ("flatten", "reshape", "squeeze", "unsqueeze", "permute", "transpose", "getitem")
_LAST_KEPT = ("flatten", "reshape", "squeeze", "unsqueeze")  # rows whole where the last dim stays the last


def squashing(loss: str, logits, axis: int = -1):
    """The softmax (sigmoid) node a loss that takes logits is given the output of, or None. A sigmoid's through
    ops that only move its values (DCGAN's discriminator ends sigmoid -> flatten). A softmax's only over the
    loss's class `axis`, and through ops that keep its rows whole only where both are the last dims
    (softmax -> reshape([B * T, C])): moved, its axis is no longer the classes' (softmax(x, -1) -> transpose)."""
    squash = _OWN_SQUASH.get(loss)
    if squash is None:
        return None
    node = getattr(logits, "producer", None)
    if squash[0] == "sigmoid":
        while node is not None and node.op in _VALUES_KEPT:
            node = node.inputs[0].producer
        return node if node is not None and node.op == "sigmoid" else None
    rank = logits.type.rank
    last = rank and axis % rank == rank - 1
    while last and node is not None and node.op in _LAST_KEPT and node.inputs[0].type.rank \
            and node.inputs[0].type.shape[-1] == node.outputs[0].type.shape[-1]:
        node = node.inputs[0].producer
    if node is None or node.op != "softmax" or not node.inputs[0].type.rank:
        return None
    r = node.inputs[0].type.rank
    over = node.attrs["axis"] % r
    return node if (over == r - 1 if node.outputs[0] is not logits else over == axis % rank) else None


def squashed_logits(loss: str) -> str:
    """What to say when a loss that takes logits is given a softmax's (a sigmoid's) output (squashing() found
    it): it squashes them again, so training crawls with nothing wrong in any shape (torch takes the same
    logits)."""
    squash = _OWN_SQUASH[loss]
    return (f"{loss} takes logits and applies its own {squash[1]} (as torch's), and here it is given a {squash[0]}'s "
            f"output: it trains on {squash[1]}({squash[0]}(x)), slowly or not at all")


def _scalar(e, v, t: TensorType):
    return e.const(np.array(v, dtype=t.dtype.numpy))


# ---- cross_entropy ----
def _ce_infer(ins, a):
    logits, labels = ins[0], ins[1]
    if not logits.dtype.is_float and labels.dtype.is_float:  # cross_entropy(labels, logits): cast was no fix
        fail(f"cross_entropy: the logits come first, then the labels: got {logits.dtype} logits beside {labels.dtype} "
             "labels (swapped?)")
    float_input("cross_entropy", logits, "logits")
    if logits.rank < 1:
        fail(f"cross_entropy: logits need a class dim, got a scalar {logits}")
    ax = norm_axis(a["axis"], logits.rank, "cross_entropy: axis")
    if logits.shape[ax] == 0:  # torch: "Target 0 is out of bounds"
        fail(f"cross_entropy: the class dim {a['axis']} of the logits {logits} is empty: no class for a label to be")
    want = logits.shape[:ax] + logits.shape[ax + 1:]
    if tuple(labels.shape) != tuple(want) or labels.dtype not in (DType.int64, DType.int32):
        torch_way = logits.rank > 2 and ax % logits.rank == logits.rank - 1 and \
            tuple(labels.shape) == logits.shape[:1] + logits.shape[2:]  # [B, C, T] logits, [B, T] labels
        fail(f"cross_entropy: labels must be integer class indices (int64 or int32) shaped {list(want)} (logits "
             f"{logits} without the class axis {a['axis']}), got {labels}"
             + ("; torch's CrossEntropyLoss reads the classes on dim 1: give axis=1" if torch_way else ""))
    if not 0.0 <= a["label_smoothing"] <= 1.0:
        fail(f"cross_entropy: label_smoothing must be in [0, 1], got {a['label_smoothing']}", "label_smoothing")
    _no_mean_of_none("cross_entropy", want, a)
    return [TensorType(logits.dtype, tuple(want) if a["reduction"] == "none" else ())]


def _no_mean_of_none(name: str, shape, a) -> None:
    """A mean over no examples known when building: onnxruntime's ReduceMean gives 0, torch NaN (a size that
    is 0 at run time only is REFERENCE's 0)."""
    if a["reduction"] == "mean" and 0 in shape:
        fail(f"{name}: the losses {list(shape)} are empty (an empty slice?): their mean is NaN in torch; "
             "reduction=\"sum\" gives 0", "reduction")


def labels64(e, lab, t: TensorType):
    return lab if t.dtype is DType.int64 else e.op("Cast", [lab], to=DType.int64.onnx)


def kept_labels(e, lab64: str, c):
    """(the labels with ignored ones replaced by class 0, 1.0 where a label counts) under ignore_index; the
    labels as they are and None without it."""
    ig = c.attrs["ignore_index"]
    if ig is None:
        return lab64, None
    keep = e.op("Not", [e.op("Equal", [lab64, _i64(e, ig)])])
    return e.op("Where", [keep, lab64, _i64(e, 0)]), e.op("Cast", [keep], to=c.in_types[0].dtype.onnx)


def reduced(e, per: str, kept, reduction: str, outputs=None, dtype: DType | None = None) -> str:
    """Per-label losses (0 where a label is ignored) as torch reduces them: the mean over the labels that count
    (0/0 when none does, as torch's), their sum, or as they are. 16-bit sums in float32: 65,536 labels
    counted to inf in float16, and a bfloat16 sum stops growing at 256 ones."""
    if reduction == "none":
        return e.op("Identity", [per], outputs=outputs)
    if dtype is not None and dtype.is_16bit:
        per = e.op("Cast", [per], to=DType.float32.onnx)
        kept = None if kept is None else e.op("Cast", [kept], to=DType.float32.onnx)
        return e.op("Cast", [reduced(e, per, kept, reduction)], to=dtype.onnx, outputs=outputs)
    if reduction == "sum":
        return e.op("ReduceSum", [e.op("Flatten", [per], axis=0)], keepdims=0, outputs=outputs)
    if kept is None:
        return e.op("ReduceMean", [per], keepdims=0, outputs=outputs)
    total = e.op("ReduceSum", [e.op("Flatten", [per], axis=0)], keepdims=0)
    return e.op("Div", [total, e.op("ReduceSum", [kept], keepdims=0)], outputs=outputs)


def _ce_lower(e, ins, outs, c):
    """-log softmax at each label (with smoothing, mixed with the mean over classes), per label, reduced."""
    logits, labels = ins
    lt = c.in_types[0]
    ax = c.attrs["axis"] % lt.rank
    eps = c.attrs["label_smoothing"]
    lab, kept = kept_labels(e, labels64(e, labels, c.in_types[1]), c)
    lsm = log_softmax_of(e, logits, ax, lt.dtype)
    per = e.op("GatherElements", [lsm, e.op("Unsqueeze", [lab, _i64(e, [ax])])], axis=ax)
    if eps:  # the mean over the classes: 16-bit in float32, as torch's sums (bfloat16 over 50,257 was 9.6 for 10.7)
        mean = reduce_op(e, "ReduceMean", widen(e, lsm, lt), [ax], 1)
        mean = narrow(e, mean, lt)
        per = e.op("Add", [e.op("Mul", [per, _scalar(e, 1.0 - eps, lt)]), e.op("Mul", [mean, _scalar(e, eps, lt)])])
    per = e.op("Neg", [e.op("Squeeze", [per, _i64(e, [ax])])])
    if kept is not None:  # chosen, not multiplied: an ignored row's -inf or NaN logits times 0 made the loss NaN
        per = e.op("Where", [e.op("Greater", [kept, _scalar(e, 0.0, lt)]), per, _scalar(e, 0.0, lt)])
    reduced(e, per, kept, c.attrs["reduction"], outputs=outs, dtype=lt.dtype)


CE_ATTRS = (Attr("axis", "int", -1, doc="the class axis"),
            Attr("label_smoothing", "float", 0.0, doc="torch's label_smoothing"),
            Attr("ignore_index", "int?", None, doc="labels equal to it count for nothing (padding)"),
            Attr("reduction", "str", "mean", choices=REDUCTIONS, doc="torch's: mean, sum or none"))

register(OpDef(
    name="cross_entropy", inputs=("logits", "labels"), category="loss", attrs=CE_ATTRS, infer=_ce_infer,
    lower=_ce_lower, positions=("labels",), cost=lambda c: 5 * numel(c.in_types[0].shape),
    grad=lambda b, c, ins, outs, gouts: [
        b.op("autodiff.cross_entropy_grad", ins[0], ins[1], gouts[0], **c.attrs), None],
    doc="cross-entropy of logits against integer class indices on `axis` (the last dim; torch's "
        "F.cross_entropy takes the classes on dim 1), with label smoothing, an ignored index and reduction "
        "(mean, sum, or none: one loss per label, 0 for an ignored one) as torch's. The built model does not "
        "check the labels (torch raises): one past the classes fails in onnxruntime's GatherElements, a negative "
        "one other than ignore_index reads a class from the end (-1 the last); `archdsl train` and `run --input` "
        "refuse both",
))


# ---- bce_with_logits ----
def _bce_infer(ins, a):
    x, t = ins
    float_input("bce_with_logits", x)
    if x.shape != t.shape or x.dtype != t.dtype:
        differ = next(((a, b) for a, b in zip(x.shape, t.shape) if a != b), None) if x.rank == t.rank else None
        fail(f"bce_with_logits: the target must have the shape and dtype of the logits {x}, got {t}"
             + (parity_hint(*differ) if differ else ""))  # an autoencoder's 2*(H//2) against H
    _no_mean_of_none("bce_with_logits", x.shape, a)
    return [x if a["reduction"] == "none" else TensorType(x.dtype, ())]


def _bce_lower(e, ins, outs, c):
    x, t = ins
    t_x = c.in_types[0]
    if t_x.dtype is DType.float32:
        softplus = e.op("Softplus", [e.op("Neg", [e.op("Abs", [x])])])
    elif t_x.dtype is DType.float64:  # log1p(exp(-|x|)): log(1 + u) lost u past |x| ~ 18 (0 at 40, torch's
        softplus = log1p_of(e, e.op("Exp", [e.op("Neg", [e.op("Abs", [x])])]), np.float64, finite=True)  # 4.2e-18)
    else:  # onnxruntime's CPU Softplus is float32 only: log(1 + exp(-|x|)), which cannot overflow
        one = e.const(np.array(1, dtype=t_x.dtype.numpy))
        softplus = e.op("Log", [e.op("Add", [one, e.op("Exp", [e.op("Neg", [e.op("Abs", [x])])])])])
    per = e.op("Add", [e.op("Sub", [e.op("Relu", [x]), e.op("Mul", [x, t])]), softplus])
    reduced(e, per, None, c.attrs["reduction"], outputs=outs, dtype=t_x.dtype)


BCE_ATTRS = (Attr("reduction", "str", "mean", choices=REDUCTIONS, doc="torch's: mean, sum or none"),)

register(OpDef(
    name="bce_with_logits", inputs=("x", "target"), category="loss", infer=_bce_infer, lower=_bce_lower,
    attrs=BCE_ATTRS,
    cost=lambda c: 6 * numel(c.in_types[0].shape),
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.bce_grad", ins[0], ins[1], gouts[0], **c.attrs),
                                         b.op("autodiff.bce_target_grad", ins[0], ins[1], gouts[0], **c.attrs)],
    doc="binary cross-entropy of logits against targets in [0, 1] of the same shape, reduced by mean, sum or "
        "none (torch's F.binary_cross_entropy_with_logits)",
))
