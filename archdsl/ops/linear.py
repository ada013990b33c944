"""linear: y = x W^T + b, torch's nn.Linear layout ([out, in] weight)."""

from __future__ import annotations

from ..types import numel
from ._common import float_input, kaiming_uniform, known_size, positive, shape_str
from .registry import Attr, OpDef, ParamSpec, fail, register


def _params(ins, a):
    positive("linear", a, "out_features")
    if not ins[0].rank:
        fail("linear: input must have at least one dim")
    fan_in = known_size("linear", "the input's last dim", ins[0].shape[-1], ins[0],
                        "the weight has a column per input feature")
    specs = [ParamSpec("weight", (a["out_features"], fan_in), kaiming_uniform(fan_in))]
    if a["bias"]:
        specs.append(ParamSpec("bias", (a["out_features"],), kaiming_uniform(fan_in)))
    return specs


def _infer(ins, a):
    x, w = ins[0], ins[1]
    float_input("linear", x)
    if x.rank < 1:
        fail("linear: input must have at least one dim")
    if w.rank != 2 or w.shape[1] != x.shape[-1]:
        fail(f"linear: expected {w.shape[1] if w.rank == 2 else '?'} input features, got {x.shape[-1]} "
             f"(input {shape_str(x)}, weight {shape_str(w)})")
    if len(ins) > 2 and ins[2].shape != (w.shape[0],):
        fail(f"linear: bias shape {shape_str(ins[2])} does not match {w.shape[0]} output features")
    return [x.with_shape(x.shape[:-1] + (w.shape[0],))]


def _lower(e, ins, outs, c):
    x_t = c.in_types[0]
    if x_t.rank == 2:
        e.op("Gemm", ins, outputs=outs, transB=1)
        return
    wt = e.op("Transpose", [ins[1]], perm=[1, 0])
    if len(ins) > 2:
        y = e.op("MatMul", [ins[0], wt])
        e.op("Add", [y, ins[2]], outputs=outs)
    else:
        e.op("MatMul", [ins[0], wt], outputs=outs)


def _grad(b, c, ins, outs, gouts):
    """gx = g W; gW = g^T x over all leading dims; gb = g summed over them."""
    g = gouts[0]
    x_t, w_t = c.in_types[0], c.in_types[1]
    res = [None] * len(ins)
    if b.needs(0):
        res[0] = b.op("matmul", g, ins[1])
    if b.needs(1):
        g2 = g if x_t.rank == 2 else b.op("reshape", g, shape=(-1, w_t.shape[0]))
        x2 = ins[0] if x_t.rank == 2 else b.op("reshape", ins[0], shape=(-1, w_t.shape[1]))
        res[1] = b.op("matmul", b.op("transpose", g2), x2)
    if len(ins) > 2 and b.needs(2):
        res[2] = b.op("sum", g, dim=tuple(range(x_t.rank - 1))) if x_t.rank > 1 else g
    return res


def _cost(c):
    return 2 * numel(c.out_types[0].shape) * c.in_types[1].shape[1]


register(OpDef(
    name="linear", inputs=("x",), category="layer",
    attrs=(Attr("out_features", "int"), Attr("bias", "bool", True)),
    params=_params, infer=_infer, lower=_lower, cost=_cost, grad=_grad,
    doc="Fully connected layer over the last dim (torch.nn.Linear).",
))
