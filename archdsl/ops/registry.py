"""The op registry: each op is one OpDef holding its signature, parameters, shape rule,
lowering, cost and (later) gradient rule. Stages consult it; none of them special-cases an op."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Callable

from ..diagnostics import ArchError, ArchTypeError, ShapeError
from ..types import Sym, TensorType, describe, dim_symbols
from ..types import literal as _show

__all__ = ["REQUIRED", "Attr", "Init", "ParamSpec", "OpDef", "register", "get", "lookup", "all_ops",
           "call_attrs", "coerce_attr", "fail", "give_numbers", "OpCall", "SAME_PADDING", "SharedValues"]


def give_numbers(*dims) -> str:
    """How the symbols of `dims` get numbers: a symbol of the model's inputs is no param, so `-D T=8` alone
    fails ("has no param 'T'") unless the file declares one (`param T = none`)."""
    names = list(dict.fromkeys(n for d in dims for n in dim_symbols(d)))
    if not names:
        return "give them numbers: fixed sizes in the model input's shape, or params (-D sets them)"
    which = " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
    return f"give {which} " + ("a number: a fixed size in the model input's shape, or a param (-D sets it)"
                               if len(names) == 1 else
                               "numbers: fixed sizes in the model input's shape, or params (-D sets them)")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True, slots=True)
class Attr:
    """A compile-time argument. kind: int, float, number (an int kept exact), bool, str, ints, dims, padding,
    any; `?` allows none.
    kind "given" is no argument: the elaborator sets it to the names of the optional tensor inputs a call gave
    (for an op whose optional inputs their types cannot tell apart: multihead_attention's two masks); a node
    built without it (gradient rules, tests) has none there."""

    name: str
    kind: str
    default: object = REQUIRED
    choices: tuple | None = None
    doc: str = ""
    symbolic: str = ""  # what to write instead, added to the refusal of a symbolic dim here
    none: str = ""  # what to say where none is given and not taken (torch's BatchNorm momentum=None)


@dataclass(frozen=True, slots=True)
class Init:
    """How a parameter starts: uniform(a, b), normal(mean=a, std=b), zeros, ones, or a constant a; `zero_row`:
    one row of a 2-D table left at zero (nn.Embedding's padding_idx)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    zero_row: int | None = None


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    init: Init
    trainable: bool = True


class SharedValues:
    """`e.shared(key, build)` for the emitters lowering rules write into (lower.Emitter and the constant
    folder's): a value that depends only on `key` (a causal mask of symbolic lengths: dims of one name are
    equal wherever they occur, the shape checker relies on it), built by `build()` where first asked for and
    reused by every later node: the graph is one flat list in order, so the first use precedes the rest."""

    def shared(self, key: tuple, build: Callable[[], str]) -> str:
        cache = vars(self).setdefault("_shared_values", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]


@dataclass(frozen=True, slots=True)
class OpCall:
    """What a lowering, cost or gradient rule sees of one node."""

    in_types: tuple[TensorType, ...]
    out_types: tuple[TensorType, ...]
    attrs: dict
    name: str = ""  # the node's (a random call's stream follows it)


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple[str, ...]
    infer: Callable[[list[TensorType], dict], list[TensorType]]
    lower: Callable
    attrs: tuple[Attr, ...] = ()
    params: Callable[[list[TensorType], dict], list[ParamSpec]] | None = None
    cost: Callable[[OpCall], int] | None = None
    grad: Callable | None = None
    doc: str = ""
    category: str = "tensor"
    aliases: tuple[str, ...] = ()
    written: str = ""  # for an op with syntax of its own (getitem: "with brackets, x[0]"): never called by name
    # each output element reads only its own (broadcast) position of every input, so a pass may compute any
    # subset of positions (narrow_rows)
    elementwise: bool = False
    # inputs that hold positions (take's index, embedding's ids): a number written there is an int64, not a
    # constant of the other inputs' dtype
    positions: tuple[str, ...] = ()
    # (input holding indices, input they index, its axis: a fixed one or an attribute's name): the checker
    # refuses positions() known to run past that axis (onnxruntime's Gather returns fewer rows, no error)
    indexes: tuple[int, int, int | str] | None = None
    # the order positional arguments fill inputs and attributes, where torch's differs from "the tensor inputs,
    # then the attributes": torch.gather(input, dim, index) is ("x", "dim", "index")
    call_order: tuple[str, ...] = ()
    # torch's and numpy's names for one argument (dim= for axis=, keepdims= for keepdim=) are accepted for
    # each other; false where the op's `dim` is not an axis (sinusoidal_embedding's width)
    synonyms: bool = True
    # its outputs are a tuple even when there is one (split, chunk, unbind: as torch's), never a lone tensor
    tuple_out: bool = False
    # draws random numbers (randn_like): two calls differ, and a constant input does not make it a constant, so
    # the passes neither merge nor fold it
    random: bool = False
    # (input types, attrs) -> the axes of input 0 that must hold an element (a conv's spatial dims, argmax's dim):
    # infer refuses a fixed 0 there; a symbolic dim a run's sizes make 0 (kept symbolic: a batch of 0 runs) is
    # refused before the run with infer's message, where onnxruntime failed in the node or computed what torch
    # refuses
    nonempty: Callable[[list[TensorType], dict], Iterable[int]] | None = None
    # names of the op that take only some ranks, as torch's classes do: {alias: (ranks, torch's class)}
    alias_ranks: dict = field(default_factory=dict, compare=False)
    attr_index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.attr_index.update({a.name: a for a in self.attrs})

    @property
    def data_inputs(self) -> tuple[str, ...]:
        return self.inputs

    def signature(self) -> str:
        parts = {i.lstrip("*").rstrip("?"): f"[{i[1:]}, ...]" if i.startswith("*") else
                 i.rstrip("?") + ("?" if i.endswith("?") else "")
                 for i in self.inputs}  # a variadic input is one list: concat([a, b], axis=1)
        for a in self.arguments:
            parts[a.name] = a.name if a.default is REQUIRED else f"{a.name}={_show(a.default)}"
        order = list(self.call_order) + [n for n in parts if n not in self.call_order]
        return f"{self.name}({', '.join(parts[n] for n in order)})"

    @property
    def arguments(self) -> tuple[Attr, ...]:
        """The attributes a call may give (all but a "given" record)."""
        return tuple(a for a in self.attrs if a.kind != "given")

    def defaults(self) -> dict:
        return {a.name: a.default for a in self.attrs if a.default is not REQUIRED}


_REGISTRY: dict[str, OpDef] = {}
_ALIASES: dict[str, str] = {}


def spatial_axes(ins: list[TensorType], a: dict) -> range:
    """The dims after [N, C] of input 0: what a conv, pool or resize works over (OpDef.nonempty)."""
    return range(2, ins[0].rank)


def register(op: OpDef) -> OpDef:
    if op.name in _REGISTRY or op.name in _ALIASES:
        raise ValueError(f"op {op.name!r} registered twice")
    _REGISTRY[op.name] = op
    for a in op.aliases:
        _ALIASES[a] = op.name
    return op


def get(name: str) -> OpDef:
    return _REGISTRY[_ALIASES.get(name, name)]


def lookup(name: str) -> OpDef | None:
    return _REGISTRY.get(_ALIASES.get(name, name))


def all_ops() -> list[OpDef]:
    """The ops a spec can call; category "internal" (autodiff's helper ops) is left out."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY) if _REGISTRY[k].category != "internal"]


def all_names() -> list[str]:
    return sorted([k for k in _REGISTRY if _REGISTRY[k].category != "internal"] + list(_ALIASES))


def fail(msg: str, arg: str | None = None):
    """Raise a shape error from inside a shape rule; the checker adds the span (the argument's, given `arg`)."""
    raise ShapeError(msg).about(arg)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SIGNED = ("axis", "dim", "dim0", "dim1", "start_dim", "end_dim", "dims", "ignore_index", "shifts", "diagonal",
           "decimals", "padding_idx", "low", "high", "pad", "start")  # may be < 0 (pad's crops, as torch's;
# positions' start, as torch.arange's)


def _none_hint(attr, value, kind: str) -> str:
    """An attribute's own word on none, else, for a number, the param left at none that gives one (eye(T) in a
    block, of `param T = none`: said bare, where range(T) said which param; porting14 hunt)."""
    if value is not None:
        return ""
    if attr.none:
        return f"; {attr.none}"
    if kind in ("int", "float", "number", "ints", "dims", "sizes"):
        return " (a param left at none, as `param NAME = none`? -D NAME=5 sets it)"
    return ""


def call_attrs(op: OpDef, given: dict, where: str) -> dict:
    """An op's full attributes for a call that rules or decompositions write (`b.op("sum", x, dim=(1,))`): the
    defaults, the given ones coerced; an unknown or missing one is an internal error naming `where`."""
    full = op.defaults()
    for k, v in given.items():
        a = op.attr_index.get(k)
        if a is None:
            raise ArchTypeError(f"internal: {op.name} has no attribute '{k}' ({where})")
        full[k] = coerce_attr(op, a, v) if v is not None or a.kind.endswith("?") else v
    missing = [a.name for a in op.attrs if a.name not in full]
    if missing:
        raise ArchTypeError(f"internal: {op.name} needs {missing} ({where})")
    return full


# TensorFlow's and Flax's SAME padding of a dim of size n, kernel k (dilated), stride s: said by conv and the pools
SAME_PADDING = "p = max((ceil(n / s) - 1) * s + k - n, 0)"


def coerce_attr(op: OpDef, attr: Attr, value):
    """Check a user-given value against the attribute's kind; raise ArchTypeError, about it, if it does not fit."""
    try:
        return _coerce(op, attr, value)
    except ArchError as e:
        raise e.about(attr.name) from None


def _coerce(op: OpDef, attr: Attr, value):
    kind = attr.kind
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    where = f"{op.name}: argument '{attr.name}'"
    given = value  # as written, for messages: stride=-2 is said as -2, not as the [-2] it becomes
    if kind == "int" and _is_int(value):
        pass
    elif kind == "float" and (_is_int(value) or isinstance(value, float)):
        value = float(value)
        if not math.isfinite(value):
            raise ArchTypeError(f"{where} must be finite, got {value}")
    elif kind == "number" and (_is_int(value) or isinstance(value, float)):  # an int stays exact (int64 bounds)
        if isinstance(value, float) and not math.isfinite(value):
            raise ArchTypeError(f"{where} must be finite, got {value}")
    elif kind == "bool" and isinstance(value, bool):
        pass
    elif kind == "str" and isinstance(value, str):
        pass
    elif kind == "ints" and (_is_int(value) or (isinstance(value, (list, tuple)) and value
                                                and all(_is_int(v) for v in value))):
        value = (value,) if _is_int(value) else tuple(value)
    elif kind == "dims" and isinstance(value, (list, tuple)) and all(_is_int(v) or isinstance(v, Sym) for v in value):
        value = tuple(value)
    elif kind == "sizes" and (_is_int(value) or isinstance(value, Sym) or isinstance(value, (list, tuple)) and value
                              and all(_is_int(v) or isinstance(v, Sym) for v in value)):  # a norm's shape
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    elif kind == "padding" and (_is_int(value) or value in ("same", "valid") or
                                (isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value))):
        value = (value,) if _is_int(value) else (tuple(value) if isinstance(value, (list, tuple)) else value)
    elif kind == "any":
        pass
    elif kind == "given" and (value is None or isinstance(value, (list, tuple))
                              and all(isinstance(v, str) for v in value)):
        value = None if value is None else tuple(value)
    else:
        symbolic = [v for v in (value if isinstance(value, (list, tuple)) else (value,)) if isinstance(v, Sym)]
        if symbolic and kind in ("int", "ints", "padding", "float", "number"):  # attributes are fixed in the graph
            raise ArchTypeError(f"{where} must be known when the graph is built, got the symbolic dim "
                                f"{symbolic[0]}; {give_numbers(symbolic[0])}"
                                + (f"; {attr.symbolic}" if attr.symbolic else ""))
        bad = next(((i, v) for i, v in enumerate(value) if not (_is_int(v) or kind in ("dims", "sizes") and
                                                                isinstance(v, Sym))),
                   None) if isinstance(value, (list, tuple)) and kind in ("ints", "dims", "padding", "sizes") else None
        which = f" (element {bad[0]} is {describe(bad[1])})" if bad else ""  # not just "list of 4"
        case = "; the strings are lowercase here" if kind == "padding" and isinstance(value, str) \
            and value.lower() in ("same", "valid") else ""  # TF's and Flax's "SAME"
        pool = ('; a pool takes its padding as numbers: "valid" is padding=0, the default; TensorFlow\'s "same" '
                f"pads {SAME_PADDING} in all, the odd one after: padding=p // 2 with "
                "ceil_mode=true (and count_include_pad=false for an avgpool)") if op.category == "pool" \
            and attr.name == "padding" and isinstance(value, str) and value.lower() in ("same", "valid") else ""
        raise ArchTypeError(f"{where} expects {_KIND_WORDS.get(kind, kind)}, got {describe(value)}{which}{case}{pool}"
                            f"{_pairs_hint(op, attr, value)}{_choices_hint(attr, value)}"
                            f"{_weight_hint(op, attr, value)}{_none_hint(attr, value, kind)}")
    if attr.choices is not None and value not in attr.choices:
        raise ArchTypeError(f"{where} must be one of {', '.join(map(_show, attr.choices))}, got {_show(value)}")
    if kind in ("int", "ints", "padding", "sizes") and not isinstance(value, str) and \
            attr.name not in _SIGNED and \
            any(_is_int(v) and v < 0 for v in (value if isinstance(value, tuple) else (value,))):
        raise ArchTypeError(f"{where} must not be negative, got {given if _is_int(given) else list(given)}")
    if kind in ("int", "ints", "padding", "dims", "sizes") and not isinstance(value, str):
        big = [v for v in (value if isinstance(value, tuple) else (value,)) if _is_int(v) and not -2**63 <= v < 2**63]
        if big:  # ONNX attributes are int64: the lowering failed with an internal error
            raise ArchTypeError(f"{where} must fit in 64 bits, got {big[0]}")
    return value


def _choices_hint(attr: Attr, value) -> str:
    """gelu(approximate=true), as in jax.nn.gelu and Keras: here the choice is named, as in torch."""
    if attr.kind != "str" or not attr.choices or not isinstance(value, bool):
        return ""
    others = [c for c in attr.choices if c != attr.default]
    pick = f": {attr.name}={_show(others[0] if value else attr.default)}" if len(others) == 1 else ""
    return f"; one of {', '.join(map(_show, attr.choices))}{pick}"


def _pairs_hint(op, attr: Attr, value) -> str:
    """Keras's ZeroPadding2D and JAX's lax.conv write padding as (before, after) pairs, one per spatial dim.
    Only a conv's uneven padding is a pad before it (a max pool pads with -inf), so only a conv gets that
    recipe; a transposed conv's pairs (JAX's) mean another padding altogether: none."""
    pairs = [tuple(v) for v in value if isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_int, v))] \
        if attr.name == "padding" and isinstance(value, (list, tuple)) and "transpose" not in op.name else []
    if not pairs or len(pairs) != len(value):
        return ""
    said = "; padding is one number per spatial dim, the same before and after"
    if all(a == b for a, b in pairs):
        return f"{said}: padding={[a for a, _ in pairs]}"
    flat = [n for pair in reversed(pairs) for n in pair]  # pad's pairs run from the last dim backwards
    return (f"{said}: pad first, pad(x, {flat}) (with padding_mode's mode= unless zeros), then padding=0"
            if attr.kind == "padding" else said)


def _weight_hint(op, attr: Attr, value) -> str:
    """torch's functional forms, F.conv2d(x, w) and F.linear(x, w): here a layer's second argument is its
    size, and a weight the spec computes goes to conv / conv_transpose or a matmul."""
    if getattr(value, "kind_name", None) != "tensor" or attr.name not in ("out_channels", "out_features"):
        return ""
    if op.name == "linear":
        return "; linear makes its own weight: a weight the spec computes is applied as x @ w.T + b"
    if op.name.startswith(("conv1d", "conv2d", "conv3d", "conv_transpose")):
        given = "conv_transpose" if op.name.startswith("conv_transpose") else "conv"
        return (f"; {op.name} makes its own weight: a weight the spec computes goes to {given}(x, weight, bias=b) "
                f"(torch's functional {op.name})")
    return ""


_KIND_WORDS = {"int": "an integer", "float": "a number", "number": "a number", "bool": "true or false",
               "str": "a string",
               "ints": "an integer or a non-empty list of integers", "dims": "a list of dims",
               "sizes": "a size or a non-empty list of sizes",
               "padding": 'an integer, a non-empty list of integers, "same" or "valid"'}
