"""Losses, as IR: cross-entropy on logits with class indices (optional label smoothing, and an ignored index
for padding), MSE, and binary cross-entropy with logits. Each reduces by the mean, as torch's default does
(cross_entropy's over the labels it does not ignore)."""

from __future__ import annotations

from ..diagnostics import ArchError
from ..ir import Value
from ..types import DType, Sym, TensorType
from .builder import GradBuilder

__all__ = ["LOSSES", "class_axis", "image_classes", "labels_type", "make_loss"]

LOSSES = ("cross_entropy", "mse", "bce_with_logits", "model")  # model: the spec's own scalar output


def class_axis(pred: TensorType) -> int:
    """Classes sit on the last dim ([B, C] or a language model's [B, T, V]); labels drop that dim."""
    return pred.rank - 1


def _labels_name(output: str) -> str:
    """A name for the labels input in a suggestion, not the output's own (`cross_entropy(y, y, ...)`)."""
    return "targets" if output != "targets" else "labels"


def labels_type(loss: str, pred: TensorType, output: str) -> TensorType:
    if loss == "cross_entropy":
        if pred.rank < 1 or not pred.dtype.is_float:
            raise ArchError(f"cross_entropy needs float logits with a class dim; output '{output}' is {pred}")
        ax = class_axis(pred)
        classes = pred.shape[ax]
        if isinstance(classes, Sym):  # a class count is a fixed size: the data check could not catch a [B, C, T]
            torch_way = (f": for torch's layout, classes on dim 1 ({pred.shape[1]} here), end the spec with "
                         f"permute({[0, *range(2, pred.rank), 1]})" if pred.rank >= 3 else "")
            raise ArchError(f"cross_entropy takes the classes on the last dim of output '{output}' ({pred}: "
                            f"{classes}), a symbolic dim, where a class count is a fixed size{torch_way}; or "
                            f"compute the loss in the spec with the class axis chosen (an output named loss = "
                            f"cross_entropy({output}, {_labels_name(output)}, axis=1), {_labels_name(output)} an "
                            f"input of the model)")
        if classes == 0:
            raise ArchError(f"cross_entropy over output '{output}' ({pred}): its class dim is empty, so no label "
                            "is a class (torch refuses it)")
        if classes == 1:  # torch's loss is 0 too, whatever the weights: nothing would train
            ones = pred.rank >= 3 and all(d == 1 for d in pred.shape[2:]) and pred.shape[1] != 1
            layout = f"; if dim 1 ({pred.shape[1]}) holds the classes (torch's layout), end the spec with flatten" \
                if ones else ""
            raise ArchError(f"cross_entropy over output '{output}' ({pred}): one class, so the loss is 0 whatever "
                            "the weights; for a yes/no target, --loss bce_with_logits with float 0/1 labels of the "
                            f"output's shape{layout}")
        return TensorType(DType.int64, pred.shape[:ax] + pred.shape[ax + 1:])
    if loss in ("mse", "bce_with_logits"):
        if not pred.dtype.is_float:
            raise ArchError(f"{loss} needs a float output; output '{output}' is {pred}")
        if 0 in pred.shape:
            raise ArchError(f"{loss} over output '{output}' ({pred}): it is empty, and the mean of no elements is "
                            "NaN (torch's, with a warning)")
        return pred
    if loss == "model":
        raise ArchError("internal: the model's own loss takes no labels")
    raise ArchError(f"unknown loss '{loss}' (one of {', '.join(LOSSES)})")


def image_classes(loss: str, pred: Value, output: str, defaulted: bool = False) -> str | None:
    """What to say of an image-shaped output [N, C, ...] trained with cross_entropy: the classes are taken on
    its last dim (the one loss convention here, [..., classes]), where torch's cross_entropy takes dim 1 of
    such a map. A symbolic last dim is refused by labels_type; a fixed one built a step whose labels were
    [N, C, ...], with no word. A map of one channel holds values, not classes' scores (a denoiser's noise).
    Known to be a map where a conv made it (dim 1 its channels: a WaveNet's [N, 16, 64], a U-Net's 17x23), or
    where it is square: fewer channels than spatial size also matched a channels-last [N, 16, 64, 21] and a
    multi-codebook [N, 4, 16, 512], whose classes are rightly last (review43)."""
    t = pred.type
    s = t.shape
    if loss != "cross_entropy" or t.rank < 3 or not isinstance(s[-1], int) or s[1] == s[-1]:
        return None
    if not _made_by_conv(pred) and (t.rank < 4 or s[-1] != s[-2]):
        return None
    said = (f"cross_entropy takes the classes on the last dim of output '{output}' ({t}: {s[-1]} classes, "
            f"labels {TensorType(DType.int64, s[:-1])})")
    if s[1] != 1:
        said += f"; torch's takes dim 1 ({s[1]}) of such a map: for that layout end the spec with " \
                f"permute({[0, *range(2, t.rank), 1]})"
    else:
        said += "; a map of one channel holds values, not classes' scores"
    if defaulted:
        said += "; cross_entropy is the default loss: --loss names another (mse, bce_with_logits)"
    return said


_CONVS = ("conv", "conv1d", "conv2d", "conv3d", "conv_transpose", "conv_transpose1d", "conv_transpose2d",
          "conv_transpose3d")
_KEEP_CHANNELS = ("batchnorm", "autodiff.batchnorm_train", "instance_norm", "group_norm", "dropout",
                  "prelu")  # dim 1 stays the channels (a train form too)


def _made_by_conv(v: Value) -> bool:
    """v is a conv's output, through ops that keep its layout (an activation, a norm over channels, an add of
    another map of its shape, a resize). Read on the graph before to_training, whose convs of 16 channels or
    more are other ops."""
    while (p := v.producer) is not None:
        if p.op in _CONVS:
            return True
        if p.op == "upsample":  # a head resized back to the input's size (DeepLab, PSPNet): channels kept
            v = p.inputs[0]
            continue
        same = [x for x in p.inputs if x.type.shape == v.type.shape]
        if not same or not (p.opdef.elementwise or p.op in _KEEP_CHANNELS):
            return False
        v = same[0]
    return False


def make_loss(b: GradBuilder, loss: str, pred: Value, labels: Value, label_smoothing: float = 0.0,
              ignore_index: int | None = None) -> Value:
    """The loss node; the settings were checked by TrainConfig.validate."""
    if loss == "cross_entropy":
        return b.op("cross_entropy", pred, labels, axis=class_axis(pred.type),
                    label_smoothing=float(label_smoothing), ignore_index=ignore_index)
    if loss == "mse":
        d = b.op("sub", pred, labels)
        return b.op("mean", b.op("mul", d, d))
    return b.op("bce_with_logits", pred, labels)
