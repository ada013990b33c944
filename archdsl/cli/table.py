"""Tables on the terminal: rich when it is installed, plain aligned text otherwise."""

from __future__ import annotations

__all__ = ["print_table"]


def print_table(title: str, header, rows, footer=None, file=None) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, this is only a fallback
        _plain(title, header, rows, footer, file)
        return
    t = Table(title=title, show_footer=footer is not None)
    for i, h in enumerate(header):
        t.add_column(h, footer=footer[i] if footer else "", justify="right" if i >= 3 else "left",
                     overflow="fold")  # a long name wraps (cut short, two names that differ at the end read alike)
    for r in rows:
        t.add_row(*r)
    # no markup: rich read a shape [batch, seq, 8] or a layer "experts[red]" as style tags and dropped them
    Console(width=160, file=file, markup=False, emoji=False, highlight=False).print(t)


def _plain(title, header, rows, footer, file=None) -> None:
    allrows = [tuple(header)] + [tuple(r) for r in rows] + ([tuple(footer)] if footer else [])
    w = [max(len(str(r[i])) for r in allrows) for i in range(len(header))]
    print(title, file=file)
    for r in allrows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)), file=file)
