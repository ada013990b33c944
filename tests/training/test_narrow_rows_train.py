"""narrow_rows in train steps: it runs on the forward graph before autodiff, keeps active dropout whole, and
the -O2 step gives what the -O1 step gives."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from archdsl import driver, runtime

from .harness import batches, config, ort_steps, rel
from .test_train_step import SPECS


def _rows(model) -> int:
    return sum(".rows" in n.name for n in model.graph.node)  # the narrowings narrow_rows inserts


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_narrow_rows_runs_on_the_forward_graph_before_autodiff(dropout):
    """ViT's head reads the class token: at -O2 the last block's MLP, projections and their gradients run
    on that row alone, and the step gives what -O1's does. Active dropout (attention dropout included) is
    not narrowed, or its masks would take other random numbers: with it narrowed, losses moved by ~1e-2."""
    spec, defines = SPECS["vit"]
    mod = driver.load(spec, defines=defines + [f"dropout_p={dropout}"])
    cfg = config(opt="sgd", lr=0.1)
    steps = {name: driver.build_train(mod, None, driver.CompileOptions(**opts), cfg)
             for name, opts in (("O1", {"opt_level": 1}), ("O2", {}),
                                ("off", {"disabled_passes": ("narrow_rows",)}))}
    assert _rows(steps["O1"].step_model) == _rows(steps["off"].step_model) == 0
    assert _rows(steps["O2"].step_model) > 0
    assert _rows(steps["O2"].eval_model) > 0
    data = batches(steps["O1"], 3, 4, 10, seed=1)
    l1, s1 = ort_steps(steps["O1"], data)
    l2, s2 = ort_steps(steps["O2"], data)
    assert rel(l2, l1) < 1e-6
    assert set(s2[-1]) == set(s1[-1])
    for name in s1[-1]:
        assert rel(s2[-1][name], s1[-1][name]) < 1e-5, name


@pytest.mark.parametrize("attention", [
    "h = x -> multihead_attention(8, 2, dropout=0.2) as attn -> linear(8) as fc",
    # sdpa's dropout_p was not seen as drawing masks (narrow_rows read `dropout`): narrowed (review63)
    "q = x -> linear(8) as q -> reshape([-1, 6, 2, 4]) -> permute([0, 2, 1, 3])\n"
    "    k = x -> linear(8) as k -> reshape([-1, 6, 2, 4]) -> permute([0, 2, 1, 3])\n"
    "    v = x -> linear(8) as v -> reshape([-1, 6, 2, 4]) -> permute([0, 2, 1, 3])\n"
    "    h = scaled_dot_product_attention(q, k, v, dropout_p=0.5) -> permute([0, 2, 1, 3]) -> reshape([-1, 6, 8])"])
def test_attention_dropout_keeps_its_masks_under_narrow_rows(attention):
    """The -O2 step draws the attention dropout masks the -O1 step draws: the attention is not narrowed to
    the class token (its weights' mask would take other numbers), only what follows it."""
    src = f"model m(x: float32[B, 6, 8]) -> y {{\n    {attention}\n    y = h[:, 0] -> linear(10) as head\n}}"
    mod = driver.load(text=src, file="t.arch")
    cfg = config(opt="sgd", lr=0.1)
    o1 = driver.build_train(mod, None, driver.CompileOptions(opt_level=1), cfg)
    o2 = driver.build_train(mod, None, driver.CompileOptions(), cfg)
    assert _rows(o2.step_model) > 0 and "seed" in o2.info.state_inputs
    data = batches(o1, 3, 4, 10, seed=2)
    l1, s1 = ort_steps(o1, data)
    l2, s2 = ort_steps(o2, data)
    assert rel(l2, l1) < 1e-6
    for name in s1[-1]:
        assert rel(s2[-1][name], s1[-1][name]) < 1e-5, name


@pytest.mark.parametrize("body", [
    "h = x -> multihead_attention(embed_dim=8, num_heads=2, causal=true) as attn\n"
    "    logits = h[:, 0] -> linear(3) as head",
    "o = scaled_dot_product_attention(x -> linear(8) as q_proj, x, x, causal=true)\n"
    "    logits = o[:, 0] -> linear(3) as head",
])
def test_causal_attention_narrowed_to_its_first_row_over_a_symbolic_length_trains(body):
    """narrow_rows leaves a causal self-attention read at row 0 as a one-row query against T keys, top-left
    aligned; its gradient refused that ("causal with different symbolic query and key lengths", at the user's
    line), so -O2, the default, failed to build the step that -O1 built. Both steps now give the same numbers."""
    src = (f"model m(x: float32[B, T, 8], y: int64[B]) -> (loss, logits) {{\n    {body}\n"
           "    loss = cross_entropy(logits, y)\n}\n")
    mod = driver.load(text=src, file="t.arch")
    cfg = config(loss="model", opt="adamw", lr=0.1)
    o1 = driver.build_train(mod, None, driver.CompileOptions(opt_level=1), cfg)
    o2 = driver.build_train(mod, None, driver.CompileOptions(), cfg)
    assert _rows(o2.step_model) > 0 and _rows(o1.step_model) == 0
    s1, s2 = runtime.session(o1.step_model), runtime.session(o2.step_model)
    for t in (2, 3, 6):
        feeds = runtime.random_feeds(s1, batch=3, dims={"T": t}, seed=t, high={"y": 3})
        names = [o.name for o in s1.get_outputs()]
        want = dict(zip(names, s1.run(None, feeds)))
        got = dict(zip([o.name for o in s2.get_outputs()], s2.run(None, feeds)))
        assert got.keys() == want.keys()
        for name in names:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
        start = next(numpy_helper.to_array(i) for i in o1.step_model.graph.initializer if i.name == "head.weight")
        assert np.abs(want["head.weight.new"] - start).max() > 0 and np.isfinite(want["loss"])
