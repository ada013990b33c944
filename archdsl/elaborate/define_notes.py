"""Which -D values a diagnostic shows: those its lines may depend on. Every -D value was shown under every
error, so `-D flag=true` read as the cause of a reshape error on a line that never reads flag."""

from __future__ import annotations

import contextlib
import dataclasses
import re

from ..diagnostics import ArchError, DefineError, Span
from ..syntax import ast as A

__all__ = ["noting_overrides"]


@contextlib.contextmanager
def noting_overrides(mod):
    """A diagnostic from a spec built with -D values also shows those its lines may read: the failing line
    names the param (or a let computed from it), not the value the command line gave it. `mod`: a Module."""
    try:
        yield
    except DefineError:
        raise
    except ArchError as e:
        bearing = _bearing(mod.ast, [s for s in [e.span, *(s for _, s in e.notes)]
                                     if isinstance(s, Span) and s.file == mod.ast.file])
        notes = [(f"param '{name}' is set by -D here", span) for name, span in mod.overrides.items()
                 if bearing is None or name.split(".", 1)[0] in bearing]
        if "-D" in e.message:  # "give T a number: ... or a param (-D sets it)" where T already is one
            notes += [(f"'{i.name}' is the file's `param {i.name} = none`: -D {i.name}=SIZE gives it a number", i.span)
                      for i in mod.ast.items if isinstance(i, A.ParamDecl) and mod.params.get(i.name, 0) is None
                      and re.search(rf"(?<![\w.]){re.escape(i.name)}\b", e.message)]
        e.notes.extend(n for n in notes if n not in e.notes)  # once, where two of these nest
        raise


def _bearing(tree: A.Module, spans: list[Span]) -> set[str] | None:
    """The names the code on the diagnostic's lines may depend on: those written there, the conditions, loops
    and counts around it, the arguments where the block it is in is called, and, through every assignment,
    let, param, block and model of the file (by name, whatever the scope: more rather than fewer), what those
    are computed from. None: no line of this file."""
    if not spans:
        return None
    lines = [(s.line, s.end_line) for s in spans]
    blocks = {i.name for i in tree.items if isinstance(i, A.BlockDef)}
    deps: dict[str, set[str]] = {}
    calls: dict[str, list[tuple[set[str], str | None]]] = {}  # block -> (names read where called, caller block)
    seeds: set[str] = set()

    def on(line: int, end: int | None = None) -> bool:
        return any(a <= (end or line) and line <= b for a, b in lines)

    def depend(targets, names: set[str]) -> None:
        for t in targets:
            if isinstance(t, tuple):
                depend(t, names)
            else:
                deps.setdefault(t, set()).update(names)

    def walk(stmts, around: set[str], owner: str | None) -> None:
        for s in stmts:
            head, inner = _header(s)
            for b in head & blocks:
                calls.setdefault(b, []).append((head | around, owner))
            if any(on(a, b) for a, b in _header_lines(s)):
                seeds.update(head | around)
            if isinstance(s, A.If):
                for _, body in s.branches:
                    walk(body, around | head, owner)
                walk(s.orelse, around | head, owner)
            elif inner is not None:
                if isinstance(s, A.For):
                    depend(s.targets, head | around)
                elif isinstance(s, A.Repeat) and s.var:
                    depend((s.var,), head | around)
                walk(inner, around | head, owner)
            elif isinstance(s, A.Assign):
                depend(s.targets, head | around)
            elif isinstance(s, A.Let):
                depend((s.name,), head | around)

    inside: list[str] = []  # the blocks whose lines the diagnostic is on
    for item in tree.items:
        if isinstance(item, (A.ParamDecl, A.Let)):
            names = _names(item.value)
            depend((item.name,), names)
            if on(item.span.line, item.span.end_line):
                seeds.update(names)
        elif isinstance(item, (A.BlockDef, A.ModelDef)):
            depend((item.name,), _names(item))
            parts = item.formals if isinstance(item, A.BlockDef) else item.inputs
            header = _names(parts)
            if on(item.span.line, max([item.span.line] + [p.span.end_line for p in parts])):
                seeds.update(header)
            if isinstance(item, A.BlockDef) and on(item.span.line, item.span.end_line):
                inside.append(item.name)
            walk(item.body, header if isinstance(item, A.ModelDef) else set(),
                 item.name if isinstance(item, A.BlockDef) else None)
        elif on(item.span.line, item.span.end_line):  # a file-level assert
            seeds.update(_names(item))
    done: set[str] = set()
    while inside:  # a block's error may come from what it was given: its callers' arguments, and theirs
        b = inside.pop()
        if b not in done:
            done.add(b)
            for names, caller in calls.get(b, ()):
                seeds.update(names)
                if caller is not None:
                    inside.append(caller)
    if done & _held_as_values(tree, blocks):  # g = mlp; g(x, hidden): the callers are not found by name
        return None
    seen, todo = set(), list(seeds)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(deps.get(n, ()))
    return seen


def _held_as_values(tree: A.Module, blocks: set[str]) -> set[str]:
    """The blocks the file names other than to call them (`g = mlp`, `[mlp, other]`, an argument)."""
    held, todo = set(), [(tree, False)]
    while todo:
        e, callee = todo.pop()
        if isinstance(e, A.Name):
            if e.id in blocks and not callee:
                held.add(e.id)
        elif isinstance(e, A.Call):
            todo += [(e.func, True), (e.args, False), (e.kwargs, False)]
        elif isinstance(e, A.Pipe):
            todo += [(e.left, False), (e.right, True)]
        elif isinstance(e, A.Labelled):
            todo += [(e.expr, callee), (e.label, False)]
        elif dataclasses.is_dataclass(e) and not isinstance(e, Span):
            todo.extend((getattr(e, f.name), False) for f in dataclasses.fields(e))
        elif isinstance(e, (tuple, list)):
            todo.extend((x, False) for x in e)
    return held


def _header_lines(s) -> list[tuple[int, int]]:
    """The lines of a statement's own part: a simple one's whole span, a compound one's header (its condition,
    items or count, over as many lines as they take; an if's elif conditions too)."""
    if isinstance(s, A.If):
        return [(s.span.line, s.branches[0][0].span.end_line)] + [(c.span.line, c.span.end_line)
                                                                   for c, _ in s.branches[1:]]
    if isinstance(s, A.For):
        return [(s.span.line, s.iter.span.end_line)]
    if isinstance(s, A.Repeat):
        return [(s.span.line, s.count.span.end_line)]
    return [(s.span.line, s.span.end_line)]


def _header(s) -> tuple[set[str], tuple | None]:
    """The names a statement reads itself (a compound one's condition, items or count), and its body (None for
    a simple statement)."""
    if isinstance(s, A.If):
        return {n for c, _ in s.branches for n in _names(c)}, ()
    if isinstance(s, A.For):
        return _names(s.iter), s.body
    if isinstance(s, A.Repeat):
        return _names(s.count), s.body
    return _names(s), None


def _names(node) -> set[str]:
    return {n.id for n in A.names_in(node)}
