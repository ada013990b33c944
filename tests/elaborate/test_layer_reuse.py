"""layer("name"): an op's layer called again on other inputs with the same parameters (a torch module used
twice: a Siamese projection, a recurrent cell unrolled in a loop, a cross-attention over two memories).
Against torch modules called twice, inference and one SGD step (the gradients of the two uses add up)."""

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


def _weights(model, layer: str) -> dict:
    """The initializers of one layer's parameters (writable copies, for torch), by name."""
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer if t.name.startswith(layer + ".")}


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
    ('y = unsqueeze(x, 2) -> batchnorm as bn\n    z = unsqueeze(x, 2) -> layer("bn")', "keeps buffers"),
    ('y = x -> blk as enc\n    z = x -> layer("enc")', "is a block's name: layer() takes one op's layer, as "
                                                      'layer("enc.fc")'),
    ('y = x\n    z = layer(3)', "layer() takes one layer name"),
])
def test_refusals(body, words):
    src = f"block blk(x) {{\n    return x -> linear(2) as fc\n}}\nmodel m(x: float32[B, 6]) -> y {{\n    {body}\n}}\n"
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(src)
    assert words in str(e.value), str(e.value)
