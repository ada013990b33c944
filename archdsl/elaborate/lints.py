"""Calls that pass the shape check and are still most likely a mistake: said as a warning (and as a note where
the call fails), changing nothing."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .. import ops
from ..ops._common import channels_first_perm
from ..ops.losses import squashed_logits, squashing
from ..ops.recurrent import layout_hint
from ..ops.shape_ops import monomial, pinned
from ..ops.shapes import prod
from ..types import dim_add, dim_mul, dim_symbols, is_formula, is_symbol

__all__ = ["reads_layout", "suspicious"]


def _top_left_over_a_cache(q, k) -> str | None:
    """sdpa's causal=true over keys a formula longer than the queries (S queries after a KV cache's P keys):
    top-left aligned as torch's is_causal, the new queries miss the keys after the first S; the decoded tokens
    came out wrong, silently (kvcache hunt)."""
    if q == k or isinstance(k, int) or not (isinstance(q, int) or set(dim_symbols(q)) < set(dim_symbols(k))):
        return None
    return (f"scaled_dot_product_attention: causal=true is top-left aligned (torch's is_causal): query i sees keys "
            f"0..i, so over {k} keys, more than the queries' {q} (a KV cache's keys before them), the queries miss "
            f"the last keys; for queries that come after the keys, give mask= the bool mask of the keys each keeps, "
            f"positions(k, dim=-2) <= unsqueeze(positions(q, dim=-2), 1) + {_offset(q, k)}, or write the scores "
            f"out with causal_mask(scores), bottom-right aligned")


def _offset(q, k) -> str:
    """k - q (P for S against (P+S)), parenthesized where a formula."""
    d = dim_add(k, dim_mul(q, -1) if not isinstance(q, int) else -q)
    return str(d)


def reads_layout(name: str) -> bool:
    """Ops whose warnings say a tensor's dims were read otherwise than meant (channels-last images into a conv,
    a [B, T, F] sequence into a pool, time-major steps into an lstm): a later error is often their doing."""
    return name in _SPATIAL or name in ("lstm", "gru")


def suspicious(op, tensors: list, attrs: dict, named=frozenset()) -> str | None:
    """A warning for one call, from its bound inputs (in the op's order) and attributes (`named`: those the call
    gave by name)."""
    if not tensors:
        return None
    if op.name in ("cross_entropy", "bce_with_logits"):
        axis = attrs["axis"] if op.name == "cross_entropy" else -1  # the classes' dim
        squash = squashing(op.name, tensors[0].value, axis)
        if squash is not None:
            return f"{squashed_logits(op.name)}; give it the logits (the {squash.op}'s input)"
        if op.name == "cross_entropy" and _one_class(tensors[0].type, attrs["axis"]):
            return ("cross_entropy over one class is 0 whatever the weights (as torch's); for a yes/no target, "
                    "bce_with_logits with float 0/1 targets of the logits' shape")
        return None
    x = tensors[0].type
    if op.name == "reshape":
        return _fixed_reshape(x, attrs["shape"]) or _pinning_reshape(x, attrs["shape"]) or \
            _fractional_reshape(x, attrs["shape"]) or \
            _reshape_as_permute(x, attrs["shape"], tensors[0].value)
    if op.name == "scaled_dot_product_attention" and x.rank == 4 and not isinstance(x.shape[-3], int) \
            and isinstance(x.shape[-2], int) and _squashed(x.shape[-3]) not in _HEADS \
            and _split_into_heads(tensors[0].value):  # Flax's [batch, length, heads, head size]
        return (f"scaled_dot_product_attention takes [batch, heads, length, head size] (torch's): "
                f"[{', '.join(map(str, x.shape))}] reads {x.shape[-3]} as the heads and {x.shape[-2]} as the length; "
                "if it is [batch, length, heads, head size] (Flax's dot_product_attention), transpose(q, 1, 2) "
                "first, and k and v")
    if op.name == "scaled_dot_product_attention" and attrs.get("causal") and len(tensors) > 1 and x.rank >= 2:
        said = _top_left_over_a_cache(x.shape[-2], tensors[1].type.shape[-2])
        if said:
            return said
    if op.name == "multihead_attention" and (kpm := _given(op, tensors, attrs).get("key_padding_mask")):
        return _kept_as_true(kpm.value)
    if op.name == "multihead_attention" and (am := _given(op, tensors, attrs).get("attn_mask")):
        return _attend_mask(am.value)
    maker = _source(tensors[0].value).producer
    if op.name in _MAP_READERS and x.rank >= 4 and maker is not None and maker.op in _MAPS:
        return _map_reader(op.name, x, attrs, maker.op)
    if op.name in ("softmax", "log_softmax") and _one_class(x, attrs["axis"]) and _is_head(tensors[0].value):
        one = "sigmoid" if op.name == "softmax" else "logsigmoid"
        return (f"{op.name} over a dim of size 1 is {'1' if op.name == 'softmax' else '0'} everywhere, and no "
                f"gradient passes it (a single logit's {'probability' if one == 'sigmoid' else 'log-probability'} "
                f"is {one}(x))")
    sequence = _sequence_from(tensors[0].value) if x.rank == 3 else None
    if sequence is None and op.name == "batchnorm" and x.rank == 3 and _steps_linear(tensors[0].value):
        sequence = "a linear"  # Keras's Dense then BatchNormalization over a sequence (review121)
    if sequence and op.name in _ALONG_DIM_1:  # an embedding's or an lstm's [B, T, F]
        return (f"{op.name} reads [{', '.join(map(str, x.shape))}], {sequence}'s [batch, steps, features], as "
                f"{x.shape[1]} {_ALONG_DIM_1[op.name]}; transpose(x, 1, 2) first (Keras's layers take steps first)"
                + ("; a pool over the steps is amax(x, dim=1) or mean(x, dim=1)" if "pool" in op.name else ""))
    if op.name in _SPATIAL:
        layout = None if _along_other_dims(attrs.get("kernel_size")) else \
            _channels_last(op.name, x, _SPATIAL[op.name] or x.rank - 2, tensors[0].value)
        said = (layout, _keras_batchnorm(attrs, named)) if op.name == "batchnorm" else (layout,)
        return "; and ".join(filter(None, said)) or None
    if op.name in ("lstm", "gru") and attrs["dropout"] and attrs["num_layers"] == 1:  # torch warns of it too
        return (f"{op.name}'s dropout={attrs['dropout']} acts between stacked layers (torch's), and with "
                f"num_layers=1 there are none: it drops nothing; dropout on the input (Keras's dropout=) is "
                f"x -> dropout({attrs['dropout']}) -> {op.name}(...)")
    if op.name in ("lstm", "gru"):
        return layout_hint(op.name, x, attrs["batch_first"])
    if op.name == "upsample" and "size" in named and attrs.get("size") is not None and x.rank >= 3:
        return _shrinking_upsample(x, attrs["size"])
    return None


def _steps_linear(v) -> bool:
    """v is a linear's output over a [B, T, F] input: steps then features, as Keras's Dense on a sequence."""
    p = _source(v).producer
    return p is not None and p.op == "linear" and p.inputs[0].type.rank == 3


def _shrinking_upsample(x, size) -> str | None:
    """upsample(size=2): the output's size, 2x2 maps from 16x16 without a word, where Keras's UpSampling2D(size=2)
    and the name mean a factor (review121)."""
    given = list(size) if isinstance(size, (list, tuple)) else [size]
    spatial = x.shape[2:]
    sizes = given * len(spatial) if len(given) == 1 else given  # size=2: each spatial dim
    if len(sizes) != len(spatial) or not all(isinstance(d, int) and isinstance(n, int) and n < d
                                               for n, d in zip(sizes, spatial)):
        return None
    shown = given[0] if len(given) == 1 else given
    return (f"upsample(size={shown}) makes {sizes} maps from [{', '.join(map(str, spatial))}]: size= is the "
            f"output's size (torch's nn.Upsample); a factor (Keras's UpSampling2D(size=2)) is scale_factor=")


# layers that read [B, C, ...] with the spatial dims after the channels (0: any rank)
_SPATIAL = {**{f"{k}{n}d": n for k in ("conv", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool")
               for n in (1, 2, 3)}, "global_avgpool": 0, "global_maxpool": 0, "batchnorm": 0}
# what a layer makes of dim 1 of a [B, T, F] sequence
_ALONG_DIM_1 = {"conv1d": "channels (its steps), sliding over the features",
                "batchnorm": "channels (its steps), normalized over the features",
                **{n: "channels (its steps), pooled over the features"
                   for n in ("maxpool1d", "avgpool1d", "global_avgpool", "global_maxpool", "adaptive_avgpool1d",
                             "adaptive_maxpool1d")}}
_SEQUENCES = {"embedding": "an embedding", "lstm": "an lstm", "gru": "a gru"}
# layers that keep a sequence's [batch, steps, features] (a linear over an embedding's output; not a norm,
# after which gMLP's conv1d mixes the steps on purpose)
_KEEP_STEPS = frozenset(("linear", "multihead_attention"))
# ops whose output is a [B, C, H, W] (or 3-D) map, and the ops that read such a map's last dim as features
_MAPS = frozenset((*(f"{k}{n}d" for k in ("conv", "maxpool", "avgpool", "conv_transpose", "adaptive_avgpool",
                                         "adaptive_maxpool") for n in (2, 3)),
                   "batchnorm", "group_norm", "instance_norm", "global_avgpool", "global_maxpool"))
_HEADS = frozenset(("h", "heads", "head", "nh", "nhead", "nheads", "numhead", "numheads"))  # names of a head count


def _is_head(v) -> bool:
    """A linear's output (through elementwise ops): a classifier's logits, not scores over keys that one -D
    setting leaves one of (attention over a single source step)."""
    p = _source(v).producer
    return p is not None and p.op == "linear"


def _split_into_heads(v) -> bool:
    """A projection reshaped into [B, T, heads, head size]: Flax's layout comes so; torch's extra batch dims
    ([B, frames, 196, 64] in TimeSformer) do not."""
    p = _source(v).producer
    if p is None or p.op != "reshape":
        return False
    src, out = p.inputs[0].type, v.type
    return src.rank == 3 and src.shape[-1] == out.shape[-2] * out.shape[-1] if isinstance(src.shape[-1], int) \
        else False


def _squashed(d) -> str:
    """A dim's name as _HEADS holds it: n_head, NH, num_heads."""
    return str(d).lower().replace("_", "")
_MAP_READERS = frozenset(("linear", "layernorm", "mean", "sum", "amax", "amin"))
# layout ops that keep a model input's layout question open (with the elementwise ops: x / 255 - mean)
_LAYOUT = frozenset(("reshape", "permute", "transpose", "getitem", "unsqueeze", "squeeze"))


def _source(v, through=frozenset()):
    """The value v was computed from through elementwise ops (and the ops in `through`), first input first:
    a model input or the output of the first other op."""
    for _ in range(8):  # a few steps back: the layer feeding it, not the whole net
        p = v.producer
        if p is None or not (ops.get(p.op).elementwise or p.op in through):
            return v
        v = p.inputs[1 if p.op == "where" else 0]  # where's first input is its condition, not the data
    return v


def _sequence_from(v) -> str | None:
    """'an embedding' or 'an lstm' where v is one's batch-first [B, T, F] output through elementwise ops: a
    sequence whose dim 1 is the steps, never channels (a transpose between them: what follows may be meant)."""
    u = _source(v, _KEEP_STEPS)
    p = u.producer
    if p is not None and (p.op == "embedding" or p.op in ("lstm", "gru") and p.attrs["batch_first"]
                          and u is p.outputs[0]):
        return _SEQUENCES[p.op]
    return None


def _given(op, tensors: list, attrs: dict) -> dict:
    """A call's tensors by input name: the required ones, then the optional ones it gave (attrs['given'])."""
    names = [i.rstrip("?") for i in op.inputs if not i.endswith("?")] + list(attrs.get("given", ()))
    return dict(zip(names, tensors))


def _attend_mask(mask) -> str | None:
    """A constant bool attn_mask true on and below its diagonal: Flax's causal mask (true to attend), which as
    torch's (true = not allowed) leaves the last query no key and lets each see only the future (review122)."""
    data = getattr(mask, "data", None)
    if mask.kind != "const" or data is None or data.dtype != bool or data.ndim < 2 or data.shape[-1] != data.shape[-2]:
        return None
    n = data.shape[-1]
    if n < 2 or not (data == np.tril(np.ones((n, n), bool))).all():
        return None
    return ("attn_mask is true on and below its diagonal: true marks a key NOT allowed (torch's convention), so "
            "each query sees only later keys and the last none; Flax's true-to-attend causal mask is "
            "logical_not(mask) here, or causal=true")


def _kept_as_true(mask) -> str | None:
    """key_padding_mask=ids > 0 (or ne(ids, 0)): true marks the real tokens, as Flax's and Keras's masks do;
    torch's and archdsl's is true for a key to ignore, so every real token was ignored."""
    p = mask.producer
    zero = p is not None and p.op in ("gt", "ne") and len(p.inputs) == 2 and p.inputs[1].kind == "const" \
        and not p.inputs[1].data.any()
    if not zero or not any(u.op == "embedding" for u in p.inputs[0].uses):  # token ids, not a padding flag
        return None
    return (f"multihead_attention's key_padding_mask is true for a key to ignore (torch's); this one ({p.op} 0 of "
            "token ids) is true for the real tokens (Flax's and Keras's way): write eq(ids, 0) of the same ids")


def _map_reader(name: str, x, attrs: dict, maker: str) -> str | None:
    """A conv's [B, C, H, W] read as if its last dim were features (Flax's NHWC habits after a permute at the
    input): a linear or layernorm over the width, a mean over channels and height."""
    shown = f"{'an' if maker[0] in 'aeiou' else 'a'} {maker}'s [{', '.join(map(str, x.shape))}]"
    last, first = f"permute({[0, *range(2, x.rank), 1]})", f"permute({[0, x.rank - 1, *range(1, x.rank - 1)]})"
    if name == "linear":
        return (f"linear acts on the last dim of {shown}, its width: flatten(x) first, or "
                "global_avgpool(x, keepdims=false) for the channels; on each position's channels (ConvNeXt's "
                f"pointwise linear): {last} before it, {first} after, or a conv with kernel 1")
    if name == "layernorm" and len(attrs.get("normalized_shape") or (0,)) == 1:  # ([C, H, W]: torch's, meant)
        return (f"layernorm normalizes the last dim of {shown}, its width; over each position's channels "
                f"(ConvNeXt's LayerNorm2d): {last} -> layernorm -> {first}; over each example's channels and "
                "positions: group_norm(1)")
    dims = attrs.get("dim")
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    axes = {d % x.rank for d in dims}
    spatial = set(range(2, x.rank))
    if name != "layernorm" and 1 in axes and axes & spatial and not spatial <= axes:  # NHWC's axis=(1, 2)
        return (f"{name} over dims {sorted(axes)} of {shown} takes in its channels (dim 1) and some but not all "
                f"spatial dims: a spatial {name} is dim={sorted(spatial)} (channels-last axis="
                f"{tuple(range(1, x.rank - 1))} is dims {', '.join(map(str, sorted(spatial)))} here)")
    return None


def _reshape_as_permute(x, shape, v) -> str | None:
    """reshape(x, [B, 3, 28, 28]) of a channels-last [B, 28, 28, 3] input: the same numbers in another order,
    each pixel's channels scattered across the image (a reshape moves no values)."""
    if x.rank == 4 and len(shape) == 3 and all(isinstance(d, int) for d in x.shape[1:]):  # Flax's ViT tokens:
        c, h, w = x.shape[1:]  # x.reshape(n, h * w, c) of an NHWC map, here of a [B, C, H, W] one (review122)
        if c != h * w and shape[2] == c and shape[1] in (h * w, -1):
            return (f"reshape to {list(shape)} of [{', '.join(map(str, x.shape))}] keeps its numbers in their order: "
                    f"each token gets {c} values of one channel's map, not one position's {c} channels; the "
                    "tokens of a [B, C, H, W] map are flatten(x, 2) then transpose(1, 2)")
        return None
    if x.rank != 4 or len(shape) != 4 or not all(isinstance(d, int) for d in x.shape[1:]) or not _from_input(v):
        return None
    h, w, c = x.shape[1:]
    if not 1 < c <= 4 or list(shape[1:]) != [c, h, w] or [c, h, w] == [h, w, c]:  # an identity reshape
        return None
    return (f"reshape to {list(shape)} keeps the numbers of [{', '.join(map(str, x.shape))}] in their order, so "
            f"each pixel's {c} channels land across the image; channels last to first is permute([0, 3, 1, 2])")


def _keras_batchnorm(attrs: dict, named=frozenset()) -> str | None:
    """batchnorm(momentum=0.99): Keras's momentum keeps that share of the running statistics, torch's is the new
    batch's share; batchnorm(0.99, 1e-3), Keras's positional habit, made eps 0.99 (an eps given by name is meant:
    porting7 hunt)."""
    momentum, eps = attrs.get("momentum"), attrs.get("eps")
    if isinstance(momentum, float) and momentum > 0.5:
        return (f"batchnorm momentum={momentum:g} weighs each new batch's statistics {momentum:g} in the running "
                f"ones (torch's convention); Keras's momentum={momentum:g} is momentum={1 - momentum:.3g} here")
    if isinstance(eps, float) and 0.1 <= eps < 1 and "eps" not in named:  # 1 and up: refused (a channel count)
        return (f"batchnorm eps={eps:g} adds {eps:g} to every variance; Keras's BatchNormalization(momentum, "
                "epsilon) order is (eps, momentum) here: write eps= and momentum= by name")
    return None


def _from_input(v) -> bool:
    """A model input, or one through a few elementwise or layout ops (x / 255 - mean): where channels-last
    data comes in. A conv's or pool's output deep in a net ([B, 512, 62, 4] in an audio CNN) is its own."""
    return _source(v, _LAYOUT).kind == "input"


def _along_other_dims(k) -> bool:
    """A kernel of 1 along the last dim and more along another ([3, 1]): a conv over the other dims (a 1-D
    conv written as conv2d over [B, C, T, 1]), its axes chosen, not channels-last data."""
    return isinstance(k, (list, tuple)) and len(k) > 1 and k[-1] == 1 and max(k) > 1


def _one_class(t, axis) -> bool:
    return t.rank > 0 and isinstance(axis, int) and -t.rank <= axis < t.rank and t.shape[axis] == 1


def _fixed_reshape(x, shape) -> str | None:
    """reshape(x, [32, 256]) of a [B, 16, 16]: every size fixed, so the model runs at one batch size only and
    the output has lost B (train then blames the labels' shape)."""
    symbols = sorted({s for d in x.shape for s in dim_symbols(d)})
    if not symbols or shape is None or any(not isinstance(d, int) or d <= 0 for d in shape):  # 0: refused
        return None
    total, target = prod(x.shape), prod(shape)
    if isinstance(total, int):  # a 0-size dim beside the symbols ([B, 0, 4]): no symbol left in the count
        return None
    if not is_formula(total) and target % total.coef:  # no size fits: the shape check says so
        return None
    single = len(symbols) == 1 and not is_formula(total) and total.factors == (symbols[0],)
    only = f"{symbols[0]} = {target // total.coef}" if single else f"{total} = {target}"
    fix = (f"write -1 (or {symbols[0]}) for the dim that carries {symbols[0]}" if len(symbols) == 1 else
           f"write {', '.join(symbols)} in the shape where they belong (inside a block, which sees only its "
           "arguments, shape(x)[i] of the tensor; -1 may stand for one of them)")
    return (f"reshape to {list(shape)} fixes every size of [{', '.join(map(str, x.shape))}] ({total} values): the "
            f"model runs only when {only}, and {', '.join(symbols)} {'is' if len(symbols) == 1 else 'are'} gone "
            f"from the shape; {fix}")


def _pinning_reshape(x, shape) -> str | None:
    """reshape(x, [B, 12]) of a [B, T, 4]: B cancels, and 4*T = 12 holds at T = 3 alone. Built without a word, the
    model ran at that size only (review114 hunt); a target of numbers alone is _fixed_reshape's."""
    if shape is None or -1 in shape or all(isinstance(d, int) for d in shape):
        return None
    total, known = prod(x.shape), prod(shape)
    a, b = monomial(total), monomial(known)
    if total == known or a is None or b is None:  # a fixed x too: [4, 12] into [S, 12] runs at S = 4 (mutnew4)
        return None
    left, right = pinned(a, b)
    if bool(left) == bool(right) or not a[0] or not b[0]:  # a relation of two sizes (T = S), or none left
        return None
    if (b[0] % a[0] if left else a[0] % b[0]):  # no size fits ([B, 9] of a [B, T, 6]): the shape check says so
        return None
    syms, value = (left, b[0] // a[0]) if left else (right, a[0] // b[0])
    names = sorted(set(syms))
    fix = (f"write {' and '.join(names)} where {'they belong' if len(names) > 1 else 'it belongs'} (or -1)" if left
           else "write the sizes x has (or -1)")
    return (f"reshape to [{', '.join(map(str, shape))}] of [{', '.join(map(str, x.shape))}] ({total} values into "
            f"{known}): the model runs only when {'*'.join(syms)} = {value}; {fix}")


def _fractional_reshape(x, shape) -> str | None:
    """reshape(x, [-1, 3]) of a [B, 10]: the -1 is 10*B/3, a whole number only when B is a multiple of 3, so
    the model runs at those sizes only, where the shape check passed (swin's width that its heads did not
    divide built, then failed in onnxruntime at batch 1 and mixed windows at batch 9)."""
    total = prod(x.shape)
    if shape is None or list(shape).count(-1) != 1 or isinstance(total, int) or is_formula(total):
        return None
    left, rest = Counter(total.factors), 1
    for d in shape:
        if isinstance(d, int):
            rest *= d if d != -1 else 1
        elif not is_formula(d) and d.coef == 1 and all(left[f] > 0 for f in d.factors):
            left.subtract(d.factors)
        else:
            return None
    need = rest // math.gcd(total.coef, rest) if rest > 0 else 1
    if need == 1 or not +left:  # every symbol placed: a fixed count that does not divide, which the check says
        return None
    what = "*".join(sorted(left.elements()))
    return (f"reshape to {list(shape)} of [{', '.join(map(str, x.shape))}] makes its -1 {what} * "
            f"{total.coef // math.gcd(total.coef, rest)}/{need}: a whole number only when {what} is a multiple of "
            f"{need}, so the model runs only at such sizes (torch's reshape too); check the sizes it splits")


def _channels_last(name: str, x, n: int, v) -> str | None:
    """conv2d over [B, 224, 224, 3] makes 224 channels of 224x3 images: channels-last data (Keras', an image
    file's) fed to a channels-first conv passes the shape check with kernels that fit the width of 3; a
    batchnorm or a pool there, without a word. Said of a model input only: inside a net a map may well be
    [B, 512, 62, 4] (an audio CNN's)."""
    shape = x.shape
    if not 1 <= n <= 3 or x.rank != n + 2 or not isinstance(shape[-1], int) or shape[-1] > 4 or not _from_input(v):
        return None
    spatial = shape[1:-1]
    if not all(isinstance(d, int) for d in spatial):  # [B, H, W, 3]: sizes known at run time, 2 to 4 channels
        if n == 1 or shape[-1] == 1 or not all(is_symbol(d) for d in spatial):  # last (porting33: pools said
            return None  # nothing, where the same spec at [B, 64, 64, 3] warned)
    # a last dim of 1: [B, 512, 1] is a length of 1, [B, 16, 100, 1] a 1-D signal laid out as 2-D; a grayscale
    # image channels last is square ([B, 28, 28, 1]). A 1-D input of 128 points and more ([B, 1024, 3]); images
    # from 8x8 (digits) and not much longer than wide.
    elif shape[-1] == 1 and (n == 1 or len(set(spatial)) > 1):
        return None
    elif min(spatial) < (128 if n == 1 else 8) or max(spatial) > 8 * min(spatial):
        return None  # [B, 64, 4]: 64 sensors; [B, 2048, 25, 4]: a backbone's map, not an image of 2048x25
    size = "x".join(map(str, shape[2:]))
    what = {1: f"sequences of length {size}", 2: f"{size} images", 3: f"{size} volumes"}[n]
    letters = {1: "length", 2: "height, width", 3: "depth, height, width"}[n]
    order = channels_first_perm(n + 2)
    return (f"{name} reads [{', '.join(map(str, shape))}] as {shape[1]} channels of {what} (channels first, as "
            f"torch's); if it is [batch, {letters}, channels], permute({order}) it first")
