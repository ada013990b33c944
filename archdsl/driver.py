"""The one place the stages run in order. The CLI and the Python API are thin faces over it."""

from __future__ import annotations

import contextlib
import gc
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from . import files
from ._version import __version__
from .diagnostics import ArchError, ArchSyntaxError, SourceMap, Span, not_a_directory, writing
from .elaborate import Module, elaborate_model, load_file, load_source, noting_overrides, parse_defines
from .elaborate.provenance import int_input_metadata, model_metadata, source_name
from .ir import Graph, still_there, unused_results
from .lower import MIN_OPSET, load_weights, lower_graph
from .lower.given import checked_weights, dict_arrays
from .lower.model_file import (
    EXTERNAL_DATA_THRESHOLD,
    Staged,
    cleanup_all,
    commit_all,
    data_file_name,
    no_external_data_beside,
    write_model,
    write_models,
)
from .lower.weights import SEED_MAX, check_seed
from .passes import check_computed_constants
from .shared_switch import SharedSwitch

__all__ = ["CompileOptions", "Compiled", "compile_file", "compile_source", "check_file", "check_source",
           "load", "select_models", "build", "build_file", "write_model", "write_models", "parse_defines",
           "EXTERNAL_DATA_THRESHOLD", "CompiledTrain", "build_train", "compile_train_file", "SEED_MAX"]


@dataclass(frozen=True)
class CompileOptions:
    opset: int | None = None
    seed: int = 0
    weights: str | Mapping | None = None   # a .npz/.safetensors path, or {name: array} (a state_dict)
    search_path: tuple[str, ...] = ()
    with_weights: bool = True
    opt_level: int = 2                      # -O0 none, -O1 safe cleanups, -O2 everything (archdsl/passes)
    disabled_passes: tuple[str, ...] = ()   # --disable-pass NAME


@dataclass
class Compiled:
    graph: Graph
    model: onnx.ModelProto | None
    module: Module
    sources: SourceMap = field(default_factory=SourceMap)
    pass_stats: list = field(default_factory=list)   # passes.PassStat per pass run (--report)
    declared_params: int | None = None               # trainable params as written (less unused ones), before passes
    unused: list = field(default_factory=list)       # ir.Unused: results that reach no output, as written


def load(path: str | Path | None = None, *, text: str | None = None, file: str = "<string>", defines=None,
         search_path=(), sources: SourceMap | None = None) -> Module:
    sources = sources if sources is not None else SourceMap()
    if text is not None:  # compile_source(b"...") or (3): raw errors before
        _text(text)
    if text is None and not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise ArchError(f"expected the path of a .arch file (a str or a Path), got {path!r}"[:200])
    if text is None and not str(path):  # "" is the current directory to pathlib: "is a directory" about nothing
        raise ArchError("expected the path of a .arch file, got an empty one")
    if text is None and isinstance(path, str) and ("\n" in path or re.search(r"\bmodel\s+\w+\s*\(.*->", path)) \
            and not os.path.exists(path):  # not 'specs/{name}.arch', a template left unformatted
        raise ArchError(f"expected the path of a .arch file, got what reads as a spec's text ({path[:40]!r}...; in "
                        "Python, compile_source and check_source take the text)")
    if text is None and (kind := NOT_SPECS.get(Path(path).suffix.lower())) and os.path.exists(path):
        raise ArchError(f"{path} is {kind}, not a .arch spec")  # its bytes read as a spec that is not UTF-8
    if text is not None and "\n" not in text and text.strip().endswith(".arch") and " " not in text.strip():
        raise ArchError(f"the spec's text is {text!r}, a file name: compile_file and check_file read a file, "
                        "compile_source and check_source a spec's text")
    if not isinstance(file, str):
        raise ArchError(f"file names the spec's text in messages: a str, got {file!r}"[:200])
    if isinstance(search_path, (str, bytes)) or not isinstance(search_path, (list, tuple)) or \
            not all(isinstance(p, (str, os.PathLike)) for p in search_path):
        raise ArchError(f"search_path takes a list of directories, got {search_path!r}")
    defs = parse_defines(defines, sources)
    env_path = [p for p in os.environ.get("ARCHDSL_PATH", "").split(os.pathsep) if p]
    search = list(search_path) + env_path
    if text is not None:
        return load_source(text, file, defs, sources, search)
    try:
        return load_file(path, defs, sources, search)
    except ArchSyntaxError as e:  # an ONNX model named .arch: "not UTF-8" said nothing of what it is (review116)
        if e.message.startswith("the file is not UTF-8") and _is_onnx(path):
            raise ArchError(f"{path} is a compiled ONNX model, not a .arch spec (`archdsl run` runs it when its "
                            "name ends in .onnx)") from None
        raise


def _is_onnx(path) -> bool:
    """A file that reads as an ONNX model with a graph (protobuf parses much binary as something)."""
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - not a model, whatever the parser says
        return False
    return m.ir_version > 0 and len(m.graph.node) > 0


# files a spec's path may name by mistake, as what they hold
NOT_SPECS = {".onnx": "a compiled ONNX model", ".npz": "a file of arrays (.npz)", ".npy": "an array (.npy)",
             ".safetensors": "a file of weights (.safetensors)", ".pt": "a torch.save file",
             ".pth": "a torch.save file"}


def select_models(mod: Module, model: str | None, flag: str = "--model {}") -> list[str]:
    """The models to build: `model`, or every model of the file. `flag` names the choice in a message (the
    Python API's is model='NAME')."""
    from .diagnostics import UnknownNameError, did_you_mean
    names = list(mod.models)
    if model is not None and not isinstance(model, str):
        raise ArchError(f"model takes a model's name, got {model!r}")
    if not names:
        raise ArchError(f"{mod.path} defines no model", mod.ast.span)
    if model is None:
        return names
    if model not in mod.models:  # a mistake on the command line: no line of the file to show
        raise UnknownNameError(f"{flag.format(model)}: no model '{model}' in {source_name(mod)}"
                               f"{did_you_mean(model, names)} (models: {', '.join(names)})")
    return [model]


def _one_model(mod: Module, model: str | None) -> str:
    names = select_models(mod, model)
    if len(names) > 1:
        raise ArchError(f"{mod.path} defines several models ({', '.join(names)}); pick one with --model NAME "
                        "(model= in Python)")
    return names[0]


def _gc_off() -> bool | None:
    if not gc.isenabled():
        return None
    gc.disable()
    return True


_no_cyclic_gc_switch = SharedSwitch(_gc_off, lambda _: gc.enable())


def _no_cyclic_gc():
    """The IR is cyclic (values <-> nodes) and alive until the end of a build: a full collection finds
    nothing to free, and with 100k nodes those collections made the compile superlinear (+20%). Builds in
    several threads share the one switch (each on its own, one could find it off, another's doing, and leave
    it off for good)."""
    return _no_cyclic_gc_switch.held()


def build(mod: Module, model: str | None, options: CompileOptions, sources: SourceMap | None = None,
          loaded_weights: dict | None = None, skeleton: bool = False) -> Compiled:
    """`skeleton`: the model without the parameters' initializers, which build_file streams in after it."""
    _module(mod, "build")
    with _no_cyclic_gc():
        return _build(mod, model, options, sources, loaded_weights, skeleton)


def _build(mod: Module, model: str | None, options: CompileOptions, sources: SourceMap | None,
           loaded_weights: dict | None, skeleton: bool = False) -> Compiled:
    from .runtime import newest_opset
    name = _one_model(mod, model)
    graph = elaborate_model(mod, name)
    ranges = int_input_metadata(graph)  # as written: the passes may turn an embedding into a Gather
    opset = _check_options(options) or newest_opset()
    weights = loaded_weights if loaded_weights is not None else given_weights(options)
    with noting_overrides(mod):  # -D hidden=128 against a checkpoint of 256: the note says where 128 came from
        weights = checked_weights(weights, graph, _weights_file(options))
        unused, written = unused_results(graph), graph.param_count()
        fed = not options.with_weights and not skeleton  # the parameters are inputs, named as a state_dict's
        stats = (optimize_keeping_params if fed else optimize_graph)(graph, options, opset)
        check_computed_constants(graph, opset)  # a label past its classes, as a -D made it
        if not _drops_dead_code(options.opt_level, options.disabled_passes, inference=True):
            unused = still_there(unused, graph)
        declared = written - sum(u.trainable for u in unused if not u.kept)  # as written, less what was dropped
        if options.with_weights and not skeleton:
            _fits_in_memory(graph)
        meta = {**model_metadata(mod, name, options.seed, options.weights), **ranges}
        res = lower_graph(graph, opset=opset, seed=options.seed, weights=weights, metadata=meta,
                          with_weights=options.with_weights and not skeleton, params_as_inputs=fed,
                          doc=f"{name} from {source_name(mod)} (archdsl {__version__})")  # -D T=17000's mask
    return Compiled(graph, res.model, mod, sources or SourceMap(), stats, declared, unused)


def _fits_in_memory(graph: Graph, what: str = "the model's weights", cli: str = "") -> None:
    """An in-memory ModelProto holds its weights, and protobuf refuses past 2 GiB: the model came back, and
    every use of it (serializing, a session, the checker) raised EncodeError. Said before any weight is made
    (a train step's, after: api3 hunt)."""
    size = sum(graph.param_bytes().values())
    if size >= EXTERNAL_DATA_THRESHOLD and cli:
        raise ArchError(f"{what} takes {size / 2**30:.2f} GiB, past the {EXTERNAL_DATA_THRESHOLD / 2**30:.2f} GiB "
                        f"an in-memory ONNX model can hold (protobuf's 2 GiB): build it to a file, which keeps them "
                        f"as external data ({cli})")
    if size >= EXTERNAL_DATA_THRESHOLD:
        raise ArchError(f"the model's weights take {size / 2**30:.2f} GiB, past the "
                        f"{EXTERNAL_DATA_THRESHOLD / 2**30:.2f} GiB an in-memory ONNX model can hold (protobuf's "
                        "2 GiB, less room for the graph): build it to a file first, which keeps the weights as "
                        "external data (`archdsl build SPEC -o M.onnx`, then `archdsl run M.onnx`; from Python, "
                        "archdsl.driver.build_file(archdsl.driver.load(path), None, archdsl.driver.CompileOptions(), "
                        "'M.onnx')), or from Python compile with with_weights=False (the parameters become inputs)")


def _drops_dead_code(level: int, disabled, inference: bool) -> bool:
    """Whether the passes at this level remove results that reach no output (else the model keeps them)."""
    from .passes import passes_for
    return any(p.name == "dead_code" for p in passes_for(level, tuple(disabled), inference=inference))


def given_weights(options: CompileOptions) -> dict | None:
    """The weights the options name: a file's arrays, or a dict's (torch tensors on the CPU too)."""
    w = options.weights
    if isinstance(w, Mapping):
        return dict_arrays(w)
    return load_weights(w) if w else None


def _weights_file(options: CompileOptions):
    return None if isinstance(options.weights, Mapping) else options.weights


def opset_range() -> tuple[int, int]:
    """The opsets a build can target: MIN_OPSET up to the newest the installed onnx knows."""
    return MIN_OPSET, onnx.defs.onnx_opset_version()


def _check_options(options: CompileOptions, train: bool = False) -> int | None:
    """The options' opset (None: the default), after checking what the API takes unchecked: the opset, the
    optimization level and the seed (the CLI's flags check the same before they get here)."""
    if not isinstance(options, CompileOptions):  # a dict: an AttributeError on .opset (review116)
        raise ArchError(f"options takes a CompileOptions (archdsl.driver.CompileOptions(opt_level=2, ...)), got "
                        f"{type(options).__name__} {str(options)[:80]!r}")
    low, top = opset_range()
    opset = options.opset
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, numbers.Integral)):
        raise ArchError(f"opset must be an integer, got {opset!r}")
    if opset is not None and not low <= opset <= top:
        raise ArchError(f"opset {opset} is not supported ({low}..{top}, the newest this onnx knows)")
    if not isinstance(options.opt_level, numbers.Integral) or isinstance(options.opt_level, bool) or \
            options.opt_level not in (0, 1, 2):  # 2.0 passed, where opset=17.0 is refused
        raise ArchError(f"opt_level must be 0, 1 or 2, got {options.opt_level!r}")
    passes = options.disabled_passes
    if not isinstance(passes, (list, tuple)) or not all(isinstance(p, str) for p in passes):
        raise ArchError(f"disabled_passes takes a list of pass names, got {passes!r}")
    w = options.weights
    if hasattr(w, "state_dict") and hasattr(w, "parameters") and not isinstance(w, Mapping):  # a torch module
        raise ArchError(f"weights takes a dict of arrays by parameter name, got the torch module {type(w).__name__} "
                        "itself: pass its state_dict() (weights=module.state_dict())")
    if w is not None and not isinstance(w, (str, os.PathLike, Mapping)) or w == "":
        raise ArchError(f"weights takes the path of a .npz or .safetensors file, or a dict of arrays by parameter "
                        f"name, got {type(w).__name__} {str(w)[:80]!r}")
    if isinstance(w, (str, os.PathLike)) and "\0" in os.fspath(w):  # os.stat's ValueError before
        raise ArchError(f"weights: the path holds a NUL byte: {os.fspath(w)[:80]!r}")
    if isinstance(w, Mapping) and not all(isinstance(k, str) for k in w):
        bad = next(k for k in w if not isinstance(k, str))
        raise ArchError(f"weights: the keys are parameter names (strings), got {type(bad).__name__} {bad!r}")
    seed = options.seed
    check_seed(seed)
    import numpy as np
    if not isinstance(options.with_weights, (bool, np.bool_)):  # "no" was true; numpy's bool is taken, as
        # seed= and opset= take numpy's integers
        raise ArchError(f"with_weights must be true or false, got {options.with_weights!r}")
    if not options.with_weights and w is not None:  # built, and the metadata named weights it did not hold
        raise ArchError("weights= and with_weights=false: the parameters are inputs without weights, so the given "
                        "weights would be dropped; leave one of the two out")
    if w is not None and seed and not train:  # what `build --seed N --weights W` refuses (a train step's dropout
        raise ArchError("seed= draws the random initialization, which weights= replaces (they give every "
                        "parameter); leave one of the two out")  # draws from the seed)
    return opset


def _module(mod, fn: str) -> Module:
    """A loaded module, or an ArchError saying how to get one (a spec's path: an AttributeError deep inside)."""
    if not isinstance(mod, Module):
        raise ArchError(f"{fn} takes a loaded module, archdsl.driver.load(path), got {type(mod).__name__} "
                        f"{str(mod)[:80]!r}")
    return mod


def optimize_keeping_params(graph: Graph, options: CompileOptions, opset: int) -> list:
    """The passes that leave every parameter as written and named (no BatchNorm folding, no pre-transposed
    weights): -O1's cleanups, then at -O2 the ones safe before autodiff (narrow_rows). For a model whose
    parameters come from outside by name: the train step's eval model, a model built without weights."""
    from .passes import TRAIN_LEVEL, PassContext, optimize
    disabled = tuple(options.disabled_passes)
    stats = optimize(graph, min(options.opt_level, TRAIN_LEVEL), disabled, PassContext(opset=opset, inference=True))
    return stats + optimize(graph, options.opt_level, disabled,
                            PassContext(opset=opset, inference=True, train_forward=True))


def optimize_graph(graph: Graph, options: CompileOptions, opset: int) -> list:
    """The pass pipeline between elaboration and lowering (archdsl/passes), in place; per-pass stats."""
    from .ops._kernels import runs_natively
    from .passes import PassContext, optimize
    if opset >= 23 and options.opt_level >= 2:  # fuse_attention will ask: probe (and load onnxruntime) now,
        runs_natively("Attention", opset)     # so that --report times the passes alone
    ctx = PassContext(opset=opset, inference=not getattr(options, "train", False))
    return optimize(graph, options.opt_level, tuple(options.disabled_passes), ctx)


@dataclass
class CompiledTrain:
    """A train-step model, its eval model (the inference graph with every parameter and buffer an
    overridable input) and what the step reads and writes (autodiff.TrainStep)."""

    step_model: onnx.ModelProto
    eval_model: onnx.ModelProto
    info: object
    graph: Graph
    unused: list = field(default_factory=list)  # results that reach no output, as written (ir.Unused)
    digest: str = ""  # of the elaborated graph (training.identity): what a checkpoint's resume compares


def build_train(mod: Module, model: str | None, options: CompileOptions, train,
                sources: SourceMap | None = None) -> CompiledTrain:
    """`train` is an autodiff.TrainConfig. The step runs the -O1 cleanups only (passes.TRAIN_LEVEL): passes
    that derive new parameters (BatchNorm folding, pre-transposed weights) would hide the parameters the step
    updates by name. At -O2 the forward graph first gets the train_forward passes (narrow_rows), before
    autodiff differentiates it, and so does the eval model."""
    _module(mod, "build_train")
    with _no_cyclic_gc():  # as build: the forward, step and eval graphs are cyclic and alive to the end
        return _build_train(mod, model, options, train, sources)


def _build_train(mod: Module, model: str | None, options: CompileOptions, train,
                 sources: SourceMap | None) -> CompiledTrain:
    from .autodiff import limits
    from .elaborate.scalars import Limits
    from .passes import TRAIN_LEVEL, PassContext, optimize
    from .runtime import newest_opset
    from .training.export import expose_initializers, lower_train_step
    from .training.identity import graph_digest
    name = _one_model(mod, model)
    opset = _check_options(options, train=True) or newest_opset()
    _check_train(train, options)
    weights = given_weights(options)
    meta = model_metadata(mod, name, options.seed, options.weights)
    level = min(options.opt_level, TRAIN_LEVEL)
    ev = elaborate_model(mod, name)
    limits.check_model_size(ev, Limits.nodes)
    limits.check_train_memory(ev, train, limits.available_memory())
    forward = len(ev.nodes)
    meta.update(int_input_metadata(ev))  # the eval model's and the step's: `archdsl run` draws their ids and lengths
    with noting_overrides(mod):  # the -D values the failing lines read, as a build's (_build)
        weights = checked_weights(weights, ev, _weights_file(options))
        optimize_keeping_params(ev, options, opset)
        check_computed_constants(ev, opset)
        ev_weights = {k: v for k, v in weights.items() if k in ev.params} if weights else None
        eval_model = lower_graph(ev, opset=opset, seed=options.seed, weights=ev_weights, metadata=meta,
                                 doc=f"{name} (eval) from {source_name(mod)} (archdsl {__version__})").model
    expose_initializers(eval_model, list(ev.params))
    graph = elaborate_model(mod, name)
    # the forward keeps a dead result until the whole step is optimized: kept where dead_code does not run then
    kept = not _drops_dead_code(level, options.disabled_passes, inference=False)
    unused = [replace(u, kept=kept) for u in unused_results(graph)]
    digest = graph_digest(graph)  # before any pass: the same whatever the opset, -O level or runtime
    optimize(graph, options.opt_level, tuple(options.disabled_passes),
             PassContext(opset=opset, inference=False, train_forward=True))
    train_ctx = PassContext(opset=opset, inference=False)

    def optimize_step(step: Graph) -> None:
        limits.check_step_size(step, ev, forward, Limits.nodes)
        optimize(step, level, tuple(options.disabled_passes), train_ctx)
    step_model, info = lower_train_step(
        graph, train, opset=opset, seed=options.seed, weights=weights, metadata=meta, optimize=optimize_step,
        doc=f"{name} train step from {source_name(mod)} (archdsl {__version__})")
    held = set(info.params) | set(info.buffers)  # a parameter nothing reads stays in the step (unchanged, as torch)
    unused = [replace(u, kept=u.kept or (u.node is None and u.names[0] in held),
                      params_stay=u.node is not None and not u.kept and any(n in held for n in u.names))
              for u in unused]
    return CompiledTrain(step_model, eval_model, info, graph, unused, digest)


def _check_train(train, options: CompileOptions) -> None:
    """The API's train= and options, before anything is lowered: a dict or None for train was an
    AttributeError, and with_weights=False was taken and ignored (a step holds its weights as its state)."""
    from .autodiff import TrainConfig
    if not isinstance(train, TrainConfig):
        raise ArchError(f"train takes an archdsl.autodiff.TrainConfig (TrainConfig(lr=0.1, optimizer="
                        f"OptimConfig(\"adamw\"))), got {type(train).__name__} {str(train)[:80]!r}")
    if not options.with_weights:
        raise ArchError("with_weights=false does not apply to a train step: it holds its weights, as its state")
    train.validate()


def compile_train_file(path, train, defines=None, model: str | None = None, **options) -> CompiledTrain:
    """The train step and eval model of a `.arch` file (in memory); `train` is an autodiff.TrainConfig."""
    opts = _options(options, ("defines", "model"))  # (it offered file=, then refused it: api3 hunt)
    sources = SourceMap()
    with _shown_from(sources):
        mod = load(path, defines=defines, search_path=opts.search_path, sources=sources)
        ct = build_train(mod, _api_model(mod, model), opts, train, sources)
        _fits_in_memory(ct.graph, "the train step's state (parameters, buffers, optimizer slots)",
                        "`archdsl build SPEC --train -o T.onnx`")  # it came back, and every use raised EncodeError
        return _warned(ct)  # the train step's own warnings too


def _options(options: dict, named: tuple = ("defines", "model", "file")) -> CompileOptions:
    """Keyword options of the API as CompileOptions; an unknown one is an ArchError naming the known ones
    (`named`: the function's own parameters, listed and suggested too)."""
    import dataclasses
    known = [f.name for f in dataclasses.fields(CompileOptions)]
    unknown = [k for k in options if k not in known]
    if unknown:
        _unknown_option(unknown[0], [*named, *known])
    return CompileOptions(**options)


def _unknown_option(name: str, known: list[str]):
    from .diagnostics import did_you_mean
    raise ArchError(f"unknown option '{name}'{did_you_mean(name, known)} (options: {', '.join(known)})")


def compile_file(path, defines=None, model: str | None = None, **options) -> onnx.ModelProto:
    """Compile a `.arch` file to an ONNX model (in memory). Raises ArchError on bad input; what `archdsl build`
    warns of comes as an ArchWarning (Python's warnings)."""
    opts = _options(options, ("defines", "model"))
    sources = SourceMap()
    with _shown_from(sources):
        mod = load(path, defines=defines, search_path=opts.search_path, sources=sources)
        return _warned(build(mod, _api_model(mod, model), opts, sources)).model


def compile_source(text: str, defines=None, model: str | None = None, file: str = "<string>",
                   **options) -> onnx.ModelProto:
    """compile_file for a spec's text (`file` names it in diagnostics and resolves its imports)."""
    _text(text)
    opts = _options(options)
    sources = SourceMap()
    with _shown_from(sources):
        mod = load(text=text, file=file, defines=defines, search_path=opts.search_path, sources=sources)
        return _warned(build(mod, _api_model(mod, model), opts, sources)).model


def warning_messages(graph: Graph, unused) -> list[tuple[str, Span | None]]:
    """What check and build warn of: the elaboration's warnings (a symbolic dim's name given another value),
    each once (a block called again said them twice), then one per place that makes a computation no output
    reads (the build drops it, and its parameters): a loop that leaves 8000 results unread warned 8000 times
    at one line; once, with the count."""
    said = list(dict.fromkeys(graph.warnings))
    at: dict = {}
    for u in unused:
        at.setdefault(u.span, []).append(u)
    said += [(us[0].message() + (f" (and {len(us) - 1:,} more made here, as a loop or a block called again runs "
                                 f"it, {sum(u.params for u in us):,} "
                                 f"{'values' if us[0].node is None else 'parameters'} in all)"
                                 if len(us) > 1 else ""), span) for span, us in at.items()]
    return said


def _warned(c):
    """A Compiled or CompiledTrain, its warnings given as the command line prints them."""
    _api_warnings(c.graph, c.unused)
    return c


def _api_warnings(graph: Graph, unused) -> None:
    """The warnings the command line prints, as ArchWarning: the API printed nothing and kept them in an
    undocumented list, so a library user never saw torch's argument order read otherwise."""
    import warnings

    from .diagnostics import ArchWarning
    for text, span in warning_messages(graph, unused):
        where = f"{span.file}:{span.line}:{span.col}: " if span is not None else ""
        warnings.warn(ArchWarning(where + text), stacklevel=4)  # the caller of compile_source, check_file, ...


def check_file(path, defines=None, model: str | None = None, search_path=(), **unknown) -> Graph:
    """The checked IR of one model, for inspection (`archdsl.ir.print_graph(g)`)."""
    if unknown:  # compile_file's options (opset=) mean nothing here: an ArchError, as compile_file's typos
        _unknown_option(next(iter(unknown)), ["defines", "model", "search_path"])
    sources = SourceMap()
    with _shown_from(sources):
        mod = load(path, defines=defines, search_path=search_path, sources=sources)
        return _checked(elaborate_model(mod, _one_model(mod, _api_model(mod, model))), mod)


def _checked(g: Graph, mod: Module) -> Graph:
    """As `archdsl check`: values computed from constants too (a zero divisor, a length past its steps)."""
    from .runtime import newest_opset
    with noting_overrides(mod):
        check_computed_constants(g, newest_opset, live_only=True)
    _api_warnings(g, unused_results(g))
    return g


def check_source(text: str, defines=None, model: str | None = None, file: str = "<string>",
                 search_path=(), **unknown) -> Graph:
    if unknown:
        _unknown_option(next(iter(unknown)), ["defines", "model", "file", "search_path"])
    _text(text)
    sources = SourceMap()
    with _shown_from(sources):
        mod = load(text=text, file=file, defines=defines, search_path=search_path, sources=sources)
        return _checked(elaborate_model(mod, _one_model(mod, _api_model(mod, model))), mod)


@contextlib.contextmanager
def _shown_from(sources: SourceMap):
    """An API call's ArchError keeps the texts it was compiled from, for diagnostics.render to show: the
    source line of compile_source(text, file="specs/x.arch") came from the file on disk (another line),
    and "<string>" showed none."""
    try:
        yield
    except ArchError as e:
        if getattr(e, "sources", None) is None:
            e.sources = sources
        raise


def _api_model(mod: Module, model):
    """model= checked in the API's words (a wrong one said '--model NAME')."""
    if model is not None:
        select_models(mod, model, "model={!r}")
    return model


def _text(text) -> None:
    if not isinstance(text, str):  # None fell through to loading a file
        raise ArchError(f"the spec's text must be a str, got {type(text).__name__}")


def build_file(mod: Module, model: str | None, options: CompileOptions, out: str | Path,
               external_data: bool | None = None, sources: SourceMap | None = None) -> tuple[Compiled, list[Path]]:
    """`archdsl build`: compile and write `out` atomically, the weights streamed into the file as they are
    generated (lower/stream.py), so no ModelProto ever holds them. External data when asked or past 2 GiB.
    The returned Compiled's model is the skeleton (no weights); with_weights=False writes the model whose
    parameters are inputs, whole."""
    if isinstance(out, bool) or not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise ArchError(f"out takes the path of the .onnx file to write, got {out!r}")
    _module(mod, "build_file")  # (api3 hunt)
    _check_options(options)  # before given_weights reads a checkpoint of gigabytes
    if external_data not in (None, True, False):  # "yes" was taken as true (review116)
        raise ArchError(f"external_data takes true, false or None (past 2 GiB), got {external_data!r}")
    _not_over_inputs(mod, options, out, external_data)
    if not options.with_weights:  # the parameters are inputs: no weights to stream (all of them were written)
        compiled = build(mod, model, options, sources)
        with writing(out):
            return compiled, write_model(compiled.model, out, external_data)
    weights = given_weights(options)
    with _no_cyclic_gc():
        compiled = build(mod, model, options, sources, weights, skeleton=True)
        with writing(out):  # the weights were checked in build, under the -D notes; a write error has none
            return compiled, _write_streamed(compiled, options, weights, out, external_data)


def _not_over_inputs(mod: Module, options: CompileOptions, out, external_data: bool | None) -> None:
    """build -o's refusal, for the API too: build_file(mod, None, opts, "spec.arch") replaced the spec it
    compiled, and weights="w.npz" with out "w.npz" the checkpoint it read (review116)."""
    weights = options.weights if isinstance(options.weights, (str, os.PathLike)) else None
    ins = {"spec": None if mod.path.startswith("<") else mod.path, "weights": weights,
           **{f"imported {Path(f).name}": f for f in mod.imports}}
    outs = {"out": out, **({"out's external data": f"{os.fspath(out)}.data"} if external_data else {})}
    files.refuse_overwriting(outs, ins)


def _write_streamed(compiled: Compiled, options: CompileOptions, weights: dict | None, out: str | Path,
                    external_data: bool | None) -> list[Path]:
    from .lower import param_arrays, write_streaming
    g = compiled.graph
    sizes = g.param_bytes().values()
    if external_data is None:
        external_data = sum(sizes) >= EXTERNAL_DATA_THRESHOLD
    out = files.resolved(out)
    if files.is_special(out):  # -o /dev/null: written into, not replaced
        no_external_data_beside(out, external_data, max(sizes, default=0))
        with files.open_special(out) as f:
            write_streaming(compiled.model, param_arrays(g, options.seed, weights, chunked=True), f)
        return [out]
    parent = out.parent if str(out.parent) else Path(".")
    data_name = data_file_name(out) if external_data else None
    if external_data:
        not_a_directory(parent / data_name)  # before the weights are generated, not when moving them in place
    st = Staged(parent / out.name, data_name=data_name)
    try:
        st.make_temp()
        with open(st.tmp / out.name, "wb") as f:
            if external_data:
                with open(st.tmp / data_name, "wb") as data:
                    write_streaming(compiled.model, param_arrays(g, options.seed, weights, chunked=True), f, data,
                                    data_name)
                if not (st.tmp / data_name).stat().st_size:  # empty when every tensor is under 1 KiB
                    (st.tmp / data_name).unlink()
            else:
                write_streaming(compiled.model, param_arrays(g, options.seed, weights, chunked=True), f)
        return commit_all([st])
    finally:
        cleanup_all([st])
