"""Calls during elaboration: ops (arguments bound to attributes and tensor slots, one IR node each), builtins,
constants, and free parameters / ref(); blocks and layer() are in blocks.py, symbolic sizes as numbers in
run_time_sizes.py."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..diagnostics import (
    ArchError,
    ArchTypeError,
    EvalError,
    LimitError,
    ShapeError,
    Span,
    UnknownNameError,
    did_you_mean,
)
from ..ir import provenance
from ..ops import REQUIRED, coerce_attr, give_numbers
from ..ops._common import NORMAL_REACH, drawn_top, fill_array
from ..ops.random import SEED_INPUT
from ..types import DTYPES, DType, Sym, TensorType, dim_size, dim_symbols, unknown_dtype
from .arguments import (
    arg_names,
    input_size_first,
    keyword_only,
    keywords,
    list_call,
    positional_names,
    synonyms,
    torch_order,
)
from .bounded import short
from .builtins import TENSOR_MATH
from .lints import reads_layout, suspicious
from .scalars import Limits, check_elements, check_fits, is_int, is_num
from .values import BlockFn, BlockLayer, Builtin, LayerFn, OpFn, Tensor, describe

__all__ = ["Calls"]

_ITEM_BY_ITEM = frozenset({"min", "max", "sum", "any", "all"})  # builtins that check each item
_CONSTANT_TIME = frozenset({"len", "bool"})  # builtins that walk none of their list
_PARAMETER_ARGS = ("shape", "init", "std", "low", "high", "value", "dtype", "trainable")


LAYER_CALL = "a layer is applied to its input"  # the note of torch's linear(10)(x)


def _pow_operands(op, args: list, kwargs: dict) -> tuple | None:
    """(tensor, number) where pow is called on a tensor and a number, positionally or by keyword (a=, b=)."""
    named = dict(zip(op.inputs, args))
    if len(args) > 2 or set(kwargs) & set(named) or not set(kwargs) <= set(op.inputs):
        return None  # the binder says what is wrong
    named.update(kwargs)
    x, k = named.get("a"), named.get("b")
    if isinstance(x, Tensor) and is_num(k) and not isinstance(k, bool):
        return x, k
    return None


def _half_power(x: Tensor, e) -> str | None:
    """'sqrt' or 'rsqrt' where a float tensor is raised to the number 0.5 or -0.5; not float16, whose CPU kernel
    in torch 2.13 keeps C's pow (inf at -inf, +inf at -0.0 for -0.5), as ONNX Pow does."""
    if not x.type.dtype.is_float or x.type.dtype is DType.float16 or e not in (0.5, -0.5):
        return None
    return "sqrt" if e > 0 else "rsqrt"


def _check_symbolic_dim(op: str, d: Sym, span: Span) -> None:
    """A symbolic size over the dim limit at every size (1099511627776*T after 40 doublings), or whose formula
    grew past what the shape rules can read in time (each pass of a loop doubling it), is a diagnostic."""
    text = str(d)
    if len(text) > Limits.formula_chars:
        raise LimitError(f"{op} makes a symbolic size whose formula is {len(text)} characters long (the limit is "
                         f"{Limits.formula_chars}): {give_numbers(d)}", span)
    least = dim_size(d, dict.fromkeys(dim_symbols(d), 1))
    if least is not None and least > Limits.dim:
        raise LimitError(f"{op} makes a dim of {text}, {least} or more at any size (dims are at most "
                         f"{Limits.dim})", span)


def _refuses_empty(op: str, shape: tuple) -> bool:
    """Ops whose onnxruntime kernels crash (group_norm: a segfault; unfold: a division by zero; lstm, gru: an
    abort at any empty dim) or fail or differ from torch past the batch (a pool's empty length: window_out's)."""
    if op.startswith(("avgpool", "maxpool")):
        return shape[1:2] == (0,)
    return 0 in (shape if op in ("lstm", "gru") else shape[1:]) and (op in (
        "instance_norm", "group_norm", "layernorm", "rms_norm", "batchnorm", "local_response_norm", "unfold", "fold",
        "lstm", "gru") or op.startswith(("adaptive_", "conv_transpose")))


_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")  # a whole float compares exactly with integers


def _branch_dtype(picked) -> DType:
    """torch's default dtype for numbers beside only a bool condition: float32 when any of them is a float,
    else int64 (torch.where(c, 1.0, 0) is float32, torch.where(c, 1, 2) int64)."""
    nums = [v for _, v in picked if is_num(v) and not isinstance(v, bool)]
    if not nums:
        return DType.bool
    return DType.float32 if any(isinstance(v, float) for v in nums) else DType.int64


class Calls:
    """The Evaluator's call handling (a mixin: it uses the evaluator's graph, scopes and eval)."""

    def call(self, fn, args: list, kwargs: dict, label, span: Span):
        if isinstance(fn, OpFn):
            if fn.op.written:  # its attributes are its syntax's own encoding (getitem's index)
                raise ArchTypeError(f"{fn.op.name} is written {fn.op.written}, not called", span)
            fn.check_rank(args[0] if args else kwargs.get(fn.op.inputs[0]), span)
            return self.call_op(fn.op, args, kwargs, label, span)
        if isinstance(fn, BlockFn):
            return self.call_block(fn, args, kwargs, label, span)
        if isinstance(fn, Builtin) and fn.name == "parameter":
            return self.make_parameter(label=label, span=span, **self.parameter_args(args, kwargs, span))
        if isinstance(fn, Builtin) and fn.name == "tensor":
            if label is not None:
                raise ArchTypeError("tensor() makes a constant, not a layer, and cannot be named", span)
            return self.make_constant(args, kwargs, span)
        if isinstance(fn, Builtin) and fn.name == "ref":
            if label is not None:
                raise ArchTypeError("ref() names a parameter that exists, and makes none: it takes no `as`", span)
            if kwargs or len(args) != 1:
                raise ArchTypeError('ref() takes one parameter name: ref("wte.weight")', span)
            return self.ref_parameter(args[0], span)
        if isinstance(fn, Builtin) and fn.name == "layer":  # x -> layer("fc") (x piped first), or layer("fc")
            if not args or not isinstance(args[-1], str) or (len(args) == 1 and (kwargs or label is not None)):
                raise ArchTypeError('layer() takes one layer name: x -> layer("fc"), or f = layer("fc")', span)
            found = self.layer_ref(args[-1], span)
            return self.call(found, args[:-1], kwargs, label, span) if len(args) > 1 else found
        if isinstance(fn, LayerFn):
            return self.reuse_layer(fn, args, kwargs, label, span)
        if isinstance(fn, BlockLayer):
            return self.reuse_block(fn, args, kwargs, label, span)
        if isinstance(fn, Builtin):
            if fn.name == "sum" and args and isinstance(args[0], (list, tuple)) and label is None and \
                    any(isinstance(a, Tensor) for a in [*args[0], *args[1:], *kwargs.values()]) and \
                    len(args) + len(kwargs) <= 2 and set(kwargs) <= {"start"} and not (len(args) == 2 and kwargs):
                return self.add_all(args[0], args[1] if len(args) == 2 else kwargs.get("start", 0), span)  # python's
            if fn.name in TENSOR_MATH and any(isinstance(a, Tensor) for a in args):  # a node, named as mean's
                return self.call_op(fn.name, args, kwargs, label, span)
            if label is not None:
                raise ArchTypeError(f"{fn.name}() creates no layer and cannot be named", span)
            # a builtin walks the lists it is given (max of a million items, 100,000 times, went uncharged);
            # these check every item in Python (~0.1 us each): a step per item, not per 16 as a copy
            if fn.name not in _CONSTANT_TIME:  # len(xs) in a loop over xs was charged the whole list each time
                walked = sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, (list, tuple, str, dict)))
                self.charge(walked * (Limits.items_per_step if fn.name in _ITEM_BY_ITEM else 1), span)
            try:
                out = fn.fn(*args, **kwargs)
            except TypeError:
                given = ", ".join([describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()])
                raise ArchTypeError(f"{fn.name}() does not take ({given}): {fn.doc}", span) from None
            if fn.name == "is_symbolic":
                out = self.symbolic_answer(out)
            if isinstance(out, (list, tuple, str)):
                self.charge(len(out), span)
            if is_int(out) and out.bit_length() > Limits.int_bits:  # int(1e300), sum([2**127, 2**127])
                raise LimitError(f"{fn.name}() makes an integer too large ({out.bit_length()} bits; the limit is "
                                 f"{Limits.int_bits})", span)
            return out
        raise ArchTypeError(f"{describe(fn)} is not callable", span)

    def symbolic_answer(self, answer: bool) -> bool:
        """is_symbolic(T) outside an assert answers, where a run's sizes replay the build's answers (T a number
        there), as the build did, so that `if is_symbolic(T)` checks the branch that was built (newuser7 hunt);
        in an assert it says what the sizes are. cli.run.check_spec_at also elaborates without the replay, for
        the asserts that is_symbolic guards (if not is_symbolic(T) { assert T <= 6 }: review81 hunt)."""
        if self.in_assert:
            return answer
        k = len(self.symbolic_answers)
        if self.symbolic_replay is not None and k < len(self.symbolic_replay):
            answer = self.symbolic_replay[k]
        self.symbolic_answers.append(answer)
        return answer

    def call_op(self, op, args: list, kwargs: dict, label, span: Span):
        if isinstance(op, str):
            op = ops.get(op)
        if self.graph is None:
            raise ArchTypeError(f"'{op.name}' makes a tensor; only inside a model or block", span)
        if op.name == "pow" and (xk := _pow_operands(op, args, kwargs)):
            x, k = xk
            if x.type.dtype is not DType.bool:
                check_fits(k, x.type.dtype, span)  # pow(x, 3000000000) of an int32 tensor: torch refuses it
            if not x.type.dtype.is_float and x.type.dtype is not DType.bool:
                if k < 0 and is_int(k):  # a float exponent: the shape rule says an integer base would truncate
                    raise ArchTypeError(f"an integer tensor to the negative power {k} (torch refuses it; ONNX Pow "
                                        f"gives garbage): cast(x, \"float32\") first", span)
                if is_int(k) and k >= 1:  # every runtime's Mul wraps as torch's; Pow may go through double
                    return self._integer_power(x, k, span)
            if root := _half_power(x, k):  # torch's x ** 0.5 is sqrt, x ** -0.5 rsqrt: C's pow(-inf, 0.5) is inf
                op, args, kwargs = ops.get(root), [x], {}  # (torch: nan), pow(-0.0, -0.5) +inf (torch: -inf)
        if (out := self.widened_call(op, args, kwargs, label, span)) is not None:  # mul(h, 1e-8) as h * 1e-8
            return out
        if op.name == "clamp" and (out := self.clamped(args, kwargs, label, span)) is not None:  # a run-time
            return out  # bound: torch.clamp(x, max=t), boxes.clamp(max=width) of a symbolic width
        try:
            tensors, attrs = self.bind_op_args(op, args, kwargs, span)
        except ArchError as err:  # conv2d(3, 64, 7, stride=2): "stride given twice" is torch's order
            note = torch_order(op, args, kwargs) or ("given twice" in err.message and input_size_first(op, args))
            if note:  # conv2d(3, 16, kernel_size=3): torch's input size first
                err.notes.append((note, span))
            raise
        if op.name in ("floordiv", "remainder", "fmod") and len(tensors) == 2:  # an integer tensor by a
            d = tensors[1].value  # constant 0: torch raises, onnxruntime refuses to load the model
            if d.kind == "const" and not d.type.dtype.is_float and not tensors[0].type.dtype.is_float \
                    and not d.data.all():
                raise EvalError("integer division by zero", span)
        if tensors and _refuses_empty(op.name, tuple(tensors[0].type.shape)):  # onnxruntime crashed
            raise ShapeError(f"{op.name}: its input {tensors[0].type} is empty (an empty slice?): the layer needs "
                             "elements to work on (onnxruntime's kernel fails on an empty input)", span)
        if op.random and len(tensors) == 1:  # randn_like(x): the numbers follow the model's `seed` input
            tensors.append(self.seed_input(op.name, span))
        name = self.layer_name(label, op.name)
        dtype = DTYPES[attrs["dtype"]] if op.params is not None and attrs.get("dtype") else next(
            (t.type.dtype for t in tensors if t.type.dtype.is_float), DType.float32)  # embedding(dtype=) or x's
        inputs = [t.value for t in tensors]
        if op.params is not None:
            try:
                specs = op.params([t.type for t in tensors], attrs)
            except ShapeError as err:  # conv2d on a [B, 16] made by a linear: say where that came from
                if not err.notes:
                    err.notes = provenance([t.value for t in tensors], span, err.message)
                raise err.with_span(span) from None
            for spec in specs:
                for d in spec.shape:
                    if d <= 0 or d > Limits.dim:
                        raise LimitError(f"{op.name}: parameter '{spec.name}' has a dim of {d} (dims are 1 to "
                                         f"{Limits.dim})", span)
                check_elements(spec.shape, f"{op.name}: parameter '{spec.name}'", span)
                inputs.append(self.new_param(f"{name}.{spec.name}", spec, dtype, span, name, label))
            if self.sharing is None:  # in a block called again, layer("fc") stays the first call's
                self.layers[name] = LayerFn(name, op, attrs, tuple(inputs[len(tensors):]))
        if len(self.graph.nodes) >= Limits.nodes:
            raise LimitError(f"model has more than {Limits.nodes} nodes", span)
        order = torch_order(op, args, kwargs)
        said = order or suspicious(op, tensors, attrs, frozenset(kwargs))
        try:
            node = self.graph.add_node(op.name, inputs, attrs, self.stream_name(op, attrs, self.again(name)), span)
            if label is not None:
                self.graph.labelled.add(id(node))
        except ArchError as err:  # conv2d(3, 64, 3): a kernel larger than the image
            if said:
                err.notes.append((said, span))
            raise
        if said:  # conv2d(3, 16, 3) may pass the shape check (as may a conv over channels-last images)
            self.graph.warnings.append((said, span))
            if order or reads_layout(op.name):
                self.graph.misreads.append((said, span))
        for o in node.outputs:
            for d in o.type.shape:
                if isinstance(d, int) and not 0 <= d <= Limits.dim:
                    raise LimitError(f"{op.name} makes a dim of {d} (dims are 0 to {Limits.dim})", span)
                if isinstance(d, Sym):
                    _check_symbolic_dim(op.name, d, span)
            check_elements([d for d in o.type.shape if isinstance(d, int)], f"{op.name} makes a tensor that",
                            span)
        outs = tuple(Tensor(o) for o in node.outputs)
        return outs[0] if len(outs) == 1 and not op.tuple_out else outs

    def again(self, name: str, always: bool = False) -> str:
        """A node's name in a block called again (shared.attn#2), or of a layer called again (proj#2): the name
        with the next number no earlier call took, so that a layer called again inside a block called again
        is proj#4, not a second proj#2 (and not proj#3#2)."""
        if not (always or self.calling_again):
            return name
        k = self.layer_calls[name] = self.layer_calls.get(name, 1) + 1
        return f"{name}#{k}"

    def stream_name(self, op, attrs: dict, name: str) -> str:
        """A node that draws random numbers draws them from a stream its name keys (ops/random.py): one label
        given twice (a loop's `rand_like(x) as r`, a block's `dropout(0.1) as drop` called twice) drew the same
        numbers twice, as no parameter refused the second. Such a name is made unique (r, r#2, ...)."""
        if not (op.random or op.name in ("dropout", "drop_path") or attrs.get("dropout")):
            return name
        k = self.stream_last.get(name, 1)  # names are only ever taken: the first free one is past the last given
        unique = name if k == 1 else f"{name}#{k}"
        while unique in self.streams:
            k += 1
            unique = f"{name}#{k}"
        self.streams.add(unique)
        self.stream_last[name] = k
        return unique

    def seed_input(self, opname: str, span) -> Tensor:
        """The model's int64 scalar input `seed`, added on the first random call (or the one declared so)."""
        have = self.graph.input_named(SEED_INPUT)
        want = TensorType(DType.int64, ())
        if have is None and SEED_INPUT in self.graph.params:  # an initializer would be the input's default
            raise ArchTypeError(f"{opname}(): a random call reads the model's int64 input '{SEED_INPUT}', and a "
                                f"parameter already has that name; label it apart with 'as', or give seed= a tensor",
                                span)
        if have is None:
            have = self.graph.add_input(SEED_INPUT, want, span)
            self.graph.implicit.append(have)
            return Tensor(have)
        if have.type != want:
            raise ArchTypeError(f"{opname}(): the model's input '{SEED_INPUT}' is {have.type}, and a random call "
                                f"reads an int64 scalar of that name; give seed= another tensor, or rename the input",
                                span)
        return Tensor(have)

    def bind_op_args(self, op, args, kwargs, span):
        """Positional arguments fill the tensor inputs, then the attributes, in order."""
        slots = [i.lstrip("*").rstrip("?") for i in op.inputs]
        given: dict = {}
        names = arg_names(op)
        positional = positional_names(op)
        listed = [k for k, n in enumerate(positional) if "*" + n in op.inputs]
        if listed and len(args) > listed[0] + 1 and isinstance(args[listed[0] + 1], Tensor):
            raise ArchTypeError(f"{op.name}() takes its tensors as one list: {list_call(op)}", span)
        optional = keyword_only(op)
        if len(args) > len(positional):
            plural = "s" if len(positional) != 1 else ""
            keyword = (f"; optional tensor inputs are keyword-only: {optional}"  # gemm(a, b, c)
                       if optional and isinstance(args[len(positional)], Tensor) else "")
            raise ArchTypeError(f"{op.name}() takes {len(positional)} positional argument{plural}"
                                f" at most, got {len(args)}{keyword} (signature: {op.signature()})", span)
        for n, v in zip(positional, args):  # optional tensor inputs are keyword-only
            if isinstance(v, Tensor) and any(a.name == n for a in op.arguments) and optional:
                raise ArchTypeError(f"{op.name}(): a tensor given positionally where argument '{n}' goes; "
                                    f"optional tensor inputs are keyword-only: {optional} (signature: "
                                    f"{op.signature()})", span)
            given[n] = v
        kwargs = synonyms(op, kwargs, names, given, span)
        keywords(given, kwargs, names, op.name, f"signature: {op.signature()}", span)
        picked = []
        for raw, n in zip(op.inputs, slots):
            if n not in given or (given[n] is None and raw.endswith("?")):
                if raw.endswith("?"):
                    continue
                raise ArchTypeError(f"{op.name}() is missing its tensor input '{n}': {op.signature()}", span)
            v = given[n]
            if raw.startswith("*"):
                if isinstance(v, Tensor):  # torch.cat(x) would iterate over x's first dim: not the same thing
                    raise ArchTypeError(f"{op.name}(): '{n}' takes a list of tensors, got one tensor: "
                                        f"{list_call(op)}", span)
                first = given.get(positional[0]) if positional and positional[0] != n else None
                if isinstance(v, str) and isinstance(first, (Tensor, list, tuple)):  # x -> einsum("ij->ji")
                    listed = "[x]" if isinstance(first, Tensor) else "[a, b]"
                    raise ArchTypeError(f"{op.name}() takes its {positional[0]} first, then its tensors as one list: "
                                        f'{op.name}("{v}", {listed}) (a chain `x -> {op.name}(...)` gives x first, '
                                        f"where the {positional[0]} goes)", span)
                if not isinstance(v, (list, tuple)) or not all(isinstance(t, Tensor) for t in v):
                    bad = next((i for i, t in enumerate(v) if not isinstance(t, Tensor)), None) \
                        if isinstance(v, (list, tuple)) else None  # concat([x, 3]): which one
                    which = f" (element {bad} is {describe(v[bad])})" if bad is not None else ""
                    raise ArchTypeError(f"{op.name}(): '{n}' must be a list of tensors, got {describe(v)}{which}",
                                        span)
                picked.extend((n, t) for t in v)
            else:
                if n == "like" and not isinstance(v, Tensor):  # only its shape is read: a number has none to give
                    raise ArchTypeError(f"{op.name}(): like= takes a tensor whose sizes to match, got "
                                        f"{describe(v)}", span)
                picked.append((n, v))
        near = [v for n, v in picked if isinstance(v, Tensor) and n != "cond" and n not in op.positions]  # numbers
        # take a non-bool neighbour's dtype (not an index's: scatter(mask, 1, i, true) writes a bool)
        ref = next((v for v in near if v.type.dtype is not DType.bool), near[0] if near else None)  # never where's
        ref_dt = ref.type.dtype if ref is not None else None  # condition's (a non-bool one is where's to say)
        if ref is None and any(n == "cond" and isinstance(v, Tensor) for n, v in picked):  # where(c, 1.0, 0.0):
            ref_dt = _branch_dtype(picked)  # the numbers' own dtype
        tensors = [self.as_tensor(v, DType.int64 if n in op.positions and is_int(v) else
                                  None if isinstance(v, bool) and not op.elementwise and ref_dt is not DType.bool
                                  else ref_dt, op.name, n, span)
                   for n, v in picked]  # take(w, 0): the index is a position; take(w, true) is no index at all
        attrs = {}
        for a in op.attrs:
            if a.kind == "given":  # which optional tensor inputs this call gave
                attrs[a.name] = tuple(n for raw, n in zip(op.inputs, slots) if raw.endswith("?")
                                      and given.get(n) is not None)
            elif a.name in given:
                try:
                    attrs[a.name] = coerce_attr(op, a, given[a.name])
                except ArchError as err:
                    if op.name == "linear" and a.name == "bias" and is_int(given[a.name]) and given[a.name] > 0:
                        err.notes.append((f"torch's nn.Linear(in, out) is linear({given[a.name]}) here: the input "
                                          f"features come from x, and the second number reads as bias=", span))
                    if op.name == "randint_like" and a.name == "low" and given.get("high") is None:
                        err.notes.append(("a number given alone is the high end, as in torch.randint_like(x, high)",
                                          span))
                    raise err.with_span(span) from None
            elif a.default is REQUIRED:
                raise ArchTypeError(f"{op.name}() is missing argument '{a.name}': {op.signature()}", span)
            else:
                attrs[a.name] = coerce_attr(op, a, a.default)
        return tensors, attrs

    def as_tensor(self, v, dt: DType | None, opname, slot, span) -> Tensor:
        """Numbers next to a tensor become constants of its dtype `dt` (`x * 0.5`)."""
        if isinstance(v, Tensor):
            return v
        if (is_num(v) or isinstance(v, bool)) and dt is not None:  # eq(mask, false); true is 1 beside numbers
            if dt is DType.bool and v not in (0, 1):  # np.array(2, bool) is true: eq(b, 2) matched every true
                if opname not in _COMPARISONS and not opname.startswith("logical_") and opname != "where":
                    to = "int64" if opname.startswith("bitwise_") else "float32"  # torch's b ^ 2 is int64
                    raise ArchTypeError(f"{opname}(): no arithmetic on bool tensors; cast(x, \"{to}\") first",
                                        span)
                raise ArchTypeError(f"{opname}(): {v} beside a bool tensor, whose elements are only true or "
                                    f"false", span)
            if not dt.is_float and isinstance(v, float) and opname in _COMPARISONS:  # exact: a whole float
                if not v.is_integer():
                    raise ArchTypeError(f"{opname}(): {v} is not a whole number"
                                        + (f", so no element of the {dt} tensor equals it" if opname == "eq"
                                           else f" and the tensor is {dt}")
                                        + "; cast(x, \"float32\") first", span)
                if not dt.limits()[0] <= v <= dt.limits()[1]:  # `ids < 1e30`
                    raise ArchTypeError(f"{opname}(): the number {v!r} lies outside {dt}'s range, so the comparison "
                                        "is the same for every element (torch gives all true or all false): compare "
                                        "with a number in range", span)
                v = int(v)
            elif not dt.is_float and isinstance(v, float):  # x * 0.5 would be x * 0, and ids * 1e3 stay ints
                if opname.startswith("bitwise_"):  # torch refuses a float there too
                    raise ArchTypeError(f"{opname}(): the number {v} is a float; bitwise ops take integers: write "
                                        f"an integer", span)
                raise ArchTypeError(f"{opname}(): the number {v} is a float and the tensor beside it is {dt} "
                                    f"(torch would give a float tensor); cast(x, \"float32\") first, or write "
                                    f"an integer", span)
            check_fits(v, dt, span)
            return Tensor(self.graph.add_const(np.array(v, dtype=dt.numpy), span))
        if isinstance(v, Sym) and dt is not None and dt is not DType.bool:
            return self.dim_tensor(v, dt, opname, span)
        layer = is_num(v) and slot == "x" and getattr(ops.lookup(opname), "params", None)  # linear(10)(x)
        raise ArchTypeError(f"{opname}(): '{slot}' must be a tensor, got {describe(v)}"
                            + (self.none_hint() if v is None else ""), span,
                            [(f"{LAYER_CALL}: x -> {opname}(...) or {opname}(x, ...); {opname}(...) alone is no "
                              "module", span)] if layer else [])

    def make_constant(self, args, kwargs, span) -> Tensor:
        """tensor([[1, 2], [3, 4]], dtype="int64"): a constant from compile-time numbers (an index table, a
        mask), torch.tensor's default dtypes: bool, int64, or float32 when any number is a float or there is
        none."""
        names = ["values", "dtype"]
        if len(args) > len(names):
            raise ArchTypeError(f"tensor() takes (values, dtype=...), got {len(args)} positional arguments", span)
        given = dict(zip(names, args))
        keywords(given, kwargs, names, "tensor", "it takes values, dtype", span)
        if "values" not in given:
            raise ArchTypeError("tensor() is missing its values: tensor([1, 2, 3])", span)
        if self.graph is None:
            raise ArchTypeError("'tensor' makes a tensor; only inside a model or block (a file-level let holds "
                                "the numbers: `let t = [1.0, 2.0]`, and tensor(t) in the model makes the constant)",
                                span)
        name = given.get("dtype")
        if isinstance(given["values"], Sym):  # tensor(C): a size as a scalar, read at run time (sqrt(C) is refused)
            dt = DType.int64 if name is None else DTYPES.get(name) if isinstance(name, str) else None
            if dt is None or dt is DType.bool:
                raise ArchTypeError(f"tensor() of the size {given['values']}: dtype is one of "
                                    f"{', '.join(d for d in DTYPES if d != 'bool')}, got {describe(name)}", span)
            return self.dim_tensor(given["values"], dt, "tensor", span)
        flat, shape = _nested(given["values"], span)
        check_elements(shape, "tensor()", span)
        self.charge(len(flat), span)
        if name is None:  # no numbers at all (tensor([])) is float32, as torch.tensor([])
            dt = (DType.bool if flat and all(isinstance(x, bool) for x in flat)
                  else DType.float32 if not flat or any(isinstance(x, float) for x in flat) else DType.int64)
        elif not isinstance(name, str) or name not in DTYPES:
            raise ArchTypeError(f"tensor(): dtype is one of {', '.join(DTYPES)}, got {describe(name)}", span)
        else:
            dt = DTYPES[name]
        for x in flat:  # true and false among numbers are 1 and 0, as torch.tensor([True, 2]) takes them
            if not dt.is_float and isinstance(x, float):
                raise ArchTypeError(f"tensor(): {x} is a float and the dtype is {dt}", span)
            if dt is DType.bool and x not in (0, 1):
                raise ArchTypeError(f"tensor(): {x} in a bool tensor, whose elements are only true or false", span)
            check_fits(x, dt, span)
        return Tensor(self.graph.add_const(np.array(flat, dtype=dt.numpy).reshape(shape), span))


    # ---------------- operators ----------------
    @staticmethod
    def parameter_args(args, kwargs, span) -> dict:
        """parameter()'s arguments by name, checked here so that a wrong one is named plainly."""
        if len(args) > len(names := _PARAMETER_ARGS):
            raise ArchTypeError(f"parameter() takes at most {len(names)} arguments, got {len(args)}", span)
        given = dict(zip(names, args))
        keywords(given, kwargs, names, "parameter", f"it takes {', '.join(names)}", span)
        if "shape" not in given:
            raise ArchTypeError('parameter() needs a shape: parameter([1, 1, 768], init="zeros") as NAME', span)
        for k in ("std", "low", "high", "value"):
            if k in given and not is_num(given[k]):
                raise ArchTypeError(f"parameter(): {k} must be a number, got {describe(given[k])}", span)
        return given

    def make_parameter(self, shape, label, span, init="zeros", std=0.02, low=0.0, high=1.0, value=0.0,
                       dtype="float32", trainable=None):
        """`parameter([1, 1, 768], init="zeros") as class_token`: a learned tensor used directly."""
        from ..ops import Init, ParamSpec
        from ..types import DTYPES
        if self.graph is None:
            raise ArchTypeError("parameter() is only allowed inside a model or block", span)
        if not isinstance(shape, (list, tuple)) or not all(is_int(d) and 0 < d <= Limits.dim for d in shape):
            sym = next((d for d in shape if isinstance(d, Sym)), None) if isinstance(shape, (list, tuple)) else None
            raise ArchTypeError(f"parameter() needs a list of positive integer dims ([] for a scalar), got "
                                f"{short(shape)}"
                                + (f": {sym} is a symbolic size, known only at run time, and a parameter's size is "
                                   "fixed when it is created (give it a number: a fixed size in the input's shape "
                                   "or a param)" if sym is not None else ""), span)
        inits = {"zeros": Init("zeros"), "ones": Init("ones"), "normal": Init("normal", 0.0, float(std)),
                 "trunc_normal": Init("trunc_normal", 0.0, float(std)),
                 "uniform": Init("uniform", float(low), float(high)),
                 "constant": Init("constant", float(value))}
        if not isinstance(init, str) or init not in inits:
            raise ArchTypeError(f"parameter(): init must be one of {', '.join(inits)}, got {describe(init)}", span)
        if init == "uniform" and not low <= high:  # torch's uniform_ refuses it too
            raise ArchTypeError(f"parameter(): uniform needs low <= high, got low={low}, high={high}", span)
        if init in ("normal", "trunc_normal") and not std >= 0:
            raise ArchTypeError(f"parameter(): {init} needs std >= 0, got std={std}", span)
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ArchTypeError(f"parameter(): {unknown_dtype(dtype if isinstance(dtype, str) else describe(dtype))}",
                                span)
        check_elements(shape, "parameter()", span)
        if init == "constant":  # 1e39 became inf in float32 with a numpy warning; 0.5 an int's 0
            fill_array("parameter()", value, DTYPES[dtype], named_infinity=False)
        reach = {"normal": NORMAL_REACH * std, "trunc_normal": 2 * std, "uniform": max(abs(low), abs(high), high - low)}
        if DTYPES[dtype].is_float and not reach.get(init, 0) <= (top := drawn_top(DTYPES[dtype])):
            said = f"low={low}, high={high}" if init == "uniform" else f"std={std}"  # std=1e39: inf weights, drawn
            raise ArchTypeError(f"parameter(): {init} with {said} draws numbers past {top:g} (inf in the float32 "
                                f"draw or the {dtype} weight)", span)  # in float32 (mutnew5, review119)
        if trainable is None:  # an integer or bool tensor is a buffer: nothing to learn by gradient
            trainable = DTYPES[dtype].is_float
        if not isinstance(trainable, bool):  # "no" and a symbolic T - 1 were true
            raise ArchTypeError(f"parameter(): trainable expects true or false, got {describe(trainable)}", span)
        if not DTYPES[dtype].is_float and (trainable or init not in ("zeros", "ones", "constant")):
            why = "cannot be trainable (torch refuses gradients for them): leave trainable out, or false, for a " \
                "buffer" if trainable else f'starts from init="zeros", "ones" or "constant" (init="{init}" draws ' \
                "floats)"
            raise ArchTypeError(f"parameter(): {'an' if dtype[0] in 'aeiou' else 'a'} {dtype} parameter {why}", span)
        name = self.layer_name(label, "param")
        spec = ParamSpec("", tuple(shape), inits[init], trainable=bool(trainable))
        self.free_params.add(name)
        return Tensor(self.new_param(name, spec, DTYPES[dtype], span, name, label))

    def new_param(self, full: str, spec, dtype, span: Span, layer: str, label):
        """graph.add_param, and for a name defined twice, notes on how it came about: an automatic name taken,
        another call of the block, or one line run twice by a loop."""
        if self.sharing is not None:
            return self.shared_param(full, spec, dtype, span)
        try:
            v = self.graph.add_param(full, spec, dtype, span)
        except ArchError as err:
            if full not in self.graph.params:  # named like a model input: nothing more to say
                raise
            if label is not None and layer in self.automatic:
                err.notes.append((f"'{layer}' is the automatic name of that layer, which has no 'as'; "
                                  "name it, or choose another name here", None))
            first = self.param_calls.get(full, ())
            if first != tuple(self.calls):  # made by another call of the block: say which
                err.notes.extend((f"the first one in block {block}(), called here", at)
                                 for block, at in reversed(first) if (block, at) not in self.calls)
            elif self.graph.params[full].span == span:
                err.notes.append(("the same code ran twice under one name (in a loop?): give each pass a name "
                                  "of its own, as \"name{i}\" with the loop's index", None))
                err.notes.append((f"for one set of weights shared by every pass (a torch module called in a loop), "
                                  f"make the layer once before the loop and call it again inside with "
                                  f"h -> layer(\"{layer}\"): weight tying in grammar/REFERENCE.md", None))
            raise
        self.owners.add(full.rpartition(".")[0])
        if self.calls:
            self.param_calls[full] = tuple(self.calls)
        return v


    def ref_parameter(self, name, span):
        """`ref("wte.weight")`: the parameter of that full name, for weight tying; inside a block, this call's
        own first (`ref("w")` of a `parameter(...) as w` there), as layer() reads a block's layers."""
        if self.graph is None:
            raise ArchTypeError("ref() is only allowed inside a model or block", span)
        name = self.in_scope(name, self.graph.params)
        if not isinstance(name, str) or name not in self.graph.params:
            named = short(name) if isinstance(name, str) else describe(name)
            here = f"{'.'.join(self.scope)}." if self.scope else ""  # a block's own layer, else the model's
            own = next((ps for prefix in (here, "") if (ps := [p.removeprefix(prefix) for p in self.graph.params
                        if isinstance(name, str) and p.startswith(f"{prefix}{name}.")])), [])  # (mutnew4, mutnew5)
            if own:  # ref("fc"): a layer's name; its parameters are fc.weight, fc.bias
                raise UnknownNameError(f"no parameter named {named}: it names a layer, whose parameters are "
                                       f"{', '.join(repr(p) for p in own[:4])} (ref(\"{own[0]}\")); layer({named}) "
                                       "calls the layer again", span)
            hint = did_you_mean(str(name), self.graph.params)
            raise UnknownNameError(f"no parameter named {named} (yet){hint}", span)
        return Tensor(self.graph.params[name])


def _nested(v, span, depth: int = 0) -> tuple[list, tuple[int, ...]]:
    """The numbers of a (nested) list, flat, and its shape; a ragged list or a non-number is an error."""
    if is_num(v) or isinstance(v, bool):
        return [v], ()
    if not isinstance(v, (list, tuple)):
        raise ArchTypeError(f"tensor(): the values are numbers or (nested) lists of numbers, got {describe(v)}", span)
    parts = [_nested(x, span, depth + 1) for x in v]
    shapes = {shape for _, shape in parts}
    if len(shapes) > 1:
        seen = ", ".join(str(list(sh)) for sh in sorted(shapes))
        raise ArchTypeError(f"tensor(): the lists at depth {depth + 1} differ in shape ({seen}): a tensor is "
                            "rectangular", span)
    inner = shapes.pop() if shapes else ()
    return [x for flat, _ in parts for x in flat], (len(v), *inner)
