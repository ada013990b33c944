"""One function per subcommand. Diagnostics are rendered here, and only here."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path

from .. import driver, files
from ..diagnostics import ArchError, SourceMap, render
from ..interrupts import interruption, settled
from ..ir import print_graph
from ..summary import bind_dims, summarize
from ..types import dim_symbols
from .signals import StdoutFailed, stdout_closed, was_interrupted
from .table import print_table

__all__ = ["COMMANDS", "announce", "beside", "check_dim_names", "dim_flags", "empty_name", "load_spec",
           "opt_options", "output_path", "pass_flags_error", "read_files", "report_compile", "report_on_stderr",
           "with_external_data"]


def _diagnostics(fn):
    """ArchError -> rendered diagnostic, exit 1. Anything else is our bug: one line, exit 70, no traceback."""
    @functools.wraps(fn)
    def wrapper(args):
        sources = SourceMap()
        try:
            return fn(args, sources)
        except ArchError as e:
            try:
                return _fail(render(e, sources), 1)
            except (KeyboardInterrupt, BrokenPipeError, StdoutFailed):
                raise
            except Exception:  # noqa: BLE001 - showing the source failed: the message alone, not a traceback
                return _fail(f"error: {e.message}", 1)
        except RecursionError:
            return _fail("error: input nested too deeply", 1)
        except MemoryError:
            return _fail("error: out of memory", 1)
        except (KeyboardInterrupt, BrokenPipeError, StdoutFailed):
            raise
        except Exception as e:  # noqa: BLE001 - the promise is: never a traceback
            if was_interrupted():  # Ctrl-C or SIGTERM inside an extension (onnxruntime's import) came out as this
                raise interruption() from e
            if isinstance(e, FileNotFoundError) and _cwd_gone():  # a relative path there (review82 hunt)
                return _fail("error: the working directory no longer exists (it was deleted): give absolute paths, "
                             "or run from a folder that exists", 1)
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


_STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _cwd_gone() -> bool:
    try:
        os.getcwd()
        return False
    except FileNotFoundError:
        return True


def announce(message: str, out) -> None:
    """The 'wrote' line, on stderr when the output is stdout itself (-o /dev/stdout | ...), where it would
    end up inside the file; control characters of a file name escaped (-o $'a\\e[2Jb.onnx' cleared the
    terminal, as diagnostics already escape them: cli5 hunt)."""
    try:
        to_err = os.path.samestat(os.stat(out), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no stdout file (pytest's capture) or no output
        to_err = False
    print(_no_controls(message), file=sys.stderr if to_err else sys.stdout)


def _no_controls(text: str) -> str:
    """Control characters, line separators and bidirectional overrides (U+202E shows a name reversed) as
    escapes; a name's undecodable bytes (surrogates) are printed as the bytes they are."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", lambda m: repr(m[0])[1:-1], text)


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


def _a_std_stream(out: str | None) -> bool:
    """-o - and stdout or stderr by any path (//dev/stdout, /dev/./fd/2, /proc/PID/fd/1): the file it names
    is the one open as fd 1 or 2."""
    if out is None:
        return False
    if files.fd_named(out) in (1, 2):
        return True
    try:
        named = os.stat(out)
    except OSError:  # no such file yet: a new file is no stream
        return False
    for fd in (1, 2):
        try:
            if os.path.samestat(named, os.fstat(fd)):
                return True
        except OSError:  # closed
            pass
    return False


def _normal(path) -> str:
    """The absolute path with `.`, `..` and repeated slashes gone (POSIX keeps a leading `//` apart)."""
    return "/" + os.path.abspath(path).lstrip("/")


def default_output(spec: str, suffix: str) -> Path:
    """The output beside the spec (SPEC.onnx, or NAME.onnx for one of several models, `suffix` starting with a
    dot or a name): refused for a spec read from a device, a pipe or /dev and /proc (`build /dev/stdin < m.arch`
    wrote /dev/stdin.onnx: cli5 hunt), where no file belongs."""
    p = Path(spec)
    if files.is_special(p) or Path(_normal(p)).parts[1:2] in (("dev",), ("proc",)):
        raise ArchError(f"{spec} is not a file the output can go beside: give -o FILE")
    return p.with_suffix(suffix) if suffix.startswith(".") else p.with_name(suffix)


def beside(out: Path, name: str, what: str, flag: str | None = None) -> Path:
    """A file written next to an output (the eval model, the checkpoint), beside where a link to it points:
    refused beside a device or FIFO, or anything in /dev, where it would be created as a regular file
    (-o /dev/null made /dev/null.eval.onnx, and -o - into a file /dev/stdout.eval.onnx)."""
    if files.is_special(out) or Path(_normal(out)).parent == Path("/dev"):  # /dev/stdout; /dev/shm/x is fine
        raise ArchError(f"-o {out} is not a regular file, and {what} would go beside it"
                        + (f"; give {flag} PATH" if flag else "; give -o a file path"))
    return files.resolved(out).with_name(name)


def load_spec(args, sources):
    """The spec a command names; a compiled model given in its place is told apart from a broken spec (its
    bytes would read as a file that is not UTF-8)."""
    suffix = Path(args.file).suffix.lower()
    if suffix == ".onnx":
        raise ArchError(f"{args.file} is a compiled ONNX model, not a .arch spec (`archdsl run` runs it)")
    if suffix in driver.NOT_SPECS and os.path.exists(args.file):  # as driver.load says, with the flag for it
        hints = (["a spec's weights are given with --weights"] if hasattr(args, "weights") else []) + \
            (["its inputs with --input NAME=FILE"] if hasattr(args, "input") else []) + \
            (["training data with --data"] if hasattr(args, "data") else [])
        raise ArchError(f"{args.file} is {driver.NOT_SPECS[suffix]}, not a .arch spec" +
                        (f": {', '.join(hints)}" if hints else ""))
    return driver.load(args.file, defines=args.defines, search_path=args.include, sources=sources)


# what build -o refuses to name a model (an .arch there is refused later, as the spec or an import)
_NOT_A_MODEL = set(driver.NOT_SPECS) - {".onnx"} | {".pkl", ".json", ".txt", ".h5", ".ckpt"}


def _not_for_ir(args) -> str:
    """What --emit ir would silently ignore (it printed the inference IR for `--train --emit ir`)."""
    unused = [flag for flag, given in (("--train", getattr(args, "train", False)), ("--weights", args.weights),
                                       ("--external-data", args.external_data), ("--seed", args.seed != 0))
              if given]
    if unused:
        return f"{', '.join(unused)} {'applies' if len(unused) == 1 else 'apply'} to the ONNX model only"
    if args.report and not args.opt_level:
        return "--report reports the passes, which run on the IR only with -O1 or -O2"
    if args.disabled_passes and not args.opt_level:  # without -O (-O0 is refused before, pass_flags_error)
        return "--disable-pass picks passes, which run on the IR only with -O1 or -O2"
    if args.opset is not None and not args.opt_level:  # the IR as written is the same at every opset
        return "--opset sets the ONNX lowering and the passes' fusions, which run on the IR only with -O1 or -O2"
    return ""


@_diagnostics
def cmd_build(args, sources) -> int:
    low, top = driver.opset_range()
    if args.opset is not None and not low <= args.opset <= top:
        print(f"archdsl build: error: --opset {args.opset} is not supported ({low}..{top})", file=sys.stderr)
        return 2
    if args.opset is not None:
        from ..runtime import newest_opset
        if args.opset > newest_opset():  # onnx knows it, this onnxruntime does not: fine for another runtime
            import onnxruntime
            print(f"warning: --opset {args.opset}: onnxruntime {onnxruntime.__version__} here loads opsets up to "
                  f"{newest_opset()}, so it will not run this model, and -O2's constant folding (which runs "
                  "in onnxruntime) is left out", file=sys.stderr)
    from .train import train_flags_without_train
    stray = train_flags_without_train(args)
    if stray:
        print(f"archdsl build: error: {', '.join(stray)} {'needs' if len(stray) == 1 else 'need'} --train "
              "(loss and optimizer flags shape a train-step model)", file=sys.stderr)
        return 2
    from .train import settings_error
    if (status := settings_error(args, "build")) is not None:
        return status
    if getattr(args, "train", False) and args.report and args.emit != "ir":
        print("archdsl build: error: --report reports the passes of an inference build; a train step runs "
              "only the -O1 cleanups (and narrow_rows at -O2)", file=sys.stderr)
        return 2
    if empty_name(args, "build", ("-o", "output"), ("--weights", "weights")) \
            or pass_flags_error(args, "build") is not None:
        return 2
    if args.output in _STDOUT_NAMES and (stdout_closed() or not os.path.exists("/dev/stdout")):  # `>&-`:
        # /dev/stdout led to whatever file took fd 1 since (onnxruntime's opens /dev/null), or to no file
        raise ArchError(f"-o {args.output} writes to stdout, which is closed; give -o FILE")
    if getattr(args, "train", False) and args.emit != "ir" and _a_std_stream(args.output):  # as train's -o -
        print(f"archdsl build: error: -o {args.output}: a train step is written with its eval model beside it; "
              "give a file name (e.g. -o step.onnx)", file=sys.stderr)
        return 2
    if args.output == "-":  # the Unix convention; it wrote a file named "-"
        args.output = "/dev/stdout"
    output_path(args.output)
    # -o w.npz wrote a model that `run` then took for a file of arrays
    if args.emit != "ir" and args.output and Path(args.output).suffix.lower() in _NOT_A_MODEL:
        print(f"archdsl build: error: -o {args.output}: build writes an ONNX model; give the .onnx suffix "
              "(train writes the weights it trains as .npz)", file=sys.stderr)
        return 2
    if args.emit == "ir" and (unused := _not_for_ir(args)):
        print(f"archdsl build: error: --emit ir prints the IR; {unused}", file=sys.stderr)
        return 2
    if args.emit == "ir" and args.output and Path(args.output).suffix.lower() == ".onnx":  # run took it for a model
        print(f"archdsl build: error: -o {args.output}: --emit ir writes the IR as text; give it another suffix "
              "(.ir)", file=sys.stderr)
        return 2
    # an inference build's --seed draws the initialization only (a train step's dropout draws from it too)
    if args.emit != "ir" and not getattr(args, "train", False) and args.weights and args.seed:
        print("archdsl build: error: --seed draws the random initialization, which --weights replaces (the file "
              "gives every parameter)", file=sys.stderr)
        return 2
    mod = load_spec(args, sources)
    if args.emit == "ir":
        from ..elaborate import elaborate_model
        files.refuse_overwriting({"-o": args.output}, read_files(args, sources))
        text = []
        names = driver.select_models(mod, args.model)
        for name in names:
            g = elaborate_model(mod, name)
            if args.opt_level:  # --emit ir prints the checked IR; with -O1/-O2 the optimized IR
                _optimize_ir(g, args, name if len(names) > 1 else None)
            text.append(print_graph(g))
        if args.output:  # the IR into the file -o names (atomically, as every output), else to stdout
            files.atomic_write(args.output, lambda tmp: tmp.write_text("".join(text), encoding="utf-8",
                                                                       errors="surrogateescape"))  # a file name
            announce(f"wrote {args.output}", args.output)
        else:  # a closed stdout was refused before (cli._dispatch)
            sys.stdout.write("".join(text))
        return 0
    if getattr(args, "train", False):
        from .train import build_train
        return build_train(args, sources, mod)
    opts = driver.CompileOptions(opset=args.opset, seed=args.seed, weights=args.weights,
                                 search_path=tuple(args.include), **opt_options(args))
    name = driver.select_models(mod, args.model)[0]
    out = Path(args.output) if args.output else default_output(args.file, ".onnx" if len(mod.models) == 1
                                                                else f"{name}.onnx")
    files.refuse_overwriting(with_external_data({"-o": out}, args.external_data), read_files(args, sources))
    compiled, written = driver.build_file(mod, args.model, opts, out, args.external_data, sources)
    with settled():  # written: an interrupt now would exit 130 over the new files
        warn(compiled.graph, compiled.unused, sources)
        report_compile(args, mod, compiled)
        g = compiled.graph
        nodes = len(compiled.model.graph.node)
        announce(f"wrote {out} ({g.name}: {compiled.declared_params:,} params, {nodes} node"
                 f"{'s' if nodes != 1 else ''}, opset {compiled.model.opset_import[0].version})"
                 + (f" + {written[1]}" if len(written) > 1 else ""), out)
    return 0


def pass_flags_error(args, command: str) -> int | None:
    """--disable-pass or --report under -O0, where no pass runs, --disable-pass of an -O2 pass under -O1, or of
    an inference pass with --train, is a usage error rather than a flag quietly ignored or an empty table."""
    from ..passes import all_passes
    passes = {p.name: p for p in all_passes()}
    disabled = [passes[n] for n in getattr(args, "disabled_passes", ()) if n in passes]
    if getattr(args, "opt_level", None) == 1:  # an -O2 pass is off at -O1 already: the flag did nothing
        above = next((p.name for p in disabled if p.level > 1), None)
        if above is not None:
            print(f"archdsl {command}: error: --disable-pass {above} with -O1: that pass runs only at -O2",
                  file=sys.stderr)
            return 2
    if getattr(args, "train", False) and getattr(args, "emit", None) != "ir" and \
            (idle := next((p.name for p in disabled if not p.in_train_steps), None)):  # --emit ir: refused after
        print(f"archdsl {command}: error: --disable-pass {idle} with --train: that pass runs in inference builds "
              "only (`archdsl passes` marks them), not in a train step or its eval model", file=sys.stderr)
        return 2
    if getattr(args, "opt_level", None) != 0:
        return None
    for flag, given in (("--disable-pass", getattr(args, "disabled_passes", None)),
                        ("--report", getattr(args, "report", False))):
        if given:
            print(f"archdsl {command}: error: {flag} with -O0: no pass runs at -O0", file=sys.stderr)
            return 2
    return None


def opt_options(args) -> dict:
    """CompileOptions fields from -O/--disable-pass (archdsl/passes); -O defaults to 2."""
    level = getattr(args, "opt_level", None)
    return {"opt_level": 2 if level is None else level, "disabled_passes": tuple(getattr(args, "disabled_passes", ()))}


def _optimize_ir(g, args, model: str | None = None, dims: dict | None = None) -> None:
    """The passes `archdsl build` would run, at the opset it would target (--opset or the newest), on `g` in
    place; --report reports them, with the FLOPs counted before they change `g` and after."""
    from ..runtime import newest_opset
    report = getattr(args, "report", False)
    opset = getattr(args, "opset", None) or newest_opset()
    written = summarize(g, dims)["flops"] if report else 0
    nodes = _onnx_nodes(g, opset) if report else 0
    stats = driver.optimize_graph(g, driver.CompileOptions(**opt_options(args)), opset)
    report_passes(args, stats, lambda: (written, summarize(g, dims)), model, dims,
                  lambda: (nodes, _onnx_nodes(g, opset)))


def _onnx_nodes(g, opset: int) -> int:
    """The ONNX nodes `g` lowers to (a skeleton: no weights are made)."""
    from ..lower import lower_graph
    return len(lower_graph(g, opset=opset, with_weights=False).model.graph.node)


def report_compile(args, mod, compiled, dims: dict | None = None) -> None:
    """--report of a compile (build, run): the passes it ran, and the FLOPs of the model as written (elaborated
    again: the passes changed the compiled graph in place) against the compiled graph, at `dims` (run's --dim)."""
    from ..elaborate import elaborate_model
    if not getattr(args, "report", False):
        return
    as_written = elaborate_model(mod, compiled.graph.name)
    report_passes(args, compiled.pass_stats, lambda: (summarize(as_written, dims)["flops"],
                                                      summarize(compiled.graph, dims)), dims=dims or None,
                  onnx_nodes=lambda: (_onnx_nodes(as_written, compiled.model.opset_import[0].version),
                                      len(compiled.model.graph.node)))


def report_on_stderr(args) -> bool:
    """--report goes to stderr where stdout carries IR, JSON or the model itself (`-o -`: the table came
    after the model's bytes, a corrupt model for whatever read the pipe)."""
    return getattr(args, "emit", None) == "ir" or bool(getattr(args, "json", False)) \
        or getattr(args, "output", None) in _STDOUT_NAMES


def report_passes(args, stats, flops, model: str | None = None, dims: dict | None = None, onnx_nodes=None) -> None:
    """--report: IR nodes and weights before/after each pass (on stderr when stdout carries IR or JSON), then
    the FLOPs as written and as optimized, `flops()`: the count as written and the optimized graph's summary
    (narrow_rows computes fewer positions; nodes alone do not show it), and `onnx_nodes()`, the ONNX nodes as
    written and optimized (the IR's counts moved the other way: a linear is one IR node, two ONNX ones). `model`
    names the model when a file has several."""
    if not getattr(args, "report", False):
        return
    from ..passes.report import REPORT_HEAD, report_rows
    out = sys.stderr if report_on_stderr(args) else None
    title = "optimization passes" + (f" of {model}" if model else "")
    print_table(f"{title} (IR nodes; weights: elements of parameters and buffers)", REPORT_HEAD, report_rows(stats),
                file=out, text=2)  # round, pass: the nodes before are a number as the rest (review113)
    written, optimized = flops()
    print(f"FLOPs{f' of {model}' if model else ''} ({optimized['flops_at']}): {written:,} as written, "
          f"{optimized['flops']:,} optimized", file=out)
    if onnx_nodes is not None:
        before, after = onnx_nodes()
        print(f"ONNX nodes{f' of {model}' if model else ''}: {before:,} as written, {after:,} optimized", file=out)


def _signature(g) -> str:
    ins = ", ".join(f"{v.name}: {v.type}" for v in g.inputs)
    outs = ", ".join(f"{k}: {v.type}" for k, v in g.outputs)
    return f"{g.name}({ins}) -> ({outs})"


def warn(graph, unused, sources) -> None:
    """driver.warning_messages, rendered as diagnostics on stderr."""
    for w in (ArchError(text, span) for text, span in driver.warning_messages(graph, unused)):
        try:
            print(render(w, sources, level="warning"), file=sys.stderr)
        except BrokenPipeError:
            pass


@_diagnostics
def cmd_check(args, sources) -> int:
    from ..elaborate import elaborate_model, noting_overrides
    from ..ir import unused_results
    mod = load_spec(args, sources)
    from ..passes import check_computed_constants
    from ..runtime import newest_opset
    for name in driver.select_models(mod, args.model):
        g = elaborate_model(mod, name)
        with noting_overrides(mod):  # as the default build: a 0 divisor, a length, with the -D values it read
            check_computed_constants(g, newest_opset, live_only=True)
        warn(g, unused_results(g), sources)
        print(f"{_signature(g)}\n  params: {g.param_count():,}  buffers: {g.buffer_count():,}  nodes: {len(g.nodes)}")
    return 0


def _fmt(n: int) -> str:
    """Two decimals in the largest unit n reaches, the next one up where they round to 1000 (999,996 is
    1.00M, not 1000.00K); under 1000, the number itself."""
    units = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3))
    for i, (unit, k) in enumerate(units):
        if n >= k:
            if i and round(n / k, 2) >= 1000:
                unit, k = units[i - 1]
            return f"{n / k:.2f}{unit}"
    return str(n)


@_diagnostics
def cmd_summary(args, sources) -> int:
    from ..elaborate import elaborate_model
    from ..summary import input_dims
    from .run import check_spec_at
    from .train import settings_error
    if (status := settings_error(args, "summary") or pass_flags_error(args, "summary")) is not None:
        return status
    if not args.report and (args.opt_level is not None or args.disabled_passes):  # the table is as written
        flag = "--disable-pass" if args.disabled_passes else f"-O{args.opt_level}"
        print(f"archdsl summary: error: {flag} picks the passes --report runs; the table counts the model as "
              "written (add --report)", file=sys.stderr)
        return 2
    dims = dim_flags(args, "summary")
    if dims is None:
        return 2
    mod = load_spec(args, sources)
    names = driver.select_models(mod, args.model)
    graphs = [elaborate_model(mod, n) for n in names]  # as written, the published counts (-O2 may compute less)
    check_dim_names(dims, list(dict.fromkeys(f for g in graphs for f in input_dims(g))))  # any model's
    owns = [{k: v for k, v in dims.items() if k in input_dims(g)} for g in graphs]  # the dims each model has
    for n, g, own in zip(names, graphs, owns):  # the spec at those sizes: its asserts, a reshape that does not fit
        if own:
            check_spec_at(mod, n, own, "--dim", g)
    from ..ir import unused_results
    for g in graphs:  # as check: what the table counts and the build leaves out (stderr: --json stays JSON)
        warn(g, unused_results(g), sources)
    reports = [summarize(g, own) for g, own in zip(graphs, owns)]
    if getattr(args, "report", False):
        for n, own in zip(names, owns):
            _optimize_ir(elaborate_model(mod, n), args, n if len(names) > 1 else None, own)
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"models": reports}, indent=2))
        return 0
    for g, own, rep in zip(graphs, owns, reports):
        rows = [(r["name"], r["op"], " ".join("[" + ", ".join(map(str, s)) + "]" for s in r["shape"]),
                 f"{r['params']:,}" if r["params"] else "", _fmt(r["flops"]) if r["flops"] else "")
                for r in rep["layers"]]
        print_table(f"{rep['model']}", ("layer", "op", "output shape", "params", "FLOPs"), rows,
                    footer=("total", "", "", f"{rep['params']:,}", _fmt(rep["flops"])))
        unsized = rep["flops_unsized"]
        at = rep["flops_at"]
        hint = f" (--dim {unsized[0]}=N sizes it)" if unsized else ""
        if rep["flops_unfit"]:  # conv 3 at H=1: no real input has these sizes; the count took such sizes as 1
            first = rep["flops_unfit"][0]
            node = next(n for n in g.nodes if n.name == first)
            unfit = [d for o in node.outputs for d in bind_dims(o.type, own).shape if not isinstance(d, int)]
            named = [f for d in unfit for f in dim_symbols(d) if f not in own]  # the W of a (1, 3) conv's W-2,
            flag = f"--dim {named[0]}=N" if named else "--dim"                  # the B of x[2:]'s B-2
            hint = (f" (not a size the model runs at: '{first}' has no whole positive output size there, counted "
                    f"as 1; {flag} gives a real one)")
        print(f"params: {rep['params']:,}   buffers: {rep['buffers']:,}   FLOPs at {at}{hint}: {rep['flops']:,}")
    return 0


def dim_flags(args, command: str) -> dict | None:
    """--dim SYM=N flags as {SYM: N}; None after printing the usage error for a malformed one."""
    dims = {}
    for d in args.dim:
        k, _, v = d.partition("=")
        least = 0 if command == "summary" else 1  # the FLOPs of a KV cache's first step (P=0); run's arrays
        if not k or not re.fullmatch(r"[0-9]+", v) or int(v) < least:  # isdigit() takes '²', int() does not
            print(f"archdsl {command}: error: --dim expects SYM=N with N >= {least}, got '{d}'"
                  + (" (a size of 0, an empty KV cache: feed that input, --input NAME=FILE.npy)"
                     if v == "0" and command == "run" else ""), file=sys.stderr)
            return None
        if dims.get(k, int(v)) != int(v):  # the last one won, unsaid
            print(f"archdsl {command}: error: --dim {k} is given twice, as {dims[k]} and as {int(v)}", file=sys.stderr)
            return None
        dims[k] = int(v)
    return dims


def check_dim_names(dims: dict, symbols: list[str]) -> None:
    for k in dims:
        if k not in symbols:
            known = f"its symbolic dims: {', '.join(symbols)}" if symbols else "it names no symbolic dim"
            raise ArchError(f"--dim {k}: the model has no symbolic dim '{k}' ({known})")


def cmd_ops(args) -> int:
    from ..ops import all_ops
    if args.markdown:  # the table of grammar/REFERENCE.md, '|' in a description escaped
        from .docs import ops_table
        print(ops_table())
        return 0
    for op in all_ops():
        aliases = f" (also {', '.join(op.aliases)})" if op.aliases else ""
        print(f"{op.signature():<70} {op.doc}{aliases}")
    return 0


def _cmd_train(args, sources) -> int:
    from .train import cmd_train
    return cmd_train(args, sources)


def _cmd_run(args, sources) -> int:
    from .run import cmd_run
    return cmd_run(args, sources)


COMMANDS = {"build": cmd_build, "check": cmd_check, "summary": cmd_summary, "run": _diagnostics(_cmd_run),
            "ops": cmd_ops, "train": _diagnostics(_cmd_train)}
