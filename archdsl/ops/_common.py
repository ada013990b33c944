"""Small helpers the op definitions share: inits, cost formulas, dtype checks."""

from __future__ import annotations

import math

import numpy as np

from ..types import DType, TensorType, describe, dim_symbols, is_static, is_symbol, numel
from .registry import Init, OpCall, fail, give_numbers

__all__ = ["channels_first_perm", "channels_last_hint", "kaiming_uniform", "bias_uniform", "float_input",
           "elementwise_cost", "same_type", "shape_str", "conv_channels", "spatial_rank", "normalized_dims", "i64",
           "one_dtype", "widen", "wide_np", "wide_outputs", "narrow_into", "sigmoid"]


def i64(e, v) -> str:
    """An int64 constant (axes, shapes, sizes) in the graph being lowered."""
    return e.const(np.array(v, dtype=np.int64))


def shape_tensor(e, name: str, t: TensorType) -> str:
    """The shape of `name` as an int64 tensor: a constant when static."""
    return i64(e, list(t.shape)) if is_static(t.shape) else e.op("Shape", [name])


def reshape_like(e, v: str, name: str, t: TensorType, outputs=None) -> str:
    """`v` reshaped to the shape of `name`, a tensor of type `t`, with allowzero=1: a size of 0 is a 0, where
    ONNX's Reshape reads it as "copy this dim" (an empty slice's random numbers failed to load)."""
    return e.op("Reshape", [v, shape_tensor(e, name, t)], outputs=outputs, allowzero=1)


def numel_tensor(e, name: str, t: TensorType) -> str:
    """Element count as a 1-element int64 tensor."""
    if is_static(t.shape):
        return i64(e, [int(np.prod(t.shape, dtype=np.int64))])
    return e.op("ReduceProd", [e.op("Shape", [name])], keepdims=1)


def kaiming_uniform(fan_in: int) -> Init:
    """PyTorch's default for Linear/Conv weights: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Init("uniform", -bound, bound)


bias_uniform = kaiming_uniform


def shape_str(t: TensorType) -> str:
    return "[" + ", ".join(map(str, t.shape)) + "]"


def known_size(op: str, what: str, d, t: TensorType, why: str, hint: str = "") -> int:
    """A dim a layer's weights are sized by, or a diagnostic that says which sizes to fix and where."""
    if isinstance(d, int):
        return d
    batch = [n for n in dim_symbols(d) if n in ("B", "batch") and str(t.shape[0]) != n]
    if batch and not is_symbol(d):  # flatten(x, 0) to [192*B], reshape([32, -1]) to [32, 8*B], a permuted
        # [T, 8*B]: the batch went into another dim (not [B, 3*N]: N may be points; B leads there)
        fail(f"{op}: {what} must be a known size ({why}), got {d} in {shape_str(t)}: a size that multiplies in the "
             f"batch ({batch[0]}) came from a flatten or reshape across examples; keep {batch[0]} a dim of its own "
             "(flatten(x) keeps dim 0)")
    if not hint and t.rank == 3 and d == t.shape[-1] and isinstance(t.shape[1], int):  # [B, 64, T] into linear
        hint = f"; or, if {shape_str(t)} is [batch, channels, length], transpose(1, 2) first"
    if not hint and t.rank >= 2 and d == t.shape[1]:  # [B, H, W, 3] into conv2d ([B] into linear: api3 hunt)
        hint = channels_last_hint(t, "; or, if ")
    fail(f"{op}: {what} must be a known size ({why}), got {d} in {shape_str(t)}; {give_numbers(d)}{hint}")


def channels_first_perm(rank: int) -> list[int]:
    """The permute that puts a channels-last tensor's channels first: [0, rank - 1, 1, ..., rank - 2]."""
    return [0, rank - 1, *range(1, rank - 1)]


def channels_last_hint(t: TensorType, lead: str = "; if ") -> str:
    """For a layer that wants [N, C, ...] with a known C, given channels-last data of a symbolic size
    ([B, T, 64] sequences, [B, H, W, 3] images, a [B, H, W, 32] map inside a Keras-style net, where "give H a
    number" alone made the conv read H as channels: porting33): the transpose or permute that puts them first."""
    if t.rank < 3 or not isinstance(t.shape[-1], int) or isinstance(t.shape[1], int):
        return ""
    if t.rank == 3:
        return f"{lead}{shape_str(t)} is [batch, length, channels], transpose(1, 2) first"
    return (f"{lead}{shape_str(t)} is [batch, {', '.join(['spatial'] * (t.rank - 2))}, channels] (channels last), "
            f"permute({channels_first_perm(t.rank)}) it first")


def float_input(op: str, t: TensorType, what: str = "input") -> None:
    if not t.dtype.is_float:
        fail(f"{op}: {what} must be a float tensor, got {t.dtype}; cast it first (cast(x, \"float32\"))")


def cast_hint(x, y) -> str:
    """What to add to "dtypes differ": archdsl does not promote as torch does, and integer sums are int64."""
    wider = "int64" if not x.dtype.is_float and not y.dtype.is_float else None
    return (f"; cast one to the other (archdsl does not promote as torch does): cast(x, \"{wider}\")"
            + ("; sum and cumsum of integers give int64, as torch's" if wider else "")) if wider else \
        "; cast one to the other (archdsl does not promote as torch does)"


def float_pair_infer(name: str):
    """The shape rule of a binary float op of one dtype, broadcast (atan2, logaddexp)."""
    from .shapes import broadcast

    def infer(ins, a):
        x, y = ins
        float_input(name, x)
        if x.dtype != y.dtype:
            fail(f"{name}: dtypes differ ({x.dtype} vs {y.dtype})" + cast_hint(x, y))
        return [x.with_shape(broadcast(x.shape, y.shape, f"{name} operands"))]
    return infer


def spatial_rank(name: str, x: TensorType, n: int) -> None:
    """An n-d conv's or pool's input is [N, C, *n spatial]; torch's unbatched [C, *spatial] is said how to write."""
    if x.rank != n + 2:
        unbatched = (f"; torch's unbatched [C, {', '.join(['spatial'] * n)}] form: unsqueeze(x, 0) first, [0] of the "
                     "result after") if x.rank == n + 1 else ""
        fail(f"{name}: expected a rank-{n + 2} input [N, C, {', '.join(['spatial'] * n)}], got {shape_str(x)}"
             + unbatched)


def conv_channels(name: str, x: TensorType, n: int, groups: int, out_channels: int) -> int:
    """The input channels of an n-d (transposed) conv, after the checks both kinds make before they can
    create their weights: rank, a known channel dim, groups dividing both channel counts."""
    spatial_rank(name, x, n)
    seq = n == 1 and isinstance(x.shape[2], int) and not isinstance(x.shape[1], int)  # [B, T, F]: channels last
    cin = known_size(name, "the channel dim", x.shape[1], x, "the weight has a slice per input channel",
                     f"; or, if {shape_str(x)} is [batch, length, channels], transpose(1, 2) first: {name} takes "
                     "[batch, channels, length]" if seq else "")
    if groups <= 0:
        fail(f"{name}: groups must be positive, got {groups}", "groups")
    if cin % groups or out_channels % groups:
        fail(f"{name}: groups={groups} must divide both in_channels={cin} and out_channels={out_channels}", "groups")
    return cin


def normalized_dims(name: str, x: TensorType, ns, params: list[TensorType] = (), known: bool = False):
    """The trailing dims a layer/RMS norm normalizes (the last one by default), checked against x, against
    its affine parameters, and (`known`, before creating them) for being known sizes."""
    if ns is None:
        ns = (x.shape[-1],) if x.rank else ()
    if not ns or len(ns) > x.rank or tuple(x.shape[x.rank - len(ns):]) != tuple(ns):
        fail(f"{name}: normalized_shape {list(ns)} does not match the trailing dims of {shape_str(x)}")
    if known:
        for d in ns:
            known_size(name, "a normalized dim", d, x, "the weight and bias have one entry per element")
    for p in params:
        if tuple(p.shape) != tuple(ns):
            fail(f"{name}: parameter shape {shape_str(p)} does not match normalized shape {list(ns)}")
    return tuple(ns)


def tril_keep(e, x: str, rank: int, offset: str | None = None) -> str:
    """bool [T, S] from the runtime shape of x's last two dims: true where j <= i (+ offset, a scalar int64),
    the mask of causal attention."""
    from onnx import numpy_helper
    shape = e.op("Shape", [x], start=rank - 2)
    ones = e.op("ConstantOfShape", [shape], value=numpy_helper.from_array(np.ones(1, np.float32)))
    tri = e.op("Trilu", [ones] + ([offset] if offset is not None else []), upper=0)
    return e.op("Cast", [tri], to=DType.bool.onnx)


def select(e, cond: str, a: str, b: str, dtype: DType, outputs=None) -> str:
    """ONNX Where, except for bool branches, which onnxruntime's CPU Where has no kernel for (the model would
    not load): (cond and a) or (not cond and b), the same broadcasting; bfloat16 ones go through float32."""
    if dtype is DType.bool:
        return e.op("Or", [e.op("And", [cond, a]), e.op("And", [e.op("Not", [cond]), b])], outputs=outputs)
    if dtype is DType.bfloat16:  # no bfloat16 Where either: chosen in float32 (exact both ways)
        wide = [e.op("Cast", [v], to=DType.float32.onnx) for v in (a, b)]
        return e.op("Cast", [e.op("Where", [cond, *wide])], to=dtype.onnx, outputs=outputs)
    return e.op("Where", [cond, a, b], outputs=outputs)


def sign_bit(e, x: str, f) -> str:
    """-1 where x's sign bit is set (-0.0 too: 1 / -0.0 is -inf), else 1, in numpy dtype f: a result multiplied
    by it keeps a signed zero, which onnxruntime's Where turns into +0."""
    zero = e.const(np.array(0, f))
    negative = e.op("Or", [e.op("Less", [x, zero]), e.op("Less", [e.op("Reciprocal", [x]), zero])])
    return e.op("Where", [negative, e.const(np.array(-1, f)), e.const(np.array(1, f))])


def elementwise_cost(c: OpCall) -> int:
    return sum(numel(t.shape) for t in c.out_types)


def one_dtype(op: str, ins: list[TensorType]) -> None:
    """The tensors of a list op (concat, stack, einsum) share one dtype: ONNX converts none of them."""
    if any(t.dtype != ins[0].dtype for t in ins[1:]):
        fail(f"{op}: dtypes differ ({', '.join(u.dtype.label for u in ins)}); cast them to one")


def same_type(ins: list[TensorType], a: dict) -> list[TensorType]:
    return [ins[0]]


NORMAL_REACH = 5.7  # a generated normal init reaches 5.64 std (lower/weights.py: Box-Muller of 23-bit uniforms)


def drawn_top(dtype: DType) -> float:
    """The largest number a generated init may reach: drawn in float32 (3.4e38, just under its largest), then
    stored in `dtype`."""
    return min(dtype.limits()[1], 3.4e38)


def fill_array(op: str, value, dtype: DType, named_infinity: bool = True):
    """A fill value (masked_fill, causal_mask, pad) as a scalar array of the tensor's dtype; one that does not
    fit (2**40 in int32, 1e39 in float32, 0.5 or inf in an integer tensor) is a diagnostic, not an overflow
    in the lowering or a silent inf."""
    v = {"-inf": -math.inf, "inf": math.inf}.get(value, value) if isinstance(value, str) else value
    if dtype is DType.bool and v not in (0, 1):  # np.array(-inf, bool) is true: a causal mask kept everything
        fail(f"{op}: a bool tensor is filled with true or false (0 or 1), got "
             + (f'"{value}" (the default, for float scores)' if value == "-inf" else repr(value)))
    if dtype.is_float:
        top = dtype.limits()[1]
        if isinstance(v, int) and abs(v) > top or math.isfinite(v) and abs(v) > top:  # 10**400: no float (an
            # OverflowError in isfinite)
            fail(f"{op}: value {value} does not fit {dtype} (largest {top:g})"
                 + ("; use \"inf\" or \"-inf\" for infinity" if named_infinity else ""))
    elif dtype is not DType.bool:
        low, top = dtype.limits()
        if not isinstance(v, int) and (not math.isfinite(v) or v != int(v)) or not low <= int(v) <= top:
            fail(f"{op}: value {value} does not fit the {dtype} tensor ({low}..{top}, whole numbers)")
        v = int(v)
    return np.array(v, dtype=dtype.numpy)


def check_fill(name: str, x: TensorType, v) -> None:
    """A fill value attribute: a number (true and false are 1 and 0, as torch's), or "-inf"/"inf" for a float
    tensor, that fits the tensor's dtype."""
    if isinstance(v, str) and v not in ("-inf", "inf") or not isinstance(v, (int, float, str)):
        fail(f'{name}: value must be a number, true, false, "-inf" or "inf", got {describe(v)}', "value")
    fill_array(name, v, x.dtype)


def check_eps(op: str, eps) -> None:
    """A normalization's eps is added to a variance: a negative one makes sqrt NaN wherever the variance is
    smaller (torch does not check; its outputs turn NaN)."""
    if eps is not None and not (eps >= 0 and math.isfinite(eps)):
        fail(f"{op}: eps must be >= 0 and finite, got {eps}", "eps")


def positive(op: str, a: dict, *names: str) -> None:
    """Sizes and steps a layer is built from, each named where it is not positive: `conv2d(8, 0)` and an
    out_channels of `-D growth=0` said "parameter 'weight' has a dim of 0", naming no argument."""
    for n in names:
        v = a[n]
        if any(x <= 0 for x in (v if isinstance(v, tuple) else (v,))):
            shown = list(v) if isinstance(v, tuple) and len(v) > 1 else v[0] if isinstance(v, tuple) else v
            fail(f"{op}: {n} must be positive, got {shown}", n)


def eps_attribute_fits(eps: float, dtype: DType) -> bool:
    """Whether a norm's eps may be an ONNX float attribute (32-bit) on a dtype's tensor: for float64, only an
    eps float32 holds exactly (1e-5 is 1.0000000000000001e-05 there: the output ~1e-8 off torch's), else the
    op is decomposed with eps a float64 constant."""
    return dtype is not DType.float64 or float(np.float32(eps)) == eps


def standardized(e, x: str, axes: list[int], eps: float, dt, outputs=None) -> str:
    """(x - mean) / sqrt(var + eps) over axes (the biased variance), written out: a norm's float64 form, with
    eps a constant of x's dtype (an ONNX float attribute would round it to float32)."""
    d = e.op("Sub", [x, reduce_op(e, "ReduceMean", x, axes, 1)])
    var = reduce_op(e, "ReduceMean", e.op("Mul", [d, d]), axes, 1)
    return e.op("Div", [d, e.op("Sqrt", [e.op("Add", [var, e.const(np.array(eps, dtype=dt))])])], outputs=outputs)


def check_norm_eps(op: str, eps, whole: str) -> None:
    """A norm's eps is a small positive number added to a variance. Positional arguments fill it after the
    input (and num_groups, normalized_shape), so torch's channel count written there (batchnorm2d(64),
    group_norm(32, 64)) became eps=64.0 without a word: an eps of 1 or more is refused, `whole` saying where
    that number belongs; 0 too, which divides by zero on a constant channel."""
    if eps is None:
        return
    if not (eps > 0 and math.isfinite(eps)):
        fail(f"{op}: eps must be positive and finite (1/sqrt(var + eps) stays finite then), got {eps:g}", "eps")
    if eps >= 1:
        fail(f"{op}: eps got {eps:g}, which is no epsilon (a small number such as 1e-5, below 1); {whole}", "eps")


def reduce_op(e, onnx_op: str, x: str, axes: list[int], keepdims: int, outputs=None) -> str:
    """ReduceMax/ReduceMean/... over `axes` at the emitter's opset: the axes are an input from opset 18
    (ReduceSum: 13), an attribute before."""
    if e.opset >= (13 if onnx_op == "ReduceSum" else 18):
        return e.op(onnx_op, [x, e.const(np.array(axes, dtype=np.int64))], outputs=outputs, keepdims=keepdims)
    return e.op(onnx_op, [x], outputs=outputs, axes=axes, keepdims=keepdims)


def bfloat16_from(e, t: TensorType, name: str, what: str, opset: int = 22) -> None:
    """ONNX's conv, pool and recurrent ops take bfloat16 only from opset 22 (GroupNormalization
    from 21): below that the model would fail the checker, so the build says so at the op."""
    if t.dtype is DType.bfloat16 and e.opset < opset:
        fail(f"{name}: {what} bfloat16 from opset {opset}; this build targets opset {e.opset} (--opset {opset})")


def widened(b, v, dtype: DType):
    """A gradient rule's value in float32 where `dtype` is 16-bit: norms compute their statistics there, as
    torch's kernels do (a float16 eps of 1e-8 is 0, a constant row's gradient NaN). narrowed() goes back."""
    return b.op("cast", v, dtype="float32") if dtype.is_16bit else v


def narrowed(b, v, dtype: DType):
    return b.op("cast", v, dtype=dtype.label) if dtype.is_16bit else v


# the same in a lowering: a 16-bit input computed in float32 (widen), the result cast back (narrow_into)
def accumulated(dtype: DType) -> DType:
    """The float dtype torch's CPU kernels accumulate a float dtype's sums and products in: float64 for float32
    (and float64), float32 for 16-bit (onnxruntime's float32 reductions add up in float32)."""
    return DType.float32 if dtype.is_16bit else DType.float64


def widen(e, x: str, t: TensorType) -> str:
    return e.op("Cast", [x], to=DType.float32.onnx) if t.dtype.is_16bit else x


def narrow(e, x: str, t: TensorType) -> str:
    """widen's way back: a float32 value cast to 16-bit t's dtype (t of another dtype: x as it is)."""
    return e.op("Cast", [x], to=t.dtype.onnx) if t.dtype.is_16bit else x


def wide_np(t: TensorType):
    """The numpy dtype a widened t computes in (for its constants)."""
    return np.float32 if t.dtype.is_16bit else t.dtype.numpy


def wide_outputs(t: TensorType, outs):
    """Where the last wide op writes: the node's outputs, or (16-bit) a fresh value narrow_into casts there."""
    return None if t.dtype.is_16bit else outs


def narrow_into(e, y: str, t: TensorType, outs) -> None:
    if t.dtype.is_16bit:
        e.op("Cast", [y], outputs=outs, to=t.dtype.onnx)


def sigmoid(e, x: str, dtype: DType, outputs=None) -> str:
    """ONNX Sigmoid, but in float64 1 / (1 + exp(-x)): onnxruntime's float64 Sigmoid kernel is 3.6e-8 off at
    -20, 0.1% at -30 and 0 from about -37, where torch keeps float64's precision to about -709 (ops2 hunt)."""
    if dtype is not DType.float64:
        return e.op("Sigmoid", [x], outputs=outputs)
    one = e.const(np.array(1.0, dtype=np.float64))
    return e.op("Reciprocal", [e.op("Add", [one, e.op("Exp", [e.op("Neg", [x])])])], outputs=outputs)


def log_softmax_of(e, x: str, axis: int, dtype: DType, outputs=None) -> str:
    """ONNX LogSoftmax; float64 written out, x - max - log(sum(exp(x - max))): onnxruntime's float64 kernel gave
    finite positive values (44.05) for a row holding NaN or inf past its first place, where torch's are NaN
    (gradnan hunt; cross_entropy's loss read -45.55 for NaN logits: lossfns hunt)."""
    if dtype is not DType.float64:
        return e.op("LogSoftmax", [x], outputs=outputs, axis=axis)
    s = e.op("Sub", [x, reduce_op(e, "ReduceMax", x, [axis], 1)])
    return e.op("Sub", [s, e.op("Log", [reduce_op(e, "ReduceSum", e.op("Exp", [s]), [axis], 1)])], outputs=outputs)
