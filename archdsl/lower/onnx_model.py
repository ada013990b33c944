"""IR graph to onnx.ModelProto: inputs with dim_params, initializers, one lowering per node."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .._version import __version__
from ..diagnostics import ArchError, ShapeError
from ..ir import Graph, Value
from ..ops import OpCall
from ..types import DType, TensorType, is_symbol
from .emitter import Emitter
from .ort_workarounds import half_matmul_after_transpose, square_after_cast_mean
from .weights import CHUNK, Chunked, cast, chunk_count, fill_chunk, materialize, narrow_float, resident, whole_numbers

__all__ = ["lower_graph", "value_info", "LowerResult", "MIN_OPSET", "param_arrays", "RAW_DTYPES"]

MIN_OPSET = 17


class LowerResult:
    def __init__(self, model: onnx.ModelProto, names: dict[int, str]):
        self.model = model
        self.names = names  # id(IR value) -> ONNX value name


def value_info(name: str, t: TensorType):
    dims = [d if isinstance(d, int) else str(d) for d in t.shape]
    return helper.make_tensor_value_info(name, t.dtype.onnx, dims)


# onnxruntime folds a conv's (and a conv_transpose's) batchnorm itself at load, in float16 too (review108, mutnew2:
# -O1's model gave inf at its basic level and above, 94.9 with ConvBNFusion off); a linear's it leaves
_CONV_FOLDED = ("; onnxruntime folds a conv's batchnorm the same way when it loads the model (its ConvBNFusion, at its "
                "basic optimization level and above), so -O1 overflows there too: keep this conv and its batchnorm "
                'in float32, cast(x, "float32") before the conv and cast(y, "float16") after the batchnorm, or run '
                '-O1\'s model with disabled_optimizers=["ConvBNFusion"]')


def _param_array(v: Value, seed: int, weights: dict | None) -> np.ndarray:
    derive = getattr(v.spec, "derive", None)
    if derive is not None:  # a parameter an optimization pass computes from others (passes/derived.py)
        return _fitted(derive(lambda src: resident(_param_array(src, seed, weights))), v,
                       "the weight an -O2 pass derives (a folded BatchNorm, a transposed weight)",
                       _CONV_FOLDED if any(u.op.startswith("conv") for u in v.uses)
                       else "; build with -O1, or --disable-pass fold_batchnorm")
    if weights is not None and v.name in weights:
        arr = np.asarray(weights[v.name])
        if tuple(arr.shape) != tuple(v.type.shape):
            raise ArchError(f"weights: '{v.name}' has shape {list(arr.shape)} as given, "
                            f"the model needs {list(v.type.shape)}", v.span)
        return _fitted(arr, v, "the value given")
    return materialize(v.name, v.spec, v.type.dtype, seed)


def _fitted(arr: np.ndarray, v: Value, what: str, advice: str = "") -> np.ndarray:
    """arr in v's dtype, cast directly and only where every value survives: finite values beyond a float
    dtype's range (1e40 in float32, 1e5 in float16) and integers a narrower integer cannot hold (2**40 in
    int32) or fractions in an integer parameter are a diagnostic naming the parameter, not an inf, a wrapped
    number or a truncation. (It went through float32 first: an int64 2**53-1 lost its last bit.)"""
    dt = v.type.dtype
    if arr.dtype == dt.numpy:  # as given, not copied: a mapped checkpoint streams from its file
        return arr
    arr = resident(arr)
    if narrow_float(arr.dtype):  # bfloat16, float8 (ml_dtypes): exact in float32, and checked as floats there (of
        arr = arr.astype(np.float32)  # kind "V", a bfloat16 1e30 became inf in float16, 2.5 truncated in int64)
    if dt is DType.bool and arr.size and not np.isin(arr, (0, 1)).all():  # 2.5 and NaN became true
        raise ArchError(f"'{v.name}': {what} holds values other than 0 and 1, and the parameter is bool", v.span)
    if not dt.is_float and dt is not DType.bool:
        low, top = dt.limits()
        if arr.dtype.kind == "f" and not whole_numbers(arr):
            raise ArchError(f"'{v.name}': {what} holds fractions or non-finite values, and the {dt} parameter "
                            f"only whole numbers", v.span)
        # top + 1 (a power of two) is exact in float64 where top is not: float 2**63 passed int64's test
        over = arr.size and (arr.max() >= top + 1 if arr.dtype.kind == "f" else arr.max() > top)
        if over or (arr.size and arr.min() < low):
            raise ArchError(f"'{v.name}': {what} reaches {arr.max() if over else arr.min()}, beyond "
                            f"{dt}'s range ({low}..{top})", v.span)
    with np.errstate(over="ignore", invalid="ignore"):  # said below, with the parameter's name
        out = cast(arr, dt)
    if dt.is_float and arr.dtype.kind in "fiub" and not np.isfinite(out).all() and \
            np.isfinite(arr.astype(np.float64)).all():
        top = float(np.abs(arr.astype(np.float64)).max())
        raise ArchError(f"'{v.name}': {what} reaches {top:g}, beyond {dt}'s range ({dt.limits()[1]:g}){advice}",
                        v.span)
    return out


def _streamable(v: Value, weights: dict | None) -> int:
    """Blocks of a parameter the build can generate block by block (seeded random float32), else 0."""
    if getattr(v.spec, "derive", None) is not None or (weights is not None and v.name in weights):
        return 0
    return chunk_count(v.spec) if v.type.dtype.np == np.float32 else 0


# elements of a parameter made on the writer's thread: a worker's hand-over cost more than the numbers (32,000
# linear(4) layers of 18 weights each: 2.6 s of a 7 s build waiting on the pool)
_INLINE = 4096


def param_arrays(g: Graph, seed: int, weights: dict | None, chunked: bool = False):
    """(name, array) in parameter order, generated on a few threads (numpy releases the GIL) within a
    bounded window of tasks. With `chunked`, a randomly initialized parameter comes as a `Chunked` whose
    blocks are generated ahead of the writer: memory stays a few MiB whatever the model's size, and one
    large parameter (an embedding) is still spread over all the threads. The caller consumes each
    `Chunked` before asking for the next parameter, and each block before asking for the next one: a block's
    buffer is then refilled with a later block (fresh 1 MiB arrays cost their page faults every time:
    GPT-2 small's 124M numbers took 1.6-1.9 s on one thread into new arrays, 1.1 s into reused ones)."""
    import os
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    free: deque = deque()  # CHUNK-sized float32 buffers whose blocks have been consumed

    def block(name: str, v: Value, k: int) -> np.ndarray:
        try:
            buf = free.pop()
        except IndexError:
            buf = np.empty(CHUNK, np.float32)
        out = buf[:min(CHUNK, math.prod(v.type.shape) - k * CHUNK)]
        fill_chunk(name, v.spec, seed, k, out)
        return out

    def release(piece: np.ndarray) -> None:
        free.append(piece.base)

    def tasks():
        for name, v in g.params.items():
            n = _streamable(v, weights) if chunked else 0
            if n:
                for k in range(n):
                    yield name, v, k, n
            else:
                yield name, v, None, 0

    def run(task):
        name, v, k, _ = task
        return _param_array(v, seed, weights) if k is None else block(name, v, k)

    workers = min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    pending = tasks()
    window: deque = deque()

    def submit() -> None:
        task = next(pending, None)
        if task is None:
            return
        if math.prod(task[1].type.shape) <= _INLINE:
            fut = None  # made by take(), on the caller's thread
        elif pool is None:
            fut: Future = Future()
            fut.set_result(run(task))
        else:
            fut = pool.submit(run, task)
        window.append((task, fut))

    def take():
        task, fut = window.popleft()
        submit()
        return task, run(task) if fut is None else fut.result()

    def rest(first: np.ndarray, n: int):
        piece = first
        yield piece
        for _ in range(n - 1):
            release(piece)  # the caller asked for the next block: it is done with this one
            piece = take()[1]
            yield piece
        release(piece)
    try:
        for _ in range(max(2, 3 * workers)):
            submit()
        while window:
            (name, v, k, n), value = take()
            if k is None:
                yield name, value
                continue
            pieces = rest(value, n)
            yield name, Chunked(tuple(v.type.shape), np.dtype(np.float32), pieces)
            for _ in pieces:  # whatever the caller left unread
                pass
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _intermediate_types(g: Graph, names: dict[int, str]) -> list:
    """The type of every IR value the graph computes, with its symbolic dims: ONNX's own inference loses a
    symbol at the first Shape/Range (positions, a reshape read from a shape) and onnxruntime then skips the
    fusions that compare shapes (Add + LayerNormalization -> SkipLayerNormalization on BERT). Dims that are
    not a plain symbol or an int (`2*T`, `(S+T)`) are left unnamed rather than guessed."""
    infos = []
    for node in g.nodes:
        for o in node.outputs:
            if g.is_output(o) or id(o) not in names:
                continue
            dims = [d if isinstance(d, int) else str(d) if is_symbol(d) else None for d in o.type.shape]
            infos.append(helper.make_tensor_value_info(names[id(o)], o.type.dtype.onnx, dims))
    return infos


RAW_DTYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
               np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.int64): TensorProto.INT64,
               np.dtype(np.int32): TensorProto.INT32}


def _add_initializer(graph, arr: np.ndarray, name: str) -> None:
    """Fill the initializer in place: numpy_helper.from_array + append would copy the bytes once more."""
    arr = resident(arr)  # a mapped file's bytes read from it: through the mapping a file cut short is SIGBUS
    code = RAW_DTYPES.get(arr.dtype)
    if code is None or arr.dtype.byteorder == ">":
        graph.initializer.append(numpy_helper.from_array(arr, name))
        return
    t = graph.initializer.add()
    t.name = name
    t.data_type = code
    t.dims.extend(arr.shape)
    t.raw_data = np.ascontiguousarray(arr).tobytes()


def lower_graph(g: Graph, *, opset: int, seed: int = 0, weights: dict | None = None, metadata: dict | None = None,
                with_weights: bool = True, params_as_inputs: bool = False, doc: str = "") -> LowerResult:
    """Build the ModelProto. `with_weights=False` leaves the parameters' initializers out: a skeleton that
    `archdsl build` streams them into, or, with `params_as_inputs`, a valid model that takes them as graph
    inputs after its own (torch.onnx.export's export_params=False)."""
    if opset < MIN_OPSET:
        raise ArchError(f"opset {opset} is not supported; archdsl lowers to opset {MIN_OPSET} or newer")
    e = Emitter(opset)
    names: dict[int, str] = {}
    for v in g.inputs:
        names[id(v)] = v.name
        e.note_dims(v.name, v.type.shape)
    initializers = []
    for name, v in g.params.items():
        names[id(v)] = name
    used = set(names.values()) | {oname for oname, _ in g.outputs}  # an output may be called const_0 too
    for i, v in enumerate(g.consts):
        cname = f"const_{i}"
        while cname in used:  # an input, an output or a free parameter may be called const_0
            cname = "_" + cname
        names[id(v)] = cname
        initializers.append(numpy_helper.from_array(v.data, cname))

    out_names = {}
    taken = set(names.values())
    for oname, v in g.outputs:
        if v.kind == "node" and id(v) not in out_names and oname not in taken:
            out_names[id(v)] = oname
            taken.add(oname)

    for node in g.nodes:
        loc = f"{Path(node.span.file).name}:{node.span.line}" if node.span else ""
        e.at(node.name, loc)
        outs = []
        for i, o in enumerate(node.outputs):
            n = out_names.get(id(o)) or (node.name if len(node.outputs) == 1 else f"{node.name}:{i}")
            if n in taken and out_names.get(id(o)) != n:
                n = f"{node.name}:{i}#{len(taken)}"
            taken.add(n)
            names[id(o)] = n
            outs.append(n)
        call = OpCall(tuple(v.type for v in node.inputs), tuple(o.type for o in node.outputs), node.attrs, node.name)
        before = len(e.nodes)
        try:
            node.opdef.lower(e, [names[id(v)] for v in node.inputs], outs, call)
        except ShapeError as err:
            raise err.with_span(node.span) from None
        produced = {o for n in e.nodes[before:] for o in n.output}
        missing = [o for o in outs if o not in produced]
        if missing:
            raise ArchError(f"internal: lowering of {node.op} did not produce {missing}", node.span)
        for n, o in zip(outs, node.outputs):
            e.note_dims(n, o.type.shape)

    outputs = []
    for oname, v in g.outputs:
        src = names[id(v)]
        if src != oname:
            e.at(oname, "")
            e.op("Identity", [src], outputs=[oname])
        outputs.append(value_info(oname, v.type))

    fed = [value_info(name, v.type) for name, v in g.params.items()] if params_as_inputs and not with_weights else []
    half = {names[id(o)] for node in g.nodes for o in node.outputs if id(o) in names and o.type.dtype.is_16bit}
    ranks = {names[id(v)]: v.type.rank for v in (*g.inputs, *g.params.values(), *(o for node in g.nodes
                                                                                   for o in node.outputs))
             if id(v) in names}
    ranks.update({t.name: len(t.dims) for t in (*initializers, *e.initializers)})
    e.nodes[:] = half_matmul_after_transpose(e.nodes, half, ranks, {o.name for o in outputs})
    e.nodes[:] = square_after_cast_mean(e.nodes, {t.name: t for t in (*initializers, *e.initializers)
                                                  if not t.dims})
    produced = {o for n in e.nodes for o in n.output}
    graph = helper.make_graph(
        e.nodes, g.name, [value_info(v.name, v.type) for v in g.inputs if v.uses or v not in g.implicit] + fed,
        outputs, doc_string=doc,
        value_info=[i for i in _intermediate_types(g, names) if i.name in produced])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="archdsl")
    # weights go straight into the model, one tensor at a time: make_graph/make_model copy every initializer
    # (three copies of a multi-GiB model at once)
    if with_weights:
        for name, arr in param_arrays(g, seed, weights):
            _add_initializer(model.graph, arr, name)
    read = {i for n in e.nodes for i in n.input} | {o.name for o in outputs}
    made = [t for t in e.initializers if t.name in read]  # a lowering's constant its chosen form left unread
    kept = [t for t in initializers if t.name in read]  # (square_after_cast_mean leaves a Pow's 2 unread)
    model.graph.initializer.extend(kept + made)  # (onnxruntime warns of each unread one at every load)
    model.ir_version = min(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]), onnx.IR_VERSION)
    model.producer_version = __version__
    meta = {"archdsl.version": __version__}
    meta.update(metadata or {})
    for k in sorted(meta):
        p = model.metadata_props.add()
        v = meta[k]
        p.key, p.value = k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, allow_nan=False)
    return LowerResult(model, names)


_ = TensorProto
