"""Rewrites of emitted ONNX nodes that compute the same values but keep clear of onnxruntime faults: ONNX's
own semantics need none of them."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

__all__ = ["half_matmul_after_transpose", "square_after_cast_mean"]


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


def square_after_cast_mean(nodes: list[NodeProto], constants: dict[str, TensorProto]) -> list[NodeProto]:
    """Pow(d, 2) as Mul(d, d) where d = t - mean(t) and t is a Cast's output: a layer norm written by hand over a
    cast input. onnxruntime 1.32's LayerNormFusion fused it into a LayerNormalization reading the Cast's source,
    whatever its type, and refused to load the model (an int64 input: INVALID_GRAPH; a float16 one upcast for
    the norm: "T bound to different types"; review106 hunt). d * d is the same number and leaves the pattern
    unfused. `constants`: the initializers by name (the exponent's value)."""
    if not any(n.op_type == "Pow" for n in nodes):  # most graphs: no map of every output made
        return nodes
    made = {o: n for n in nodes for o in n.output}

    def cast_mean_centred(name: str) -> bool:
        sub = made.get(name)
        if sub is None or sub.op_type != "Sub" or len(sub.input) != 2:
            return False
        src, mean = made.get(sub.input[0]), made.get(sub.input[1])
        return src is not None and src.op_type == "Cast" and mean is not None and \
            mean.op_type == "ReduceMean" and mean.input[0] == sub.input[0]

    def two(name: str) -> bool:
        t = constants.get(name)
        return t is not None and not t.dims and float(np.asarray(numpy_helper.to_array(t))) == 2.0

    return [helper.make_node("Mul", [n.input[0], n.input[0]], list(n.output), name=n.name, doc_string=n.doc_string)
            if n.op_type == "Pow" and len(n.input) == 2 and two(n.input[1]) and cast_mean_centred(n.input[0])
            else n for n in nodes]
