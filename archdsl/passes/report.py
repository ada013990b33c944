"""`--report`: nodes and parameters before/after each pass that changed something, with totals."""

from __future__ import annotations

from .manager import PassStat

__all__ = ["format_report", "report_rows"]


def report_rows(stats: list[PassStat]) -> list[tuple]:
    rows = []
    for s in stats:
        if s.changed:
            rows.append((str(s.round), s.name, f"{s.nodes_before:,}", f"{s.nodes_after:,}",
                         f"{s.params_before:,}", f"{s.params_after:,}", f"{s.seconds * 1e3:.1f}"))
    return rows


def format_report(stats: list[PassStat]) -> str:
    """Plain text (the CLI prints it with rich when it can)."""
    head = ("round", "pass", "nodes before", "nodes after", "params before", "params after", "ms")
    rows = report_rows(stats)
    if stats:
        total_ms = sum(s.seconds for s in stats) * 1e3
        rows.append(("", "total", f"{stats[0].nodes_before:,}", f"{stats[-1].nodes_after:,}",
                     f"{stats[0].params_before:,}", f"{stats[-1].params_after:,}", f"{total_ms:.1f}"))
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(str(c).rjust(w) if i != 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head] + rows]
    return "\n".join(lines)
