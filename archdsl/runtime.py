"""onnxruntime sessions: the newest opset it runs, provider choice (CUDA when present), timed runs."""

from __future__ import annotations

import functools
import math
import numbers
import os
import re
import statistics
import time
import zlib

import numpy as np
import onnx
from onnx import helper

from .diagnostics import ArchError, utf8
from .types import Sym, dim_symbols, formula_value

__all__ = ["cpu_fallback", "dim_conflict", "newest_opset", "ort_message", "providers", "session", "random_feeds",
           "run_timed", "input_specs"]


@functools.lru_cache(maxsize=1)
def newest_opset() -> int:
    """Probe, once per process, the newest default-domain opset this onnxruntime loads."""
    import onnxruntime as ort
    top = onnx.defs.onnx_opset_version()
    for opset in range(top, 16, -1):
        ops = [helper.make_opsetid("", opset)]
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])])
        m = helper.make_model(g, opset_imports=ops)
        m.ir_version = helper.find_min_ir_version_for(ops)
        try:
            ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            return opset
        except Exception:
            continue
    return 17


def providers(choice: str = "auto") -> list[str]:
    import onnxruntime as ort
    if choice not in ("auto", "cpu", "cuda"):  # "gpu" ran on the CPU without a word
        raise ArchError(f"provider must be auto, cpu or cuda, got {choice!r}")
    avail = ort.get_available_providers()
    if choice == "cpu":
        return ["CPUExecutionProvider"]
    if choice == "cuda":
        if "CUDAExecutionProvider" not in avail:
            raise ArchError("--provider cuda: CUDAExecutionProvider is not available in this onnxruntime build "
                            f"(it has {', '.join(avail)}; the CUDA build is the onnxruntime-gpu package)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in avail else []) + ["CPUExecutionProvider"]


def ort_message(e: Exception) -> str:
    """An onnxruntime exception's text on one line, without its "[ONNXRuntimeError] :" prefix."""
    return " ".join(str(e).replace("[ONNXRuntimeError] :", "").split())


MAX_THREADS = 256  # onnxruntime starts every thread it is given: 20,000 took minutes and 21 GB, then hung


def session(model, provider: str = "auto", threads: int | None = None, spin: bool = True, fed=()):
    """An InferenceSession from a ModelProto, bytes or a path. spin=False: its thread pool sleeps between runs
    (benchmarks that time it in turn with other work, which a spinning pool would slow). `fed`: initializers of
    a ModelProto's inputs that every run feeds (a train step's state), left out of the session's copy."""
    import onnxruntime as ort
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                or not 0 <= threads <= MAX_THREADS):  # "2" and 2.5: raw TypeErrors before
        raise ArchError(f"threads must be 0 (onnxruntime's default) to {MAX_THREADS}, got {threads!r}")
    if isinstance(model, (str, os.PathLike)) and not os.path.isfile(model):  # onnxruntime's NoSuchFile before
        raise ArchError(f"no such model file: {os.fspath(model)}" if not os.path.exists(model) else
                        f"{os.fspath(model)} is not a model file")
    so = ort.SessionOptions()
    so.log_severity_level = 4  # errors reach the caller as exceptions; no raw log line too
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if fed and isinstance(model, onnx.ModelProto):
        model = without_initializers(model, set(fed))
    src = (model.SerializeToString() if isinstance(model, onnx.ModelProto)
           else _path_or_bytes(str(model)) if not isinstance(model, bytes) else model)
    try:
        sess = ort.InferenceSession(src, sess_options=so, providers=providers(provider))
    except Exception as e:
        if type(e).__name__ != "InvalidProtobuf" or isinstance(model, onnx.ModelProto):
            raise  # a model that does not load: the caller says why (run: the node's line)
        what = "the bytes given are" if isinstance(model, bytes) else f"{os.fspath(model)} is"
        spec = not isinstance(model, bytes) and os.fspath(model).lower().endswith(".arch")  # session("m.arch")
        raise ArchError(f"{what} not an ONNX model" + (": it is a .arch spec; compile it first "  # (review116)
                                                     "(archdsl.compile_file(path))" if spec else "")) from None
    fallback = cpu_fallback(sess) if provider == "cuda" else None
    if fallback:
        raise ArchError(f"--provider cuda: {fallback}")
    return sess


def without_initializers(model: onnx.ModelProto, names: set) -> onnx.ModelProto:
    """The model less the named initializers, made field by field: a copy of the whole held the weights twice
    more while onnxruntime took its own (a train step's state, fed at every run, was held four times over: a
    1M x 64 embedding's Adam step peaked at 5.7 GB for 0.7 GiB of state: recsys hunt)."""
    out = onnx.ModelProto()
    for fd, value in model.ListFields():
        if fd.name != "graph":
            _copy_field(out, fd, value)
    for fd, value in model.graph.ListFields():
        if fd.name == "initializer":
            out.graph.initializer.extend(t for t in value if t.name not in names)
        else:
            _copy_field(out.graph, fd, value)
    return out


def state_bytes(compiled) -> dict[str, int]:
    """The train step's state in bytes, from the step model's initializers' sizes (their data is not read):
    all of it, its largest tensor, what the step updates (its outputs replace it) and the trained parameters."""
    info = compiled.info
    state = set(info.state_inputs)  # (a set built per initializer before: quadratic in the parameter count)
    sizes = {t.name: math.prod(t.dims) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
             for t in compiled.step_model.graph.initializer if t.name in state}
    kept = {n.output[0] for n in compiled.step_model.graph.node  # a frozen parameter's output is its input
            if n.op_type == "Identity" and info.state.get(n.output[0]) == n.input[0]}
    updated, trained = {i for o, i in info.state.items() if o not in kept}, set(info.params)
    return {"state": sum(sizes.values()), "largest": max(sizes.values(), default=0),
            "updated": sum(n for k, n in sizes.items() if k in updated),
            "trained": sum(n for k, n in sizes.items() if k in trained)}


def _copy_field(msg, fd, value) -> None:
    if fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED:  # (protobuf 7 has no label)
        getattr(msg, fd.name).extend(value)
    elif fd.type == fd.TYPE_MESSAGE:
        getattr(msg, fd.name).CopyFrom(value)
    else:
        setattr(msg, fd.name, value)


def _path_or_bytes(path: str):
    """onnxruntime opens a file by a UTF-8 name: one whose bytes are not UTF-8 (surrogate escapes here) was a
    pybind11 'incompatible constructor arguments' error. Such a model is read here and handed over as bytes,
    unless its weights lie beside it in files onnxruntime would look for by the model's own path."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    with open(path, "rb") as f:
        data = f.read()
    proto = onnx.load_model_from_string(data)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ArchError(f"onnxruntime opens models by UTF-8 file names, and {utf8(path)} is not one, its weights "
                        "in files beside it: rename the folder or file whose name is not UTF-8")
    return data


def cpu_fallback(sess) -> str | None:
    """Why a session asked to run on CUDA does not, else None: onnxruntime falls back to the CPU with only a
    warning (a build without CUDA, or one whose CUDA/cuDNN libraries are missing)."""
    p = sess.get_providers()[0]
    return None if p == "CUDAExecutionProvider" else (
        f"onnxruntime runs this model on {p}, not CUDAExecutionProvider (are the CUDA and cuDNN libraries it "
        "needs installed?)")


# onnxruntime's input types that its Python API takes as numpy arrays (not bfloat16: it has no numpy type
# there, and ml_dtypes' arrays are refused)
_NP = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
       "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
       "tensor(uint64)": np.uint64, "tensor(uint32)": np.uint32, "tensor(uint16)": np.uint16,
       "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
# every numeric tensor type: those numpy holds, and the narrow floats (run hands them over as an error of its own)
NUMERIC_TYPES = frozenset(_NP) | {"tensor(bfloat16)", "tensor(float8e4m3fn)", "tensor(float8e5m2)"}


# archdsl writes a formula dim as factors joined by '*' ((T+1), 2*B, B*(H//2)), each a number, a symbol or a
# parenthesized formula; any other dim_param (batch-size, "seq len" from another tool) is one name
_FACTOR = r"(?:\d+|[A-Za-z_]\w*|\(.*\))"
_FORMULA = re.compile(rf"\(.*\)|{_FACTOR}(?:\*{_FACTOR})+")


def is_name(d) -> bool:
    """A dim_param that is one symbol (T, batch-size), not a formula archdsl wrote for an input's dim
    ((T+1), 2*B)."""
    return isinstance(d, str) and bool(d) and not _FORMULA.fullmatch(d)


def dim_names(d) -> list[str]:
    """The symbols a dim_param is written in: T for T, (T+1) and 2*T; batch-size for batch-size."""
    if not isinstance(d, str) or not d:
        return []
    return [d] if is_name(d) else dim_symbols(Sym((f"({d})",)))


def formula_size(d: str, sizes: dict) -> int | None:
    """The size of a formula dim ((T+1), 2*B, ((H-1)//2+1)) at the sizes of its symbols (types' reading of the
    formulas archdsl writes); None where a symbol is unsized or the text is no such formula."""
    return formula_value(d, sizes)


def dim_at(d, sizes: dict) -> int | None:
    """An ONNX dim (a number, a symbol's name, or a formula archdsl wrote) at these sizes; None where unsized."""
    if isinstance(d, int):
        return d
    if not isinstance(d, str) or not d:
        return None
    return sizes.get(d) if is_name(d) else formula_size(d, sizes)


def solve_formula(d: str, size: int) -> tuple[str, int] | None:
    """The one symbol of a formula dim and the size that gives it `size` ((T+1) of 7: T=6; 2*B of 6: B=3),
    where the formula is linear in it; None otherwise."""
    names = set(dim_names(d))
    if is_name(d) or len(names) != 1:
        return None
    (name,) = names
    f0, f1 = formula_size(d, {name: 0}), formula_size(d, {name: 1})
    if f0 is None or f1 is None or f1 == f0 or (size - f0) % (f1 - f0):
        return None
    v = (size - f0) // (f1 - f0)
    return (name, v) if v >= 1 and formula_size(d, {name: v}) == size else None


def batch_symbols(shapes) -> set[str]:
    """The symbols the batch sizes, of inputs declared with these shapes (in the model's order): those first
    met as a first dim, and those met only inside formulas whose first formula is a first dim (2*B)."""
    first: dict[str, int] = {}
    for shape in shapes:
        for i, d in enumerate(shape):
            if is_name(d):
                first.setdefault(d, i)
    for shape in shapes:
        for i, d in enumerate(shape):
            if isinstance(d, str) and d and not is_name(d):
                for name in dim_names(d):
                    if name not in first:
                        first[name] = i
    return {name for name, i in first.items() if i == 0}


def input_specs(sess, batch: int = 1, dims: dict | None = None) -> list[tuple[str, tuple[int, ...], type]]:
    """Concrete shapes for every input: a symbolic dim comes from `dims`, else it is the batch where
    batch_symbols says so, else 8; a name keeps the size it got first (inputs that share a dim name agree). A
    dim an input was declared with as a formula of symbols ((T+1), 2*B: torch's per-head attention mask) is
    that formula at their sizes."""
    shapes = [inp.shape for inp in sess.get_inputs()]
    batched = batch_symbols(shapes)
    dims = dict(dims or {})
    for shape in shapes:
        for d in shape:
            for name in dim_names(d):
                dims.setdefault(name, batch if name in batched else 8)
    out = []
    for inp in sess.get_inputs():
        shape = []
        for i, d in enumerate(inp.shape):
            if isinstance(d, int):
                shape.append(d)
            elif is_name(d):
                shape.append(int(dims[d]))
            else:  # a formula, or a dim without a name (a model from another tool): None or ""
                n = formula_size(d, dims) if d else None
                shape.append(n if n is not None and n >= 0 else batch if i == 0 else 8)
        if inp.type not in _NP:
            kinds = ", ".join(t[7:-1] for t in _NP)
            if "float8" in inp.type or "bfloat16" in inp.type:
                raise ArchError(f"input '{inp.name}' is {inp.type}, which cannot be fed from Python (numpy has no "
                                f"such type; onnxruntime's Python API takes {kinds})")
            raise ArchError(f"input '{inp.name}' is {inp.type}, which archdsl run does not draw or load (it feeds "
                            f"tensors of {kinds})")
        out.append((inp.name, tuple(shape), _NP[inp.type]))
    return out


def _free_memory() -> int | None:
    """Bytes of memory available (Linux's MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def too_large(model, sizes: dict) -> str | None:
    """Why a run at these sizes cannot fit in the memory free, or None. A node's inputs and outputs are held at
    once, so the largest such sum, over the tensors whose shapes the graph declares at `sizes` (inputs,
    outputs and value_info, which archdsl writes for every intermediate; not the weights, which the model and
    the session hold already, so the memory free is net of them), is memory the run needs at least. `model`
    is a ModelProto or a path (its graph read without external weights; a file past 64 MiB, whose inline
    weights take ~0.5 s per 500 MB to parse, only where the sizes multiply to 65536 or more)."""
    free = _free_memory()
    if free is None:
        return None
    if not isinstance(model, onnx.ModelProto):
        try:
            if os.path.getsize(model) > 64 << 20 and math.prod(sizes.values()) < 1 << 16:
                return None
            model = onnx.load(str(model), load_external_data=False)
        except Exception:  # noqa: BLE001 - onnxruntime loaded it; what onnx cannot read is not checked here
            return None
    g = model.graph
    held = {t.name for t in g.initializer}  # in memory already: the free figure has them taken off
    nbytes = {}
    for v in [*g.input, *g.output, *g.value_info]:
        if v.name in held:
            continue
        t = v.type.tensor_type
        if not t.HasField("shape") or not t.elem_type:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else sizes.get(d.dim_param) for d in t.shape.dim]
        if all(d is not None for d in dims):
            nbytes[v.name] = math.prod(dims) * _itemsize(t.elem_type)
    worst = max(((sum(nbytes.get(n, 0) for n in {*node.input, *node.output} if n), node) for node in g.node),
                key=lambda p: p[0], default=(0, None))
    if worst[0] <= free:
        return None
    need, node = worst
    what = node.name or node.op_type
    return (f"at these sizes {node.op_type} '{what}' holds {_bytes(need)} of inputs and outputs at once, "
            f"more than the {_bytes(free)} of memory free: give smaller sizes")


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.0f} {unit}" if n >= 1000 * size else f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _itemsize(elem_type: int) -> int:
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError, ValueError):  # a string or an unknown type: not counted
        return 0


def random_feeds(sess, batch: int = 1, dims: dict | None = None, seed: int = 0, high: dict | None = None,
                 skip: set | None = None) -> dict:
    """Random data per input but those in `skip`: N(0, 1) floats; integers in [0, high) where `high` says (or
    [low, high) where it gives a pair), else [0, 2). Each input draws from its own stream (seed, crc32(name)):
    `run --input` giving one input leaves the others' values as they were. Inputs larger than the memory free
    are a diagnostic before any is drawn: --dim T=2147483648 had the kernel's OOM killer end the process."""
    for what, n in (("batch", batch), *((f"dims['{k}']", v) for k, v in (dims or {}).items())):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:  # -1: numpy's ValueError
            raise ArchError(f"{what} takes a whole number of 0 or more, got {n!r}")
    specs = [s for s in input_specs(sess, batch, dims) if s[0] not in (skip or ())]
    sizes = {name: math.prod(shape) * np.dtype(dt).itemsize for name, shape, dt in specs}
    for name, shape, _ in specs:
        if sizes[name] >= 1 << 62:  # numpy's ValueError, not a MemoryError
            raise ArchError(f"input '{name}' of shape {list(shape)} would take {sizes[name]:.3g} bytes: more than "
                            "any machine has")
    free, total = _free_memory(), sum(sizes.values())
    if free is not None and total > free:
        name, shape, _ = max(specs, key=lambda s: sizes[s[0]])
        raise ArchError(f"the random inputs would take {_bytes(total)} ('{name}' of shape {list(shape)} the "
                        f"most), more than the {_bytes(free)} of memory free: give smaller sizes")
    feeds = {}
    for name, shape, dt in specs:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if np.issubdtype(dt, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dt)
        elif dt is np.bool_:
            feeds[name] = rng.integers(0, 2, shape).astype(bool)
        else:  # a random call's seed: any 31-bit number (ids of 0 and 1 stay in range for every table)
            top = (high or {}).get(name, 2**31 if name == "seed" and not shape else 2)  # ops.random.SEED_INPUT
            low, top = top if isinstance(top, tuple) else (0, top)
            feeds[name] = rng.integers(low, top, shape).astype(dt)
    return feeds


def dim_conflict(shapes: dict[str, list], arrays: dict[str, np.ndarray], skip_first: bool = False) -> str | None:
    """Where inputs that share a symbolic dim name were given different sizes for it, else None. onnxruntime
    does not check this, and a compiled graph relies on it (the shape checker treats a name as one length; one
    causal mask serves every layer of the same lengths). `shapes`: input name -> declared dims (int, or the
    name of a symbolic dim); `skip_first`: leave dim 0 alone (the examples axis of training data)."""
    seen: dict[str, tuple[str, int]] = {}
    formulas = []
    for name, dims in shapes.items():
        a = arrays.get(name)
        if a is None:
            continue
        for i, (d, n) in enumerate(zip(dims, np.shape(a))):
            if not isinstance(d, str) or not d or (skip_first and i == 0):
                continue
            if not is_name(d):  # (T+1): checked below against T's size, where some input gives it
                formulas.append((d, n, name))
                continue
            first = seen.setdefault(d, (name, n))
            if first[1] != n:
                return f"dim '{d}' is {first[1]} in '{first[0]}' but {n} in '{name}'"
    sizes = {d: n for d, (_, n) in seen.items()}
    solved: dict[str, tuple[str, str, int]] = {}  # a symbol met only in formulas: what each given input says
    for d, n, name in formulas:
        got = solve_formula(d, n)
        if got is None or got[0] in sizes:
            continue
        first = solved.setdefault(got[0], (name, d, got[1]))
        if first[2] != got[1]:
            return (f"dim '{first[1]}' of '{first[0]}' makes {got[0]}={first[2]}, but dim '{d}' of '{name}' makes "
                    f"{got[0]}={got[1]}")
    sizes.update({k: v[2] for k, v in solved.items()})
    for d, n, name in formulas:
        want = formula_size(d, sizes)
        if want is not None and want != n:
            at = ", ".join(f"{k}={sizes[k]}" for k in dim_names(d))
            return f"dim '{d}' of '{name}' is {n}, but {want} at {at}"
    return None


def run_timed(sess, feeds: dict, repeat: int = 10, warmup: int = 1):
    """Outputs of the last run and the median latency in milliseconds."""
    outs = None
    for _ in range(warmup):
        outs = sess.run(None, feeds)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        outs = sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return outs, statistics.median(times)
