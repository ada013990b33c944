"""Rewrites of emitted ONNX nodes that compute the same values but keep clear of onnxruntime faults: ONNX's
own semantics need none of them."""

from __future__ import annotations

from onnx import NodeProto, helper

__all__ = ["half_matmul_after_transpose"]


def half_matmul_after_transpose(nodes: list[NodeProto], half: set[str], ranks: dict[str, int],
                                kept: set[str]) -> list[NodeProto]:
    """A 16-bit Transpose that keeps the last axis, read only by MatMuls as their left side with a matrix (rank 2)
    on the right, as each MatMul first and the Transpose after it (transpose(x) @ W is transpose(x @ W) there):
    onnxruntime 1.32's MatmulTransposeFusion crashed the process (a segfault) creating the session of such a
    float16 graph, a time-major lstm or gru, or transpose(x, 0, 1), before a linear or an attention's projection
    (difffuzz4 hunt; a right side of another rank broadcasts otherwise: left alone, review78). `half`: the 16-bit
    names; `ranks`: the ranks known (graph values, initializers); `kept`: the names the graph must keep."""
    ranks = dict(ranks)
    for n in nodes:  # a weight transposed or cast by the lowering keeps its rank
        if n.op_type in ("Transpose", "Cast", "Identity") and n.input and n.input[0] in ranks:
            ranks[n.output[0]] = ranks[n.input[0]]
    readers: dict[str, list[NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    swapped: dict[int, list[NodeProto]] = {}
    gone: set[int] = set()
    for t in nodes:
        if t.op_type != "Transpose" or t.output[0] not in half or t.output[0] in kept:
            continue
        perm = next((list(a.ints) for a in t.attribute if a.name == "perm"), None)
        users = readers.get(t.output[0], [])
        if not perm or perm[-1] != len(perm) - 1 or not users or not all(
                u.op_type == "MatMul" and len(u.input) == 2 and u.input[0] == t.output[0] != u.input[1]
                and ranks.get(u.input[1]) == 2 for u in users):
            continue
        for k, u in enumerate(users):
            first = f"{t.output[0]}:matmul_first" + (f"{k}" if k else "")
            swapped[id(u)] = [
                helper.make_node("MatMul", [t.input[0], u.input[1]], [first], name=u.name, doc_string=u.doc_string),
                helper.make_node("Transpose", [first], list(u.output), name=f"{t.name}" + (f"#{k}" if k else ""),
                                 doc_string=t.doc_string, perm=perm)]
        gone.add(id(t))
    if not swapped:
        return nodes
    out = []
    for n in nodes:
        if id(n) not in gone:
            out.extend(swapped.get(id(n), [n]))
    return out
