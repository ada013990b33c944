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


def misaligned_brace(text: str, lines: list[str]) -> tuple[int, int, int] | None:
    """(line, col of a '{', the line of the '}' matched to it) for the innermost '{' whose '}' starts a line
    indented less than the line the '{' is on: the body left open (`for ... {` whose '}' is missing, the
    model's '}' closing it instead), which the indentation shows and the brackets do not."""
    indent = [len(s) - len(s.lstrip(" \t")) for s in lines]
    stack, found = [], None
    for m in BRACKETS.finditer(text):
        v = m.group()
        if v == "{":
            stack.append(m.start())
        elif v == "}" and stack:
            opened = position(text, stack.pop())
            closed = position(text, m.start())
            first = lines[closed[0] - 1][:closed[1] - 1].strip() == ""
            if first and closed[1] - 1 < indent[opened[0] - 1] and (found is None or opened > found[:2]):
                found = (*opened, closed[0])
    return found
