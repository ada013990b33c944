"""One function per subcommand. Diagnostics are rendered here, and only here."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from .. import driver, files
from ..diagnostics import ArchError, ArchSyntaxError, SourceMap, render
from ..ir import print_graph
from ..summary import summarize
from .table import print_table

__all__ = ["COMMANDS"]


def _diagnostics(fn):
    """ArchError -> rendered diagnostic, exit 1. Anything else is our bug: one line, exit 70, no traceback."""
    @functools.wraps(fn)
    def wrapper(args):
        sources = SourceMap()
        try:
            return fn(args, sources)
        except ArchError as e:
            return _fail(render(e, sources), 1)
        except RecursionError:
            return _fail("error: input nested too deeply", 1)
        except MemoryError:
            return _fail("error: out of memory", 1)
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:  # noqa: BLE001 - the promise is: never a traceback
            return _fail(f"archdsl: internal error: {type(e).__name__}: {e} (please report this with the input)", 70)
    return wrapper


def _fail(message: str, status: int) -> int:
    """Print a failure; its exit status stands even when stderr is a closed pipe (`2>&1 | head -c0`), which
    main() would otherwise take for a reader that stopped early, and report as success."""
    try:
        print(message, file=sys.stderr)
    except BrokenPipeError:
        pass
    return status


def empty_name(args, command: str, *flags: tuple[str, str]) -> bool:
    """A file flag given as '' (`-o ""`): a usage error, said once for every command."""
    for flag, attr in flags:
        if getattr(args, attr, None) == "":
            print(f"archdsl {command}: error: {flag} needs a file name", file=sys.stderr)
            return True
    return False


def output_path(raw: str | None, flag: str = "-o", example: str = "model.onnx") -> Path | None:
    """An output as given: a trailing slash means a directory (Path would drop it and write a file of that
    name)."""
    if raw is None:
        return None
    if os.path.basename(raw) in ("", ".", ".."):  # `DIR/.` would become Path("DIR"): a file written in the
        # directory's place (basename, not Path: it keeps the dot, and takes \\ too where the OS does)
        raise ArchError(f"{flag} {raw} names a directory; give a file name (e.g. "
                        f"{os.path.join(os.path.normpath(raw), example)})")
    return Path(raw)


def announce(message: str, out) -> None:
    """The 'wrote' line, on stderr when the output is stdout itself (-o /dev/stdout | ...), where it would
    end up inside the file."""
    try:
        to_err = os.path.samestat(os.stat(out), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no stdout file (pytest's capture) or no output
        to_err = False
    print(message, file=sys.stderr if to_err else sys.stdout)


def read_files(args, sources, **more) -> dict:
    """Every file a command reads, for files.refuse_overwriting: the spec, each file it imports (once loaded:
    `-o lib.arch` replaced an imported lib.arch), --weights and `more`."""
    ins = {"spec": args.file, "--weights": getattr(args, "weights", None), **more}
    for f in sources.files():
        ins.setdefault(f"imported {Path(f).name}", f)
    return ins


def with_external_data(outputs: dict, external: bool | None) -> dict:
    """The outputs and, with --external-data, the .data file beside each (it must not replace an input
    either: `--weights m.onnx.data -o m.onnx` overwrote the weights)."""
    if not external:
        return outputs
    return {**outputs, **{f"{k} (its external data)": Path(f"{p}.data") for k, p in outputs.items() if p}}


def beside(out: Path, name: str, what: str, flag: str | None = None) -> Path:
    """A file written next to an output (the eval model, the checkpoint): refused beside a device or FIFO,
    where it would be created as a regular file (-o /dev/null made /dev/null.eval.onnx)."""
    if files.is_special(out):
        raise ArchError(f"-o {out} is not a regular file, and {what} would go beside it"
                        + (f"; give {flag} PATH" if flag else "; give -o a file path"))
    return out.with_name(name)


def load_spec(args, sources):
    """The spec a command names; a compiled model given in its place is told apart from a broken spec (its
    bytes would read as a file that is not UTF-8)."""
    if Path(args.file).suffix.lower() == ".onnx":
        raise ArchError(f"{args.file} is a compiled ONNX model, not a .arch spec (`archdsl run` runs it)")
    try:
        return driver.load(args.file, defines=args.defines, search_path=args.include, sources=sources)
    except ArchSyntaxError as e:
        if e.message.startswith("the file is not UTF-8") and _is_onnx(args.file):
            raise ArchError(f"{args.file} is a compiled ONNX model, not a .arch spec (`archdsl run` runs it "
                            "when its name ends in .onnx)") from None
        raise


def _is_onnx(path) -> bool:
    """A file that reads as an ONNX model with a graph (protobuf parses much binary as something)."""
    import onnx
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - not a model, whatever the parser says
        return False
    return m.ir_version > 0 and len(m.graph.node) > 0


def _not_for_ir(args) -> str:
    """What --emit ir would silently ignore (it printed the inference IR for `--train --emit ir`)."""
    unused = [flag for flag, given in (("--train", getattr(args, "train", False)), ("--weights", args.weights),
                                       ("--external-data", args.external_data)) if given]
    if unused:
        return f"{', '.join(unused)} {'applies' if len(unused) == 1 else 'apply'} to the ONNX model only"
    if args.report and not args.opt_level:
        return "--report reports the passes, which run on the IR only with -O1 or -O2"
    if args.disabled_passes and not args.opt_level:
        return "--disable-pass picks passes, which run on the IR only with -O1 or -O2"
    return ""


@_diagnostics
def cmd_build(args, sources) -> int:
    low, top = driver.opset_range()
    if args.opset is not None and not low <= args.opset <= top:
        print(f"archdsl build: error: --opset {args.opset} is not supported ({low}..{top})", file=sys.stderr)
        return 2
    from .train import train_flags_without_train
    stray = train_flags_without_train(args)
    if stray:
        print(f"archdsl build: error: {', '.join(stray)} {'needs' if len(stray) == 1 else 'need'} --train "
              "(loss and optimizer flags shape a train-step model)", file=sys.stderr)
        return 2
    from .train import settings_error
    if (status := settings_error(args, "build")) is not None:
        return status
    if empty_name(args, "build", ("-o", "output")):
        return 2
    output_path(args.output)
    if args.emit == "ir" and (unused := _not_for_ir(args)):
        print(f"archdsl build: error: --emit ir prints the IR; {unused}", file=sys.stderr)
        return 2
    mod = load_spec(args, sources)
    if args.emit == "ir":
        from ..elaborate import elaborate_model
        files.refuse_overwriting({"-o": args.output}, read_files(args, sources))
        text = []
        for name in driver.select_models(mod, args.model):
            g = elaborate_model(mod, name)
            if args.opt_level:  # --emit ir prints the checked IR; with -O1/-O2 the optimized IR
                _report(args, _optimize_ir(g, args))
            text.append(print_graph(g))
        if args.output:  # the IR into the file -o names (atomically, as every output), else to stdout
            files.atomic_write(args.output, lambda tmp: tmp.write_text("".join(text), encoding="utf-8"))
            announce(f"wrote {args.output}", args.output)
        else:
            sys.stdout.write("".join(text))
        return 0
    if getattr(args, "train", False):
        from .train import build_train
        return build_train(args, sources, mod)
    opts = driver.CompileOptions(opset=args.opset, seed=args.seed, weights=args.weights,
                                 search_path=tuple(args.include), **_opt_options(args))
    name = driver.select_models(mod, args.model)[0]
    out = Path(args.output) if args.output else Path(args.file).with_suffix(".onnx") if len(mod.models) == 1 \
        else Path(args.file).with_name(f"{name}.onnx")
    files.refuse_overwriting(with_external_data({"-o": out}, args.external_data), read_files(args, sources))
    compiled, written = driver.build_file(mod, args.model, opts, out, args.external_data, sources)
    _report(args, compiled.pass_stats)
    g = compiled.graph
    announce(f"wrote {out} ({g.name}: {compiled.declared_params:,} params, {len(compiled.model.graph.node)} nodes, "
           f"opset {compiled.model.opset_import[0].version})" + (f" + {written[1]}" if len(written) > 1 else ""), out)
    return 0


def _opt_options(args) -> dict:
    """CompileOptions fields from -O/--disable-pass (archdsl/passes); -O defaults to 2."""
    level = getattr(args, "opt_level", None)
    return {"opt_level": 2 if level is None else level, "disabled_passes": tuple(getattr(args, "disabled_passes", ()))}


def _optimize_ir(g, args) -> list:
    """The passes `archdsl build` would run, at the opset it would target (--opset or the newest)."""
    from ..runtime import newest_opset
    return driver.optimize_graph(g, driver.CompileOptions(**_opt_options(args)),
                                 getattr(args, "opset", None) or newest_opset())


def _report(args, stats) -> None:
    """--report: nodes and weights before/after each pass (on stderr when stdout carries IR or JSON)."""
    if not getattr(args, "report", False):
        return
    from ..passes.report import REPORT_HEAD, report_rows
    to_err = getattr(args, "emit", None) == "ir" or getattr(args, "json", False)
    print_table("optimization passes (weights: elements of parameters and buffers)", REPORT_HEAD,
                report_rows(stats), file=sys.stderr if to_err else None)


def _signature(g) -> str:
    ins = ", ".join(f"{v.name}: {v.type}" for v in g.inputs)
    outs = ", ".join(f"{k}: {v.type}" for k, v in g.outputs)
    return f"{g.name}({ins}) -> ({outs})"


@_diagnostics
def cmd_check(args, sources) -> int:
    from ..elaborate import elaborate_model
    mod = load_spec(args, sources)
    for name in driver.select_models(mod, args.model):
        g = elaborate_model(mod, name)
        print(f"{_signature(g)}\n  params: {g.param_count():,}  buffers: {g.buffer_count():,}  nodes: {len(g.nodes)}")
    return 0


def _fmt(n: int) -> str:
    for unit, k in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= k:
            return f"{n / k:.2f}{unit}"
    return str(n)


@_diagnostics
def cmd_summary(args, sources) -> int:
    from ..elaborate import elaborate_model
    from ..summary import input_dims
    from .train import settings_error
    if (status := settings_error(args, "summary")) is not None:
        return status
    dims = _dim_flags(args, "summary")
    if dims is None:
        return 2
    mod = load_spec(args, sources)
    names = driver.select_models(mod, args.model)
    graphs = [elaborate_model(mod, n) for n in names]  # as written: passes never change the counts
    _check_dim_names(dims, list(dict.fromkeys(f for g in graphs for f in input_dims(g))))  # any model's
    owns = [{k: v for k, v in dims.items() if k in input_dims(g)} for g in graphs]  # the dims each model has
    reports = [summarize(g, own) for g, own in zip(graphs, owns)]
    if getattr(args, "report", False):
        for n in names:
            _report(args, _optimize_ir(elaborate_model(mod, n), args))
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"models": reports}, indent=2))
        return 0
    for g, own, rep in zip(graphs, owns, reports):
        rows = [(r["name"], r["op"], " ".join("[" + ", ".join(map(str, s)) + "]" for s in r["shape"]),
                 f"{r['params']:,}" if r["params"] else "", _fmt(r["flops"]) if r["flops"] else "")
                for r in rep["layers"]]
        print_table(f"{rep['model']}", ("layer", "op", "output shape", "params", "FLOPs"), rows,
                    footer=("total", "", "", f"{rep['params']:,}", _fmt(rep["flops"])))
        batch = any(v.type.shape and str(v.type.shape[0]) in own for v in g.inputs)
        unsized = rep["flops_unsized"]
        at = ", ".join((["batch 1"] if not batch else []) + [f"{k}={v}" for k, v in own.items()]
                       + [f"{u}=1" for u in unsized])
        hint = f" (--dim {unsized[0]}=N sizes it)" if unsized else ""
        print(f"params: {rep['params']:,}   buffers: {rep['buffers']:,}   FLOPs at {at}{hint}: {rep['flops']:,}")
    return 0


def _dim_flags(args, command: str) -> dict | None:
    """--dim SYM=N flags as {SYM: N}; None after printing the usage error for a malformed one."""
    dims = {}
    for d in args.dim:
        k, _, v = d.partition("=")
        if not k or not re.fullmatch(r"[0-9]+", v) or int(v) < 1:  # isdigit() takes '²', int() does not
            print(f"archdsl {command}: error: --dim expects SYM=N with N >= 1, got '{d}'", file=sys.stderr)
            return None
        dims[k] = int(v)
    return dims


def _check_dim_names(dims: dict, symbols: list[str]) -> None:
    for k in dims:
        if k not in symbols:
            known = f"its symbolic dims: {', '.join(symbols)}" if symbols else "all its dims are fixed"
            raise ArchError(f"--dim {k}: the model has no symbolic dim '{k}' ({known})")


def _ort_message(e: Exception) -> str:
    return " ".join(str(e).replace("[ONNXRuntimeError] :", "").split())


def _check_input(sess, name: str, arr: np.ndarray, path: str) -> None:
    """A --input array against the model's input: dtype, rank and every fixed dim."""
    from ..runtime import input_specs
    meta = next(i for i in sess.get_inputs() if i.name == name)
    (_, _, want_dt), = [s for s in input_specs(sess) if s[0] == name]
    dims = ", ".join(str(d) for d in meta.shape)
    if arr.dtype != np.dtype(want_dt) or arr.ndim != len(meta.shape) or any(
            isinstance(d, int) and d != n for d, n in zip(meta.shape, arr.shape)):
        raise ArchError(f"--input {name}: the model takes {np.dtype(want_dt).name}[{dims}], "
                        f"{path} holds {arr.dtype.name}{list(arr.shape)}")


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
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - missing, corrupt (BadZipFile) or foreign
        raise ArchError(f"--input {name}: cannot read {path}: {e}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        files = list(loaded.files)
        pick = name if name in files else files[0] if len(files) == 1 else None
        if pick is None:
            raise ArchError(f"--input {name}: {path} holds {len(files)} arrays "
                            f"({', '.join(files) or 'none'}) and none is called '{name}'")
        try:
            return loaded[pick]
        except Exception as e:  # noqa: BLE001 - a corrupt member, or an object array
            raise ArchError(f"--input {name}: cannot read '{pick}' from {path}: {e}") from None


@_diagnostics
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
            raise ArchError(f"{path} is a directory, not a model" if path.is_dir() else f"no such file: {path}")
        model = path
        name = path.stem
    else:
        mod = load_spec(args, sources)
        compiled = driver.build(mod, args.model, driver.CompileOptions(seed=args.seed, weights=args.weights,
                                                                        search_path=tuple(args.include),
                                                                        **_opt_options(args)), sources)
        _report(args, compiled.pass_stats)
        model = compiled.model
        name = compiled.graph.name
    try:
        sess = runtime.session(model, args.provider, args.threads)
    except ArchError:  # the provider asked for is not there
        raise
    except Exception as e:  # noqa: BLE001 - e.g. no kernel for a dtype on this provider
        raise ArchError(f"onnxruntime cannot load the model: {_ort_message(e)}") from None
    dims = _dim_flags(args, "run")
    if dims is None:
        return 2
    declared = {i.name: list(i.shape) for i in sess.get_inputs()}
    if asked_batch and not any(shape and isinstance(shape[0], str) for shape in declared.values()):
        shown = ", ".join(f"{k}: {shape}" for k, shape in declared.items())
        raise ArchError(f"--batch {args.batch}: " + (f"no input of the model has a symbolic first dim ({shown})"
                                                      if declared else "the model has no inputs"))
    symbols = list(dict.fromkeys(d for shape in declared.values() for d in shape if isinstance(d, str) and d))
    _check_dim_names(dims, symbols)
    given = {}
    for item in args.input:
        k, eq, f = item.partition("=")
        if not eq or not f:
            raise ArchError(f"--input {item}: expected NAME=FILE.npy or NAME=FILE.npz (inputs: {', '.join(declared)})")
        if k in given:
            raise ArchError(f"--input {k} is given twice")
        if k not in declared:
            raise ArchError(f"--input: the model has no input '{k}' (inputs: {', '.join(declared)})")
        given[k] = _load_input(k, f)
        _check_input(sess, k, given[k], f)
    clash = runtime.dim_conflict(declared, given)  # before random inputs take sizes from the given ones
    if clash:
        raise ArchError(f"--input: {clash}; inputs that share a dim name must agree on its size")
    # the random inputs take their symbolic dims from the given ones (x of length 5 -> a random y of length 5)
    from_given = {d: n for k, a in given.items() for d, n in zip(declared[k], a.shape) if isinstance(d, str) and d}
    if asked_batch:
        _check_batch(args.batch, declared, dims, from_given, given)
    feeds = runtime.random_feeds(sess, args.batch, {**from_given, **dims}, args.seed)
    feeds.update(given)
    clash = runtime.dim_conflict(declared, feeds)
    if clash:
        raise ArchError(f"--input: {clash}; inputs that share a dim name must agree on its size")
    try:
        outs, ms = runtime.run_timed(sess, feeds, args.repeat)
    except Exception as e:  # noqa: BLE001 - e.g. inputs whose symbolic dims disagree
        raise ArchError(f"onnxruntime could not run the model: {_ort_message(e)}") from None
    print(f"{name} on {sess.get_providers()[0]}")
    for meta, arr in zip(sess.get_outputs(), outs):
        a = np.asarray(arr, dtype=np.float64)
        stats = f"mean {a.mean():.4g}  std {a.std():.4g}  min {a.min():.4g}  max {a.max():.4g}" if a.size else "empty"
        print(f"  {meta.name}: {list(arr.shape)} {arr.dtype}  {stats}")
    print(f"median latency: {ms:.3f} ms over {args.repeat} run{'s' if args.repeat != 1 else ''}")
    return 0


def _check_batch(batch: int, declared: dict, dims: dict, from_given: dict, given: dict) -> None:
    """--batch sizes the symbolic dims first met as an input's first dim (as runtime.input_specs does); a
    --dim or a given input that sizes one of them otherwise would win silently."""
    seen: dict[str, int] = {}
    for shape in declared.values():
        for i, d in enumerate(shape):
            if isinstance(d, str) and d:
                seen.setdefault(d, i)
    for sym in (s for s, first in seen.items() if first == 0):
        if dims.get(sym, batch) != batch:
            raise ArchError(f"--batch {batch} and --dim {sym}={dims[sym]} disagree (the batch is dim '{sym}')")
        if from_given.get(sym, batch) != batch:
            holder = next(k for k in given if sym in declared[k])
            raise ArchError(f"--batch {batch}: --input {holder} has {from_given[sym]} for dim '{sym}' (drop --batch, "
                            "or give an input of that batch)")


def cmd_ops(args) -> int:
    from ..ops import all_ops
    if args.markdown:  # the table of grammar/REFERENCE.md, '|' in a description escaped
        from .docs import ops_table
        print(ops_table())
        return 0
    for op in all_ops():
        print(f"{op.signature():<70} {op.doc}")
    return 0


def _cmd_train(args, sources) -> int:
    from .train import cmd_train
    return cmd_train(args, sources)


COMMANDS = {"build": cmd_build, "check": cmd_check, "summary": cmd_summary, "run": cmd_run, "ops": cmd_ops,
            "train": _diagnostics(_cmd_train)}
