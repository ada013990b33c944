"""Operators during elaboration: arithmetic and comparison on compile-time values and symbolic dims,
tensor arithmetic as IR nodes, attribute access (x.shape, .T) and subscripts (lists, dicts, tensor slices)."""

from __future__ import annotations

import re

import numpy as np

from .. import ops
from ..diagnostics import (
    ArchError,
    ArchTypeError,
    EvalError,
    LimitError,
    Span,
    UnknownNameError,
    did_you_mean,
)
from ..syntax import ast as A
from ..types import DType, Sym, dim_add, dim_str
from .bounded import check_length, comparing, contains, equal, order, short
from .scalars import (
    ARITH,
    COMPARE,
    TENSOR_OPS,
    UNDECIDED_ADVICE,
    Limits,
    SymbolicOperand,
    check_fits,
    is_int,
    is_num,
    sizes_order,
    sym_arith,
)
from .values import Namespace, Tensor, describe, model_called, torch_function_hint

__all__ = ["Operators"]

_ARITHMETIC = {op: sym for sym, op in TENSOR_OPS.items() if sym in ARITH}  # mul -> '*', not the comparisons


def _holds(v, dt) -> bool:
    """Whether a number beside a tensor of 16-bit float dtype `dt` is exactly one of its values (a tensor is)."""
    if not is_num(v) or isinstance(v, bool):
        return True
    try:
        with np.errstate(over="ignore"):  # 70000.0 as float16 is inf: not held, and no numpy warning
            return bool(float(dt.numpy(v)) == v) or v != v
    except OverflowError:
        return False


_NEVER_OVERFLOWS = {k: ARITH[k] for k in ("+", "-", "*", "//", "%")}


class Operators:
    """The Evaluator's operators (a mixin: it uses the evaluator's graph and calls)."""

    def binop(self, op: str, a, b, span: Span, operand_spans: tuple = ()):
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):  # plain numbers, most of all (not bool)
            compare = COMPARE.get(op)
            if compare is not None:  # what compared(order/equal) gives two numbers, without the meter
                return compare(a, b)
            if op in ARITH:
                fast = _NEVER_OVERFLOWS.get(op) if ta is tb else None  # int with int, float with float: no
                out = fast(a, b) if fast is not None else self.arith(op, a, b, span)  # OverflowError to word
                if type(out) is int and out.bit_length() > Limits.int_bits:
                    raise LimitError("integer too large", span)
                return out
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            if op in ("==", "!=") and (a is None or b is None):  # an optional tensor argument: `if mask != none`
                return (a is b) == (op == "==")
            if op in ("==", "!="):  # `mask != none` above; elementwise, the ops say what they compare
                raise ArchTypeError(f"operator '{op}' compares a tensor only with none; for elementwise "
                                    f"comparison use {'eq' if op == '==' else 'ne'}(a, b)", span)
            if op not in TENSOR_OPS:
                raise ArchTypeError(f"operator '{op}' is not defined on tensors", span)
            return self.tensor_binop(TENSOR_OPS[op], a, b, span, operand_spans)
        if op == "@":
            raise ArchTypeError(f"'@' needs tensors, got {describe(a)} and {describe(b)}", span)
        if op in ("in", "not in"):
            if not isinstance(b, (list, tuple, dict, str)):
                raise ArchTypeError(f"'in' needs a list, tuple, dict or string on the right, got {describe(b)}", span)
            found = self.decided(contains, a, b, op=op, span=span)
            return found == (op == "in")
        if op in ("==", "!="):
            same = self.decided(equal, a, b, op=op, span=span)
            return same == (op == "==")
        if op in ("<", "<=", ">", ">="):
            decided = sizes_order(op, a, b)
            if decided is not None:
                return decided
            if not ((is_num(a) and is_num(b)) or (type(a) is type(b) and isinstance(a, (str, list, tuple)))):
                error = SymbolicOperand if isinstance(a, Sym) or isinstance(b, Sym) else ArchTypeError
                advice = f" when building: a symbolic size is {UNDECIDED_ADVICE}" \
                    if error is SymbolicOperand and not self.in_assert else ""
                raise error(f"cannot compare {describe(a)} {op} {describe(b)}{advice}", span)
            return self.decided(lambda x, y, meter: order(op, x, y, meter), a, b, op=op, span=span)
        if isinstance(a, Sym) or isinstance(b, Sym):
            try:
                return sym_arith(op, a, b, span)
            except SymbolicOperand as e:  # `T % 2`: fine in an assert, which waits for a run
                if self.in_assert:
                    raise
                size = a if isinstance(a, Sym) else b
                beside = "; beside a tensor a symbolic size is read at run time: apply it to the tensor first " \
                    f"(t * {size} * 0.5 rather than t * (0.5 * {size}))" if op == "*" and \
                    (isinstance(a, float) or isinstance(b, float)) else ""
                raise SymbolicOperand(f"{e.message} when building: a symbolic size is {UNDECIDED_ADVICE}{beside}",
                                      span) from None
        if op == "+" and type(a) is type(b) and isinstance(a, (str, list, tuple)):
            check_length(len(a) + len(b))
            out = a + b
            # a copy in C, ~1 ns an item: charged at 1/16 of an item walked, so `ys = ys + [h]` over a 20,000-step
            # unrolled scan (quadratic copying, 0.6 s) stays well within the step limit (it ran out at ~12,600)
            self.charge(len(out) // Limits.items_per_step, span)
        elif op == "*" and (isinstance(a, (list, tuple, str)) and is_int(b)
                            or isinstance(b, (list, tuple, str)) and is_int(a)):
            n = b if is_int(b) else a
            seq = a if is_int(b) else b
            check_length(n * len(seq))
            out = seq * n
            self.charge(len(out), span)
        elif is_num(a) and is_num(b):
            out = self.arith(op, a, b, span)
        else:
            raise ArchTypeError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}", span)
        if is_int(out) and out.bit_length() > Limits.int_bits:
            raise LimitError("integer too large", span)
        return out

    def add_all(self, items, start, span: Span):
        """python's sum(hs) (or sum(hs, start)) of a list of tensors, a block's branches: added in turn."""
        if not (isinstance(start, (Tensor, Sym, bool)) or is_num(start)):  # add() named its own parameter
            raise ArchTypeError(f"sum(): start must be a number, a size or a tensor, got {describe(start)}", span)
        if not items:
            return start
        total = items[0] if type(start) is int and start == 0 else self.binop("+", start, items[0], span)
        for a in items[1:]:
            total = self.binop("+", total, a, span)
        return total

    def arith(self, op: str, a, b, span: Span):
        """Numbers: Python's operators, with a diagnostic where Python would overflow."""
        if (op == "**" and is_int(a) and is_int(b) and b > 0 and abs(a) > 1
                and b * (abs(a).bit_length() - 1) > Limits.int_bits):  # at least that many bits: never computed
            raise LimitError(f"{a} ** {b} is too large", span)
        try:
            out = ARITH[op](a, b)
        except OverflowError:
            raise EvalError(f"{a} {op} {b} is too large for a float", span) from None
        if isinstance(out, complex):  # Python's (-8) ** 0.5
            raise EvalError(f"({a}) ** {b}: a negative number to a fractional power has no real value", span)
        return out

    def decided(self, fn, a, b, op: str, span: Span) -> bool:
        """`==`, `!=`, `in`: where a symbolic size leaves the answer open (`T == 64`), an assert waits for a
        run's sizes; anywhere else the build cannot choose, and says so rather than guess."""
        try:
            return self.compared(fn, a, b, span=span)
        except SymbolicOperand as e:
            if self.in_assert:
                raise SymbolicOperand(f"cannot decide {describe(a)} {op} {describe(b)}", span) from None
            detail = str(e).removeprefix("cannot decide ").removeprefix("cannot compare ")
            nested = isinstance(a, (list, tuple, dict)) or isinstance(b, (list, tuple, dict))  # which pair is open
            raise SymbolicOperand(f"cannot decide {short(a)} {op} {short(b)} when building: it depends on a "
                                  f"symbolic size{f' ({detail})' if nested else ''}, {UNDECIDED_ADVICE}",
                                  span) from None

    def compared(self, fn, *args, span: Span):
        """A comparison (==, <, in) of values that may nest; its walk is charged to the step budget, a step per
        item compared (each is a Python-level test, ~0.3 us: at a step per 16, `999999 in xs` over a million
        items could run 80 times, 27 s, within the budget)."""
        meter = comparing()
        out = fn(*args, meter)
        self.charge(meter.used * Limits.items_per_step, span)
        return out

    def widened(self, opname, a, b, span, operand_spans: tuple = (), label=None):
        """h * 1e-8, h / 0.1, h // 0.1 in float16 (the operators and mul(), div(), floordiv()): torch's CPU
        kernels compute in float32 with the number as a float32, not rounded to the tensor's dtype first
        (1.0 // 0.1 is 9, not 10; 1e-8 is no 0), and round the result back; 1e-8 / h is its h.reciprocal() *
        1e-8 (inf at 0, not 0 / 0), within an ulp of this where 1 / h is finite in float16 (at a subnormal h
        torch's is inf); its +, -, %, ** and 0.1 // h round the number first (measured, torch 2.13). None
        where this is not such a case."""
        tensor = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
        if tensor is None:
            return None
        dt = tensor.type.dtype
        if not (dt.is_16bit and dt.is_float and (opname in ("mul", "div") or opname == "floordiv" and a is tensor)
                and not all(_holds(v, dt) for v in (a, b))):
            return None
        for v, at in zip((a, b), operand_spans):
            if is_num(v):
                check_fits(v, DType.float32, at)
        wide = self.call_op(ops.get("cast"), [tensor], {"dtype": "float32"}, None, span)
        out = self.call_op(ops.get(opname), [wide if v is tensor else v for v in (a, b)], {}, label, span)
        return self.call_op(ops.get("cast"), [out], {"dtype": dt.label}, None, span)

    def widened_call(self, op, args: list, kwargs: dict, label, span):
        """widened() for the function forms mul(h, 0.1), div(h, b=0.1), floordiv(h, 0.1): None where not one."""
        rest = op.inputs[len(args):]
        if op.name not in ("mul", "div", "floordiv") or not set(kwargs) <= set(rest):
            return None
        pair = [*args, *(kwargs[k] for k in rest if k in kwargs)]
        return self.widened(op.name, *pair, span, label=label) if len(pair) == 2 else None

    def tensor_binop(self, opname, a, b, span, operand_spans: tuple = ()):
        if (out := self.widened(opname, a, b, span, operand_spans)) is not None:
            return out
        tensor = a if isinstance(a, Tensor) else b
        dt = tensor.type.dtype
        for v, at in zip((a, b), operand_spans):  # a number that overflows the dtype: point at the number
            if is_num(v) and not (isinstance(v, float) and not dt.is_float):  # a float beside an integer
                check_fits(v, dt, at)  # tensor is the call's to say (as_tensor), whatever its size
        # an integer tensor // 0: torch raises, onnxruntime refuses to load the model (call_op catches the
        # function forms and constant tensors; here the caret can point at the 0)
        if opname in ("floordiv", "remainder") and b is not tensor and is_num(b) and b == 0 \
                and not isinstance(b, float) and not tensor.type.dtype.is_float:
            raise EvalError("integer division by zero", operand_spans[1] if len(operand_spans) > 1 else span)
        if dt is DType.bool and opname in _ARITHMETIC and not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            # `b * 2` said mul(), `b * 1` and `b * b` '*' (the op's own check, which notes where b comes from)
            raise ArchTypeError(f"'{_ARITHMETIC[opname]}': no arithmetic on bool tensors; cast(x, \"float32\") first",
                                span)
        op = ops.get(opname)
        return self.call_op(op, [a, b], {}, None, span)

    def clamped(self, args: list, kwargs: dict, label, span):
        """clamp(x, min, max) with a bound known at run time only (a tensor, or a symbolic size) as maximum and
        minimum (ONNX Clip takes its bounds as inputs, but the op's are attributes); None where every bound is
        a number (the op itself). At x equal to a tensor bound the gradient is shared, where torch's clamp gives
        it all to x; a number beside it stays the op's attribute, whose bound passes all of it (as a number to
        minimum, its half went to the constant: lost, review94a hunt), and a symbolic size, which takes no
        gradient, is a where (maximum lost half at a tie there too: review97)."""
        names = ("x", "min", "max")
        if len(args) > 3 or set(kwargs) - set(names) or any(n in kwargs for n in names[:len(args)]):
            return None  # the op's own binding says what is wrong
        got = {**dict(zip(names, args)), **kwargs}
        if not isinstance(got.get("x"), Tensor) or not any(isinstance(got.get(n), (Tensor, Sym)) for n in names[1:]):
            return None
        y = got["x"]
        for bound, op in (("min", "maximum"), ("max", "minimum")):
            if got.get(bound) is not None:
                last = bound == "max" or got.get("max") is None
                run_time = isinstance(got[bound], (Tensor, Sym))
                try:
                    if isinstance(got[bound], Sym):  # a size has no gradient: where x is past it, else x (all
                        b = self.dim_tensor(got[bound], y.type.dtype, "clamp", span)  # of it at a tie, as torch)
                        past = self.call_op(ops.get("lt" if bound == "min" else "gt"), [y, b], {}, None, span)
                        y = self.call_op(ops.get("where"), [past, b, y], {}, label if last else None, span)
                        continue
                    y = self.call_op(ops.get(op if run_time else "clamp"), [y, got[bound]] if run_time else [y],
                                     {} if run_time else {bound: got[bound]}, label if last else None, span)
                except ArchError as err:  # said as the clamp the spec wrote, not the op it became (review58)
                    err.message = re.sub(rf"\b{op}(\(\))?", "clamp", err.message)
                    err.args = (err.message,)
                    raise
        return y

    def _integer_power(self, x, k: int, span):
        """x ** k of an integer tensor by squaring, wrapping on overflow as torch's (onnxruntime's integer Pow
        goes through double: 3 ** 39 came back rounded, and overflow saturated)."""
        mul = ops.get("mul")
        out = None
        while k:
            if k & 1:
                out = x if out is None else self.call_op(mul, [out, x], {}, None, span)
            k >>= 1
            if k:
                x = self.call_op(mul, [x, x], {}, None, span)
        return out

    # ---------------- attributes and indexing ----------------
    def attr(self, v, name: str, span: Span):
        if isinstance(v, Tensor):
            if name in ("shape", "rank", "dtype"):
                v.value.shape_read = True
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
            raise ArchTypeError(f"a tensor has no attribute '{name}' (it has shape, T, rank, dtype)"
                                + _method_hint(name), span)
        if isinstance(v, Namespace):
            try:
                return v.env.vars[name]
            except KeyError:
                if name in v.models:
                    raise UnknownNameError(model_called(f"{v.name}.{name}", name), span) from None
                raise v.env.missing(name, span, prefix=f"{v.name}.") from None
        if isinstance(v, dict):
            if name in v:
                return v[name]
            raise EvalError(f"no key '{name}' in the dict{did_you_mean(name, [k for k in v if isinstance(k, str)])}",
                            span)
        tuple_item = ("; a tuple's items are indexed: torch's topk/sort (values, indices) here is v, i = topk(x, k) "
                      "or topk(x, k)[1]") if isinstance(v, tuple) and name in ("values", "indices") else \
            ('; Flax\'s embed.attend(h) is h @ ref("NAME.weight").T, the table as the output layer'  # review122
             if name == "attend" else "")
        raise ArchTypeError(f"{describe(v)} has no attribute '{name}'{tuple_item}", span)

    def subscript(self, v, index, env, span, target=None):
        """`target`: the expression indexed, to name in advice (b[:, none] is unsqueeze(b, 1))."""
        if isinstance(v, Tensor):
            return self.tensor_index(v, index, env, span, target.id if isinstance(target, A.Name) else "t")
        if len(index) != 1:
            raise ArchTypeError(f"{describe(v)} takes one index", span)
        ix = index[0]
        if isinstance(ix, A.Slice):
            if not isinstance(v, (list, tuple, str)):
                raise ArchTypeError(f"cannot slice {describe(v)}", span)
            parts = [None if p is None else self.eval(p, env) for p in (ix.lo, ix.hi, ix.step)]
            if any(p is not None and not is_int(p) for p in parts) or parts[2] == 0:
                raise ArchTypeError("slice bounds must be integers (and the step non-zero)", span)
            return v[slice(*parts)]
        k = self.eval(ix, env)
        if isinstance(v, dict):
            if not self.decided(contains, k, v, op="in", span=span):
                keys = ", ".join(map(short, list(v)[:20])) + (", ..." if len(v) > 20 else "")
                hint = ""
                if isinstance(ix, A.Name) and ix.id in v and not isinstance(k, str):  # d[max]: a builtin's name
                    hint = f'; {ix.id} here is {describe(k)}: the string key is written ["{ix.id}"]'
                raise EvalError(f"key {short(k)} is not in the dict (keys: {keys}){hint}", span)
            return v[k]
        if isinstance(v, (list, tuple, str)):
            if not is_int(k):
                raise ArchTypeError(f"index must be an integer, got {describe(k)}", span)
            if not -len(v) <= k < len(v):
                raise EvalError(f"index {k} is out of range for {describe(v)}", span)
            return v[k]
        raise ArchTypeError(f"cannot index {describe(v)}", span)

    def tensor_index(self, v, index, env, span, called: str = "t"):
        """`x[:, 0]`, `x[..., :d]`: integer and slice bounds known at compile time. `called`: the name advice
        gives the tensor (t for an expression: (b * 2)[:, none])."""
        entries = []
        for i, ix in enumerate(index):
            if isinstance(ix, A.Slice):
                parts = [None if p is None else self.eval(p, env) for p in (ix.lo, ix.hi, ix.step)]
                if any(p is not None and not is_int(p) for p in parts):
                    sym = next((p for p in parts if isinstance(p, Sym)), None)
                    hint = (f", got the symbolic size {sym}; a bound a fixed number from the end is known (x[:, -2:] "
                            "keeps the last 2 positions, x[:, :-2] drops them, whatever the size)" if sym is not None
                            else "")
                    dots = any(isinstance(p, A.Const) and p.value is Ellipsis for p in index[:i])
                    ax = v.type.rank - (len(index) - i) if dots and isinstance(v, Tensor) else i  # after a '...'
                    if sym is not None and parts[0] in (None, 0) and parts[1] is sym and parts[2] in (None, 1):
                        hint += (f"; the first {sym} positions of dim {ax} (a crop to the length of a decoder's map, "
                                 f"Demucs' skip[..., :d.shape[-1]]) are take(t, positions(r, dim={ax}), axis={ax}), "
                                 f"t the tensor sliced here and r one that is {sym} long on dim {ax}")
                    elif isinstance(parts[1], Sym) and parts[0] not in (None, 0) and parts[2] in (None, 1):
                        start = dim_str(parts[0]) if isinstance(parts[0], Sym) else str(parts[0])  # a centre crop
                        hint += (f"; positions {start} to {parts[1]} of dim {ax} (the original U-Net's centre crop "
                                 f"of its skip) are take(t, positions(r, dim={ax}) + {start}, axis={ax}), t the "
                                 f"tensor sliced here and r one that is as long on dim {ax} as the part kept")
                    elif isinstance(parts[0], Sym) and parts[1] is None and parts[2] in (None, 1):  # x[:, M:]
                        offset = dim_str(parts[0])
                        if offset.lstrip("(").startswith("-"):  # x[:, -T:]: from the dim's size less T
                            offset = (dim_str(dim_add(v.type.shape[ax], parts[0]))
                                      if isinstance(v, Tensor) and 0 <= ax < v.type.rank else f"n - {offset}")
                        hint += (f"; the positions of dim {ax} from {offset} on (Transformer-XL's q[:, M:] after "
                                 f"its memory) are take(t, positions(r, dim={ax}) + {offset}, axis={ax}), t the "
                                 f"tensor sliced here and r one that is as long on dim {ax} as the part kept")
                    raise ArchTypeError(f"tensor slice bounds must be integers known at compile time{hint}", ix.span)
                entries.append(("s", *parts))
            elif isinstance(ix, A.Const) and ix.value is Ellipsis:
                entries.append(("e",))
            else:
                k = self.eval(ix, env)
                if not is_int(k):
                    hint = ""
                    if isinstance(k, Tensor) and k.type.dtype is DType.bool:  # torch's x[mask]
                        hint = ("; a bool mask selects as many elements as it has true, which no static graph can "
                                "shape: where(mask, x, 0.0) keeps x's shape, zeros where the mask is false")
                    elif k is None:  # torch's x[:, None]: the axis it makes, where no ... or integer comes first
                        kinds = [e[0] for e in entries]
                        last = i == len(index) - 1 and "i" not in kinds  # x[..., None]: the last axis
                        hint = (f"; a new dim of size 1 is unsqueeze({called}, -1)" if last and "e" in kinds else
                                f"; a new dim of size 1 is unsqueeze({called}, axis)"
                                if "e" in kinds or "i" in kinds or i > v.type.rank
                                else f"; a new dim of size 1 is unsqueeze({called}, {i})")
                        hint += ", t the tensor indexed" if called == "t" else ""
                    elif isinstance(k, Tensor):  # torch's x[idx] with an index tensor
                        hint = (f"; to pick by a tensor of indices: take(x, index, axis={_indexed_axis(index, i, v)}) "
                                "(torch's x[index], index_select), gather(x, dim, index) (torch.gather)")
                    elif isinstance(k, (list, tuple)) and k and all(isinstance(b, bool) for b in k):  # a mask
                        hint = (f"; a list of bools picks where it is true (torch's mask): take(x, tensor("
                                f"{[j for j, b in enumerate(k) if b]}), axis={_indexed_axis(index, i, v)})")
                    elif isinstance(k, (list, tuple)):  # torch's x[:, [0, 2]], DLRM's z[:, li, lj]
                        hint = (f"; to pick by a list of indices: take(x, tensor([...]), axis="
                                f"{_indexed_axis(index, i, v)}) (torch's x[:, [0, 2]]); two lists indexing two "
                                "dims at once pick pairs, which are one index into those dims flattened: "
                                "take(flatten(z, 1), tensor([i * n + j ...]), axis=1) for torch's z[:, li, lj] of "
                                "a [B, n, n] z")
                    raise ArchTypeError(f"a tensor index must be an integer or a slice, got {describe(k)}{hint}",
                                        ix.span)
                entries.append(("i", k))
        return self.call_op("getitem", [v], {"index": tuple(entries)}, None, span)

    # ---------------- free parameters ----------------


# methods whose function form says otherwise, or has no entry (a method's function in values' table is found
# there: x.view, x.clone, x.type_as)
_TORCH_METHODS = {"float": 'cast(x, "float32")', "t": "x.T", "dim": "x.rank", "ndim": "x.rank",
                  "max": "amax(x, ...)", "min": "amin(x, ...)",
                  "to": 'nothing for a device (drop it), cast(x, "float32") or the dtype wanted for a dtype',
                  "int": 'cast(x, "int32")', "double": 'cast(x, "float64")', "half": 'cast(x, "float16")',
                  "bfloat16": 'cast(x, "bfloat16")', "bool": 'cast(x, "bool")', "mT": "x.T (the last two dims swapped)",
                  "unfold": "unsqueeze(x, 2) -> unfold([1, size], stride=[1, step]) for torch's x.unfold(-1, size, "
                            "step) of [N, C, L]: [N, C*size, windows] (the op unfold is F.unfold, im2col; torch's "
                            "[N, C, windows, size] is permute(reshape(y, [N, C, size, -1]), [0, 1, 3, 2]))",
                  **{n: "nothing: drop it (a spec has no device)" for n in ("cpu", "cuda")},
                  "item": "the 0-d tensor itself (sizes are numbers already: x.shape[0])"}


def _indexed_axis(index, i: int, v) -> int:
    """The axis of v that index entry i stands for: the entries before it each take one, or after an
    ellipsis, the entries from it to the end take the last ones."""
    if any(isinstance(ix, A.Const) and ix.value is Ellipsis for ix in index[:i]):
        return v.type.rank - (len(index) - i)
    return i


def _method_hint(name: str) -> str:
    """torch's tensor methods (`x.mean(1)`, `x.view(...)`) are functions of the language: say which; an in-place
    one (`x.masked_fill_(...)`) is the function of its name without the underscore."""
    if name in _TORCH_METHODS:
        return f"; write {_TORCH_METHODS[name]}"
    if (said := torch_function_hint(name)) is not None:  # x.clone(), x.diff(), x.bmm(y): the function's hint
        return f"; write {said}"
    if name.endswith("_") and not name.endswith("__") and (name[:-1] in _TORCH_METHODS or
                                                           ops.lookup(name[:-1]) is not None):
        return f"; values never change in place: {name[:-1]}(x, ...) gives a new one" + (
            f" ({_TORCH_METHODS[name[:-1]]})" if name[:-1] in _TORCH_METHODS else "")
    op = ops.lookup(name)
    if op is not None and op.category != "internal" and not op.written:
        return f"; ops are functions: {op.name}(x, ...) or x -> {op.name}(...)"
    return ""

