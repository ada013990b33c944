"""The benchmark's tables: rich on a terminal, markdown for the README."""

from __future__ import annotations

__all__ = ["error_text", "render"]

from .models import CUDA_VARIANTS

_SHORT = {"dynamo": "dyn", "legacy": "leg"}


def _num(r: dict | None, key: str, fmt: str) -> str:
    if not r:
        return "-"
    if "error" in r:
        return "error"
    return format(r[key], fmt) if key in r else "-"


def error_text(e: Exception) -> str:
    """An exception as one line of a table's notes."""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _speedup(x: float) -> str:
    """How many times faster: whole below 10 would hide 1.4x as 1x and a slower build as 0x."""
    return f"{x:.0f}x" if x >= 9.95 else f"{x:.1f}x"


def _ratio(r: float, ci) -> str:
    """The median ratio and its 95% interval: 0.99 (0.98-1.00)."""
    return f"{r:.2f} ({ci[0]:.2f}-{ci[1]:.2f})" if ci else f"{r:.2f}"


def _model_rows(results: dict, exporters: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    head = ["model", "archdsl build s", "build --weights s", "graph only s", "file write alone s"] + \
        [f"torch {e} s" for e in exporters] + \
        (["speedup (" + "/".join(_SHORT[e] for e in exporters) + ")",
          "speedup, weights given (" + "/".join(_SHORT[e] for e in exporters) + ")"] if exporters else []) + \
        ["nodes O0/O2" + "".join(f"/{_SHORT[e]}" for e in exporters), "ORT ms O0/O2",
         ] + ([f"ORT ms {'/'.join(_SHORT[e] for e in exporters)}", "latency O2/torch (95% CI)"] if exporters
              else []) + \
        ["peak MB archdsl" + ("/" + "/".join(_SHORT[e] for e in exporters) if exporters else "")] + \
        (["max abs diff vs torch"] if exporters else [])
    rows, notes = [], []
    for row in results["models"]:
        a0, a2, given = row.get("archdsl_O0"), row.get("archdsl_O2"), row.get("archdsl_given")
        tr = [row.get(f"torch_{e}") for e in exporters]
        for label, r in [("archdsl -O0", a0), ("archdsl -O2", a2), ("archdsl --weights", given),
                         ("graph only", row.get("archdsl_graph")),
                         ("file write alone", row.get("write_floor"))] + \
                [(f"torch {e}", t) for e, t in zip(exporters, tr)]:
            if r and "error" in r:
                notes.append(f"{row['model']}, {label}: {r['error']}")
        if "latency_error" in row:
            notes.append(f"{row['model']}, onnxruntime latency: {row['latency_error']}")
        cells = [row["model"], _num(a2, "seconds", ".2f"), _num(given, "seconds", ".2f"),
                 _num(row.get("archdsl_graph"), "seconds", ".2f"), _num(row.get("write_floor"), "seconds", ".2f")] + \
            [_num(t, "seconds", ".2f") for t in tr]
        if exporters:
            for ours in (a2, given):
                sp = []
                for t in tr:
                    ok = ours and t and "seconds" in ours and "seconds" in t
                    sp.append(_speedup(t["seconds"] / ours["seconds"]) if ok else "-")
                cells.append(" / ".join(sp))
        cells.append("/".join([_num(a0, "nodes", "d"), _num(a2, "nodes", "d")] + [_num(t, "nodes", "d") for t in tr]))
        lat = row.get("latency_ms", {})
        ms = "error" if "latency_error" in row else "-"  # a side that was not timed (its build failed): "-"
        cells.append(" / ".join(f"{lat[k]:.1f}" if k in lat else ms for k in ("O0", "O2")))
        if exporters:
            cells.append(" / ".join(f"{lat[e]:.1f}" if e in lat else ms for e in exporters))
            ratio, ci = row.get("ratio", {}), row.get("ratio_ci", {})
            cells.append(" / ".join(_ratio(ratio[e], ci.get(e)) if e in ratio else "-" for e in exporters))
        cells.append("/".join([_num(a2, "peak_mb", ".0f")] + [_num(t, "peak_mb", ".0f") for t in tr]))
        if exporters:
            cells.append(str(row.get("max_abs_diff", "-")))
        rows.append(cells)
    return head, rows, notes


def _cuda_rows(results: dict, exporters: list[str], notes: list[str]):
    """onnxruntime CUDAExecutionProvider, batch 1, alternated like the CPU figures: a table of its own, present
    only where a model was timed on CUDA (or tried and failed)."""
    labels = ["O2"] + list(exporters)
    head = ["model", "CUDA ms " + "/".join(_SHORT.get(k, k) for k in labels)] + \
        (["CUDA latency O2/torch (95% CI)"] if exporters else [])
    rows = []
    for row in results["models"]:
        if "cuda_variant_error" in row:
            notes.append(f"{row['model']}, CUDA variants not built: {row['cuda_variant_error']}")
        ms = row.get("cuda_ms")
        if "cuda_error" in row:
            notes.append(f"{row['model']}, CUDA latency: {row['cuda_error']}")
            if not ms:
                rows.append([row["model"], "error"] + (["-"] if exporters else []))
                continue
        if not ms:
            continue
        missing = "error" if "cuda_error" in row else "-"  # a side that failed beside those timed (review77)
        for side in ["O2"] + [k for k in ms if k in CUDA_VARIANTS]:  # the -O2 build, then its variants
            key = "cuda_ratio" if side == "O2" else f"cuda_ratio@{side}"
            name = row["model"] if side == "O2" else f"  {CUDA_VARIANTS[side][0]}"
            cells = [name, " / ".join(f"{ms[k]:.2f}" if k in ms else missing for k in [side, *exporters])]
            if exporters:
                ratio, ci = row.get(key, {}), row.get(key + "_ci", {})
                cells.append(" / ".join(_ratio(ratio[e], ci.get(e)) if e in ratio else "-" for e in exporters))
            rows.append(cells)
    return head, rows


def _scaling_rows(results: dict, notes: list[str]):
    head = ["MLP layers", "IR nodes", "ONNX nodes", "compile s", "µs per node", "peak MB"]
    rows = []
    for r in results["scaling"]:
        if "error" in r:
            rows.append([f"{r['layers']:,}", "-", "-", "error", "-", "-"])
            notes.append(f"deep MLP, {r['layers']:,} layers: {r['error']}")
            continue
        rows.append([f"{r['layers']:,}", f"{r['ir_nodes']:,}", f"{r['nodes']:,}", f"{r['seconds']:.2f}",
                     f"{r['seconds'] / r['nodes'] * 1e6:.0f}", f"{r['peak_mb']:.0f}"])
    return head, rows


def _choice_rows(results: dict, notes: list[str]):
    head = ["lowering choice A vs B (onnxruntime CPU)", "shape", "opset", "A ms", "B ms", "ratio A/B",
            "archdsl emits"]
    rows = []
    for r in results.get("choices", []):
        if "error" in r:
            rows.append([r["choice"], r["shape"], str(r["opset"]), "error", "error", "-", r["emits"]])
            notes.append(f"lowering choice {r['choice']} at opset {r['opset']}: {r['error']}")
            continue
        rows.append([r["choice"], r["shape"], str(r["opset"]), f"{r['fused_ms']:.3f}", f"{r['decomposed_ms']:.3f}",
                     f"{r['ratio']:.2f}", r["emits"]])
    return head, rows


def _machine_line(results: dict) -> str:
    m = results["machine"]
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory']}; python {m['python']}, onnx {m['onnx']}, "
            f"onnxruntime {m['onnxruntime']} ({m['providers']}), torch {m['torch']}; archdsl opset "
            f"{results.get('opset', '?')}; compile: median of {results.get('compile_runs', 1)} alternated runs; "
            f"latency: batch 1, "
            f"{results['threads']} intra-op threads, {results['rounds']} alternated rounds")


def render(results: dict, exporters: list[str], markdown: bool = False) -> None:
    head, rows, notes = _model_rows(results, exporters)
    shead, srows = _scaling_rows(results, notes)
    chead, crows = _choice_rows(results, notes)
    ghead, grows = _cuda_rows(results, exporters, notes)
    title = "archdsl vs torch.onnx.export" if exporters else "archdsl"
    if not exporters:
        notes.insert(0, f"no torch comparison: {results['torch']}")
    if markdown:
        print(f"Machine: {_machine_line(results)}\n")
        for h, rs in ((head, rows), (ghead, grows), (shead, srows), (chead, crows)):
            if rs:
                print("| " + " | ".join(h) + " |\n|" + "---|" * len(h))
                for r in rs:
                    print("| " + " | ".join(r) + " |")
                print()
        for n in notes:
            print(f"- {n}")
        return
    from rich.console import Console
    from rich.table import Table
    con = Console(width=220, markup=False, emoji=False, highlight=False)  # errors and paths print as they are
    con.print(_machine_line(results))
    for t_title, h, rs in ((title, head, rows), ("onnxruntime CUDA latency, batch 1", ghead, grows),
                           ("compile time vs graph size (deep MLP, width 16)", shead, srows),
                           ("lowering choices: each A vs B", chead, crows)):
        if not rs:
            continue
        t = Table(title=t_title)
        for i, c in enumerate(h):
            t.add_column(c, justify="left" if i == 0 else "right")
        for r in rs:
            t.add_row(*r)
        con.print(t)
    for n in notes:
        con.print(f"note: {n}")
