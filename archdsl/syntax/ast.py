"""Plain AST: frozen dataclasses, each with the source span it came from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Union

from ..diagnostics import Span

__all__ = [
    "Expr", "Name", "Const", "Interp", "TupleLit", "ListLit", "ListComp", "DictLit", "BinOp", "UnaryOp",
    "BoolOp", "Compare", "IfExp", "Pipe", "Labelled", "Call", "Subscript", "Slice", "Attr",
    "Stmt", "Assign", "For", "If", "Repeat", "Return", "Assert", "Let",
    "Import", "ParamDecl", "Formal", "BlockDef", "ModelInput", "ModelDef", "Module", "names_in",
]

_dc = dataclass(frozen=True, slots=True)


@_dc
class Name:
    id: str
    span: Span


@_dc
class Const:
    """int, float, bool, str or None literal."""

    value: object
    span: Span


@_dc
class Interp:
    """A string with `{expr}` holes: parts are str or Expr."""

    parts: tuple
    span: Span


@_dc
class TupleLit:
    items: tuple
    span: Span


@_dc
class ListLit:
    items: tuple
    span: Span


@_dc
class ListComp:
    elt: "Expr"
    targets: tuple  # as Assign's
    iter: "Expr"
    cond: "Expr | None"
    span: Span
    more: tuple = ()  # further `for ... in ... [if ...]` clauses, nested as Python's: ((targets, iter, cond), ...)


@_dc
class DictLit:
    entries: tuple  # ((key constant, Expr), ...)
    span: Span


@_dc
class BinOp:
    """Arithmetic and comparison: op is the operator's text ('+', '==', 'in', ...)."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span


@_dc
class Compare:
    """A chain of two or more comparisons, `a < b <= c`: Python's meaning, (a < b) and (b <= c) with b
    evaluated once (a block call in it makes its layers once)."""

    ops: tuple       # ('<', '<=', ...)
    operands: tuple  # one more than ops
    span: Span


@_dc
class UnaryOp:
    op: str  # '-', '+', 'not'
    operand: "Expr"
    span: Span


@_dc
class BoolOp:
    op: str  # 'and' | 'or'
    left: "Expr"
    right: "Expr"
    span: Span


@_dc
class IfExp:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    span: Span


@_dc
class Pipe:
    """`left -> right`: right is called with left as its first argument."""

    left: "Expr"
    right: "Expr"
    span: Span


@_dc
class Labelled:
    """`call as label`: names the layer (or block scope) the call creates."""

    expr: "Expr"
    label: "Expr"
    span: Span


@_dc
class Call:
    func: "Expr"
    args: tuple
    kwargs: tuple  # ((name, Expr), ...)
    span: Span
    kw_spans: tuple = field(default=(), compare=False)  # each `name=value`, where a diagnostic about it points


@_dc
class Slice:
    lo: "Expr | None"
    hi: "Expr | None"
    step: "Expr | None"
    span: Span


@_dc
class Subscript:
    value: "Expr"
    index: tuple  # Expr | Slice
    span: Span


@_dc
class Attr:
    value: "Expr"
    name: str
    span: Span


Expr = Union[Name, Const, Interp, TupleLit, ListLit, ListComp, DictLit, BinOp, Compare, UnaryOp, BoolOp, IfExp,
             Pipe, Labelled, Call, Subscript, Attr]


@_dc
class Assign:
    targets: tuple  # names; a bracketed group is a nested tuple of them: (a,), [a] and (a, b) unpack, (a) is a
    value: Expr
    span: Span


@_dc
class For:
    targets: tuple  # as Assign's
    iter: Expr
    body: tuple
    span: Span


@_dc
class If:
    branches: tuple  # ((cond, body), ...)
    orelse: tuple
    span: Span


@_dc
class Repeat:
    count: Expr
    var: str | None
    body: tuple
    span: Span


@_dc
class Return:
    values: tuple
    span: Span


@_dc
class Assert:
    cond: Expr
    message: Expr | None
    span: Span


@_dc
class Let:
    name: str
    value: Expr
    span: Span


Stmt = Union[Assign, For, If, Repeat, Return, Assert, Let]


@_dc
class Import:
    path: str
    alias: str | None
    span: Span
    path_span: Span | None = field(default=None, compare=False)  # the quoted path, where "cannot find" points


@_dc
class ParamDecl:
    name: str
    value: Expr
    span: Span


@_dc
class Formal:
    name: str
    default: Expr | None
    span: Span


@_dc
class BlockDef:
    name: str
    formals: tuple[Formal, ...]
    body: tuple
    span: Span


@_dc
class ModelInput:
    name: str
    dtype: str
    dims: tuple
    span: Span
    dtype_span: Span


@_dc
class ModelDef:
    name: str
    inputs: tuple[ModelInput, ...]
    outputs: tuple[str, ...]
    body: tuple
    span: Span


@_dc
class Module:
    file: str
    items: tuple
    span: Span


def names_in(node) -> list:
    """The Name nodes of an expression or statement (a formula dim, a line a diagnostic is on), in order."""
    out, todo = [], [node]
    while todo:
        e = todo.pop()
        if isinstance(e, Name):
            out.append(e)
        elif dataclasses.is_dataclass(e):
            todo.extend(getattr(e, f.name) for f in dataclasses.fields(e))
        elif isinstance(e, (tuple, list)):
            todo.extend(e)
    return out
