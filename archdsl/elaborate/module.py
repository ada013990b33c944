"""Files: parse, follow imports, evaluate params (with -D overrides), lets and blocks; then
elaborate one model into a checked IR graph."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import (
    ArchError,
    ArchSyntaxError,
    ArchTypeError,
    DefineError,
    ImportCycleError,
    ImportNotFoundError,
    LimitError,
    SourceMap,
    Span,
    UnknownNameError,
    did_you_mean,
    printable,
)
from ..ir import Graph, check
from ..syntax import MAX_SOURCE_BYTES, deep_recursion, normalize_source, parse
from ..syntax import ast as A
from ..types import DTYPES, Sym, TensorType, dim_size, dim_symbols, unknown_dtype
from .bounded import comparing, equal
from .define_notes import noting_overrides
from .defines import FileNames, define_label, override, override_field
from .evaluator import Evaluator
from .scalars import Limits, ReturnValue, check_elements
from .values import BlockFn, Builtin, Env, Namespace, OpFn, Tensor, describe

__all__ = ["Module", "load_file", "load_source", "elaborate_model", "MAX_IMPORT_DEPTH"]

MAX_IMPORT_DEPTH = 32


@dataclass
class Module:
    path: str
    ast: A.Module
    env: Env
    models: dict[str, A.ModelDef] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    overrides: dict[str, Span] = field(default_factory=dict)  # params set by -D: where their value was written
    aliases: dict[str, list[str]] = field(default_factory=dict)  # `import "..." as NAME`: NAME -> its params
    imported_params: dict[str, object] = field(default_factory=dict)  # NAME.param of `import as NAME`: metadata
    unaliased: dict[str, str] = field(default_factory=dict)  # a param seen through `import "p"` (no as) -> p
    imported_models: set[str] = field(default_factory=set)  # models of the files imported without `as`
    declared_in: dict[str, str] = field(default_factory=dict)  # a param seen through `import "p"` -> its file,
    # as the imports spell it from this file's folder ("lib/k.arch" for k.arch imported by lib/m.arch)
    imports: list[str] = field(default_factory=list)  # every file it imports, directly or not (resolved paths):
    # what a build must not write over


@dataclass
class _Loader:
    sources: SourceMap
    search_path: list[Path]
    cache: dict[str, Module] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)

    def resolve(self, rel: str, importer: str, span: Span) -> Path:
        base = Path(importer).parent if not importer.startswith("<") else Path.cwd()
        tried = [base / rel] + [Path(p) / rel for p in self.search_path]
        for cand in tried:
            if _is_file(cand, span):
                return cand.resolve()
        there = next((t for t in tried if t.exists()), None)  # a directory, a device: found, and not a spec
        if there is not None:
            what = "a directory, not a .arch file" if there.is_dir() else "not a regular file (a .arch spec is one)"
            raise ImportNotFoundError(f'import "{printable(rel)}": {printable(str(there))} is {what}', span)
        folders = dict.fromkeys(t.parent for t in tried)  # -I inc twice, or the importer's own folder: once
        where = ", ".join(printable(str(f)) + ("" if f.is_dir() else " (a file, not a folder)" if f.exists() else
                                    " (no such folder)") for f in folders)
        raise ImportNotFoundError(f'cannot find "{printable(rel)}" (looked in {where})', span)

    def load_path(self, path: Path, span: Span | None, defines=None, prefix: str = "") -> Module:
        key = str(path)
        if key in self.stack:
            cycle = " -> ".join(Path(p).name for p in self.stack[self.stack.index(key):] + [key])
            raise ImportCycleError(f"import cycle: {cycle}", span)
        cached = key + (repr(sorted((k, repr(v[0])) for k, v in defines.items())) if prefix and defines else "")
        if cached in self.cache:  # an import given -D values (-D lib.width=16) is a module of its own
            return self.cache[cached]
        if len(self.stack) > MAX_IMPORT_DEPTH:  # the stack holds the spec itself and the imports above this one
            raise LimitError(f"imports nested deeper than {MAX_IMPORT_DEPTH}", span)
        if span is not None and path.suffix.lower() == ".onnx":  # its bytes read as garbled characters
            raise ImportNotFoundError(f"{_display(path)} is a compiled ONNX model, not a .arch spec: import takes "
                                      ".arch files", span)
        try:
            with open(path, "rb") as f:  # no more than the size limit allows (parse's check), with room for CRLFs
                raw = f.read(2 * MAX_SOURCE_BYTES + 1)  # and UTF-16: a 1 GB file took 9 s and 3.2 GB (cli5 hunt)
        except OSError as e:
            raise ImportNotFoundError(f"cannot read {path}: {e.strerror or e}", span) from None
        if len(raw) > 2 * MAX_SOURCE_BYTES:  # its first line shown from what was read, not the whole file again
            self.sources.add(_display(path), raw[:1000].decode("utf-8", "replace").partition("\n")[0])
            raise LimitError(f"source file is larger than {MAX_SOURCE_BYTES // 2**20} MiB",
                             Span(_display(path), 1, 1, 1, 2))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(raw, e, _display(path), self.sources) from None
        if (order := _utf16_order(raw)) is not None:  # ASCII as UTF-16 is valid UTF-8: the lexer met its NULs
            self.sources.add(_display(path), raw.decode("utf-16-le" if order[0] == "l" else "utf-16-be", "replace"))
            raise ArchSyntaxError(f"the file is UTF-16 ({order}, without a byte-order mark), not UTF-8: every other "
                                  "byte is 0; save it as UTF-8", Span(_display(path), 1, 1, 1, 2))
        mod = self.load_text(text, _display(path), defines, key, prefix)
        self.cache[cached] = mod
        return mod

    def load_text(self, text: str, file: str, defines=None, key: str | None = None, prefix: str = "") -> Module:
        text = normalize_source(text)  # the excerpts show the lines the parser numbered
        self.sources.add(file, text)
        key = key or file
        self.stack.append(key)
        try:
            return _evaluate_items(parse(text, file, normalized=True), self, defines or {}, prefix)
        finally:
            self.stack.pop()


def _not_utf8(raw: bytes, e: UnicodeDecodeError, file: str, sources: SourceMap) -> ArchSyntaxError:
    """Where the first byte that is not UTF-8 sits, shown like any other syntax error."""
    line = raw.count(b"\n", 0, e.start) + 1
    col = len(raw[raw.rfind(b"\n", 0, e.start) + 1:e.start].decode("utf-8", errors="replace")) + 1
    sources.add(file, raw.decode("utf-8", errors="replace"))
    return ArchSyntaxError(f"the file is not UTF-8: byte 0x{raw[e.start]:02x} here begins no valid character; "
                           "save it as UTF-8", Span(file, line, col, line, col + 1))


def _utf16_order(raw: bytes) -> str | None:
    """'little-endian' or 'big-endian' where the file's first characters are ASCII written as UTF-16 (a 0 byte
    beside each), else None (cli4 hunt: 'unexpected character' at the first NUL)."""
    head = raw[:64] if len(raw) % 2 == 0 or len(raw) > 64 else b""
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if not any(odd) and all(even):
        return "little-endian"
    if not any(even) and all(odd):
        return "big-endian"
    return None


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except (ValueError, OSError):  # a working directory deleted under us: "internal error" (cli5 hunt)
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _evaluate_items(tree: A.Module, loader: _Loader, defines: dict, prefix: str = "") -> Module:
    """`prefix` (`lib.`) is how the -D names of an imported file were written, for its messages."""
    env = Env({}, None)
    mod = Module(tree.file, tree, env)
    ev = Evaluator(None)
    for item in tree.items:  # blocks are visible to every let and model in the file
        if isinstance(item, A.BlockDef):
            _define(env, item.name, BlockFn(item, env), item.span)
    unused = dict(defines)
    with noting_overrides(mod):
        _evaluate_in_order(tree, loader, defines, mod, env, ev, unused, prefix)
    for name, entry in unused.items():
        _unused_define(name, entry, tree, mod, prefix)
    return mod


def _unused_define(name: str, entry: tuple, tree: A.Module, mod: Module, prefix: str) -> None:
    """The diagnostic for a -D (or defines key) no param of the file took (the file's params are named from its
    declarations: an error above them may come first)."""
    _, span, *rest = entry
    span = rest[0] if rest else span
    if "." in name:
        alias = name.split(".")[0]
        aliases = list(mod.aliases) + [i.alias for i in tree.items if isinstance(i, A.Import) and i.alias]
        raise DefineError(f"{define_label(prefix + name, span)}: {Path(tree.file).name} imports no file as '{alias}'"
                          f"{did_you_mean(alias, aliases)} ({'-D ' if span else 'the key '}ALIAS.NAME "
                          f"sets a param of the file imported as ALIAS)", span)
    if name in mod.unaliased:  # visible here, but its value was fixed when that file was evaluated
        raise DefineError(f"{define_label(prefix + name, span)}: the param '{name}' comes from import "
                          f"\"{mod.unaliased[name]}\", which has no 'as'; -D sets the params of this file, "
                          f"or of a file imported `as NAME` with -D {prefix}NAME.{name}=...", span)
    seen = list(dict.fromkeys([i.name for i in tree.items if isinstance(i, A.ParamDecl)] + list(mod.unaliased)))
    owners = [a for a, names in mod.aliases.items() if name in names]
    if owners:  # the exact name in an imported file beats a close one here
        raise DefineError(f"{define_label(prefix + name, span)}: {Path(tree.file).name} has no param '{name}'; the "
                          f"file imported as '{owners[0]}' has: -D {prefix}{owners[0]}.{name}=...", span)
    sized = next(((m.name, i.name) for m in tree.items if isinstance(m, A.ModelDef) for i in m.inputs
                  if any(n.id == name for d in i.dims for n in A.names_in(d))), None)
    if sized:  # -D T=8 where T is a symbolic size of an input: a name of the shape, no param
        raise DefineError(f"{define_label(prefix + name, span)}: {Path(tree.file).name} has no param '{name}': "
                          f"'{name}' is a symbolic size of model {sized[0]}'s input '{sized[1]}'; to set it "
                          f"{'by -D' if span is not None else 'in defines'}, "
                          f"declare it a param, `param {name} = none` (the size stays symbolic where none is "
                          "given)", span)
    raise DefineError(f"{define_label(prefix + name, span)}: {Path(tree.file).name} has no param '{name}'"
                      f"{did_you_mean(name, seen)}" + ("" if seen else " (it declares no params)"), span)


def _evaluate_in_order(tree: A.Module, loader: _Loader, defines: dict, mod: Module, env: Env, ev: Evaluator,
                       unused: dict, prefix: str = "") -> None:
    local = _local_names(tree)
    imported: dict[str, Span] = {}  # a name taken from an import: the import it came from
    by_param: dict[str, list[str]] = {}  # -D keys by the param they set (cfg.width: cfg); one scan, not one a param
    for k in sorted(defines):
        by_param.setdefault(k.split(".", 1)[0], []).append(k)
    for at, item in enumerate(tree.items):
        try:
            if isinstance(item, A.Import):
                given = {k[len(item.alias) + 1:]: v for k, v in defines.items() if item.alias and
                         k.startswith(item.alias + ".")}  # -D lib.width=16: the param width of `import ... as lib`
                where = loader.resolve(item.path, tree.file, item.path_span or item.span)
                target = loader.load_path(where, item.span, given, f"{prefix}{item.alias}." if item.alias else prefix)
                mod.imports.extend(f for f in (str(where), *target.imports) if f not in mod.imports)
                for k, (_, vspan, *_) in given.items():  # recorded for the -D notes
                    full = f"{item.alias}.{k}"
                    unused.pop(full, None)  # None: an alias given twice is said by _define below
                    if vspan is not None:
                        mod.overrides[full] = vspan
                # the metadata's: every param of the file and of those it imports, set or not (only those -D set
                # were recorded: an edit of the imported file left no trace, a -D of the default value changed it)
                seen = {**{k: target.env.vars[k] for k in target.unaliased if k in target.env.vars},
                        **target.params, **target.imported_params}
                # a shadowed param is PATH:NAME, PATH as the imports spell it from here: the same wherever the
                # files sit and whatever the working directory (the bytes of a build depend on neither)
                seen = {(_from_here(item.path, k) if ":" in k else k): v for k, v in seen.items()}
                if item.alias:
                    mod.imported_params.update((k if ":" in k else f"{item.alias}.{k}", v) for k, v in seen.items())
                else:  # its own and its plain imports' params are this file's plain names (mod.unaliased), but
                    mod.imported_params.update((k, v) for k, v in seen.items() if ":" in k or "." in k)
                    mod.imported_params.update((f"{_spelled(item.path, target, k)}:{k}", v)  # where this file has
                                               for k, v in seen.items() if k in local)  # its own of that name
                models = frozenset(target.models) | target.imported_models  # a model called is said to be one
                if item.alias:
                    mod.aliases[item.alias] = list(target.params)
                    _define(env, item.alias, Namespace(item.alias, target.env, models), item.span)
                else:
                    mod.imported_models |= models
                    for k, v in target.env.vars.items():
                        if k in local:
                            continue
                        if k in imported and not _same_definition(env.vars[k], v):
                            raise ArchError(f"'{k}' comes from two imports that define it differently; import one "
                                            f"of them under a name of its own (import \"{item.path}\" as other)",
                                            item.span, [(f"'{k}' first came from this import", imported[k])])
                        if k not in env.vars:
                            env.vars[k] = v
                            env.imported[k] = item.path
                            imported[k] = item.span
                            if k in target.params or k in target.unaliased:
                                mod.unaliased[k] = item.path
                                mod.declared_in[k] = _spelled(item.path, target, k)
            elif isinstance(item, A.ParamDecl):
                value = _eval_top(ev, item.value, env, tree, at)
                named = FileNames(env)  # a block -D names
                for key in by_param.get(item.name, ()):  # sorted: cfg itself before cfg.width, a field
                    try:
                        value = override(item, value, defines[key], prefix, named) if key == item.name else \
                            override_field(item, value, key, defines[key], prefix, named)
                    except ArchError as err:
                        _imported_below(err, item, tree.items[at:])
                        raise
                    unused.pop(key, None)  # None: a param declared twice is said by _define below
                    if defines[key][1] is not None:
                        mod.overrides[key] = defines[key][1]
                _define(env, item.name, value, item.span)
                mod.params[item.name] = value
            elif isinstance(item, A.Let):
                _define(env, item.name, _eval_top(ev, item.value, env, tree, at), item.span)
            elif isinstance(item, A.ModelDef):
                if item.name in mod.models:
                    raise ArchError(f"model '{item.name}' is defined twice", item.span,
                                    [("first defined here", mod.models[item.name].span)])
                mod.models[item.name] = item
            elif isinstance(item, A.Assert):
                ev.exec_stmt(item, env)
        except DefineError:
            raise
        except ArchError:  # `-D szie=small` failed the assert asking for size, or a let reading it: the typo first
            later = {i.name for i in tree.items[at:] if isinstance(i, A.ParamDecl)} | \
                {i.alias for i in tree.items[at:] if isinstance(i, A.Import) and i.alias}  # this one's own too
            declared = [i.name for i in tree.items if isinstance(i, A.ParamDecl)]
            unread = any(isinstance(i, A.Import) for i in tree.items[at:])  # an import below may hold a plain name
            for name, entry in unused.items():  # ... unless it is a near miss of this file's own param
                if name.split(".")[0] not in later and \
                        ("." in name or not unread or did_you_mean(name, declared)):
                    _unused_define(name, entry, tree, mod, prefix)
            raise


def _imported_below(err: ArchError, param: A.ParamDecl, below: list) -> None:
    """-D reads the names the file has where its param is declared: a block of an import further down (`-D
    act=lib.blk` with the import under `param act`) was an unknown name, said without why (review102 hunt)."""
    missing = re.search(r"(?:unknown name|no op or block named) '([^']+)'", err.message)
    if missing is None:
        return
    word = missing[1]
    for item in below:  # an alias it names (lib of lib.blk), else a plain import that may hold it (no near miss)
        if isinstance(item, A.Import) and (item.alias == word or not item.alias and "did you mean" not in
                                           err.message):
            err.notes.append((f"-D reads the names defined above `param {param.name}`, and this import comes after "
                              f"it: move the import above the param{'' if item.alias else f' if {word} is its'}",
                              item.span))
            return


def _beside(imported: str, path: str) -> str:
    """`path`, spelled from the file imported as `imported`, spelled from this file's folder instead."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(imported), path))


def _from_here(imported: str, key: str) -> str:
    """A PATH:NAME key of the file imported as `imported`, its PATH made relative to this file's folder."""
    path, _, name = key.rpartition(":")
    return f"{_beside(imported, path)}:{name}"


def _spelled(imported: str, target: Module, k: str) -> str:
    """The file that declares param k, seen through `import "imported"`: that file, or one it imports."""
    return _beside(imported, target.declared_in[k]) if k in target.declared_in else posixpath.normpath(imported)


def _eval_top(ev: Evaluator, expr, env: Env, tree: A.Module, at: int):
    """A param's or let's value; a name defined further down the file is said so (it was 'unknown name 'q';
    did you mean 'eq'?', for `param p = q` above `param q = 3`)."""
    try:
        return ev.eval(expr, env)
    except UnknownNameError as e:
        m = re.match(r"unknown name '(\w+)'", e.message)
        later = m and next((i for i in tree.items[at + 1:] if isinstance(i, (A.ParamDecl, A.Let)) and i.name == m[1]),
                           None)
        if not later:
            raise
        raise UnknownNameError(f"'{m[1]}' is defined further down, on line {later.span.line}: a param or let sees "
                               "only the names above it (move it up)", e.span, [("defined here", later.span)]) from None


def _same_definition(a, b) -> bool:
    """Two imports may bring one name when it is one definition (both import a third file, or the same
    library `as lib`) or an equal value; otherwise which one won would depend on the order of the imports."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, BlockFn):
        return a.defn is b.defn
    if isinstance(a, Namespace):
        return a.env is b.env
    if isinstance(a, OpFn):
        return a.op is b.op and a.called == b.called
    if isinstance(a, Builtin):
        return a.fn is b.fn
    try:
        return equal(a, b, comparing(), strict=True)  # numbers, strings, lists, dicts: [1] is not [true]
    except LimitError:  # too large to compare: not known to be the same
        return False


def _local_names(tree: A.Module) -> set[str]:
    """Names the file itself defines: they win over imported ones wherever the import stands."""
    return {item.name for item in tree.items if isinstance(item, (A.ParamDecl, A.Let, A.BlockDef))}


def _define(env: Env, name: str, value, span: Span) -> None:
    """A name once per file; a block met again as itself is no second definition. A let, param or import
    alias named like a block replaced it without a word (`f(x)` then said 'int 3 is not callable')."""
    if name in env.vars:
        old = env.vars[name]
        if not (isinstance(old, BlockFn) and isinstance(value, BlockFn) and (old is value or old.defn is value.defn)):
            raise ArchError(f"'{name}' is defined twice in this file", span)
    env.vars[name] = value


def load_file(path: str | Path, defines: dict, sources: SourceMap, search_path=()) -> Module:
    loader = _Loader(sources, [Path(p) for p in search_path])
    p = Path(path)
    if not _is_file(p, None):
        raise ImportNotFoundError(f"{path} is a directory, not a .arch file" if p.is_dir() else
                                  f"{path} is not a regular file (a pipe or a device)" if p.exists() else
                                  f"no such file: {path}")
    with deep_recursion():
        return loader.load_path(p.resolve(), None, defines)


def _is_file(p: Path, span: Span | None) -> bool:
    """Path.is_file, with the OS's refusals other than "no such file" (a name over 255 bytes) as a
    diagnostic instead of an exception."""
    try:
        return p.is_file()
    except OSError as e:
        raise ImportNotFoundError(f"cannot read {p}: {e.strerror or e}", span) from None


def load_source(text: str, file: str, defines: dict, sources: SourceMap, search_path=()) -> Module:
    loader = _Loader(sources, [Path(p) for p in search_path])
    with deep_recursion():
        return loader.load_text(text, file, defines)


def elaborate_model(mod: Module, name: str, sizes: dict[str, int] | None = None,
                    general: Graph | None = None) -> Graph:
    """Run one model's body: tensors become IR nodes; the result is shape-checked. `sizes` gives symbolic
    input dims a number (`run --dim T=40`): the spec is then checked at those sizes, its asserts included;
    `general`, the model elaborated without them, whose is_symbolic answers its branches take again."""
    g = Graph(name, mod.models[name].span)
    with noting_overrides(mod), deep_recursion():
        try:
            return _elaborate_model(mod, name, sizes or {}, g, general.symbolic_answers if general else None)
        except ArchError as err:
            raise _with_warnings(err, g) from None


def _with_warnings(err: ArchError, g: Graph) -> ArchError:
    """An error with the warnings of the calls before it as notes: conv2d(3, 16, 3) in torch's argument order,
    or channels-last images into a conv, fail layers later ("a window larger than the input"), and the
    warning that says why was printed only where the model built."""
    at = (err.span.line, err.span.col) if err.span is not None else None
    noted = {(s.line, s.col) for _, s in err.notes if s is not None}
    for said, span in g.misreads:  # (not a call's other warnings: a note beside an unrelated error misleads)
        own = span is None or (span.line, span.col) == at and at in noted  # the failing call's own: noted there
        if not own and all(said not in text for text, _ in err.notes):
            err.notes.append((f"a call before it was warned of: {said}", span))
    return err


def _elaborate_model(mod: Module, name: str, sizes: dict[str, int], g: Graph, replay: list | None) -> Graph:
    md = mod.models[name]
    ev = Evaluator(g)
    ev.symbolic_replay = replay
    g.symbolic_answers = ev.symbolic_answers
    ev.models = set(mod.models) | mod.imported_models
    env = Env({}, mod.env)
    formula_names = {n.id for inp in md.inputs for dim in inp.dims if not isinstance(dim, A.Name)
                     for n in A.names_in(dim)}
    for d in (dim for inp in md.inputs for dim in inp.dims if isinstance(dim, A.Name) and dim.id in formula_names):
        if not env.has(d.id) or env.lookup(d.id) is None:  # a symbol a formula dim reads (2 * B) that a later
            _eval_dim(ev, d, env, sizes)                    # input declares
    for inp in md.inputs:
        if inp.name in env.vars:
            raise ArchError(f"input '{inp.name}' is declared twice", inp.span)
        dt = DTYPES.get(inp.dtype)
        if dt is None:
            raise UnknownNameError(unknown_dtype(inp.dtype), inp.dtype_span)
        dims = tuple(_eval_dim(ev, d, env, sizes) for d in inp.dims)
        check_elements([d for d in dims if isinstance(d, int)], f"input '{inp.name}'", inp.span)
        env.vars[inp.name] = Tensor(g.add_input(inp.name, TensorType(dt, dims), inp.span))
    dup = next((o for i, o in enumerate(md.outputs) if o in md.outputs[:i]), None)
    if dup is not None:
        raise ArchError(f"model {name} declares output '{dup}' twice", md.span)
    returned = None
    ev.model_env = env
    try:
        ev.exec_body(md.body, env)
    except ReturnValue as r:
        returned, returned_at = r.value, r.span
    where = {}  # output -> the statement that gave it its value, for the messages below
    if returned is not None:
        where = dict.fromkeys(md.outputs, returned_at)
        vals = list(returned) if isinstance(returned, tuple) and len(md.outputs) > 1 else [returned]
        if len(vals) != len(md.outputs):
            n = len(vals)
            raise ArchTypeError(f"model {name} returns {n} value{'s' if n != 1 else ''} but declares "
                                f"{len(md.outputs)} outputs", returned_at or md.span, [("declared here", md.span)])
        outs = dict(zip(md.outputs, vals))
    else:
        outs = {}
        for o in md.outputs:
            if o not in env.vars:
                raise UnknownNameError(f"model {name} never assigns its output '{o}'", md.span)
            outs[o] = env.vars[o]
            where[o] = ev.assigned_at.get(o)  # the assignment that ran, not the last one written
    for o, v in outs.items():
        if isinstance(v, tuple) and len(md.outputs) == 1 and len(v) > 1 and all(isinstance(t, Tensor) for t in v):
            n = len(v)  # `return x, x` (or y = a block's tuple) under `-> y`
            outputs = ", ".join([o, *(f"{o}{i}" for i in range(2, n + 1))])
            raise ArchTypeError(f"output '{o}' of model {name} must be a tensor, got a tuple of {n} tensors: keep one "
                                f"of them ([0] is the first), or declare {n} outputs, -> ({outputs}), and give each "
                                "its value",
                                where.get(o) or md.span, [("declared here", md.span)])
        if not isinstance(v, Tensor):
            raise ArchTypeError(f"output '{o}' of model {name} must be a tensor, got {describe(v)}"
                                + (ev.none_hint() if v is None else ""), where.get(o) or md.span)
        same = next((w for w in [*g.inputs, g.params.get(o)] if w is not None and w.name == o), None)
        if same is not None and same is not v.value:  # one ONNX name for two values
            what = "an input" if same.kind == "input" else "a parameter"
            implicit = " (the int64 `seed` a model that draws random numbers takes)" if same in g.implicit else ""
            raise ArchError(f"output '{o}' of model {name} has the name of {what}{implicit} but another value; name "
                            f"it apart", where.get(o) or md.span)
        g.set_output(o, v.value)
    g.meta = {k: v for k, v in mod.params.items()}
    return check(g)


def _eval_dim(ev: Evaluator, d, env: Env, sizes: dict[str, int]):
    """A name nothing defines is a symbolic dim; so is a file param left at none (`param T = none`), which
    `-D T=16` turns into a number: one spec, symbolic for inference and fixed where training needs it.
    `sizes` turns a symbolic dim into its number."""
    if isinstance(d, A.Name) and d.id in ("None", "none") and not env.has(d.id):  # torch's/Keras's (None, 8)
        raise ArchTypeError(f"a dim of unknown size is a name, not {d.id}: float32[B, T, 8] (inputs sharing a name "
                            "share its size)", d.span)
    if isinstance(d, A.Name) and (not env.has(d.id) or env.lookup(d.id) is None):
        if len(d.id) > Limits.dim_name_chars:  # said at the first op as a formula "too long", all of it printed
            raise LimitError(f"a dim name of {len(d.id)} characters (the limit is {Limits.dim_name_chars})", d.span)
        dim = sizes.get(d.id) or Sym.of(d.id)  # a size of 0 stays symbolic: checked at 0, a dim shared by two
        # inputs, a reshape target or a norm over an empty T were refused where onnxruntime runs them (review49)
        env.vars[d.id] = ev.dims[d.id] = dim
        return dim
    try:
        v = ev.eval(d, env)
    except ArchError as e:  # T + 1 where no input has T: "unknown name 'T'" (or none * 2 for `param T = none`)
        free = next((n for n in A.names_in(d) if not env.has(n.id) or env.lookup(n.id) is None), None)
        if free is None or "did you mean" in e.message:  # hiden * 2 beside param hidden: a typo
            raise
        if free.id in ("None", "none"):  # [B, 2 * None]: the example below would show float32[B, None, 4]
            raise ArchTypeError(f"a dim of unknown size is a name, not {free.id}: float32[B, 2 * T] beside an input "
                                "that has T as a dim of its own", free.span) from None
        lead = "N" if free.id == "B" else "B"  # the example's batch dim: another name than the one it explains
        raise UnknownNameError(f"unknown name '{free.id}': a dim formula's symbols are other dims' (x: float32["
                               f"{lead}, {free.id}, 4] beside p: float32[{lead}, {free.id} + 1, 4]), and no input has "
                               f"{free.id} as a dim of its own", free.span) from None
    if isinstance(v, Sym):
        names = set(dim_symbols(v))  # -T, T - T*T: negative at every size of T
        if len(names) == 1 and all(dim_size(v, dict.fromkeys(names, n)) <= 0
                                   for n in (1, 2, 3, 4, 8, 64, 720720, 10 ** 12)):
            raise ArchTypeError(f"a dim must be positive, and {v} is at no size of {', '.join(sorted(names))}",
                                d.span)
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        unknown = "; a dim of unknown size is a name: float32[B, N] (a name no param or let defines)"
        raise ArchTypeError(f"a dim must be a positive integer or a symbol, got {describe(v)}"
                            + (unknown if v is None or v == -1 else ""), d.span)
    if v > Limits.dim:
        raise LimitError(f"dim {v} is over the limit of {Limits.dim}", d.span)
    return v
