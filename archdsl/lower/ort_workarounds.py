"""Rewrites of emitted ONNX nodes that compute the same values but keep clear of onnxruntime faults: ONNX's
own semantics need none of them."""

from __future__ import annotations

from onnx import NodeProto, helper

__all__ = ["half_matmul_after_transpose"]


def half_matmul_after_transpose(nodes: list[NodeProto], half: set[str], kept: set[str]) -> list[NodeProto]:
    """A 16-bit Transpose that keeps the last axis, read only by a MatMul as its left side, as the MatMul first
    and the Transpose after it (transpose(x) @ W is transpose(x @ W) there): onnxruntime 1.32's
    MatmulTransposeFusion crashed the process (a segfault) creating the session of such a float16 graph, a
    time-major lstm or gru, or transpose(x, 0, 1), before a linear or an attention's projection, where the right
    side is constant once onnxruntime folds it (difffuzz4 hunt). `half`: the 16-bit names; `kept`: the names the
    graph must keep (its outputs)."""
    made = {o: n for n in nodes for o in n.output}
    readers: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    swapped: dict[int, list[NodeProto]] = {}
    gone: set[int] = set()
    for n in nodes:
        if n.op_type != "MatMul" or len(n.input) != 2:
            continue
        t = made.get(n.input[0])
        if t is None or t.op_type != "Transpose" or t.output[0] not in half or readers.get(t.output[0]) != 1 \
                or t.output[0] in kept:
            continue
        perm = next((list(a.ints) for a in t.attribute if a.name == "perm"), None)
        if not perm or perm[-1] != len(perm) - 1:
            continue
        first = f"{t.output[0]}:matmul_first"
        swapped[id(n)] = [
            helper.make_node("MatMul", [t.input[0], n.input[1]], [first], name=n.name, doc_string=n.doc_string),
            helper.make_node("Transpose", [first], list(n.output), name=t.name, doc_string=t.doc_string, perm=perm)]
        gone.add(id(t))
    if not swapped:
        return nodes
    out = []
    for n in nodes:
        if id(n) not in gone:
            out.extend(swapped.get(id(n), [n]))
    return out
