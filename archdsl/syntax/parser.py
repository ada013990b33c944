"""Cached LALR parser with positions; Lark's errors become our diagnostics at this boundary."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import threading
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..diagnostics import ArchError, ArchSyntaxError, LimitError, Span, did_you_mean
from ..user_cache import private_folder
from .brackets import PAIRS, misaligned_brace, unmatched

__all__ = ["grammar_path", "is_number_literal", "parse_tree", "normalize_source", "source_lines", "MAX_SOURCE_BYTES",
           "MAX_NESTING", "MAX_TOKENS"]

MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_NESTING = 100
MAX_TOKENS = 100_000  # the parser takes ~10-20k tokens a second: 4 MiB of `+1` took minutes (the largest spec: ~1k)

# A line break after one of these does not end the statement.
_CONTINUES = {"->", ",", "=", "(", "[", "{", ".", ":", "+", "-", "*", "/", "//", "%", "@", "**",
              "==", "!=", "<", "<=", ">", ">=", "and", "or", "not", "in", "as", "if", "elif", "else"}
# A block body's `{` follows what can end an expression (`if x > 0 {`, `repeat n {`, `-> y {`), or a
# statement's `else`; any other `{` (after `=`, `else` of an `a if c else b`, an operator, `(`) opens a dict.
_ENDS_EXPR_TYPES = {"NAME", "INT", "FLOAT", "STRING"}
_ENDS_EXPR = {")", "]", "}", "true", "false", "none"}

_PLAIN = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "_NL": "end of line", "$END": "end of file", "SEMICOLON": "';'",
}


_GOES_ON = set("as + * / % ** @ and or == != < <= > >= << >> & | ^".split())  # only ever go on with a value


def grammar_path() -> Path:
    """The grammar ships inside the package when installed; in a checkout it is grammar/."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "grammar" / "archdsl.lark", here.parent / "grammar" / "archdsl.lark"):
        if cand.is_file():
            return cand
    raise FileNotFoundError("archdsl.lark not found next to the package")


class _PostLex:
    """Makes newlines significant only where they end a statement."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self._here = threading.local()  # one parser serves every thread: each keeps its own brackets

    @property
    def open(self) -> list:
        """The brackets still open when this thread's last lexing stopped, for "never closed" hints."""
        return getattr(self._here, "open", [])

    @property
    def closed(self) -> str | None:
        """What the last '}' lexed closed ("block" or "dict"), for the hint of a body closed early."""
        return getattr(self._here, "closed", None)

    def process(self, stream):
        stack: list[str] = []
        self._here.open = opened = []
        self._here.closed = None
        prev: Token | None = None
        pending: Token | None = None
        closed = None  # what the last `}` closed: "block" or "dict"
        stmt_else = False  # the last `else` follows a block's `}`: an if statement's, not an expression's
        count = 0
        for tok in stream:
            count += 1
            if count > MAX_TOKENS:
                raise LimitError(f"source has more than {MAX_TOKENS:,} tokens", _tok_span("<input>", tok))
            if tok.type == "_NL":
                inside = bool(stack) and stack[-1] != "block"
                if prev is None or inside or str(prev) in _CONTINUES and prev.type not in ("NAME", "STRING"):
                    continue
                if pending is None:  # the first: a comment line between splits the breaks, and the caret of
                    pending = tok   # "unexpected end of line" belongs where the line ended
                continue
            v = tok.value if tok.type not in ("NAME", "STRING", "INT", "FLOAT") else None
            after_block = prev is not None and str(prev) == "}" and closed == "block"
            if pending is not None:
                # `}` of an if's block, a line break, then else/elif: the same if statement; `else` anywhere
                # else continues a conditional expression (a statement never starts with either word)
                if tok != "->" and not (v == "else" or after_block and v == "elif"):
                    yield pending
                pending = None
            if v in ("(", "[", "{"):
                opened.append(tok)
            elif v in (")", "]", "}") and opened and PAIRS[str(opened[-1])] == v:
                opened.pop()
            if v in ("(", "["):
                stack.append(v)
                if len(stack) > MAX_NESTING:
                    raise LimitError(f"brackets nested deeper than {MAX_NESTING}", _tok_span("<input>", tok))
            elif v == "{":
                stack.append("block" if _opens_block(prev, stmt_else) else "dict")
                if len(stack) > MAX_NESTING:
                    raise LimitError(f"braces nested deeper than {MAX_NESTING}", _tok_span("<input>", tok))
            elif v in (")", "]", "}") and stack:
                closed = stack.pop()
                if v == "}":
                    self._here.closed = closed
            if v == "else":
                stmt_else = after_block
            yield tok
            prev = tok
        if pending is not None:
            yield pending


def _opens_block(prev, stmt_else: bool) -> bool:
    """Whether a `{` after `prev` opens a block body (else a dict literal, inside which newlines do not count)."""
    if prev is None:
        return False
    if prev.type in _ENDS_EXPR_TYPES:
        return True
    return str(prev) in _ENDS_EXPR or (str(prev) == "else" and stmt_else)


_making = threading.Lock()


def _after_fork_in_child() -> None:
    """A fork while another thread made the parser: the child has that thread's hold on the lock, not the
    thread (every parse in the child waited for good)."""
    global _making
    _making = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _lark() -> Lark:
    """The one parser, made once: threads parsing a process's first spec at once each made one, and read
    another's open brackets for their hints."""
    with _making:
        return _made()


@functools.lru_cache(maxsize=1)
def _made() -> Lark:
    """The parser. Its LALR tables take ~0.2 s to build and 0.01-0.03 s to load from the user's cache folder
    (user_cache.py). Not lark's `cache=`: with `cache=True` that file was in the shared temp dir under a name
    anyone could foresee, and lark unpickles it, so another user who planted it ran code as whoever parsed a
    spec next; with a path, lark keys the file on that path (/proc/self/fd/N: a process with another N, or the
    temp name a first run wrote, rebuilt the tables and rewrote the file in place)."""
    import hashlib
    import sys

    import lark
    text = grammar_path().read_text(encoding="utf-8")
    here = Path(__file__).read_text(encoding="utf-8")  # the options given to Lark below, and _PostLex
    key = hashlib.sha256(f"{text}\0{here}\0{lark.__version__}\0{sys.version_info[:2]}".encode()).hexdigest()[:16]
    name = f"grammar-{key}.lark-tables"  # one file per grammar, parser, lark and Python: installs do not take turns
    with private_folder() as fd:
        parser = _load_tables(fd, name) if fd is not None else None
        if parser is None:
            parser = Lark(text, parser="lalr", propagate_positions=True, start=["start", "expr"],
                          postlex=_PostLex(), maybe_placeholders=True, lexer="basic")
            if fd is not None:
                _save_tables(parser, fd, name)
        return parser


def _load_tables(fd: int, name: str) -> Lark | None:
    """The saved parser, or None where there is none (or it does not load: a damaged file is made again)."""
    try:
        f = open(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd), "rb")  # a FIFO: no wait
    except OSError:
        return None
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():  # put there by a tool of this user's
            return None
        try:  # Lark.load takes no postlex; its _load is what lark's own cache= calls with one
            return Lark.__new__(Lark)._load(f, postlex=_PostLex())
        except Exception:  # noqa: BLE001 - truncated, another lark's, not a pickle at all
            return None


def _save_tables(parser: Lark, fd: int, name: str) -> None:
    """Written under a name of this process's own and renamed into place whole: processes starting together
    interleaved their bytes when each wrote the one file in place."""
    tmp = f"{name}.{os.getpid()}.tmp"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=fd), "wb") as f:
            parser.save(f, exclude_options=("postlex",))  # given again to load (it keeps per-thread state)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        for old in os.listdir(fd):  # lark's own cache files, before archdsl saved the tables itself
            if old.startswith("grammar-") and old.endswith(".lark-cache"):
                os.unlink(old, dir_fd=fd)
    except Exception:  # noqa: BLE001 - a full disk, a read-only folder: each process builds its own tables then
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)


def is_number_literal(text: str) -> bool:
    """Whether text is one INT or FLOAT token of the grammar (1_000, 0x1f, 1e3, .5), read from its terminals."""
    import re
    return any(re.fullmatch(_lark().get_terminal(t).pattern.to_regexp(), text) for t in ("INT", "FLOAT"))


def _tok_span(file: str, tok) -> Span:
    line = getattr(tok, "line", None) or 1
    col = getattr(tok, "column", None) or 1
    end_line = getattr(tok, "end_line", None) or line
    end_col = getattr(tok, "end_column", None) or col + max(1, len(str(tok)))
    return Span(file, line, col, end_line, end_col)


def _describe(term: str) -> str:
    if term in _PLAIN:
        return _PLAIN[term]
    pattern = _term_text(term)
    return f"'{pattern}'" if pattern else term.lower()


@functools.lru_cache(maxsize=None)
def _term_text(term: str) -> str | None:
    for t in _lark().terminals:
        if t.name == term and t.pattern.type == "str":
            return t.pattern.value
    return None


def _expected(exp, inner: str | None = None) -> str:
    """Plain words for the terminals the parser wanted. LALR merges lookaheads, so its set may name a
    closer that cannot come here: keep only the one that closes the innermost open bracket (`inner`), and
    no line end or ';' inside parentheses or square brackets, where a line break is not a separator."""
    words = {_describe(t) for t in exp if not t.startswith("__IGNORE")}
    words -= {f"'{c}'" for c in PAIRS.values() if inner is None or c != PAIRS[inner]}
    if inner is not None:  # inside a body or brackets: a file's items and its end cannot come there
        words -= {"'block'", "'import'", "'model'", "'param'", "end of file"}
    if inner in ("(", "["):
        words -= {"end of line", "';'"}
    words = sorted(words, key=lambda w: (w.strip("'") not in PAIRS.values(), w))  # the closer first
    if len(words) > 8:
        words = words[:8] + ["..."]
    return f"; expected {', '.join(words)}" if words else ""


def _innermost(tok=None, depth: int = 1) -> str | None:
    """The innermost bracket still open where the parse stopped (not counting the offending token); depth 2:
    the one around it."""
    opened = [t for t in getattr(_lark().options.postlex, "open", [])
              if tok is None or (t.line, t.column) != (getattr(tok, "line", None), getattr(tok, "column", None))]
    return str(opened[-depth]) if len(opened) >= depth else None


# operators Python and torch have and the language spells as calls
_OPERATORS = {"^": "bitwise_xor(a, b) of integer tensors (logical_xor for bool masks)",
              "&": "bitwise_and(a, b) of integer tensors (logical_and for bool masks; the compile-time `and` is "
                   "logical, not bitwise: 6 and 1 is 1, 6 & 1 is 0)",
              "|": "bitwise_or(a, b) of integer tensors (logical_or for bool masks; the compile-time `or` is "
                   "logical, not bitwise)",
              "~": "bitwise_not(x) of an integer tensor (logical_not for a bool mask; the compile-time `not` is "
                   "logical: not 3 is false, ~3 is -4)"}


def _translate(err: UnexpectedInput, file: str, text: str, start: str = "start") -> ArchSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if 0 <= err.pos_in_stream < len(text) else "?"
        span = Span(file, err.line, err.column, err.line, err.column + 1)
        if ch in "\"'":
            return ArchSyntaxError(f"string not closed: a string ends with {ch} on the line where it starts", span)
        hint = _OPERATORS.get(ch, "")
        return ArchSyntaxError(f"unexpected character {ch!r}" + (f"; torch's {ch} is {hint}" if hint else ""), span)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            lines = source_lines(text)
            span = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
            return ArchSyntaxError(f"unexpected end of file{_expected(err.expected, _innermost())}", span)
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        span = _tok_span(file, tok)
        if tok.type == "_NL":
            span = Span(file, tok.line, tok.column, tok.line, tok.column + 1)
        hint = ""
        expected = _expected(err.expected, _innermost(tok))
        line = source_lines(text)[tok.line - 1]
        # an expression's `if`/`else` ended the line before (not inside brackets, where a comprehension's `if`
        # may end a line, nor where an `else` follows: `y = x if` then `c = 4 else z` is a '==' typo)
        went_on = _line_break_after(text, tok) if _innermost(tok) not in ("(", "[") and \
            "else" not in line[tok.column - 1:] else None
        first = not line[:tok.column - 1].strip()
        prior = [c.strip() for c in _code_before(text, tok.start_pos).split("\n")] if str(tok) == "if" else []
        else_line = next((c for c in reversed(prior) if c), "")
        if re.search(r"\}\s*else$", else_line) and re.match(r"\}|(el)?if\b", else_line):  # `} else if c {`, an
            # if statement's (its line opens with `}` or if), also across a line break; not `x if {} else if`
            hint = " (archdsl writes `else if` as elif)"
        elif re.search(r"(?<![\w.])else$", else_line):  # `a if c else if d else e`
            hint = " (a conditional expression's else takes a value: `a if c else b`, or `a if c else b if d else e`)"
        elif went_on:
            hint = (f" (the line before ends with '{went_on}', so this line goes on with its conditional expression, "
                    "`a if c else b`)")
        elif _innermost(tok) not in ("(", "[") and "':'" not in expected and (cont := _continued(text, tok)) and \
                (first or str(tok) == "=" and re.fullmatch(r"\s*[A-Za-z_]\w*(\s*,\s*[A-Za-z_]\w*)*\s*",
                                                          line[:tok.column - 1])):  # `a = 4,` then `y = x`
            hint = f" (line {cont[0]} ends with '{cont[1]}', so this line goes on from it)"
        elif re.fullmatch(r"\.(\d[\d_]*)?", str(tok)) and not re.match(r"\s*(import|repeat|for)\b", line) and \
                (label := re.search(r"\bas\s+([A-Za-z_]\w*)$", line[:tok.column - 1])):  # (an import's alias,
            # repeat's and for's names are plain names) as head.fc, as features.0 ('.0' lexes as a number)
            dotted = label[1] + str(tok) + re.match(r"[\w.]*", line[tok.column - 1 + len(str(tok)):])[0]
            hint = f" (a dotted layer name is a string: as \"{dotted}\")"
        elif _innermost(tok) not in ("(", "[") and \
                (python := _python_word(line[:tok.column - 1], tok, line[tok.column - 1 + len(str(tok)):])):
            hint = f" (archdsl has no '{python[0]}': {python[1]})"
        elif str(tok) == "//" and first:
            hint = " (a comment starts with '#')"
        elif first and _innermost(tok) not in ("(", "[") and _ends_a_value(text, tok, line):  # `as fc`, `+ x`
            hint = (f" (a statement ends with its line, and only a line starting with '->' goes on from the one "
                    f"before: put '{tok}' at the end of that line, or the expression in parentheses)")
        elif re.match(r"\s*repeat\s*-", line) and str(tok) == "-":  # repeat -1 {: a count is 0 or more
            hint = " (repeat's count is a name, a number, a call or in brackets, and 0 or more)"
        elif re.match(r"\s*repeat\b", line) and "'as'" in expected and "'{'" in expected and \
                (str(tok) in ("+", "-", "*", "/", "//", "%", "**", "@") or str(tok) == "if" and
                 "else" in line[tok.column:]):  # repeat depth * 2 {, repeat 4 if big else 2 {
            count = line[line.index("repeat") + 6:].split("{")[0].split(" as ")[0].strip()
            hint = f" (repeat's count is a name, a number, a call or in brackets: repeat ({count}))"
        elif re.search(r"\bimport\s*$", line[:tok.column - 1]) and "a string" in expected:
            hint = (" (import takes a .arch file's path: import \"lib.arch\" as lib"
                    + ("; a spec needs no torch)" if str(tok) in ("torch", "nn", "numpy", "np") else ")"))
        elif tok.type == "STRING" and re.search(r"(?<![\w.])[fFrRbB]{1,2}$", line[:tok.column - 1]):  # f"fc{i}"
            hint = " (a string fills in {i} itself: drop the prefix)"
        elif str(tok) == "else" and first:  # `y = x` then a line `else`
            hint = " ('else' follows an if statement's '}', or the condition of `a if c else b`)"
        elif tok.type == "_NL" and "'{'" in expected and \
                _code(text[tok.end_pos:tok.end_pos + 2000]).lstrip()[:1] == "{":
            hint = " (a body's '{' goes on the line of its header, as `model m(x: ...) -> y {`, `if c {`)"
        elif str(tok) == "=" and line[tok.column:tok.column + 1] == ">":  # also where a line starts with it
            hint = " ('=>' is not an operator: '->' pipes, '>=' compares)"
        elif str(tok) == "=" and _innermost(tok) == "[" and _innermost(tok, 2) == "(" and \
                re.search(r",\s*[A-Za-z_]\w*\s*$", text[max(0, tok.start_pos - 200):tok.start_pos]):
            # concat([x, y, axis=1), the keyword also on a line of its own
            hint = " (a list's '[' is still open here: a keyword argument follows its ']', as concat([a, b], axis=1))"
        elif str(tok) == "=" and _innermost(tok) == "(" and _innermost(tok, 2) == "(" and \
                re.search(r",\s*[A-Za-z_]\w*\s*$", text[max(0, tok.start_pos - 200):tok.start_pos]):
            # concat((a, b, axis=1)): the inner '(' is a tuple's, where no keyword goes (hints hunt)
            hint = " (a tuple's '(' is still open here: a keyword argument follows its ')', as concat((a, b), axis=1))"
        elif str(tok) == "=" and "__ANON_1" in err.expected:
            hint = " (use '==' to compare)"
        elif expected == "; expected ',', '='" and (str(tok) in ("->", "(") or tok.type == "_NL") and \
                (str(tok) != "(" or re.fullmatch(r"\s*(->.*|as\b.*)?", _after_call(text, tok.start_pos))) and \
                (word := _chain_left(text, tok)):  # `h = x -> fc1`, then `relu` or `linear(4)` alone on a line
            hint = (f" (the chain on the line before ends there, so '{word}' starts a statement; a line that goes on "
                    f"with the chain starts with '->': -> {word})")
        elif expected == "; expected ',', '='" and str(tok) in (".", "[", "+", "-", "*", "/"):  # s.append(x)
            hint = (" (a statement binds names: NAME = expression; values never change in place: write "
                    "s = s + [x], h = h + 1.0" + ("; for a tensor's elements (torch's m[:, :, 1, 1:] = 0.0), "
                                                  "where(mask, 0.0, m) or masked_fill(m, mask, 0.0), or the whole "
                                                  "tensor built with tensor([...])" if str(tok) == "[" else "") + ")")
        elif str(tok) == "if" and "'for'" in expected and "']'" in expected:  # [x for x in xs if a if b]
            hint = " (a comprehension takes one if: join the conditions with and)"
        elif str(tok) == "else" and re.match(r"\s*if\b", line):  # `y = a` then a line `if c else b`
            hint = (" (a line that starts with 'if' is an if statement: to go on with `a if c else b` on the "
                    "next line, break after 'if' or 'else', or before 'else')")
        elif re.fullmatch(r"\.\d[\d_]*", str(tok)):  # `.5`, `.1_0`: a number's fraction
            before = line[:tok.column - 1]
            number = re.search(r"(?<![\w.])\d\w*(\.[\d_]*([eE][-+]?[\d_]+)?)?$", before)  # 1.5, 1e3, 0x1f; not h1
            hint = (" (integers from a to b-1 are range(a, b))" if before.endswith(".")  # 0..3
                    else " (a number has one '.'; dotted text such as a version is a string: \"1.5.2\")"
                    if number and "." in number[0]
                    else " (a number has no items or fields)" if number
                    else f" (an item of a list or tuple is x[{str(tok)[1:]}]; a field of a record is x.name)")
        elif str(tok) == "repeat" and not first:  # torch's x.repeat(2, 1), einops' repeat(x, "n d -> b n d")
            hint = (" ('repeat' is the loop keyword, `repeat n { }`: torch's x.repeat(2, 1) is tile(x, [2, 1]), "
                    "einops' repeat along a new axis expand(unsqueeze(x, 0), [b, n, d]))")
        elif str(tok).isidentifier() and "a name" in expected:  # a keyword where a name goes: `as block`
            after_as = re.search(r"\bas\s*$", text[max(0, tok.start_pos - 200):tok.start_pos])
            hint = (f" ('{tok}' is a keyword; a layer name can be a string: as \"{tok}\")"
                    if "a string" in expected and after_as
                    else f" ('{tok}' is a keyword; a dict key can be a string: \"{tok}\")" if "a string" in expected
                    else f" ('{tok}' is a keyword, not a name)")
        else:
            hint = _misspelled_keyword(tok, expected, line[:tok.column - 1], line[tok.column - 1 + len(str(tok)):],
                                       getattr(_lark().options.postlex, "closed", None) == "block",
                                       start == "start" and _innermost(tok) not in ("(", "[") and
                                       expected != "; expected ':'")
        return ArchSyntaxError(f"unexpected {shown}{expected}{hint}", span)
    if isinstance(err, UnexpectedEOF):
        lines = source_lines(text)
        span = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return ArchSyntaxError(f"unexpected end of file{_expected(err.expected, _innermost())}", span)
    return ArchSyntaxError(str(err).splitlines()[0], None)


_STRINGS_AND_COMMENTS = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?""")


def _code(text: str) -> str:
    """text with comments dropped and strings emptied, so that neither a '#' in a string nor an `if` in a
    comment reads as code; lines broken at '\n' only, as the lexer breaks them (a form feed or U+2028 is
    inside a line)."""
    return _STRINGS_AND_COMMENTS.sub(lambda m: "" if m[0].startswith("#") else '""', text)


def _code_before(text: str, pos: int) -> str:
    """The code of the whole lines (up to ~2000 characters) before pos, and of pos's line up to it: a window
    that began inside a comment would read its tail as code."""
    start = 0 if pos <= 2000 else text.find("\n", pos - 2000, pos) + 1
    return _code(text[start:pos])


def _ends_a_value(text: str, tok, line: str) -> bool:
    """tok can only go on with an expression, and the code line before tok's ends one (a call `as` labels, a
    value an operator takes; porting19 hunt): not a body's '{', a param or let (`param a = 3 as b` is no label),
    nor the start of the file; and tok is no Python star unpacking (`*a, b = xs`)."""
    if str(tok) not in _GOES_ON or str(tok) == "*" and re.match(r"\s*\*\s*[A-Za-z_]\w*\s*,", line):
        return False
    before = next((c.strip() for c in reversed(_code_before(text, tok.start_pos).split("\n")[:-1]) if c.strip()), "")
    if not before or re.match(r"(param|let|import)\b", before):
        return False
    return before.endswith(")") if str(tok) == "as" else bool(re.search(r"[\w)\]\"']$", before))


def _line_break_after(text: str, tok) -> str | None:
    """'if' or 'else' where the code line before tok's line ends with a conditional expression's `if` or
    `else` (its line break was taken as going on), else None; a statement's (`if` alone, `} else`) is not."""
    for code in reversed(_code_before(text, tok.start_pos).split("\n")[:-1]):
        code = code.strip()
        if code:
            ends = re.search(r"(?<![\w.])(if|else)$", code)
            head = code[:ends.start()].strip() if ends else ""
            return ends[1] if ends and head not in ("", "}") and not head.endswith((";", "}", "{")) else None
    return None


def _after_call(text: str, pos: int) -> str:
    """The code on the line of the ')' that closes the '(' at pos (across lines, nested brackets counted), after
    it; "#" where it is never closed."""
    code, opened = _code(text[pos:pos + 4000]), []
    for i, ch in enumerate(code):
        if ch in PAIRS:
            opened.append(PAIRS[ch])
        elif ch in ")]}":
            if not opened or opened.pop() != ch:  # another bracket's closer: the '(' is never closed
                return "#"
            if not opened:
                return code[i + 1:].split("\n")[0]
    return "#"


def _chain_left(text: str, tok) -> str | None:
    """The name a statement opens with where it is a bare layer (`relu`, `linear(10)`, lines that go on with
    '->' after it) on the line after a chain: its line lacks the '->' that would have continued the chain."""
    lines = _code_before(text, tok.start_pos).split("\n")
    at = len(lines) - 1
    while at > 0 and (not lines[at].strip() or lines[at].strip().startswith("->")):
        at -= 1
    first = lines[at].strip()
    word = re.fullmatch(r"([A-Za-z_]\w*)(\(.*)?", first.split("->")[0].strip()) if "=" not in first else None
    before = next((c for c in reversed(lines[:at]) if c.strip()), "").strip()
    chain = re.search(r"(?<![=!<>])=(?!=).*->|^->", before) and not before.endswith("{")  # not a header's `-> y {`
    return word[1] if word and chain and word[1] not in _STATEMENT_WORDS else None


def _continued(text: str, tok) -> tuple[int, str] | None:
    """(line, symbol) where the code line before tok's ends with an operator, '=' or ',' (an expression's
    if/else is said otherwise): the lexer took tok's line as going on with it, so a stray `a = 4,` reads the
    next statement as part of a tuple."""
    lines = source_lines(text)
    for n in range(tok.line - 1, 0, -1):
        code = _code(lines[n - 1]).strip()
        if code:
            end = re.search(r"(->|==|!=|<=|>=|\*\*|//|[.,=:+\-*/%@<>])$|(?<![\w.])(and|or|not|in|as)$", code)
            if end and end[0] == "." and re.search(r"(?<![\w.])\d[\d_]*\.$", code):  # `1.` is a number
                return None
            return (n, end[0]) if end else None
    return None


# Python's words for what archdsl says otherwise, where a statement opens with one
_PYTHON_WORDS = {
    "while": "loops are `for i in range(n) {` and `repeat n {`, their counts known when building",
    "print": "nothing runs while building; `archdsl check` and `archdsl summary` show the shapes",
    "lambda": "a function is a block, `block f(t) { return t * 2 }`",
    "def": "a function is a block, `block f(t) { return ... }`",
    "class": "a network is `model m(x: float32[B, 4]) -> y { ... }`, its parts blocks",
    "pass": "an empty body is `{}`", "raise": "`assert cond, \"message\"` fails the build",
    "try": "a build stops at the first error", "with": "there is no context to enter",
    "from": "imports are `import \"lib.arch\" as lib` at the top of the file; a spec needs no torch",
    "del": "a value no output reads is left out of the model: nothing to delete",
    "break": "a loop's count is known when building: loop over the items wanted (`for i in range(k)`)",
    "continue": "a loop's count is known when building: put the body under `if` instead",
    "global": "a block sees the file's names and its own arguments: pass a value in as an argument",
    "yield": "a block returns its results, `return a, b`",
}


def _python_word(before: str, tok, after: str):
    """(word, what to write) where a statement (from a line's start, a '{' or a ';') opens with a Python word
    archdsl lacks: `while i < 3 {` (the word, then the token the parser stopped at), or the word itself where
    no statement starts so (`def f():` at the top); or the token follows a lambda. The words are no keywords
    here: `lambda = 0.5` is a name given a value (a param, or a top-level one missing its `param`), and an
    error further on in a line that uses one is not about Python."""
    code = _code(before)
    stmt = re.split(r"[{;]", code)[-1].strip()  # the statement so far
    word = str(tok) if not stmt else stmt if re.fullmatch(r"[A-Za-z_]\w*", stmt) else None
    if word in _PYTHON_WORDS and not (word == str(tok) and re.match(r"\s*=(?!=)", after)):
        return word, _PYTHON_WORDS[word]
    if (tok.type == "NAME" or str(tok) == ":") and re.search(r"(?<![\w.])lambda\s*$", code):  # f = lambda t: ...
        return "lambda", _PYTHON_WORDS["lambda"]
    return None


_STATEMENT_WORDS = ("return", "for", "repeat", "assert", "if", "elif", "else", "import", "let", "param", "model",
                    "block")


_TOP_LEVEL = ("import", "param", "model", "block")


def _misspelled_keyword(tok, expected: str, before: str, after: str, closed: bool = False,
                        statement: bool = True) -> str:
    """`modle m(...)`, `retrun x`, `fro i in xs`, `} else if c {`: the word the parser stopped at (or the
    name just before it, taken as a name) is a near miss of a keyword. `model_dim = 512` at the top of a file
    is a param (or let) without its keyword, not a misspelled `model`."""
    word = str(tok)
    prev = re.search(r"(\w+)\s*$", before)
    if word in ("elseif", "elsif", "elif_"):
        return "; did you mean 'elif'?"
    near = did_you_mean(word, [k for k in _STATEMENT_WORDS if f"'{k}'" in expected]) \
        if word.isidentifier() and word not in _STATEMENT_WORDS else ""
    if "'param'" in expected and before[:1].isspace() and not before.strip() and closed and \
            not (near and not re.match(r"\s*=(?!=)", after)):  # an indented statement (`y = ...`, `return h`,
        # `for ...`) read at the top level: a '}' before it closed its body (`  modle m(...)`: a misspelling)
        return " (this indented line is read outside any body: a '}' before it closed the model or block)"
    if word.isidentifier() and "'param'" in expected and re.match(r"\s*=(?!=)", after):
        return f" (a file's names are declared: param {word} = ... (-D may set it), or let {word} = ...)"
    if near:
        return near
    if statement and prev and prev[1] not in _STATEMENT_WORDS and before.strip() == prev[1]:  # `retrun x`: a
        # statement's first word (not one inside brackets, a string's hole or a -D value, where no keyword goes)
        inside = before[:1].isspace()  # an indented line, in a body: no import, param, model or block there
        hint = did_you_mean(prev[1], [w for w in _STATEMENT_WORDS if not (inside and w in _TOP_LEVEL)])
        if hint:
            return f" ('{prev[1]}' is taken as a name{hint})"
    return ""


def _unclosed_note(err: ArchSyntaxError, file: str, text: str) -> ArchSyntaxError:
    """When the parse fails inside brackets, say where the innermost one was opened."""
    opened = getattr(_lark().options.postlex, "open", [])
    if opened and err.span is not None:
        tok = opened[-1]
        unclosed = unmatched(text)
        if (tok.line, tok.column) < (err.span.line, err.span.col) and tok.line < err.span.line \
                and (tok.line, tok.column) in unclosed:
            inner = misaligned_brace(text, source_lines(text), err.span.line) if str(tok) == "{" else None
            if inner is not None and inner[0] > tok.line:  # a for's '{' the model's closer was taken for
                line, col, closer = inner
                err.notes.append((f"'{{' opened here is never closed: the '}}' on line {closer} that the parser "
                                  f"took for it lines up with an outer block", Span(file, line, col, line, col + 1)))
            else:
                err.notes.append((f"'{tok}' opened here is never closed", _tok_span(file, tok)))
    return err


def normalize_source(text: str) -> str:
    """As Python reads source: a leading byte-order mark is skipped, CRLF and a lone CR are line breaks."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def source_lines(text: str) -> list[str]:
    """The lines as the parser numbers them: broken at '\n' only (a form feed or U+2028 is inside a line)."""
    return text.removesuffix("\n").split("\n")


def parse_tree(text: str, file: str, start: str = "start", normalized: bool = False):
    """Source text to a Lark tree; any syntax problem raises ArchSyntaxError with a span. `normalized`: the
    caller has (a second pass took a second byte-order mark off, which is an error, and moved the carets)."""
    if not normalized:
        text = normalize_source(text)
    if len(text.encode("utf-8", errors="replace")) > MAX_SOURCE_BYTES:
        raise LimitError(f"source file is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB", Span(file, 1, 1, 1, 2))
    try:
        return _lark().parse(text, start=start)
    except UnexpectedInput as e:
        raise _unclosed_note(_translate(e, file, text, start), file, text) from None
    except LimitError as e:
        if e.span is not None:
            e.span = Span(file, e.span.line, e.span.col, e.span.end_line, e.span.end_col)
        raise
    except VisitError as e:  # pragma: no cover - no callbacks run during parse
        if isinstance(e.orig_exc, ArchError):
            raise e.orig_exc from None
        raise
