"""lstm and gru: torch.nn.LSTM/GRU parameter layout, lowered to ONNX's own LSTM/GRU ops (one per layer).

Parameters are named as in a torch state_dict (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`,
`..._reverse` for the backward direction) and keep torch's gate order; the lowering reorders the gate blocks at
run time (a Gather over rows, which onnxruntime folds into the constant initializer): torch LSTM rows are
i, f, g, o and ONNX wants i, o, f, c; torch GRU rows are r, z, n and ONNX wants z, r, h with
linear_before_reset=1 (torch applies the reset gate after the hidden-state matmul).

The gradient is that of `decompose`: the recurrence unrolled over a fixed number of time steps in registry
ops (torch's equations), so training needs a sequence length known at compile time; with lengths= each step
keeps a finished sequence's state and zeroes its output."""

from __future__ import annotations

import math

import numpy as np

from ..diagnostics import ArchError
from ..types import BATCH_NAMES, DType, TensorType, dim_symbols, numel
from ._common import bfloat16_from, float_input, positive, shape_str
from ._common import i64 as _i64
from .registry import Attr, Init, OpDef, ParamSpec, fail, register

__all__ = ["GATES", "check_trainable", "decompose", "layout_hint", "lengths_input", "torch_to_onnx_rows"]

MAX_LAYERS = 1024

# per cell: number of gate blocks, the ONNX op, and which torch block goes to each ONNX block position
GATES = {"lstm": (4, "LSTM", (0, 3, 1, 2)), "gru": (3, "GRU", (1, 0, 2))}


def torch_to_onnx_rows(cell: str, hidden: int) -> np.ndarray:
    """Row indices that turn a torch-ordered [G*H, ...] gate matrix into ONNX order."""
    _, _, order = GATES[cell]
    return np.concatenate([np.arange(b * hidden, (b + 1) * hidden) for b in order]).astype(np.int64)


def _dirs(a) -> int:
    return 2 if a["bidirectional"] else 1


def _param_names(a) -> list[str]:
    names = []
    for layer in range(a["num_layers"]):
        for d in range(_dirs(a)):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            names += [f"weight_ih{sfx}", f"weight_hh{sfx}"]
            if a["bias"]:
                names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
    return names


def _check_attrs(cell, a):
    positive(cell, a, "hidden_size", "num_layers")
    if a["num_layers"] > MAX_LAYERS:  # each one is parameters and nodes: 10^6 layers ran out of memory
        fail(f"{cell}: num_layers {a['num_layers']} is over the limit of {MAX_LAYERS}", "num_layers")
    if not 0.0 <= a["dropout"] <= 1.0:
        fail(f"{cell}: dropout must be in [0, 1], got {a['dropout']}", "dropout")


def _make_params(cell):
    gates = GATES[cell][0]

    def params(ins, a):
        _check_attrs(cell, a)
        x = ins[0]
        if x.rank != 3 or not isinstance(x.shape[-1], int):
            fail(f"{cell}: expected an input [B, T, features] with known features, got {shape_str(x)}")
        h, dirs = a["hidden_size"], _dirs(a)
        init = Init("uniform", -1.0 / math.sqrt(h), 1.0 / math.sqrt(h))  # torch's reset_parameters
        specs = []
        names = iter(_param_names(a))
        for layer in range(a["num_layers"]):
            fan_in = x.shape[-1] if layer == 0 else h * dirs
            for _ in range(dirs):
                specs += [ParamSpec(next(names), (gates * h, fan_in), init),
                          ParamSpec(next(names), (gates * h, h), init)]
                if a["bias"]:
                    specs += [ParamSpec(next(names), (gates * h,), init), ParamSpec(next(names), (gates * h,), init)]
        return specs
    return params


def _split_inputs(ins, a):
    """(data inputs, params): params follow the data inputs and their number follows from the attrs."""
    n = len(_param_names(a))
    return list(ins[:len(ins) - n]), list(ins[len(ins) - n:])


def _lengths(data: list, types: list, a) -> tuple[list, object]:
    """(x and the initial states, the lengths or None): lengths= is the last data input, from the elaborator's
    `given` record, or (a node built without it) the one integer data input."""
    given = a.get("given")
    has = "lengths" in given if given is not None else len(types) > 1 and not types[-1].dtype.is_float
    return (data[:-1], data[-1]) if has else (data, None)


def lengths_input(node):
    """(x, lengths) of an lstm/gru node given lengths=, else None: what a run's data is checked against."""
    if node.op not in GATES:
        return None
    data, _ = _split_inputs(node.inputs, node.attrs)
    data, lengths = _lengths(data, [v.type for v in data], node.attrs)
    return None if lengths is None else (data[0], lengths)


def _make_infer(cell):
    gates = GATES[cell][0]
    n_states = 2 if cell == "lstm" else 1

    def infer(ins, a):
        _check_attrs(cell, a)
        data, params = _split_inputs(ins, a)
        data, lengths = _lengths(data, data, a)
        x = data[0]
        float_input(cell, x)
        if x.rank != 3:
            fail(f"{cell}: expected an input [B, T, features], got {shape_str(x)}")
        h, dirs, layers = a["hidden_size"], _dirs(a), a["num_layers"]
        b, t = (x.shape[0], x.shape[1]) if a["batch_first"] else (x.shape[1], x.shape[0])
        for p, name in zip(params, _param_names(a)):
            if p.shape[0] != gates * h:
                fail(f"{cell}: parameter '{name}' has shape {shape_str(p)}, expected {gates * h} rows")
        if params[0].shape[1] != x.shape[-1]:
            fail(f"{cell}: expected {params[0].shape[1]} input features, got {x.shape[-1]} (input {shape_str(x)})")
        states = data[1:]
        if states and len(states) != n_states:
            fail(f"{cell}: give {'h0 and c0 together' if cell == 'lstm' else 'h0'} as initial state")
        state_t = TensorType(x.dtype, (layers * dirs, b, h))
        for s in states:
            if s.dtype != x.dtype or tuple(s.shape) != state_t.shape:
                fail(f"{cell}: initial state must be {state_t}, got {s}")
        if lengths is not None and (lengths.dtype not in (DType.int64, DType.int32) or lengths.rank != 1
                                    or lengths.shape[0] != b):
            fail(f"{cell}: lengths must be int64 (or int32) [{b}], each sequence's length, got {lengths}")
        seq = x.with_shape((b, t, dirs * h) if a["batch_first"] else (t, b, dirs * h))
        return [seq] + ([state_t] * n_states if a["return_state"] else [])
    return infer


def _make_lower(cell):
    _, onnx_op, _ = GATES[cell]
    n_states = 2 if cell == "lstm" else 1

    def lower(e, ins, outs, c):
        bfloat16_from(e, c.in_types[0], cell, f"ONNX {onnx_op} takes")
        a = c.attrs
        data, params = _split_inputs(ins, a)
        data, given = _lengths(data, c.in_types[:len(data)], a)
        lengths = None if given is None else e.op("Cast", [given], to=DType.int32.onnx)  # ONNX's sequence_lens
        h, dirs, layers = a["hidden_size"], _dirs(a), a["num_layers"]
        rows = _i64(e, torch_to_onnx_rows(cell, h))
        per = 4 if a["bias"] else 2
        seq = e.op("Transpose", [data[0]], perm=[1, 0, 2]) if a["batch_first"] else data[0]  # [T, B, F]
        finals: list[list[str]] = [[] for _ in range(n_states)]
        extra = {"linear_before_reset": 1} if cell == "gru" else {}
        for layer in range(layers):
            w, r, bias = [], [], []
            for d in range(dirs):
                p = params[(layer * dirs + d) * per:(layer * dirs + d + 1) * per]
                reorder = [e.op("Gather", [q, rows], axis=0) for q in p]
                w.append(reorder[0])
                r.append(reorder[1])
                if a["bias"]:
                    bias.append(e.op("Concat", reorder[2:], axis=0))
            stack = (lambda vs: e.op("Unsqueeze", [vs[0], _i64(e, [0])]) if len(vs) == 1 else
                     e.op("Concat", [e.op("Unsqueeze", [v, _i64(e, [0])]) for v in vs], axis=0))
            initial = [e.op("Slice", [s, _i64(e, [layer * dirs]), _i64(e, [(layer + 1) * dirs]), _i64(e, [0])])
                       for s in data[1:]]
            inputs = [seq, stack(w), stack(r), stack(bias) if bias else "", lengths or ""] + initial
            while inputs[-1] == "":
                inputs.pop()
            y, *states = e.op(onnx_op, inputs, n_out=1 + n_states, hidden_size=h,
                              direction="bidirectional" if dirs == 2 else "forward", **extra)
            for k, s in enumerate(states):
                finals[k].append(s)
            # Y is [T, dirs, B, H]; the next layer (and the caller) read [T, B, dirs * H]
            if dirs == 1:
                seq = e.op("Squeeze", [y, _i64(e, [1])])
            else:
                seq = e.op("Reshape", [e.op("Transpose", [y], perm=[0, 2, 1, 3]), _i64(e, [0, 0, -1])])
        if given is not None:  # zeros past each length from the graph itself: ONNX leaves Y's padded steps to the
            seq = _zero_padded(e, seq, lengths, c.in_types[0].dtype)  # runtime (onnx's reference computes them)
        e.op("Transpose", [seq], perm=[1, 0, 2], outputs=[outs[0]]) if a["batch_first"] else \
            e.op("Identity", [seq], outputs=[outs[0]])
        if a["return_state"]:
            for k in range(n_states):
                parts = finals[k]
                if len(parts) == 1:
                    e.op("Identity", parts, outputs=[outs[1 + k]])
                else:
                    e.op("Concat", parts, axis=0, outputs=[outs[1 + k]])
    return lower


def _zero_padded(e, seq: str, lengths: str, dtype) -> str:
    """seq [T, B, H] with the steps at or past each sequence's length (int32 [B]) set to zero."""
    steps = e.op("Squeeze", [e.op("Shape", [seq], start=0, end=1)])
    t = e.op("Range", [e.const(np.array(0, np.int64)), steps, e.const(np.array(1, np.int64))])
    t = e.op("Cast", [t], to=DType.int32.onnx)
    live = e.op("Less", [e.op("Unsqueeze", [t, _i64(e, [1])]), lengths])  # [T, B]
    return e.op("Where", [e.op("Unsqueeze", [live, _i64(e, [2])]), seq, e.const(np.zeros((), dtype.numpy))])


def _make_cost(cell):
    gates = GATES[cell][0]

    def cost(c):
        a = c.attrs
        x = c.in_types[0]
        steps = numel(x.shape[:2])
        h, dirs = a["hidden_size"], _dirs(a)
        total = 0
        for layer in range(a["num_layers"]):
            fan_in = x.shape[-1] if layer == 0 else h * dirs
            total += dirs * steps * (2 * gates * h * (fan_in + h) + 8 * gates * h)
        return total
    return cost


def _pieces(r, x, size: int, axis: int) -> list:
    """split(x, size) along axis, always as a list."""
    out = r.op("split", x, sizes=(size,), axis=axis)
    return list(out) if isinstance(out, tuple) else [out]


def _stack(r, xs: list, axis: int):
    """torch.stack: unsqueeze each at `axis`, then concat."""
    xs = [r.op("unsqueeze", v, dim=axis) for v in xs]
    return r.op("concat", *xs, axis=axis) if len(xs) > 1 else xs[0]


def _unstack(r, x, axis: int) -> list:
    """torch.unbind: the size-1 slices of x along axis, that axis dropped."""
    return [r.op("squeeze", v, dim=(axis,)) for v in _pieces(r, x, 1, axis)]


def _lstm_step(r, xp, h, c, whh_t, hidden):
    """One torch LSTM step: gates = x W_ih^T + b_ih + b_hh (precomputed in xp) + h W_hh^T, rows i, f, g, o.
    h and c are None at the first step without an initial state (zeros)."""
    gates = xp if h is None else r.op("add", xp, r.op("matmul", h, whh_t))
    i, f, g, o = _pieces(r, gates, hidden, -1)
    i, f, g, o = r.op("sigmoid", i), r.op("sigmoid", f), r.op("tanh", g), r.op("sigmoid", o)
    c_new = r.op("mul", i, g)
    if c is not None:
        c_new = r.op("add", r.op("mul", f, c), c_new)
    return r.op("mul", o, r.op("tanh", c_new)), c_new


def _gru_step(r, xp, h, whh_t, hidden, b_hh):
    """One torch GRU step, rows r, z, n: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z),
    n = tanh(x_n + r * (h W_hn^T + b_hn)), h' = (1 - z) * n + z * h (xp holds x W_ih^T + b_ih)."""
    xr, xz, xn = _pieces(r, xp, hidden, -1)
    if h is None:  # zero initial state: the hidden projection is just b_hh
        hr, hz, hn = _pieces(r, b_hh, hidden, -1) if b_hh is not None else (None, None, None)
    else:
        hp = r.op("matmul", h, whh_t)
        hr, hz, hn = _pieces(r, r.op("add", hp, b_hh) if b_hh is not None else hp, hidden, -1)
    rg = r.op("sigmoid", r.op("add", xr, hr) if hr is not None else xr)
    z = r.op("sigmoid", r.op("add", xz, hz) if hz is not None else xz)
    n = r.op("tanh", r.op("add", xn, r.op("mul", rg, hn)) if hn is not None else xn)
    if h is None:
        return r.op("mul", r.op("sub", r.const(1.0, like=z), z), n), None
    return r.op("add", n, r.op("mul", z, r.op("sub", h, n))), None  # torch: n + z * (h - n)


def decompose(r, cell: str, c, vals, dropout=None):
    """The op in registry ops, as torch computes it: each layer and direction projects the whole input
    sequence with one matmul, then steps through time with the hidden-state matmul. The reverse direction
    walks the steps backwards and its outputs are put back in time order. Needs an int sequence length.
    `dropout(r, seq, layer)` (training) drops each layer's output but the last's, as torch does."""
    a = c.attrs
    data, params = _split_inputs(list(vals), a)
    data, lengths = _lengths(data, [r.type(v) for v in data], a)
    x_t = c.in_types[0]
    h, dirs, layers = a["hidden_size"], _dirs(a), a["num_layers"]
    tax = 1 if a["batch_first"] else 0
    steps = x_t.shape[tax]
    if not isinstance(steps, int):
        fail(f"{cell}: the sequence length {steps} must be a known number here")
    per = 4 if a["bias"] else 2
    n_states = 2 if cell == "lstm" else 1
    initial = [_unstack(r, s, 0) if layers * dirs > 1 else [r.op("squeeze", s, dim=(0,))] for s in data[1:]]
    finals: list[list] = [[] for _ in range(n_states)]
    seq = data[0]
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w_ih, w_hh, *bias = params[k * per:(k + 1) * per]
            xp = r.op("matmul", seq, r.op("transpose", w_ih))           # [B, T, G*H] (or [T, B, G*H])
            b_hh = None
            if bias:
                if cell == "lstm":
                    xp = r.op("add", xp, r.op("add", bias[0], bias[1]))
                else:
                    xp, b_hh = r.op("add", xp, bias[0]), bias[1]
            xs = _unstack(r, xp, tax) if steps > 1 else [r.op("squeeze", xp, dim=(tax,))]
            whh_t = r.op("transpose", w_hh)
            state = [s[k] for s in initial] if initial else [None, None]
            # torch's 0 @ W_hh^T at a one-step layer's only step: W_hh gets a zero gradient, which weight decay
            # moves (it had none: left as it was, "reaches the loss only through detach"; difffuzz3 hunt)
            if steps == 1 and state[0] is None:
                state[0] = r.const(np.zeros((1, h)), like=xp)
            hs: list = [None] * steps
            for t in (range(steps) if d == 0 else reversed(range(steps))):
                if cell == "lstm":
                    new = list(_lstm_step(r, xs[t], state[0], state[1], whh_t, h))
                else:
                    new = list(_gru_step(r, xs[t], state[0], whh_t, h, b_hh))
                if lengths is None:
                    state = new
                    hs[t] = state[0]
                    continue
                # a packed sequence's step: past a sequence's length its state stays (so the reverse
                # direction starts at its last element) and its output is zero
                live = r.op("lt", r.const(t, like=lengths), r.op("unsqueeze", lengths, dim=1))     # [B, 1]
                state = [None if v is None else r.op("where", live, v, r.const(0.0, like=v) if old is None else old)
                         for v, old in zip(new, state)]
                hs[t] = r.op("where", live, state[0], r.const(0.0, like=state[0]))
            outs.append(_stack(r, hs, tax))
            for i in range(n_states):
                finals[i].append(state[i])
        seq = r.op("concat", *outs, axis=-1) if dirs == 2 else outs[0]
        if dropout is not None and layer < layers - 1:
            seq = dropout(r, seq, layer)
    res = [seq]
    if a["return_state"]:
        res += [_stack(r, f, 0) for f in finals]
    return res


def layout_hint(cell: str, x_t, batch_first: bool) -> str | None:
    """An input whose dim names say the other layout: [T, B, F] read batch first (archdsl's default; torch's
    is time first) takes T for the batch and steps over B, and passes every shape check."""
    if x_t.rank != 3:
        return None
    names = [str(d) for d in x_t.shape[:2]]  # [16, B, 8] too: T fixed by -D T=16
    batch_at = 1 if batch_first else 0
    if names[batch_at] not in BATCH_NAMES or names[1 - batch_at] in BATCH_NAMES:
        return None
    if names[batch_at] == "N" and names[1 - batch_at] not in ("T", "S", "L"):  # [bs, N, 2]: N points or steps
        return None
    return (f"{cell} reads {shape_str(x_t)} as [{'batch, steps' if batch_first else 'steps, batch'}, features] "
            f"(batch_first={'true' if batch_first else 'false'}{', the default' if batch_first else ''}), so "
            f"{names[1 - batch_at]} is taken for the batch and {names[batch_at]} for the time steps; "
            + ("for time-major input write batch_first=false (torch's default)" if batch_first else
               "for batch-first input leave batch_first=false out"))


def check_trainable(cell: str, c) -> None:
    """Training unrolls the recurrence over the time steps: say so when their number is symbolic."""
    a = c.attrs
    x_t = c.in_types[0]
    t = x_t.shape[1] if a["batch_first"] else x_t.shape[0]
    if not isinstance(t, int) and (hint := layout_hint(cell, x_t, a["batch_first"])):
        raise ArchError(f"{cell}: training needs a fixed sequence length, and {hint}")
    if not isinstance(t, int):
        b_dim = x_t.shape[0] if a["batch_first"] else x_t.shape[1]
        fixed, sym = ((f"[{b_dim}, LENGTH, ...]", f"[{b_dim}, {t}, ...]") if a["batch_first"] else
                      (f"[LENGTH, {b_dim}, ...]", f"[{t}, {b_dim}, ...]"))
        if str(t).isidentifier():
            note = (f"give it your sequences' length: -D {t}=LENGTH where the file declares `param {t} = none` "
                    f"(symbolic until -D fixes it), or write the input as {fixed} rather than {sym}")
        else:  # a length computed from the model's sizes (strided convs before it): those to fix, not a T
            names = dim_symbols(t) or ["T"]
            note = (f"its length is computed from the model's size{'s' if len(names) > 1 else ''} "
                    f"{', '.join(names)}: give {'them numbers' if len(names) > 1 else 'it a number'} in the "
                    f"model's input (-D {names[0]}=LENGTH where the file declares `param {names[0]} = none`), and "
                    f"the {cell} runs {t} steps")  # it named a T the file did not have (newuser5 hunt)
        raise ArchError(
            f"{cell}: training needs a fixed sequence length, but the input {shape_str(x_t)} has length "
            f"{t} (the gradient unrolls the recurrence over the time steps)", notes=[(note, None)])


def _make_grad(cell):
    def grad(b, c, ins, outs, gouts):
        """The gradient of `decompose`: the recurrence unrolled over the (fixed) time steps. Dropout
        between layers is the identity here (inference); a train step first rewrites the layer into
        decompose(..., dropout) (autodiff/train_mode.py)."""
        check_trainable(cell, c)
        return b.vjp(lambda r, *vals: decompose(r, cell, c, vals), list(ins), gouts)
    return grad


def _register(cell: str, torch_name: str, states: str):
    register(OpDef(
        name=cell, inputs=("x",) + tuple(f"{s}?" for s in states.split()) + ("lengths?",), category="layer",
        attrs=(Attr("hidden_size", "int"), Attr("num_layers", "int", 1), Attr("bias", "bool", True),
               Attr("batch_first", "bool", True), Attr("dropout", "float", 0.0), Attr("bidirectional", "bool", False),
               Attr("return_state", "bool", False), Attr("given", "given", None)),
        params=_make_params(cell), infer=_make_infer(cell), lower=_make_lower(cell), cost=_make_cost(cell),
        grad=_make_grad(cell),
        doc=f"{torch_name} (torch layout and gate order), batch_first by default: [B, T, F] -> [B, T, D*H]; "
            f"return_state=true also gives the final {', '.join(states.split()).replace('0', '_n')} [layers*D, B, H]. "
            "lengths= (int64 [B], each in 1..T) runs a padded batch as torch's packed sequences: outputs past a "
            "sequence's length are zero and its final state is its last real step's (the reverse direction "
            f"starts there). ONNX {GATES[cell][1]}, one per layer (sequence_lens: the zeros come from the graph, "
            "the final state and the reverse direction from a runtime that honours it, as onnxruntime; onnx "
            "1.23's reference evaluator ignores it); dropout is the identity at inference.",
    ))


_register("lstm", "torch.nn.LSTM", "h0 c0")
_register("gru", "torch.nn.GRU", "h0")
