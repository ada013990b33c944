"""Brackets in source text, scanned without the lexer (so that a character it refuses hides nothing): which are
never closed, and which '{' the indentation says was left open. For the parser's notes on an unclosed bracket."""

from __future__ import annotations

import re

__all__ = ["BRACKETS", "PAIRS", "misaligned_brace", "position", "unmatched"]

PAIRS = {"(": ")", "[": "]", "{": "}"}

# Brackets outside strings and comments; a string not closed runs to the end of its line.
BRACKETS = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[()\[\]{}]""")


def unmatched(text: str) -> set:
    """(line, col) of every bracket in the whole text that no closer matches (a bracket the parse stopped
    inside may well be closed further on; then the note would be false). Scanned without the lexer, so a
    character it refuses does not hide the rest of the file."""
    stack: list = []
    bad: set = set()
    for m in BRACKETS.finditer(text):
        v = m.group()
        if v in PAIRS:
            stack.append((v, m.start()))
        elif v in (")", "]", "}") and any(PAIRS[t] == v for t, _ in stack):
            while PAIRS[stack[-1][0]] != v:
                bad.add(position(text, stack.pop()[1]))
            stack.pop()
    return bad | {position(text, pos) for _, pos in stack}


def position(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def misaligned_brace(text: str, lines: list[str], before: int) -> tuple[int, int, int] | None:
    """(line, col of a '{', the line of the '}' matched to it) for the innermost block '{' opened before line
    `before` whose '}' starts a line indented less than the statement the '{' ends: the body left open (`for ...
    {` whose '}' is missing, the model's '}' closing it instead), which the indentation shows and the brackets do
    not. A '{' inside ( or [, or after = , or :, is a dict literal's; a statement split over lines takes the
    indent of its first."""
    indent = [len(s) - len(s.lstrip(" \t")) for s in lines]
    starts = list(range(len(lines)))  # each line's statement's first line: a line inside ( or [ goes on one
    stack, found, depth, line = [], None, 0, 1
    for m in BRACKETS.finditer(text):
        v = m.group()
        at = position(text, m.start())
        while line < at[0]:  # the lines up to this bracket: a line begun inside ( or [ continues the one before
            line += 1
            if depth > 0:
                starts[line - 1] = starts[line - 2]
        if v in "([":
            depth += 1
        elif v in ")]":
            depth = max(depth - 1, 0)
        elif v == "{":  # a dict literal's: inside ( or [, or after = , :
            stack.append((m.start(), depth > 0 or _before(text, m.start()) in ("=", ",", ":")))
        elif v == "}" and stack:
            start, literal = stack.pop()
            opened = position(text, start)
            closed = position(text, m.start())
            first = lines[closed[0] - 1][:closed[1] - 1].strip() == ""
            statement = indent[starts[opened[0] - 1]]
            if not literal and first and closed[1] - 1 < statement and opened[0] < before and \
                    (found is None or opened > found[:2]):
                found = (*opened, closed[0])
    return found


def _before(text: str, pos: int) -> str:
    """The last character before pos that is no space or line break ("" at the start)."""
    j = pos - 1
    while j >= 0 and text[j] in " \t\n":
        j -= 1
    return text[j] if j >= 0 else ""
