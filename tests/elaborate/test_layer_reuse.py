"""layer("name"): an op's layer called again on other inputs with the same parameters (a torch module used
twice: a Siamese projection, a recurrent cell unrolled in a loop, a cross-attention over two memories), and a
labelled block call again as a whole (ALBERT's one encoder layer applied at every depth). Against torch modules
called several times, inference and one SGD step (the gradients of the uses add up)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

torch = pytest.importorskip("torch")

SIAMESE = """
model siamese(a: float32[B, 8], b: float32[B, 8]) -> d {
    ha = a -> linear(16) as proj -> relu
    hb = b -> layer("proj") -> relu
    d = sum((ha - hb) ** 2, dim=1)
}
"""


def _weights(model, layer: str = "") -> dict:
    """The initializers of one layer's parameters (all without a layer; writable copies, for torch), by name."""
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer
            if t.name.startswith(layer + ".") or not layer}


def test_a_layer_called_twice_shares_its_weights_like_torch():
    g = archdsl.check_source(SIAMESE)
    assert g.param_count() == 8 * 16 + 16 and sorted(g.params) == ["proj.bias", "proj.weight"]
    model = archdsl.compile_source(SIAMESE)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)
    (d,) = runtime.session(model).run(None, {"a": a, "b": b})
    proj = torch.nn.Linear(8, 16)
    proj.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in _weights(model, "proj").items()})
    with torch.no_grad():
        want = ((torch.relu(proj(torch.from_numpy(a))) - torch.relu(proj(torch.from_numpy(b)))) ** 2).sum(1)
    np.testing.assert_allclose(d, want.numpy(), rtol=1e-5, atol=1e-5)


def test_the_gradients_of_both_calls_add_up_as_in_torch():
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    mod = driver.load(text=SIAMESE, file="s.arch")
    ct = driver.build_train(mod, None, driver.CompileOptions(), TrainConfig(loss="mse", optimizer=OptimConfig("sgd"),
                                                                             lr=0.1))
    w = _weights(ct.step_model, "proj")
    rng = np.random.default_rng(1)
    feeds = {"a": rng.standard_normal((4, 8)).astype(np.float32), "b": rng.standard_normal((4, 8)).astype(np.float32),
             "labels": rng.random(4).astype(np.float32)}
    sess = runtime.session(ct.step_model, "cpu")
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**feeds, **w})))
    proj = torch.nn.Linear(8, 16).double()
    proj.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v).double() for k, v in w.items()})
    a, b = (torch.from_numpy(feeds[k]).double() for k in "ab")
    d = ((torch.relu(proj(a)) - torch.relu(proj(b))) ** 2).sum(1)
    torch.nn.functional.mse_loss(d, torch.from_numpy(feeds["labels"]).double()).backward()
    for k, p in (("proj.weight", proj.weight), ("proj.bias", proj.bias)):
        np.testing.assert_allclose(out[k + ".new"], (p - 0.1 * p.grad).detach().numpy(), rtol=1e-4, atol=1e-6)


def test_a_recurrent_cell_unrolled_in_a_loop():
    src = """model rnn(x: float32[B, 4, 3]) -> h {
        h = concat([x[:, 0], x[:, 0] * 0], axis=1) -> linear(3) as cell -> tanh
        for t in range(1, 4) {
            h = concat([x[:, t], h], axis=1) -> layer("cell") -> tanh
        }
    }"""
    model = archdsl.compile_source(src)
    w = _weights(model, "cell")
    x = np.random.default_rng(2).standard_normal((2, 4, 3)).astype(np.float32)
    (h,) = runtime.session(model).run(None, {"x": x})
    want = np.tanh(np.concatenate([x[:, 0], 0 * x[:, 0]], 1) @ w["cell.weight"].T + w["cell.bias"])
    for t in range(1, 4):
        want = np.tanh(np.concatenate([x[:, t], want], 1) @ w["cell.weight"].T + w["cell.bias"])
    np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-6)
    assert len(w) == 2


def test_cross_attention_called_again_on_another_memory():
    src = """model m(q: float32[B, 3, 8], m1: float32[B, 5, 8], m2: float32[B, 4, 8]) -> y {
        a = multihead_attention(q, key=m1, value=m1, embed_dim=8, num_heads=2) as attn
        y = a + (q -> layer("attn", key=m2, value=m2))
    }"""
    model = archdsl.compile_source(src)
    w = _weights(model, "attn")
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    mha.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in w.items()})
    rng = np.random.default_rng(3)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in (("q", (2, 3, 8)), ("m1", (2, 5, 8)),
                                                                         ("m2", (2, 4, 8)))}
    (y,) = runtime.session(model).run(None, feeds)
    q, m1, m2 = (torch.from_numpy(feeds[k]) for k in ("q", "m1", "m2"))
    with torch.no_grad():
        want = mha(q, m1, m1, need_weights=False)[0] + mha(q, m2, m2, need_weights=False)[0]
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("body,words", [
    ('y = x -> linear(4) as fc\n    z = x -> layer("fcc")', "no layer named 'fcc' (yet); did you mean 'fc'?"),
    ('y = x -> linear(4) as fc\n    z = y -> layer("fc")', "its weight is [4, 6], and these inputs (float32[B, 4])"),
    ('y = x -> linear(4) as fc\n    z = x -> layer("fc") as fc2', "it takes no `as`"),
    ('y = x -> linear(4) as fc\n    z = x -> layer("fc", out_features=3)', "out_features was set when the layer"),
    ('y = unsqueeze(x, 1) -> multihead_attention(embed_dim=6, num_heads=2) as a\n'
     '    z = unsqueeze(x, 1) -> layer("a", is_causal=true)', "causal was set when the layer was made"),
    ('y = unsqueeze(x, 2) -> batchnorm as bn\n    z = unsqueeze(x, 2) -> layer("bn")', "keeps buffers"),
    ('y = x -> blk as "g.enc"\n    z = x -> layer("g")', "'g' names a group of layers: layer() takes one "
                                                         'op\'s layer, as layer("g.enc.fc"), or a block call labelled'),
    ('y = x\n    z = layer(3)', "layer() takes one layer name"),
    ('y = x -> blk as enc\n    z = x -> layer("fc")', "did you mean 'enc.fc' (layer() takes a layer's full name)?"),
    ('y = x -> linear(4) as fc\n    z = cast(x, "float16") -> layer("fc")',  # a Gemm of float16 and float32
     'its parameters are float32 and these inputs float16; cast the inputs (cast(x, "float32"))'),
])
def test_refusals(body, words):
    src = f"block blk(x) {{\n    return x -> linear(2) as fc\n}}\nmodel m(x: float32[B, 6]) -> y {{\n    {body}\n}}\n"
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(src)
    assert words in str(e.value), str(e.value)


ALBERT = """
block encoder_layer(x, heads) {
    h = x + (x -> layernorm as ln1 -> multihead_attention(embed_dim=16, num_heads=heads) as attn)
    return h + (h -> layernorm as ln2 -> linear(32) -> gelu -> linear(16))
}

model albert(x: float32[B, T, 16]) -> y {
    h = x -> encoder_layer(4) as shared
    for i in range(3) {
        h = h -> layer("shared")
    }
    y = h -> layernorm as norm
}
"""


class _EncoderLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(16), torch.nn.LayerNorm(16)
        self.attn = torch.nn.MultiheadAttention(16, 4, batch_first=True)
        self.linear_0, self.linear_1 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x):
        a = self.ln1(x)
        h = x + self.attn(a, a, a, need_weights=False)[0]
        return h + self.linear_1(torch.nn.functional.gelu(self.linear_0(self.ln2(h))))


class _Albert(torch.nn.Module):
    """One encoder layer applied four times (ALBERT's cross-layer sharing)."""

    def __init__(self):
        super().__init__()
        self.shared, self.norm = _EncoderLayer(), torch.nn.LayerNorm(16)

    def forward(self, x):
        for _ in range(4):
            x = self.shared(x)
        return self.norm(x)


def test_a_block_called_again_shares_all_its_weights_like_torch():
    """The block's parameters once (torch's state_dict names, automatic linear_0/1 included), its outputs those
    of one torch module called four times, at two lengths."""
    g = archdsl.check_source(ALBERT)
    ref = _Albert()
    assert {k: tuple(v.type.shape) for k, v in g.params.items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert sum(n.op == "multihead_attention" for n in g.nodes) == 4
    model = archdsl.compile_source(ALBERT)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in _weights(model).items() if k in g.params})
    sess = runtime.session(model)
    for t in (3, 7):
        x = np.random.default_rng(t).standard_normal((2, t, 16)).astype(np.float32)
        (y,) = sess.run(None, {"x": x})
        with torch.no_grad():
            np.testing.assert_allclose(y, ref(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_the_gradients_of_every_call_of_a_block_add_up_as_in_torch():
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    mod = driver.load(text=ALBERT, file="a.arch")
    ct = driver.build_train(mod, None, driver.CompileOptions(), TrainConfig(loss="mse", optimizer=OptimConfig("sgd"),
                                                                             lr=0.1))
    w = {k: v for k, v in _weights(ct.step_model).items() if k in _Albert().state_dict()}
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((2, 5, 16)).astype(np.float32),
             "labels": rng.standard_normal((2, 5, 16)).astype(np.float32)}
    sess = runtime.session(ct.step_model, "cpu")
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**feeds, **w})))
    ref = _Albert().double()
    ref.load_state_dict({k: torch.from_numpy(v).double() for k, v in w.items()})
    y = ref(torch.from_numpy(feeds["x"]).double())
    torch.nn.functional.mse_loss(y, torch.from_numpy(feeds["labels"]).double()).backward()
    for k, p in ref.named_parameters():
        np.testing.assert_allclose(out[k + ".new"], (p - 0.1 * p.grad).detach().numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=k)


def test_a_called_again_block_replays_its_automatic_names_and_nested_blocks():
    """Unnamed layers, a parameter() and labelled inner blocks in a loop: the second call finds every one of
    them (no new parameters); layer() of the block as a value, and of one of its layers, both work."""
    src = """
block inner(x) {
    return x -> linear(8) -> relu -> linear(8)
}
block outer(x, n) {
    h = x -> linear(8) as fc
    for i in range(n) {
        h = h -> inner() as "inner{i}"
    }
    return h + (h -> linear(8)) * parameter([8], init="ones")
}
model m(x: float32[B, 8]) -> (y, z) {
    h = x -> outer(2) as a
    f = layer("a")
    y = h -> f
    z = x -> layer("a.inner1")
}
"""
    g = archdsl.check_source(src)
    assert sorted(g.params) == sorted(["a.fc.weight", "a.fc.bias", "a.linear_0.weight", "a.linear_0.bias", "a.param_0"]
                                      + [f"a.inner{i}.linear_{j}.{p}" for i in range(2) for j in range(2)
                                         for p in ("weight", "bias")])
    model = archdsl.compile_source(src)
    w = _weights(model, "a")
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    lin = lambda v, n: v @ w[f"{n}.weight"].T + w[f"{n}.bias"]  # noqa: E731
    inner = lambda v, n: lin(np.maximum(lin(v, f"{n}.linear_0"), 0), f"{n}.linear_1")  # noqa: E731

    def outer(v):
        h = inner(inner(lin(v, "a.fc"), "a.inner0"), "a.inner1")
        return h + lin(h, "a.linear_0") * w["a.param_0"]
    y, z = runtime.session(model).run(None, {"x": x})
    np.testing.assert_allclose(y, outer(outer(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z, inner(x, "a.inner1"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("body,words", [
    ('y = x -> blk(4) as enc\n    z = x -> layer("enc") as enc2', "calls an existing block, whose parameters keep"),
    ('y = x -> blk(4) as enc\n    z = x -> layer("enc", n=3)', "n was int 4 when the block was first called"),
    ('y = x -> blk(4) as enc\n    f = layer("enc")\n    z = f(x, x)', "takes the tensor arguments of block blk() (x), "
                                                                    "got 2"),
    ('y = x -> blk(4) as enc\n    z = x -> layer("enc", m=x)', "block blk() has no argument 'm'"),
    ('y = x -> blk(4) as enc\n    z = x -> layer("enc", n=x)', "n was int 4 when the block was first called"),
    ('y = x -> blk(4) as enc\n    f = layer("enc")\n    z = f()', "missing tensor argument 'x'"),
    ('y = x -> blk(4) as enc\n    z = x[:, :4] -> layer("enc")', "enc.fc.weight is float32[4, 6], and this call "
                                                                 "needs float32[4, 4]"),
    ('y = x -> bn_blk() as enc\n    z = x -> layer("enc")', "the block keeps buffers ('enc.bn.running_mean'"),
    ('y = x -> bn_blk() as enc\n    z = x -> layer("enc")', "For a discriminator on real and fake: one call on "
                                                          "concat([real, fake], axis=0), or a loss over one batch"),
    ('y = x -> branchy() as enc\n    z = x[:, :2] -> layer("enc")', "makes an unnamed mul where its first call"),
])
def test_block_refusals(body, words):
    src = ("block blk(x, n) {\n    return x -> linear(n) as fc\n}\n"
           "block bn_blk(x) {\n    return x -> unsqueeze(2) -> batchnorm as bn\n}\n"
           "block branchy(x) {\n    return relu(x) if shape(x)[1] == 6 else x * 2 -> linear(3)\n}\n"
           f"model m(x: float32[B, 6]) -> y {{\n    {body}\n    y = z\n}}\n")
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(src)
    assert words in str(e.value), str(e.value)


def test_a_dropout_in_a_block_called_again_draws_a_mask_of_its_own():
    """The train step seeds each dropout by its node's name; a block called again named its nodes as the
    first call did, so both calls dropped the same positions (as one torch module called twice does not)."""
    from ..training.harness import batches, compile_step, config, ort_steps
    text = ("block noisy(x) {\n    return x -> dropout(0.5) -> linear(8) as fc\n}\n"
            "model m(x: float32[B, 64]) -> loss {\n    y1 = x -> noisy() as s\n    y2 = x -> layer(\"s\")\n"
            "    loss = mean((y1 - y2) ** 2)\n}\n")
    g = archdsl.check_source(text)
    names = [n.name for n in g.nodes if n.op == "dropout"]
    assert len(names) == len(set(names)) == 2, names
    ct, fwd = compile_step(None, config(loss="model", opt="sgd", lr=0.1), text=text)
    losses, _ = ort_steps(ct, batches(ct, 1, 4, 2, seed=0))
    assert losses[0] > 1e-3  # the same mask twice gives y1 == y2 exactly, a loss of 0


def test_a_block_whose_buffers_are_never_updated_is_called_again():
    """parameter(trainable=false) keeps a value the train step passes through (a spectral norm's u and v): a
    block with only such buffers is called again; a batchnorm's running statistics still refuse."""
    src = """
block sn_lin(x, out) {
    w = parameter([out, channels(x)], init="normal") as weight_orig
    u = parameter([out], init="ones", trainable=false) as weight_u
    v = parameter([channels(x)], init="ones", trainable=false) as weight_v
    return x @ (w / sum(u * sum(w * unsqueeze(v, 0), dim=1))).T
}
model m(a: float32[B, 8], b: float32[B, 8]) -> (ya, yb) {
    ya = a -> sn_lin(4) as d
    yb = b -> layer("d")
}
"""
    g = archdsl.check_source(src)
    assert sorted(g.params) == ["d.weight_orig", "d.weight_u", "d.weight_v"]
    model = archdsl.compile_source(src)
    w = _weights(model, "d")
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((3, 8)).astype(np.float32) for _ in range(2))
    ya, yb = runtime.session(model).run(None, {"a": a, "b": b})
    sigma = (w["d.weight_u"] * (w["d.weight_orig"] * w["d.weight_v"]).sum(1)).sum()
    np.testing.assert_allclose(ya, a @ (w["d.weight_orig"] / sigma).T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(yb, b @ (w["d.weight_orig"] / sigma).T, rtol=1e-5, atol=1e-6)


def test_a_block_called_again_takes_its_arguments_as_first_given():
    """A body that rebinds its argument (scale = scale * 2) gave the call again the rebound value (12 for 6),
    and a width rebound so made a weight of another shape a diagnostic."""
    src = ("block f(x, scale) {\n    scale = scale * 2\n    return x * scale\n}\n"
           "block g(x, width) {\n    width = width * 2\n    return x -> linear(width) as fc\n}\n"
           "model m(a: float32[B, 2]) -> (y1, y2, z1, z2) {\n    y1 = a -> f(3.0) as e\n    y2 = a -> layer(\"e\")\n"
           "    z1 = a -> g(3) as h\n    z2 = a -> layer(\"h\")\n}\n")
    a = np.ones((2, 2), np.float32)
    y1, y2, z1, z2 = runtime.session(archdsl.compile_source(src)).run(None, {"a": a})
    assert y1.tolist() == y2.tolist() == [[6.0, 6.0]] * 2
    np.testing.assert_allclose(z1, z2)


def test_a_block_called_again_that_makes_fewer_layers_is_refused():
    src = ("block f(x) {\n    return x -> linear(2) if shape(x)[1] == 6 else x\n}\n"
           "model m(a: float32[B, 6]) -> (y1, y2) {\n    y1 = a -> f as e\n    y2 = a[:, :2] -> layer(\"e\")\n}\n")
    with pytest.raises(archdsl.ArchError, match=r'layer\("e"\): this call of the block does not make its first '
                                                r"call's linear_0 \(it ran differently"):
        archdsl.check_source(src)
    with pytest.raises(archdsl.ArchError, match=r"may not contain spaces, slashes, colons, #"):
        archdsl.check_source("model m(a: float32[B, 6]) -> y {\n    y = a -> linear(2) as \"fc#2\"\n}\n")


def test_a_block_of_a_list_of_tensors_is_called_again_on_a_new_list():
    """f([x, x]) as e, then layer("e") on [z, z]: the list was a fixed argument (re-run on the first tensors
    with no argument, 'got 1 values' with one)."""
    src = ("block f(xs) {\n    return concat(xs, axis=1) -> linear(2) as fc\n}\n"
           "model m(x: float32[B, 3], z: float32[B, 3]) -> (y, w, v) {\n    y = f([x, x]) as e\n"
           "    w = layer(\"e\")([z, z])\n    f = layer(\"e\")\n    v = f(xs=[z, x])\n}\n")
    model = archdsl.compile_source(src)
    wt = _weights(model, "e")
    rng = np.random.default_rng(5)
    x, z = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    y, w, v = runtime.session(model).run(None, {"x": x, "z": z})
    lin = lambda a: a @ wt["e.fc.weight"].T + wt["e.fc.bias"]  # noqa: E731
    for got, parts in ((y, [x, x]), (w, [z, z]), (v, [z, x])):
        np.testing.assert_allclose(got, lin(np.concatenate(parts, 1)), rtol=1e-5, atol=1e-6)
    with pytest.raises(archdsl.ArchError, match="missing tensor argument 'xs'"):
        archdsl.check_source(src.replace('layer(\"e\")([z, z])', 'layer(\"e\")()'))


def test_a_layer_outside_the_block_under_its_name_is_not_the_blocks():
    """The buffer check took every parameter named enc.*: a batchnorm labelled "enc.bn" outside block enc made
    layer("enc") refuse."""
    src = ("block f(x) {\n    return x -> linear(4) as fc\n}\n"
           "model m(x: float32[B, 4]) -> (y, z, n) {\n    y = x -> f as enc\n"
           "    n = unsqueeze(x, 2) -> batchnorm as \"enc.bn\"\n    z = y -> layer(\"enc\")\n}\n")
    g = archdsl.check_source(src)
    assert sum(n.op == "linear" for n in g.nodes) == 2 and "enc.bn.running_mean" in g.params


def test_layer_of_a_parameter_points_to_ref():
    src = ("model m(x: float32[B, 4]) -> y {\n    w = parameter([4], init=\"ones\") as p\n"
           "    y = x * w -> layer(\"p\")\n}\n")
    with pytest.raises(archdsl.ArchError, match=r"no layer named 'p' \(yet\); 'p' is a parameter: ref\(\"p\"\) "
                                                r"reads it again$"):
        archdsl.check_source(src)


def test_a_layer_called_again_is_named_after_it_and_takes_no_automatic_name():
    """layer("proj") made a node named linear_0 (summary showed a new unnamed linear) and used up that name:
    the unnamed linear after it had its parameters named linear_1."""
    g = archdsl.check_source("model m(x: float32[B, 8]) -> y {\n    a = x -> linear(8) as proj\n"
                             "    b = a -> layer(\"proj\") -> layer(\"proj\")\n    y = b -> linear(4)\n}\n")
    assert [n.name for n in g.nodes] == ["proj", "proj#2", "proj#3", "linear_0"]
    assert sorted(g.params) == ["linear_0.bias", "linear_0.weight", "proj.bias", "proj.weight"]


def test_a_builtin_applied_to_a_tensor_takes_a_name_as_any_op():
    """x -> sum as s said 'sum() creates no layer and cannot be named', where x -> mean as m was taken."""
    g = archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = x -> sum(dim=1) as s -> exp as e\n}\n")
    assert [n.name for n in g.nodes] == ["s", "e"]
    with pytest.raises(archdsl.ArchError, match=r"max\(\) creates no layer and cannot be named"):
        archdsl.check_source("let q = max([1, 2]) as m\nmodel m(x: float32[B, 4]) -> y {\n    y = x\n}\n")


def test_a_layer_called_again_inside_a_block_called_again_gets_a_name_of_its_own():
    """The block's second call named its own proj as the first call's layer("t.proj") node was named,
    t.proj#2 twice, and the inner call again t.proj#3#2."""
    g = archdsl.check_source("block tower(x) {\n    h = x -> linear(8) as proj -> relu\n"
                             "    return h -> layer(\"t.proj\")\n}\n"
                             "model m(a: float32[B, 8], b: float32[B, 8]) -> (ya, yb) {\n"
                             "    ya = a -> tower as t\n    yb = b -> layer(\"t\")\n}\n")
    names = [n.name for n in g.nodes]
    assert names == ["t.proj", "t.relu_0", "t.proj#2", "t.proj#3", "t.relu_0#2", "t.proj#4"]


def test_inside_a_block_layer_finds_the_blocks_own_layer_of_this_call():
    """CBAM's MLP shared by its average- and max-pooled descriptors, in a block called twice: layer("fc") in the
    block was refused with "did you mean 'one.fc'", and that full name bound the second call to the first's
    weights (porting26 hunt). Each call shares its own fc, as each torch module its own MLP; a call again of
    the whole block (layer("two")) reads the second call's."""
    src = ("block att(x) {\n    a = x -> amax(dim=1) -> linear(4) as fc\n    m = x -> mean(dim=1) -> layer(\"fc\")\n"
           "    return sigmoid(a + m)\n}\n"
           "model m(x: float32[B, 3, 4]) -> (y1, y2, y3) {\n    y1 = x -> att as one\n    y2 = x -> att as two\n"
           "    y3 = x -> layer(\"two\")\n}\n")
    g = archdsl.check_source(src)
    assert [(n.name, n.inputs[1].name) for n in g.nodes if n.op == "linear"] == [
        ("one.fc", "one.fc.weight"), ("one.fc#2", "one.fc.weight"), ("two.fc", "two.fc.weight"),
        ("two.fc#2", "two.fc.weight"), ("two.fc#3", "two.fc.weight"), ("two.fc#4", "two.fc.weight")]
    model = archdsl.compile_source(src)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y1, y2, y3 = runtime.session(model).run(None, {"x": x})
    tx = torch.from_numpy(x)
    for label, y in (("one", y1), ("two", y2), ("two", y3)):
        fc = torch.nn.Linear(4, 4)
        own = _weights(model, f"{label}.fc")
        fc.load_state_dict({k.rsplit(".", 1)[1]: torch.from_numpy(v) for k, v in own.items()})
        with torch.no_grad():
            want = torch.sigmoid(fc(tx.amax(1)) + fc(tx.mean(1)))
        np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(y1, y2)


def test_inside_a_block_ref_reads_the_blocks_own_parameter_of_this_call():
    """ref("w") of a `parameter(...) as w` in the block said "no parameter named 'w' (yet)", as layer() did."""
    g = archdsl.check_source("block scale(x) {\n    w = parameter([4], init=\"ones\") as w\n"
                             "    return x * w + x * ref(\"w\")\n}\n"
                             "model m(x: float32[B, 4]) -> (y, z) {\n    y = x -> scale as one\n"
                             "    z = x -> scale as two\n}\n")
    assert [n.inputs[1].name for n in g.nodes if n.op == "mul"] == ["one.w", "one.w", "two.w", "two.w"]


def _linears(src):
    return [(n.name, n.inputs[1].name) for n in archdsl.check_source(src).nodes if n.op == "linear"]


def test_inside_a_block_layer_finds_the_blocks_own_labelled_block_call():
    """layer("enc") in a block of a block call labelled enc there: this call's one.enc, as for an op's layer."""
    src = ("block inner(x) {\n    return x -> linear(4) as fc\n}\n"
           "block outer(x) {\n    a = x -> inner as enc\n    return layer(\"enc\")(a)\n}\n"
           "model m(x: float32[B, 4]) -> (y1, y2) {\n    y1 = x -> outer as one\n    y2 = x -> outer as two\n}\n")
    assert _linears(src) == [("one.enc.fc", "one.enc.fc.weight"), ("one.enc.fc#2", "one.enc.fc.weight"),
                             ("two.enc.fc", "two.enc.fc.weight"), ("two.enc.fc#2", "two.enc.fc.weight")]


def test_inside_a_nested_block_layer_finds_the_innermost_calls_own_layer():
    src = ("block inner(x) {\n    a = x -> linear(4) as fc\n    return layer(\"fc\")(a)\n}\n"
           "block outer(x) {\n    return x -> inner as i\n}\n"
           "model m(x: float32[B, 4]) -> y {\n    y = x -> outer as o\n}\n")
    assert _linears(src) == [("o.i.fc", "o.i.fc.weight"), ("o.i.fc#2", "o.i.fc.weight")]


def test_inside_a_block_its_own_layer_wins_over_a_model_layer_of_the_same_name():
    src = ("block att(x) {\n    a = x -> linear(4) as fc\n    return layer(\"fc\")(a)\n}\n"
           "model m(x: float32[B, 4]) -> (y, z) {\n    y = x -> linear(4) as fc\n    z = x -> att as one\n}\n")
    assert _linears(src) == [("fc", "fc.weight"), ("one.fc", "one.fc.weight"), ("one.fc#2", "one.fc.weight")]


def test_inside_a_block_ref_reads_its_own_parameter_over_a_model_parameter_of_the_same_name():
    g = archdsl.check_source("block scale(x) {\n    w = parameter([4], init=\"ones\") as w\n"
                             "    return x * ref(\"w\")\n}\n"
                             "model m(x: float32[B, 4]) -> (y, z) {\n    w = parameter([4], init=\"zeros\") as w\n"
                             "    y = x * w\n    z = x -> scale as one\n}\n")
    assert [n.inputs[1].name for n in g.nodes if n.op == "mul"] == ["w", "one.w"]


@pytest.mark.parametrize("label", [" as b", ""])
def test_inside_a_block_ref_of_a_layer_and_layer_of_a_parameter_give_the_models_hints(label):
    """Inside a labelled block, ref("fc") of its own layer said only "no parameter named 'fc' (yet)" and
    layer("p") of its own parameter lost "is a parameter": both looked for the name outside the block
    (mutnew4 hunt). The ref() they suggest runs there."""
    call = f"model m(x: float32[B, 4]) -> y {{\n    y = blk(x){label}\n}}\n"
    with pytest.raises(archdsl.ArchError, match=r"'fc': it names a layer, whose parameters are 'fc.weight', "
                                                r"'fc.bias' \(ref\(\"fc.weight\"\)\)"):
        archdsl.check_source('block blk(x) {\n    h = x -> linear(4) as fc\n    return h + ref("fc")\n}\n' + call)
    with pytest.raises(archdsl.ArchError, match=r"'p' is a parameter: ref\(\"p\"\) reads it again"):
        archdsl.check_source('block blk(x) {\n    w = parameter([4], init="ones") as p\n'
                             '    return x * layer("p")(x)\n}\n' + call)
    archdsl.check_source('block blk(x) {\n    h = x -> linear(4) as fc\n    return h + ref("fc.bias")\n}\n' + call)


def test_ref_of_a_layer_in_a_block_lists_the_blocks_own_parameters_alone():
    """A block's `linear(4, bias=false) as fc` beside the model's own fc: ref("fc") listed 'fc.weight' twice and
    the model's 'fc.bias' as the block's (mutnew5)."""
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source('block blk(x) {\n    h = x -> linear(4, bias=false) as fc\n    return h + ref("fc")\n}\n'
                             "model m(x: float32[B, 4]) -> y {\n    h = x -> linear(4) as fc\n    y = blk(h) as b\n}\n")
    assert "whose parameters are 'fc.weight' (ref(\"fc.weight\"))" in e.value.message
