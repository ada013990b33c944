"""One error hierarchy from parse to lowering. The library raises; the CLI renders."""

from __future__ import annotations

import contextlib
import difflib
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Span", "ArchError", "ArchSyntaxError", "UnknownNameError", "ArchTypeError",
    "ShapeError", "ImportCycleError", "ImportNotFoundError", "DefineError", "LimitError", "EvalError",
    "render", "did_you_mean", "SourceMap",
]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file, 1-based lines and columns, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @property
    def short(self) -> str:
        return f"{Path(self.file).name}:{self.line}"


class ArchWarning(UserWarning):
    """What `archdsl check` and `build` print as a warning (torch's argument order read otherwise, a result no
    output reads), raised through Python's warnings by the API's compile and check functions."""


class ArchError(Exception):
    """A user mistake, reported at a source span. `kind` names the diagnostic family."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, notes: list[tuple[str, Span | None]] | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = list(notes or [])

    def __str__(self) -> str:
        """file:line:col: message, as an API call's uncaught error shows it in a traceback (the message alone
        left the user to find the line); render() gives the whole diagnostic, with the line and a caret."""
        return f"{printable(str(self.span))}: {self.message}" if self.span else self.message

    arg: str | None = None  # the argument of a call it is about (stride): the caret goes under it where written

    def with_span(self, span: Span | None) -> "ArchError":
        if self.span is None and span is not None:
            self.span = span
        return self

    def about(self, arg: str | None) -> "ArchError":
        self.arg = arg
        return self


class ArchSyntaxError(ArchError):
    kind = "syntax"


class UnknownNameError(ArchError):
    kind = "name"


class ArchTypeError(ArchError):
    kind = "type"


class ShapeError(ArchError):
    kind = "shape"


class ImportCycleError(ArchError):
    kind = "import"


class ImportNotFoundError(ArchError):
    kind = "import"


class DefineError(ArchError):
    kind = "define"


class LimitError(ArchError):
    kind = "limit"


class EvalError(ArchError):
    kind = "eval"


def not_a_directory(path) -> Path:
    """An output path, refused when a directory is in its place (before any work that would write it)."""
    p = Path(path)
    try:
        is_dir = p.is_dir()
    except OSError as e:  # a name over 255 bytes: Path.is_dir raises rather than answer
        raise ArchError(f"cannot write {p}: {e.strerror or e}") from None
    if is_dir:
        raise ArchError(f"cannot write {p}: it is a directory")
    for up in p.parents:  # the nearest existing folder above must be one (-o model.arch/x.onnx: "File exists")
        try:
            if up.exists():
                if not up.is_dir():
                    raise ArchError(f"cannot write {p}: {up} is a file, not a directory")
                break
        except OSError:  # a name over 255 bytes: the write itself will say so
            break
    return p


@contextlib.contextmanager
def writing(path):
    """The OS refusing to write an output (a directory in the way, no permission, a full disk) as a
    diagnostic naming the path, not an internal error."""
    p = not_a_directory(path)
    try:
        yield
    except BrokenPipeError:  # `-o - | head -c 100`: the reader stopped early, as for any command's output
        raise
    except OSError as e:
        raise ArchError(f"cannot write {p}: {e.strerror or e}") from None


def utf8(text: str) -> str:
    """`text` as valid UTF-8, for what goes into the ONNX file: a file name that is not UTF-8 on disk comes
    from the OS with surrogate escapes, which protobuf refuses (an internal error); shown as \\xff here."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def printable(text: str, keep: str = "") -> str:
    """Control and other unprintable characters as escapes (\\x1b, \\n, \\u200b), those in `keep` as they are:
    a file name holding an escape sequence cleared the terminal, one holding a newline forged a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def quoted(names, shown: int = 3) -> str:
    """Names for a message: the first few quoted, then how many more ('a', 'b', 'c' and 4 more)."""
    names = list(names)
    more = len(names) - shown
    return ", ".join(f"'{n}'" for n in names[:shown]) + (f" and {more} more" if more > 0 else "")


def did_you_mean(name: str, candidates, prefix: str = "") -> str:
    """The close candidate, if any, as a hint; `prefix` is how it is written (`lib.` under an import alias),
    not part of what is compared (every name under `lib.` would look alike)."""
    names = sorted(set(candidates))
    folded = [c for c in names if c.lower() == name.lower()]  # Relu for relu: the case alone differs
    close = folded[:1] or _closest(name, names)
    if not close:
        return ""
    said = [f"'{prefix}{c}'" for c in close]
    return f"; did you mean {said[0] if len(said) == 1 else ', '.join(said[:-1]) + ' or ' + said[-1]}?"


def _closest(name: str, names: list[str]) -> list[str]:
    """The candidates nearest to name (difflib's get_close_matches' score, at least 0.6), every one that ties,
    where they are four at most (more name no likely one): of fc1 and fc2 for fc, difflib's own pick was the
    one that sorts last."""
    scored = []
    for c in names:
        m = difflib.SequenceMatcher(None, c, name)  # get_close_matches' order: ratio() is not symmetric
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6 and (r := m.ratio()) >= 0.6:
            scored.append((r, c))
    best = max((r for r, _ in scored), default=None)
    tied = [c for r, c in scored if r == best]
    return tied if len(tied) <= 4 else []


class SourceMap:
    """Texts of the files a compile has read, so diagnostics can show the line."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._lines: dict[str, list[str]] = {}  # split once: each excerpt split the whole file (10,000
        # warnings on a 228 KB spec took 6.5 s to show: scaling2 hunt)

    def add(self, file: str, text: str) -> None:
        self._texts[file] = text
        self._lines.pop(file, None)

    def files(self) -> list[str]:
        """The files read so far (the spec and every file it imports), not -D texts or <string> sources."""
        return [f for f in self._texts if not f.startswith("<")]

    def line(self, file: str, line: int) -> str | None:
        text = self._texts.get(file)
        if text is None:
            try:
                text = Path(file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
            self._texts[file] = text
        lines = self._lines.get(file)
        if lines is None:  # as the parser counts lines: a form feed or U+2028 does not end one
            lines = self._lines[file] = text.split("\n")
        return lines[line - 1].removesuffix("\r").translate(_BREAKS) if 0 < line <= len(lines) else None

    def node_line(self, message: str) -> Span | None:
        """The spec line of the node an onnxruntime message names (archdsl names nodes
        `label/Op_N@file.arch:LINE`), as a span over that line's text, so the error shows it; None for a model
        not built from these files."""
        import re
        m = re.search(r"@([^'\s@]+\.arch):(\d+)'", message)
        if m is None:
            return None
        base, line = m.group(1), int(m.group(2))
        named = [f for f in self.files() if Path(f).name == base]
        file = named[0] if len(named) == 1 else None  # two imported files of one name: which, the node does not say
        text = self.line(file, line) if file is not None else None
        if not text or not text.strip():
            return None
        col = len(text) - len(text.lstrip()) + 1
        return Span(file, line, col, line, len(text.rstrip()) + 1)


# Characters a terminal would show as a line break or nothing, shown as a space so the caret stays under its column.
_BREAKS = {ord(c): " " for c in "\r\f\v\x1c\x1d\x1e\x85\u2028\u2029"}


def _excerpt(span: Span, sources: SourceMap) -> list[str]:
    src = sources.line(span.file, span.line)
    if src is None:
        return []
    end_col = span.end_col
    if "\t" not in src[: span.col]:  # tabs after the caret's start widen what it spans, not where it starts
        end_col = len(src[: span.end_col - 1].expandtabs(4)) + 1
        src = src.expandtabs(4)
    else:
        src = src.replace("\t", " ")
    width = (end_col - span.col) if span.end_line == span.line else len(src) - span.col + 1
    width = max(1, min(width, max(1, len(src) - span.col + 1)))
    col = span.col
    if len(src) > _MAX_SHOWN:  # show a window around the caret, not a whole generated line
        start = max(0, min(col - 1 - _MAX_SHOWN // 3, len(src) - _MAX_SHOWN))
        src = (("..." if start else "") + src[start:start + _MAX_SHOWN]
               + ("..." if start + _MAX_SHOWN < len(src) else ""))
        col = col - start + (3 if start else 0)
        width = min(width, _MAX_SHOWN - (col - 1) + 3)
    gutter = f"{span.line:>4} | "
    src = "".join(_visible(c) for c in src)
    caret = "^" * max(1, _columns(src[col - 1:col - 1 + width]))
    return [gutter + src, " " * (len(gutter) + _columns(src[:col - 1])) + caret]


def _visible(c: str) -> str:
    """A control or format character of the source (an ANSI escape, a bidi override, NUL) would act on the
    terminal instead of showing: it is shown as U+FFFD."""
    return "\ufffd" if unicodedata.category(c) in ("Cc", "Cf") else c


def _columns(text: str) -> int:
    """Terminal columns: CJK and emoji take two, combining marks none (so the caret stays under its text);
    on a stderr that cannot show a character (ASCII, Latin-1) the command line writes its \\u escape."""
    enc = (getattr(sys.stderr, "encoding", None) or "utf-8").lower().replace("_", "-")
    escaped = not enc.startswith("utf")
    return sum(_escaped_width(c, enc) if escaped and _unshown(c, enc)
               else 0 if unicodedata.category(c) in ("Mn", "Me")  # Thai U+0E31, VS16: class 0, no width
               else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _unshown(c: str, enc: str) -> bool:
    try:
        c.encode(enc)
    except UnicodeEncodeError:
        return True
    except LookupError:  # an encoding Python does not know: take it as showing everything
        return False
    return False


def _escaped_width(c: str, enc: str) -> int:
    return len(c.encode(enc, "backslashreplace"))


_MAX_SHOWN = 120


def render(err: ArchError, sources: SourceMap | None = None, level: str = "error") -> str:
    """`file:line:col: error: message`, the source line, a caret under the span, then notes. A warning is an
    ArchError that is not raised, rendered with level="warning". Without `sources`, those of the API call
    that raised it (driver), else the files on disk."""
    sources = sources or getattr(err, "sources", None) or SourceMap()
    where = f"{printable(str(err.span))}: " if err.span else ""
    out = [f"{where}{level}: {printable(err.message, keep=chr(10))}"]
    if err.span:
        out += _excerpt(err.span, sources)
    for msg, span in err.notes:
        msg = printable(msg, keep=chr(10))
        out.append(f"{printable(str(span))}: note: {msg}" if span else f"note: {msg}")
        if span:
            out += _excerpt(span, sources)
    return "\n".join(out)
