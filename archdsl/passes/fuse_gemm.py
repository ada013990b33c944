"""fuse_gemm: `a @ b + c` on 2-D operands becomes one ONNX Gemm (the `gemm` op).

Rule: add(matmul(a, b), c) or add(c, matmul(a, b)) where a and b are 2-D, the matmul's result is read only
by the add, c has the same dtype, at most 2 dims, and broadcasts to the product without growing it. ONNX
Gemm takes only 2-D inputs; on rank-3+ inputs MatMul + Add stays (Reshape + Gemm + Reshape measured no
faster on onnxruntime, see `archdsl bench`'s lowering choices)."""

from __future__ import annotations

from ..diagnostics import ShapeError
from ..ir import Graph
from ._rewrite import Rewriter, single_use
from .manager import PassContext, register_pass


@register_pass("fuse_gemm", level=2, doc="2-D matmul followed by a bias add -> one Gemm")
def fuse_gemm(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    for add in g.nodes:
        if add.op != "add" or rw.is_dead(add):
            continue
        for k in (0, 1):
            mm_out, c = add.inputs[k], add.inputs[1 - k]
            mm = mm_out.producer
            if mm is None or mm.op != "matmul" or rw.is_dead(mm) or not single_use(mm_out, rw) or mm_out is c:
                continue
            a, b = mm.inputs
            if a.type.rank != 2 or b.type.rank != 2 or c.type.rank > 2 or add.outputs[0].type != mm_out.type:
                continue
            try:
                new = g.make_node("gemm", [a, b, c], {}, mm.name, mm.span)
            except ShapeError:
                continue
            if new.outputs[0].type != add.outputs[0].type:
                for v in new.inputs:
                    v.uses.remove(new)
                continue
            rw.insert_before(add, new)
            rw.replace(add.outputs[0], new.outputs[0])
            rw.erase(add)
            rw.erase(mm)
            break
    return rw.commit()
