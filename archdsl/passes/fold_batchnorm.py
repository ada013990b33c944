"""fold_batchnorm: an inference BatchNorm right after a conv, transposed conv or linear layer becomes part of it.

Rule: y = bn(conv(x, W, b)) with s = gamma / sqrt(var + eps) is conv(x, W * s[:, None, ...], (b - mean) * s + beta)
(b = 0 when the conv has no bias; a transposed conv's weight [in, out, ...] is scaled along dim 1, groups=1 only).
Applies when the conv/linear output is read only by the BatchNorm, its
weight (and bias) only by it, and the BatchNorm's parameters are parameters (not computed); for linear, only
on a [N, C] output, where BatchNorm1d's channel dim is the feature dim. The folded weight and bias are
derived parameters (`derived.DerivedSpec`) named conv.weight.folded and conv.bias.folded: computed from the
originals at lowering time, when weights exist, so counting and checking never materialize anything. Inference
graphs only."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..types import TensorType
from ._rewrite import Rewriter, single_use
from .derived import ParamEdits, derived_param
from .manager import PassContext, register_pass

_LAYERS = {"conv1d", "conv2d", "conv3d", "linear", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}


def _fold_weight(eps: float, affine: bool, out_axis: int):
    def fn(w, *bn):
        gamma, _, _, var = _bn_arrays(bn, affine)
        s = _scale(gamma, var, eps)
        shape = [1] * w.ndim
        shape[out_axis] = -1
        return w * s.reshape(shape)
    return fn


def _fold_bias(eps: float, affine: bool, has_bias: bool):
    def fn(*arrays):
        b = arrays[0] if has_bias else None
        gamma, beta, mean, var = _bn_arrays(arrays[1:] if has_bias else arrays, affine)
        s = _scale(gamma, var, eps)
        return ((b if b is not None else 0.0) - mean) * s + beta
    return fn


def _scale(gamma, var, eps: float):
    """gamma / sqrt(var + eps), eps in float64 for float64 statistics (the unfolded op keeps it so); a negative
    running_var (a bad --weights file) is NaN, as torch's, and not numpy's RuntimeWarning printed from this
    file."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return gamma / np.sqrt(var + np.asarray(eps, np.float64 if var.dtype == np.float64 else np.float32))


def _bn_arrays(bn, affine):
    if affine:
        return bn
    mean, var = bn
    return np.ones_like(mean), np.zeros_like(mean), mean, var


def _foldable(bn: Node, rw: Rewriter) -> Node | None:
    x = bn.inputs[0]
    layer = x.producer
    if layer is None or layer.op not in _LAYERS or rw.is_dead(layer) or not single_use(x, rw):
        return None
    if (any(not p.is_param for p in bn.inputs[1:])
            or any(not p.is_param or not single_use(p, rw) for p in layer.inputs[1:])):
        return None
    if layer.op == "linear" and x.type.rank != 2:
        return None
    if layer.op.startswith("conv_transpose") and layer.attrs["groups"] != 1:
        return None  # weight [in, out/groups, ...]: output channels are not one axis
    if x.type.dtype.np is None or len(layer.inputs) < 2:
        return None
    return layer


@register_pass("fold_batchnorm", level=2, inference_only=True,
               doc="fold inference BatchNorm into the preceding conv/linear (derived weights)")
def fold_batchnorm(g: Graph, ctx: PassContext) -> bool:
    if not ctx.inference:
        return False
    rw = Rewriter(g)
    edits = ParamEdits(g)
    for bn in g.nodes:
        if bn.op != "batchnorm":
            continue
        layer = _foldable(bn, rw)
        if layer is None:
            continue
        eps, affine = float(bn.attrs["eps"]), bool(bn.attrs["affine"])
        w, bias = layer.inputs[1], (layer.inputs[2] if len(layer.inputs) > 2 else None)
        bn_params = list(bn.inputs[1:])
        out_axis = 1 if layer.op.startswith("conv_transpose") else 0   # [in, out, *k] vs [out, in, *k]
        # new names, as pretranspose_linear's fc.weight.T: under conv.weight a reader of the file by state_dict
        # names took the folded values for the trained ones (and found a bias the conv never had)
        new_w = derived_param(edits.fresh(w.name + ".folded"), w.type, [w] + bn_params,
                              _fold_weight(eps, affine, out_axis), w.kind == "param")
        b_name = edits.fresh((bias.name if bias is not None else w.name.rsplit(".", 1)[0] + ".bias"
                              if "." in w.name else w.name + ".bias") + ".folded")
        c = w.type.shape[out_axis]
        new_b = derived_param(b_name, TensorType(w.type.dtype, (c,)), ([bias] if bias is not None else []) + bn_params,
                              _fold_bias(eps, affine, bias is not None), w.kind == "param")
        attrs = dict(layer.attrs, bias=True)
        new = g.make_node(layer.op, [layer.inputs[0], new_w, new_b], attrs, layer.name, layer.span)
        if new.outputs[0].type != bn.outputs[0].type:
            for v in new.inputs:
                v.uses.remove(new)
            continue
        edits.set(new_w, after=w.name)
        edits.set(new_b, after=new_w.name)
        rw.insert_before(layer, new)
        rw.replace(bn.outputs[0], new.outputs[0])
        rw.erase(bn)
        rw.erase(layer)
    if not rw.commit():
        return False
    edits.apply()
    g.prune_params()
    return True
