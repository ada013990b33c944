"""The dropout mask op of train steps (autodiff.dropout_mask): reproducible from (seed, step), the kept fraction
and scale, rows and neighbours independent, and two layers' streams not one mask shifted."""

from __future__ import annotations

import numpy as np

from archdsl import driver, runtime

from .harness import DROPOUT, batches, compile_step, config


def test_dropout_mask_comes_from_seed_and_step():
    ct, _ = compile_step(None, config(opt="sgd", lr=0.1), text=DROPOUT)
    sess = runtime.session(ct.step_model, "cpu")
    feeds = batches(ct, 1, 256, 3)[0]
    names = [o.name for o in sess.get_outputs()]

    def loss(**extra):
        return float(dict(zip(names, sess.run(None, {**feeds, **{k: np.array(v) for k, v in extra.items()}})))["loss"])

    base = loss(seed=np.int64(0), step=np.int64(0))
    assert loss(seed=np.int64(0), step=np.int64(0)) == base, "reproducible from its inputs"
    assert loss(seed=np.int64(1), step=np.int64(0)) != base
    assert loss(seed=np.int64(0), step=np.int64(1)) != base
    # the mask itself: its kept fraction and the inverted-dropout scale
    from archdsl.autodiff.train_ops import _dropout_lower  # noqa: F401  (the op is what we test below)
    g = driver.check_source("model m(x: float32[B, 4096]) -> y { y = x -> dropout(0.25) }")
    from archdsl.autodiff import GradBuilder
    from archdsl.ir import check
    from archdsl.lower import lower_graph
    from archdsl.ops import Init, ParamSpec
    from archdsl.types import DType
    seed = g.add_param("seed", ParamSpec("seed", (), Init("zeros"), False), DType.int64)
    step = g.add_param("step", ParamSpec("step", (), Init("zeros"), False), DType.int64)
    b = GradBuilder(g, None)
    mask = b.op("autodiff.dropout_mask", g.inputs[0], seed, step, p=0.25, stream=7)
    g.outputs = [("mask", mask)]
    check(g)
    for opset in (17, 21):  # below 18 (no BitwiseXor) an Add in splitmix's place correlated neighbours
        m = lower_graph(g, opset=opset).model
        out = runtime.session(m, "cpu").run(None, {"x": np.zeros((8, 4096), np.float32)})[0]
        kept = out != 0
        assert abs(kept.mean() - 0.75) < 0.01
        assert np.allclose(out[kept], 1 / 0.75)
        assert 0.5 < (kept[0] == kept[1]).mean() < 0.7, "rows draw independently"
        flat = kept.ravel().astype(float)
        assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.02, "neighbours draw independently"


def test_two_dropout_streams_are_not_one_mask_shifted():
    """A dropout's key was stream * GOLDEN, and the hash reads index * GOLDEN + key: stream s + d's element j was
    stream s's element j + d, every seed and step (two of BERT-base's dropouts, 4,975,877 apart, shared a
    shifted mask over a batch). The stream is mixed now, as rand_like's is."""
    g = driver.check_source("model m(x: float32[B, 65536]) -> y { y = x }")
    from archdsl.autodiff import GradBuilder
    from archdsl.ir import check
    from archdsl.lower import lower_graph
    from archdsl.ops import Init, ParamSpec
    from archdsl.types import DType
    seed = g.add_param("seed", ParamSpec("seed", (), Init("zeros"), False), DType.int64)
    step = g.add_param("step", ParamSpec("step", (), Init("zeros"), False), DType.int64)
    b = GradBuilder(g, None)
    d = 1000
    g.outputs = [(n, b.op("autodiff.dropout_mask", g.inputs[0], seed, step, p=0.5, stream=s))
                 for n, s in (("a", 7), ("b", 7 + d))]
    check(g)
    for opset in (17, 21):
        a, bb = (o != 0 for o in runtime.session(lower_graph(g, opset=opset).model, "cpu").run(
            None, {"x": np.zeros((1, 65536), np.float32)}))
        for shift in (d, -d, 0):
            x, y = (a[0, shift:], bb[0, :65536 - shift]) if shift >= 0 else (a[0, :shift], bb[0, -shift:])
            assert 0.48 < (x == y).mean() < 0.52, (opset, shift)
