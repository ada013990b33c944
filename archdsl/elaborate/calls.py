"""Calls during elaboration: ops (arguments bound to attributes and tensor slots, one IR node each),
blocks (a new scope and layer-name prefix), builtins, and free parameters / ref()."""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..diagnostics import (
    ArchError,
    ArchTypeError,
    LimitError,
    ShapeError,
    Span,
    UnknownNameError,
    did_you_mean,
    quoted,
)
from ..ops import REQUIRED, coerce_attr
from ..types import DTYPES, DType, Sym, is_formula, literal
from .bounded import short
from .builtins import TENSOR_MATH
from .scalars import Limits, ReturnValue, is_int, is_num
from .values import BlockFn, BlockLayer, Builtin, Env, LayerFn, OpFn, Tensor, describe

__all__ = ["Calls", "check_elements", "check_fits"]

_PARAMETER_ARGS = ("shape", "init", "std", "low", "high", "value", "dtype", "trainable")


def check_fits(v, dt: DType, span: Span) -> None:
    """A number becoming a constant of a tensor's dtype: out of range it would be a silent inf (with a numpy
    warning) or an overflow, so it is a diagnostic at the number instead."""
    if dt is DType.bool:
        return
    low, top = dt.limits()
    if dt.is_float:
        if math.isfinite(v) and abs(v) > top:
            raise ArchTypeError(f"the number {v} does not fit {dt} (largest {top:g})", span)
        return
    if not low <= v <= top:
        raise ArchTypeError(f"the number {v} does not fit {dt} ({low}..{top})", span)


def _keywords(given: dict, kwargs: dict, names, callee: str, hint: str, span: Span) -> None:
    """Keyword arguments into `given` (the positional ones already there): unknown or repeated is an error."""
    for k, v in kwargs.items():
        if k not in names:
            raise ArchTypeError(f"{callee}() has no argument '{k}'{did_you_mean(k, names)} ({hint})", span)
        if k in given:
            raise ArchTypeError(f"{callee}(): argument '{k}' given twice", span)
        given[k] = v


# torch's and numpy's names for one argument: an op taking `axis` takes `dim=` for it, and so on
_SYNONYMS = {"dim": "axis", "axis": "dim", "keepdim": "keepdims", "keepdims": "keepdim",
             "attn_mask": "mask", "is_causal": "causal"}  # F.scaled_dot_product_attention's names


def _synonyms(op, kwargs: dict, names, given: dict, span: Span) -> dict:
    """kwargs with torch's or numpy's name for an argument (softmax(x, dim=-1), sum(x, axis=1),
    mean(x, 1, keepdims=true), sdpa(q, k, v, attn_mask=m, is_causal=true)) renamed to the op's own, where the
    op has the other name and not this one."""
    if not op.synonyms:
        return kwargs
    out = {}
    for k, v in kwargs.items():
        own = _SYNONYMS.get(k)
        if k not in names and own in names:
            if own in kwargs:
                raise ArchTypeError(f"{op.name}(): '{k}' and '{own}' are one argument (torch's and numpy's "
                                    f"names for it); give only {own}=", span)
            if own in given:
                raise ArchTypeError(f"{op.name}(): argument '{own}' given twice (positionally and as {k}=)", span)
            k = own
        out[k] = v
    return out


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
            if label is not None or kwargs or len(args) != 1:
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
            if label is not None:
                raise ArchTypeError(f"{fn.name}() creates no layer and cannot be named", span)
            if fn.name in TENSOR_MATH and args and isinstance(args[0], Tensor):
                return self.call_op(fn.name, args, kwargs, label, span)
            try:
                out = fn.fn(*args, **kwargs)
            except TypeError:
                given = ", ".join([describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()])
                raise ArchTypeError(f"{fn.name}() does not take ({given}): {fn.doc}", span) from None
            if isinstance(out, (list, tuple, str)):
                self.charge(len(out), span)
            if is_int(out) and out.bit_length() > Limits.int_bits:  # int(1e300), sum([2**127, 2**127])
                raise LimitError(f"{fn.name}() makes an integer too large ({out.bit_length()} bits; the limit is "
                                 f"{Limits.int_bits})", span)
            return out
        raise ArchTypeError(f"{describe(fn)} is not callable", span)

    def call_op(self, op, args: list, kwargs: dict, label, span: Span):
        if isinstance(op, str):
            op = ops.get(op)
        if self.graph is None:
            raise ArchTypeError(f"'{op.name}' makes a tensor; only inside a model or block", span)
        tensors, attrs = self.bind_op_args(op, args, kwargs, span)
        name = self.layer_name(label, op.name)
        dtype = next((t.type.dtype for t in tensors if t.type.dtype.is_float), DType.float32)
        inputs = [t.value for t in tensors]
        if op.params is not None:
            try:
                specs = op.params([t.type for t in tensors], attrs)
            except ShapeError as err:
                raise err.with_span(span) from None
            for spec in specs:
                for d in spec.shape:
                    if d <= 0 or d > Limits.dim:
                        raise LimitError(f"{op.name}: parameter '{spec.name}' has a dim of {d}", span)
                check_elements(spec.shape, f"{op.name}: parameter '{spec.name}'", span)
                inputs.append(self.new_param(f"{name}.{spec.name}", spec, dtype, span, name, label))
            if self.sharing is None:  # in a block called again, layer("fc") stays the first call's
                self.layers[name] = LayerFn(name, op, attrs, tuple(inputs[len(tensors):]))
        if len(self.graph.nodes) >= Limits.nodes:
            raise LimitError(f"model has more than {Limits.nodes} nodes", span)
        node = self.graph.add_node(op.name, inputs, attrs, name + self.call_tag, span)
        for o in node.outputs:
            for d in o.type.shape:
                if isinstance(d, int) and not 0 <= d <= Limits.dim:
                    raise LimitError(f"{op.name} makes a dim of {d}", span)
            check_elements([d for d in o.type.shape if isinstance(d, int)], f"{op.name} makes a tensor that",
                            span)
        outs = tuple(Tensor(o) for o in node.outputs)
        return outs[0] if len(outs) == 1 and not op.tuple_out else outs

    def bind_op_args(self, op, args, kwargs, span):
        """Positional arguments fill the tensor inputs, then the attributes, in order."""
        slots = [i.lstrip("*").rstrip("?") for i in op.inputs]
        given: dict = {}
        names = slots + [a.name for a in op.arguments]
        positional = [i.lstrip("*") for i in op.inputs if not i.endswith("?")] + [a.name for a in op.arguments]
        if op.call_order:  # torch's order: gather(x, dim, index)
            positional = list(op.call_order) + [n for n in positional if n not in op.call_order]
        listed = [k for k, n in enumerate(positional) if "*" + n in op.inputs]
        if listed and len(args) > listed[0] + 1 and isinstance(args[listed[0] + 1], Tensor):
            raise ArchTypeError(f"{op.name}() takes its tensors as one list: {_list_call(op)}", span)
        if len(args) > len(positional):
            plural = "s" if len(positional) != 1 else ""
            raise ArchTypeError(f"{op.name}() takes {len(positional)} positional argument{plural}"
                                f" at most, got {len(args)} (signature: {op.signature()})", span)
        for n, v in zip(positional, args):  # optional tensor inputs are keyword-only
            if isinstance(v, Tensor) and any(a.name == n for a in op.arguments):
                optional = [i.lstrip("*").rstrip("?") for i in op.inputs if i.endswith("?")]
                if optional:
                    raise ArchTypeError(f"{op.name}(): a tensor given positionally where argument '{n}' goes; "
                                        f"optional tensor inputs are keyword-only: {optional[0]}=... (signature: "
                                        f"{op.signature()})", span)
            given[n] = v
        kwargs = _synonyms(op, kwargs, names, given, span)
        _keywords(given, kwargs, names, op.name, f"signature: {op.signature()}", span)
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
                                        f"{_list_call(op)}", span)
                if not isinstance(v, (list, tuple)) or not all(isinstance(t, Tensor) for t in v):
                    raise ArchTypeError(f"{op.name}(): '{n}' must be a list of tensors, got {describe(v)}", span)
                picked.extend((n, t) for t in v)
            else:
                if n == "like" and not isinstance(v, Tensor):  # only its shape is read: a number has none to give
                    raise ArchTypeError(f"{op.name}(): like= takes a tensor whose sizes to match, got "
                                        f"{describe(v)}", span)
                picked.append((n, v))
        tensors_given = [v for _, v in picked if isinstance(v, Tensor)]  # numbers take a non-bool neighbour's dtype
        ref = next((v for v in tensors_given if v.type.dtype is not DType.bool),
                   tensors_given[0] if tensors_given else None)
        ref_dt = ref.type.dtype if ref is not None else None
        if ref_dt is DType.bool and "cond" in op.inputs:  # where(c, 1.0, 0.0): numbers are not the condition's
            ref_dt = _branch_dtype(picked)
        tensors = [self.as_tensor(v, DType.int64 if n in op.positions and is_int(v) else ref_dt, op.name, n, span)
                   for n, v in picked]  # take(w, 0): the index is a position, not a number of w's dtype
        attrs = {}
        for a in op.attrs:
            if a.kind == "given":  # which optional tensor inputs this call gave
                attrs[a.name] = tuple(n for raw, n in zip(op.inputs, slots) if raw.endswith("?")
                                      and given.get(n) is not None)
            elif a.name in given:
                try:
                    attrs[a.name] = coerce_attr(op, a, given[a.name])
                except ArchError as err:
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
        if is_num(v) and dt is not None:
            if dt is DType.bool and v not in (0, 1):  # np.array(2, bool) is true: eq(b, 2) matched every true
                raise ArchTypeError(f"{opname}(): {v} beside a bool tensor, whose elements are only true or "
                                    f"false", span)
            if not dt.is_float and isinstance(v, float) and opname in _COMPARISONS:  # exact: a whole float
                if not v.is_integer():
                    raise ArchTypeError(f"{opname}(): {v} is not a whole number"
                                        + (f", so no element of the {dt} tensor equals it" if opname == "eq"
                                           else f" and the tensor is {dt}")
                                        + "; cast(x, \"float32\") first", span)
                v = int(v)
            elif not dt.is_float and isinstance(v, float):  # x * 0.5 would be x * 0, and ids * 1e3 stay ints
                raise ArchTypeError(f"{opname}(): the number {v} is a float and the tensor beside it is {dt} "
                                    f"(torch would give a float tensor); cast(x, \"float32\") first, or write "
                                    f"an integer", span)
            check_fits(v, dt, span)
            return Tensor(self.graph.add_const(np.array(v, dtype=dt.numpy), span))
        if isinstance(v, Sym) and dt is not None and dt is not DType.bool:
            return self.dim_tensor(v, dt, opname, span)
        raise ArchTypeError(f"{opname}(): '{slot}' must be a tensor, got {describe(v)}"
                            + (self.none_hint() if v is None else ""), span)

    def dim_tensor(self, d: Sym, dt: DType, opname: str, span) -> Tensor:
        """A symbolic size as a scalar of dtype dt, read at run time from shapes, factor by factor: a symbol (B, T)
        from the model input that declares it, a formula ((L-1)//2+1 after a strided conv) from the latest
        tensor that has it; multiplied out with the number (2*B*T). The nodes are named by the size, not
        numbered: the same spec at fixed sizes (run's check) and a block called again name the rest as before."""
        parts = []
        for f in d.factors:
            one = Sym((f,))
            found = self.dim_source(one) if is_formula(one) else next(  # symbols: the inputs' declarations
                ((v, v.type.shape.index(one)) for v in self.graph.inputs if one in v.type.shape), None)
            if found is None:
                raise ArchTypeError(f"{opname}(): the symbolic size {one} is the length of no dim of the model's "
                                    "inputs or of a tensor computed so far, so it cannot be read at run time", span)
            parts.append(found)
        prefix = ".".join(self.scope + [f"size({d})"]) + self.call_tag
        out = None
        for v, axis in parts:
            t = self.graph.add_node("dim_size", [v], {"axis": axis, "dtype": dt.label}, prefix, span).outputs[0]
            out = t if out is None else self.graph.add_node("mul", [out, t], {}, prefix, span).outputs[0]
        if d.coef != 1:
            k = self.graph.add_const(np.array(d.coef, dtype=dt.numpy), span)
            out = self.graph.add_node("mul", [out, k], {}, prefix, span).outputs[0]
        return Tensor(out)

    def dim_source(self, d: Sym):
        """(value, axis) of the latest node output so far with the size d (the tensor just computed, rather than
        an earlier branch that may be dead), else of a model input; an index kept as the graph grows, so each
        lookup costs only the nodes added since the last."""
        if self.dim_scanned < 0:  # the inputs first
            for v in self.graph.inputs:
                for axis, x in enumerate(v.type.shape):
                    self.dim_index.setdefault(x, (v, axis))
            self.dim_scanned = 0
        nodes = self.graph.nodes
        for n in nodes[self.dim_scanned:]:
            for o in n.outputs:
                for axis, x in enumerate(o.type.shape):
                    if not isinstance(x, int):
                        self.dim_index[x] = (o, axis)
        self.dim_scanned = len(nodes)
        return self.dim_index.get(d)

    def make_constant(self, args, kwargs, span) -> Tensor:
        """tensor([[1, 2], [3, 4]], dtype="int64"): a constant from compile-time numbers (an index table, a
        mask), torch.tensor's default dtypes: bool, int64, or float32 when any number is a float or there is
        none."""
        names = ["values", "dtype"]
        if len(args) > len(names):
            raise ArchTypeError(f"tensor() takes (values, dtype=...), got {len(args)} positional arguments", span)
        given = dict(zip(names, args))
        _keywords(given, kwargs, names, "tensor", "it takes values, dtype", span)
        if "values" not in given:
            raise ArchTypeError("tensor() is missing its values: tensor([1, 2, 3])", span)
        if self.graph is None:
            raise ArchTypeError("'tensor' makes a tensor; only inside a model or block (a file-level let holds "
                                "the numbers: `let t = [1.0, 2.0]`, and tensor(t) in the model makes the constant)",
                                span)
        flat, shape = _nested(given["values"], span)
        check_elements(shape, "tensor()", span)
        self.charge(len(flat), span)
        name = given.get("dtype")
        if name is None:  # no numbers at all (tensor([])) is float32, as torch.tensor([])
            dt = (DType.bool if flat and all(isinstance(x, bool) for x in flat)
                  else DType.float32 if not flat or any(isinstance(x, float) for x in flat) else DType.int64)
        elif not isinstance(name, str) or name not in DTYPES:
            raise ArchTypeError(f"tensor(): dtype is one of {', '.join(DTYPES)}, got {describe(name)}", span)
        else:
            dt = DTYPES[name]
        for x in flat:
            if isinstance(x, bool) and dt is not DType.bool:
                raise ArchTypeError(f"tensor(): {literal(x)} among numbers of dtype {dt}", span)
            if not dt.is_float and isinstance(x, float):
                raise ArchTypeError(f"tensor(): {x} is a float and the dtype is {dt}", span)
            if dt is DType.bool and x not in (0, 1):
                raise ArchTypeError(f"tensor(): {x} in a bool tensor, whose elements are only true or false", span)
            check_fits(x, dt, span)
        return Tensor(self.graph.add_const(np.array(flat, dtype=dt.numpy).reshape(shape), span))

    def call_block(self, fn: BlockFn, args, kwargs, label, span):
        """A block's body in a scope of its own. A call on plain values only (numbers, strings: a mask table's
        `region(p, size, ws, shift)`) that made no node, parameter, constant or warning is remembered by its
        arguments: the same call again gives the same value without running (a Swin-T whose masks call one
        block 883k times: 10.2 to 7.7 s)."""
        key = _memo_key(fn, args, kwargs) if label is None and self.sharing is None else None
        if key is not None and key in self.memo:
            return self.memo[key]
        made = lambda g: (len(g.nodes), len(g.params), len(g.consts), len(g.warnings)) if g is not None else None
        before = made(self.graph), len(self.block_layers)
        result = self._run_block(fn, args, kwargs, label, span)
        if key is not None and result is not None and not isinstance(result, Tensor) and \
                before == (made(self.graph), len(self.block_layers)):
            self.memo[key] = result
        return result

    def _run_block(self, fn: BlockFn, args, kwargs, label, span):
        d = fn.defn
        formals = [f.name for f in d.formals]
        if len(args) > len(formals):
            raise ArchTypeError(f"block {d.name}() takes {len(formals)} arguments, got {len(args)}", span,
                                [(f"{d.name} is defined here", d.span)])
        local = Env({}, fn.env)
        for f, v in zip(formals, args):
            local.vars[f] = v
        for k, v in kwargs.items():
            if k not in formals:
                raise ArchTypeError(f"block {d.name}() has no argument '{k}'{did_you_mean(k, formals)}", span,
                                    [(f"{d.name} is defined here", d.span)])
            if k in local.vars:
                raise ArchTypeError(f"block {d.name}(): argument '{k}' given twice", span)
            local.vars[k] = v
        for f in d.formals:
            if f.name not in local.vars:
                if f.default is None:
                    raise ArchTypeError(f"block {d.name}() is missing argument '{f.name}'", span,
                                        [(f"{d.name} is defined here", d.span)])
                try:  # a default may use the other arguments: the call is where it went wrong
                    local.vars[f.name] = self.eval(f.default, local)
                except ArchError as err:
                    _note_call(err, d.name, span)
                    raise
        self.depth += 1
        if self.depth > Limits.call_depth:
            raise LimitError(f"blocks call each other more than {Limits.call_depth} deep (recursion?)", span)
        saved = self.scope
        log: list[str] | None = None
        if label is not None:  # `as` opens a name scope; unlabelled, the block's layers join the caller's
            self.scope = self.layer_name(label, d.name).split(".")
            if self.sharing is None:  # its automatic names, for a call again by layer()
                log = []
                self.name_logs.append(log)
        self.calls.append((d.name, span))
        first = {f.name: local.vars[f.name] for f in d.formals} if log is not None else None  # as bound
        had = set(self.graph.params) if log is not None and self.graph is not None else set()
        try:
            self.exec_body(d.body, local)
            result = None
            self.last_none = d.name
        except ReturnValue as r:
            result = r.value
        except ArchError as err:
            _note_call(err, d.name, span)
            raise
        finally:
            self.calls.pop()
            scope, self.scope = ".".join(self.scope), saved
            self.depth -= 1
            if log is not None:
                self.name_logs.pop()
        if log is not None:
            made = tuple(n for n in (self.graph.params if self.graph is not None else ()) if n not in had)
            self.block_layers[scope] = BlockLayer(scope, fn, first, tuple(log), made)
        return result

    def none_hint(self) -> str:
        """Where a none may have come from, when a block of this model ended without a return statement (which
        none is its, a value cannot say)."""
        if self.last_none is not None:
            return f" (a block that ends without a return statement gives none, as {self.last_none}() does here)"
        return ""

    # ---------------- operators ----------------
    @staticmethod
    def parameter_args(args, kwargs, span) -> dict:
        """parameter()'s arguments by name, checked here so that a wrong one is named plainly."""
        names = _PARAMETER_ARGS
        if len(args) > len(names):
            raise ArchTypeError(f"parameter() takes at most {len(names)} arguments, got {len(args)}", span)
        given = dict(zip(names, args))
        _keywords(given, kwargs, names, "parameter", f"it takes {', '.join(names)}", span)
        if "shape" not in given:
            raise ArchTypeError('parameter() needs a shape: parameter([1, 1, 768], init="zeros") as NAME', span)
        for k in ("std", "low", "high", "value"):
            if k in given and not is_num(given[k]):
                raise ArchTypeError(f"parameter(): {k} must be a number, got {describe(given[k])}", span)
        return given

    def make_parameter(self, shape, label, span, init="zeros", std=0.02, low=0.0, high=1.0, value=0.0,
                       dtype="float32", trainable=True):
        """`parameter([1, 1, 768], init="zeros") as class_token`: a learned tensor used directly."""
        from ..ops import Init, ParamSpec
        from ..types import DTYPES
        if self.graph is None:
            raise ArchTypeError("parameter() is only allowed inside a model or block", span)
        if not isinstance(shape, (list, tuple)) or not all(is_int(d) and 0 < d <= Limits.dim for d in shape):
            raise ArchTypeError(f"parameter() needs a list of positive integer dims, got {short(shape)}", span)
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
            raise ArchTypeError(f"parameter(): unknown dtype {describe(dtype)}", span)
        check_elements(shape, "parameter()", span)
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

    def shared_param(self, full: str, spec, dtype, span: Span):
        """In a block called again by layer(): the parameter its first call made under that name."""
        v = self.graph.params.get(full)
        if v is None:
            raise ArchTypeError(f'layer("{self.sharing}"): this call of the block makes a parameter {full} that '
                                "its first call did not (it ran differently)", span)
        if tuple(spec.shape) != tuple(v.type.shape) or dtype != v.type.dtype:
            raise ShapeError(f'layer("{self.sharing}"): {full} is {v.type}, and this call needs '
                             f"{dtype}{list(spec.shape)}", span)
        return v

    def layer_ref(self, name, span) -> LayerFn | BlockLayer:
        """`layer("fc")`: a layer made earlier by an op (linear, conv2d, lstm, ...), or a labelled block call
        (`as enc`), by its full name."""
        if self.graph is None:
            raise ArchTypeError("layer() is only allowed inside a model or block", span)
        if isinstance(name, str) and name in self.block_layers and name not in self.layers:
            return self.block_layers[name]
        if not isinstance(name, str) or name not in self.layers:
            hint = did_you_mean(str(name), self.layers)
            named = short(name) if isinstance(name, str) else describe(name)
            inside = next((n for n in self.layers if n.startswith(f"{name}.")), None) if isinstance(name, str) else None
            more = (f"; {named} names a group of layers: layer() takes one op's layer, as layer(\"{inside}\"), "
                    f"or a block call labelled with `as`" if inside else "")
            full = [n for n in [*self.layers, *self.block_layers] if n.endswith(f".{name}")] \
                if isinstance(name, str) and not hint and not inside else []
            if full:  # `layer("i1")` inside a block labelled s: layer() takes the full name, s.i1
                more = f"; did you mean '{full[0]}' (layer() takes a layer's full name)?"
            raise UnknownNameError(f"no layer named {named} (yet){hint}{more}", span)
        return self.layers[name]

    def reuse_layer(self, fn: LayerFn, args, kwargs, label, span):
        """The layer's op again, on these inputs, reading the same parameter values: their gradients add up in
        a train step, as those of a torch module called twice."""
        if label is not None:
            raise ArchTypeError(f'layer("{fn.name}") calls an existing layer, whose parameters keep their names; '
                                "it takes no `as`", span)
        buffers = [v.name for v in fn.params if v.kind == "buffer"]
        if buffers:
            raise ArchTypeError(f'layer("{fn.name}"): a {fn.op.name} keeps buffers ({quoted(buffers)}) that each '
                                "call would update in training; only layers without buffers are called again", span)
        op = fn.op
        fixed = {a.name: fn.attrs[a.name] for a in op.attrs if a.kind != "given" and a.name in fn.attrs}
        names = [i.lstrip("*").rstrip("?") for i in op.inputs] + [a.name for a in op.arguments]
        kwargs = _synonyms(op, kwargs, names, {}, span)  # is_causal= is causal=: set when made, as any attribute
        for k in kwargs:
            if k in fixed:
                raise ArchTypeError(f'layer("{fn.name}"): {k} was set when the layer was made; a call again takes '
                                    "only its tensor inputs", span)
        tensors, attrs = self.bind_op_args(op, args, {**fixed, **kwargs}, span)
        dtype = next((t.type.dtype for t in tensors if t.type.dtype.is_float), None)
        made = next((v.type.dtype for v in fn.params if v.kind != "buffer"), None)
        if dtype is not None and made is not None and dtype != made:  # the op would mix them: invalid ONNX
            raise ShapeError(f'layer("{fn.name}"): its parameters are {made} and these inputs {dtype}; cast the '
                             f'inputs (cast(x, "{made}"))', span)
        try:
            specs = op.params([t.type for t in tensors], attrs)
        except ShapeError as err:
            raise err.with_span(span) from None
        for spec, v in zip(specs, fn.params):
            if tuple(spec.shape) != tuple(v.type.shape):
                raise ShapeError(f'layer("{fn.name}"): its {spec.name} is {list(v.type.shape)}, and these inputs '
                                 f"({', '.join(str(t.type) for t in tensors)}) need {list(spec.shape)}", span)
        name = self.layer_name(None, op.name)
        node = self.graph.add_node(op.name, [t.value for t in tensors] + list(fn.params), attrs, name + self.call_tag,
                                   span)
        outs = tuple(Tensor(o) for o in node.outputs)
        return outs[0] if len(outs) == 1 and not op.tuple_out else outs

    def reuse_block(self, fn: BlockLayer, args, kwargs, label, span):
        """The block again on new tensors, its other arguments as first given, every parameter the one its first
        call made (found by name, the automatic names replayed): gradients of the calls add up in a train step."""
        if label is not None:
            raise ArchTypeError(f'layer("{fn.name}") calls an existing block, whose parameters keep their names; '
                                "it takes no `as`", span)
        # its own buffers (not a layer elsewhere labelled "enc.bn"); parameter(trainable=false) is never
        # updated: only the ops' buffers refuse
        buffers = [n for n in fn.params if self.graph.params[n].kind == "buffer" and n not in self.free_params]
        if buffers:
            raise ArchTypeError(f'layer("{fn.name}"): the block keeps buffers ({quoted(buffers)}) that each call '
                                "would update in training; only blocks without buffers are called again", span)
        d = fn.fn.defn
        tensors = [k for k, v in fn.args.items() if isinstance(v, Tensor) or  # a list of tensors too: f([x, y])
                   isinstance(v, (list, tuple)) and v and all(isinstance(t, Tensor) for t in v)]
        if len(args) > len(tensors):
            raise ArchTypeError(f'layer("{fn.name}") takes the tensor arguments of block {d.name}() '
                                f"({', '.join(tensors) or 'none'}), got {len(args)} values", span)
        given = dict(zip(tensors, args))
        for k, v in kwargs.items():
            if k not in fn.args:
                raise ArchTypeError(f"block {d.name}() has no argument '{k}'{did_you_mean(k, list(fn.args))}", span)
            if k not in tensors:
                raise ArchTypeError(f'layer("{fn.name}"): {k} was {describe(fn.args[k])} when the block was first '
                                    "called; a call again takes only its tensor arguments, the others as first given",
                                    span)
            if k in given:
                raise ArchTypeError(f"block {d.name}(): argument '{k}' given twice", span)
            given[k] = v
        missing = [k for k in tensors if k not in given]
        if missing:
            raise ArchTypeError(f'layer("{fn.name}") is missing tensor argument {quoted(missing)} (the block '
                                "is called again on new tensors)", span)
        saved = self.scope, self.replay, self.sharing, self.call_tag
        self.calls_again += 1  # its nodes are named apart (shared.attn#2): a dropout draws a mask of its own
        self.scope, self.replay, self.sharing = fn.name.split("."), list(fn.automatic), fn.name
        self.call_tag = f"#{self.calls_again + 1}"
        try:
            out = self.call_block(fn.fn, [], {**fn.args, **given}, None, span)
            if self.replay:  # it made fewer unnamed layers than its first call
                raise ArchTypeError(f'layer("{fn.name}"): this call of the block does not make its first call\'s '
                                    f"{self.replay[0].rpartition('.')[2]} (it ran differently: name its layers "
                                    "with `as`)", span)
            return out
        finally:
            self.scope, self.replay, self.sharing, self.call_tag = saved

    def ref_parameter(self, name, span):
        """`ref("wte.weight")`: the parameter of that full name, for weight tying."""
        if self.graph is None:
            raise ArchTypeError("ref() is only allowed inside a model or block", span)
        if not isinstance(name, str) or name not in self.graph.params:
            hint = did_you_mean(str(name), self.graph.params)
            named = short(name) if isinstance(name, str) else describe(name)
            raise UnknownNameError(f"no parameter named {named} (yet){hint}", span)
        return Tensor(self.graph.params[name])


_PLAIN = (int, float, str, bool, type(None))


def _memo_key(fn: BlockFn, args, kwargs) -> tuple | None:
    """A block call's arguments as a key, when all are plain values (with their types: 1, 1.0 and true are
    equal in Python and not in a block's arithmetic, nor 0.0 and -0.0 in its strings); None otherwise."""
    if not all(type(v) in _PLAIN for v in (*args, *kwargs.values())):
        return None
    return (id(fn.defn), id(fn.env), tuple((type(v), repr(v)) for v in args),  # repr: -0.0 is not 0.0
            tuple(sorted((k, type(v).__name__, repr(v)) for k, v in kwargs.items())))


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


def check_elements(dims, what: str, span) -> None:
    """A tensor of more than Limits.elements numbers (symbolic dims count as 1): `check` counted
    parameter([2**30, 2**30]) happily and `build` then ran out of memory with no location."""
    n = math.prod(dims)
    if n > Limits.elements:
        raise LimitError(f"{what} has {n:,} elements, over the limit of {Limits.elements:,}", span)


CALL_NOTES = 4  # the innermost block calls an error inside a block names, as a short traceback


def _note_call(err: ArchError, block: str, span: Span) -> None:
    """An error inside a block also points at the call, where the fix often is (a block called twice under
    one name, an argument that does not fit); a deep recursion names only the innermost calls."""
    if span == err.span or any(at == span for _, at in err.notes):  # a recursion's same call: said once
        return
    shown = getattr(err, "block_calls", 0)
    err.block_calls = shown + 1
    if shown < CALL_NOTES:
        err.notes.append((f"in block {block}(), called here", span))
    elif shown == CALL_NOTES:
        err.notes.append(("(and from further calls)", None))


def _list_call(op) -> str:
    """How an op of a tensor list is called: concat([a, b], axis=1), stack([a, b], dim=1)."""
    if op.call_order and "*" + op.call_order[0] not in op.inputs:  # einsum(equation, [a, b])
        return f"{op.name}({op.call_order[0]}, [a, b])"
    first = op.attrs[0].name if op.attrs else "axis"
    return f"{op.name}([a, b], {first}=1)"

