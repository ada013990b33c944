"""narrow_rows: compute only the positions an index reads.

A classifier that reads one token (`h[:, 0]` in ViT, a BERT pooler alone, `h[:, -1]` for a next-token
head) computes the whole last block for every position and then keeps one. Row-wise layers commute with
the index, so the index can move above them: `layernorm(x)[:, 0] == layernorm(x[:, 0:1])[:, 0]`, and
attention's output at a query position needs that query row but every key and value
(`mha(x)[:, 0:1] == mha(query=x[:, 0:1], key=x, value=x)`). ViT-B/16's last block then runs its MLP, the
output projection and the query projection on 1 of 197 positions.

Rule: a getitem that narrows one axis with step 1 (an int or a slice, not the whole axis) moves above
every node whose output is read only through narrowings of that axis (for several, the span covering
them, from which each takes its own: DeiT's two tokens), where the node is row-wise along that axis:
elementwise ops (OpDef.elementwise; an operand broadcast along the axis is read whole), linear
and matmul rows, layer/RMS norms and softmaxes over other axes, permutes, reshapes that keep the dims up
to the axis, and attention along its query axis (multi-head attention becomes the cross-attention form:
the key and value read the whole input). Causal masks restrict it: `causal_mask` (bottom-right aligned)
commutes with rows that run to the end; causal attention (top-left aligned, torch's is_causal) with the
first rows, and its last row alone is non-causal attention when queries and keys have one length. Where
the chain stops, one narrowing of the full value is inserted; an int index leaves the axis as size 1
until the original getitem, which becomes a squeeze (under a cover, the index shifted into it). Every
narrowed node's types are checked by its op's own shape rule before anything changes. A train step runs
it on its forward graph before autodiff (the gradients then flow through the narrowed layers alone),
where an op that draws dropout masks is not narrowed: its mask would take other random numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import ShapeError
from ..ir import Graph, Node, Value
from ..ops import attention
from ..ops._common import normalized_dims
from ..ops.index import resolve_index
from ..types import Dim, TensorType
from ._rewrite import Rewriter
from .manager import PassContext, register_pass

NORMS = frozenset({"layernorm", "rms_norm"})


@dataclass(frozen=True)
class Sel:
    """Positions start:stop (stop None: to the end; start < 0 only for an int on a symbolic dim, counted
    from the end) of one axis, kept as an axis of `length`."""
    axis: int
    start: int
    stop: int | None
    length: Dim

    def at(self, axis: int) -> "Sel":
        return Sel(axis, self.start, self.stop, self.length)

    def narrowed(self, t: TensorType) -> TensorType:
        shape = list(t.shape)
        shape[self.axis] = self.length
        return t.with_shape(shape)


FULL = None  # an input read whole


def _selection(node: Node) -> tuple[Sel, bool] | None:
    """(the narrowing, whether it drops the axis) of a getitem that narrows exactly one axis with step 1 to
    fewer positions than it has."""
    if node.op != "getitem":
        return None
    x, out = node.inputs[0].type, node.outputs[0].type
    try:
        plan = resolve_index(x, node.attrs["index"])
    except ShapeError:
        return None
    axes = [i for i, p in enumerate(plan) if p is not None]
    if len(axes) != 1:
        return None
    axis = axes[0]
    start, stop, step, squeeze = plan[axis]
    if step != 1:
        return None
    length = 1 if squeeze else out.shape[axis]
    if length == x.shape[axis] or length == 0:
        return None  # the whole axis: nothing to save; no positions: nothing to compute
    if not squeeze and (stop is not None or start < 0) and not isinstance(x.shape[axis], int):
        return None  # x[:, 0:4] or x[:, -4:] is typed 4 long but clamps to a shorter T at run time: keep it last
    return Sel(axis, start, stop, length), squeeze


def _broadcast(ins: list[TensorType], out: TensorType, s: Sel) -> list | None:
    """Per input: its narrowing, or FULL where it is broadcast along the axis."""
    demands = []
    for t in ins:
        ia = s.axis - (out.rank - t.rank)
        if ia < 0 or t.shape[ia] == 1:
            demands.append(FULL)
        elif t.shape[ia] == out.shape[s.axis]:
            demands.append(s.at(ia))
        else:
            return None
    return demands


def _plan(node: Node, s: Sel) -> tuple[list, list | None, dict] | None:
    """How `node` computes only the positions `s` of its output: (a demand per input, the new inputs'
    order as indices into the old ones or None for the same, the new attrs), or None where it cannot."""
    if len(node.outputs) != 1:
        return None
    ins = [v.type for v in node.inputs]
    out = node.outputs[0].type
    r, a, op, attrs = out.rank, s.axis, node.op, node.attrs
    keep = [FULL] * len(ins)
    if node.opdef.elementwise:
        demands = _broadcast(ins, out, s)
        return (demands, None, attrs) if demands is not None else None
    if op == "linear" and a < r - 1:
        return [s] + keep[1:], None, attrs
    if op in NORMS:
        if a < r - len(normalized_dims(op, ins[0], attrs["normalized_shape"])):
            return [s] + keep[1:], None, attrs
        return None
    if op in ("softmax", "log_softmax") and a != attrs["axis"] % r:
        return [s], None, attrs
    if op == "matmul" and min(t.rank for t in ins) >= 2:
        if a == r - 2:  # a row of the product is that row of the left operand times the right one
            return [s.at(ins[0].rank - 2), FULL], None, attrs
        if a < r - 2:  # a batch axis: each operand as it broadcasts
            demands = _broadcast(ins, out, s)
            return (demands, None, attrs) if demands is not None else None
        return None
    if op == "permute":
        dims = [d % r for d in attrs["dims"]]
        return [s.at(dims[a])], None, attrs
    if op == "transpose":
        d0, d1 = attrs["dim0"] % r, attrs["dim1"] % r
        return [s.at(d1 if a == d0 else d0 if a == d1 else a)], None, attrs
    if op == "reshape":
        x = ins[0]
        if a >= x.rank or tuple(x.shape[:a + 1]) != tuple(out.shape[:a + 1]):
            return None
        shape = list(attrs["shape"])
        shape[a] = s.length
        return [s], None, {**attrs, "shape": tuple(shape)}
    if op == "causal_mask" and (a < r - 2 or (a == r - 2 and _suffix(s, out.shape[a]))):
        return [s], None, attrs  # bottom-right aligned: the last rows of the scores keep their mask
    if op in ("scaled_dot_product_attention", "multihead_attention") and not isinstance(s.length, int):
        return None  # x[:, 1:] can be empty at run time: its attention would lose onnxruntime's kernel
    if op == "scaled_dot_product_attention" and a == r - 2:
        q, k = ins[0], ins[1]
        attrs = _causal(attrs, s, q.shape[-2], k.shape[-2])
        if attrs is None:
            return None
        demands = [s.at(q.rank - 2), FULL, FULL]
        if len(ins) > 3:  # the mask as it broadcasts to the scores
            mask = _broadcast([ins[3]], out.with_shape(out.shape[:-1] + (k.shape[-2],)), s)
            if mask is None:
                return None
            demands += mask
        return demands, None, attrs
    if op == "multihead_attention" and a == 1:
        at = attention.slots(ins[:len(ins) - attention.n_params(attrs)], attrs)
        has_kv = "key" in at
        attrs = _causal(attrs, s, ins[0].shape[1], ins[at["key"] if has_kv else 0].shape[1])
        if attrs is None:
            return None
        demands = [s] + keep[1:]
        if "attn_mask" in at:  # its query rows: dim 0 of [T, S], dim 1 of [B*H, T, S]
            demands[at["attn_mask"]] = s.at(ins[at["attn_mask"]].rank - 2)
        if has_kv:  # cross-attention: the query's rows
            return demands, None, attrs
        # self-attention becomes cross-attention: query = the rows, key = value = the whole input
        given = tuple(n for n in at if n != "query")
        return [s, FULL, FULL] + demands[1:], [0, 0, 0] + list(range(1, len(ins))), \
            {**attrs, "given": ("key", "value") + given}
    return None


def _cover(demands: list, t: TensorType) -> Sel | None:
    """The positions a value's uses read: their one selection, or where they read several positions of one
    axis (DeiT's class and distillation tokens, h[:, 0] and h[:, 1]) the span from the first to the last,
    when it is shorter than the axis. None where a use reads the value whole."""
    if any(d is FULL for d in demands):
        return None
    first = demands[0]
    if all(d == first for d in demands):
        return first
    if any(d.axis != first.axis or d.start < 0 or d.stop is None for d in demands):
        return None  # several axes, or a position counted from the end of a symbolic dim
    lo, hi = min(d.start for d in demands), max(d.stop for d in demands)
    dim = t.shape[first.axis]
    if isinstance(dim, int) and hi - lo >= dim:
        return None
    return Sel(first.axis, lo, hi, hi - lo)


def _draws(node: Node) -> bool:
    """Draws a dropout mask when training (dropout, attention dropout): narrowed, it would draw others."""
    rate = "p" if node.op in ("dropout", "drop_path") else "dropout_p" if node.op == "scaled_dot_product_attention" \
        else "dropout"
    return float(node.attrs.get(rate, 0.0)) > 0.0


def _suffix(s: Sel, dim: Dim) -> bool:
    """The positions run to the end of the axis."""
    return s.stop is None or (isinstance(dim, int) and s.stop == dim)


def _causal(attrs: dict, s: Sel, t: Dim, n: Dim) -> dict | None:
    """The attrs of a (top-left aligned) causal attention computing only query rows `s`, or None where no
    attrs can: the first rows keep their mask; the last row of a square one sees every key."""
    if not attrs["causal"] or s.start == 0:
        return attrs
    if s.length == 1 and _suffix(s, t) and t == n:
        return {**attrs, "causal": False}
    return None


def _order(node: Node, plan) -> list[int]:
    """The new node's inputs, as indices into `node`'s."""
    return plan[1] if plan[1] is not None else list(range(len(node.inputs)))


def _checked(node: Node, s: Sel, plan) -> bool:
    """The op's own shape rule agrees: the narrowed inputs give the output narrowed by `s`."""
    demands, _, attrs = plan
    old = [v.type for v in node.inputs]
    new = [d.narrowed(old[i]) if d is not FULL else old[i] for i, d in zip(_order(node, plan), demands)]
    try:
        got = node.opdef.infer(new, attrs)
    except ShapeError:
        return False
    return list(got) == [s.narrowed(node.outputs[0].type)]


@register_pass("narrow_rows", level=2, inference_only=True, train_forward=True,
               doc="an index reading some positions (h[:, 0]) moves above the row-wise layers that feed it")
def narrow_rows(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    uses: dict[int, list] = {}  # id(value) -> the demand of each use (a Sel, or FULL)
    plans: dict[int, tuple] = {}  # id(node) -> its plan (_plan), for the nodes that narrow
    picks: dict[int, tuple[Sel, bool]] = {}  # id(getitem) -> its narrowing, for the index nodes
    sels: dict[int, Sel] = {}  # id(value) -> the positions its narrowed node computes, for the narrowed values
    for node in reversed(g.nodes):
        plan, out_sel = None, None
        if len(node.outputs) == 1:
            v = node.outputs[0]
            demands = uses.get(id(v), [])
            if demands and not rw.is_output(v):
                out_sel = _cover(demands, v.type)
            if out_sel is not None:
                plan = None if not ctx.inference and _draws(node) else _plan(node, out_sel)
                if plan is not None and not _checked(node, out_sel, plan):
                    plan = None
        if plan is not None:
            plans[id(node)] = plan
            sels[id(v)] = out_sel
            for i, d in zip(_order(node, plan), plan[0]):
                uses.setdefault(id(node.inputs[i]), []).append(d)
            continue
        pick = _selection(node)
        if pick is not None:
            picks[id(node)] = pick
        for i, x in enumerate(node.inputs):
            uses.setdefault(id(x), []).append(pick[0] if pick is not None else FULL)
    if not plans:
        return False

    narrow: dict[int, Value] = {}  # id(old value) -> its narrowed value (made by a narrowed node)
    cuts: dict[tuple, Value] = {}  # (id(full value), Sel) -> the inserted narrowing of it
    narrowed: list[Node] = []

    def cut(v: Value, s: Sel, anchor: Node) -> Value:
        key = (id(v), s)
        if key not in cuts:
            full = [("s", None, None, None)] * s.axis
            if s.start >= 0:
                n = g.make_node("getitem", [v], {"index": tuple(full + [("s", s.start, s.stop, None)])},
                                f"{anchor.name}.rows", anchor.span)
            else:  # an int from the end of a symbolic dim: pick it, then keep its axis
                pick = g.make_node("getitem", [v], {"index": tuple(full + [("i", s.start)])}, f"{anchor.name}.rows",
                                   anchor.span)
                rw.insert_before(anchor, pick)
                n = g.make_node("unsqueeze", [pick.outputs[0]], {"dim": s.axis}, f"{anchor.name}.rows", anchor.span)
            rw.insert_before(anchor, n)
            cuts[key] = n.outputs[0]
        return cuts[key]

    def within(x: Value, d: Sel, anchor: Node, name: str, squeeze: bool = False) -> Value:
        """Positions `d` of x, from its narrowed value (which computes the cover of every use's positions)."""
        rows, have = narrow[id(x)], sels[id(x)]
        full = [("s", None, None, None)] * d.axis
        if squeeze:  # one position: the index itself, shifted (an int drops the axis)
            n = g.make_node("getitem", [rows], {"index": tuple(full + [("i", d.start - have.start)])}, name,
                            anchor.span) if have.length != 1 else \
                g.make_node("squeeze", [rows], {"dim": (d.axis,)}, name, anchor.span)
        elif d == have:
            return rows
        else:
            stop = d.stop - have.start if d.stop is not None else None
            n = g.make_node("getitem", [rows], {"index": tuple(full + [("s", d.start - have.start, stop, None)])},
                            name, anchor.span)
        rw.insert_before(anchor, n)
        return n.outputs[0]

    for node in list(g.nodes):
        if id(node) in plans:
            plan = plans[id(node)]
            inputs = []
            for i, d in zip(_order(node, plan), plan[0]):
                x = node.inputs[i]
                inputs.append(x if d is FULL else within(x, d, node, f"{node.name}.rows") if id(x) in narrow
                              else cut(x, d, node))
            new = g.make_node(node.op, inputs, plan[2], node.name, node.span)
            rw.insert_before(node, new)
            narrow[id(node.outputs[0])] = new.outputs[0]
            narrowed.append(node)
        elif id(node) in picks and id(node.inputs[0]) in narrow:
            s, squeeze = picks[id(node)]
            rw.replace(node.outputs[0], within(node.inputs[0], s, node, node.name, squeeze))
            rw.erase(node)
    rw.erase_all(narrowed)  # read now only by each other
    return rw.commit()

