"""Parse tree to AST: one method per rule, no meaning-checking."""

from __future__ import annotations

import ast as _pyast
import re
from dataclasses import dataclass

from lark import Token, Transformer_NonRecursive, v_args

from ..diagnostics import ArchSyntaxError, LimitError, Span
from . import ast as A

__all__ = ["ToAst"]

_BINOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "matmul": "@",
           "pow": "**"}


def _binop(op):
    def rule(self, meta, children):
        return A.BinOp(op, children[0], children[1], self._span(meta))
    return rule


@dataclass(frozen=True)
class _NegKey:
    """A dict literal's key written with a minus ({-1: ...}): the number's token, negated by entry()."""
    token: Token


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    def __init__(self, file: str, parse_expr):
        super().__init__()
        self.file = file
        self._parse_expr = parse_expr

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", False):
            return Span(self.file, 1, 1, 1, 2)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column)

    # ---- module items ----
    def start(self, meta, children):
        return A.Module(self.file, tuple(children), self._span(meta))

    def import_stmt(self, meta, c):
        return A.Import(_unquote(c[0], self._tspan(c[0])), str(c[1]) if c[1] is not None else None, self._span(meta),
                        self._tspan(c[0]))

    def param_decl(self, meta, c):
        return A.ParamDecl(str(c[0]), c[1], self._span(meta))

    def let_decl(self, meta, c):
        return A.Let(str(c[0]), c[1], self._span(meta))

    def block_def(self, meta, c):
        formals = c[1] or ()
        for i, f in enumerate(formals):
            if any(g.name == f.name for g in formals[:i]):
                raise ArchSyntaxError(f"block {c[0]}: parameter '{f.name}' is declared twice", f.span)
            if f.default is None and any(g.default is not None for g in formals[:i]):  # as Python refuses it
                raise ArchSyntaxError(f"block {c[0]}: parameter '{f.name}' has no default but follows one that "
                                      f"has; give it a default or move it before the defaults", f.span)
        return A.BlockDef(str(c[0]), formals, c[2], self._span(meta))

    def formals(self, meta, c):
        return tuple(c)

    def formal(self, meta, c):
        return A.Formal(str(c[0]), c[1], self._span(meta))

    def model_def(self, meta, c):
        return A.ModelDef(str(c[0]), c[1] or (), c[2], c[3], self._span(meta))

    def model_inputs(self, meta, c):
        return tuple(c)

    def model_input(self, meta, c):
        return A.ModelInput(str(c[0]), str(c[1]), c[2] or (), self._span(meta), self._tspan(c[1]))

    def dims(self, meta, c):
        return tuple(c)

    def single_output(self, meta, c):
        return (str(c[0]),)

    def output_list(self, meta, c):
        return tuple(str(x) for x in c)

    def body(self, meta, c):
        return tuple(c)

    # ---- statements ----
    def assign(self, meta, c, unpacking: bool = False):
        n = next(i for i, x in enumerate(c) if not isinstance(x, (str, tuple)))  # a name (a Token is a str)
        targets, values = self.loop_target(meta, c[:n]), c[n:]  # names, or bracketed groups of them
        if unpacking:  # a, b, = ...: one group, as (a, b) = ...
            targets = (targets,)
        if len(values) == 1:
            return A.Assign(targets, values[0], self._span(meta))
        first, last = values[0].span, values[-1].span  # `a, b = 1, 2`: a tuple, as in Python
        at = Span(first.file, first.line, first.col, last.end_line, last.end_col)
        return A.Assign(targets, A.TupleLit(tuple(values), at), self._span(meta))

    def for_stmt(self, meta, c):
        return A.For(c[0], c[1], c[2], self._span(meta))

    def loop_target(self, meta, c):
        """The names; a bracketed group is a nested tuple (for (a, b) in: one target that unpacks two)."""
        return tuple(x if isinstance(x, tuple) else str(x) for x in c)

    def assign_unpacking(self, meta, c):
        return self.assign(meta, c, unpacking=True)

    def loop_target_unpacking(self, meta, c):
        """for a, in ...: a trailing comma makes the names one group, as (a,) does."""
        return (self.loop_target(meta, c),)

    def target_group(self, meta, c):
        """(a, b), (a,) or [a]: unpacks (a tuple of names, nested as written), as in Python."""
        return self.loop_target(meta, c)

    def target_paren(self, meta, c):
        """(a) is a, as in Python: no unpacking."""
        return c[0] if isinstance(c[0], tuple) else str(c[0])

    assigned_group, assigned_paren = target_group, target_paren

    def if_stmt(self, meta, c):
        branches = [(c[0], c[1])]
        orelse = ()
        for extra in c[2:]:
            if extra[0] == "elif":
                branches.append(extra[1:])
            else:
                orelse = extra[1]
        return A.If(tuple(branches), orelse, self._span(meta))

    def elif_clause(self, meta, c):
        return ("elif", c[0], c[1])

    def else_clause(self, meta, c):
        return ("else", c[0])

    def repeat_stmt(self, meta, c):
        return A.Repeat(c[0], str(c[1]) if c[1] is not None else None, c[2], self._span(meta))

    def return_stmt(self, meta, c):
        return A.Return(tuple(c), self._span(meta))

    def assert_stmt(self, meta, c):
        return A.Assert(c[0], c[1], self._span(meta))

    # ---- expressions ----
    def ifexp(self, meta, c):
        return A.IfExp(c[1], c[0], c[2], self._span(meta))

    def or_op(self, meta, c):
        return A.BoolOp("or", c[0], c[1], self._span(meta))

    def and_op(self, meta, c):
        return A.BoolOp("and", c[0], c[1], self._span(meta))

    def cmp_op(self, meta, c):
        return " ".join(str(t) for t in c)

    def compare(self, meta, c):
        operands, ops = tuple(c[0::2]), tuple(c[1::2])
        if len(ops) == 1:
            return A.BinOp(ops[0], operands[0], operands[1], self._span(meta))
        return A.Compare(ops, operands, self._span(meta))

    def not_op(self, meta, c):
        return A.UnaryOp("not", c[0], self._span(meta))

    def pipe(self, meta, c):
        return A.Pipe(c[0], c[1], self._span(meta))

    for _rule, _op in _BINOPS.items():
        locals()[_rule] = _binop(_op)
    del _rule, _op

    def neg(self, meta, c):
        return A.UnaryOp("-", c[0], self._span(meta))

    def pos(self, meta, c):
        return A.UnaryOp("+", c[0], self._span(meta))

    def labelled(self, meta, c):
        return A.Labelled(c[0], c[1], self._span(meta))

    def label_name(self, meta, c):
        return A.Const(str(c[0]), self._tspan(c[0]))

    def label_int(self, meta, c):
        return A.Const(_int(c[0], self.file), self._tspan(c[0]))

    def label_str(self, meta, c):
        return self.str_lit(meta, c)

    def call(self, meta, c):
        args, kwargs, kw_spans = [], [], []
        for a in (c[1] or ()):
            if isinstance(a, tuple):
                kwargs.append(a[:2])
                kw_spans.append(a[2])
            else:
                if kwargs:
                    raise ArchSyntaxError("positional argument after a keyword argument", _expr_span(a))
                args.append(a)
        return A.Call(c[0], tuple(args), tuple(kwargs), self._span(meta), tuple(kw_spans))

    def args(self, meta, c):
        return tuple(c)

    def pos_arg(self, meta, c):
        return c[0]

    def kw_arg(self, meta, c):
        return (str(c[0]), c[1], self._span(meta))

    def subscript(self, meta, c):
        return A.Subscript(c[0], c[1], self._span(meta))

    def subscripts(self, meta, c):
        return tuple(c)

    def slice(self, meta, c):
        return A.Slice(c[0], c[1], c[2], self._span(meta))

    def ellipsis(self, meta, c):
        return A.Const(Ellipsis, self._span(meta))

    def attr(self, meta, c):
        return A.Attr(c[0], str(c[1]), self._span(meta))

    def name(self, meta, c):
        return A.Name(str(c[0]), self._tspan(c[0]))

    def int_lit(self, meta, c):
        return A.Const(_int(c[0], self.file), self._tspan(c[0]))

    def float_lit(self, meta, c):
        return A.Const(float(_digits(c[0], self.file)), self._tspan(c[0]))

    def str_lit(self, meta, c):
        tok = c[0]
        span = self._tspan(tok)
        text = _unquote(tok, span)
        if "{" not in text and "}}" not in text:
            return A.Const(text, span)
        parts = self._interp(text, tok)
        if all(isinstance(q, str) for q in parts):  # only {{ or }}: a plain string
            return A.Const("".join(parts), span)
        return A.Interp(tuple(parts), span)

    def true_lit(self, meta, c):
        return A.Const(True, self._span(meta))

    def false_lit(self, meta, c):
        return A.Const(False, self._span(meta))

    def none_lit(self, meta, c):
        return A.Const(None, self._span(meta))

    def tuple_lit(self, meta, c):
        return A.TupleLit(tuple(x for x in c if x is not None), self._span(meta))

    def list_lit(self, meta, c):
        return A.ListLit(tuple(x for x in c if x is not None), self._span(meta))

    def comp_clause(self, meta, c):
        return tuple(c)  # (targets, iter, cond or None)

    def list_comp(self, meta, c):
        (targets, it, cond), more = c[1], tuple(c[2:])
        return A.ListComp(c[0], targets, it, cond, self._span(meta), more)

    def dict_lit(self, meta, c):
        return A.DictLit(tuple(x for x in c if x is not None), self._span(meta))

    def neg_key(self, meta, c):
        return _NegKey(c[0])

    def entry(self, meta, c):
        key = c[0]
        sign = 1
        if isinstance(key, _NegKey):
            key, sign = key.token, -1
        if key.type == "INT":
            k = sign * _int(key, self.file)
        elif key.type == "FLOAT":
            k = sign * float(_digits(key, self.file))
        elif key.type == "STRING":
            k = _unquote(key, self._tspan(key))
        else:
            k = str(key)
        return (k, c[1])

    def _interp(self, text: str, tok: Token):
        """Split `"layer{i+1}"` into literal parts and parsed expressions. As in Python's f-strings, `{{` and
        `}}` are braces and a hole holds no braces; a brace written as an escape (`\\x7b`) is a brace."""
        raw = _raw_offsets(str(tok))
        at = lambda i, j: Span(self.file, tok.line, tok.column + 1 + raw[i], tok.line,  # noqa: E731
                               tok.column + 1 + raw[j])
        plain = lambda i: i < len(text) and raw[i + 1] - raw[i] == 1  # noqa: E731 - not from an escape
        parts: list = []
        lit: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch in "{}" and plain(i) and text[i + 1:i + 2] == ch and plain(i + 1):
                lit.append(ch)
                i += 2
            elif ch == "{" and plain(i):
                end = next((j for j in range(i + 1, len(text)) if text[j] in "{}" and plain(j)), None)
                if end is None or text[end] == "{":
                    raise ArchSyntaxError("a { in a string opens a hole that needs its }, and a hole holds no "
                                          "braces (write {{ for a brace; put a dict in a let first)",
                                          at(i, i + 1))
                if not text[i + 1:end].strip():
                    raise ArchSyntaxError("empty {} in string", at(i + 1, end))
                spec = _format_spec(text[i + 1:end])
                if spec is not None:
                    raise ArchSyntaxError(f"a {{...}} hole holds an expression, without a format spec or "
                                          f"conversion ('{text[i + 1 + spec:end]}' as in Python's f-strings): "
                                          f"write {{{text[i + 1:i + 1 + spec].strip()}}}",
                                          at(i + 1 + spec, end))
                comma = _top_level(text[i + 1:end], ",")
                if comma is not None:  # Python's f"{i, j}" shows a tuple; here it said only "unexpected ','"
                    holes = "_".join(f"{{{v}}}" for v in _top_level_parts(text[i + 1:end]))
                    raise ArchSyntaxError(f"a {{...}} hole holds one expression, not a tuple: give each value a "
                                          f"hole of its own, e.g. {holes}",
                                          at(i + 1 + comma, i + 2 + comma))
                if lit:
                    parts.append("".join(lit))
                    lit = []
                parts.append(self._parse_expr(text[i + 1:end], at(i + 1, end)))
                i = end + 1
            else:
                lit.append(ch)
                i += 1
        if lit:
            parts.append("".join(lit))
        return parts


_STRAY_UNDERSCORE = re.compile(r"__|_$|_[.eE]")
_STRAY_UNDERSCORE_BASED = re.compile(r"__|_$")


def _digits(tok: Token, file: str) -> str:
    """A number's text without its underscores, which go singly between digits as in Python (`1__0`, `1_`
    and `1_.5` are typos the lexer's pattern lets through)."""
    text = str(tok)
    based = text[:2].lower() in ("0x", "0o", "0b")  # in hex, e is a digit (0xff_e0)
    if (_STRAY_UNDERSCORE_BASED if based else _STRAY_UNDERSCORE).search(text):
        raise ArchSyntaxError(f"invalid number '{text}': an underscore goes between two digits, as in 1_000",
                              Span(file, tok.line, tok.column, tok.end_line, tok.end_column))
    return text.replace("_", "")


def _int(tok: Token, file: str) -> int:
    """INT token text: hex, octal, binary with 0x, 0o, 0b, else decimal (leading zeros allowed: `007` is 7;
    Python's base 0 refuses it)."""
    s = _digits(tok, file)
    if len(s) > 1000:
        raise LimitError(f"integer literal of {len(s)} digits is too long",
                         Span(file, tok.line, tok.column, tok.end_line, tok.end_column))
    return int(s, {"0x": 16, "0o": 8, "0b": 2}.get(s[:2].lower(), 10))


_ESCAPE = re.compile(r"\\(?:[0-7]{1,3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|.)")


def _raw_offsets(quoted: str) -> list[int]:
    """For each character of the decoded string (and one past its end), its offset in the source text after
    the opening quote: a `{...}` hole after `\\x41` or `\\u00e9` sits further right in the file than in the
    decoded text."""
    body = quoted[1:-1]
    if "\\" not in body:
        return list(range(len(body) + 1))
    offsets: list[int] = []
    i = 0
    while i < len(body):
        m = _ESCAPE.match(body, i)
        n = len(_unquote_text(quoted[0] + m.group() + quoted[0])) if m else 1
        end = m.end() if m else i + 1
        offsets.extend(min(i + k, end - 1) for k in range(n))
        i = end
    offsets.append(len(body))
    return offsets


_PY_ESCAPES = set("\n\\'\"abfnrtvxNuU01234567")


def _spelled_out(m: re.Match) -> str:
    """An escape Python keeps with a warning, written as what it means: an unknown one (\\d) as a backslash and
    the character, an octal one past \\377 as its code point."""
    esc = m.group()
    if esc[1] in "01234567":
        return esc if int(esc[1:], 8) <= 0o377 else f"\\U{int(esc[1:], 8):08x}"
    return esc if esc[1] in _PY_ESCAPES else "\\" + esc


def _literal(quoted: str) -> str:
    """A string literal's value by Python's escapes. Python 3.12 warns of an unknown escape ("a\\d") on
    stderr, outside the diagnostics and past ArchWarning filters, and `-W error` made the valid spec a
    'malformed string literal' (newest hunt): such escapes are spelled out before Python reads them."""
    return _pyast.literal_eval(_ESCAPE.sub(_spelled_out, quoted) if "\\" in quoted else quoted)


def _unquote_text(quoted: str) -> str:
    try:
        return _literal(quoted)
    except (ValueError, SyntaxError):
        return quoted[1:-1]


def _unquote(tok: Token, span: Span) -> str:
    try:
        return _literal(str(tok))
    except (ValueError, SyntaxError):
        raise ArchSyntaxError("malformed string literal", span) from None


def _expr_span(e) -> Span | None:
    return getattr(e, "span", None)


def _format_spec(hole: str) -> int | None:
    """Where an f-string's format spec (`:02d`) or conversion (`!r`) starts in a hole: a ':' or '!' outside
    brackets and strings (x[1:2] slices; != compares)."""
    return _top_level(hole, ":!")


def _top_level_parts(hole: str) -> list[str]:
    """A hole's comma-separated values (commas inside brackets and strings are theirs)."""
    parts = []
    while (k := _top_level(hole, ",")) is not None:
        parts.append(hole[:k].strip())
        hole = hole[k + 1:]
    return [p for p in parts + [hole.strip()] if p]


def _top_level(hole: str, chars: str) -> int | None:
    """The offset of the first of chars in a hole outside brackets and strings (a '!' only when no '='
    follows it: != compares)."""
    depth, quote = 0, None
    for k, ch in enumerate(hole):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in chars and (ch != "!" or hole[k + 1:k + 2] != "="):
            return k
    return None
