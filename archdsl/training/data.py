"""The data of `archdsl train` and `archdsl run`: .npz arrays read against the model's inputs (names, dtypes,
static dims), and the values a model reads as positions checked before they reach onnxruntime (embedding
ids within their table, class labels within their logits' classes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper

from ..diagnostics import ArchError
from ..ir.int_inputs import index_readings, index_rows, label_readings, label_source, length_inputs
from ..lower.weights import narrow_float, open_npz, raw_bytes, read_npz
from ..ops._common import channels_first_perm
from ..runtime import dim_conflict, is_name
from ..types import BATCH_NAMES, dim_size

__all__ = ["LabelsFor", "cast_values", "check_class_labels", "check_ctc_alignments", "check_ctc_inputs",
           "check_data_file", "check_index_inputs", "check_label_inputs", "check_length_inputs", "first_index",
           "length_limits", "load_data", "onnx_dims", "round_trips"]


@dataclass(frozen=True)
class LabelsFor:
    """What a --loss's labels are for, for a message on labels of another shape: the loss, the output it
    reads, and every output's dims (another output may be the one the labels fit)."""
    loss: str
    output: str
    outputs: dict  # name -> onnx_dims


_EXPECTED = "the data is an .npz with one array per model input (by name) and 'labels'"


def round_trips(a: np.ndarray, want: np.dtype) -> bool:
    """Whether float values are whole numbers that `want` (an integer dtype) holds: what .astype(want) keeps
    (inf, NaN, 1e30 and 2.0**63 do not survive it)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(a).all()) and bool((a.astype(want).astype(a.dtype) == a).all())


def check_data_file(path: str) -> None:
    """That the data file is there and an .npz, before the train step is compiled (a typo'd name was said
    after it: 27 s for GPT-2); its arrays are read and checked when training starts."""
    open_npz(path, "data", _EXPECTED).close()


def load_data(path: str, model, names: list[str], labels_for: LabelsFor | None = None, unread: list | None = None,
              notes: list | None = None) -> dict[str, np.ndarray]:
    """The arrays a model reads, by input name, checked against its declared dtypes and static dims.
    `unread` receives the names of the file's other arrays, `notes` what the cast did to integer data."""
    arrays = read_npz(path, "data", _EXPECTED)
    if unread is not None:
        unread.extend(sorted(set(arrays) - set(names)))
    inputs = {i.name: i for i in model.graph.input}
    _check_batched(path, {k: onnx_dims(inputs[k].type.tensor_type) for k in names}, labels_for is not None)
    out, declared, n = {}, {}, None
    nans, infs = _screened(model, "IsNaN"), _screened(model, "IsInf")  # a spec that finds the gaps itself
    # (isnan, nan_to_num: tabular data's missing values) takes NaN data there
    for name in names:
        if name not in arrays:
            raise ArchError(f"{path} has no array '{name}' (it has: {', '.join(sorted(arrays)) or 'nothing'}); "
                            f"the model reads {', '.join(names)}")
        vi = inputs[name].type.tensor_type
        want = helper.tensor_dtype_to_np_dtype(vi.elem_type)  # onnx's own table: uint8, int8, ... too
        if narrow_float(np.dtype(want)):  # the model's, before the data's: it failed at the first batch
            raise ArchError(f"the model's input '{name}' is {np.dtype(want).name}, which onnxruntime cannot be fed "
                            f"from Python (numpy has no such type): declare it float32 and cast(x, "
                            f"\"{np.dtype(want).name}\") in the spec")
        a = np.asarray(arrays[name])
        given = a.dtype  # as the file holds it, for the messages below
        if narrow_float(a.dtype):  # bfloat16 (ml_dtypes'): exact in float32, then cast as float16 data is
            a = a.astype(np.float32)
        if a.dtype.kind not in "biuf":  # strings, complex numbers, dates: nothing a model reads
            names_hint = ("; class names become indices with np.unique(labels, return_inverse=True)[1]"
                          if a.dtype.kind in "US" and name == "labels" else "")
            raise ArchError(f"{path}: '{name}' holds {raw_bytes(a.dtype) or f'{a.dtype} values'}; the model takes "
                            f"{np.dtype(want).name}{names_hint}")
        if a.ndim and not len(a):
            raise ArchError(f"{path}: '{name}' has no examples (its first dim is 0)")
        if name == "labels" and labels_for is not None and not a.size:  # [16, 0]: loss 0 in training, NaN in
            raise ArchError(f"{path}: 'labels' has shape {list(a.shape)}, no label in any example: nothing "  # eval
                            "counts toward the loss")
        bad = (np.isnan(a) & _unscreened(a, nans.get(name))) | (np.isinf(a) & _unscreened(a, infs.get(name))) \
            if a.dtype.kind == "f" else None
        if bad is not None and bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {a[tuple(at)]}: the data must be finite (a NaN or inf "
                            "makes the loss NaN)")
        dims = declared[name] = onnx_dims(vi)
        if dims and isinstance(dims[0], str) and dims[0] and not is_name(dims[0]):  # 2*B: a torch per-head mask
            raise ArchError(f"{path}: '{name}' is declared [{', '.join(str(d) for d in dims)}]: training cuts every "
                            f"array into batches of examples along its first dim, which a formula ({dims[0]}) is "
                            f"not; declare the input per example (as [B, 2, T, T] for a mask of 2*B rows) and "
                            f"reshape it in the spec")
        if not _fits(a.shape, dims):
            labelled = name == "labels" and labels_for is not None
            raise ArchError(f"{path}: '{name}' has shape {list(a.shape)}, the model takes {_shown(dims)}"
                            + (labels_hint(a.shape, labels_for, a.dtype.kind in "iu") if labelled else "")
                            + _layout_hint(name, a.shape, dims))
        if a.dtype != want:
            if np.issubdtype(want, np.integer) and not np.issubdtype(a.dtype, np.integer):
                whole = a.dtype.kind == "f" and round_trips(a, np.dtype(want))
                raise ArchError(f"{path}: '{name}' must hold integers ({np.dtype(want).name}), got {given}"
                                + (f"; its values are whole numbers: store {name}.astype(np.{np.dtype(want).name})"
                                   if whole else "; cross_entropy takes class indices, not probabilities"
                                   if name == "labels" and labels_for and labels_for.loss == "cross_entropy" else ""))
            if notes is not None and a.dtype.kind in "iu" and want.kind == "f" and a.size:
                notes.append(f"{path}: '{name}' holds {a.dtype} values ({a.min()}..{a.max()}), cast to "
                             f"{np.dtype(want).name} as they are (not scaled)")
            a = cast_values(path, name, a, np.dtype(want))
        if n is not None and len(a) != n:
            raise ArchError(f"{path}: '{name}' has {len(a)} examples, '{names[0]}' has {n}")
        n = len(a)
        out[name] = a
    clash = dim_conflict(declared, out, skip_first=True)
    if clash:
        raise ArchError(f"{path}: {clash}; arrays that share a dim name must agree on its size")
    return out


_TIME_NAMES = ("T", "L", "S")  # a sequence's length, as torch's RNN docs name it: never the batch in a guess
# back from an IsNaN to the input it screens: moves that keep every element, and indexings
_WALKED = {"Cast", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Flatten", "Slice", "Gather"}


def _screened(model, op_type: str) -> dict[str, list]:
    """The graph inputs an IsNaN (or IsInf) node reads, directly or through casts and reshapes, each with the
    numpy indexes of what it screens (None: all of it; a Slice or Gather of constant positions, read straight
    from the input: isnan(num[:, 0:2]) screens those columns only, review59)."""
    made = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name: t for t in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    out: dict[str, list] = {}
    for node in model.graph.node:
        if node.op_type != op_type:
            continue
        v, region, whole = node.input[0], None, False
        while v not in inputs and (n := made.get(v)) is not None and n.op_type in _WALKED:
            if not whole and n.op_type not in ("Cast", "Identity") and (region is not None or n.op_type in (
                    "Slice", "Gather") and (region := _positions(n, consts)) is None):  # positions it cannot map
                whole, region = True, None  # (a second indexing, a reshape before one): the whole input, as before
            v = n.input[0]  # (review60)
        if v in inputs:
            out.setdefault(v, []).append(region)
    return out


def _positions(node, consts: dict):
    """A Slice's or Gather's constant positions as a numpy index, else None."""
    from onnx import numpy_helper
    vals = [numpy_helper.to_array(consts[i]) if i in consts else None for i in node.input[1:]]
    if node.op_type == "Gather":
        if vals[0] is None:
            return None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        return (slice(None),) * axis + (vals[0],) if axis >= 0 else None
    if any(v is None for v in vals[:2]) or any(i and i not in consts for i in node.input[3:]):
        return None
    starts, ends = vals[0], vals[1]
    axes = vals[2] if len(vals) > 2 and vals[2] is not None else range(len(starts))
    steps = vals[3] if len(vals) > 3 and vals[3] is not None else [1] * len(starts)
    if any(a < 0 for a in axes):
        return None
    index = [slice(None)] * (max(axes) + 1)
    for a, b, e, k in zip(axes, starts, ends, steps):
        index[a] = slice(int(b), int(e), int(k))
    return tuple(index)


def _unscreened(a: np.ndarray, regions: list | None) -> np.ndarray:
    """Where a holds values no IsNaN (IsInf) screen reads."""
    left = np.ones(a.shape, bool)
    for region in regions or ():
        if region is None:
            return np.zeros(a.shape, bool)
        try:
            left[region] = False
        except (IndexError, ValueError):  # the data's sizes are checked against the spec elsewhere
            pass
    return left


def _check_batched(path: str, declared: dict, derived_labels: bool = False) -> None:
    """Every array is cut into batches along its first dim: an input without the batch there (a scalar, or
    m: float32[6] beside x: float32[B, 6]) would be cut as if its rows were examples (and shuffled with them),
    so it is refused, with what to write instead."""
    firsts = [dims[0] for dims in declared.values() if dims]
    symbolic = any(isinstance(d, str) and d for d in firsts)
    numbers = [d for d in firsts if isinstance(d, int)]
    batch_name = _batch_name(declared, derived_labels)
    if batch_name not in BATCH_NAMES:  # no first dim is named as a batch, but a later one is: x [T, B, 8] beside
        for name, dims in declared.items():  # time-major labels (or [10, B, 8]) was cut along T without a word
            at = next((i for i, d in enumerate(dims[1:], 1) if d not in firsts and (  # torch's RNNs' (L, N, H);
                d in ("B", "batch") or d == "N" and dims[0] in _TIME_NAMES)), None)  # points [G, N, 3] stay
            if at is not None and not (name == "labels" and derived_labels):
                _batch_not_first(path, name, dims, at)
    for name, dims in declared.items():
        if batch_name and dims and dims[0] != batch_name and batch_name in dims[1:]:  # x: [T, B, 8] beside
            _batch_not_first(path, name, dims, dims.index(batch_name),                # labels [B]: cut along T
                             name == "labels" and derived_labels)
        if dims and (symbolic or not numbers) and not isinstance(dims[0], int):
            continue
        if dims and not symbolic and dims[0] == numbers[0]:
            continue
        batch = next((d for d in firsts if isinstance(d, str) and d), numbers[0] if numbers else None)
        shown = _shown(dims)
        what = "a scalar ([])" if not dims else f"declared {shown}"
        if name == "labels" and derived_labels:  # --loss's labels take the shape of the output it reads (the
            # spec's own `labels` input, under --loss model, is said as any input)
            raise ArchError(f"{path}: the labels are {shown}, the shape of the output the loss "
                            f"reads, without the batch ({batch}) as its first dim: training cuts them into batches "
                            f"of examples, so the output must keep {batch} (a reshape that fixes every size, or a "
                            "reduction over the batch, loses it)")
        raise ArchError(f"{path}: the model's input '{name}' is {what}, without the batch ({batch}) as its first "
                        "dim: training cuts every input into batches of examples along its first dim; give it one "
                        f"row per example ([{batch}{''.join(f', {d}' for d in dims)}] in the spec, each row the "
                        "same), or make it a constant or parameter of the spec")


def _batch_name(declared: dict, derived_labels: bool = False) -> str | None:
    """The batch's dim name: the labels' first dim, else the one first dim named so (B, batch, N), else the
    first dim every input shares; None where the names leave it open. Labels that take the shape of the
    output a --loss reads give way to a batch's name among the inputs': a time-major output ([T, B, C]) does
    not make T the batch."""
    lead = (declared.get("labels") or [None])[0]
    if derived_labels and lead not in BATCH_NAMES:  # a batch's name among the inputs' first dims (or theirs when
        guess = _batch_name({k: v for k, v in declared.items() if k != "labels"})  # the labels lead with time's
        return guess if guess in BATCH_NAMES or guess and lead in _TIME_NAMES else _batch_name(declared)
    if isinstance(lead, str) and lead:
        return lead
    named = {dims[0] for dims in declared.values() if dims and isinstance(dims[0], str) and dims[0]}
    batchy = named & set(BATCH_NAMES)
    return next(iter(batchy)) if len(batchy) == 1 else next(iter(named)) if len(named) == 1 else None


def _batch_not_first(path: str, name: str, dims: list, at: int, output: bool = False) -> None:
    """Time-major data ([T, B, F]): the batch is there, on another dim; cut along the first it would be T."""
    shown = _shown(dims)
    if output:  # labels in the shape of a time-major output (a transpose before it is returned)
        raise ArchError(f"{path}: the labels are {shown}, the shape of the output the loss reads, with the batch "
                        f"({dims[at]}) on dim {at}: training cuts them into batches of examples along their first "
                        f"dim; return the output batch first (the spec's last transpose or permute left out), or "
                        f"write the loss in the spec and train with --loss model")
    raise ArchError(f"{path}: the model's input '{name}' is declared {shown}, "
                    f"with the batch ({dims[at]}) on dim {at}: training cuts every input into batches of examples "
                    f"along its first dim; declare it batch first ([{dims[at]}, ...], the data stored so) and "
                    "permute it in the spec where a layer wants another order (lstm and gru take batch_first=false)")


def onnx_dims(tensor_type) -> list:
    """An ONNX tensor type's dims: ints where fixed, else the dim's name ('' when it has none)."""
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor_type.shape.dim]


def _fits(shape, dims) -> bool:
    """An array's shape against declared dims past the batch: ints must match, names take any size."""
    return len(shape) == len(dims) and all(not isinstance(d, int) or d == s for d, s in zip(dims[1:], shape[1:]))


def _shown(dims) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in dims) + "]"


def _labels_dims(loss: str, dims: list) -> list:
    """The labels a loss takes for an output of these dims: class indices drop the class dim."""
    return dims[:-1] if loss == "cross_entropy" else dims


def labels_hint(shape, of: LabelsFor, integer: bool) -> str:
    """What labels of another shape are likely meant for: torch's class dim, one-hot rows or regression
    targets under cross_entropy, integer class indices under mse or bce_with_logits of several outputs (one
    output, [B, 1], wants the labels as a column: _layout_hint's), another output."""
    dims = of.outputs[of.output]
    said = f" ({of.loss}'s labels for output '{of.output}' {_shown(dims)})"
    torch_way = dims[:1] + dims[2:]
    if of.loss == "cross_entropy" and len(dims) >= 3 and _fits(shape, torch_way):
        return (f"{said}; cross_entropy takes the classes on the last dim of '{of.output}' (torch's "
                f"CrossEntropyLoss on dim 1): end the spec with permute({[0, *range(2, len(dims)), 1]}) to put them "
                "last")
    other = next((k for k, d in of.outputs.items() if k != of.output and _fits(shape, _labels_dims(of.loss, d))),
                 None)
    if other is not None:
        return f"{said}; output '{other}' is {_shown(of.outputs[other])}: --output-name {other} trains on it"
    if of.loss == "cross_entropy" and _fits(shape, dims):
        return (f"{said}; cross_entropy takes one class index per example: one-hot rows become "
                "labels.argmax(-1); targets of the output's shape take --loss mse (or bce_with_logits for 0/1 "
                "targets)")
    if of.loss != "cross_entropy" and integer and dims and dims[-1] != 1 and _fits(shape, dims[:-1]):
        return (f"{said}; {of.loss} takes a {'float 0/1 ' if of.loss == 'bce_with_logits' else ''}target of the "
                "output's shape: class indices go with --loss cross_entropy")
    return said


def _layout_hint(name: str, shape, dims) -> str:
    """The same values in another layout: a channels-last image, a missing or an extra dim of 1."""
    n = len(dims)
    if len(shape) == n >= 3 and _fits(shape, dims[:1] + dims[2:] + dims[1:2]) and not _fits(shape, dims):
        perm = tuple(channels_first_perm(n))
        return f"; channels last? {name}.transpose{perm} is {_shown([shape[i] for i in perm])}"
    for k in range(1, n):
        if len(shape) == n - 1 and dims[k] == 1 and _fits(shape[:k] + (1,) + shape[k:], dims):
            return f"; {name}[{':, ' * k}None] adds the missing dim of 1"
    for k in range(1, len(shape)):
        if len(shape) == n + 1 and shape[k] == 1 and _fits(shape[:k] + shape[k + 1:], dims):
            return f"; {name}.squeeze({k}) drops the dim of 1"
    return ""


def first_index(mask: np.ndarray) -> list[int]:
    """The index of the first true element of `mask`, as a list (for a message: 'x'[5, 3])."""
    return [int(i) for i in np.argwhere(mask)[0]] if mask.ndim else []


def cast_values(path: str, name: str, a: np.ndarray, want: np.dtype) -> np.ndarray:
    """`a` as the model's dtype, where every value fits (training data, and `run --input`): numpy's cast
    wraps integers (2**40 became 0 in int32) and turns numbers beyond a float's range into inf (1e5, or the
    integer 100000, in float16). A bool input takes bools or numbers that are exactly 0 or 1: numpy made 0.1
    and 7 true."""
    if want.kind == "b":
        bad = (a != 0) & (a != 1)  # NaN too
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {str(a[tuple(at)])}, not 0 or 1 (the model takes bool)")
        return a.astype(want)
    if want.kind in "iu" and a.dtype.kind in "iub" and a.size:
        info = np.iinfo(want)
        bad = (a < info.min) | (a > info.max)
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {a[tuple(at)]}, which {want.name} (the model's dtype) cannot "
                            f"hold ({info.min}..{info.max})")
        return a.astype(want)
    if want.kind == "f":
        with np.errstate(over="ignore"):
            out = a.astype(want)
        bad = np.isinf(out) & ~np.isinf(a.astype(np.float64))
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {a[tuple(at)]}, beyond {want.name} (the model's dtype, "
                            f"largest {float(np.finfo(want).max):g})")
        return out
    return a.astype(want)


def _outside(values: np.ndarray, n: int, allowed: int | None = None) -> np.ndarray:
    """Where positions into n rows or classes are not 0..n-1 (nor `allowed`, an ignore_index)."""
    bad = (values < 0) | (values >= n)
    return bad & (values != allowed) if allowed is not None else bad


def _shown_index(select: tuple) -> str:
    """A numpy index as the spec wrote it: `:, 2`."""
    return ", ".join("..." if p is Ellipsis else f"{'' if p.start is None else p.start}:"
                     f"{'' if p.stop is None else p.stop}{'' if p.step is None else f':{p.step}'}"
                     if isinstance(p, slice) else str(p) for p in select)


def check_index_inputs(path: str, data: dict[str, np.ndarray], graph) -> None:
    """A model input read directly as embedding ids holds row numbers 0..rows-1: onnxruntime's Gather
    reads -1 as the last row (torch's nn.Embedding refuses it), and stops past the end with an error that
    names no example. take(), gather, index_add and scatter_add keep negative indices: -rows..rows-1. An
    input read whole is checked against the fewest rows of its readings; fixed positions of one (a column per
    embedding: DLRM's cat[:, i]) each against their own."""
    for name, (rows, table, wraps, took) in index_rows(graph).items():
        if name in data:
            _ids_within(path, name, data[name], rows, table, wraps,
                        ", and an embedding of them takes no negative id" if took and not wraps else "")
    for name, select, rows, table, wraps in index_readings(graph):
        if name not in data or select is None or not isinstance(rows, int):
            continue
        try:
            got = data[name][select]
        except IndexError:  # the data's sizes are checked against the spec elsewhere
            continue
        _ids_within(path, f"{name}[{_shown_index(select)}]", got, rows, table, wraps)


def _ids_within(path: str, name: str, got: np.ndarray, rows: int, table: str, wraps: bool, also: str = "") -> None:
    bad = _outside(got + rows if wraps else got, 2 * rows if wraps else rows)
    if bad.any():
        at = first_index(bad)
        raise ArchError(f"{path}: '{name}'{at} is {got[tuple(at)]}, but {table} has {rows} "
                        f"row{'s' if rows != 1 else ''}{also}: ids are {f'{-rows}..' if wraps else '0..'}{rows - 1} "
                        f"({int(bad.sum())} out of range)")


@dataclass(frozen=True)
class MaskedLabels:
    """A spec's cross_entropy readings of labels with an ignore_index, each a mean over the labels that count:
    (input, the numpy index of what it reads or None, ignore_index). `loss`: the one the loss is (scaled, as
    0.5 * ce or ce / k), so that a batch's loss weighs by its labels (metrics.spec_batch_weight); None where the
    loss mixes in other terms."""
    readings: tuple = ()
    loss: int | None = None


def mean_masked_labels(graph, loss: str | None = None) -> MaskedLabels:
    """The labels of graph's mean cross_entropys with an ignore_index, read whole or through reshapes and fixed
    slices (a causal LM's ids[:, 1:]: only labels read as given counted before, so a batch of padding alone
    stopped `archdsl train` as a NaN loss: distill hunt); an input some reading sums or reads per position
    ("none") is left out. `loss`: the output that is the loss."""
    readings, other = [], set()
    for node in graph.nodes:
        source, select = label_source(node.inputs[1]) if node.op == "cross_entropy" else (None, None)
        if source is None:
            continue
        a = node.attrs
        if a["ignore_index"] is not None and a["reduction"] == "mean":
            readings.append((source.name, select, a["ignore_index"], node))
        else:
            other.add(source.name)
    readings = [r for r in readings if r[0] not in other]
    node = _scaled_from(dict(graph.outputs).get(loss))
    return MaskedLabels(tuple(r[:3] for r in readings), next((i for i, r in enumerate(readings) if r[3] is node), None))


def _scaled_from(v):
    """The node v is a multiple of (0.5 * ce, ce / k, -ce, a cast of it), else v's producer: a constant scale
    leaves a mean over labels one (an aux loss reading the same labels, or a scaled loss, weighed batches by
    examples: review81 hunt)."""
    n = v.producer if v is not None else None
    while n is not None:
        ins = n.inputs
        if n.op in ("neg", "cast", "identity"):
            src = ins[0]
        elif n.op == "mul" and len(ins) == 2 and any(u.kind == "const" for u in ins):
            src = ins[1] if ins[0].kind == "const" else ins[0]
        elif n.op == "div" and len(ins) == 2 and ins[1].kind == "const":
            src = ins[0]
        else:
            break
        if src.producer is None:
            break
        n = src.producer
    return n


def check_label_inputs(path: str, data: dict[str, np.ndarray], graph) -> None:
    """Labels a spec's cross_entropy reads are class indices 0..classes-1 (or its ignore_index), as torch
    requires: onnxruntime's GatherElements reads -1 as the last class and fails past the end naming no
    example."""
    for name, select, classes, ignore, node in label_readings(graph):  # whole, or a column (y[:, 0])
        if name not in data:
            continue
        try:
            got = data[name] if select is None else data[name][select]
        except IndexError:  # the data's sizes are checked against the spec elsewhere
            continue
        name = name if select is None else f"{name}[{_shown_index(select)}]"
        if ignore is not None and got.size and bool((got == ignore).all()):
            raise ArchError(f"{path}: every value of '{name}' is the ignore_index {ignore} of the cross_entropy it "
                            f"feeds ({node}): no label counts toward the loss")
        bad = _outside(got, classes, ignore)
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {got[tuple(at)]}, but the cross_entropy it feeds ({node}) "
                            f"has {classes} classes: labels are 0..{classes - 1}"
                            + (f" or the ignored index {ignore}" if ignore is not None else "")
                            + f" ({int(bad.sum())} out of range)")


def check_ctc_inputs(path: str, data: dict[str, np.ndarray], graph) -> None:
    """A spec's ctc_loss reading model inputs directly: targets are classes 0..C-1, target lengths 0..S (the
    padded target length), input lengths 0..T, as torch requires; past them onnxruntime's GatherElements failed
    naming no example, and a negative length trained silently (torch refuses it)."""
    for node in graph.nodes:
        if node.op != "ctc_loss":
            continue
        lp, tg, il, tl = node.inputs
        frames, _, classes = lp.type.shape
        limits = ((tl, tg.type.shape[1] + 1, "a target length, 0..{} (targets are padded to that)"),
                  (il, frames + 1 if isinstance(frames, int) else None, "an input length, 0..{} (the frames)"),
                  (tg, classes, "a class of its log_probs, 0..{}"))  # the targets within their (checked) lengths
        for v, top, what in limits:
            if v.kind != "input" or v.name not in data or not isinstance(top, int):
                continue
            got = data[v.name]
            bad = _outside(got, top)
            if v is tg:  # past a target's length is padding, never read: any value (torch takes -1 or 99)
                if tl.kind != "input" or tl.name not in data:
                    continue
                bad &= np.arange(got.shape[1])[None, :] < np.asarray(data[tl.name]).reshape(-1, 1)
            if bad.any():
                at = first_index(bad)
                raise ArchError(f"{path}: '{v.name}'{at} is {got[tuple(at)]}, but the ctc_loss it feeds ({node.name}) "
                                f"takes {what.format(top - 1)} ({int(bad.sum())} out of range)")


def check_ctc_alignments(path: str, data: dict[str, np.ndarray], graph) -> None:
    """An example whose input length cannot hold its target (its length plus one blank between each pair of
    equal neighbours) has an infinite CTC loss at any weights, torch's too: training stopped on it blaming the
    learning rate (review95 and review96 hunts). Refused before training, unless zero_infinity counts it 0."""
    for node in graph.nodes:
        if node.op != "ctc_loss" or node.attrs["zero_infinity"]:
            continue
        tg, il, tl = node.inputs[1:]
        if not all(v.kind == "input" and v.name in data for v in (tg, il, tl)):
            continue
        y = np.asarray(data[tg.name])
        got, length = np.asarray(data[il.name]).reshape(-1), np.asarray(data[tl.name]).reshape(-1)
        inside = np.arange(1, y.shape[1])[None, :] < length[:, None]  # y[:, j] and y[:, j - 1] both targets
        need = length + ((y[:, 1:] == y[:, :-1]) & inside).sum(axis=1)
        bad = got < need
        if bad.any():
            k = int(np.argmax(bad))
            raise ArchError(f"{path}: example {k}'s input length {got[k]} cannot hold its target of length "
                            f"{length[k]}: CTC needs {need[k]} frames for it (a blank between equal neighbours), so "
                            f"its ctc_loss ({node.name}) is inf at any weights, as torch's ({int(bad.sum())} such "
                            "example(s)); ctc_loss(..., zero_infinity=true) counts them as 0")


def _steps(x, axis: int, data: dict, sizes: dict | None) -> int | None:
    """x's time steps: a fixed size, a symbolic one at the run's `sizes`, or read from x's data."""
    steps = dim_size(x.type.shape[axis], sizes or {})
    if steps is None and x.kind == "input" and x.name in data:
        steps = np.shape(data[x.name])[axis]
    return steps


def length_limits(graph, data: dict, sizes: dict | None = None) -> dict[str, tuple[int, str, str]]:
    """Each lengths= input's largest length: the fewest time steps of the layers it feeds, with that layer's
    op and name (lengths reading layers of 10 and 5 steps are 1..5)."""
    out = {}
    for name, layers in length_inputs(graph).items():
        known = [(steps, op, node) for x, axis, op, node in layers
                 if (steps := _steps(x, axis, data, sizes)) is not None]
        if known:
            out[name] = min(known)
    return out


def check_length_inputs(path: str, data: dict[str, np.ndarray], graph, sizes: dict | None = None) -> None:
    """A sequence's length is 1..T, as torch's pack_padded_sequence requires: onnxruntime ran a 0 silently
    (outputs of zeros) and refused one past T mid-run naming no example."""
    for name, (steps, op, node) in length_limits(graph, data, sizes).items():
        if name not in data:
            continue
        got = np.asarray(data[name])
        bad = (got < 1) | (got > steps)
        if bad.any():
            at = first_index(bad)
            raise ArchError(f"{path}: '{name}'{at} is {got[tuple(at)]}, but the {op} it feeds "
                            f"({node}) takes lengths 1..{steps}, the time steps of its input "
                            f"({int(bad.sum())} out of range)")


def check_class_labels(path: str, labels: np.ndarray, model, output: str, ignore: int | None = None) -> None:
    """cross_entropy's labels are class indices in [0, classes), or the ignored index: onnxruntime's
    GatherElements reads a negative one from the end (label -3 trains class C-3) and stops at one past the end;
    torch refuses both. Data whose every label is the ignored one trains nothing (a nan loss each step, weight
    decay alone moving the weights), and is refused too."""
    if ignore is not None and labels.size and bool((labels == ignore).all()):
        raise ArchError(f"{path}: every label is the ignored index {ignore} (--ignore-index): no example counts "
                        "toward the loss or the accuracy")
    vi = next((o for o in model.graph.output if o.name == output), None)
    dims = vi.type.tensor_type.shape.dim if vi is not None else []
    if not dims or not dims[-1].HasField("dim_value"):
        return
    classes = dims[-1].dim_value
    bad = _outside(labels, classes, ignore)
    if bad.any():
        at, count = first_index(bad), int(bad.sum())
        ones = bool(labels.size) and labels.min() == 1 and labels.max() == classes  # 1..C: counted from 1
        marks = np.unique(labels[bad])
        marker = int(marks[0]) if ignore is None and len(marks) == 1 and int(marks[0]) in _IGNORE_MARKS else None
        raise ArchError(f"{path}: labels{at} is {int(labels[tuple(at)])}, but '{output}' has {classes} "
                        f"class{'es' if classes != 1 else ''}: cross_entropy takes class indices 0..{classes - 1}"
                        + (f" or the ignored index {ignore}" if ignore is not None else "")
                        + f" ({count} label{'s' if count > 1 else ''} out of range)"
                        + (f"; the labels run 1..{classes}: store labels - 1" if ones else "")
                        + (f"; if {marker} marks what the loss skips (a segmentation's unlabelled pixels), "
                           f"--ignore-index {marker}" if marker is not None else ""))


_IGNORE_MARKS = (255, -1, -100)  # VOC's and Cityscapes' void pixels, a common -1, torch's default ignore_index
