"""What a model's integer inputs hold, read from its graph: indices (embedding ids, rows of a table, a
gather's positions), a spec's own labels (classes of its cross_entropy), lstm/gru lengths (steps of the
layers they feed). The training data's checks and `archdsl run` draw and check them; a built model records
them as metadata."""

from __future__ import annotations

from ..ops.recurrent import lengths_input

__all__ = ["draw_limits", "index_readings", "index_rows", "int_input_ranges", "label_inputs", "label_readings",
           "label_source", "length_inputs"]


def index_readings(graph, drawing: bool = False) -> list[tuple]:
    """Every reading of a model input as indices along a dim: embedding ids, take()'s indices (the
    translator's shared tables), gather's, index_add's and scatter_add's, of the input itself or of fixed
    positions of it (`cat[:, 3] -> embedding(...)`, one table per column; `edge_index[0]`). Each as (the
    input's name, the numpy index of what is read or None for all of it, the size indexed (a number or a
    symbol), what has that size in words, whether negative ids count from the end (not an embedding's)).
    `drawing`: for ids to draw, also through a where that remaps the input's own values (where(ids < 0, 0, ids)),
    whose data cannot be checked against the size without the condition."""
    out = []
    for node in graph.nodes:
        got = _indexed(node)
        if got is None:
            continue
        ids, n, what = got
        source, select = _source(ids, drawing)
        if source is not None:
            out.append((source.name, select, n, what, node.op != "embedding"))
    return out


def index_rows(graph) -> dict[str, tuple[int, str, bool, bool]]:
    """The model inputs read whole as indices along dims of known size (index_readings): each as the fewest
    positions any reading has, what has them (said in words), whether negative ids count from the end (where
    no embedding reads them), and whether the fewest are not an embedding's."""
    rows: dict[str, tuple[int, str, bool, bool]] = {}
    for name, select, n, what, took in index_readings(graph):
        if not isinstance(n, int) or select is not None:
            continue
        entry = (n, what, took, took)
        if name in rows:  # ids every reading takes: the fewest rows, and no negatives where one refuses them
            had = rows[name]
            fewest = min(entry, had)
            entry = (fewest[0], fewest[1], entry[2] and had[2], fewest[3])
        rows[name] = entry
    return rows


# ops whose output holds the values of their first input (reshaped, reordered, repeated; cast among integers): an
# index read through them is the input's (torch's q.gather(1, a.unsqueeze(1)), a time-major transpose(ids, 0, 1))
_SAME_VALUES = ("unsqueeze", "squeeze", "reshape", "flatten", "detach", "expand", "transpose", "permute", "flip",
                "roll", "tile", "repeat_interleave")
# ops whose outputs are pieces of their first input along a dim: read as positions of it, as unbind's
_PIECES = {"unbind": "dim", "split": "axis", "chunk": "dim"}


def label_source(v):
    """(the model input v holds the values of, each once, or fixed positions of it; the numpy index of them),
    else (None, None): through reshapes, transposes and fixed slices (a causal LM's ids[:, 1:]), not through ops
    that repeat values (expand, tile) or pick them (where, concat). What a mean over labels counts."""
    return _source(v, counting=True)


def _source(v, drawing: bool = False, counting: bool = False):
    """(the model input v is, or fixed positions of: one getitem of numbers, whole or fixed slices and '...',
    or one of unbind's pieces; the numpy index of them), else (None, None); through ops that keep the values
    (an unsqueeze, a transpose, a cast between integer types), a concat or stack of one reading with itself,
    and a where() whose other branch is a constant and whose condition reads no input's values (label dropout
    for classifier-free guidance: where(drop, null_class, y)), whose data every value of is then checked;
    `drawing`, through any such where (a remapping one, a mask given as an input) too."""
    if v.kind == "input":
        return v, None
    n = v.producer
    if counting and n is not None and n.op in ("expand", "tile", "repeat_interleave", "where", "concat", "stack"):
        return None, None
    if n is not None and (n.op in _SAME_VALUES or n.op == "cast" and not n.inputs[0].type.dtype.is_float
                          and not v.type.dtype.is_float and v.type.dtype.label != "bool"):
        return _source(n.inputs[0], drawing, counting)
    if n is not None and n.op == "where":
        branches = [b for b in n.inputs[1:] if b.kind != "const"]
        if len(branches) != 1:
            return None, None
        source, select = _source(branches[0], drawing)
        # where(ids < 0, 0, ids): the model remaps the values it would refuse (padding, an UNK row, labels to
        # ignore_index), so the input's values are not what is read: not checked (review64), though drawn within
        # the size; nor where a mask given beside them picks them (where(valid, y, -100): the -1 at an invalid
        # position is never read, review70); a condition of its own (label dropout's rand_like(...) < p) leaves
        # them as they are
        return (None, None) if source is None or not drawing and _reads_an_input(n.inputs[0]) else (source, select)
    if n is not None and n.op in ("concat", "stack"):  # concat([ids, ids]): the values of one reading
        got = {(id(s), repr(sel)): (s, sel) for s, sel in (_source(u, drawing) for u in n.inputs)}
        return next(iter(got.values())) if len(got) == 1 else (None, None)
    if n is None or n.op not in ("getitem", *_PIECES) or n.inputs[0].kind != "input":
        return None, None
    if n.op in _PIECES:  # piece k along dim: x[:, ..., k] of unbind, x[:, ..., start:start + size] of split
        dim = n.attrs[_PIECES[n.op]] % n.inputs[0].type.rank
        k = n.outputs.index(v)
        if n.op == "unbind":
            return n.inputs[0], (slice(None),) * dim + (k,)
        before = [o.type.shape[dim] for o in n.outputs[:k + 1]]
        if not all(isinstance(d, int) for d in before):
            return None, None
        return n.inputs[0], (slice(None),) * dim + (slice(sum(before[:-1]), sum(before)),)
    select = []
    for part in n.attrs["index"]:
        if part[0] == "i" and isinstance(part[1], int):
            select.append(part[1])
        elif part[0] == "s" and all(b is None or isinstance(b, int) for b in part[1:]):
            select.append(slice(*part[1:]))
        elif part[0] == "e":
            select.append(Ellipsis)
        else:
            return None, None
    return n.inputs[0], tuple(select)


# ops whose first input gives only a shape (random ones too): rand_like(cast(y, "float32")) reads no value of y
_SHAPE_ONLY = ("rand_like", "randn_like", "randint_like", "zeros_like", "ones_like", "full_like", "positions",
               "dim_size")


def _reads_an_input(v) -> bool:
    """Whether v is computed from the values of a model input: a draw reads none (its `seed` input, a train
    step's seed and step, pick no value of the data: label dropout stays checked, review71)."""
    seen, todo = set(), [v]
    while todo:
        u = todo.pop()
        if u.kind == "input":
            return True
        p = u.producer
        if p is not None and id(u) not in seen:
            seen.add(id(u))
            todo.extend(() if p.opdef.random else p.inputs[1:] if p.op in _SHAPE_ONLY else p.inputs)
    return False


def _indexed(node):
    """(the index input, the size it indexes, what has that size in words) of a node that reads indices."""
    x = node.inputs[0] if node.inputs else None
    if node.op == "embedding":  # ids first (of any rank, 0-d too), then the table
        return x, node.inputs[1].type.shape[0], f"the embedding it indexes ({node.name})"
    if x is None:
        return None
    if node.op in ("gather", "index_add", "scatter_add", "scatter", "scatter_reduce") and x.type.rank == 0:
        return node.inputs[1], 1, f"the 0-d tensor {node.op} '{node.name}' reads"  # one element, index 0 or -1
    if x.type.rank == 0:
        return None
    if node.op == "take":
        n = x.type.shape[node.attrs["axis"] % x.type.rank]
        return node.inputs[1], n, (f"the table it looks up ({x.name})" if x.kind == "param"
                                   else f"axis {node.attrs['axis']} of what take '{node.name}' reads")
    if node.op in ("gather", "index_add", "scatter_add", "scatter", "scatter_reduce"):
        dim = node.attrs["dim"] % x.type.rank
        return node.inputs[1], x.type.shape[dim], f"dim {dim} of what {node.op} '{node.name}' reads"
    return None


def label_readings(graph) -> list[tuple]:
    """Every reading of a model input as a spec's own cross_entropy's labels, whole or at fixed positions (a
    multi-task y[:, 0]): (the input's name, the numpy index read or None, classes, its ignore_index, the node's
    name)."""
    out = []
    for node in graph.nodes:
        if node.op != "cross_entropy":
            continue
        source, select = _source(node.inputs[1])
        logits = node.inputs[0].type
        classes = logits.shape[node.attrs["axis"] % logits.rank]
        if source is not None and isinstance(classes, int):
            out.append((source.name, select, classes, node.attrs["ignore_index"], node.name))
    return out


def draw_limits(graph) -> dict[str, int]:
    """The top of the random integers to draw for each input read as labels or indices of a known size, whole
    or at fixed positions: the fewest classes or rows any reading has, so that what is drawn fits every reading
    (labels y that an embedding also reads: drawn past the classes, review70)."""
    out: dict[str, int] = {}
    for name, _, n, _, _ in index_readings(graph, drawing=True):
        if isinstance(n, int):
            out[name] = min(n, out.get(name, n))
    for name, _, classes, _, _ in label_readings(graph):
        out[name] = min(classes, out.get(name, classes))
    return out


def label_inputs(graph) -> dict[str, tuple[int, int | None, str]]:
    """The model inputs a spec's own cross_entropy reads whole as labels: (classes, its ignore_index, the
    node's name), the fewest classes where several read one input."""
    out: dict[str, tuple[int, int | None, str]] = {}
    for name, select, classes, ignore, node in label_readings(graph):
        if select is None and classes < out.get(name, (classes + 1,))[0]:
            out[name] = (classes, ignore, node)
    return out


def length_inputs(graph) -> dict[str, list[tuple]]:
    """The model inputs lstm/gru layers read directly as lengths=: for each, every such layer as (its input
    x, the axis of x's time steps, the op, the node's name)."""
    out: dict[str, list[tuple]] = {}
    for node in graph.nodes:
        got = lengths_input(node)
        if got is not None and got[1].kind == "input":
            out.setdefault(got[1].name, []).append((got[0], 1 if node.attrs["batch_first"] else 0, node.op,
                                                    node.name))
    return out


def int_input_ranges(graph) -> dict[str, dict]:
    """What a model's integer inputs hold, for its metadata (an .onnx says nothing of it, and `archdsl run`
    drew 0 or 1 for an lstm's lengths): indices (index_rows) and a spec's own labels [0, high) (labels also the
    ignore_index, which they may hold), lengths 1..the fewest time steps of the layers they feed (each a dim, a
    number or a symbol the run sizes), and other index readings' sizes as `rows` (a symbol the run sizes, a
    column's table): drawn below the fewest, not checked (segment hunt)."""
    out: dict[str, dict] = {name: {"low": 0, "high": n, **({"ignore": ig} if ig is not None else {})}
                            for name, (n, ig, _) in label_inputs(graph).items()}  # ignore: cross_entropy's ignore_index
    for name, (n, *_) in index_rows(graph).items():  # run --input checks; ids that are labels too fit both
        had = out.get(name, {}).get("high", n)  # (and the ignore_index, which the table would refuse, is none)
        out[name] = {"low": 0, "high": min(n, had)}
    rows: dict[str, list] = {}  # every reading (fixed positions, a size the run gives: a GNN's N): to draw within
    for name, _, n, _, _ in index_readings(graph, drawing=True):
        rows.setdefault(name, []).append(n if isinstance(n, int) else str(n))
    for name, select, classes, _, _ in label_readings(graph):  # labels at fixed positions (y[:, 0]) beside ids
        if name in rows or select is not None:
            rows.setdefault(name, []).append(classes)
    for name, r in rows.items():  # beside a high to check against (an embedding's table) where they say more
        high = out.get(name, {}).get("high")
        if high is None or any(not isinstance(n, int) or n < high for n in r):
            out.setdefault(name, {"low": 0})["rows"] = r
    for name, layers in length_inputs(graph).items():
        out[name] = {"low": 1, "steps": [d if isinstance(d := x.type.shape[axis], int) else str(d)
                                         for x, axis, _, _ in layers]}
    return out
