"""`--report`: nodes and weights before/after each pass that changed something, with totals. The nodes are the
IR's, where a layer is one node until a pass splits it (pretranspose_linear: MatMul and Add), and lowers to one
ONNX node or several: the CLI prints the ONNX counts beside (BERT-base: 352 -> 375 IR nodes, 500 -> 379 ONNX)."""

from __future__ import annotations

from .manager import PassStat

__all__ = ["REPORT_HEAD", "format_report", "report_rows"]

# "weights": elements of parameters and buffers together (BatchNorm's running statistics are buffers, and
# fold_batchnorm turns them into a conv's weights, so the two cannot be told apart after that pass).
REPORT_HEAD = ("round", "pass", "IR nodes before", "IR nodes after", "weights before", "weights after", "ms")


def report_rows(stats: list[PassStat]) -> list[tuple]:
    """One row per pass that changed something, then the totals."""
    rows = []
    for s in stats:
        if s.changed:
            rows.append((str(s.round), s.name, f"{s.nodes_before:,}", f"{s.nodes_after:,}",
                         f"{s.params_before:,}", f"{s.params_after:,}", f"{s.seconds * 1e3:.1f}"))
    if stats:
        total_ms = sum(s.seconds for s in stats) * 1e3
        rows.append(("", "total", f"{stats[0].nodes_before:,}", f"{stats[-1].nodes_after:,}",
                     f"{stats[0].params_before:,}", f"{stats[-1].params_after:,}", f"{total_ms:.1f}"))
    return rows


def format_report(stats: list[PassStat]) -> str:
    """Plain text (the CLI prints it with rich when it can)."""
    rows = report_rows(stats)
    widths = [max(len(str(r[i])) for r in [REPORT_HEAD] + rows) for i in range(len(REPORT_HEAD))]
    lines = ["  ".join(str(c).rjust(w) if i != 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [REPORT_HEAD] + rows]
    return "\n".join(lines)
