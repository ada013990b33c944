"""How a call's arguments are named: keyword binding, torch's and numpy's names for one argument, and the
hints for torch's spellings (its constructor's input sizes, its positional orders) that would otherwise build
another model than the one meant."""

from __future__ import annotations

import re

from ..diagnostics import ArchTypeError, Span, did_you_mean
from .scalars import is_int
from .values import Tensor

__all__ = ["arg_names", "input_size_first", "keyword_only", "keywords", "list_call", "own_name", "own_names",
           "positional_names", "synonyms", "torch_order"]


_FROM_THE_INPUT = {"in_channels": "the channel count", "in_features": "the feature count",
                   "input_size": "the feature count", "num_features": "the channel count",
                   "num_channels": "the channel count", "in_dim": "the feature count"}


def keywords(given: dict, kwargs: dict, names, callee: str, hint: str, span: Span) -> None:
    """Keyword arguments into `given` (the positional ones already there): unknown or repeated is an error."""
    for k, v in kwargs.items():
        if k not in names and k in _FROM_THE_INPUT:  # torch's constructor names the input's size; here x does
            raise ArchTypeError(f"{callee}() has no argument '{k}' (torch's): {_FROM_THE_INPUT[k]} comes from the "
                                f"input tensor; leave it out ({hint})", span).about(k)
        if k == "batch_first" and k not in names:  # torch's nn.MultiheadAttention(..., batch_first=True)
            raise ArchTypeError(f"{callee}() has no argument '{k}': it takes batch-first inputs ([B, T, ...]) "
                                f"always; leave it out ({hint})", span).about(k)
        if k == "track_running_stats" and k not in names and callee.startswith("batchnorm"):
            how = "torch's default, track_running_stats=True; leave it out" if v is True else (
                "torch's track_running_stats=False, batch statistics at inference too, is written out: (x - mean(x, "
                "dim=[0, 2, 3], keepdim=true)) / sqrt(var(x, dim=[0, 2, 3], correction=0, keepdim=true) + eps) * w "
                "+ b, the dims all but the channel's")
            raise ArchTypeError(f"{callee}() has no argument '{k}' (torch's): it keeps running statistics and "
                                f"normalizes by them at inference ({how}) ({hint})", span).about(k)
        if k not in names and (callee, k) in _TORCH_ARGS:  # torch's class weights, pos_weight, ...
            raise ArchTypeError(f"{callee}() has no argument '{k}' (torch's): {_TORCH_ARGS[callee, k]} ({hint})",
                                span).about(k)
        keras = _KERAS.get((callee, k)) or _KERAS.get(k)  # an op's own reading first: lstm's activation=
        if k not in names and keras:  # return_sequences= suggested return_state, which gives a tuple
            raise ArchTypeError(f"{callee}() has no argument '{k}' ({keras[0]}'s): {keras[1]} ({hint})", span).about(k)
        if k not in names:
            raise ArchTypeError(f"{callee}() has no argument '{k}'{did_you_mean(k, names)} ({hint})", span).about(k)
        if k in given:
            raise ArchTypeError(f"{callee}(): argument '{k}' given twice", span).about(k)
        given[k] = v


# torch's arguments with no argument here, and what computes them (batchnorm's track_running_stats, whose words
# depend on its value, is said in keywords)
_TORCH_ARGS = {
    ("instance_norm", "track_running_stats"): "it keeps no running statistics, each example normalized by its own "
                                              "in training and inference (torch's default, "
                                              "track_running_stats=False); leave it out",
    ("cross_entropy", "weight"): 'class weights are sum(cross_entropy(logits, y, reduction="none") * take(w, y)) / '
                                 "sum(take(w, y)) (torch's weighted mean), w a [C] tensor; with ignore_index=i, "
                                 'k = take(w, clamp(y, min=0)) * cast(ne(y, i), "float32") in place of take(w, y) '
                                 "(label smoothing weighs its classes otherwise: not this form)",
    ("bce_with_logits", "pos_weight"): "mean(pw * t * -logsigmoid(x) + (1.0 - t) * -logsigmoid(-x)), the positive "
                                       "term weighted by pw",
    ("bce_with_logits", "weight"): 'mean(w * bce_with_logits(x, t, reduction="none")), each element weighted by w',
    **{("linear", k): 'a weight shared with another layer (tied to an embedding) is h @ ref("emb.weight").T, plus '
                      "a parameter for the bias" for k in ("weight", "bias")},
    **{(n, "unbiased"): "unbiased=false is correction=0 (divide by n), unbiased=true correction=1 (by n - 1, the "
                        "default)" for n in ("var", "std")},
}

# Keras's layer arguments, as written here
_KERAS = {  # name: (whose, what to write)
    "return_sequences": ("Keras", "an lstm or gru returns every step's output, [B, T, H]; the last step's alone is "
                                  "out[:, -1] (with lengths=, return_state=true and the final state h_n[-1])"),
    "units": ("Keras", "the size is the first argument (linear(64), lstm(64))"),
    **{k: ("Keras", "layers start from torch's default init: give trained or chosen values with --weights, or "
                    "write the weight as a parameter(shape, init=...)") for k in (
        "kernel_initializer", "bias_initializer", "embeddings_initializer", "recurrent_initializer",
        "beta_initializer", "gamma_initializer")},
    **{k: ("Keras", "a penalty is part of the loss: add it to the spec's loss output (--loss model), or use "
                    "--weight-decay for L2")
       for k in ("kernel_regularizer", "bias_regularizer", "activity_regularizer")},
    "trainable": ("Keras", "build --train --freeze NAME (a layer's name or a pattern) leaves its parameters as "
                           "they are"),
    "input_shape": ("Keras", "the model's inputs declare their shapes: model m(x: float32[B, ...])"),
    "from_logits": ("Keras", "cross_entropy and bce_with_logits always take logits (from_logits=True); leave it out"),
    "alpha": ("Keras", "leaky_relu's slope is negative_slope= (Keras's LeakyReLU alpha, default 0.3)"),
    "center": ("Keras", "affine=false (batchnorm, group_norm) or elementwise_affine=false (layernorm) leaves out "
                        "both the shift and the scale"),
    "depth": ("TensorFlow", "one_hot's class count is num_classes="),
    **{k: ("TensorFlow", "transpose the operand first: matmul(a, transpose(b, -2, -1))")
       for k in ("transpose_a", "transpose_b", "adjoint_b")},
    **{(op, "activation"): ("Keras", f"{op}'s cell always uses tanh and sigmoid (torch's); chaining an activation "
                                     "after it changes the model") for op in ("lstm", "gru")},
    ("batchnorm", "axis"): ("Keras", "batchnorm normalizes dim 1, the channels (torch's); permute channels-last "
                                      "data first (Keras's axis=-1)"),
    ("layernorm", "axis"): ("Keras", "layernorm normalizes the last dims, normalized_shape=[...] of them (Keras's "
                                      "axis=-1 is the last one, the default)"),
    ("gru", "reset_after"): ("Keras", "gru applies the reset gate after the recurrent matmul, as Keras's "
                                      "reset_after=True (TF2's default); leave it out"),
    **{(op, "recurrent_dropout"): ("Keras", "no dropout on the recurrent state: dropout= acts between stacked "
                                            "layers (torch's)") for op in ("lstm", "gru")},
    "exclusive": ("TensorFlow", "the sums before each position along dim 1 are concat([zeros_like(x[:, :1]), "
                                "cumsum(x, 1)[:, :-1]], axis=1) (ones_like and cumprod for products; reverse=True "
                                "is flip(cumsum(flip(x, [1]), 1), [1]))"),
    "filters": ("Keras", "the channel count is the first argument (conv2d(32, 3))"),
    "features": ("Flax", "the size is the first argument (linear(64), conv2d(32, 3), embedding(1000, 64))"),
    "qkv_features": ("Flax", "multihead_attention's embed_dim= (kdim=, vdim= for keys and values of other sizes)"),
    "activation": ("Keras", "chain the activation after the layer (x -> linear(64) -> relu)"),
    "rate": ("Keras", "the dropout probability is p (dropout(0.5))"),
    "deterministic": ("Flax", "none needed: a train step runs dropout, an inference model does not"),
    "use_running_average": ("Flax", "none needed: a train step uses the batch's statistics, an inference model the "
                                    "running ones"),
    "data_format": ("Keras", "archdsl's layers take channels first, [B, C, ...]; permute channels-last data first "
                             "(permute([0, 2, 1]) for [B, L, C], permute([0, 3, 1, 2]) for [B, H, W, C])"),
    "mask_zero": ("Keras", "an lstm or gru takes lengths= (each example's count of real steps, the padding after "
                           "them)"),
    "input_dim": ("Keras", "embedding(num_embeddings, embedding_dim): the table's rows, then the vector size"),
    "output_dim": ("Keras", "embedding(num_embeddings, embedding_dim): the table's rows, then the vector size"),
    "window_shape": ("Flax", "kernel_size= (maxpool2d(x, 2)); the stride defaults to the kernel here, to 1 in Flax"),
    "feature_group_count": ("Flax", "groups="),
    "kernel_init": ("Flax", "init= on a parameter(); a layer's weights start as torch's default init"),
    "time_major": ("Flax", "batch_first=false"),
    "ddof": ("numpy", "correction="),
    "reduction_axes": ("Flax", "the norm's own dims: layernorm over the last, group_norm over each group"),
    "use_bias": ("Keras's and Flax", "bias=false"),
    "epsilon": ("Keras's and Flax", "eps="),
    "use_scale": ("Flax", "elementwise_affine=false (layernorm) or affine=false leaves out the scale and the "
                          "shift; a scale alone is a parameter multiplied in"),
}

# torch's and numpy's names for one argument: an op taking `axis` takes `dim=` for it, and so on
_SYNONYMS = {"dim": "axis", "axis": "dim", "keepdim": "keepdims", "keepdims": "keepdim",
             "attn_mask": "mask", "is_causal": "causal",  # F.scaled_dot_product_attention's names
             "ord": "p"}  # torch.linalg.vector_norm's (for norm only: dropout's p is no order)
_ONLY_FOR = {"ord": ("norm",)}
_TORCH_SPELLINGS = {"dim", "keepdim", "attn_mask", "is_causal", "ord"}


def synonyms(op, kwargs: dict, names, given: dict, span: Span) -> dict:
    """kwargs with torch's or numpy's name for an argument (softmax(x, dim=-1), sum(x, axis=1),
    mean(x, 1, keepdims=true), sdpa(q, k, v, attn_mask=m, is_causal=true)) renamed to the op's own, where the
    op has the other name and not this one."""
    if not op.synonyms:
        return kwargs
    out = {}
    for k, v in kwargs.items():
        own = own_name(op, k, names)
        if own != k:
            if own in kwargs:
                raise ArchTypeError(f"{op.name}(): '{k}' and '{own}' are one argument (two names for it, "
                                    f"{'torch' if k in _TORCH_SPELLINGS else 'numpy'}'s and archdsl's); give only "
                                    f"{own}=", span)
            if own in given:
                raise ArchTypeError(f"{op.name}(): argument '{own}' given twice (positionally and as {k}=)", span)
            k = own
        out[k] = v
    return out


def own_name(op, k: str, names) -> str:
    """The op's name for a keyword (axis for torch's dim=), or the keyword itself."""
    own = _SYNONYMS.get(k) if op.synonyms and op.name in _ONLY_FOR.get(k, (op.name,)) else None
    return own if k not in names and own in names else k


def own_names(op, kwargs: dict, span: Span) -> dict:
    """kwargs as the op names them (synonyms), for a call that binds them elsewhere (layer() again)."""
    return synonyms(op, kwargs, arg_names(op), {}, span)


def positional_names(op) -> list[str]:
    """What an op's positional arguments fill, in order: its tensor inputs, then its attributes (torch's order
    where the op keeps one: gather(x, dim, index))."""
    positional = [i.lstrip("*") for i in op.inputs if not i.endswith("?")] + [a.name for a in op.arguments]
    if op.call_order:
        positional = list(op.call_order) + [n for n in positional if n not in op.call_order]
    return positional


def arg_names(op) -> list[str]:
    """An op's tensor slots and attributes, as a call names them."""
    return [i.lstrip("*").rstrip("?") for i in op.inputs] + [a.name for a in op.arguments]


def torch_order(op, args, kwargs=None) -> str | None:
    """conv2d(3, 16, 3) over 3 channels is torch's Conv2d(in, out, kernel) order; here it reads out_channels=3,
    kernel_size=16, stride=3 and may well pass the shape check. Said when the first number is x's channel count
    and the "kernel" is one no one writes positionally (8 or more, followed by another number), unless the padding
    fits that kernel. lstm(8, 16) over 8 features is torch's LSTM(input_size, hidden_size); here 8 hidden and 16
    layers (more than 8 layers: no one stacks that many)."""
    if op.name in ("conv", "conv_transpose") and len(args) >= 2 and is_int(args[1]):  # conv(32, 4, stride=2)
        n = args[0].type.rank - 2 if isinstance(args[0], Tensor) and 3 <= args[0].type.rank <= 5 else 2
        layer = f"{op.name}{n}d"
        return (f"{op.name}(x, weight) convolves with a weight tensor and {args[1]} is a number: the layer that makes "
                f"its own weight is {layer}(out_channels, kernel_size, stride=..., padding=...) (torch's "
                f"nn.{_TORCH_NAMES[layer]})")
    if op.name == "embedding" and len(args) >= 4 and is_int(args[3]):  # nn.Embedding(100, 32, 0): padding_idx
        return (f"embedding(ids, {args[1]}, {args[2]}, {args[3]}) reads as std={args[3]}"
                + (" (an all-zero table)" if args[3] == 0 else "") + f"; torch's nn.Embedding(num_embeddings, "
                f"embedding_dim, padding_idx) is padding_idx={args[3]} here. Write std= to keep this reading")
    if op.name == "upsample" and len(args) >= 2 and isinstance(args[1], (list, tuple)) and args[1] \
            and all(is_int(v) and v >= 8 for v in args[1]) and not (  # F.interpolate(x, [16, 16]): a size,
                isinstance(args[0], Tensor) and len(args[1]) == args[0].type.rank - 2 and any(  # not one that
                    isinstance(d, int) and v < d for v, d in zip(args[1], args[0].type.shape[2:]))):  # shrinks
        sizes = ", ".join(map(str, args[1]))
        return (f"the [{sizes}] reads as scale_factor=[{sizes}], {args[1][0]}x the input's size; torch's "
                f"F.interpolate(x, size) and nn.Upsample(size) take the size first: write size=[{sizes}] here, or "
                "scale_factor= to keep this reading")
    if op.name in ("lstm", "gru") and len(args) >= 3:
        x, first, second = args[:3]
        if isinstance(x, Tensor) and x.type.rank == 3 and is_int(first) and is_int(second) and second > 8 \
                and x.type.shape[-1] == first:  # 8 layers is GNMT's lstm(1024, 8); more than 8 no one stacks
            torch = {"lstm": "LSTM", "gru": "GRU"}[op.name]
            return (f"{op.name}({first}, {second}) reads as hidden_size={first}, num_layers={second}; torch's "
                    f"nn.{torch}(input_size, hidden_size) is {op.name}({second}) here (the input's {first} features "
                    "come from x). Write num_layers= to keep this reading")
        return None
    if not re.fullmatch(r"conv(_transpose)?[123]d", op.name) or len(args) < 4:
        return None
    x, first, second, third = args[:4]
    if not (isinstance(x, Tensor) and x.type.rank > 1 and all(is_int(v) for v in (first, second, third))):
        return None
    groups = (kwargs or {}).get("groups", 1)
    if is_int(groups) and groups > 1 and second % groups:  # torch's reading would be refused: out % groups
        return None
    padding = args[4] if len(args) > 4 else (kwargs or {}).get("padding")
    if is_int(padding) and (padding == (second - 1) // 2 or padding > 4 and padding == second // 2):
        return None  # conv1d(512, 41, 4, 20), conv1d(64, 16, 1, 8): the padding of a kernel of 41, 16, where
        # torch's stride (20, 8) would be no one's ("same" fits torch's reading too: said)
    if x.type.shape[1] != first or second < 8 or third > 7:
        return None
    return (f"{op.name}({first}, {second}, {third}) reads as out_channels={first}, kernel_size={second}, "
            f"stride={third}; torch's nn.{_TORCH_NAMES[op.name]}(in, out, kernel) is {op.name}({second}, {third}) "
            f"here (the input's {first} channels come from x). Write kernel_size= and stride= to keep this reading")


def input_size_first(op, args) -> str | None:
    """conv2d(3, 16, kernel_size=3) over 3 channels, linear(784, out_features=10) over 784 features: torch's
    constructor takes the input's size first, which a layer here reads from x (said beside "given twice")."""
    if op.params is None or len(args) < 2 or not isinstance(args[0], Tensor) or not is_int(args[1]) \
            or not op.arguments:
        return None
    shape, size = args[0].type.shape, args[1]
    if not re.match(r"(conv|batchnorm|instance_norm|linear$|lstm$|gru$)", op.name):  # not group_norm (groups
        return None                                                                # first), embedding (the rows)
    channels_first = re.match(r"(conv|batchnorm|instance_norm)", op.name) is not None
    if len(shape) < 2 or size != (shape[1] if channels_first else shape[-1]):  # conv: channels; linear: features
        return None
    return (f"the {size} reads as {op.arguments[0].name}={size}: torch's constructor takes the input's size "
            "first, which here comes from x; leave it out")


_TORCH_NAMES = {f"conv{t}{n}d": f"Conv{'Transpose' if t else ''}{n}d" for t in ("", "_transpose") for n in (1, 2, 3)}


def list_call(op) -> str:
    """How an op of a tensor list is called: concat([a, b], axis=1), stack([a, b], dim=1)."""
    if op.call_order and "*" + op.call_order[0] not in op.inputs:  # einsum(equation, [a, b])
        return f"{op.name}({op.call_order[0]}, [a, b])"
    first = op.attrs[0].name if op.attrs else "axis"
    return f"{op.name}([a, b], {first}=1)"


def keyword_only(op) -> str:
    """Every optional tensor input by keyword ("" where there is none): gru(x, 8, l) meant lengths=, and only
    h0= was named (review97)."""
    return ", ".join(f"{i.lstrip('*').rstrip('?')}=..." for i in op.inputs if i.endswith("?"))
