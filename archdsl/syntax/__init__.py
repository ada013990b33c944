"""Front end: text to AST."""

from __future__ import annotations

import dataclasses
import sys

from lark.exceptions import VisitError

from ..diagnostics import ArchError, LimitError, Span
from ..shared_switch import SharedSwitch
from . import ast
from .parser import MAX_SOURCE_BYTES, grammar_path, is_number_literal, normalize_source, parse_tree
from .transform import ToAst

__all__ = ["parse", "parse_expr", "ast", "grammar_path", "is_number_literal", "normalize_source", "deep_recursion",
           "MAX_SOURCE_BYTES"]


def _shift_span(v: Span, span: Span) -> Span:
    """A span inside a fragment, moved to where the fragment sits in the file."""
    return Span(span.file, span.line + v.line - 1, (span.col + v.col - 1) if v.line == 1 else v.col,
                span.line + v.end_line - 1, (span.col + v.end_col - 1) if v.end_line == 1 else v.end_col)


def _shift(node, span: Span):
    """Move the spans of an expression parsed from a fragment onto its place in the file (a span in a tuple
    too: a call's keyword spans)."""
    if isinstance(node, Span):
        return _shift_span(node, span)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if isinstance(v, Span):
                changes[f.name] = _shift_span(v, span)
            elif dataclasses.is_dataclass(v) or isinstance(v, tuple):
                changes[f.name] = _shift(v, span)
        return dataclasses.replace(node, **changes)
    if isinstance(node, tuple):
        return tuple(_shift(x, span) for x in node)
    return node


def parse_expr(text: str, span: Span):
    """An expression fragment (a `{...}` hole, a `-D` value) with spans placed at `span`."""
    try:
        return _parse_expr(text, span)
    except RecursionError:  # the fragment itself nests too deeply: point at it, not at the file's deepest
        raise LimitError("expressions nested too deeply", span) from None


def _into_file(e: ArchError, span: Span) -> ArchError:
    """An error inside a `{...}` hole or a -D value, its place (and its notes') moved into the file."""
    e.span = _shift_span(e.span, span) if e.span is not None else span
    e.notes = [(note, _shift_span(s, span) if s is not None else s) for note, s in e.notes]
    return e


def _parse_expr(text: str, span: Span):
    try:
        tree = parse_tree(text, span.file, start="expr")
    except ArchError as e:  # a syntax error
        if e.message.startswith("unexpected end of file"):  # the fragment ended, not the file
            e.message = "unexpected end of the expression" + e.message.removeprefix("unexpected end of file")
            e.args = (e.message,)
        raise _into_file(e, span) from None
    try:
        node = ToAst(span.file, parse_expr).transform(tree)
    except VisitError as e:  # a literal the lexer let through (1.5_, a 1001-digit integer): as a syntax error
        if isinstance(e.orig_exc, ArchError):
            raise _into_file(e.orig_exc, span) from None
        if isinstance(e.orig_exc, RecursionError):
            raise e.orig_exc from None
        raise
    return _shift(node, span)


def parse(text: str, file: str, normalized: bool = False) -> ast.Module:
    """Source text to a Module; raises ArchSyntaxError (with a span) on bad input. `normalized`: text has been
    through normalize_source already."""
    with deep_recursion():
        tree = parse_tree(text, file, normalized=normalized)
        try:
            return ToAst(file, parse_expr).transform(tree)
        except VisitError as e:
            if isinstance(e.orig_exc, ArchError):
                raise e.orig_exc from None
            if isinstance(e.orig_exc, RecursionError):
                raise LimitError("expressions nested too deeply", _deepest(tree, file)) from None
            raise
        except RecursionError:
            raise LimitError("expressions nested too deeply", _deepest(tree, file)) from None


def _deepest(tree, file: str) -> Span:
    """Where the parse tree nests deepest (a sum of 15,000 terms is as deep as it is long): the place to show
    for "nested too deeply", found without recursion (it was line 1, column 1 of the file)."""
    best, where = -1, None
    todo = [(tree, 0)]
    while todo:
        node, depth = todo.pop()
        meta = getattr(node, "meta", None)
        if meta is not None and not meta.empty and depth > best:
            best, where = depth, meta
        todo.extend((c, depth + 1) for c in getattr(node, "children", ()) if hasattr(c, "children"))
    if where is None:
        return Span(file, 1, 1, 1, 2)
    return Span(file, where.line, where.column, where.line, where.column + 1)


DEEP = 30_000


def _raise_limit() -> int | None:
    old = sys.getrecursionlimit()
    if old >= DEEP:
        return None
    sys.setrecursionlimit(DEEP)
    return old


def _lower_limit(old: int) -> None:
    if sys.getrecursionlimit() == DEEP:  # unless the program set its own meanwhile
        sys.setrecursionlimit(old)


_deep = SharedSwitch(_raise_limit, _lower_limit)


def deep_recursion():
    """Long generated chains (`x -> relu -> ...` thousands deep) nest as deep as they are long, and parsing
    and evaluating them recurse that far. The limit is raised while any thread compiles and put back when the
    last one is done: a program that imports archdsl keeps its own (it was raised for good on the first
    parse), and one thread finishing never lowers it under another still deep in a chain."""
    return _deep.held()
