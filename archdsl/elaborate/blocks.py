"""Block calls during elaboration: a block's body in a scope of its own (remembered when it is a pure
compile-time function), and layer(): an op's layer or a labelled block call run again with the parameters it
made, as a torch module called twice."""

from __future__ import annotations

import itertools

from ..diagnostics import ArchError, ArchTypeError, LimitError, ShapeError, Span, UnknownNameError, did_you_mean, quoted
from .arguments import own_names
from .bounded import short
from .scalars import Limits, ReturnValue
from .values import BlockFn, BlockLayer, Env, LayerFn, Tensor, describe

__all__ = ["Blocks"]


class Blocks:
    """The Evaluator's block calls and layer() (a mixin: it uses the evaluator's graph, scope and op calls)."""

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
                                    [(f"{d.name} is defined here", d.span)]).about(k)
            if k in local.vars:
                raise ArchTypeError(f"block {d.name}(): argument '{k}' given twice", span).about(k)
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
        had = len(self.graph.params) if log is not None and self.graph is not None else 0
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
            # the names added since, the dict's tail (read from its end: a copy of every name per call made a
            # model of n labelled block calls quadratic, 261 s for 32000)
            params = self.graph.params if self.graph is not None else {}
            made = tuple(itertools.islice(reversed(params), len(params) - had))[::-1]
            self.block_layers[scope] = BlockLayer(scope, fn, first, tuple(log), made)
        return result

    def none_hint(self) -> str:
        """Where a none may have come from, when a block of this model ended without a return statement (which
        none is its, a value cannot say)."""
        if self.last_none is not None:
            return f" (a block that ends without a return statement gives none, as {self.last_none}() does here)"
        return ""

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
        (`as enc`), by its full name, or inside a block by its name there: CBAM's MLP shared by its two pooled
        descriptors is `layer("fc1")` in the block, stage1.ca.fc1 in one call and stage2.ca.fc1 in the next (the
        full name bound every call to the first's weights, porting26 hunt)."""
        if self.graph is None:
            raise ArchTypeError("layer() is only allowed inside a model or block", span)
        name = self.in_scope(name, self.layers, self.block_layers)
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
            elif isinstance(name, str) and self.in_scope(name, self.graph.params) in self.graph.params:  # `parameter(
                # ...) as p`, then layer("p"), inside a block too (mutnew4)
                hint, more = "", f"; {named} is a parameter: ref(\"{name}\") reads it again"
            yet = " (yet)"
            if not inside and not full and (op := next((n.op for n in self.graph.nodes if n.name == name), None)):
                hint, yet, more = "", "", (f": {named} is a {op}, which has no parameters to share; write {op}(...) "
                                           "again where it is needed" + (" (it draws its own mask, as torch's module "
                                           "called again)" if op == "dropout" else ""))  # contrastive hunt
            raise UnknownNameError(f"no layer named {named}{yet}{hint}{more}", span)
        return self.layers[name]

    def in_scope(self, name, *tables):
        """`name` inside a block: this call's own (scope.name) where one of `tables` has it, else as written
        (layer() and ref() read a block's own layers and parameters first)."""
        if isinstance(name, str) and self.scope:
            own = ".".join([*self.scope, name])
            if any(own in t for t in tables):
                return own
        return name

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
        kwargs = own_names(op, kwargs, span)  # is_causal= is causal=: set when made, as any attribute
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
        # named after the layer (proj#2), as a block called again is: an automatic name (linear_0) read as a new
        # layer in summary, and took a number from the unnamed layers after it (their parameters renamed)
        node = self.graph.add_node(op.name, [t.value for t in tensors] + list(fn.params), attrs,
                                   self.again(fn.name, always=True), span)
        if fn.name not in self.automatic:  # `as linear_1` called again is linear_1#2 in warnings, as fc_1#2 is
            self.graph.labelled.add(id(node))
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
                                "would update in training; only blocks without buffers are called again. For a "
                                "discriminator on real and fake: one call on concat([real, fake], axis=0), or a "
                                "loss over one batch at a time with --accumulate 2 (torch's two backward() calls)",
                                span)
        d = fn.fn.defn
        tensors = [k for k, v in fn.args.items() if isinstance(v, Tensor) or  # a list of tensors too: f([x, y])
                   isinstance(v, (list, tuple)) and v and all(isinstance(t, Tensor) for t in v)]
        if len(args) > len(tensors):
            # the values as torch's forward(x, h=None) would take them: which argument changed since the first call
            placed = dict(zip(fn.args, args))
            changed = [k for k in fn.args if k in placed and k not in tensors
                       and not (placed[k] is fn.args[k] or not isinstance(placed[k], Tensor) and
                                type(placed[k]) is type(fn.args[k]) and placed[k] == fn.args[k])]
            k = changed[0] if changed else None
            tensor_first = k is not None and (fn.args[k] is None or isinstance(fn.args[k], float))
            why = (f": {k} was {describe(fn.args[k])} when the block was first called, and a call again takes only "
                   "its tensor arguments, the others as first given" + (
                       f"; to pass {k} each time, give it a tensor in the first call too (zeros_like(...) for a "
                       "state that starts empty, full_like(...) for a number)" if tensor_first else "")
                   if k is not None else "; the others are as first given: leave them out")
            raise ArchTypeError(f'layer("{fn.name}") takes the tensor arguments of block {d.name}() '
                                f"({', '.join(tensors) or 'none'}), got {len(args)} values{why}", span)
        given = dict(zip(tensors, args))
        for k, v in kwargs.items():
            if k not in fn.args:
                raise ArchTypeError(f"block {d.name}() has no argument '{k}'{did_you_mean(k, list(fn.args))}",
                                    span).about(k)
            if k not in tensors:
                raise ArchTypeError(f'layer("{fn.name}"): {k} was {describe(fn.args[k])} when the block was first '
                                    "called; a call again takes only its tensor arguments, the others as first given",
                                    span)
            if k in given:
                raise ArchTypeError(f"block {d.name}(): argument '{k}' given twice", span).about(k)
            given[k] = v
        missing = [k for k in tensors if k not in given]
        if missing:
            raise ArchTypeError(f'layer("{fn.name}") is missing tensor argument {quoted(missing)} (the block '
                                "is called again on new tensors)", span)
        saved = self.scope, self.replay, self.sharing, self.calling_again
        # its nodes are named apart (shared.attn#2, Calls.again): a dropout draws a mask of its own
        self.scope, self.replay, self.sharing = fn.name.split("."), list(fn.automatic), fn.name
        self.calling_again = True
        try:
            out = self.call_block(fn.fn, [], {**fn.args, **given}, None, span)
            if self.replay:  # it made fewer unnamed layers than its first call
                raise ArchTypeError(f'layer("{fn.name}"): this call of the block does not make its first call\'s '
                                    f"{self.replay[0].rpartition('.')[2]} (it ran differently: name its layers "
                                    "with `as`)", span)
            return out
        finally:
            self.scope, self.replay, self.sharing, self.calling_again = saved


_PLAIN = (int, float, str, bool, type(None))


def _memo_key(fn: BlockFn, args, kwargs) -> tuple | None:
    """A block call's arguments as a key, when all are plain values (with their types: 1, 1.0 and true are
    equal in Python and not in a block's arithmetic, nor 0.0 and -0.0 in its strings); None otherwise."""
    if not all(type(v) in _PLAIN for v in (*args, *kwargs.values())):
        return None
    return (id(fn.defn), id(fn.env), tuple((type(v), repr(v)) for v in args),  # repr: -0.0 is not 0.0
            tuple(sorted((k, type(v).__name__, repr(v)) for k, v in kwargs.items())))


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

