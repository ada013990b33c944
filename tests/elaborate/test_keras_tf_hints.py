"""A Keras/TensorFlow user's names (review121 hunt): those whose archdsl namesake is torch's and means another
thing (tf.split, tf.gather), defaults that differ (leaky_relu's slope, reduce_std's divisor), Keras losses and
layers, and Keras's layer arguments. Each form a hint gives is run against numpy or torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import archdsl
from archdsl import runtime

from .harness import _said

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("call, said", [
    ("tf.split(x, 2, axis=-1)", "tf.split is chunk(x, n, dim) (their split makes n pieces; archdsl's split is "
                                "torch's: pieces of a given size)"),
    ("np.split(x, 2)", "np.split is chunk(x, n, dim)"),
    ("torch.split(x, 2)", "torch.split is split"),
    ("tf.gather(x, [0, 3], axis=1)", "tf.gather is take(x, index, axis)"),
    ("tf.transpose(x, perm=[0, 2, 1])", "tf.transpose is permute(x, [...]) with the whole order"),
    ("tf.nn.leaky_relu(x)", "tf.nn.leaky_relu is leaky_relu(x, negative_slope=0.2)"),
    ("LeakyReLU()(x)", "Keras's LeakyReLU() is leaky_relu(x, negative_slope=0.3)"),
    ("tf.math.reduce_std(x, axis=1)", "write std(x, dim=d, correction=0) for TensorFlow's axis=d"),
    ("UpSampling2D(size=2)(x)", "write upsample(x, scale_factor=2) (Keras's size=2 is a factor"),
    ("binary_crossentropy(x, x)", "Keras's order is (y_true, y_pred): here the logits come first"),
    ("Huber()(x, x)", "mean(where(abs(d) < 1.0, 0.5 * d * d, abs(d) - 0.5)) for d = a - b"),
    ("log_cosh(x, x)", "mean(d + softplus(-2.0 * d) - 0.6931471805599453) for d = a - b"),
    ("categorical_crossentropy(x, x)", "mean(-sum(t * log_softmax(x, -1), dim=-1))"),
    ("RepeatVector(3)(x)", "tile(unsqueeze(v, 1), [1, n, 1])"),
    ("x -> conv1d(4, 3, kernel_initializer=\"he_normal\")", "layers start from torch's default init"),
    ("x -> lstm(4, activation=\"tanh\")", "lstm's cell always uses tanh and sigmoid (torch's)"),
    ("x -> gru(4, reset_after=true)", "as Keras's reset_after=True (TF2's default); leave it out"),
    ("cross_entropy(x, x, from_logits=true)", "always take logits (from_logits=True); leave it out"),
    ("leaky_relu(x, alpha=0.3)", "leaky_relu's slope is negative_slope="),
    ("x -> conv1d(4, 3, activation=\"relu\")", "chain the activation after the layer"),
    ("x -> batchnorm(axis=-1)", "batchnorm normalizes dim 1, the channels (torch's); permute channels-last"),
    ("x -> layernorm(axis=-1)", "layernorm normalizes the last dims"),
    ("clip_by_value(x, 0.0, 1.0)", "write clamp(x, min=lo, max=hi)"),
    ("Permute((2, 1))(x)", "Keras's Permute((2, 1)) is permute(x, [0, 2, 1])"),
    ("Reshape((5, 64))(x)", "Keras's Reshape((5, 64)) is reshape(x, [-1, 5, 64])"),
])
def test_keras_and_tf_names_say_what_they_are_here(call, said):
    assert said in _said("x: float32[B, 4, 8]", call)


def test_the_forms_the_hints_give_compute_what_keras_and_tf_do():
    src = ("model m(x: float32[3, 4, 6], t: float32[3, 6], p: float32[3, 6]) -> (ch, tk, pm, lr, sd, hb, lc, cc, rv) {"
           "\n    ch = chunk(x, 2, dim=-1)[1]\n    tk = take(x, tensor([0, 3]), axis=1)\n"
           "    pm = permute(x, [0, 2, 1])\n"
           "    lr = leaky_relu(x, negative_slope=0.2)\n    sd = std(x, dim=1, correction=0)\n    d = t - p\n"
           "    hb = mean(where(abs(d) < 1.0, 0.5 * d * d, abs(d) - 0.5))\n"
           "    lc = mean(d + softplus(-2.0 * d) - 0.6931471805599453)\n"
           "    cc = mean(-sum(softmax(t, -1) * log_softmax(p, -1), dim=-1))\n"
           "    rv = tile(unsqueeze(p, 1), [1, 2, 1])\n}\n")
    rng = np.random.default_rng(0)
    f = {"x": rng.standard_normal((3, 4, 6)), "t": rng.standard_normal((3, 6)) * 2, "p": rng.standard_normal((3, 6))}
    f = {k: v.astype(np.float32) for k, v in f.items()}
    got = runtime.session(archdsl.compile_source(src)).run(None, f)
    x, t, p = (torch.from_numpy(f[k]) for k in "xtp")
    d = (t - p).double()
    want = [np.split(f["x"], 2, axis=-1)[1], np.take(f["x"], [0, 3], axis=1), np.transpose(f["x"], (0, 2, 1)),
            F.leaky_relu(x, 0.2).numpy(), f["x"].std(axis=1), F.huber_loss(p, t).numpy(),
            torch.log(torch.cosh(d)).mean().numpy(), F.cross_entropy(p, torch.softmax(t, -1)).numpy(),
            np.repeat(f["p"][:, None], 2, axis=1)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def _warned(src: str) -> list[str]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        archdsl.check_source(src)
    return [str(w.message) for w in got if issubclass(w.category, archdsl.ArchWarning)]


def test_keras_readings_that_build_a_wrong_model_are_warned_of():
    """upsample(size=2) made 2x2 maps (Keras's UpSampling2D(size=2) is a factor), lstm's dropout with one layer
    dropped nothing, and batchnorm after a linear over [B, T, F] normalized the steps (Keras's Dense then
    BatchNormalization): each built without a word."""
    up = _warned("model m(x: float32[B, 8, 16, 16]) -> y {\n    y = x -> upsample(size=2)\n}\n")
    assert up == ["<string>:2:14: upsample(size=2) makes [2, 2] maps from [16, 16]: size= is the output's size "
                  "(torch's nn.Upsample); a factor (Keras's UpSampling2D(size=2)) is scale_factor="]
    assert _warned("model m(x: float32[B, 8, 16, 16]) -> y {\n    y = x -> upsample(size=[32, 32])\n}\n") == []
    drop = _warned("model m(x: float32[B, 12, 16]) -> y {\n    y = x -> lstm(8, dropout=0.2)\n}\n")
    assert drop and "with num_layers=1 there are none: it drops nothing" in drop[0]
    assert _warned("model m(x: float32[B, 12, 16]) -> y {\n    y = x -> lstm(8, num_layers=2, dropout=0.2)\n}\n") == []
    bn = _warned("model m(x: float32[B, 12, 16]) -> y {\n    y = x -> linear(8) -> batchnorm1d\n}\n")
    assert bn and "batchnorm reads [B, 12, 8], a linear's [batch, steps, features], as 12 channels" in bn[0]
    assert _warned("model m(x: float32[B, 16]) -> y {\n    y = x -> linear(8) -> batchnorm1d\n}\n") == []


def test_the_padding_and_cropping_forms_are_keras():
    """ZeroPadding2D(((3, 0), (1, 2))) and Cropping2D(((2, 1), (1, 0))) as the hints write them (the last dim's
    pair first, a negative pad crops)."""
    assert "pad(x, [left, right, top, bottom])" in _said("x: float32[B, 4, 8]", "ZeroPadding2D(1)(x)")
    assert "pad(x, [-left, -right, -top, -bottom])" in _said("x: float32[B, 4, 8]", "Cropping2D(1)(x)")
    x = np.random.default_rng(0).random((2, 2, 6, 7)).astype(np.float32)
    z, c = runtime.session(archdsl.compile_source(
        "model m(x: float32[B, 2, 6, 7]) -> (z, c) {\n    z = pad(x, [1, 2, 3, 0])\n"
        "    c = pad(x, [-1, 0, -2, -1])\n}\n")).run(None, {"x": x})
    np.testing.assert_array_equal(z, np.pad(x, ((0, 0), (0, 0), (3, 0), (1, 2))))
    np.testing.assert_array_equal(c, x[:, :, 2:5, 1:])


def test_the_spatial_dropout_form_drops_whole_channels():
    """SpatialDropout's hint, word for word (its first wording multiplied by a bool, which archdsl refuses)."""
    hint = _said("x: float32[B, 4, 8]", "SpatialDropout1D(0.5)(x)")
    form = 'x * cast(gt(rand_like(x[:, :, :1]), p), "float32") / (1.0 - p)'
    assert form in hint
    model = archdsl.compile_source(f"model m(x: float32[B, 16, 8]) -> y {{\n    y = {form.replace('p', '0.5')}\n}}\n")
    sess = runtime.session(model)
    feeds = {i.name: (np.ones((3, 16, 8), np.float32) if i.name == "x" else np.array(7, np.int64))
             for i in sess.get_inputs()}
    y = sess.run(None, feeds)[0]
    assert set(np.unique(y)) <= {0.0, 2.0} and (y.min(axis=2) == y.max(axis=2)).all()  # a channel dropped whole
    assert 0 < (y[:, :, 0] == 0).sum() < 48


# mutnew6: tests that kill the survivors of a mutation hunt over these hints and warnings


def _error(src: str) -> str:
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(src)
    return str(e.value)


def test_upsample_size_warning_bounds():
    up = "model m(x: float32[{}]) -> y {{\n    y = x -> upsample(size={})\n}}\n"
    assert _warned(up.format("B, 8, 16, 16", "16")) == []            # the same size: no shrink
    assert _warned(up.format("B, 8, 16, 16", "[8, 64]")) == []       # one dim grows: not a factor misread
    one = _warned(up.format("B, 8, 16", "4"))                         # 1-D maps too
    assert one and "upsample(size=4) makes [4] maps from [16]" in one[0]


def test_batchnorm_after_embedding_then_linear_names_the_embedding():
    bn = _warned("model m(ids: int64[B, 12]) -> y {\n    y = ids -> embedding(50, 16) -> linear(8) -> batchnorm1d\n}\n")
    assert bn and "an embedding's [batch, steps, features]" in bn[0]


@pytest.mark.parametrize("call, said, unsaid", [
    ("F.leaky_relu(x)", "F.leaky_relu is leaky_relu", "0.2"),
    ("torch.nn.functional.leaky_relu(x)", "torch.nn.functional.leaky_relu is leaky_relu", "0.2"),
    ("hessian(x)", "a spec computes no gradients itself", None),
    ("x.permute(0, 2, 1)", "ops are functions: permute(x, ...)", "Keras"),
    ("x.reshape(-1, 32)", "ops are functions: reshape(x, ...)", "Keras"),
    ("sigmoid_cross_entropy_with_logits(x, x)", 'reduction="none"', None),
    ("SpatialDropout2D(0.5)(x)", "write dropout(x, p)", None),
])
def test_module_and_table_hints(call, said, unsaid):
    msg = _error(f"model m(x: float32[B, 4, 8]) -> y {{\n    y = {call}\n}}\n")
    assert said in msg and (unsaid is None or unsaid not in msg)


def test_an_ops_own_alpha_is_taken():
    archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = elu(x, alpha=0.5)\n}\n")


@pytest.mark.parametrize("call, said", [
    ("x -> gru(4, recurrent_dropout=0.2)", "no dropout on the recurrent state"),
    ("matmul(x, x, adjoint_b=true)", "transpose the operand first"),
    ("x -> batchnorm1d(center=false)", "leaves out both the shift and the scale"),
    ("x -> batchnorm1d(gamma_initializer=\"ones\")", "layers start from torch's default init"),
    # review122: a JAX/Flax user's
    ("jax.nn.gelu(x)", 'jax.nn.gelu is gelu(x, approximate="tanh") (JAX\'s default'),
    ("nn.gelu(x)", 'nn.gelu is gelu(x, approximate="tanh")'),
    ("jnp.max(x, axis=-1)", "jnp.max is amax(x, dim)"),
    ("np.min(x)", "np.min is amin(x, dim)"),
    ("jnp.var(x, axis=1)", "jnp.var is var(x, dim, correction=0) (their ddof=0 divides by n"),
    ("jnp.std(x)", "jnp.std is std(x, dim, correction=0)"),
    ("attend(x)", 'h @ ref("embed.weight").T (Flax\'s embed.attend(h)'),
    ("x -> layernorm(use_scale=false)", "(Flax's): elementwise_affine=false"),
    ("x -> linear(4, use_bias=false)", "(Keras's and Flax's): bias=false"),
])
def test_keras_arguments_say_what_to_write(call, said):
    assert said in _error(f"model m(x: float32[B, 5, 4]) -> y {{\n    y = {call}\n}}\n")


def test_embedding_id_checks():
    assert "ids must be int64 or int32, got float32 []" in _error(
        "model m(x: float32[]) -> y {\n    y = x -> embedding(10, 4)\n}\n")
    assert "std=1e+38 draws numbers past 3.4e+38" in _error(
        "model m(ids: int64[B, 3]) -> y {\n    y = ids -> embedding(10, 4, std=1e38)\n}\n")
    assert "tied" not in _error("model m(x: bool[B, 4]) -> y {\n    y = x -> embedding(10, 4)\n}\n")


def test_ref_of_a_layer_name_lists_the_right_layers():
    blk = ("block b(x) {\n    h = x -> linear(4) as fc\n    return h @ ref(\"fc\")\n}\n"
           "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(4, bias=false) as fc -> b as blk\n}\n")
    assert "whose parameters are 'fc.weight', 'fc.bias'" in _error(blk)
    msg = _error("model m(x: float32[B, 4]) -> y {\n    h = x -> linear(4) as fc1\n    y = h @ ref(\"fc\")\n}\n")
    assert "fc1.weight" not in msg.split("(yet)")[0] and "names a layer" not in msg


def test_the_spatial_dropout_2d_form_drops_whole_feature_maps():
    """SpatialDropout2D's mask is [B, C, 1, 1] (x[:, :, :1] of a map dropped columns, not channels: mutnew6)."""
    hint = _error("model m(x: float32[B, 4, 8]) -> y {\n    y = SpatialDropout2D(0.5)(x)\n}\n")
    form = 'x * cast(gt(rand_like(x[:, :, :1, :1]), p), "float32") / (1.0 - p)'
    assert form in hint
    sess = runtime.session(archdsl.compile_source(
        f"model m(x: float32[B, 16, 4, 5]) -> y {{\n    y = {form.replace('p', '0.5')}\n}}\n"))
    feeds = {i.name: (np.ones((3, 16, 4, 5), np.float32) if i.name == "x" else np.array(11, np.int64))
             for i in sess.get_inputs()}
    y = sess.run(None, feeds)[0].reshape(3, 16, -1)
    assert (y.min(axis=2) == y.max(axis=2)).all() and 0 < (y[:, :, 0] == 0).sum() < 48


def test_jax_and_flax_leaky_relu_keep_torchs_slope():
    """Only TensorFlow's and Keras's leaky_relu default to another slope (jax.nn.leaky_relu's is 0.01: mutnew6)."""
    for call in ("jax.nn.leaky_relu(x)", "linen.leaky_relu(x)"):
        assert "0.2" not in _error(f"model m(x: float32[B, 4]) -> y {{\n    y = {call}\n}}\n"), call
    assert "negative_slope=0.2" in _error("model m(x: float32[B, 4]) -> y {\n    y = tf.nn.leaky_relu(x)\n}\n")
    assert _error("model m(x: float32[B, 4]) -> y {\n    y = nn.functional.gelu(x)\n}\n").endswith(
        "nn.functional.gelu is gelu")  # torch's, exact: not JAX's tanh default


# review122: a JAX/Flax user's names and habits


def test_flax_habits_that_build_a_wrong_model_are_warned_of():
    """A Flax causal mask (true to attend) as attn_mask let each query see only the future; a conv map reshaped
    to [B, H*W, C] (Flax's NHWC tokens) scattered each channel's map across tokens: both built silently."""
    mask = _warned("model m(x: float32[B, 8, 32]) -> y {\n"
                   "    mask = tensor([[j <= i for j in range(8)] for i in range(8)])\n"
                   "    y = x -> multihead_attention(embed_dim=32, num_heads=4, attn_mask=mask) as attn\n}\n")
    assert mask and "attn_mask is true on and below its diagonal: true marks a key NOT allowed" in mask[0]
    assert _warned("model m(x: float32[B, 8, 32]) -> y {\n"
                   "    mask = tensor([[j > i for j in range(8)] for i in range(8)])\n"
                   "    y = x -> multihead_attention(embed_dim=32, num_heads=4, attn_mask=mask) as attn\n}\n") == []
    for target in ("[B, 64, 32]", "[B, -1, 32]"):
        said = _warned(f"model m(x: float32[B, 3, 32, 32]) -> y {{\n    h = x -> conv2d(32, 4, stride=4)\n"
                       f"    y = reshape(h, {target})\n}}\n")
        assert said and "the tokens of a [B, C, H, W] map are flatten(x, 2) then transpose(1, 2)" in said[0], target
    assert _warned("model m(x: float32[B, 3, 32, 32]) -> y {\n    h = x -> conv2d(32, 4, stride=4)\n"
                   "    y = reshape(h, [B, 32, 64])\n}\n") == []
