"""Calls that pass the shape check and are most likely a mistake are warned of (elaborate/lints.py): a reshape
that fixes the batch, channels-last images into a conv, a softmax's output into a loss that takes logits. Each
was a beginner's spec that built and then trained badly or failed at run time naming something else."""

from __future__ import annotations

import warnings

import pytest

import archdsl
from archdsl.cli import main


def said(body: str, inputs: str = "x: float32[B, 16, 16]", out: str = "y") -> list[str]:
    src = f"model m({inputs}) -> {out} {{\n{body}\n}}\n"
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        archdsl.check_source(src)
    return [str(w.message) for w in got if issubclass(w.category, archdsl.ArchWarning)]


def test_a_reshape_that_fixes_every_size_says_the_one_batch_it_runs_at():
    """reshape(x, [32, 256]) of a [B, 16, 16] checked with y: [32, 10], ran only at B = 32, and train blamed
    the labels' shape. -1, B itself, or a fixed input say nothing."""
    assert said("    y = reshape(x, [32, 256]) -> linear(10)") == [
        "<string>:2:9: reshape to [32, 256] fixes every size of [B, 16, 16] (256*B values): the model runs only when "
        "B = 32, and B is gone from the shape; write -1 (or B) for the dim that carries B"]
    assert said("    y = reshape(x, [512])", "x: float32[B, T, 16]")[0].endswith(
        "runs only when 16*B*T = 512, and B, T are gone from the shape; write B, T in the shape where they belong "
        "(inside a block, which sees only its arguments, shape(x)[i] of the tensor; -1 may stand for one of them)")
    for ok in ("    y = reshape(x, [-1, 256])", "    y = reshape(x, [B, 256])", "    y = reshape(x, [B * 16, 16])"):
        assert said(ok) == [], ok
    assert said("    y = reshape(x, [32, 256])", "x: float32[32, 16, 16]") == []
    with pytest.raises(archdsl.ArchError, match="cannot reshape") as err:  # 300 is no multiple of 256: an error,
        archdsl.check_source("model m(x: float32[B, 16, 16]) -> y {\n    y = reshape(x, [300])\n}\n")
    assert not any("runs only when" in text for text, _ in err.value.notes)  # "when 256*B = 300"
    with pytest.raises(archdsl.ArchError, match=r"cannot reshape \[B, 0, 16\] \(0 elements\)"):  # an internal
        archdsl.check_source("model m(x: float32[B, 16, 16]) -> y {\n    y = reshape(x[:, 0:0], [2, 8])\n}\n")  # error



def test_a_reshape_that_keeps_some_symbols_and_fixes_another_says_the_size_it_runs_at():
    """reshape(x, [B, 12]) of a [B, T, 4] (B cancels: 4*T = 12) built without a word and ran at T = 3 alone;
    [B * 12] ran at every T, giving 4*B*T values under a declared 12*B; [B, 9] of a [B, T, 6] (6*T = 9, never)
    built (review114 hunt). Now a warning, the reshape failing where torch's does, and an error."""
    import numpy as np

    from archdsl import runtime
    for target in ("[B, 12]", "[B * 12]", "[B, 3, 4]"):
        assert said(f"    y = reshape(x, {target})", "x: float32[B, T, 4]")[0].endswith(
            "the model runs only when T = 3; write T where it belongs (or -1)"), target
    assert said("    y = reshape(x, [B, 2, S])", "x: float32[B, 8], s: float32[S]")[0].endswith(
        "(8*B values into 2*B*S): the model runs only when S = 4; write the sizes x has (or -1)")
    for ok in ("[B, T * 4]", "[B, -1]", "[B, S, 4]"):  # the same count, a -1, a relation of two sizes (T = S)
        assert said(f"    y = reshape(x, {ok})", "x: float32[B, T, 4], s: float32[S]") == [], ok
    with pytest.raises(archdsl.ArchError,
                       match=r"cannot reshape \[B, T, 6\] \(6\*B\*T elements\) into \[B, 9\]") as err:
        archdsl.check_source("model m(x: float32[B, T, 6]) -> y {\n    y = reshape(x, [B, 9])\n}\n")
    assert not any("runs only when" in text for text, _ in err.value.notes)  # not "when T = 1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = archdsl.compile_source("model m(x: float32[B, T, 4]) -> y {\n    y = reshape(x, [B * 12])\n}\n")
    sess = runtime.session(model)
    assert sess.run(None, {"x": np.zeros((2, 3, 4), np.float32)})[0].shape == (24,)
    with pytest.raises(Exception, match="Reshape"):  # as torch's reshape(2 * 12) of a [2, 2, 4]
        sess.run(None, {"x": np.zeros((2, 2, 4), np.float32)})


def test_a_reshape_to_another_inputs_size_runs_where_torchs_does_and_says_so():
    """A fixed [4, 12] into [S, 12] built without a word (it runs at S = 4 alone), and a formula count 4*(T+1)
    into [N] left N to ONNX's -1: 4*(T+1) values under a declared N at every N (mutnew4 hunt)."""
    import numpy as np

    from archdsl import runtime
    assert said("    y = reshape(x, [S, 12])", "x: float32[4, 12], s: float32[S]") == [
        "<string>:2:9: reshape to [S, 12] of [4, 12] (48 values into 12*S): the model runs only when S = 4; write "
        "the sizes x has (or -1)"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = archdsl.compile_source("model m(x: float32[T, 4], s: float32[N]) -> y {\n"
                                       "    y = reshape(concat([x, x[:1]], axis=0), [N])\n}\n")
    sess = runtime.session(model)
    x = np.zeros((2, 4), np.float32)
    assert sess.run(None, {"x": x, "s": np.zeros(12, np.float32)})[0].shape == (12,)
    with pytest.raises(Exception, match="Reshape"):  # as torch's reshape of 12 values into [5]
        sess.run(None, {"x": x, "s": np.zeros(5, np.float32)})


def test_a_pinning_reshape_counts_a_repeated_size_and_names_each_size_once():
    """Mutants the tests above left alive (mutnew4): a size repeated in the input, each size named once, the
    sizes joined by *, and "for any value" where no size fits."""
    assert said("    y = reshape(x, [B, T, 12])", "x: float32[B, T, T, 4]") == [
        "<string>:2:9: reshape to [B, T, 12] of [B, T, T, 4] (4*B*T*T values into 12*B*T): the model runs only "
        "when T = 3; write T where it belongs (or -1)"]
    assert said("    y = reshape(x, [B, 4])", "x: float32[B, T, T]")[0].endswith(
        "the model runs only when T*T = 4; write T where it belongs (or -1)")
    assert said("    y = reshape(x, [B, 12])", "x: float32[B, T, U]")[0].endswith(
        "the model runs only when T*U = 12; write T and U where they belong (or -1)")
    for src in ("model m(x: float32[B, T, 6]) -> y {\n    y = reshape(x, [B, 9])\n}\n",
                "model m(x: float32[B, 9], s: float32[S]) -> y {\n    y = reshape(x, [B, 2, S])\n}\n"):
        with pytest.raises(archdsl.ArchError, match=r"elements\) for any value of the symbolic dims$"):
            archdsl.check_source(src)


def test_a_reshape_whose_minus_one_is_a_fraction_says_the_sizes_it_runs_at():
    """reshape(x, [-1, 3]) of a [B, 10] checked with a dim of 10*B/3 and failed in onnxruntime at B = 2 (swin's
    width that its heads did not divide built, then failed at batch 1 and mixed windows at batch 9: vitswin
    hunt). Splits that always divide say nothing."""
    assert said("    y = reshape(x, [-1, 3]) -> linear(4)", "x: float32[B, 10]") == [
        "<string>:2:9: reshape to [-1, 3] of [B, 10] makes its -1 B * 10/3: a whole number only when B is a "
        "multiple of 3, so the model runs only at such sizes (torch's reshape too); check the sizes it splits"]
    assert "only when T is a multiple of 2" in said("    y = reshape(x, [B, -1, 4])", "x: float32[B, T, 10]")[0]
    for ok, inputs in (("    y = reshape(x, [B, -1, 4])", "x: float32[B, T, 12]"),
                       ("    y = reshape(x, [-1, 8])", "x: float32[B, 16, 16]"),
                       ("    y = reshape(x, [-1, 5])", "x: float32[2, 10]")):
        assert said(ok, inputs) == [], ok
    with pytest.raises(archdsl.ArchError) as err:  # B placed: a count that never divides, no size to run at
        archdsl.check_source("model m(x: float32[B, 10]) -> y {\n    y = reshape(x, [B, -1, 3])\n}\n")
    assert not any("multiple of" in text for text, _ in err.value.notes), err.value.notes  # (review52)

def test_channels_last_images_into_a_conv_are_said_with_the_permute():
    """[B, 224, 224, 3] into conv2d built a layer of 224 input channels over 224x3 images; kernels that fit a
    width of 3 passed the shape check. Deep in a net ([B, 512, 4, 4]; an audio CNN's [B, 64, 64, 4] after
    pooling the mel axis), over fewer than 16 points, or by a [3, 1] kernel (a 1-D conv written as conv2d),
    nothing is said; through a scaling or a transpose of the input, it is."""
    assert said("    y = x -> conv2d(16, 3, padding=1)", "x: float32[B, 224, 224, 3]") == [
        "<string>:2:14: conv2d reads [B, 224, 224, 3] as 224 channels of 224x3 images (channels first, as torch's); "
        "if it is [batch, height, width, channels], permute([0, 3, 1, 2]) it first"]
    assert "as 1024 channels of sequences of length 3 (channels first, as torch's); if it is [batch, length, " \
           "channels], permute([0, 2, 1]) it first" in said("    y = x -> conv1d(64, 1)", "x: float32[B, 1024, 3]")[0]
    assert "as 32 channels of 32x32x1 volumes" in said("    y = x -> conv3d(8, 1)", "x: float32[B, 32, 32, 32, 1]")[0]
    assert "conv2d reads [B, 64, 64, 3] as 64" in said("    y = (x / 255.0 - 0.5) -> conv2d(8, 3, padding=1)",
                                                       "x: float32[B, 64, 64, 3]")[0]
    for shape, body in (("[B, 3, 224, 224]", "y = x -> conv2d(16, 3)"), ("[B, 512, 4, 4]", "y = x -> conv2d(16, 3)"),
                        ("[B, 8, 3]", "y = x -> conv1d(16, 1)"),  # points: too few to say
                        ("[B, 3, 3]", "y = x -> conv1d(32, 1) -> conv1d(4, 1)"),  # [B, 32, 3] inside a net
                        ("[B, 1, 64, 32]", "y = x -> conv2d(64, 3, padding=1) -> maxpool2d([1, 8]) -> conv2d(8, 3)"),
                        ("[B, 40, 98, 1]", "y = x -> conv2d(16, [3, 1], padding=[1, 0])")):  # a 1-D conv as 2-D
        assert said(f"    {body}", f"x: float32{shape}") == [], shape
    with pytest.raises(archdsl.ArchError) as err:  # a kernel wider than 3: the note goes with the error
        archdsl.check_source("model m(x: float32[B, 64, 64, 3]) -> y {\n    y = x -> conv2d(16, 5)\n}\n")
    assert "larger than the padded input of 3" in err.value.message
    assert any("permute([0, 3, 1, 2])" in text for text, _ in err.value.notes)


def test_a_softmax_into_cross_entropy_is_said():
    """cross_entropy(softmax(z), t) trains on log_softmax(softmax(z)); bce_with_logits of a sigmoid likewise.
    log_softmax first is harmless (log_softmax is idempotent), as is a softmax the loss does not read."""
    inputs = "x: float32[B, 20], t: int64[B], u: float32[B, 3]"
    got = said("    p = x -> linear(10) -> softmax\n    q = x -> linear(3) -> sigmoid\n"
               "    loss = cross_entropy(p, t) + bce_with_logits(q, u)", inputs, "loss")
    assert got == [
        "<string>:4:12: cross_entropy takes logits and applies its own log_softmax (as torch's), and here it is given "
        "a softmax's output: it trains on log_softmax(softmax(x)), slowly or not at all; give it the logits (the "
        "softmax's input)",
        "<string>:4:34: bce_with_logits takes logits and applies its own sigmoid (as torch's), and here it is given a "
        "sigmoid's output: it trains on sigmoid(sigmoid(x)), slowly or not at all; give it the logits (the sigmoid's "
        "input)"]
    assert said("    z = x -> linear(10)\n    p = softmax(z)\n    loss = cross_entropy(log_softmax(z), t) + "
                "mean(p) + bce_with_logits(z -> linear(3), u)", inputs, "loss") == []


def test_cross_entropy_over_one_class_is_said():
    """cross_entropy of a [B, 1] logit is 0 whatever the weights (torch's too): a binary target meant
    bce_with_logits. Over another axis of more classes, nothing is said."""
    inputs = "x: float32[B, 4], t: int64[B]"
    assert said("    loss = cross_entropy(x -> linear(1), t)", inputs, "loss") == [
        "<string>:2:12: cross_entropy over one class is 0 whatever the weights (as torch's); for a yes/no target, "
        "bce_with_logits with float 0/1 targets of the logits' shape"]
    assert said("    loss = cross_entropy(x -> linear(3), t)", inputs, "loss") == []
    assert said("    loss = cross_entropy(x -> linear(1), t2, axis=0)", "x: float32[5, 4], t2: int64[1]", "loss") == []


def test_an_output_that_ends_in_a_softmax_trained_with_its_loss_is_said(tmp_path, capsys):
    """`y = ... -> softmax` built with --train --loss cross_entropy: the step squashes twice; said at the
    softmax. A logits output with a softmax output beside it, read by --output-name, says nothing."""
    spec = tmp_path / "s.arch"
    spec.write_text("model m(x: float32[B, 20]) -> y {\n    y = x -> linear(10) -> softmax\n}\n")
    assert main(["check", str(spec)]) == 0 and capsys.readouterr().err == ""  # inference: a fine output
    assert main(["build", str(spec), "--train", "--loss", "cross_entropy", "-o", str(tmp_path / "t.onnx")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "s.arch:2:28: warning: output 'y': --loss cross_entropy takes logits " \
        "and applies its own log_softmax (as torch's), and here it is given a softmax's output: it trains on " \
        "log_softmax(softmax(x)), slowly or not at all; end it at the logits (for probabilities as well, a second " \
        "output softmax(logits), and --output-name naming the logits)\n" in err, err
    spec.write_text("model m(x: float32[B, 20]) -> (logits, p) {\n    logits = x -> linear(10)\n"
                    "    p = softmax(logits)\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "cross_entropy", "--output-name", "logits",
                 "-o", str(tmp_path / "t.onnx")]) == 0
    assert "warning" not in capsys.readouterr().err
    spec.write_text("model m(x: float32[B, 20]) -> y {\n    y = x -> linear(3) -> sigmoid\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "bce_with_logits", "-o", str(tmp_path / "t.onnx")]) == 0
    assert "--loss bce_with_logits takes logits and applies its own sigmoid" in (err := capsys.readouterr().err)
    assert "a second output sigmoid(logits)" in err  # softmax of one logit would be 1 everywhere
    assert main(["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "t.onnx")]) == 0
    assert "warning" not in capsys.readouterr().err  # mse of a sigmoid is a regression on [0, 1]


SEQ = ("ids: int64[B, 20], x: float32[B, 64], img: float32[B, 32, 32, 3], d: float32[B, 8, 8, 1], "
       "line: float32[B, 16, 100, 1]")


@pytest.mark.parametrize("body, words", [
    # Keras's text CNN: conv1d slid over the 16 embedding dims with the 20 steps as channels
    ("ids -> embedding(50, 16) -> dropout(0.1) -> conv1d(32, 3, padding=\"same\")",
     "conv1d reads [B, 20, 16], an embedding's [batch, steps, features], as 20 channels (its steps), sliding over "
     "the features; transpose(x, 1, 2) first (Keras's layers take steps first)"),
    # GlobalMaxPooling1D: global_maxpool pooled the 32 hidden units of each step
    ("ids -> embedding(50, 16) -> lstm(32) -> global_maxpool(keepdims=false)",
     "global_maxpool reads [B, 20, 32], an lstm's [batch, steps, features], as 20 channels (its steps), pooled over "
     "the features; transpose(x, 1, 2) first (Keras's layers take steps first); a pool over the steps is "
     "amax(x, dim=1) or mean(x, dim=1)"),
    ("x -> linear(1) -> softmax", "softmax over a dim of size 1 is 1 everywhere, and no gradient passes it (a "
                                  "single logit's probability is sigmoid(x))"),
    ("x -> linear(1) -> log_softmax", "(a single logit's log-probability is logsigmoid(x))"),
    ("ids -> embedding(50, 16) -> batchnorm", "batchnorm reads [B, 20, 16], an embedding's [batch, steps, "
                                              "features], as 20 channels (its steps), normalized over the features"),
    ("img -> batchnorm(momentum=0.99)", "permute([0, 3, 1, 2]) it first; and batchnorm momentum=0.99"),
    ("img -> adaptive_avgpool2d(2)", "adaptive_avgpool2d reads [B, 32, 32, 3] as 32 channels of 32x3 images"),
    ("img -> batchnorm -> maxpool2d(2)", "batchnorm reads [B, 32, 32, 3] as 32 channels of 32x3 images"),
    ("img -> global_avgpool", "global_avgpool reads [B, 32, 32, 3] as 32 channels of 32x3 images"),
    ("x -> batchnorm(momentum=0.99)", "batchnorm momentum=0.99 weighs each new batch's statistics 0.99 in the "
                                      "running ones (torch's convention); Keras's momentum=0.99 is momentum=0.01 here"),
    ("x -> batchnorm(0.99, 1e-3)", "batchnorm eps=0.99 adds 0.99 to every variance; Keras's "
                                   "BatchNormalization(momentum, epsilon) order is (eps, momentum) here"),
])
def test_keras_habits_are_said(body, words):
    """Each built a different model from the Keras one it was written from, and trained without a word."""
    got = said(f"    y = {body}", SEQ)
    assert len(got) == 1 and words in got[0], got


@pytest.mark.parametrize("body", [
    "ids -> embedding(50, 16) -> transpose(1, 2) -> conv1d(32, 3)",  # [B, 16, 20]: meant
    "ids -> embedding(50, 16) -> lstm(32) -> amax(dim=1)", "ids -> embedding(50, 16) -> mean(dim=1)",
    "x -> linear(3) -> softmax", "x -> batchnorm(momentum=0.1, eps=1e-3)",
    "x -> batchnorm(eps=0.1, momentum=0.1)",  # an eps given by name is meant: "write eps= by name" (porting7)
    "permute(img, [0, 3, 1, 2]) -> batchnorm -> global_avgpool",
    "line -> batchnorm -> maxpool2d([2, 1]) -> conv2d(8, [3, 1])",  # a 1-D signal laid out [B, C, T, 1]
    "unsqueeze(x, -1) -> batchnorm",  # [B, 64, 1]: BatchNorm1d over a length of 1
])
def test_keras_habits_written_the_way_here_say_nothing(body):
    assert said(f"    y = {body}", SEQ) == []


def test_digits_sized_channels_last_images_are_said_where_the_conv_fails():
    """[B, 8, 8, 1] (sklearn's digits, channels last): a 3x3 kernel does not fit the width of 1; the error
    now says why."""
    with pytest.raises(archdsl.ArchError) as err:
        archdsl.check_source("model m(d: float32[B, 8, 8, 1]) -> y {\n    y = d -> maxpool2d(2)\n}\n")
    assert any("maxpool2d reads [B, 8, 8, 1] as 8 channels of 8x1 images" in text for text, _ in err.value.notes)


FLAX = ("x: float32[B, T, 32], ids: int64[B, T], tok: int64[B, 20], img: float32[B, 3, 16, 16], "
        "raw: float32[B, 28, 28, 3], q4: float32[B, H, 16, 64], pad: float32[B, T], cube: float32[B, 3, 3, 3], "
        "nq: float32[B, n_head, 16, 64], frames: float32[B, F, 196, 64], one: float32[B, 1, 32], "
        "feat: float32[B, 2048, 25, 4], sensors: float32[B, 64, 4], traj: float32[bs, N, 2]")


@pytest.mark.parametrize("body, words", [
    # Flax's dot_product_attention layout: attention across the 4 heads of each step, no token mixing
    ("scaled_dot_product_attention(reshape(x, [B, T, 4, 8]), reshape(x, [B, T, 4, 8]), reshape(x, [B, T, 4, 8]))",
     "scaled_dot_product_attention takes [batch, heads, length, head size] (torch's): [B, T, 4, 8] reads T as the "
     "heads and 4 as the length; if it is [batch, length, heads, head size] (Flax's dot_product_attention), "
     "transpose(q, 1, 2) first"),
    # Flax's padding mask, true for the real tokens: every real token ignored
    ("multihead_attention(ids -> embedding(50, 32), key_padding_mask=ids > 0, embed_dim=32, num_heads=4)",
     "multihead_attention's key_padding_mask is true for a key to ignore (torch's); this one (gt 0 of token ids) is "
     "true for the real tokens (Flax's and Keras's way): write eq(ids, 0) of the same ids"),
    ("img -> conv2d(8, 3) -> relu -> linear(10)", "linear acts on the last dim of a conv2d's [B, 8, 14, 14], its "
                                                 "width: flatten(x) first, or global_avgpool(x, keepdims=false)"),
    ("img -> conv2d(8, 3) -> global_avgpool -> linear(10)", "linear acts on the last dim of a global_avgpool's "
                                                           "[B, 8, 1, 1]"),  # Keras's GlobalAveragePooling2D, Dense
    ("img -> conv2d(8, 3) -> layernorm", "layernorm normalizes the last dim of a conv2d's [B, 8, 14, 14], its width; "
                                         "over each position's channels (ConvNeXt's LayerNorm2d): permute([0, 2, 3, "
                                         "1]) -> layernorm -> permute([0, 3, 1, 2]); over each example's channels and "
                                         "positions: group_norm(1)"),  # group_norm(1) alone (convnext hunt)
    ("img -> conv2d(8, 3) -> linear(8)", "on each position's channels (ConvNeXt's pointwise linear): permute([0, 2, "
                                         "3, 1]) before it, permute([0, 3, 1, 2]) after, or a conv with kernel 1"),
    ("where(img > 0.0, img, img * 0.2) -> conv2d(8, 3) -> adaptive_avgpool2d(2) -> linear(4)",
     "linear acts on the last dim of an adaptive_avgpool2d's [B, 8, 2, 2]"),  # through where's data, not its cond
    ("mean(img -> conv2d(8, 3), dim=[1, 2])", "mean over dims [1, 2] of a conv2d's [B, 8, 14, 14] takes in its "
                                              "channels (dim 1) and some but not all spatial dims: a spatial mean is "
                                              "dim=[2, 3] (channels-last axis=(1, 2) is dims 2, 3 here)"),
    ("reshape(raw, [B, 3, 28, 28])", "reshape to [B, 3, 28, 28] keeps the numbers of [B, 28, 28, 3] in their order, "
                                     "so each pixel's 3 channels land across the image; channels last to first is "
                                     "permute([0, 3, 1, 2])"),
    ("tok -> embedding(50, 32) -> linear(16) -> conv1d(8, 3)", "conv1d reads [B, 20, 16], an embedding's"),
])
def test_flax_habits_are_said(body, words):
    """Each built a different model from the Flax one it was written from, without a word."""
    got = said(f"    y = {body}", FLAX)
    assert len(got) == 1 and words in got[0], got


@pytest.mark.parametrize("body", [
    "scaled_dot_product_attention(reshape(x, [B, 4, T, 8]), reshape(x, [B, 4, T, 8]), reshape(x, [B, 4, T, 8]))",
    "multihead_attention(x, key_padding_mask=eq(ids, 0), embed_dim=32, num_heads=4)",
    "img -> conv2d(8, 3) -> flatten -> linear(10)", "mean(img -> conv2d(8, 3), dim=[2, 3])",
    "img -> conv2d(8, 3) -> permute([0, 2, 3, 1]) -> layernorm -> linear(8)",  # ConvNeXt's channels-last block
    "permute(raw, [0, 3, 1, 2])", "mean(img -> conv2d(8, 3), dim=[1, 2, 3])",
    "mean(img -> conv2d(8, 3), dim=1, keepdim=true)",  # PixelNorm, CBAM: over the channels alone
    "img -> conv2d(8, 3, padding=1) -> layernorm([8, 16, 16])",  # torch's nn.LayerNorm([C, H, W])
    "tok -> embedding(50, 32) -> layernorm -> conv1d(20, 1)",  # gMLP's spatial gating: the steps mixed on purpose
    "scaled_dot_product_attention(q4, q4, q4)",  # [B, H, 16, 64]: H a symbolic head count
    "multihead_attention(x, key_padding_mask=gt(pad, 0.0), embed_dim=32, num_heads=4)",  # a float padding flag
    "multihead_attention(x, key_padding_mask=ids > 0, embed_dim=32, num_heads=4)",  # 1 marks padding: no ids
    "scaled_dot_product_attention(nq, nq, nq)",  # [B, n_head, 16, 64]: GPT-2's name for the head count
    "scaled_dot_product_attention(frames, frames, frames)",  # TimeSformer: frames as a batch dim, torch's
    "softmax(x @ transpose(one, 1, 2), dim=-1)",  # attention over a single key (-D S=1): not a 1-logit head
    "feat -> conv2d(8, 1)",  # a backbone's [B, 2048, 25, 4] map as a head's input, not a 2048x25 image
    "sensors -> conv1d(32, 3, padding=1)",  # 64 sensors of 4 steps
    "traj -> linear(64) -> lstm(128)",  # [bs, N, 64]: N points, bs the batch
    "reshape(cube, [B, 3, 3, 3])",  # an identity reshape
])
def test_flax_habits_written_the_way_here_say_nothing(body):
    assert said(f"    y = {body}", FLAX) == []


def test_torchs_argument_order_is_not_said_where_torchs_reading_cannot_be():
    """MelGAN's discriminator writes conv1d(1024, 41, 4, 20, groups=256) over 1024 channels: torch's reading
    (41 output channels) is refused with groups=256, and padding 20 is a kernel of 41's 'same'. A plain
    conv1d(512, 10, 5) over 512 channels stays ambiguous and is said (keywords keep it quiet)."""
    audio = "x: float32[B, 1024, 4000]"
    assert said("    y = x -> conv1d(1024, 41, 4, 20, groups=256)", audio) == []
    assert said("    y = x -> conv1d(1024, 41, 4, 20)", audio) == []
    assert "conv1d(1024, 10, 5) reads as out_channels=1024" in said("    y = x -> conv1d(1024, 10, 5)", audio)[0]
    assert said("    y = x -> conv1d(1024, kernel_size=10, stride=5)", audio) == []
    assert said("    y = x -> conv1d(1024, 41, 1, padding=20)", audio) == []  # by name it fits the reading too
    assert said('    y = x -> conv1d(1024, 41, 1, padding="same")', audio)  # fits either reading: said
    assert said("    y = x -> conv1d(1024, 16, 1, 8)", audio) == []  # an even kernel's k // 2 (ECG ResNets; lint2)
    for pad in ("[1, 1]", "padding=[1, 2]"):  # a list padding: 'unhashable type' (review55)
        assert said(f"    y = x -> conv2d(64, 3, 1, {pad})", "x: float32[B, 3, 32, 32]") == [], pad
    assert said("    y = x -> conv2d(1024, 8, 3, 4)", "x: float32[B, 1024, 16, 16]")  # torch's stride 4: said
    assert said("    y = x -> conv_transpose1d(1024, 8, 4, 2)", audio)  # torch's ConvTranspose1d(1024, 8, 4, 2), the
    # common upsampler, as plausible as (k - s) // 2 here (review54)


def test_torchs_positional_size_and_padding_idx_are_said():
    """F.interpolate(x, [16, 16]) is a size in torch and was a 16x upscale here (128x128 from 8x8, nothing
    said); nn.Embedding(100, 32, 0) is padding_idx=0 in torch and was std=0 here, an all-zero table. A scale
    written positionally as this op's order has it, and keywords, stay quiet."""
    image, ids = "x: float32[B, 3, 8, 8]", "x: int64[B, T]"
    assert "the [16, 16] reads as scale_factor=[16, 16], 16x the input's size; torch's F.interpolate(x, size)" in \
        said("    y = interpolate(x, [16, 16], mode=\"bilinear\")", image)[0]
    for body in ("upsample(x, 2)", "upsample(x, [2, 2])", "interpolate(x, size=[16, 16])",
                 "upsample(x, scale_factor=[8, 8])"):
        assert said(f"    y = {body}", image) == [], body
    assert "embedding(ids, 100, 32, 0) reads as std=0 (an all-zero table); torch's nn.Embedding(num_embeddings, " \
           "embedding_dim, padding_idx) is padding_idx=0 here" in said("    y = embedding(x, 100, 32, 0)", ids)[0]
    for body in ("embedding(x, 100, 32, 0.02)", "embedding(x, 100, 32, std=0)", "embedding(x, 100, 32)"):
        assert said(f"    y = {body}", ids) == [], body


def test_a_sigmoid_behind_a_flatten_into_bce_with_logits_is_said(tmp_path, capsys):
    """DCGAN's discriminator ends sigmoid -> flatten (as torch's tutorial, for BCELoss): a shape op between
    turned the warning off, and trained on sigmoid(sigmoid(x)), where a fake could never score below log 2.
    The default loss's one-class refusal, which advises bce_with_logits, says the output ends in a sigmoid."""
    inputs = "x: float32[B, 8], u: float32[B]"
    assert said("    p = x -> linear(1) -> sigmoid\n    loss = bce_with_logits(p[:, 0], u)", inputs, "loss") == [
        "<string>:3:12: bce_with_logits takes logits and applies its own sigmoid (as torch's), and here it is given "
        "a sigmoid's output: it trains on sigmoid(sigmoid(x)), slowly or not at all; give it the logits (the "
        "sigmoid's input)"]
    assert said("    p = softmax(x3, -1) -> transpose(1, 2)\n    loss = cross_entropy(p, t)",  # not the classes'
                "x3: float32[B, 3, 5], t: int64[B, 5]", "loss") == []  # axis: no softmax through a transpose
    got = said("    p = x3 -> softmax(-1) -> reshape([B * 3, 5])\n    loss = cross_entropy(p, reshape(t, [B * 3]))",
               "x3: float32[B, 3, 5], t: int64[B, 3]", "loss")  # rows kept whole: said (review49)
    assert len(got) == 1 and "it trains on log_softmax(softmax(x))" in got[0]
    for body, inputs in (("p = softmax(x3, 1)\n    loss = cross_entropy(p, t)", "x3: float32[B, 5, 5], t: int64[B, 5]"),
                         ("p = softmax(x3, -1)\n    loss = cross_entropy(p, t, axis=1)",
                          "x3: float32[B, 3, 5], t: int64[B, 5]"),
                         ("p = softmax(x3, -1)[:, :, 0]\n    loss = cross_entropy(p, t)",
                          "x3: float32[B, 5, 5], t: int64[B]")):  # another axis than the classes' (review50)
        assert said(f"    {body}", inputs, "loss") == [], body
    assert len(said("    p = softmax(x3, 1)\n    loss = cross_entropy(p, t, axis=1)",
                    "x3: float32[B, 3, 5], t: int64[B, 5]", "loss")) == 1
    spec = tmp_path / "d.arch"
    spec.write_text("model d(x: float32[B, 8]) -> p {\n    p = x -> linear(1) as fc -> sigmoid -> flatten\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "bce_with_logits", "-o", str(tmp_path / "t.onnx")]) == 0
    assert "d.arch:2:33: warning: output 'p': --loss bce_with_logits takes logits and applies its own sigmoid" \
        in capsys.readouterr().err
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "t.onnx")]) == 1
    assert "one class, so the loss is 0 whatever the weights; for a yes/no target, --loss bce_with_logits with " \
        "float 0/1 labels of the output's shape; output 'p' ends in a sigmoid, which bce_with_logits applies " \
        "itself: end the model at the sigmoid's input for it" in " ".join(capsys.readouterr().err.split())


def test_a_later_error_says_the_misread_calls_before_it_and_no_others():
    """conv2d in torch's order in a loop's first pass, failing in its second, kept its warning off the error
    (the same place as the failing call); a reshape's warning in another branch came with an unrelated error
    (lint2). An upsample whose [8, 8] would shrink its 32x32 input is a scale (lint2)."""
    loop = ("let widths = [[3, 64], [64, 128]]\nmodel vgg(x: float32[B, 3, 224, 224]) -> y {\n    h = x\n"
            "    for w in widths {\n        h = h -> conv2d(w[0], w[1], 3) -> relu\n    }\n    y = h\n}\n")
    with pytest.raises(archdsl.ArchError) as err:
        archdsl.check_source(loop)
    assert any("a call before it was warned of: conv2d(3, 64, 3) reads as" in text for text, _ in err.value.notes)
    apart = ("model m(x: float32[B, 10], z: float32[B, 4]) -> y {\n    a = reshape(x, [-1, 3])\n"
             "    y = z -> linear(4) + z -> relu\n}\n")
    with pytest.raises(archdsl.ArchError) as err:
        archdsl.check_source(apart)
    assert not any("warned of" in text for text, _ in err.value.notes), err.value.notes
    assert said('    y = upsample(x, [8, 8], mode="bilinear")', "x: float32[B, 21, 32, 32]") == []


def test_a_causal_sdpa_over_a_kv_cache_longer_than_its_queries_is_said():
    """causal=true is top-left aligned (torch's is_causal): S new queries after P cached keys missed the last P keys,
    and a decoder step built from specs/llama.arch decoded other tokens, silently (kvcache hunt). The same lengths,
    or independent ones (cross-attention), say nothing."""
    cache = "q: float32[B, 2, S, 8], past: float32[B, 2, P, 8]"
    got = said("    k = concat([past, q], axis=2)\n    y = scaled_dot_product_attention(q, k, k, causal=true)", cache)
    assert len(got) == 1 and "causal=true is top-left aligned (torch's is_causal): query i sees keys 0..i, so over " \
        "(P+S) keys, more than the queries' S" in got[0] and "unsqueeze(positions(q, dim=-2), 1) + P," in got[0], got
    one = said("    k = concat([past, q], axis=2)\n    y = scaled_dot_product_attention(q, k, k, causal=true)",
               "q: float32[B, 2, 1, 8], past: float32[B, 2, P, 8]")
    assert len(one) == 1 and "over (P+1) keys, more than the queries' 1" in one[0], one
    for body, inputs in (("    y = scaled_dot_product_attention(q, q, q, causal=true)", cache),
                         ("    y = scaled_dot_product_attention(q, k, k, causal=true)",
                          "q: float32[B, 2, T, 8], k: float32[B, 2, S, 8]")):
        assert said(body, inputs) == [], body


def test_channels_last_images_of_run_time_sizes_are_said_too():
    """[B, H, W, 3] into a pool said nothing where [B, 64, 64, 3] warns (no known C needed, so no error either),
    and a conv's error on [B, H, W, 32] said only "give H a number", which makes it read H as channels
    (porting33 hunt)."""
    assert said("    y = x -> maxpool2d(2) -> global_avgpool(keepdims=false)", "x: float32[B, H, W, 3]") == [
        "<string>:2:14: maxpool2d reads [B, H, W, 3] as H channels of Wx3 images (channels first, as torch's); if it "
        "is [batch, height, width, channels], permute([0, 3, 1, 2]) it first"]
    for quiet in ("x: float32[B, H, W, 1]", "x: float32[B, 3, H, W]", "x: float32[B, H, 8, 3]"):
        assert said("    y = x -> maxpool2d(1)", quiet) == [], quiet
    with pytest.raises(archdsl.ArchError, match=r"give H a number: .*; or, if \[B, H, W, 32\] is \[batch, spatial, "
                                                r"spatial, channels\] \(channels last\), permute\(\[0, 3, 1, 2\]\)"):
        archdsl.check_source("model m(x: float32[B, H, W, 32]) -> y {\n    y = x -> conv2d(16, 3, padding=1)\n}\n")


def test_a_one_d_input_of_run_time_length_with_three_features_is_not_said_channels_last():
    """[B, T, 3] into maxpool1d: a 1-D signal of 3 channels by length T is as likely (mutnew6)."""
    assert said("    y = x -> maxpool1d(2)", "x: float32[B, T, 3]") == []
