"""Ops that exist only in a train step: batchnorm on batch statistics, the dropout mask, the gradients of the
losses.

Internal registry ops (category "internal"), each with its lowering to standard ONNX and its gradient rule.

Dropout, rand_like and randn_like draw from the step's seed and step inputs through ops/random.py's hash, not
from ONNX's random ops (their seed is an attribute fixed when the model is built)."""

from __future__ import annotations

import numpy as np

from ..ops import Attr, OpDef, fail, reduce_op, register
from ..ops._common import i64 as _i64
from ..ops._common import numel_tensor, reshape_like, sigmoid
from ..ops.losses import BCE_ATTRS, CE_ATTRS, kept_labels, labels64
from ..ops.random import bits24, hashed_bits, random_key, random_values
from ..types import DTYPES, DType, TensorType, is_static, numel

__all__: list[str] = []


def _scalar(e, v, t: TensorType):
    return e.const(np.array(v, dtype=t.dtype.numpy))


def _internal(name, inputs, infer, lower, attrs=(), doc="", grad=None, random=False):
    register(OpDef(name=f"autodiff.{name}", inputs=inputs, attrs=tuple(attrs), infer=infer, lower=lower,
                   cost=lambda c: 0, category="internal", doc=doc, grad=grad, random=random))


# ---- batchnorm on batch statistics ----
def _bn_axes(rank: int) -> list[int]:
    return [0] + list(range(2, rank))


def _bn_infer(ins, a):
    x = ins[0]
    stat = TensorType(_computed_in(x.dtype), (x.shape[1],))  # the batch's mean and 1/std: the gradient reads them
    return [x, ins[3], ins[4], stat, stat, x]


def _computed_in(dtype: DType) -> DType:
    """A 16-bit batch's statistics and gradient are computed in float32, as torch's kernels do: in float16 its
    squared deviations, its count past 65,504, 1/std^3 and the running variance overflowed (onnxruntime's CPU,
    which runs float16 arithmetic in float32, hid it; its CUDA kernels and other runtimes do not)."""
    return DType.float32 if dtype.is_16bit else dtype


def _per_channel(e, reduce: str, v: str, x_t: TensorType) -> str:
    """A per-channel ReduceMean or ReduceSum of a float32 batch, in float64: onnxruntime's float32 reductions
    over one channel's long run of values (BatchNorm2d(1) on [16, 1, 256, 256]) put a constant channel's
    output at 0.96, its running_var 5e-4 off (torch: 1e-8), and its gradient 1.8e-3 (torch: 7e-6). A 16-bit
    batch comes here already widened to float32 (x_t its widened type), and sums in float32, as torch's."""
    axes = _bn_axes(x_t.rank)
    if x_t.dtype is not DType.float32:
        return reduce_op(e, reduce, v, axes, keepdims=1)
    wide = reduce_op(e, reduce, e.op("Cast", [v], to=DType.float64.onnx), axes, keepdims=1)
    return e.op("Cast", [wide], to=DType.float32.onnx)


def _into(e, op: str, ins: list, out: str, dtype: DType, ct: DType, **attrs) -> str:
    """op's result, computed in ct, written to the node's output `out` of `dtype` too (cast down where that is
    16-bit); the ct value is returned for what reads it further."""
    if dtype is ct:
        return e.op(op, ins, outputs=[out], **attrs)
    v = e.op(op, ins, **attrs)
    e.op("Cast", [v], to=dtype.onnx, outputs=[out])
    return v


def _bn_lower(e, ins, outs, c):
    """Two-pass batch statistics, then one scale-and-shift pass. (onnxruntime's BatchNormalization in
    training mode, whose running outputs with momentum 0 would be the batch statistics, was tried: from the
    second step on its gradients drifted from torch's, so the statistics are computed here. So was its
    inference-mode form with these statistics for y: one pass instead of Mul + Add (0.9 vs 3.1 ms per
    ResNet-18 step), but it rounds as x * a + (b - mean * a), which put AdamW's first step on near-zero
    gradients past 1e-4 of torch's.) d = x - mean is an output too: the gradient reads it (one Sub less).
    A 16-bit batch in float32 (`_computed_in`)."""
    x_t = c.in_types[0]
    ct = _computed_in(x_t.dtype)
    x, w, b, rm, rv = (v if t.dtype is ct else e.op("Cast", [v], to=ct.onnx) for v, t in zip(ins, c.in_types))
    wt = TensorType(ct, x_t.shape)
    ch = x_t.shape[1]
    y_out, rm_out, rv_out, mean_out, rstd_out, d_out = outs
    cshape = _i64(e, [1, ch] + [1] * (x_t.rank - 2))
    flat = _i64(e, [ch])
    mean_k = _per_channel(e, "ReduceMean", x, wt)
    d = _into(e, "Sub", [x, mean_k], d_out, x_t.dtype, ct)  # the gradient reads it in x's dtype
    var_k = _per_channel(e, "ReduceMean", e.op("Mul", [d, d]), wt)
    rstd_k = e.op("Reciprocal", [e.op("Sqrt", [e.op("Add", [var_k, _scalar(e, c.attrs["eps"], wt)])])])
    mean = e.op("Reshape", [mean_k, flat], outputs=[mean_out])
    var = e.op("Reshape", [var_k, flat])
    scale = e.op("Mul", [rstd_k, e.op("Reshape", [w, cshape])])
    _into(e, "Add", [e.op("Mul", [d, scale]), e.op("Reshape", [b, cshape])], y_out, x_t.dtype, ct)
    e.op("Reshape", [rstd_k, flat], outputs=[rstd_out])
    m = c.attrs["momentum"]
    if is_static(x_t.shape):
        n = float(np.prod(x_t.shape, dtype=np.int64) // ch)
        unbias = _scalar(e, n / max(n - 1.0, 1.0), wt)
    else:
        n = e.op("Cast", [e.op("Div", [numel_tensor(e, ins[0], x_t), _i64(e, [ch])])], to=ct.onnx)
        unbias = e.op("Div", [n, e.op("Max", [e.op("Sub", [n, _scalar(e, 1.0, wt)]), _scalar(e, 1.0, wt)])])
    keep = _scalar(e, 1.0 - m, wt)
    mom = _scalar(e, m, wt)
    _into(e, "Add", [e.op("Mul", [rm, keep]), e.op("Mul", [mean, mom])], rm_out, c.in_types[3].dtype, ct)
    _into(e, "Add", [e.op("Mul", [rv, keep]), e.op("Mul", [e.op("Mul", [var, unbias]), mom])], rv_out,
          c.in_types[4].dtype, ct)


def _bn_grad(b, c, ins, outs, gouts):
    g = gouts[0]
    if g is None:
        return [None] * 5
    gx, gw, gb = b.op("autodiff.batchnorm_train_grad", g, outs[5], ins[1], outs[4])
    return [gx, gw, gb, None, None]


_internal("batchnorm_train", ("x", "weight", "bias", "running_mean", "running_var"), _bn_infer, _bn_lower,
          attrs=(Attr("eps", "float"), Attr("momentum", "float")), grad=_bn_grad,
          doc="batchnorm on batch statistics: y, new running mean/var (torch momentum, unbiased var), the batch "
              "mean, 1/std and x - mean")


def _bn_grad_lower(e, ins, outs, c):
    """With d = x - mean, r = 1/std, n values per channel, sg = sum g, sgd = sum g d:
    gx = w r g - w r^3 sgd / n * d - w r sg / n;  gw = r sgd;  gb = sg (per-channel factors, 7 passes; d comes
    from the forward). A 16-bit batch in float32 (`_computed_in`: r^3 overflowed float16 at a std below 0.025)."""
    x_t = c.in_types[1]
    ct = _computed_in(x_t.dtype)
    g, d, w, rstd = (v if t.dtype is ct else e.op("Cast", [v], to=ct.onnx) for v, t in zip(ins, c.in_types))
    wt = TensorType(ct, x_t.shape)
    ch = x_t.shape[1]
    cshape = _i64(e, [1, ch] + [1] * (x_t.rank - 2))
    gx_out, gw_out, gb_out = outs
    if is_static(x_t.shape):
        inv_n = _scalar(e, 1.0 / (np.prod(x_t.shape, dtype=np.int64) // ch), wt)
    else:
        n = e.op("Cast", [e.op("Div", [numel_tensor(e, ins[1], x_t), _i64(e, [ch])])], to=ct.onnx)
        inv_n = e.op("Reciprocal", [n])
    r = e.op("Reshape", [rstd, cshape])
    sg = _per_channel(e, "ReduceSum", g, wt)
    sgd = _per_channel(e, "ReduceSum", e.op("Mul", [g, d]), wt)
    a = e.op("Mul", [e.op("Reshape", [w, cshape]), r])
    bcoef = e.op("Neg", [e.op("Mul", [e.op("Mul", [a, e.op("Mul", [r, r])]), e.op("Mul", [sgd, inv_n])])])
    c0 = e.op("Neg", [e.op("Mul", [a, e.op("Mul", [sg, inv_n])])])
    _into(e, "Add", [e.op("Add", [e.op("Mul", [g, a]), e.op("Mul", [d, bcoef])]), c0], gx_out, x_t.dtype, ct)
    flat = _i64(e, [ch])
    wd = c.in_types[2].dtype
    _into(e, "Reshape", [e.op("Mul", [sgd, r]), flat], gw_out, wd, ct)
    _into(e, "Reshape", [sg, flat], gb_out, wd, ct)


_internal("batchnorm_train_grad", ("g", "d", "weight", "rstd"),
          lambda ins, a: [ins[1], ins[2], ins[2]], _bn_grad_lower,
          doc="gradient of batchnorm_train wrt x, weight and bias")


# ---- dropout mask ----
def _dropout_lower(e, ins, outs, c):
    x, seed, step = ins
    x_t = c.in_types[0]
    p = c.attrs["p"]
    z = hashed_bits(e, x, x_t, seed, step, random_key(c.attrs["stream"]))
    u = bits24(e, z, 40)  # 24 random bits as float
    keep = e.op("GreaterOrEqual", [u, e.const(np.array(p * 2.0**24, dtype=np.float32))])
    mask = e.op("Mul", [e.op("Cast", [keep], to=x_t.dtype.onnx), _scalar(e, 1.0 / (1.0 - p), x_t)])
    reshape_like(e, mask, x, x_t, outs)


def _seed_and_step(op: str, seed: TensorType, step: TensorType) -> None:
    if seed.dtype is not DType.int64 or step.dtype is not DType.int64 or seed.shape or step.shape:
        fail(f"{op}: seed and step must be int64 scalars")


def _dropout_infer(ins, a):
    x, seed, step = ins
    _seed_and_step("dropout mask", seed, step)
    return [x]


_internal("dropout_mask", ("x", "seed", "step"), _dropout_infer, _dropout_lower,
          attrs=(Attr("p", "float"), Attr("stream", "int")), grad=lambda b, c, ins, outs, gouts: [None] * 3,
          doc="0 or 1/(1-p) per element of x, hashed from (seed, step, stream, index)", random=True)


# ---- rand_like / randn_like in a train step ----
def _random_lower(e, ins, outs, c):
    x, seed, step = ins
    random_values(e, x, c.in_types[0], seed, step, c.attrs["stream"], c.attrs["kind"], c.out_types[0].dtype, outs,
                  c.attrs["low"], c.attrs["high"])


def _random_infer(ins, a):
    x, seed, step = ins
    _seed_and_step("random values", seed, step)
    return [TensorType(DTYPES[a["dtype"]], x.shape)]


_internal("random_values", ("x", "seed", "step"), _random_infer, _random_lower,
          attrs=(Attr("kind", "str"), Attr("dtype", "str"), Attr("stream", "int"), Attr("low", "int", 0),
                 Attr("high", "int", 1)),
          grad=lambda b, c, ins, outs, gouts: [None] * 3, random=True,
          doc="rand_like/randn_like/randint_like in a train step: x's shape, hashed from (seed, step, stream, "
              "index)")


# ---- the losses' gradients (the losses are ops of their own: ops/losses.py) ----
def _ce_grad_lower(e, ins, outs, c):
    """(softmax - smoothed one-hot) times g / the labels that count (mean), g (sum) or each label's g (none);
    0 in the rows of ignored labels."""
    logits, labels, g = ins
    lt, lab_t = c.in_types[0], c.in_types[1]
    ax = c.attrs["axis"] % lt.rank
    eps = c.attrs["label_smoothing"]
    classes = lt.shape[ax]
    lab, kept = kept_labels(e, labels64(e, labels, lab_t), c)
    sm = e.op("Softmax", [logits], axis=ax)
    exact = eps if lt.dtype is DType.float64 else 0.0  # float64 smoothing: the one-hot's 0 and 1, smoothed after,
    eps -= exact                                       # in float64 (eps / classes in float32 was 2e-7 off: ops2)
    if isinstance(classes, int):
        depth = _i64(e, classes)
        values = e.const(np.array([eps / classes, 1.0 - eps + eps / classes], dtype=np.float32))
    else:  # a class dim known at run time only (CLIP's logits over the batch: [B, B])
        depth = e.op("Shape", [logits], start=ax, end=ax + 1)
        low = e.op("Div", [e.const(np.array([eps], np.float32)), e.op("Cast", [depth], to=DType.float32.onnx)])
        values = e.op("Concat", [low, e.op("Add", [low, e.const(np.array([1.0 - eps], np.float32))])], axis=0)
    if lab_t.rank == 0:  # one label for logits [C]: ONNX OneHot takes indices of rank 1 or more
        target = e.op("Squeeze", [e.op("OneHot", [e.op("Unsqueeze", [lab, _i64(e, [0])]), depth, values], axis=-1),
                                  _i64(e, [0])])
    else:
        target = e.op("OneHot", [lab, depth, values], axis=ax)
    if lt.dtype is not DType.float32:  # onnxruntime's CPU OneHot has no float64 or float16 values
        target = e.op("Cast", [target], to=lt.dtype.onnx)
    if exact:
        low = e.op("Div", [e.const(np.array(exact, np.float64)), e.op("Cast", [depth], to=DType.float64.onnx)])
        target = e.op("Add", [e.op("Mul", [target, e.const(np.array(1.0 - exact, np.float64))]), low])
    diff = e.op("Sub", [sm, target])
    if kept is not None:
        diff = e.op("Mul", [diff, e.op("Unsqueeze", [kept, _i64(e, [ax])])])
    reduction = c.attrs["reduction"]
    if reduction == "none":  # g has the labels' shape: each row scaled by its own
        e.op("Mul", [diff, e.op("Unsqueeze", [g, _i64(e, [ax])])], outputs=outs)
        return
    if reduction == "sum":
        e.op("Mul", [diff, g], outputs=outs)
        return
    wide = DType.float32 if lt.dtype is DType.float16 else lt.dtype  # 65,536 labels are inf in float16
    if kept is None:
        rows = e.op("Cast", [numel_tensor(e, labels, lab_t)], to=wide.onnx)
    else:  # no label counts: a zero gradient (torch's), not 0 * g / 0
        counted = kept if wide is lt.dtype else e.op("Cast", [kept], to=wide.onnx)
        rows = e.op("Max", [e.op("ReduceSum", [counted], keepdims=0), e.const(np.array(1.0, wide.numpy))])
    e.op("Mul", [diff, _over(e, g, rows, lt.dtype)], outputs=outs)


def _over(e, g: str, count: str, dtype: DType) -> str:
    """g / count (a scalar of float32 for float16 g: counts past 65,504 are inf in float16)."""
    if dtype is not DType.float16:
        return e.op("Div", [g, count])
    return e.op("Cast", [e.op("Div", [e.op("Cast", [g], to=DType.float32.onnx), count])], to=dtype.onnx)


_internal("cross_entropy_grad", ("logits", "labels", "g"), lambda ins, a: [ins[0]], _ce_grad_lower,
          attrs=CE_ATTRS, doc="gradient of cross_entropy")


def _bce_grad_lower(which: str):
    """d/dx = (sigmoid(x) - t) g, d/dt = -x g (a target computed from parameters gets its share); g over the
    element count for the mean, each element's own g for reduction none."""
    def lower(e, ins, outs, c):
        x, t, g = ins
        part = e.op("Sub", [sigmoid(e, x, c.in_types[0].dtype), t]) if which == "x" else e.op("Neg", [x])
        if c.attrs["reduction"] == "mean":  # a known count as a scalar: [1] made a scalar x's gradient [1]
            xt = c.in_types[0]
            wide = DType.float32 if xt.dtype is DType.float16 else xt.dtype
            count = e.const(np.array(numel(xt.shape), dtype=wide.numpy)) if is_static(xt.shape) else \
                e.op("Cast", [numel_tensor(e, x, xt)], to=wide.onnx)
            g = _over(e, g, count, xt.dtype)
        e.op("Mul", [part, g], outputs=outs)
    return lower


_internal("bce_grad", ("x", "t", "g"), lambda ins, a: [ins[0]], _bce_grad_lower("x"), attrs=BCE_ATTRS,
          doc="gradient of bce_with_logits by its logits")
_internal("bce_target_grad", ("x", "t", "g"), lambda ins, a: [ins[1]], _bce_grad_lower("t"), attrs=BCE_ATTRS,
          doc="gradient of bce_with_logits by its target")
