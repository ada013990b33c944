"""What a model's integer inputs hold, read from its graph: embedding ids (rows of a table), a spec's own
labels (classes of its cross_entropy), lstm/gru lengths (steps of the layers they feed). The training data's
checks and `archdsl run` draw and check them; a built model records them as metadata."""

from __future__ import annotations

from ..ops.recurrent import lengths_input

__all__ = ["index_rows", "int_input_ranges", "label_inputs", "length_inputs"]


def index_rows(graph) -> dict[str, tuple[int, str, bool, bool]]:
    """The model inputs read directly as embedding ids: the rows of the smallest table each indexes, that
    table's lookup (an embedding's name, a take's table's), whether negative ids count from the end (where
    only take()s of parameter tables read them: take keeps numpy's negative indices, as the translator's shared
    tables are looked up; an embedding does not), and whether the smallest table is a take's."""
    rows: dict[str, tuple[int, str, bool, bool]] = {}
    for node in graph.nodes:
        if node.op == "embedding":
            ids, n, took = node.inputs[0], node.inputs[1].type.shape[0], False
        elif node.op == "take" and node.inputs[0].kind == "param":
            table = node.inputs[0].type
            ids, n, took = node.inputs[1], table.shape[node.attrs["axis"] % table.rank], True
        else:
            continue
        if ids.kind != "input" or not isinstance(n, int):
            continue
        entry = (n, node.inputs[0].name if took else node.name, took, took)
        if ids.name in rows:  # ids every lookup takes: the fewest rows, and no negatives where one refuses them
            had = rows[ids.name]
            fewest = min(entry, had)
            entry = (fewest[0], fewest[1], entry[2] and had[2], fewest[3])
        rows[ids.name] = entry
    return rows


def label_inputs(graph) -> dict[str, tuple[int, int | None, str]]:
    """The model inputs a spec's own cross_entropy reads directly as labels: (classes, its ignore_index, the
    node's name), the fewest classes where several read one input."""
    out: dict[str, tuple[int, int | None, str]] = {}
    for node in graph.nodes:
        if node.op != "cross_entropy" or node.inputs[1].kind != "input":
            continue
        logits = node.inputs[0].type
        classes = logits.shape[node.attrs["axis"] % logits.rank]
        name = node.inputs[1].name
        if isinstance(classes, int) and classes < out.get(name, (classes + 1,))[0]:
            out[name] = (classes, node.attrs["ignore_index"], node.name)
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
    drew 0 or 1 for an lstm's lengths): embedding ids and a spec's own labels [0, high) (labels also the
    ignore_index, which they may hold), lengths 1..the fewest time steps of the layers they feed (each a dim, a
    number or a symbol the run sizes)."""
    out: dict[str, dict] = {name: {"low": 0, "high": n, **({"ignore": ig} if ig is not None else {})}
                            for name, (n, ig, _) in label_inputs(graph).items()}  # ignore: cross_entropy's ignore_index
    out.update({name: {"low": 0, "high": n} for name, (n, *_) in index_rows(graph).items()})
    for name, layers in length_inputs(graph).items():
        out[name] = {"low": 1, "steps": [d if isinstance(d := x.type.shape[axis], int) else str(d)
                                         for x, axis, _, _ in layers]}
    return out
