"""Calls that pass the shape check and are still most likely a mistake: said as a warning (and as a note where
the call fails), changing nothing."""

from __future__ import annotations

from ..ops.losses import squashed_logits
from ..ops.recurrent import layout_hint
from ..ops.shapes import prod
from ..types import dim_symbols, is_formula

__all__ = ["suspicious"]


def suspicious(op, tensors: list, attrs: dict) -> str | None:
    """A warning for one call, from its bound inputs (in the op's order) and attributes."""
    if op.name in ("cross_entropy", "bce_with_logits") and tensors:
        said = squashed_logits(op.name, tensors[0].value)
        if op.name == "cross_entropy" and not said and _one_class(tensors[0].type, attrs.get("axis", -1)):
            return ("cross_entropy over one class is 0 whatever the weights (as torch's); for a yes/no target, "
                    "bce_with_logits with float 0/1 targets of the logits' shape")
        return said and f"{said}; give it the logits (the {tensors[0].value.producer.op}'s input)"
    if not tensors:
        return None
    x = tensors[0].type
    if op.name == "reshape":
        return _fixed_reshape(x, attrs.get("shape"))
    if op.name in ("conv1d", "conv2d", "conv3d"):
        return _channels_last(op.name, x, tensors[0].value.kind == "input")
    if op.name in ("lstm", "gru"):
        return layout_hint(op.name, x, attrs.get("batch_first", True))
    return None


def _one_class(t, axis) -> bool:
    return t.rank > 0 and isinstance(axis, int) and -t.rank <= axis < t.rank and t.shape[axis] == 1


def _fixed_reshape(x, shape) -> str | None:
    """reshape(x, [32, 256]) of a [B, 16, 16]: every size fixed, so the model runs at one batch size only and
    the output has lost B (train then blames the labels' shape)."""
    symbols = sorted({s for d in x.shape for s in dim_symbols(d)})
    if not symbols or shape is None or any(not isinstance(d, int) or d == -1 for d in shape):
        return None
    total, target = prod(x.shape), prod(shape)
    single = len(symbols) == 1 and not is_formula(total) and total.factors == (symbols[0],)
    only = f"{symbols[0]} = {target // total.coef}" if single and target % total.coef == 0 else f"{total} = {target}"
    return (f"reshape to {list(shape)} fixes every size of [{', '.join(map(str, x.shape))}] ({total} values): the "
            f"model runs only when {only}, and {', '.join(symbols)} {'is' if len(symbols) == 1 else 'are'} gone "
            f"from the shape; write -1 (or {symbols[0]}) for the dim that carries {symbols[0]}")


def _channels_last(name: str, x, is_input: bool) -> str | None:
    """conv2d over [B, 224, 224, 3] makes 224 channels of 224x3 images: channels-last data (Keras', an image
    file's) fed to a channels-first conv passes the shape check with kernels that fit the width of 3."""
    n = int(name[-2])
    shape = x.shape
    if x.rank != n + 2 or not all(isinstance(d, int) for d in shape[1:]) or shape[-1] > 4:
        return None
    spatial = shape[1:-1]
    if n == 1 and not (is_input and shape[1] >= 16) or n > 1 and min(spatial) < 16:
        return None  # [B, 512, 4, 4] deep in a net is channels-first; a [B, 128, 3] input is points or frames
    size = "x".join(map(str, shape[2:]))
    what = {1: f"sequences of length {size}", 2: f"{size} images", 3: f"{size} volumes"}[n]
    letters = {1: "length", 2: "height, width", 3: "depth, height, width"}[n]
    order = [0, n + 1, *range(1, n + 1)]
    return (f"{name} reads [{', '.join(map(str, shape))}] as {shape[1]} channels of {what} (channels first, as "
            f"torch's); if it is [batch, {letters}, channels], permute({order}) it first")
