"""scaled_dot_product_attention's dropout_p (torch's F.scaled_dot_product_attention(..., dropout_p=p)): the
attention weights dropped in a train step, as multihead_attention's dropout; nothing at inference. It was refused
as an unknown argument, even at torch's default 0.0 (attnvariants hunt)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

from .harness import compile_step, config, initial

SDPA = """
model m(x: float64[2, 5, 8]) -> y {
    q = x -> linear(8) as q -> reshape([2, 5, 2, 4]) -> permute([0, 2, 1, 3])
    k = x -> linear(8) as k -> reshape([2, 5, 2, 4]) -> permute([0, 2, 1, 3])
    v = x -> linear(8) as v -> reshape([2, 5, 2, 4]) -> permute([0, 2, 1, 3])
    y = scaled_dot_product_attention(q, k, v, dropout_p=0.5, is_causal=true) -> permute([0, 2, 1, 3])
    y = y -> reshape([2, 5, 8]) -> linear(3) as out
}
"""


def _step(p: float):
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=1.0), text=SDPA.replace("0.5", str(p)))
    sess = runtime.session(ct.step_model, "cpu")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 5, 8)), "labels": rng.standard_normal((2, 5, 3)),
             "seed": np.array(3, np.int64), "step": np.array(0, np.int64)}
    w = initial(ct)
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, {i.name: feeds.get(i.name, w.get(i.name)) for i in sess.get_inputs()})))
    return ct, w, feeds, out


def test_dropout_one_drops_every_attention_weight():
    ct, w, feeds, out = _step(1.0)
    y = w["out.weight"] @ np.zeros(8) + w["out.bias"]  # the attention gives 0 everywhere
    assert np.isclose(float(out["loss"]), float(np.mean((y - feeds["labels"]) ** 2)), rtol=1e-12)
    new_q = next(o for o, i in ct.info.state.items() if i == "q.weight")
    np.testing.assert_array_equal(out[new_q], w["q.weight"])  # no gradient reaches the projections


def test_dropout_is_drawn_in_training_and_absent_at_inference():
    _, _, _, dropped = _step(0.5)
    _, _, _, plain = _step(0.0)
    assert not np.isclose(dropped["loss"], plain["loss"]), "dropout is active in training"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 8))
    ys = [runtime.session(archdsl.compile_source(SDPA.replace("0.5", p)), "cpu").run(None, {"x": x})[0]
          for p in ("0.5", "0.0")]
    np.testing.assert_array_equal(*ys)


def test_dropout_p_outside_0_1_is_refused():
    with pytest.raises(archdsl.ArchError, match=r"dropout_p must be in \[0, 1\], got 1.5"):
        archdsl.check_source(SDPA.replace("0.5", "1.5"))
