"""Compile-time evaluation of statements and expressions; tensor operations become IR nodes.

Nothing here uses Python's eval: each AST node has one case below. Calls (ops, parameters) are in calls.py,
blocks and layer() in blocks.py, operators/subscripts in operators.py, mixed into the one Evaluator."""

from __future__ import annotations

from .. import ops
from ..diagnostics import (
    ArchError,
    ArchTypeError,
    EvalError,
    LimitError,
    Span,
    UnknownNameError,
)
from ..ir import Graph
from ..syntax import ast as A
from ..types import DType, Sym, dim_mul, dim_symbols, is_symbol
from .arguments import arg_names, own_name, positional_names
from .blocks import Blocks
from .bounded import check_length, printing, short, to_str
from .builtins import BUILTINS, UNROLLED
from .calls import LAYER_CALL, Calls
from .operators import Operators
from .run_time_sizes import RunTimeSizes
from .scalars import UNDECIDED_ADVICE, Limits, ReturnValue, SymbolicOperand, is_callable, is_num, py_error
from .values import BlockLayer, Builtin, Env, LayerFn, OpFn, Tensor, describe, model_called, module_hint, module_path

__all__ = ["Evaluator", "Limits"]


def _bad_label(v: str) -> bool:
    """Parameter names are the label's dot-separated parts: none may be empty (`a.`, `.a`, `a..b` would give
    `a..weight`), and nothing a file name or a terminal would misread; `#` marks a block's nodes when it is
    called again (shared.attn#2)."""
    return (any(c in v for c in " /\\:#") or any(not c.isprintable() for c in v)
            or any(not part for part in v.split(".")))


_MISSING = object()


LOOP_NOTES = 4  # the innermost loop passes an error names (as blocks.CALL_NOTES)


def _note_pass(err: ArchError, which: str, span: Span, shown: list) -> None:
    """An error inside a loop says which pass (the 5th maxpool of a repeat said nothing); a loop that a
    recursion re-enters is said once, and only the innermost few loops are."""
    if any(at == span for _, at in err.notes):
        return
    said = getattr(err, "loop_passes", 0)
    err.loop_passes = said + 1
    if said < LOOP_NOTES:
        err.notes.append((f"in {which}" + "".join(f", {n} = {short(v, 40)}" for n, v in shown), span))
    elif said == LOOP_NOTES:
        err.notes.append(("(and in further loops)", None))


def _names(targets: tuple) -> list[str]:
    """A loop's names, its nested ones included (for i, (c, s) in ...: i, c, s)."""
    return [n for t in targets for n in (_names(t) if isinstance(t, tuple) else (t,))]


def _state_hint(value, targets: tuple) -> str:
    """torch's `out, (h, c) = lstm(x)`, or a gru's two names for an lstm's three: here return_state gives
    output, h_n (and an lstm's c_n) side by side."""
    node = value[0].value.producer if value and all(isinstance(t, Tensor) for t in value) else None
    if node is None or (node.op, len(value)) not in (("lstm", 3), ("gru", 2)):
        return ""
    if node.op == "gru":
        return "; gru with return_state=true gives output and h_n: out, h = ... (an lstm also gives c_n)"
    nested = " (torch's out, (h, c))" if any(isinstance(t, tuple) for t in targets) else ""
    return f"; lstm with return_state=true gives output, h_n, c_n side by side: out, h, c = ...{nested}"


def _split_hint(value, k: int) -> str:
    """`a, b = split(x, 2, axis=1)` on 58 channels made 29 pieces: split takes the size of a piece, as torch.split
    does (not a count, as numpy.split and torch.chunk do); say how to get k pieces."""
    node = value[0].value.producer if value and all(isinstance(t, Tensor) for t in value) else None
    if node is None or node.op != "split" or len(node.attrs["sizes"]) != 1 or \
            [t.value for t in value] != list(node.outputs):
        return ""
    size, axis = node.attrs["sizes"][0], node.attrs["axis"]
    shape = node.inputs[0].type.shape
    dim = shape[axis % len(shape)]
    said = f"; split(x, {size}, axis={axis}) cuts pieces of {size} each (split takes piece sizes, as torch.split)"
    pieces = f"{k} piece{'s' if k != 1 else ''}"
    if dim % k == 0:  # split refuses a symbolic dim: `dim` is a number
        return (f"{said}, not {size} pieces: for {pieces} write chunk(x, {k}, axis={axis}) (torch.chunk) or "
                f"split(x, {dim // k}, axis={axis})")
    q, r = divmod(dim, k)
    sizes = [q + 1] * r + [q] * (k - r)
    return f"{said}: for {pieces} of {dim} give a list of sizes, as split(x, {sizes}, axis={axis})"


def _dashed_name(e) -> str | None:
    """`linear(3) as fc-1`: the name a bare layer label and the dash touching both sides spell (not `fc - y`;
    not `fc-0x1f` either, whose digits the value does not spell)."""
    label, right = getattr(e.left, "label", None), e.right  # `as fc` holds the name as a string
    if e.op == "-" and isinstance(label, A.Const) and isinstance(label.value, str) and (
            isinstance(right, A.Name) or (isinstance(right, A.Const) and type(right.value) is int and
                                          right.span.end_col - right.span.col == len(str(right.value)))) and \
            label.span.end_col - label.span.col == len(label.value) and label.span.end_line == right.span.line \
            and right.span.col == label.span.end_col + 1:
        return f"{label.value}-{right.id if isinstance(right, A.Name) else right.value}"
    return None


def _binds_tighter(e) -> tuple:
    """The note for an operator on the right of '->' (`x -> layernorm + x`): it takes the whole expression."""
    name = _dashed_name(e)
    if name is not None:
        return (f"'{name}' is read as a subtraction: a layer name with '-' in it is a string, as \"{name}\"",
                e.span)
    return (f"'{e.op}' binds tighter than '->': the right side of '->' here is the whole '{e.op}' expression, "
            f"whose calls get no piped tensor; to apply the chain first, write (x -> ...) {e.op} ...", e.span)


class Evaluator(Calls, RunTimeSizes, Blocks, Operators):
    """Evaluates one model's body into `graph`, tracking the layer-name scope."""

    def __init__(self, graph: Graph | None):
        self.graph = graph
        self.scope: list[str] = []
        self.counters: dict[tuple, int] = {}
        self.owners: set[str] = set()  # names whose own parameters exist (`fc` of fc.weight), for automatic names
        self.automatic: set[str] = set()  # those that were automatic
        self.calls: list[tuple[str, Span]] = []  # the block calls being evaluated, outermost first
        self.param_calls: dict[str, tuple] = {}  # a parameter made inside blocks -> those calls, for messages
        self.layers: dict[str, LayerFn] = {}  # op layers with parameters, by full name, for layer("fc")
        self.block_layers: dict[str, BlockLayer] = {}  # labelled block calls, by full name, for layer("enc")
        self.name_logs: list[list[str]] = []  # the automatic names chosen inside each labelled block call running
        self.replay: list[str] | None = None  # in a block called again by layer(): its first call's names, to come
        self.sharing: str | None = None  # that block's name: parameters are found, not made
        self.last_none: str | None = None  # the latest block that ended without a return (a none's likely origin)
        self.dim_index: dict = {}  # symbolic size -> (value, axis): the latest node output that has it, else an input
        self.dim_scanned = -1  # graph.nodes indexed into dim_index so far (-1: not even the inputs)
        self.memo: dict[tuple, object] = {}  # block calls on plain values that made nothing: their results
        self.layer_calls: dict[str, int] = {}  # the number a name's last call again took (proj#3): Calls.again
        self.calling_again = False  # in a block called again by layer(): its nodes are named apart (attn#2)
        self.streams: set[str] = set()  # names of the nodes that draw random numbers (calls.stream_name)
        self.stream_last: dict[str, int] = {}  # and the number each label last took (drop#7)
        self.free_params: set[str] = set()  # made by parameter(): a buffer among them is never updated
        self.steps = 0
        self.depth = 0
        self.model_env: Env | None = None  # the model body's scope, whose assignments are recorded:
        self.assigned_at: dict[str, Span] = {}  # name -> the assignment that ran last there (output messages)
        self.dims: dict[str, object] = {}  # symbolic dims of the model's inputs, by name (a shadowing warning)
        self.models: set[str] = set()  # the file's and its imports' models: one called from another is said so
        self.in_assert = False  # evaluating an assert's condition: what a symbolic size leaves open defers it
        self.symbolic_answers: list[bool] = []  # is_symbolic's outside asserts, in order (Graph.symbolic_answers)
        self.symbolic_replay: list[bool] | None = None  # the build's, which a run's sizes answer again

    # ---------------- names ----------------
    def layer_name(self, label, base: str) -> str:
        """`as` names are taken as written; an unnamed layer gets `<op>_<k>`, skipping a name that already has
        parameters of its own (`linear(8) as linear_1` before two unnamed linears made the second one clash
        with it). A block's scope `as linear_0` is skipped only when the block made linear_0.<p> itself: nested
        names (linear_0.fc.weight) cannot clash, and programs that compiled keep their names."""
        if label is None and self.replay is not None:  # a block called again: the names its first call chose
            if not self.replay or self.replay[0].rpartition(".")[2].rpartition("_")[0] != base:
                raise ArchTypeError(f'layer("{self.sharing}"): this call of the block makes an unnamed {base} where '
                                    "its first call did not (it ran differently: name its layers with `as`)")
            return self.replay.pop(0)
        if label is None:
            key = (tuple(self.scope), base)
            k = self.counters.get(key, 0)
            while (taken := ".".join(self.scope + [f"{base}_{k}"])) in self.owners or taken in self.graph.params:
                k += 1
            self.counters[key] = k + 1
            self.automatic.add(taken)
            for log in self.name_logs:
                log.append(taken)
            return taken
        return ".".join(self.scope + [str(label)])

    # ---------------- statements ----------------
    def exec_body(self, body, env: Env):
        for stmt in body:
            self.exec_stmt(stmt, env)

    def _tick(self, span: Span, steps: int = 1):
        self.steps += steps
        if self.steps > Limits.steps:
            raise LimitError(f"evaluation took more than {Limits.steps} steps", span)

    def charge(self, items: int, span: Span):
        """Building or walking a big value costs steps in proportion: a loop of big copies stays bounded."""
        self._tick(span, items // Limits.items_per_step)

    def exec_stmt(self, s, env: Env):
        self._tick(s.span)
        if isinstance(s, A.Assign):
            value = self.eval(s.value, env)
            self.bind(s.targets, value, env, s.span)
            if env is self.model_env:
                names = _names(s.targets)
                self.assigned_at.update(dict.fromkeys(names, s.span))
                self._shadowing(names, env, s.span)
        elif isinstance(s, A.Let):
            env.vars[s.name] = self.eval(s.value, env)
        elif isinstance(s, A.For):
            items = self.iterable(self.eval(s.iter, env), s.iter.span)
            names = _names(s.targets)
            for k, item in enumerate(items):
                self._tick(s.span)  # nested loops over long lists with nothing inside counted no steps
                values = None
                try:
                    self.bind(s.targets, item, env, s.span)
                    if env is self.model_env:
                        self._shadowing(names, env, s.span, loop=True)
                    values = [env.vars[n] for n in names]  # as the pass began: the body may assign them
                    self.exec_body(s.body, env)
                except ArchError as err:  # which pass: said (and formatted) only on an error, loops are hot
                    if not (self.in_assert and isinstance(err, SymbolicOperand)):  # (one an assert defers: none)
                        shown = list(zip(names, values)) if values is not None else [("item", item)]
                        _note_pass(err, f"pass {k + 1} of {len(items)} of this loop", s.span, shown)
                    raise
        elif isinstance(s, A.If):
            for cond, body in s.branches:
                if self.truth(self.eval(cond, env), cond.span, "if"):
                    self.exec_body(body, env)
                    break
            else:
                self.exec_body(s.orelse, env)
        elif isinstance(s, A.Repeat):
            n = self.eval(s.count, env)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                said = ""
                if isinstance(n, Sym):  # repeat T over an input's T: as range(T) says it
                    said = (f": {UNROLLED} (a fixed size in the input's shape, or `param {n} = none` in the file "
                            f"and -D {n}=5)" if is_symbol(n) else f": {UNROLLED}")
                elif n is None:  # `param n = none` left unset
                    said = f" (a param left at none, as `param NAME = none`?): {UNROLLED} (-D NAME=5 sets such a param)"
                raise ArchTypeError(f"repeat count must be a non-negative integer, got {describe(n)}{said}",
                                    s.count.span)
            if n > Limits.steps - self.steps:  # each pass takes a step: said at once, where a body of layers took
                # 30-45 s to reach the node limit (review110 hunt)
                raise LimitError(f"repeat {short(n)}: more passes than the {Limits.steps - self.steps} evaluation "
                                 f"steps left of the {Limits.steps} a file may take", s.count.span)
            for i in range(n):
                self._tick(s.span)  # an empty body too: `repeat 2 ** 62 { }` ran for ever
                try:
                    if s.var:
                        env.vars[s.var] = i
                        if env is self.model_env:  # `repeat 2 as T` over an input's T, as `for T in ...`
                            self._shadowing([s.var], env, s.span, loop=True)
                    self.exec_body(s.body, env)
                except ArchError as err:
                    if not (self.in_assert and isinstance(err, SymbolicOperand)):
                        _note_pass(err, f"pass {i + 1} of {n} of this repeat", s.span, [(s.var, i)] if s.var else [])
                    raise
        elif isinstance(s, A.Return):
            vals = [self.eval(v, env) for v in s.values]
            raise ReturnValue(vals[0] if len(vals) == 1 else tuple(vals), s.span)
        elif isinstance(s, A.Assert):
            was, self.in_assert = self.in_assert, True
            try:
                cond = self.eval(s.cond, env)
                holds = self.truth(cond, s.cond.span)
            except SymbolicOperand:  # `assert T % 2 == 0` over a symbolic T: checked where a run fixes T
                return
            finally:
                self.in_assert = was
            if not holds:
                msg = self.eval(s.message, env) if s.message is not None else "assertion failed"
                err = EvalError(msg if isinstance(msg, str) else short(msg, 200), s.span)
                err.assertion = True  # a check the spec makes (cli.run.check_spec_at tells it from the others)
                raise err
        else:  # pragma: no cover - the parser produces no other statements
            raise EvalError(f"unsupported statement {type(s).__name__}", s.span)

    def _shadowing(self, targets, env: Env, span: Span, loop: bool = False) -> None:
        """A model-body name that was a symbolic dim of the inputs and now holds something else: the shapes
        written with it below mean the new value (`T = 5`, a Mamba `B = x -> linear(n)`, a loop's variable).
        A size made from the dim itself is meant (torch's `B, C, H, W = shape(h)` after a strided conv: H//4):
        not said."""
        for name in targets:
            dim, now = self.dims.get(name), env.vars.get(name)
            if dim is not None and now != dim and self.graph is not None \
                    and not (isinstance(now, Sym) and dim_symbols(now) == [name]):
                del self.dims[name]  # said once
                now = describe(now)
                self.graph.warnings.append((
                    f"'{name}' was the symbolic dim {name} of the model's inputs; from here on it names "
                    f"{f'the loop variable ({now} first)' if loop else now}, and a shape written with {name} below "
                    f"uses that (another name keeps the dim)", span))

    def bind(self, targets, value, env: Env, span: Span):
        """`targets` as written: one name takes the value; several names, or one bracketed group, unpack it."""
        if len(targets) == 1 and isinstance(targets[0], str):
            self._name(targets[0], value, env)
        else:
            self._unpack(targets[0] if len(targets) == 1 else targets, value, env, span)

    def _name(self, name: str, value, env: Env) -> None:
        """A tensor's first name is what a warning calls its node when nothing reads it (`loss = mean(d)`,
        `v, i = topk(x, 2)`: loss and v, not mean_0 and topk_0)."""
        env.vars[name] = value
        if isinstance(value, Tensor):
            self.graph.assigned.setdefault(id(value.value), (value.value, name))

    def _unpack(self, targets: tuple, value, env: Env, span: Span):
        if not isinstance(value, (list, tuple)) or len(value) != len(targets):
            if isinstance(value, (list, tuple)):
                kind = "list" if isinstance(value, list) else "tuple"
                what = f"a {kind} of {len(value)} value{'s' if len(value) != 1 else ''}"
                hint = _split_hint(value, len(targets)) or _state_hint(value, targets)
            else:
                what = f"{describe(value)}, one value,"
                hint = ("; an op gives one tensor unless it returns several (split, chunk, unbind, topk; lstm "
                        "with return_state=true gives output, h_n, c_n and gru output, h_n)") \
                    if isinstance(value, Tensor) else ""
            names = f"{len(targets)} name{'s' if len(targets) != 1 else ''}"
            raise ArchTypeError(f"cannot unpack {what} into {names}{hint}", span)
        for t, v in zip(targets, value):
            if isinstance(t, tuple):  # for i, (c, s) in enumerate(cfg)
                self._unpack(t, v, env, span)
            else:
                self._name(t, v, env)

    def iterable(self, v, span):
        if isinstance(v, dict):
            return list(v.keys())
        if isinstance(v, (list, tuple)):
            return list(v)
        if isinstance(v, str):
            return list(v)
        raise ArchTypeError(f"cannot loop over {describe(v)}", span)

    def truth(self, v, span, word: str | None = None):
        """`word`: what asks (`if`, `and`, `or`, `not`), whose elementwise form on tensors the message names."""
        if isinstance(v, Tensor):
            hint = {"not": "; elementwise on a tensor, `not` is logical_not(x)",
                    "and": "; elementwise on tensors, `and` is logical_and(a, b)",
                    "or": "; elementwise on tensors, `or` is logical_or(a, b)",
                    "if": "; an elementwise choice between two tensors is where(cond, a, b)"}.get(word, "")
            raise ArchTypeError("a condition must be a compile-time value, not a tensor" + hint, span)
        if isinstance(v, Sym):  # `if T - 1`: false at T=1, which the build cannot know
            raise SymbolicOperand(f"cannot decide whether {v} is zero when building: it is a symbolic size, "
                                  f"{UNDECIDED_ADVICE}", span)
        return bool(v)

    # ---------------- expressions ----------------
    def eval(self, e, env: Env):
        t = type(e)
        if t is A.Const:  # the leaves, without the handlers below (they raise nothing to convert)
            return e.value
        if t is A.Name:
            return self.lookup(e.id, env, e.span)
        try:
            return self._eval(e, env)
        except ArchError as err:
            raise err.with_span(e.span)
        except ReturnValue:
            raise
        except RecursionError:
            raise LimitError("expression nested too deeply", e.span) from None
        except (ZeroDivisionError, OverflowError, ValueError, TypeError, KeyError, IndexError, MemoryError) as err:
            raise EvalError(py_error(err), e.span) from None

    def _eval(self, e, env: Env):
        t = type(e)  # the commonest nodes first, by identity (an isinstance chain was a third of a big loop's time)
        if t is A.BinOp:
            if type(e.left) is A.Labelled and self.graph is not None and (name := _dashed_name(e)):
                self.graph.warnings.append((f"'as {name}' names the layer '{e.left.label.value}' and subtracts "
                                            f"{name.partition('-')[2]} from it: a layer name with '-' in it is a "
                                            f"string, as \"{name}\"", e.span))
            return self.binop(e.op, self.eval(e.left, env), self.eval(e.right, env), e.span,
                              (e.left.span, e.right.span))
        if t is A.Call:
            return self._call_expr(e, env, piped=(), label=None, span=e.span)
        if t is A.IfExp:
            chosen = e.then if self.truth(self.eval(e.cond, env), e.cond.span, "if") else e.orelse
            out = self.eval(chosen, env)
            if chosen is e.orelse and isinstance(e.then, A.Pipe) and is_callable(out):  # `x -> f if c else g`
                raise ArchTypeError("`x -> f if c else g` reads as `(x -> f) if c else g`, and g was chosen, a "
                                    "function where the other side is a tensor; write `x -> (f if c else g)`", e.span)
            return out
        if isinstance(e, A.Interp):
            return self._interp(e, env)
        if isinstance(e, A.ListLit):
            return [self.eval(x, env) for x in e.items]
        if isinstance(e, A.TupleLit):
            return tuple(self.eval(x, env) for x in e.items)
        if isinstance(e, A.DictLit):
            return {k: self.eval(v, env) for k, v in e.entries}
        if isinstance(e, A.ListComp):
            return self._listcomp(e, env)
        if isinstance(e, A.UnaryOp):
            v = self.eval(e.operand, env)
            if e.op == "not":
                return not self.truth(v, e.operand.span, "not")
            if isinstance(v, Tensor):
                if e.op == "-" and v.type.dtype is DType.bool:  # said `neg:`, where `b * 2` says '*'
                    raise ArchTypeError("unary '-': no arithmetic on bool tensors; logical_not(b) flips them, "
                                        "cast(b, \"float32\") makes numbers of them", e.span)
                return v if e.op == "+" else self.call_op("neg", [v], {}, None, e.span)
            if isinstance(v, Sym) and e.op == "-":
                return dim_mul(v, -1)
            if not is_num(v):
                raise ArchTypeError(f"unary '{e.op}' needs a number, got {describe(v)}", e.span)
            return -v if e.op == "-" else v
        if isinstance(e, A.BoolOp):
            try:
                left = self.eval(e.left, env)
                lt = self.truth(left, e.left.span, e.op)  # `T - 1 and ...`: the size's truth is open too
            except SymbolicOperand:  # in an assert: the other side may still decide it (`T % 2 == 0 and C == 5`)
                if not self.in_assert:
                    raise
                right = self.eval(e.right, env)
                if self.truth(right, e.right.span, e.op) == (e.op == "or"):
                    return right
                raise
            if e.op == "and":
                return self.eval(e.right, env) if lt else left
            return left if lt else self.eval(e.right, env)
        if isinstance(e, A.Compare):
            left, open_link = self.eval(e.operands[0], env), None
            for op, a, b in zip(e.ops, e.operands, e.operands[1:]):
                right = self.eval(b, env)
                try:
                    out = self.binop(op, left, right, e.span, (a.span, b.span))
                    if isinstance(out, Tensor):  # an elementwise comparison has no truth when building
                        raise ArchTypeError("a chained comparison is `(a < b) and (b < c)`, which tensors cannot "
                                            "be when building; for elementwise masks write logical_and(a < b, "
                                            "b < c)", e.span)
                    if not self.truth(out, e.span, op):  # Python's `and`: the first false comparison is the value
                        return out
                except SymbolicOperand as err:  # in an assert a later link may decide it (B < 8 < 4), as `and`
                    if not self.in_assert:
                        raise
                    open_link = open_link or err
                left = right
            if open_link is not None:
                raise open_link
            return out
        if isinstance(e, A.Pipe):
            return self._pipe(e, env)
        if isinstance(e, A.Labelled):
            return self._call_expr(e.expr, env, piped=(), label=self._label(e.label, env), span=e.span)
        if isinstance(e, A.Attr):
            module = module_path(e.value)  # jnp.mean(x) said "unknown name 'jnp'", jax.nn.gelu "did you mean 'max'?"
            if module and not env.has(module.split(".")[0]):
                raise self._module_name(module, e, env)
            return self.attr(self.eval(e.value, env), e.name, e.span)
        if isinstance(e, A.Subscript):
            return self.subscript(self.eval(e.value, env), e.index, env, e.span, e.value)
        raise EvalError(f"cannot evaluate {type(e).__name__} here", e.span)

    def _module_name(self, module: str, e, env: Env) -> UnknownNameError:
        """jnp.mean: archdsl's names have no module; the name after it is said as an unknown bare name would be
        (nn.Dense: Dense's own hint, np.float32: a dtype is a string)."""
        root = module.split(".")[0]
        if root == "self":  # self.fc1(x) from a module's forward
            return UnknownNameError("unknown name 'self'; a spec has no module object: a layer is written where it "
                                    f"is used (x -> linear(64) as {e.name}), and layer(\"{e.name}\") calls it again",
                                    e.value.span)
        try:
            self.lookup(e.name, env, e.span)
        except UnknownNameError as err:
            rest = err.message[len(f"unknown name '{e.name}'"):]
            return UnknownNameError(f"unknown name '{root}'; archdsl's names have no module, and '{e.name}' is not "
                                    f"one either{rest}", e.value.span)
        return UnknownNameError(f"unknown name '{root}'; archdsl's names have no module: "
                                f"{module_hint(root, module, e.name)}", e.value.span)

    def lookup(self, name: str, env: Env, span: Span):
        scope = env
        while scope is not None:  # Env.lookup, inlined: the commonest step of evaluation
            found = scope.vars.get(name, _MISSING)
            if found is not _MISSING:
                return found
            scope = scope.parent
        if name in BUILTINS:
            return BUILTINS[name]
        op = ops.lookup(name)
        if op is not None and op.category != "internal":  # dim_size and autodiff's helpers: no checks for a spec
            return OpFn(op, name if name in op.alias_ranks else "")
        if self.graph is not None and any(name in dim_symbols(d) for v in self.graph.inputs for d in v.type.shape):
            raise UnknownNameError(f"unknown name '{name}': {name} is a size of the model's inputs, and a block sees "
                                   f"only its arguments; read it from a tensor (shape(x)[0]), pass it in as an "
                                   f"argument, or let reshape infer it (-1)", span)
        if name in self.models:  # "did you mean 'cdist'?" for a GAN's disc(gen(z))
            raise UnknownNameError(model_called(name, name), span)
        raise env.missing(name, span, extra=list(BUILTINS) + ops.all_names())

    def _label(self, label_expr, env):
        v = self.eval(label_expr, env)
        if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and not v):
            got = "an empty string" if v == "" else describe(v)
            raise ArchTypeError(f"a layer name must be a name, string or integer, got {got}", label_expr.span)
        if isinstance(v, str) and _bad_label(v):
            raise ArchTypeError(f"layer name {short(v)} may not contain spaces, slashes, colons, #, control "
                                "characters or empty parts", label_expr.span)
        return v

    def _interp(self, e: A.Interp, env: Env) -> str:
        """`"layer{i}"`: every piece counts against one string-length limit."""
        meter = printing()
        out = "".join(to_str(p if isinstance(p, str) else self.eval(p, env), meter) for p in e.parts)
        self.charge(meter.used, e.span)
        return out

    def _listcomp(self, e: A.ListComp, env: Env):
        out: list = []
        self._clauses(e, ((e.targets, e.iter, e.cond),) + e.more, Env({}, env), out)
        return out

    def _clauses(self, e: A.ListComp, clauses: tuple, inner: Env, out: list) -> None:
        """`[elt for a in A if p for b in B ...]`: each clause loops inside the one before, as Python's."""
        (targets, it, cond), rest = clauses[0], clauses[1:]
        for item in self.iterable(self.eval(it, inner), it.span):
            self._tick(e.span)
            self.bind(targets, item, inner, e.span)
            if cond is None or self.truth(self.eval(cond, inner), cond.span):
                if rest:
                    self._clauses(e, rest, inner, out)
                else:
                    check_length(len(out) + 1)  # as [0] * n: nested clauses made 4,000,000 items
                    out.append(self.eval(e.elt, inner))

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
            for i, (k, v) in enumerate(e.kwargs):
                if k in kwargs:  # the caret under `k=v`, and whose argument (as arguments.py says it; review118)
                    callee = f"{e.func.id}(): " if isinstance(e.func, A.Name) else ""
                    at = e.kw_spans[i] if i < len(e.kw_spans) else v.span
                    raise ArchTypeError(f"{callee}argument '{k}' given twice", at)
                kwargs[k] = self.eval(v, env)
            if not is_callable(fn) and (hidden := _hides_a_function(e.func, fn, env)):
                raise ArchTypeError(f"{describe(fn)} is not callable{hidden}", e.span)
            try:
                return self.call(fn, args, kwargs, label, e.span)
            except ArchError as err:
                if err.arg is not None and err.span == e.span:
                    err.span = _argument_span(e, fn, len(piped), err.arg) or err.span
                raise
        try:
            fn = self.eval(e, env)
        except ArchError as err:
            if piped and isinstance(e, A.BinOp):  # x -> reshape([-1, 8]) + b: the pipe binds looser (and a
                err.notes = [n for n in err.notes if not n[0].startswith(LAYER_CALL)]  # layer there had x)
                if not err.notes:
                    err.notes.append(_binds_tighter(e))
            raise
        if piped or label is not None:
            if not is_callable(fn):
                what = ("the right side of '->' must be a layer, block or function" if piped else
                        "only a layer or block call can be named with 'as'")
                raise ArchTypeError(f"{what}, got {describe(fn)}{_hides_a_function(e, fn, env)}", e.span,
                                    [_binds_tighter(e)] if piped and isinstance(e, A.BinOp) else [])
            return self.call(fn, list(piped), {}, label, e.span)
        return fn

    # ---------------- calls ----------------


def _argument_span(call: A.Call, fn, piped: int, arg: str) -> Span | None:
    """Where a call writes the argument a diagnostic is about (conv2d(8, 3, stride=0): `stride=0`; an op's
    positional one too), so the caret goes under it rather than the whole call."""
    op = fn.op if isinstance(fn, OpFn) else ops.lookup(fn.name) if isinstance(fn, Builtin) else None  # sum(...)
    for (k, _), at in zip(call.kwargs, call.kw_spans):
        if k == arg or op is not None and own_name(op, k, arg_names(op)) == arg:  # softmax's dim=
            return at
    if op is not None and arg in (names := positional_names(op)):
        k = names.index(arg) - piped
        return call.args[k].span if 0 <= k < len(call.args) and hasattr(call.args[k], "span") else None
    return None


def _hides_a_function(e, fn, env: Env) -> str:
    """`param dropout = 0.1` then `dropout(dropout)`, a block argument named `channels`: a name bound to a value
    hides the op or builtin of that name (lookup finds the value first), and 'float 0.1 is not callable' said
    nothing of why. A string naming an op was meant as that layer."""
    if isinstance(fn, str) and ops.lookup(fn) is not None:  # `norm = "layernorm"`, then x -> norm: the layer meant
        return f"; a string does not call the op it names: write {fn}, or choose between layers with if/else"
    if not isinstance(e, A.Name) or not (e.id in BUILTINS or ops.lookup(e.id) is not None):
        return ""
    kind = "op" if ops.lookup(e.id) is not None else "builtin"
    if (path := env.import_of(e.id)) is not None:  # the user's own file binds no such name: nothing to rename
        return (f": here '{e.id}' is the {describe(fn)} that import \"{path}\" brings in, which hides the {kind} "
                f"{e.id}(); import that file under a name of its own (import \"{path}\" as lib) to keep both")
    return (f": here '{e.id}' is the {describe(fn)} bound to that name, which hides the {kind} {e.id}(); give the "
            "value another name")
