"""`archdsl run`: a spec or a compiled model on onnxruntime, with given or random inputs, and its latency."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .. import driver, files
from ..diagnostics import ArchError
from ..interrupts import interruption, was_interrupted
from ..lower.weights import narrow_float, npy_bfloat16, npz_member, numpy_reason, raw_bytes, write_npz
from ..types import dim_size
from .commands import (
    announce,
    check_dim_names,
    dim_flags,
    empty_name,
    load_spec,
    opt_options,
    output_path,
    pass_flags_error,
    read_files,
    report_compile,
)

__all__ = ["cmd_run"]


def _check_input(sess, name: str, arr: np.ndarray, path: str) -> np.ndarray:
    """A --input array against the model's input: rank and every fixed dim, and its dtype, to which numbers
    are cast where every value fits, as training data is (numpy's float64 for a float32 input; never
    floats to integers)."""
    from ..runtime import input_specs
    from ..training.data import cast_values, round_trips
    meta = next(i for i in sess.get_inputs() if i.name == name)
    (_, _, want_dt), = [s for s in input_specs(sess) if s[0] == name]
    want = np.dtype(want_dt)
    dims = ", ".join(str(d) for d in meta.shape)
    held = arr.dtype
    if narrow_float(held) and held != want:  # bfloat16 (ml_dtypes'): exact in float32, then cast as others are
        arr = arr.astype(np.float32)
    castable = arr.dtype.kind in "biuf" and want.kind in "biuf" and not (want.kind in "iu" and arr.dtype.kind in "fb")
    # (bool ids, as floats, are refused, as training data's are)
    fits = arr.ndim == len(meta.shape) and all(not isinstance(d, int) or d == n for d, n in zip(meta.shape, arr.shape))
    if (arr.dtype != want and not castable) or not fits:
        raw = raw_bytes(held)
        whole = want.kind in "iu" and arr.dtype.kind == "f" and fits and round_trips(arr, want)
        batch = bool(meta.shape) and (not isinstance(meta.shape[0], int) or meta.shape[0] == 1)  # a symbolic or 1
        one = batch and arr.ndim == len(meta.shape) - 1 and all(not isinstance(d, int) or d == n  # first dim: one
                                                                for d, n in zip(meta.shape[1:], arr.shape))  # example
        raise ArchError(f"--input {name}: the model takes {want.name}[{dims}], "
                        f"{path} holds {held.name}{list(arr.shape)}{f': {raw}' if raw else ''}"
                        + (f"; its values are whole numbers: store them .astype(np.{want.name})" if whole else "")
                        + ("; one example? store it with the batch dim, as array[None]" if one else ""))
    return arr if arr.dtype == want else cast_values(f"--input {name}={path}", name, arr, want)


def _spec_only_flags(args) -> list[str]:
    """Flags that shape a compile, given with an .onnx file they cannot change (they were ignored before)."""
    flags = [("-D", args.defines), ("-I", args.include), ("--model", args.model), ("--weights", args.weights),
             ("-O", args.opt_level is not None), ("--disable-pass", args.disabled_passes), ("--report", args.report)]
    return [flag for flag, given in flags if given]


def _load_input(name: str, path: str) -> np.ndarray:
    """A .npy array, or from an .npz the array called `name` (or its only array), in native byte order (a
    big-endian float32 file was refused as 'holds float32' against 'takes float32')."""
    arr = _read_input(name, path)
    return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr


def _read_input(name: str, path: str) -> np.ndarray:
    files.refuse_special(path, f"--input {name}: cannot read {path}")  # a FIFO: numpy also wanted to seek it
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - missing, corrupt (BadZipFile) or foreign
        raise ArchError(f"--input {name}: cannot read {path}: {numpy_reason(e)}") from None
    if isinstance(loaded, np.ndarray):
        return npy_bfloat16(loaded)
    with loaded:
        names = list(loaded.files)
        saved = f"input:{name}"  # what `run --save` wrote
        pick = name if name in names else saved if saved in names else names[0] if len(names) == 1 else None
        if pick is None:
            raise ArchError(f"--input {name}: {path} holds {len(names)} arrays "
                            f"({', '.join(names) or 'none'}) and none is called '{name}'")
        try:
            return npz_member(loaded, pick)
        except Exception as e:  # noqa: BLE001 - a corrupt member, or an object array
            raise ArchError(f"--input {name}: cannot read '{pick}' from {path}: {numpy_reason(e, member=True)}") \
                from None


def cmd_run(args, sources) -> int:
    from .. import runtime
    asked_batch = args.batch is not None
    args.batch = args.batch if asked_batch else 1
    if args.batch < 1 or args.repeat < 1:
        print("archdsl run: error: --batch and --repeat must be at least 1", file=sys.stderr)
        return 2
    from .train import settings_error
    if (status := settings_error(args, "run")) is not None:
        return status
    if (status := pass_flags_error(args, "run")) is not None:
        return status
    if empty_name(args, "run", ("--weights", "weights"), ("--save", "save")):
        return 2
    bad = next((item for item in args.input if not all(item.partition("=")[::2])), None)
    if bad is not None:  # a malformed flag, as --dim T: a usage error before any work (it exited 1)
        print(f"archdsl run: error: --input expects NAME=FILE.npy or NAME=FILE.npz, got '{bad}'", file=sys.stderr)
        return 2
    names = [item.partition("=")[0] for item in args.input]
    twice = next((k for i, k in enumerate(names) if k in names[:i]), None)
    if twice is not None:
        raise ArchError(f"--input {twice} is given twice")
    dims = dim_flags(args, "run")  # before any work too (after the compile and the session, it took seconds)
    if dims is None:
        return 2
    save = output_path(args.save, "--save", "outputs.npz")
    if save is not None and save.suffix.lower() != ".npz":
        print(f"archdsl run: error: --save {args.save}: the outputs are written as an .npz; give that suffix",
              file=sys.stderr)
        return 2
    if save is not None:  # before the run, not after it: --save over an input, or where nothing can be written
        files.refuse_overwriting({"--save": save}, read_files(args, sources, **{
            f"--input {k}": f for k, _, f in (i.partition("=") for i in args.input)}))
        files.probe_writable(save)
    path = Path(args.file)
    if path.suffix.lower() == ".onnx":
        spec_only = _spec_only_flags(args)
        if spec_only:
            print(f"archdsl run: error: {', '.join(spec_only)} {'applies' if len(spec_only) == 1 else 'apply'} to "
                  f"a .arch spec; {path.name} is already compiled", file=sys.stderr)
            return 2
        try:
            found = path.is_file()
        except OSError as e:  # a name over 255 bytes
            raise ArchError(f"cannot read {path}: {e.strerror or e}") from None
        if not found:
            raise ArchError(f"{path} is a directory, not a model" if path.is_dir() else
                            f"{path} is not a regular file (a pipe or a device), not a model" if path.exists() else
                            f"no such file: {path}")
        model = files.resolved(path)  # a link's target: onnxruntime finds external data beside the model it
        name = path.stem                # opened, and refuses a path out of that folder (../real/m.onnx.data)
        mod = None
    else:
        mod = load_spec(args, sources)
        seed = 0 if args.weights else args.seed  # --seed then draws the random inputs alone (review119)
        compiled = driver.build(mod, args.model, driver.CompileOptions(seed=seed, weights=args.weights,
                                                                        search_path=tuple(args.include),
                                                                        **opt_options(args)), sources)
        model = compiled.model
        name = compiled.graph.name
    try:
        sess = runtime.session(model, args.provider, args.threads)
    except ArchError:  # the provider asked for is not there
        raise
    except Exception as e:  # noqa: BLE001 - e.g. no kernel for a dtype on this provider
        if was_interrupted():  # Ctrl-C or SIGTERM in onnxruntime's first import came out as ImportError
            raise interruption() from e
        message = runtime.ort_message(e)
        raise ArchError(f"onnxruntime cannot load the model: {message}{_no_kernel_hint(message)}",
                        sources.node_line(message)) from None
    odd = next((o for o in sess.get_outputs() if o.type not in runtime.NUMERIC_TYPES), None)
    if odd is not None:  # a sequence or a string tensor: no shape and statistics to print (an internal error)
        raise ArchError(f"output '{odd.name}' is {odd.type}: archdsl run prints and saves numeric tensors only; "
                        "run the model with onnxruntime itself")
    declared = {i.name: list(i.shape) for i in sess.get_inputs()}
    if asked_batch:
        _batch_applies(args.batch, declared)
    symbols = list(dict.fromkeys(n for shape in declared.values() for d in shape for n in runtime.dim_names(d)))
    check_dim_names(dims, symbols)
    given, given_from = {}, {}
    for item in args.input:
        k, _, f = item.partition("=")  # NAME=FILE, each name once: checked before any work
        if k not in declared:
            raise ArchError(f"--input: the model has no input '{k}' (inputs: {', '.join(declared)})")
        given[k] = _check_input(sess, k, _load_input(k, f), f)
        given_from[k] = f"--input {k}={f}"
    clash = runtime.dim_conflict(declared, given)  # before random inputs take sizes from the given ones
    if clash:
        raise ArchError(f"--input: {clash}; inputs that share a dim name must agree on its size")
    # the random inputs take their symbolic dims from the given ones (x of length 5 -> a random y of length 5)
    from_given = {d: n for k, a in given.items() for d, n in zip(declared[k], a.shape) if runtime.is_name(d)}
    for k, a in given.items():  # (T+1) of 7 in a given input: T=6 for the rest, where nothing else sizes T
        for d, n in zip(declared[k], a.shape):
            solved = runtime.solve_formula(d, n)
            if solved and solved[0] not in from_given and solved[0] not in dims:
                from_given[solved[0]] = solved[1]
    for sym, n in dims.items():  # a given input's size would win silently
        if from_given.get(sym, n) != n:
            holder = _holder(sym, given, declared)
            raise ArchError(f"--dim {sym}={n}: --input {holder} has {from_given[sym]} for dim '{sym}' (drop --dim, "
                            "or give an input of that size)")
    if asked_batch:
        _check_batch(args.batch, declared, dims, from_given, given)
    batched = runtime.batch_symbols(declared.values()) if asked_batch else set()
    _unsolved(given, declared, {*from_given, *dims, *batched})
    high: dict = {}  # input -> the top of its random integers, or (low, top)
    general = None
    if mod is not None:  # embedding ids: random ones within the table, given ones checked against it
        from ..elaborate import elaborate_model
        from ..ir.int_inputs import draw_limits
        from ..training.data import check_ctc_inputs, check_index_inputs, check_label_inputs
        general = elaborate_model(mod, name)
        high = draw_limits(general)  # labels within the classes, ids within the rows: fit every reading
        for k, a in given.items():
            check_index_inputs(given_from[k], {k: a}, general)
            check_label_inputs(given_from[k], {k: a}, general)
        check_ctc_inputs(", ".join(given_from.values()), given, general)  # lengths beside their targets
    planned = {d: n for k, shape, _ in runtime.input_specs(sess, args.batch, {**from_given, **dims})
               for d, n in zip(declared[k], shape) if runtime.is_name(d)}
    if mod is not None:  # before any input is drawn: --dim T=2147483648 is a diagnostic, not the OOM killer
        check_spec_at(mod, name, planned, "this run", general)
        report_compile(args, mod, compiled, planned)  # the FLOPs at this run's sizes (--batch, --dim, --input)
    problem = runtime.too_large(model, planned)
    if problem:
        shown = ", ".join(f"{d}={n}" for d, n in planned.items())
        raise ArchError(f"{problem} (the sizes of this run: {shown})", sources.node_line(problem))
    if mod is None:  # an .onnx archdsl built says what its integer inputs hold
        ranges, ignored, drawn = _recorded_ranges(sess, planned)
        high.update({**ranges, **drawn})
        _check_recorded(given, given_from, ranges, ignored)
    if general is not None:  # an lstm's lengths=: 1..T at this run's T, given (checked) or drawn
        from ..training.data import check_length_inputs, length_limits
        check_length_inputs(", ".join(given_from.values()), given, general, planned)
        for k, (steps, _, _) in length_limits(general, given, planned).items():
            if steps:
                high[k] = (1, steps + 1)
        high.update(_run_time_rows(general, planned, high))
    feeds = runtime.random_feeds(sess, args.batch, {**from_given, **dims}, args.seed, high=high, skip=set(given))
    feeds.update(given)
    empty = [k for k, a in feeds.items() if 0 in np.shape(a)]
    if empty and (into := _into_an_rnn(model, empty)):
        raise ArchError(f"--input {into}: an array with a dim of size 0 ({list(np.shape(feeds[into]))}), which reaches "
                        "an LSTM or GRU, and onnxruntime (1.32) ends the process on one given an empty input")
    clash = runtime.dim_conflict(declared, feeds)
    if clash:
        raise ArchError(f"--input: {clash}; inputs that share a dim name must agree on its size")
    sizes = {d: n for k, a in feeds.items() for d, n in zip(declared[k], np.shape(a)) if runtime.is_name(d)}
    try:
        outs, ms = runtime.run_timed(sess, feeds, args.repeat)
    except Exception as e:  # noqa: BLE001 - e.g. inputs whose symbolic dims disagree
        message = runtime.ort_message(e)
        narrow = [o.name for o in sess.get_outputs() if "bfloat16" in o.type or "float8" in o.type]
        if narrow and "Numpy" in message:  # the run succeeded; its output has no numpy type to arrive in
            raise ArchError(f"output '{narrow[0]}' is {next(o.type for o in sess.get_outputs() if o.name == narrow[0])}"
                            ", which onnxruntime's Python API cannot hand over (numpy has no such type): end the "
                            "spec with cast(..., \"float32\") to run it here; other runtimes take the model as it is"
                            ) from None
        raise ArchError(f"onnxruntime could not run the model: {message}", sources.node_line(message)) from None
    _check_declared_shapes(sess, outs, sizes)
    print(f"{name} on {sess.get_providers()[0]}")
    for meta, arr in zip(sess.get_outputs(), outs):
        a = np.asarray(arr, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the std of an output holding inf: nan
            stats = f"mean {a.mean():.4g}  std {a.std():.4g}  min {a.min():.4g}  max {a.max():.4g}" if a.size \
                else "empty"
        print(f"  {meta.name}: {list(arr.shape)} {arr.dtype}  {stats}")
    print(f"median latency: {ms:.3f} ms over {args.repeat} run{'s' if args.repeat != 1 else ''}")
    if save is not None:
        _save(save, args, sources, {m.name: a for m, a in zip(sess.get_outputs(), outs)}, feeds)
    return 0


def _into_an_rnn(model, names: list[str]) -> str | None:
    """The first of these inputs that reaches an ONNX LSTM, GRU or RNN (the model a ModelProto, or a path: read
    without its external weights)."""
    import onnx
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    for name in names:
        reached = {name}
        for n in proto.graph.node:  # in order: ONNX's nodes are sorted so that each follows its inputs
            if reached.intersection(n.input):
                if n.op_type in ("LSTM", "GRU", "RNN"):
                    return name
                reached.update(n.output)
    return None


def _check_recorded(given: dict, given_from: dict, ranges: dict, ignored: dict) -> None:
    """Given integers outside the range the model records, refused as for its spec: ONNX's Gather wraps a
    negative id round to a row from the end, where torch's embedding refuses it. Labels may hold the
    ignore_index the model records."""
    for k, (low, high) in ((k, r) for k, r in ranges.items() if k in given):
        a = np.asarray(given[k])
        if a.dtype.kind not in "iu" or not a.size:
            continue
        bad = ((a < low) | (a >= high)) & (a != ignored[k] if k in ignored else True)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ArchError(f"{given_from[k]}: '{k}'{list(at)} is {a[at]}, outside {low}..{high - 1}, the range the "
                            f"model records for it ({int(bad.sum())} out of range)")


def _run_time_rows(graph, sizes: dict, high: dict) -> dict:
    """Indices along a symbolic dim (a GNN's edge_index[0] into its N nodes) drawn below that dim's size in
    this run, the fewest any reading has (0s and 1s failed in onnxruntime at N = 1: gnn hunt)."""
    from .. import runtime
    from ..ir.int_inputs import index_readings
    fewest: dict = {}
    for name, _, n, _, _ in index_readings(graph, drawing=True):
        size = n if isinstance(n, int) else runtime.dim_at(str(n), sizes)
        if fewest.get(name, 1) is not None and not isinstance(high.get(name), tuple):  # (lengths: their own)
            fewest[name] = None if size is None or size < 1 else min(size, fewest.get(name, size))
    return {k: min(n, high.get(k, n)) for k, n in fewest.items() if n is not None}  # below every reading's size


def _recorded_ranges(sess, sizes: dict) -> tuple[dict, dict, dict]:
    """The random integers' ranges an .onnx records (driver's archdsl.int_inputs): ids and labels [low,
    high), lengths 1..the fewest steps at this run's sizes (of the layers whose steps are known, as for a
    spec); the labels' ignore_index, by input; and ids to draw below the fewest rows at this run's sizes, not
    checked (a GNN's edge list into its N nodes, columns of several tables). A model from elsewhere records
    none: 0 or 1; an entry that does not read as archdsl writes them is passed over."""
    import json

    from .. import runtime
    try:
        recorded = json.loads(sess.get_modelmeta().custom_metadata_map.get("archdsl.int_inputs") or "{}")
    except ValueError:
        return {}, {}, {}
    whole = lambda v: type(v) is int and 0 <= v < 1 << 62  # noqa: E731 - not a bool, not past int64
    out, ignored, drawn = {}, {}, {}
    for name, r in recorded.items() if isinstance(recorded, dict) else ():
        if not isinstance(r, dict):
            continue
        low, high, steps, rows = r.get("low", 0), r.get("high"), r.get("steps"), r.get("rows")

        def fewest(dims):  # at this run's sizes
            known = [n for d in dims if (whole(d) or isinstance(d, str)) and (n := runtime.dim_at(d, sizes))
                     is not None] if isinstance(dims, list) else []
            return min(known) if known and 1 <= min(known) < 1 << 62 else None
        if whole(low) and whole(high) and low < high:
            out[name] = (low, high)
            if type(r.get("ignore")) is int and -1 << 63 <= r["ignore"] < 1 << 63:
                ignored[name] = r["ignore"]
        elif (n := fewest(steps)) is not None:  # lengths 1..steps
            out[name] = (1, n + 1)
        if (n := fewest(rows)) is not None:  # ids 0..rows at this run's sizes, drawn (not checked)
            drawn[name] = (out[name][0], min(out[name][1], n)) if name in out else n
    return out, ignored, drawn


def _save(out: Path, args, sources, outputs: dict, feeds: dict) -> None:
    """The outputs by name and the inputs under input:NAME, written atomically (an output named like an
    input keeps both)."""
    ins = read_files(args, sources, **{f"--input {k}": f for k, _, f in (i.partition("=") for i in args.input)})
    files.refuse_overwriting({"--save": out}, ins)
    arrays = {**{f"input:{k}": np.asarray(v) for k, v in feeds.items()}, **outputs}
    taken = [k for k in outputs if k in (f"input:{i}" for i in feeds)]
    if taken:  # a model made elsewhere: the output would silently stand in for the input fed
        raise ArchError(f"--save: the model has an output named {taken[0]!r}, the name --save gives the input "
                        f"{taken[0][len('input:'):]!r} it fed; one file cannot hold both under that name")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write_npz(f, arrays)
    files.atomic_write(out, write)
    announce(f"wrote {out} ({len(outputs)} output{'s' if len(outputs) != 1 else ''}, {len(feeds)} "
             f"input{'s' if len(feeds) != 1 else ''})", out)


def _first_met(declared: dict) -> dict[str, tuple[str, int]]:
    """Each symbol of the inputs' dims -> the input and the position where it is first met (a symbol first met
    as a first dim is the batch, as runtime.input_specs takes it)."""
    from .. import runtime
    first: dict[str, tuple[str, int]] = {}
    for k, shape in declared.items():
        for i, d in enumerate(shape):
            if runtime.is_name(d):
                first.setdefault(d, (k, i))
    return first


def _holder(sym: str, given: dict, declared: dict) -> str:
    """The given input whose dims name `sym` (T itself, or in a formula such as (T+1))."""
    from .. import runtime
    return next(k for k in given if any(sym in runtime.dim_names(d) for d in declared[k]))


def _batch_applies(batch: int, declared: dict) -> None:
    """--batch sizes the symbols runtime.batch_symbols names, or a first dim with no name (a model from another
    tool): say so where there is none, rather than ignore it."""
    from .. import runtime
    if runtime.batch_symbols(declared.values()) or any(shape and shape[0] in (None, "")
                                                       for shape in declared.values()):
        return
    first = _first_met(declared)
    for k, shape in declared.items():
        if shape and isinstance(shape[0], str):  # a name, or a formula of names, met first elsewhere
            sym = next(n for n in runtime.dim_names(shape[0]) if n in first)
            at, i = first[sym]
            what = f"dim '{sym}'" if shape[0] == sym else f"the first dim of '{k}', {shape[0]}, is a formula of " \
                f"'{sym}', which"
            raise ArchError(f"--batch {batch}: {what} is first met as dim {i} of '{at}', so no dim is the batch; "
                            f"size it with --dim {sym}={batch}")
    shown = ", ".join(f"{k}: {_dims(shape)}" for k, shape in declared.items())
    raise ArchError(f"--batch {batch}: " + (f"no input of the model has a symbolic first dim ({shown})"
                                            if declared else "the model has no inputs"))


def _check_batch(batch: int, declared: dict, dims: dict, from_given: dict, given: dict) -> None:
    """--batch sizes the batch's symbols (runtime.batch_symbols, as runtime.input_specs does); a --dim or a given
    input that sizes one of them otherwise would win silently."""
    from .. import runtime
    syms = sorted(runtime.batch_symbols(declared.values()))
    for sym in syms:
        if dims.get(sym, batch) != batch:
            others = [s for s in syms if s != sym and s not in dims]
            both = f"--batch sizes every symbolic first dim ({', '.join(syms)}): drop it and give each its own, " \
                f"{' '.join(f'--dim {s}={batch}' for s in others)} --dim {sym}={dims[sym]}" if others else \
                f"the batch is dim '{sym}'"  # two first dims (B, and N for a flat list of ids): recsys hunt
            raise ArchError(f"--batch {batch} and --dim {sym}={dims[sym]} disagree ({both})")
        if from_given.get(sym, batch) != batch:
            holder = _holder(sym, given, declared)
            raise ArchError(f"--batch {batch}: --input {holder} has {from_given[sym]} for dim '{sym}' (drop --batch, "
                            "or give an input of that batch)")


def _unsolved(given: dict, declared: dict, sized: set) -> None:
    """A given input's formula dim whose symbols nothing else sizes and which archdsl cannot solve them from:
    say so, rather than compare it with the formula at default sizes (2*B of 7 rows 'but 2 at B=1')."""
    from .. import runtime
    for k, a in given.items():
        for d, n in zip(declared[k], a.shape):
            if not isinstance(d, str) or not d or runtime.is_name(d):
                continue
            free = [s for s in runtime.dim_names(d) if s not in sized]
            if not free:
                continue
            at = [runtime.formula_size(d, {free[0]: v}) for v in (0, 1, 2)] if len(free) == 1 else None
            if at and None not in at and at[1] - at[0] == at[2] - at[1] != 0:  # linear in it: no whole value fits
                raise ArchError(f"--input {k}: dim '{d}' is {n}, which no whole {free[0]} gives")
            raise ArchError(f"--input {k}: dim '{d}' is {n}; archdsl solves a dim for its symbol only where the "
                            f"formula is linear in one: give {' '.join(f'--dim {s}=N' for s in free)}")


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None and d != "" else "?" for d in shape) + "]"


def _at(sizes: dict) -> str:
    """The run's sizes of the symbolic dims, as messages show them: B=1, T=2."""
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def _check_declared_shapes(sess, outs, sizes: dict) -> None:
    """An output whose fixed dim came out another size: the model computed past what its inputs give at these
    sizes (x[:, -3:] is typed 3 long, and is 2 long when T is 2), and whatever reads it trusts the declared
    shape. An output of unknown rank (onnxruntime shows it as []) is not checked."""
    from .. import runtime
    at = f" at {_at(sizes)}" if sizes else ""

    def fits(w, g) -> bool:  # a number, or a formula at the run's sizes ((T-5) is -2 at T=3, and came out 0)
        n = runtime.dim_at(w, sizes) if not runtime.is_name(w) else None
        return n is None or n == g

    for meta, arr in zip(sess.get_outputs(), outs):
        want, got = meta.shape, list(np.shape(arr))
        if not want or (len(want) == len(got) and all(fits(w, g) for w, g in zip(want, got))):
            continue
        raise ArchError(f"output '{meta.name}' came out {_dims(got)}{at}, but the model declares {_dims(want)}: it "
                        f"reads past the end of an input at these sizes (a slice such as x[:, -3:] takes a dim at "
                        f"least 3 long), or an upsample by a fractional scale_factor over a symbolic size came out "
                        f"one longer in onnxruntime's float32 arithmetic (REFERENCE, upsample)")


def _no_kernel_hint(message: str) -> str:
    """What to do about a kernel onnxruntime lacks (float64 Erf, bfloat16 Conv): the message names the op and
    the node, whose name is empty where onnxruntime made it itself (expanding a Gelu, a HardSwish)."""
    m = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", message)
    if m is None:
        return ""
    made = " (a node onnxruntime made from the model's own, expanding or fusing them)" if not m.group(3) else ""
    return (f"{made}; onnxruntime here has no {m.group(1)} kernel for this model's types: grammar/REFERENCE.md "
            "lists the float64 and bfloat16 ops its CPU provider lacks; cast(x, \"float32\") before them, or run "
            "the model on a runtime that has them")


def check_spec_at(mod, name: str, sizes: dict, whose: str, general=None) -> None:
    """The spec elaborated at the sizes of a run or of a data file: its asserts on T held for a symbolic T
    (gpt2's n_positions), a kernel wider than a 3x3 input, a slice past the end. onnxruntime would fail inside
    a node, or compute past what the spec allows. `general`: the spec at its own sizes, where the caller has it."""
    from ..elaborate import elaborate_model
    if sizes:
        general = general or elaborate_model(mod, name)
    try:
        if general is not None and general.symbolic_answers:  # the spec asks is_symbolic outside asserts:
            try:  # false, as at a build at these sizes, for the checks it guards (review81 hunt)
                elaborate_model(mod, name, sizes)
            except ArchError as e:  # a branch the build did not take may fail otherwise: only its asserts count
                if getattr(e, "assertion", False):
                    raise
            fixed = elaborate_model(mod, name, sizes, general)  # the build's branches: what runs (newuser7 hunt)
        else:
            fixed = elaborate_model(mod, name, sizes)
    except ArchError as e:
        e.notes.append((f"checked at the sizes of {whose}: {_at(sizes)}", None))
        raise
    if sizes:
        _check_nonempty(general, sizes)
        _check_retyped(general, fixed, sizes)


def _check_nonempty(general, sizes: dict) -> None:
    """A dim that these sizes make 0 where an op needs elements (a conv's spatial dims, argmax's dim: its
    OpDef.nonempty): the spec keeps a size of 0 symbolic (a batch of 0 and an empty KV cache run), so the op's
    shape check passed; onnxruntime would fail inside the node, or compute what torch refuses (ConvTranspose a
    border of bias, amax -inf). Said as the op's own check says a fixed 0."""
    from ..diagnostics import ShapeError
    from ..ops import registry
    for n in general.nodes:
        op = registry.lookup(n.op)
        if op is None or op.nonempty is None or not n.inputs:
            continue
        ins = [v.type for v in n.inputs]
        x = ins[0]
        zero = [ax for ax in op.nonempty(ins, n.attrs) if not isinstance(x.shape[ax], int)  # (B-1) is -1 at B=0,
                and (k := dim_size(x.shape[ax], sizes)) is not None and k <= 0]  # and x[1:] comes out empty
        if not zero:
            continue
        try:
            op.infer([x.with_shape(tuple(0 if i in zero else d for i, d in enumerate(x.shape))), *ins[1:]], n.attrs)
            said = f"{n.op}: dim {zero[0]} of its input is empty, where it needs elements"
        except ShapeError as e:  # a shared rule's message (a window's) names no op
            said = e.message if e.message.startswith(f"{n.op}:") else f"{n.op}: {e.message}"
        raise ArchError(f"{said} ({x.shape[zero[0]]} comes out 0 at {_at(sizes)})", n.span)


def _check_retyped(general, fixed, sizes: dict) -> None:
    """The spec at the run's sizes against the compiled one, node by node: a fixed dim that comes out another
    size (x[:, -3:] typed 3 long, 2 long when T is 2) is where the model computes something else than it
    declares, whether or not an output shows it (a mean over the slice, a concat, a linear after it)."""
    at_sizes = {n.name: n for n in fixed.nodes}
    for n in general.nodes:
        m = at_sizes.get(n.name)
        if m is None or len(n.outputs) != len(m.outputs):
            continue
        for a, b in zip(n.outputs, m.outputs):
            if a.type.rank != b.type.rank:
                continue
            for x, y in zip(a.type.shape, b.type.shape):
                want = dim_size(x, sizes)  # a formula too: x[:, 5:] is typed T-5 long, -2 at T=3 (and comes out 0)
                if isinstance(y, int) and want is not None and want != y:
                    said = "" if isinstance(x, int) else f" ({x} is {want} there)"
                    raise ArchError(f"{n.op} '{n.name}' is typed {a.type} but comes out {b.type} at {_at(sizes)}"
                                    f"{said}: the spec assumes a longer input than this run's (a slice such as "
                                    f"x[:, -3:] takes a dim at least 3 long)", n.span)
