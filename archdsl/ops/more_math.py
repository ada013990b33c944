"""More tensor math, torch semantics: floor/ceil/round/trunc/frac, sign, rsqrt, cumsum, argmax/argmin, tril/triu, stack.

Shape rules live here (not in _common) so that the core-op coverage test finds these ops by module."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType, numel
from ._common import (
    accumulated,
    bfloat16_from,
    elementwise_cost,
    float_input,
    one_dtype,
    reduce_op,
    shape_str,
    sign_bit,
)
from ._common import i64 as _i64
from .registry import Attr, OpDef, fail, register
from .shapes import norm_axis, torch_dim

__all__ = ["cumsum_infer", "cumsum_lower"]


def _zero_grad(b, c, ins, outs, gouts):
    """torch's gradient of a step function (floor, ceil, round, sign): zero everywhere."""
    return [b.zeros_like(ins[0])]


# ---------------- floor, ceil, round, sign, rsqrt ----------------

def _no_bool(name: str, x: TensorType) -> None:
    if x.dtype is DType.bool:
        fail(f"{name}: no arithmetic on bool tensors; cast(x, \"float32\") first")


_MAX_DECIMALS = 300


def _rounding_infer(name: str):
    def infer(ins, a):
        x = ins[0]
        _no_bool(name, x)
        if a.get("decimals", 0) and not x.dtype.is_float:
            fail(f"{name}: decimals={a['decimals']} needs a float tensor, got {x.dtype} (as torch.round)", "decimals")
        if abs(a.get("decimals", 0)) > _MAX_DECIMALS:  # 10**309 is past any float
            fail(f"{name}: decimals={a['decimals']} is outside -{_MAX_DECIMALS}..{_MAX_DECIMALS}", "decimals")
        return [x]
    return infer


def _rounding_lower(name: str, onnx_op: str):
    def lower(e, ins, outs, c):
        t = c.in_types[0]
        if not t.dtype.is_float:  # torch.floor/ceil/round of an integer tensor is the tensor itself
            e.op("Identity", ins, outputs=outs)
            return
        if onnx_op == "Round":
            bfloat16_from(e, t, name, "ONNX Round takes")
        d = c.attrs.get("decimals", 0)
        if not d:
            e.op(onnx_op, ins, outputs=outs)
            return
        # torch.round(x, decimals=d): round(x * 10^d) / 10^d, or round(x / 10^-d) * 10^-d for d < 0; 16-bit
        # floats in float32, as torch computes them (10^5 is inf in float16)
        wide = DType.float64 if t.dtype is DType.float64 else DType.float32
        x = ins[0] if t.dtype is wide else e.op("Cast", [ins[0]], to=wide.onnx)
        with np.errstate(over="ignore"):  # 10^40 is inf in float32, as in torch
            p = e.const(np.array(10.0 ** abs(d), dtype=wide.numpy))
        scaled = e.op("Round", [e.op("Mul" if d > 0 else "Div", [x, p])])
        if t.dtype is wide:
            e.op("Div" if d > 0 else "Mul", [scaled, p], outputs=outs)
        else:
            e.op("Cast", [e.op("Div" if d > 0 else "Mul", [scaled, p])], outputs=outs, to=t.dtype.onnx)
    return lower


for _name, _onnx, _doc in (
        ("floor", "Floor", "Round down to a whole number, elementwise (torch.floor); integer tensors are "
                           "returned as they are. Gradient zero, as torch's."),
        ("ceil", "Ceil", "Round up to a whole number, elementwise (torch.ceil); integer tensors are returned as "
                         "they are. Gradient zero, as torch's."),
):
    register(OpDef(name=_name, inputs=("x",), category="math", infer=_rounding_infer(_name), elementwise=True,
                   lower=_rounding_lower(_name, _onnx), cost=elementwise_cost, grad=_zero_grad, doc=_doc))

register(OpDef(
    name="round", inputs=("x",), category="math", attrs=(Attr("decimals", "int", 0),),
    infer=_rounding_infer("round"), elementwise=True, lower=_rounding_lower("round", "Round"), cost=elementwise_cost,
    grad=_zero_grad,
    doc="Round to the nearest whole number, halves to even (torch.round, ONNX Round); decimals=d rounds at "
        "10^-d as torch. Integer tensors are returned as they are. Gradient zero, as torch's.",
))


def _trunc(e, x: str, t: TensorType, outputs=None) -> str:
    """Toward zero, as floor(|x|) times x's sign bit (ONNX has no Trunc; a Where between Ceil and Floor, or
    ONNX Sign, would lose the sign of trunc(-0.5) and trunc(-0.0): onnxruntime's Where gives +0 for -0)."""
    return e.op("Mul", [e.op("Floor", [e.op("Abs", [x])]), sign_bit(e, x, t.dtype.numpy)], outputs=outputs)


def _trunc_lower(e, ins, outs, c):
    t = c.in_types[0]
    if not t.dtype.is_float:
        e.op("Identity", ins, outputs=outs)
    else:
        _trunc(e, ins[0], t, outputs=outs)


def _frac_infer(ins, a):
    float_input("frac", ins[0])
    return [ins[0]]


register(OpDef(
    name="trunc", inputs=("x",), category="math", infer=_rounding_infer("trunc"), elementwise=True,
    lower=_trunc_lower, cost=elementwise_cost, grad=_zero_grad,
    doc="Round toward zero, elementwise (torch.trunc); integer tensors are returned as they are. Gradient zero, "
        "as torch's.",
))
register(OpDef(
    name="frac", inputs=("x",), category="math", infer=_frac_infer, elementwise=True,
    lower=lambda e, ins, outs, c: e.op("Sub", [ins[0], _trunc(e, ins[0], c.in_types[0])], outputs=outs),
    cost=elementwise_cost, grad=lambda b, c, ins, outs, gouts: [gouts[0]],
    doc="The fractional part x - trunc(x), the sign of x, elementwise (torch.frac); float tensors. Gradient 1.",
))


def _sign_infer(ins, a):
    _no_bool("sign", ins[0])
    return [ins[0]]


def _sign_lower(e, ins, outs, c):
    if not c.in_types[0].dtype.is_float:
        e.op("Sign", ins, outputs=outs)
        return
    zero = e.const(np.array(0, dtype=c.in_types[0].dtype.numpy))  # torch.sign(nan) is 0
    e.op("Where", [e.op("IsNaN", ins), zero, e.op("Sign", ins)], outputs=outs)


register(OpDef(
    name="sign", inputs=("x",), category="math", infer=_sign_infer, elementwise=True, grad=_zero_grad,
    lower=_sign_lower, cost=elementwise_cost,
    doc="-1, 0 or 1 by the sign of each element, 0 for NaN (torch.sign); gradient zero, as torch's.",
))


def _rsqrt_infer(ins, a):
    float_input("rsqrt", ins[0])
    return [ins[0]]


def _rsqrt_grad(b, c, ins, outs, gouts):
    """d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3."""
    y = outs[0]
    return [b.op("mul", gouts[0], b.op("mul", b.op("mul", y, b.op("mul", y, y)), b.const(-0.5, like=y)))]


register(OpDef(
    name="rsqrt", inputs=("x",), category="math", infer=_rsqrt_infer, elementwise=True, grad=_rsqrt_grad,
    lower=lambda e, ins, outs, c: e.op("Reciprocal", [e.op("Sqrt", ins)], outputs=outs), cost=elementwise_cost,
    doc="1 / sqrt(x), elementwise (torch.rsqrt).",
))


# ---------------- cumsum ----------------



def cumsum_infer(ins, a):
    x = ins[0]
    torch_dim("cumsum", x, a["dim"])
    # torch sums integers (and bools) in int64
    return [x if x.dtype.is_float else TensorType(DType.int64, x.shape)]


def cumsum_lower(reverse: int):
    def lower(e, ins, outs, c):
        x, t = ins[0], c.in_types[0]
        if not t.dtype.is_float and t.dtype is not DType.int64:
            x = e.op("Cast", [x], to=DType.int64.onnx)
        if t.rank == 0:
            e.op("Identity", [x], outputs=outs)
            return
        ax = torch_dim("cumsum", t, c.attrs["dim"])
        # sums in torch's CPU accumulator: 16-bit in float32 (float16 ones summed as written stopped growing at
        # 2048), float32 in float64 (1e4 then 4095 hundredths came to 10039.99 in float32, 10040.95 in torch;
        # a NeRF's exp(-cumsum) transmittance over 1024 samples 1.1e-5 off against 4.8e-7: pointnerf hunt)
        wide = accumulated(t.dtype) if t.dtype.is_float else DType.int64
        if wide in (t.dtype, DType.int64):
            e.op("CumSum", [x, _i64(e, ax)], outputs=outs, reverse=reverse)
            return
        y = e.op("CumSum", [e.op("Cast", [x], to=wide.onnx), _i64(e, ax)], reverse=reverse)
        e.op("Cast", [y], outputs=outs, to=t.dtype.onnx)
    return lower


register(OpDef(
    name="cumsum", inputs=("x",), category="math", attrs=(Attr("dim", "int"),),
    infer=cumsum_infer, lower=cumsum_lower(0), cost=lambda c: numel(c.in_types[0].shape),
    grad=lambda b, c, ins, outs, gouts: [b.op("autodiff.cumsum_reverse", gouts[0], dim=c.attrs["dim"])],
    doc="Running sum along dim (torch.cumsum; ONNX CumSum); integers and bools sum in int64, float16 and bfloat16 "
        "in float32 and float32 in float64, as torch's CPU kernel.",
))


# ---------------- argmax, argmin ----------------

def _arg_infer(name: str):
    def infer(ins, a):
        x = ins[0]
        if x.dtype is DType.bool:
            fail(f"{name}: not defined on bool tensors (nor in torch); cast(x, \"int64\") first")
        if a["dim"] is None:
            if 0 in x.shape:  # onnxruntime's kernel fails; torch refuses it too
                fail(f"{name}: {shape_str(x)} is empty; there is no {name[3:]} to find")
            return [TensorType(DType.int64, (1,) * x.rank if a["keepdim"] else ())]
        if x.rank == 0:
            fail(f"{name}: a 0-d tensor has no dim {a['dim']}; leave dim out")
        ax = norm_axis(a["dim"], x.rank, f"{name}: dim")
        if x.shape[ax] == 0:
            fail(f"{name}: dim {a['dim']} of {shape_str(x)} is empty; there is no {name[3:]} to find")
        shape = x.shape[:ax] + ((1,) if a["keepdim"] else ()) + x.shape[ax + 1:]
        return [TensorType(DType.int64, shape)]
    return infer


def _arg_lower(onnx_op: str):
    def pick(e, x: str, t: TensorType, axis: int, keepdims: int, outputs=None) -> str:
        """ONNX's ArgMax/ArgMin say nothing of NaN; torch takes a NaN as the extreme, the first one."""
        if not t.dtype.is_float:
            return e.op(onnx_op, [x], outputs=outputs, axis=axis, keepdims=keepdims, select_last_index=0)
        idx = e.op(onnx_op, [x], axis=axis, keepdims=keepdims, select_last_index=0)
        nan = e.op("Cast", [e.op("IsNaN", [x])], to=DType.int32.onnx)
        first_nan = e.op("ArgMax", [nan], axis=axis, keepdims=keepdims, select_last_index=0)
        any_nan = e.op("Cast", [reduce_op(e, "ReduceMax", nan, [axis], keepdims)], to=DType.bool.onnx)
        return e.op("Where", [any_nan, first_nan, idx], outputs=outputs)

    def lower(e, ins, outs, c):
        t, a = c.in_types[0], c.attrs
        if a["dim"] is None:  # torch: the index into the flattened tensor
            flat = e.op("Reshape", [ins[0], _i64(e, [-1])])
            flat_t = t.with_shape((numel(t.shape),))
            if not a["keepdim"]:
                pick(e, flat, flat_t, 0, 0, outputs=outs)
                return
            e.op("Reshape", [pick(e, flat, flat_t, 0, 1), _i64(e, [1] * t.rank)], outputs=outs)
            return
        pick(e, ins[0], t, norm_axis(a["dim"], t.rank), int(a["keepdim"]), outputs=outs)
    return lower


for _name, _onnx, _what in (("argmax", "ArgMax", "largest"), ("argmin", "ArgMin", "smallest")):
    register(OpDef(
        name=_name, inputs=("x",), category="math", attrs=(Attr("dim", "int?", None), Attr("keepdim", "bool", False)),
        infer=_arg_infer(_name), lower=_arg_lower(_onnx), cost=lambda c: numel(c.in_types[0].shape),
        nonempty=lambda ins, a: range(ins[0].rank) if a["dim"] is None else [norm_axis(a["dim"], ins[0].rank)],
        doc=f"int64 index of the {_what} element along dim, the first one on ties, a NaN before any number "
            f"(torch.{_name}); dim=none: into the flattened tensor. No gradient (integer output).",
    ))


# ---------------- tril, triu ----------------

def _tri_infer(name: str):
    def infer(ins, a):
        x = ins[0]
        if x.rank < 2:
            fail(f"{name}: needs a tensor of at least 2 dims (a matrix or a batch of them), got {shape_str(x)}")
        return [x]
    return infer


# a KV cache's mask: torch's triu(full((S, P + S), -inf), diagonal=P + 1) at a run-time past length P (kvcache hunt)
_TRI_SYMBOLIC = ("a diagonal offset by a run-time length (a KV cache's past P: triu(full_like(s, \"-inf\"), "
                 "diagonal=P + 1) over scores s [..., S, P + S]) is causal_mask(s), bottom-right aligned (a key is "
                 "hidden past query i + P), or masked_fill(s, positions(s, dim=-1) > "
                 "unsqueeze(positions(s, dim=-2), 1) + P, \"-inf\")")
for _name, _upper, _part in (("tril", 0, "on and below"), ("triu", 1, "on and above")):
    register(OpDef(
        name=_name, inputs=("x",), category="math", attrs=(Attr("diagonal", "int", 0, symbolic=_TRI_SYMBOLIC),),
        infer=_tri_infer(_name),
        lower=lambda e, ins, outs, c, u=_upper: e.op("Trilu", [ins[0], _i64(e, c.attrs["diagonal"])],
                                                     outputs=outs, upper=u),
        cost=elementwise_cost,
        grad=lambda b, c, ins, outs, gouts, n=_name: [b.op(n, gouts[0], diagonal=c.attrs["diagonal"])],
        doc=f"Keep the elements {_part} the diagonal of the last two dims, zeros elsewhere (torch.{_name}); "
            f"diagonal=k moves it k up (k < 0: down). ONNX Trilu.",
    ))


# ---------------- stack ----------------

def _stack_infer(ins, a):
    if not ins:
        fail("stack: needs at least one tensor")
    first = ins[0]
    one_dtype("stack", ins)
    for t in ins[1:]:
        if tuple(t.shape) != tuple(first.shape):
            fail(f"stack: every tensor must have one shape, got {shape_str(first)} and {shape_str(t)}")
    ax = norm_axis(a["dim"], first.rank + 1, "stack: dim")
    return [first.with_shape(first.shape[:ax] + (len(ins),) + first.shape[ax:])]


def _stack_lower(e, ins, outs, c):
    ax = norm_axis(c.attrs["dim"], c.in_types[0].rank + 1)
    axes = _i64(e, [ax])
    if len(ins) == 1:
        e.op("Unsqueeze", [ins[0], axes], outputs=outs)
        return
    e.op("Concat", [e.op("Unsqueeze", [x, axes]) for x in ins], outputs=outs, axis=ax)


def _stack_grad(b, c, ins, outs, gouts):
    """g split along the new dim into pieces of 1, each squeezed."""
    ax = norm_axis(c.attrs["dim"], c.in_types[0].rank + 1)
    parts = b.op("split", gouts[0], sizes=(1,), axis=ax) if len(ins) > 1 else (gouts[0],)
    return [b.op("squeeze", p, dim=(ax,)) if b.needs(i) else None for i, p in enumerate(parts)]


register(OpDef(
    name="stack", inputs=("*xs",), category="shape", attrs=(Attr("dim", "int", 0),),
    infer=_stack_infer, lower=_stack_lower, cost=lambda c: 0, grad=_stack_grad,
    doc="Join a list of tensors of one shape along a new dim (torch.stack); dim < 0 counts from the result's "
        "rank.",
))
