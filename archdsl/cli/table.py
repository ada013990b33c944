"""Tables on the terminal: rich when it is installed, plain aligned text otherwise."""

from __future__ import annotations

__all__ = ["print_table"]


PLAIN_PAST = 1000  # rows past which rich's layout (1.5-2 ms a row) would take longer than the compile


def print_table(title: str, header, rows, footer=None, file=None, text: int = 3) -> None:
    """A rich table; past PLAIN_PAST rows plain aligned text (GPT-2 XL's summary spent 2.8 s of 4.8 laying out
    its table: scaling2 hunt). The first `text` columns are left-aligned, the numbers after them right."""
    rows = list(rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, this is only a fallback
        rich = False
    else:
        rich = len(rows) <= PLAIN_PAST
    if not rich:
        _plain(title, header, rows, footer, file, text)
        return
    t = Table(title=title, show_footer=footer is not None)
    for i, h in enumerate(header):
        t.add_column(h, footer=footer[i] if footer else "", justify="right" if i >= text else "left",
                     overflow="fold")  # a long name wraps (cut short, two names that differ at the end read alike)
    for r in rows:
        t.add_row(*r)
    # no markup: rich read a shape [batch, seq, 8] or a layer "experts[red]" as style tags and dropped them
    Console(width=160, file=file, markup=False, emoji=False, highlight=False).print(t)


def _plain(title, header, rows, footer, file=None, text: int = 3) -> None:
    """Columns as the rich table aligns them: the first `text` left, the numbers right."""
    allrows = [tuple(header)] + [tuple(r) for r in rows] + ([tuple(footer)] if footer else [])
    w = [max(len(str(r[i])) for r in allrows) for i in range(len(header))]
    lines = [title] + ["  ".join(str(c).ljust(w[i]) if i < text else str(c).rjust(w[i])
                                 for i, c in enumerate(r)).rstrip() for r in allrows]
    print("\n".join(lines), file=file)
