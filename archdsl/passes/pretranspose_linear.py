"""pretranspose_linear: a linear layer on a rank-3+ input reads a weight stored transposed.

ONNX Gemm takes only 2-D inputs, so `linear` on [B, T, C] lowers to Transpose(W) + MatMul + Add. The
transpose of a parameter is constant work: this pass replaces W ([out, in], torch layout) by a derived
parameter `W.T` ([in, out]) computed at lowering time, so the model has MatMul + Add only (what
torch.onnx.export emits). Measured on onnxruntime CPU ([1, 128, 768] x [768, 3072], 2 threads):
MatMul+Add, Transpose+MatMul+Add, Reshape+Gemm+Reshape and Gemm(transB) all run within 1% of each
other (onnxruntime folds the transpose itself), so the gain is in node count and session start.
Rule: linear(x, W[, b]) with rank(x) > 2 and W a parameter read only here -> matmul(x, W.T) [+ b]."""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from ._rewrite import Rewriter, single_use
from .derived import ParamEdits, derived_param
from .manager import PassContext, register_pass


def _transpose(w: np.ndarray) -> np.ndarray:
    return w.T


@register_pass("pretranspose_linear", level=2,
               doc="linear on rank-3+ inputs -> MatMul(x, W^T) + Add with W^T computed at lowering")
def pretranspose_linear(g: Graph, ctx: PassContext) -> bool:
    rw = Rewriter(g)
    edits = ParamEdits(g)
    for node in g.nodes:
        if node.op != "linear" or node.inputs[0].type.rank <= 2:
            continue
        w = node.inputs[1]
        if not w.is_param or not single_use(w, rw) or w.type.dtype.np is None:
            continue
        name = edits.fresh(w.name + ".T")
        wt = derived_param(name, w.type.with_shape(tuple(reversed(w.type.shape))), [w], _transpose, w.kind == "param")
        mm = g.make_node("matmul", [node.inputs[0], wt], {}, node.name, node.span)
        rw.insert_before(node, mm)
        out = mm.outputs[0]
        if len(node.inputs) > 2:
            add = g.make_node("add", [out, node.inputs[2]], {}, node.name + ".bias", node.span)
            rw.insert_before(node, add)
            out = add.outputs[0]
        rw.replace(node.outputs[0], out)
        rw.erase(node)
        edits.set(wt, after=w.name)
    if not rw.commit():
        return False
    edits.apply()
    g.prune_params()
    return True
