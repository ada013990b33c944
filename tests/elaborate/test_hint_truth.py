"""Hints beside a diagnostic fire only where they are true (each case found by running the hint against the
model), and say every form a user may have meant."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import ArchError


@pytest.mark.parametrize("src, said, not_said", [
    # the batch went into another dim (flatten(0), a sequence-first flatten(1)); not [B, 3*N] or [8, 3*N]
    # (PointNet's N points)
    ("model m(x: float32[B, 3, 8, 8]) -> y {\n    y = x -> flatten(0) -> linear(10)\n}\n",
     "a size that multiplies in the batch (B)", None),
    ("model m(x: float32[T, B, 8]) -> y {\n    y = x -> flatten(1) -> linear(10)\n}\n",
     "a size that multiplies in the batch (B)", None),
    ("model m(x: float32[B, N, 3]) -> y {\n    y = x -> flatten(1) -> linear(10)\n}\n",
     "give N a number", "multiplies in the batch"),
    ("model m(x: float32[8, N, 3]) -> y {\n    y = x -> flatten(1) -> linear(10)\n}\n",
     "give N a number", "multiplies in the batch"),
    # torch's GroupNorm takes num_groups first, Embedding the rows: no input-size note
    ("model m(x: float32[B, 64, 8, 8]) -> y {\n    y = x -> group_norm(64, num_groups=64)\n}\n",
     "given twice", "torch's constructor"),
    ("model m(x: float32[B, 3, 5]) -> y {\n    y = x[:, :, :, :, none]\n}\n", "unsqueeze(x, axis)", None),
    # torch's input size first: conv reads channels (dim 1), linear features (the last dim), nothing else
    ("model m(x: float32[B, 4, 16]) -> y {\n    y = x -> conv1d(16, 8, kernel_size=3)\n}\n",
     "given twice", "torch's constructor"),
    ("model m(x: float32[B, 4, 16]) -> y {\n    y = x -> conv1d(4, 8, kernel_size=3)\n}\n",
     "the 4 reads as out_channels=4", None),
    ("model m(x: float32[B, 10, 32]) -> y {\n    y = x -> linear(10, out_features=5)\n}\n",
     "given twice", "torch's constructor"),
    # a new dim at an index after an integer, or after ... but not last: no axis to name; the last after ...: -1
    ("model m(x: float32[B, 3, 5]) -> y {\n    y = x[..., none]\n}\n", "unsqueeze(x, -1)", None),
    ("model m(x: float32[B, 3, 5]) -> y {\n    y = x[..., none, :]\n}\n", "unsqueeze(x, axis)", None),
    ("model m(x: float32[B, 3, 5]) -> y {\n    y = x[0, :, none]\n}\n", "unsqueeze(x, axis)", None),
    ("model m(x: float32[B, 3, 5]) -> y {\n    y = x[:, none]\n}\n", "unsqueeze(x, 1)", None),
    # the tensor indexed, by its name (it said x for b: porting5 hunt)
    ("model m(x: float32[B, 8, 4], b: float32[8]) -> y {\n    y = x + b[:, none]\n}\n", "unsqueeze(b, 1)", None),
    ("model m(x: float32[B, 8, 4], b: float32[8, 4]) -> y {\n    y = x + (b * 2.0)[:, none]\n}\n",
     "unsqueeze(t, 1), t the tensor indexed", "unsqueeze(x"),
    # the functional conv given a layer's numbers: it said only "stride given twice" (porting12 hunt)
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = x -> conv(32, 4, stride=2, padding=1)\n}\n",
     "the layer that makes its own weight is conv2d(out_channels, kernel_size", None),
    ("model m(x: float32[B, 4, 8]) -> y {\n    y = x -> conv_transpose(8, 3)\n}\n",
     "conv_transpose1d(out_channels, kernel_size, stride=..., padding=...) (torch's nn.ConvTranspose1d)", None),
    ("model m(x: float32[B, 4, 8], w: float32[8, 4, 3]) -> y {\n    y = conv(x, w, stride=2, dilation=9)\n}\n",
     "conv", "the layer that makes its own weight"),
    # an op with no attributes: "takes 2 positional arguments" beside its signature gemm(a, b, c?) (review94a)
    ("model m(a: float32[2, 3], b: float32[3, 4], c: float32[4]) -> y {\n    y = gemm(a, b, c)\n}\n",
     "optional tensor inputs are keyword-only: c=...", None),
    # a param left at none where an op takes a number: said bare, where range(T) named the param (porting14)
    ("param K = none\nmodel m(x: int64[B]) -> y {\n    y = one_hot(x, K)\n}\n",
     "got none (a param left at none, as `param NAME = none`? -D NAME=5 sets it)", None),
    # torch's spellings met porting DETR, CycleGAN and FPN (porting19 hunt)
    ("model m(q: float32[B, T, 8], k: float32[B, S, 8], p: float32[B, S]) -> y {\n"
     "    y = multihead_attention(q, 8, 2, key=k, value=k, key_padding_mask=p)\n}\n",
     "torch's float mask of 0 and -inf is lt(mask, 0.0)", None),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = upsample(x, scale_factor=2, mode=\"bilinear\", "
     "align_corners=none)\n}\n", "torch's align_corners=None is false: leave it out", None),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = x -> instance_norm(track_running_stats=true)\n}\n",
     "it keeps no running statistics", None),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = x -> batchnorm(track_running_stats=true)\n}\n",
     "torch's default, track_running_stats=True; leave it out", "keeps no running statistics"),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = x -> batchnorm2d(track_running_stats=false)\n}\n",
     "sqrt(var(x, dim=[0, 2, 3], correction=0, keepdim=true) + eps)", None),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = upsample_bilinear2d(x, [16, 16])\n}\n",
     "upsample(x, scale_factor=s, mode=\"bilinear\")", None),
    ("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = view_as(x, x)\n}\n", "write reshape(x, shape(y))", None),
    # ger said "did you mean 'ge'", qr "'sqrt'", linalg.qr "'linear'" (porting21 hunt: Transformer-XL, Performer)
    ("model m(x: float32[4]) -> y {\n    y = ger(x, x)\n}\n", "write unsqueeze(a, 1) * unsqueeze(b, 0)", "'ge'"),
    ("model m(x: float32[4, 4]) -> y {\n    y = linalg.qr(x)\n}\n", "numpy's linalg.qr, when making the weights",
     "'linear'"),
    ("model m(x: float32[4, 4]) -> y {\n    y = linalg.norm(x)\n}\n", "linalg.norm is norm", "'linear'"),
    # weight_norm and spectral_norm said "did you mean 'vector_norm'" (porting23 hunt: HiFi-GAN)
    ("model m(x: float32[B, 4, T]) -> y {\n    y = x -> weight_norm\n}\n",
     "conv(x, g * v / sqrt(sum(v * v, dim=[1, 2], keepdim=true)), ...) in a block", "vector_norm"),
    ("model m(x: float32[B, 4, T]) -> y {\n    y = x -> SpectralNorm\n}\n",
     "sigma = sum(u * (w_mat @ v)) after one power-iteration step", "vector_norm"),
    # every optional input named: gru(x, 8, l) meant lengths=, and h0= alone was said (review97)
    ("model m(x: float32[B, T, 4], l: int64[B]) -> y {\n    y = gru(x, 8, l)\n}\n",
     "optional tensor inputs are keyword-only: h0=..., lengths=...", None),
])
def test_hints_only_where_they_are_true(src, said, not_said):
    """From a review: each of these hints fired where it was false (found by running them against the
    model: [B, 3*N] got the flatten hint, conv1d(16, ...) over a length of 16 the constructor note, x[..., none]
    unsqueeze(x, 1))."""
    with pytest.raises(ArchError) as e:
        archdsl.check_source(src)
    text = e.value.message + " ".join(n for n, _ in e.value.notes)
    assert said in text, text
    if not_said:
        assert not_said not in text, text


def test_the_chunk_a_symbolic_split_suggests_is_torchs_split():
    """torch's heads-into-the-batch trick, cat(x.split(B, 0), 2) of a [4*B, N, D], was pointed at slicing, which
    a symbolic bound refuses (porting22 hunt: Set Transformer); chunk(x, 4, dim=0) is it."""
    import numpy as np
    import torch

    from archdsl import runtime
    with pytest.raises(ArchError) as e:
        archdsl.check_source("model m(x: float32[B, N, 4]) -> y {\n"
                             "    y = concat(split(concat([x, x], axis=0), B, axis=0), axis=2)\n}\n")
    assert "k equal parts of a run-time size (torch's x.split(B, 0) of a [k*B, ...]) are chunk(x, k, dim=0)" in \
        e.value.message
    src = ("model m(x: float32[B, N, 4]) -> y {\n    q = concat([x, 2.0 * x, 3.0 * x, 4.0 * x], axis=0)\n"
           "    y = concat(chunk(q, 4, dim=0), axis=2)\n}\n")
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(y, torch.cat(torch.cat([tx, 2 * tx, 3 * tx, 4 * tx]).split(3, 0), 2).numpy())


def test_a_slice_from_a_run_time_offset_says_the_take_that_is_it():
    """Transformer-XL's q[:, M:] after its memory, or q[:, -T:], said only that a bound a fixed number from the
    end is known (porting21 hunt). The take it says, run."""
    import numpy as np

    from archdsl import runtime
    for index in ("M:", "-T:"):
        with pytest.raises(ArchError) as e:
            archdsl.check_source(f"model m(x: float32[B, M + T, 4], r: float32[B, T, 4], p: float32[M]) -> y {{\n"
                                 f"    y = x[:, {index}]\n}}\n")
        assert "the positions of dim 1 from M on (Transformer-XL's q[:, M:] after its memory) are take(t, " \
               "positions(r, dim=1) + M, axis=1)" in e.value.message, e.value.message
    src = ("model m(x: float32[B, M + T, 4], r: float32[B, T, 4], p: float32[M]) -> y {\n"
           "    y = take(x, positions(r, dim=1) + M, axis=1)\n}\n")
    x = np.random.default_rng(0).standard_normal((2, 7, 4)).astype(np.float32)
    for m in (0, 3):
        feeds = {"x": x, "r": np.zeros((2, 7 - m, 4), np.float32), "p": np.zeros(m, np.float32)}
        np.testing.assert_array_equal(runtime.session(archdsl.compile_source(src)).run(None, feeds)[0], x[:, m:])


def test_the_batch_statistics_form_the_batchnorm_hint_gives_is_torchs():
    """torch's BatchNorm2d(track_running_stats=False) normalizes by the batch at inference too: the form written
    out, against it (its hint said only the signature)."""
    import numpy as np
    import torch

    from archdsl import runtime
    src = ("model m(x: float32[B, 3, 4, 4]) -> y {\n    w = parameter([1, 3, 1, 1], init=\"ones\") as w\n"
           "    b = parameter([1, 3, 1, 1]) as b\n    m = mean(x, dim=[0, 2, 3], keepdim=true)\n"
           "    y = (x - m) / sqrt(var(x, dim=[0, 2, 3], correction=0, keepdim=true) + 1e-05) * w + b\n}\n")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    bn = torch.nn.BatchNorm2d(3, track_running_stats=False).eval()
    np.testing.assert_allclose(y, bn(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
