"""ctc_loss: torch.nn.functional.ctc_loss, the connectionist temporal classification loss of speech and
handwriting recognition: -log of the probability of the target over every alignment of it to the frames
(blanks between and around its labels, repeats merged).

The forward (alpha) recursion in log space, unrolled over the T frames (so T must be a number, as a recurrent
layer's for training), written once in registry ops (`decompose`): the lowering runs it through each op's own
lowering (composite.lower_expanded) and the gradient differentiates it. Frames past a sequence's input length
keep its alphas (a sequence of no frames has only the empty target's state); a sequence's loss reads its last
two states (2 * target length and the one before). Labels past a target's length are padding of any value."""

from __future__ import annotations

import numpy as np

from ..types import DType, TensorType
from ._common import float_input, shape_str
from .composite import lower_expanded
from .registry import Attr, OpDef, fail, register

__all__: list[str] = []


_MAX_STATES = 2**24  # frames x states per example: a speech model's 400 frames x 401 states is 160k


def _infer(ins, a):
    lp, tg, il, tl = ins
    float_input("ctc_loss", lp, "log_probs")
    if lp.rank != 3:
        fail(f"ctc_loss: log_probs must be [T, N, C] (time first, as torch's; log_softmax over C), got {shape_str(lp)}")
    t, n, c = lp.shape
    first = "; log_probs is time first, [T, N, C] as torch's: after a batch_first layer, permute([1, 0, 2])"
    if not isinstance(t, int):
        fail(f"ctc_loss: the number of frames T must be a known number (the recursion is unrolled over them), got "
             f"{t} in {shape_str(lp)}" + (first if str(t) == str(tg.shape[0]) else "; fix it with -D or a "
                                          "number in the input's shape"))
    if tg.dtype.is_float or tg.dtype is DType.bool or tg.rank != 2 or not isinstance(tg.shape[1], int):
        fail(f"ctc_loss: targets must be an integer [N, S] tensor of labels padded to a known S (torch's "
             f"concatenated 1-D form is not taken), got {tg}")
    for name, v in (("input_lengths", il), ("target_lengths", tl)):
        if v.dtype.is_float or v.dtype is DType.bool or v.rank != 1:
            fail(f"ctc_loss: {name} must be an integer [N] tensor, one length per sequence, got {v}")
    if len({str(d) for d in (n, tg.shape[0], il.shape[0], tl.shape[0])}) != 1:
        fail(f"ctc_loss: the batch differs: log_probs {shape_str(lp)}, targets {shape_str(tg)}, input_lengths "
             f"{shape_str(il)}, target_lengths {shape_str(tl)}" + (first if str(t) == str(tg.shape[0]) else ""))
    if tg.shape[1] < 1:
        fail(f"ctc_loss: targets need at least one label position, got {shape_str(tg)}")
    if n == 0:  # torch: "log_probs tensor must not be empty"; the unrolled recursion's reshape failed at build
        fail(f"ctc_loss: the batch of log_probs {shape_str(lp)} is empty (an empty slice?)")
    if t * (2 * tg.shape[1] + 1) > _MAX_STATES:  # the recursion is unrolled: T steps over 2S+1 states each
        fail(f"ctc_loss: {t} frames of {2 * tg.shape[1] + 1} states (2S+1 for targets padded to S={tg.shape[1]}) are "
             f"more than the {_MAX_STATES} the unrolled recursion takes")
    if isinstance(c, int) and not 0 <= a["blank"] < c:
        fail(f"ctc_loss: blank={a['blank']} is not a class of the {c} in log_probs {shape_str(lp)}", "blank")
    return [TensorType(lp.dtype, (n,) if a["reduction"] == "none" else ())]


def _lse(r, xs: list, neg, zero, one):
    """log(sum(exp(x))) of a few tensors, -inf where all are, with no NaN in its gradient there (the sum's
    log is taken of 1 where every term is 0)."""
    m = xs[0]
    for x in xs[1:]:
        m = r.op("maximum", m, x)
    empty = r.op("eq", m, neg)
    shift = r.op("where", empty, zero, m)
    total = r.op("exp", r.op("sub", xs[0], shift))
    for x in xs[1:]:
        total = r.op("add", total, r.op("exp", r.op("sub", x, shift)))
    return r.op("where", empty, neg, r.op("add", shift, r.op("log", r.op("where", empty, one, total))))


def decompose(r, c, vals):
    lp, tg, il, tl = vals
    a = c.attrs
    t_frames, _, _ = r.type(lp).shape
    n, s = r.type(tg).shape
    length = 2 * s + 1
    narrow = r.type(lp).dtype if r.type(lp).dtype.is_16bit else None
    if narrow is not None:  # log-space sums in float32, as torch computes half-precision CTC
        lp = r.op("cast", lp, dtype="float32")
    tg, il, tl = (v if r.type(v).dtype is DType.int64 else r.op("cast", v, dtype="int64") for v in (tg, il, tl))
    neg, zero, one = r.const(-np.inf, like=lp), r.const(0.0, like=lp), r.const(1.0, like=lp)
    blank = a["blank"]

    # labels past a target's length are padding, never read: blank there, so that any padding value gathers
    # (torch accepts -1 or 99 as padding)
    real = r.op("lt", r.const(np.arange(s), dtype=np.int64), r.op("unsqueeze", tl, dim=1))          # [N, S]
    tg = r.op("where", real, tg, r.const(blank, like=tg))
    # the extended target [N, 2S+1]: blank, y1, blank, y2, ..., yS, blank
    col = r.op("unsqueeze", tg, dim=2)
    pairs = r.op("concat", r.op("full_like", col, value=blank), col, axis=2)                         # [N, S, 2]
    ext = r.op("concat", r.op("reshape", pairs, shape=(n, 2 * s)),
               r.op("full_like", r.op("unsqueeze", tl, dim=1), value=blank), axis=1)                # [N, L]
    # each frame's log-probability of each state's label [T, N, L]
    em = r.op("gather", lp, r.op("expand", r.op("unsqueeze", ext, dim=0), shape=(t_frames, n, length)), dim=2)
    frames = r.op("split", em, sizes=(1,), axis=0)
    frames = [r.op("squeeze", f, dim=(0,)) for f in (frames if isinstance(frames, tuple) else (frames,))]

    def shifted(x, k):  # x moved k states right, -inf coming in
        head, tail = r.op("split", x, sizes=(length - k, k), axis=1)
        return r.op("concat", r.op("full_like", tail, value="-inf"), head, axis=1)

    # a state may skip the blank before it unless its label repeats the one two states back
    head, tail = r.op("split", ext, sizes=(length - 2, 2), axis=1)
    back2 = r.op("concat", r.op("full_like", tail, value=-1), head, axis=1)
    skips = r.op("logical_and", r.op("ne", ext, r.const(blank, like=ext)), r.op("ne", ext, back2))
    skip_add = r.op("where", skips, zero, neg)                                                      # [N, L]

    start = np.full(length, -np.inf)
    start[:2] = 0.0
    nothing = np.full(length, -np.inf)  # no frames: only the empty target, in the first state, with log p = 0
    nothing[0] = 0.0
    live_until = r.op("unsqueeze", il, dim=1)                                                       # [N, 1]
    alpha = r.op("where", r.op("gt", live_until, r.const(0, like=il)),
                 r.op("add", frames[0], r.const(start, like=lp)), r.const(nothing, like=lp))
    for t in range(1, t_frames):
        step = _lse(r, [alpha, shifted(alpha, 1), r.op("add", shifted(alpha, 2), skip_add)], neg, zero, one)
        alpha = r.op("where", r.op("lt", r.const(t, like=il), live_until), r.op("add", frames[t], step), alpha)

    # -log p: the last label's state or the blank after it
    two = r.op("unsqueeze", r.op("mul", tl, r.const(2, like=tl)), dim=1)                           # [N, 1]
    before = r.op("maximum", r.op("sub", two, r.const(1, like=tl)), r.const(0, like=tl))
    last = r.op("gather", alpha, two, dim=1)
    prev = r.op("add", r.op("gather", alpha, before, dim=1),
                r.op("where", r.op("gt", r.op("unsqueeze", tl, dim=1), r.const(0, like=tl)), zero, neg))
    nll = r.op("neg", r.op("squeeze", _lse(r, [last, prev], neg, zero, one), dim=(1,)))             # [N]
    if a["zero_infinity"]:  # an impossible alignment (a target longer than its frames allow): 0, no gradient
        nll = r.op("where", r.op("eq", nll, r.const(np.inf, like=lp)), zero, nll)
    if a["reduction"] == "mean":  # torch's: each loss over its target length (at least 1), then the batch mean
        per = r.op("cast", r.op("maximum", tl, r.const(1, like=tl)), dtype=r.type(lp).dtype.label)
        nll = r.op("mean", r.op("div", nll, per))
    elif a["reduction"] == "sum":
        nll = r.op("sum", nll)
    return [r.op("cast", nll, dtype=narrow.label) if narrow is not None else nll]


register(OpDef(
    name="ctc_loss", inputs=("log_probs", "targets", "input_lengths", "target_lengths"), category="loss",
    attrs=(Attr("blank", "int", 0), Attr("reduction", "str", "mean", choices=("mean", "sum", "none")),
           Attr("zero_infinity", "bool", False)),
    positions=("targets", "input_lengths", "target_lengths"),
    infer=_infer, lower=lower_expanded(decompose),
    grad=lambda b, c, ins, outs, gouts: b.vjp(lambda r, *vals: decompose(r, c, vals), list(ins), gouts),
    cost=lambda c: 30 * c.in_types[0].shape[0] * (2 * c.in_types[1].shape[1] + 1) * (
        c.in_types[0].shape[1] if isinstance(c.in_types[0].shape[1], int) else 1),
    doc="The CTC loss (torch.nn.functional.ctc_loss): log_probs [T, N, C] (time first, log_softmax over C), "
        "targets [N, S] labels (past each target's length any padding value), input_lengths and target_lengths "
        "[N]; blank=0; reduction mean (each loss over its target length, then the batch mean), sum or none ([N]). "
        "An impossible alignment (more labels than its frames can hold) has loss inf and gradient 0 (torch's is "
        "NaN); zero_infinity=true makes its loss 0 too. The alpha recursion in log space unrolled over the T "
        "frames, so T must be a number. Its gradient is the true one with respect to log_probs; torch's adds "
        "exp(log_probs), which cancels through the log_softmax before it (the same gradient to the logits). The "
        "built model does not check the lengths (torch raises): an input length past T reads as T, a target "
        "length outside 0..S gives a wrong loss or an onnxruntime error; `archdsl train` and `archdsl run "
        "--input` check them first.",
))
