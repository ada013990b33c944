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
    not. A '{' inside ( or [, or after = , : or return, is a dict literal's; a statement split over lines (inside
    brackets, or after an operator) takes the indent of its first; tabs count to 8."""
    indent = [_width(s) for s in lines]
    starts = list(range(len(lines)))  # each line's statement's first line: a line inside ( or [ goes on one,
    goes_on = _continued(lines)  # and one after a line that ends in an operator (`[16, 32] +`, `a and`)
    stack, found, depth, line = [], None, 0, 1
    for m in BRACKETS.finditer(text):
        v = m.group()
        at = position(text, m.start())
        while line < at[0]:  # the lines up to this bracket: a line begun inside ( or [ continues the one before
            line += 1
            if depth > 0 or goes_on[line - 1]:
                starts[line - 1] = starts[line - 2]
        if v in "([":
            depth += 1
        elif v in ")]":
            depth = max(depth - 1, 0)
        elif v == "{":  # a dict literal's: inside ( or [, or after = , : or return
            code = _code_before(text, m.start())
            literal = depth > 0 or code[-1:] in ("=", ",", ":") or re.search(r"\breturn$", code) is not None
            stack.append((m.start(), literal))
        elif v == "}" and stack:
            start, literal = stack.pop()
            opened = position(text, start)
            closed = position(text, m.start())
            ahead = lines[closed[0] - 1][:closed[1] - 1]
            statement = indent[starts[opened[0] - 1]]
            if not literal and ahead.strip() == "" and _width(ahead + "}") < statement and opened[0] < before and \
                    (found is None or opened > found[:2]):
                found = (*opened, closed[0])
    return found


def _code_before(text: str, pos: int) -> str:
    """The code before pos on its line, or on the last line before it that has some, comments left out (`} else
    # or return` then `{` on the next line: the '{' is the else's)."""
    start = text.rfind("\n", 0, pos) + 1
    code = text[start:pos].rstrip()  # a '{' that is code has no '#' before it on its line
    while not code and start > 0:
        end, start = start - 1, text.rfind("\n", 0, start - 1) + 1
        code = text[start:end].split("#", 1)[0].rstrip()
    return code


_GOES_ON = ("->", ",", "=", "+", "-", "*", "/", "%", "@", "<", ">", " and", " or", " not", " if", " else", " as",
            " in")


def _continued(lines: list[str]) -> list[bool]:
    """Whether each line continues the statement of the one before: that one ends in an operator or a word that
    cannot end a statement, or this one begins with `->`."""
    out = [False] * len(lines)
    for i in range(1, len(lines)):
        before = lines[i - 1].split("#", 1)[0].rstrip()  # a '#' in a string cuts it short: a guess either way
        out[i] = before.endswith(_GOES_ON) or lines[i].lstrip().startswith("->")
    return out


def _width(s: str) -> int:
    """The columns a line's leading blanks take, tabs to 8 as Python counts them."""
    e = s.expandtabs(8)
    return len(e) - len(e.lstrip(" "))
