"""One deterministic text form of the IR, used by `--emit ir` and golden tests."""

from __future__ import annotations

from pathlib import Path

from .graph import Graph, Value

__all__ = ["print_graph"]


def _attr(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_attr(x) for x in v) + "]"
    if v is None:
        return "none"
    return str(v)


def print_graph(g: Graph) -> str:
    names: dict[int, str] = {}
    for v in g.inputs:
        names[id(v)] = v.name
    for k, v in g.params.items():
        names[id(v)] = k
    for i, v in enumerate(g.consts):
        names[id(v)] = f"%c{i}"

    def ref(v: Value) -> str:
        return names.get(id(v), "?")

    ins = ", ".join(f"{v.name}: {v.type}" for v in g.inputs)
    lines = [f"model {g.name}({ins}) -> ({', '.join(n for n, _ in g.outputs)})"]
    for k, v in g.params.items():
        lines.append(f"  {v.kind} {k}: {v.type}")
    for i, v in enumerate(g.consts):
        data = v.data.tolist() if v.data.size <= 8 else f"<{v.data.size} values>"
        lines.append(f"  const %c{i}: {v.type} = {data}")
    counter = 0
    for n in g.nodes:
        outs = []
        for o in n.outputs:
            names[id(o)] = f"%{counter}"
            counter += 1
            outs.append(f"{names[id(o)]}: {o.type}")
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in n.attrs.items())
        where = f" @ {Path(n.span.file).name}:{n.span.line}" if n.span else ""
        lines.append(f"  {', '.join(outs)} = {n.op}({', '.join(ref(v) for v in n.inputs)})"
                     f"{' {' + attrs + '}' if attrs else ''}  # {n.name}{where}")
    lines.append("  return " + ", ".join(f"{k}={ref(v)}" for k, v in g.outputs))
    return "\n".join(lines) + "\n"
