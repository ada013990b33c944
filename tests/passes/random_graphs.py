"""Random valid graphs for the pass property tests: chains of steps over an image tensor [2, 4, 4, 4]
that give every pass something to do (BatchNorm after conv/linear, reshapes and transposes that cancel,
x*1 and x+0, dropout, duplicated subexpressions, constant subgraphs, attention from primitives, values nothing
reads) and
things it must leave alone (intermediate values that are graph outputs, layouts that do not cancel, a row
taken on a softmax's own axis)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .helpers import Builder

N, C, H = 2, 4, 4

STEPS = ("conv_bn", "conv_nobias_bn", "bn", "relu", "mul1", "one_mul", "add0", "sub0", "div1", "dropout", "dup",
         "perm2", "transpose_self", "reshape2", "constfold", "scale", "attention", "attention_mask", "linear3d",
         "expand_same", "cast_same", "getitem_full", "branch", "matmul_bias", "expand_like", "deconv_bn",
         "rows", "rows_end", "cls_attention", "two_rows", "tap", "conv_tap_bn", "perm_turn", "rows_on_axis",
         "attention_probs_out", "squeeze_excite", "dead")
FULL = ("s", None, None, None)


def f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def apply(b: Builder, h, step: str):
    op = b.op
    if step == "conv_bn":
        return op("batchnorm", op("conv2d", h, out_channels=C, kernel_size=(3,), padding=(1,)))
    if step == "conv_nobias_bn":
        return op("batchnorm", op("conv2d", h, out_channels=C, kernel_size=(1,), bias=False), eps=1e-3)
    if step == "deconv_bn":
        y = op("conv_transpose2d", h, out_channels=C, kernel_size=(3,), padding=(1,), bias=False)
        return op("batchnorm", y)
    if step == "bn":
        return op("batchnorm", h)
    if step == "relu":
        return op("relu", h)
    if step == "mul1":
        return op("mul", h, b.const(f32(1.0)))
    if step == "one_mul":
        return op("mul", b.const(f32(np.ones((C, 1, 1)))), h)
    if step == "add0":
        return op("add", h, b.const(f32(0.0)))
    if step == "sub0":
        return op("sub", h, b.const(f32(np.zeros((1, H)))))
    if step == "div1":
        return op("div", h, b.const(f32(1.0)))
    if step == "dropout":
        return op("dropout", h, p=0.3)
    if step == "dup":
        return op("add", op("tanh", h), op("tanh", h))
    if step == "perm2":
        return op("permute", op("permute", h, dims=(0, 2, 3, 1)), dims=(0, 3, 1, 2))
    if step == "transpose_self":
        return op("transpose", op("transpose", h, dim0=2, dim1=3), dim0=-1, dim1=-2)
    if step == "reshape2":
        return op("reshape", op("flatten", h, start_dim=2), shape=(N, C, H, H))
    if step == "constfold":
        k = op("mul", b.const(f32(np.arange(H) / H)), b.const(f32(2.0)))
        return op("add", h, op("reshape", k, shape=(1, 1, 1, H)))
    if step == "scale":
        return op("mul", h, b.const(f32(0.5)))
    if step == "attention":
        s = op("div", op("matmul", h, op("transpose", h)), b.const(f32(2.0)))
        return op("matmul", op("dropout", op("softmax", s, axis=-1), p=0.1), h)
    if step == "attention_mask":
        m = b.const(f32(np.where(np.tril(np.ones((H, H))) > 0, 0.0, -1e4).reshape(1, 1, H, H)))
        s = op("add", op("mul", op("matmul", h, op("permute", h, dims=(0, 1, 3, 2))), b.const(f32(0.5))), m)
        return op("matmul", op("softmax", s, axis=-1), op("relu", h))
    if step == "linear3d":
        y = op("linear", op("reshape", h, shape=(N, C, H * H)), out_features=H * H)
        return op("reshape", y, shape=(N, C, H, H))
    if step == "expand_same":
        return op("expand", h, shape=(N, C, H, H))
    if step == "cast_same":
        return op("cast", h, dtype="float32")
    if step == "getitem_full":
        return op("getitem", h, index=(("s", None, None, None), ("e",)))
    if step == "matmul_bias":  # a 2-D matmul + bias (fuse_gemm), on the image seen as [N*C*H, H]
        flat = op("reshape", h, shape=(N * C * H, H))
        y = op("add", b.const(f32(np.linspace(-1, 1, H))), op("matmul", flat, b.const(f32(np.eye(H)[::-1]))))
        return op("reshape", y, shape=(N, C, H, H))
    if step == "expand_like":  # a constant broadcast to x's (static) shape: folds, x's values are never read
        k = op("expand", b.const(f32(np.arange(C).reshape(1, C, 1, 1) / C)), h, shape=(N, C, H, H))
        return op("add", h, k)
    if step == "rows":  # one row of a row-wise chain, broadcast back (narrow_rows)
        r = op("softmax", op("tanh", op("mul", h, b.const(f32(0.5)))), axis=-1)
        return op("add", h, op("unsqueeze", op("getitem", r, index=(FULL, FULL, ("i", 1))), dim=2))
    if step == "rows_end":  # the last two rows, from the end of a static axis
        r = op("getitem", op("sigmoid", op("permute", h, dims=(0, 1, 3, 2))), index=(FULL, FULL, ("s", -2, None, None)))
        return op("mul", h, op("concat", r, r, axis=2))
    if step == "two_rows":  # two rows of one chain: narrowed to the span covering both (DeiT's two tokens)
        r = op("gelu", op("mul", h, b.const(f32(1.5))))
        a, c = (op("getitem", r, index=(FULL, FULL, ("i", i))) for i in (0, 2))
        return op("add", h, op("unsqueeze", op("sub", a, c), dim=2))
    if step == "cls_attention":  # ViT's class-token readout of a self-attention block
        x = op("reshape", h, shape=(N, C * H, H))
        x = op("add", x, op("multihead_attention", op("layernorm", x), embed_dim=H, num_heads=2))
        cls = op("getitem", op("linear", x, out_features=H), index=(FULL, ("i", 0)))
        return op("add", h, op("reshape", cls, shape=(N, 1, 1, H)))
    if step == "tap":  # the value is a graph output and read on: no pass may rewrite it away
        b.output(f"tap{len(b.g.outputs)}", h)
        return h
    if step == "conv_tap_bn":  # a conv output that is also an output: its BatchNorm cannot be folded into it
        y = op("conv2d", h, out_channels=C, kernel_size=(1,))
        b.output(f"tap{len(b.g.outputs)}", y)
        return op("batchnorm", y)
    if step == "attention_probs_out":  # attention whose probabilities are also an output: not fused away
        p = op("softmax", op("mul", op("matmul", h, op("transpose", h)), b.const(f32(0.5))), axis=-1)
        b.output(f"probs{len(b.g.outputs)}", p)
        return op("matmul", p, h)
    if step == "perm_turn":  # two layout ops that do not cancel: composed in the right order or not at all
        return op("transpose", op("permute", h, dims=(0, 2, 3, 1)), dim0=2, dim1=3)
    if step == "rows_on_axis":  # a row taken on the softmax's own axis (written -1): not narrowed above it
        r = op("softmax", op("mul", h, b.const(f32(0.7))), axis=-1)
        return op("add", h, op("unsqueeze", op("getitem", r, index=(FULL, FULL, FULL, ("i", 1))), dim=3))
    if step == "squeeze_excite":  # a conv map scaled per channel by a gate computed from it (16 channels)
        m = op("silu", op("conv2d", h, out_channels=16, kernel_size=(1,)))
        gate = op("sigmoid", op("conv2d", op("global_avgpool", m), out_channels=16, kernel_size=(1,)))
        return op("conv2d", op("mul", m, gate), out_channels=C, kernel_size=(1,))
    if step == "dead":  # values nothing reads: a node reading one twice, a layer with parameters (dead_code)
        t = op("tanh", h)
        op("add", t, t)
        op("linear", op("relu", h), out_features=3)
        return h
    if step == "branch":   # a second output reads an intermediate value
        b.output(f"side{b.k}", op("sigmoid", h))
        return h
    raise AssertionError(step)


def build(steps: list[str], head: bool) -> Builder:
    b = Builder()
    h = b.input("x", (N, C, H, H))
    for s in steps:
        h = apply(b, h, s)
    if head:
        y = b.op("flatten", b.op("global_avgpool", h))
        y = b.op("batchnorm", b.op("linear", y, out_features=3))
        b.output("y", y)
    else:
        b.output("y", h)
    return b


recipes = st.tuples(st.lists(st.sampled_from(STEPS), min_size=1, max_size=7), st.booleans())
