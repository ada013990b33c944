"""Compile-time evaluation of expressions and statements; tensor operations become IR nodes.

Nothing here uses Python's eval: each AST node has one case below."""

from __future__ import annotations

import operator

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
from ..ir import Graph
from ..ops import REQUIRED, coerce_attr
from ..syntax import ast as A
from ..types import DType, Sym, dim_add, dim_floordiv, dim_mul
from .builtins import BUILTINS, MAX_LIST, TENSOR_MATH
from .values import BlockFn, Builtin, Env, Namespace, OpFn, Tensor, describe

__all__ = ["Evaluator", "Limits"]


class Limits:
    steps = 5_000_000
    call_depth = 64
    dim = 2**31 - 1
    nodes = 2_000_000
    int_bits = 128


class _Return(Exception):
    def __init__(self, value):
        self.value = value


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
_TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul"}


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Evaluator:
    """Evaluates one model's body into `graph`, tracking the layer-name scope."""

    def __init__(self, graph: Graph | None):
        self.graph = graph
        self.scope: list[str] = []
        self.counters: dict[tuple, int] = {}
        self.steps = 0
        self.depth = 0

    # ---------------- names ----------------
    def layer_name(self, label, base: str) -> str:
        if label is None:
            key = (tuple(self.scope), base)
            k = self.counters.get(key, 0)
            self.counters[key] = k + 1
            label = f"{base}_{k}"
        return ".".join(self.scope + [str(label)])

    # ---------------- statements ----------------
    def exec_body(self, body, env: Env):
        for stmt in body:
            self.exec_stmt(stmt, env)

    def _tick(self, span: Span):
        self.steps += 1
        if self.steps > Limits.steps:
            raise LimitError(f"evaluation took more than {Limits.steps} steps", span)

    def exec_stmt(self, s, env: Env):
        self._tick(s.span)
        if isinstance(s, A.Assign):
            value = self.eval(s.value, env)
            self.bind(s.targets, value, env, s.span)
        elif isinstance(s, A.Let):
            env.vars[s.name] = self.eval(s.value, env)
        elif isinstance(s, A.For):
            items = self.iterable(self.eval(s.iter, env), s.iter.span)
            for item in items:
                self.bind(s.targets, item, env, s.span)
                self.exec_body(s.body, env)
        elif isinstance(s, A.If):
            for cond, body in s.branches:
                if self.truth(self.eval(cond, env), cond.span):
                    self.exec_body(body, env)
                    break
            else:
                self.exec_body(s.orelse, env)
        elif isinstance(s, A.Repeat):
            n = self.eval(s.count, env)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ArchTypeError(f"repeat count must be a non-negative integer, got {describe(n)}", s.count.span)
            for i in range(n):
                if s.var:
                    env.vars[s.var] = i
                self.exec_body(s.body, env)
        elif isinstance(s, A.Return):
            vals = [self.eval(v, env) for v in s.values]
            raise _Return(vals[0] if len(vals) == 1 else tuple(vals))
        elif isinstance(s, A.Assert):
            if not self.truth(self.eval(s.cond, env), s.cond.span):
                msg = self.eval(s.message, env) if s.message is not None else "assertion failed"
                raise EvalError(str(msg), s.span)
        else:  # pragma: no cover - the parser produces no other statements
            raise EvalError(f"unsupported statement {type(s).__name__}", s.span)

    def bind(self, targets, value, env: Env, span: Span):
        if len(targets) == 1:
            env.vars[targets[0]] = value
            return
        if not isinstance(value, (list, tuple)) or len(value) != len(targets):
            n = len(value) if isinstance(value, (list, tuple)) else 1
            raise ArchTypeError(f"cannot unpack {describe(value)} into {len(targets)} names (got {n} values)", span)
        for t, v in zip(targets, value):
            env.vars[t] = v

    def iterable(self, v, span):
        if isinstance(v, dict):
            return list(v.keys())
        if isinstance(v, (list, tuple)):
            return list(v)
        if isinstance(v, str):
            return list(v)
        raise ArchTypeError(f"cannot loop over {describe(v)}", span)

    def truth(self, v, span):
        if isinstance(v, Tensor):
            raise ArchTypeError("a condition must be a compile-time value, not a tensor", span)
        return bool(v)

    # ---------------- expressions ----------------
    def eval(self, e, env: Env):
        try:
            return self._eval(e, env)
        except ArchError as err:
            raise err.with_span(e.span)
        except _Return:
            raise
        except RecursionError:
            raise LimitError("expression nested too deeply", e.span) from None
        except (ZeroDivisionError, OverflowError, ValueError, TypeError, KeyError, IndexError, MemoryError) as err:
            raise EvalError(_py_error(err), e.span) from None

    def _eval(self, e, env: Env):
        if isinstance(e, A.Const):
            return e.value
        if isinstance(e, A.Name):
            return self.lookup(e.id, env, e.span)
        if isinstance(e, A.Interp):
            return "".join(p if isinstance(p, str) else _to_str(self.eval(p, env)) for p in e.parts)
        if isinstance(e, A.ListLit):
            return [self.eval(x, env) for x in e.items]
        if isinstance(e, A.TupleLit):
            return tuple(self.eval(x, env) for x in e.items)
        if isinstance(e, A.DictLit):
            return {k: self.eval(v, env) for k, v in e.entries}
        if isinstance(e, A.ListComp):
            return self._listcomp(e, env)
        if isinstance(e, A.BinOp):
            return self.binop(e.op, self.eval(e.left, env), self.eval(e.right, env), e.span)
        if isinstance(e, A.UnaryOp):
            v = self.eval(e.operand, env)
            if e.op == "not":
                return not self.truth(v, e.operand.span)
            if isinstance(v, Tensor):
                return v if e.op == "+" else self.call_op("neg", [v], {}, None, e.span)
            if isinstance(v, Sym) and e.op == "-":
                return dim_mul(v, -1)
            if not _is_num(v):
                raise ArchTypeError(f"unary '{e.op}' needs a number, got {describe(v)}", e.span)
            return -v if e.op == "-" else v
        if isinstance(e, A.BoolOp):
            left = self.eval(e.left, env)
            lt = self.truth(left, e.left.span)
            if e.op == "and":
                return self.eval(e.right, env) if lt else left
            return left if lt else self.eval(e.right, env)
        if isinstance(e, A.IfExp):
            return self.eval(e.then if self.truth(self.eval(e.cond, env), e.cond.span) else e.orelse, env)
        if isinstance(e, A.Pipe):
            return self._pipe(e, env)
        if isinstance(e, A.Labelled):
            return self._call_expr(e.expr, env, piped=(), label=self._label(e.label, env), span=e.span)
        if isinstance(e, A.Call):
            return self._call_expr(e, env, piped=(), label=None, span=e.span)
        if isinstance(e, A.Attr):
            return self.attr(self.eval(e.value, env), e.name, e.span)
        if isinstance(e, A.Subscript):
            return self.subscript(self.eval(e.value, env), e.index, env, e.span)
        raise EvalError(f"cannot evaluate {type(e).__name__} here", e.span)

    def lookup(self, name: str, env: Env, span: Span):
        try:
            return env.lookup(name)
        except KeyError:
            pass
        if name in BUILTINS:
            return BUILTINS[name]
        op = ops.lookup(name)
        if op is not None:
            return OpFn(op)
        raise env.missing(name, span, extra=list(BUILTINS) + ops.all_names())

    def _label(self, label_expr, env):
        v = self.eval(label_expr, env)
        if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and not v):
            raise ArchTypeError(f"a layer name must be a name, string or integer, got {describe(v)}", label_expr.span)
        if isinstance(v, str) and any(c in v for c in " /\\:\t\n") or (isinstance(v, str) and ".." in v):
            raise ArchTypeError(f'layer name "{v}" may not contain spaces, slashes, colons or empty parts',
                                label_expr.span)
        return v

    def _listcomp(self, e: A.ListComp, env: Env):
        out = []
        inner = Env({}, env)
        for item in self.iterable(self.eval(e.iter, env), e.iter.span):
            self._tick(e.span)
            self.bind(e.targets, item, inner, e.span)
            if e.cond is None or self.truth(self.eval(e.cond, inner), e.cond.span):
                out.append(self.eval(e.elt, inner))
        return out

    def _pipe(self, e: A.Pipe, env: Env):
        left = self.eval(e.left, env)
        right = e.right
        label = None
        if isinstance(right, A.Labelled):
            label = self._label(right.label, env)
            right = right.expr
        return self._call_expr(right, env, piped=(left,), label=label, span=e.span)

    def _call_expr(self, e, env, piped: tuple, label, span):
        """A call, or a bare callable in a chain (`x -> relu`), with piped values first."""
        if isinstance(e, A.Call):
            fn = self.eval(e.func, env)
            args = list(piped) + [self.eval(a, env) for a in e.args]
            kwargs = {}
            for k, v in e.kwargs:
                if k in kwargs:
                    raise ArchTypeError(f"argument '{k}' given twice", v.span)
                kwargs[k] = self.eval(v, env)
            return self.call(fn, args, kwargs, label, e.span)
        fn = self.eval(e, env)
        if piped or label is not None:
            if not _callable(fn):
                what = ("the right side of '->' must be a layer, block or function" if piped else
                        "only a layer or block call can be named with 'as'")
                raise ArchTypeError(f"{what}, got {describe(fn)}", e.span)
            return self.call(fn, list(piped), {}, label, e.span)
        return fn

    # ---------------- calls ----------------
    def call(self, fn, args: list, kwargs: dict, label, span: Span):
        if isinstance(fn, OpFn):
            return self.call_op(fn.op, args, kwargs, label, span)
        if isinstance(fn, BlockFn):
            return self.call_block(fn, args, kwargs, label, span)
        if isinstance(fn, Builtin) and fn.name == "parameter":
            return self.make_parameter(*args, label=label, span=span, **kwargs)
        if isinstance(fn, Builtin) and fn.name == "ref":
            if label is not None or kwargs or len(args) != 1:
                raise ArchTypeError('ref() takes one parameter name: ref("wte.weight")', span)
            return self.ref_parameter(args[0], span)
        if isinstance(fn, Builtin):
            if label is not None:
                raise ArchTypeError(f"{fn.name}() creates no layer and cannot be named", span)
            if fn.name in TENSOR_MATH and args and isinstance(args[0], Tensor):
                return self.call_op(fn.name, args, kwargs, label, span)
            try:
                return fn.fn(*args, **kwargs)
            except TypeError:
                given = ", ".join([describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()])
                raise ArchTypeError(f"{fn.name}() does not take ({given}): {fn.doc}", span) from None
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
                inputs.append(self.graph.add_param(f"{name}.{spec.name}", spec, dtype, span))
        if len(self.graph.nodes) >= Limits.nodes:
            raise LimitError(f"model has more than {Limits.nodes} nodes", span)
        node = self.graph.add_node(op.name, inputs, attrs, name, span)
        for o in node.outputs:
            for d in o.type.shape:
                if isinstance(d, int) and not 0 <= d <= Limits.dim:
                    raise LimitError(f"{op.name} makes a dim of {d}", span)
        outs = tuple(Tensor(o) for o in node.outputs)
        return outs[0] if len(outs) == 1 and op.name != "split" else outs

    def bind_op_args(self, op, args, kwargs, span):
        """Positional arguments fill the tensor inputs, then the attributes, in order."""
        slots = [i.lstrip("*").rstrip("?") for i in op.inputs]
        given: dict = {}
        names = slots + [a.name for a in op.attrs]
        positional = [i.lstrip("*") for i in op.inputs if not i.endswith("?")] + [a.name for a in op.attrs]
        if len(args) > len(positional):
            raise ArchTypeError(f"{op.name}() takes {len(positional)} positional argument{'s' if len(positional) != 1 else ''}"
                                f" at most, got {len(args)} (signature: {op.signature()})", span)
        for n, v in zip(positional, args):  # optional tensor inputs are keyword-only
            given[n] = v
        for k, v in kwargs.items():
            if k not in names:
                raise ArchTypeError(f"{op.name}() has no argument '{k}'{did_you_mean(k, names)} "
                                    f"(signature: {op.signature()})", span)
            if k in given:
                raise ArchTypeError(f"{op.name}(): argument '{k}' given twice", span)
            given[k] = v
        picked = []
        for raw, n in zip(op.inputs, slots):
            if n not in given or (given[n] is None and raw.endswith("?")):
                if raw.endswith("?"):
                    continue
                raise ArchTypeError(f"{op.name}() is missing its tensor input '{n}': {op.signature()}", span)
            v = given[n]
            if raw.startswith("*"):
                v = [v] if isinstance(v, Tensor) else v
                if not isinstance(v, (list, tuple)) or not all(isinstance(t, Tensor) for t in v):
                    raise ArchTypeError(f"{op.name}(): '{n}' must be a list of tensors, got {describe(v)}", span)
                picked.extend((n, t) for t in v)
            else:
                picked.append((n, v))
        tensors_given = [v for _, v in picked if isinstance(v, Tensor)]  # numbers take a non-bool neighbour's dtype
        ref = next((v for v in tensors_given if v.type.dtype is not DType.bool), tensors_given[0] if tensors_given else None)
        tensors = [self.as_tensor(v, ref, op.name, n, span) for n, v in picked]
        attrs = {}
        for a in op.attrs:
            if a.name in given:
                try:
                    attrs[a.name] = coerce_attr(op, a, given[a.name])
                except ArchError as err:
                    raise err.with_span(span) from None
            elif a.default is REQUIRED:
                raise ArchTypeError(f"{op.name}() is missing argument '{a.name}': {op.signature()}", span)
            else:
                attrs[a.name] = coerce_attr(op, a, a.default)
        return tensors, attrs

    def as_tensor(self, v, ref: Tensor | None, opname, slot, span) -> Tensor:
        """Numbers next to a tensor become constants of its dtype (`x * 0.5`)."""
        if isinstance(v, Tensor):
            return v
        if _is_num(v) and ref is not None:
            dt = ref.type.dtype
            if not dt.is_float and isinstance(v, float) and not v.is_integer():  # x * 0.5 would be x * 0
                raise ArchTypeError(f"{opname}(): the number {v} does not fit the {dt} tensor beside it; "
                                    f"cast(x, \"float32\") first", span)
            if dt.np is None:  # bfloat16: numpy has no such dtype, ml_dtypes does
                import ml_dtypes
                return Tensor(self.graph.add_const(np.array(v, dtype=ml_dtypes.bfloat16), span))
            return Tensor(self.graph.add_const(np.array(v, dtype=dt.np), span))
        raise ArchTypeError(f"{opname}(): '{slot}' must be a tensor, got {describe(v)}", span)

    def call_block(self, fn: BlockFn, args, kwargs, label, span):
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
                local.vars[f.name] = self.eval(f.default, local)
        self.depth += 1
        if self.depth > Limits.call_depth:
            raise LimitError(f"blocks call each other more than {Limits.call_depth} deep (recursion?)", span)
        saved = self.scope
        if label is not None:  # `as` opens a name scope; unlabelled, the block's layers join the caller's
            self.scope = self.layer_name(label, d.name).split(".")
        try:
            self.exec_body(d.body, local)
            result = None
        except _Return as r:
            result = r.value
        finally:
            self.scope = saved
            self.depth -= 1
        return result

    # ---------------- operators ----------------
    def binop(self, op: str, a, b, span: Span):
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            if op in ("==", "!=") and (a is None or b is None):  # an optional tensor argument: `if mask != none`
                return (a is b) == (op == "==")
            if op not in _TENSOR_OPS:
                raise ArchTypeError(f"operator '{op}' is not defined on tensors", span)
            return self.tensor_binop(_TENSOR_OPS[op], a, b, span)
        if op == "@":
            raise ArchTypeError(f"'@' needs tensors, got {describe(a)} and {describe(b)}", span)
        if op in ("in", "not in"):
            if not isinstance(b, (list, tuple, dict, str)):
                raise ArchTypeError(f"'in' needs a list, tuple, dict or string on the right, got {describe(b)}", span)
            r = a in b
            return r if op == "in" else not r
        if op in _COMPARE:
            if op in ("==", "!="):
                return _COMPARE[op](a, b)
            if not ((_is_num(a) and _is_num(b)) or (type(a) is type(b) and isinstance(a, (str, list, tuple)))):
                raise ArchTypeError(f"cannot compare {describe(a)} {op} {describe(b)}", span)
            return _COMPARE[op](a, b)
        if isinstance(a, Sym) or isinstance(b, Sym):
            return _sym_arith(op, a, b, span)
        if op == "+" and type(a) is type(b) and isinstance(a, (str, list, tuple)):
            out = a + b
        elif op == "*" and (isinstance(a, (list, tuple, str)) and _is_int(b) or isinstance(b, (list, tuple, str)) and _is_int(a)):
            n = b if _is_int(b) else a
            seq = a if _is_int(b) else b
            if n * len(seq) > MAX_LIST:
                raise LimitError(f"sequence of {n * len(seq)} items is over the limit of {MAX_LIST}", span)
            out = seq * n
        elif _is_num(a) and _is_num(b):
            if op == "**" and _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1 and b * abs(a).bit_length() > Limits.int_bits:
                raise LimitError(f"{a} ** {b} is too large", span)
            out = _ARITH[op](a, b)
        else:
            raise ArchTypeError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}", span)
        if _is_int(out) and out.bit_length() > Limits.int_bits:
            raise LimitError("integer too large", span)
        return out

    def tensor_binop(self, opname, a, b, span):
        op = ops.get(opname)
        return self.call_op(op, [a, b], {}, None, span)

    # ---------------- attributes and indexing ----------------
    def attr(self, v, name: str, span: Span):
        if isinstance(v, Tensor):
            if name == "shape":
                return tuple(v.shape)
            if name == "T":
                if v.type.rank < 2:
                    raise ArchTypeError(f".T needs a tensor of rank 2 or more, got {v.type}", span)
                return self.call_op("transpose", [v], {}, None, span)
            if name == "rank":
                return v.type.rank
            if name == "dtype":
                return str(v.type.dtype)
            raise ArchTypeError(f"a tensor has no attribute '{name}' (it has shape, T, rank, dtype)", span)
        if isinstance(v, Namespace):
            try:
                return v.env.vars[name]
            except KeyError:
                raise v.env.missing(f"{v.name}.{name}", span) from None
        if isinstance(v, dict):
            if name in v:
                return v[name]
            raise EvalError(f"no key '{name}' in the dict{did_you_mean(name, [k for k in v if isinstance(k, str)])}",
                            span)
        raise ArchTypeError(f"{describe(v)} has no attribute '{name}'", span)

    def subscript(self, v, index, env, span):
        if isinstance(v, Tensor):
            return self.tensor_index(v, index, env, span)
        if len(index) != 1:
            raise ArchTypeError(f"{describe(v)} takes one index", span)
        ix = index[0]
        if isinstance(ix, A.Slice):
            if not isinstance(v, (list, tuple, str)):
                raise ArchTypeError(f"cannot slice {describe(v)}", span)
            parts = [None if p is None else self.eval(p, env) for p in (ix.lo, ix.hi, ix.step)]
            if any(p is not None and not _is_int(p) for p in parts) or parts[2] == 0:
                raise ArchTypeError("slice bounds must be integers (and the step non-zero)", span)
            return v[slice(*parts)]
        k = self.eval(ix, env)
        if isinstance(v, dict):
            if k not in v:
                keys = ", ".join(map(_to_str, v))
                raise EvalError(f"key {_to_str(k)} is not in the dict (keys: {keys})", span)
            return v[k]
        if isinstance(v, (list, tuple, str)):
            if not _is_int(k):
                raise ArchTypeError(f"index must be an integer, got {describe(k)}", span)
            if not -len(v) <= k < len(v):
                raise EvalError(f"index {k} is out of range for {describe(v)}", span)
            return v[k]
        raise ArchTypeError(f"cannot index {describe(v)}", span)

    def tensor_index(self, v, index, env, span):
        """`x[:, 0]`, `x[..., :d]`: integer and slice bounds known at compile time."""
        entries = []
        for ix in index:
            if isinstance(ix, A.Slice):
                parts = [None if p is None else self.eval(p, env) for p in (ix.lo, ix.hi, ix.step)]
                if any(p is not None and not _is_int(p) for p in parts):
                    raise ArchTypeError("tensor slice bounds must be integers known at compile time", ix.span)
                entries.append(("s", *parts))
            elif isinstance(ix, A.Const) and ix.value is Ellipsis:
                entries.append(("e",))
            else:
                k = self.eval(ix, env)
                if not _is_int(k):
                    raise ArchTypeError(f"a tensor index must be an integer or a slice, got {describe(k)}", ix.span)
                entries.append(("i", k))
        return self.call_op("getitem", [v], {"index": tuple(entries)}, None, span)

    # ---------------- free parameters ----------------
    def make_parameter(self, shape, label, span, init="zeros", std=0.02, low=0.0, high=1.0, value=0.0,
                       dtype="float32", trainable=True):
        """`parameter([1, 1, 768], init="zeros") as class_token`: a learned tensor used directly."""
        from ..ops import Init, ParamSpec
        from ..types import DTYPES
        if self.graph is None:
            raise ArchTypeError("parameter() is only allowed inside a model or block", span)
        if not isinstance(shape, (list, tuple)) or not all(_is_int(d) and 0 < d <= Limits.dim for d in shape):
            raise ArchTypeError(f"parameter() needs a list of positive integer dims, got {describe(shape)}", span)
        inits = {"zeros": Init("zeros"), "ones": Init("ones"), "normal": Init("normal", 0.0, float(std)),
                 "trunc_normal": Init("trunc_normal", 0.0, float(std)), "uniform": Init("uniform", float(low), float(high)),
                 "constant": Init("constant", float(value))}
        if init not in inits:
            raise ArchTypeError(f"parameter(): init must be one of {', '.join(inits)}, got {describe(init)}", span)
        if dtype not in DTYPES:
            raise ArchTypeError(f"parameter(): unknown dtype {describe(dtype)}", span)
        name = self.layer_name(label, "param")
        spec = ParamSpec("", tuple(shape), inits[init], trainable=bool(trainable))
        return Tensor(self.graph.add_param(name, spec, DTYPES[dtype], span))

    def ref_parameter(self, name, span):
        """`ref("wte.weight")`: the parameter of that full name, for weight tying."""
        if self.graph is None:
            raise ArchTypeError("ref() is only allowed inside a model or block", span)
        if not isinstance(name, str) or name not in self.graph.params:
            raise UnknownNameError(f"no parameter named {describe(name)} (yet){did_you_mean(str(name), self.graph.params)}",
                                   span)
        return Tensor(self.graph.params[name])


def _callable(fn) -> bool:
    return isinstance(fn, (OpFn, BlockFn, Builtin))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _to_str(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Tensor):
        raise ArchTypeError("cannot put a tensor into a string")
    return str(v)


def _sym_arith(op, a, b, span):
    if op == "*" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_mul(a, b)
    if op == "//" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_floordiv(a, b)
    if op == "+" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_add(a, b)
    if op == "-" and isinstance(a, (int, Sym)) and isinstance(b, (int, Sym)):
        return dim_add(a, dim_mul(b, -1) if isinstance(b, Sym) else -b)
    raise ArchTypeError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}", span)


def _py_error(err: Exception) -> str:
    if isinstance(err, ZeroDivisionError):
        return "division by zero"
    if isinstance(err, KeyError):
        return f"key {err.args[0]!r} not found"
    if isinstance(err, MemoryError):
        return "out of memory while evaluating"
    return str(err) or type(err).__name__
