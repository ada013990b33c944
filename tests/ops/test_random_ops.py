"""rand_like and randn_like: a numpy re-derivation of the hash (the exact numbers, both mixers), their
distribution, what the seed input does, that the passes neither merge nor fold them, and a train step whose
noise is the hash of the step's seed and step, against the same step computed in numpy."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import driver, runtime
from archdsl.diagnostics import ArchError

from .core_harness import NEWEST, covers

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
M64 = (1 << 64) - 1


def _splitmix(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & M64
    z = ((z ^ (z >> 27)) * _MIX2) & M64
    return z ^ (z >> 31)


def _squares32(ctr: int, key: int) -> int:
    y = x = (ctr * key) & M64
    z = (y + key) & M64
    for add in (y, z, y):
        x = (x * x + add) & M64
        x = ((x >> 32) | (x << 32)) & M64
    return ((x * x + z) & M64) >> 32


def _bits(n: int, seed: int, step: int, name: str, opset: int) -> list[int]:
    """The hash of (seed, step, the call's name, index), in Python integers: splitmix64 from opset 18 (which
    has BitwiseXor), Squares below it."""
    base = (seed * _MIX1 + step * _MIX2 + _splitmix(zlib.crc32(name.encode()))) & M64
    if opset < 18:
        key, top = ((base << 1) + 1) & M64, base & (1 << 63)
        return [(_squares32(2 * i + top, key) << 32) + _squares32(2 * i + 1 + top, key) for i in range(n)]
    return [_splitmix((i * _GOLDEN + base) & M64) for i in range(n)]


def reference(n: int, seed: int, step: int, name: str, kind: str, opset: int, low: int = 0, high: int = 1):
    z = _bits(n, seed, step, name, opset)
    if kind == "integer":
        return np.array([((v >> 24) * (high - low) >> 40) + low for v in z], np.int64)
    hi = np.array([v >> 40 for v in z], np.float32)
    if kind == "uniform":
        return hi * np.float32(2.0**-24)
    lo = np.array([(v >> 16) & (2**24 - 1) for v in z], np.float32)
    u1, u2 = (hi + np.float32(1)) * np.float32(2.0**-24), lo * np.float32(2.0**-24)
    return np.sqrt(np.log(u1) * np.float32(-2)) * np.cos(u2 * np.float32(2 * np.pi))


def _run(src: str, opt_level: int = 2, opset: int = NEWEST, **feeds):
    m = archdsl.compile_source(src, opt_level=opt_level, opset=opset)
    onnx.checker.check_model(m, full_check=True)
    sess = runtime.session(m, "cpu")
    return [sess.run(None, {**feeds, "seed": np.array(s, np.int64)}) for s in (feeds.pop("seeds", [0]))]


@covers("rand_like", "randn_like", "randint_like")
@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("call, kind, bounds", [("rand_like(x)", "uniform", ()), ("randn_like(x)", "normal", ()),
                                                ("randint_like(x, -3, 1000)", "integer", (-3, 1000))])
def test_the_numbers_are_the_hash_of_seed_name_and_index(call, kind, bounds, opset):
    src = f"model m(x: float32[B, 5]) -> y {{\n    y = {call} as noise\n}}\n"
    m = archdsl.compile_source(src, opset=opset)
    sess = runtime.session(m, "cpu")
    drawn = {}
    for seed in (0, 3, 2**40, -2**63, 2**40 - 2**63):  # the last two differ from 0 and 2**40 in the top bit alone
        y = sess.run(None, {"x": np.zeros((3, 5), np.float32), "seed": np.array(seed, np.int64)})[0]
        want = reference(15, seed, 0, "noise", kind, opset, *bounds).reshape(3, 5)
        np.testing.assert_allclose(y, want, rtol=2e-6, atol=2e-6)  # Log/Cos in onnxruntime vs numpy: last bits
        drawn[seed] = y
    # at opset 17 the key's shift dropped that bit: seeds s and s - 2**63 drew the same numbers (opsets hunt)
    assert not np.array_equal(drawn[0], drawn[-2**63]) and not np.array_equal(drawn[2**40], drawn[2**40 - 2**63])


@pytest.mark.parametrize("opset", [17, NEWEST])
def test_distribution_seed_and_dtypes(opset):
    """At opset 17 (no BitwiseXor) an Add in splitmix's place gave neighbours a correlation of 0.38."""
    src = ("model m(x: float32[B, 1000], i: int64[4]) -> (u, n, n2, h, k, t) {\n    u = rand_like(x)\n"
           "    n = randn_like(x)\n    n2 = randn_like(x)\n    h = randn_like(cast(x, \"float16\"))\n"
           "    k = rand_like(i, dtype=\"float64\")\n    t = randint_like(x, 7, dtype=\"int32\")\n}\n")
    x, i = np.zeros((200, 1000), np.float32), np.zeros(4, np.int64)
    (u, n, n2, h, k, t), (u1, *_) = _run(src, opset=opset, x=x, i=i, seeds=[5, 6])
    assert t.dtype == np.int32 and set(np.unique(t)) == set(range(7))
    assert np.abs(np.bincount(t.ravel()) / t.size - 1 / 7).max() < 0.003
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
    assert abs(n.mean()) < 0.005 and abs(n.std() - 1) < 0.005 and np.abs(n).max() <= 5.8
    assert abs((np.abs(n) < 1).mean() - 0.6827) < 0.003 and abs((np.abs(n) < 2).mean() - 0.9545) < 0.002
    assert abs(np.corrcoef(n.ravel(), n2.ravel())[0, 1]) < 0.01, "two calls draw apart (by their names)"
    assert abs(np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]) < 0.01, "neighbours are independent"
    assert abs(np.corrcoef(u.ravel(), u1.ravel())[0, 1]) < 0.01, "a new seed, new numbers"
    pairs = np.histogram2d(u.ravel()[:-1], u.ravel()[1:], 16)[0]
    assert ((pairs - pairs.mean()) ** 2 / pairs.mean()).sum() < 255 + 5 * np.sqrt(2 * 255), "pairs chi-square"
    assert h.dtype == np.float16 and k.dtype == np.float64 and k.shape == (4,)
    again = _run(src, opset=opset, x=x, i=i, seeds=[5])[0]
    assert all(np.array_equal(a, b) for a, b in zip(again, (u, n, n2, h, k, t))), "the same seed, the same numbers"


def test_streams_are_not_one_sequence_shifted_and_half_floats_stay_below_one():
    """The stream entered the hash as stream * GOLDEN, as the index does: the calls named gb and wui (crc32 925
    apart) shared 3171 of 4096 numbers, shifted by 925. Uniforms rounded to float16 reached 1.0 (2**-12 of
    them)."""
    src = ("model m(x: float32[B, 4096]) -> (a, b, h, g) {\n    a = randn_like(x) as gb\n    b = randn_like(x) as wui\n"
           "    h = rand_like(x, dtype=\"float16\")\n    g = cast(rand_like(x, dtype=\"bfloat16\"), \"float32\")\n}\n")
    assert (zlib.crc32(b"wui") - zlib.crc32(b"gb")) % 2**32 == 925
    m = archdsl.compile_source(src)
    a, b, h, g = runtime.session(m, "cpu").run(None, {"x": np.zeros((300, 4096), np.float32),
                                                      "seed": np.array(1, np.int64)})
    assert not np.isclose(a[:, 925:], b[:, :-925]).mean() > 0.01
    assert h.max() < 1 and h.min() >= 0 and len(np.unique(h)) == 2048  # every multiple of 2**-11
    assert g.max() < 1 and g.min() >= 0 and len(np.unique(g)) == 256


def test_the_passes_neither_merge_nor_fold_them():
    """cse took two randn_like(x) for one value; fold_constants would make randn_like of a constant one
    constant, the same for every seed. -O0 and -O2 give the same numbers (the streams are the nodes' names)."""
    src = ("model m(x: float32[B, 64]) -> (a, b, c, d) {\n    a = randn_like(x)\n    b = randn_like(x)\n"
           "    c = rand_like(tensor([1.0, 2.0, 3.0]))\n    d = rand_like(tensor([1.0, 2.0]), seed=3) as dn\n}\n")
    x = np.zeros((2, 64), np.float32)
    (a, b, c, d), (_, _, c2, d2) = _run(src, x=x, seeds=[0, 1])
    assert not np.array_equal(a, b)
    assert not np.array_equal(c, c2)
    np.testing.assert_array_equal(d, d2)  # its own constant seed
    np.testing.assert_allclose(d, reference(2, 3, 0, "dn", "uniform", NEWEST), rtol=1e-6)
    for got, want in zip(_run(src, opt_level=0, x=x)[0], (a, b, c, d)):
        np.testing.assert_array_equal(got, want)
    m = archdsl.compile_source(src)  # all constant, and still computed at run time, not stored
    assert not any(np.array_equal(onnx.numpy_helper.to_array(t), d) for t in m.graph.initializer)


def test_a_seed_of_ones_own_and_the_diagnostics():
    src = "model m(x: float32[B, 4], s: int64[]) -> y {\n    y = randn_like(x, seed=s) - randn_like(x, seed=s + 1)\n}\n"
    m = archdsl.compile_source(src)
    assert [i.name for i in m.graph.input] == ["x", "s"]
    for text, words in (
            ("model m(i: int64[4]) -> y {\n    y = randn_like(i)\n}\n", 'random numbers are floats, and x is int64'),
            ("model m(x: float32[4], seed: float32[]) -> y {\n    y = rand_like(x)\n}\n",
             "the model's input 'seed' is float32[], and a random call reads an int64 scalar"),
            ("model m(x: float32[4], s: int64[2]) -> y {\n    y = rand_like(x, seed=s)\n}\n",
             "seed must be an int64 scalar, got int64[2]"),
            ("model m(x: float32[4]) -> y {\n    y = randint_like(x, 5, 5)\n}\n",
             "high must be greater than low, got low=5, high=5"),
            ("model m(x: float32[4]) -> y {\n    y = randint_like(x, 2**25)\n}\n", "at most 2**24 values apart"),
            ("model m(x: float16[4]) -> y {\n    y = randint_like(x, 5000)\n}\n",
             '[0, 5000) does not fit float16 exactly; give dtype="int64"'),
            ("model m(x: bool[4]) -> y {\n    y = randint_like(x, 3)\n}\n", "[0, 3) does not fit bool exactly"),
            ("model m(x: int32[4]) -> y {\n    y = randint_like(x, 2**31, 2**31 + 2)\n}\n",
             '[2147483648, 2147483650) does not fit int32 exactly; give dtype="int64"')):
        with pytest.raises(ArchError, match=__import__("re").escape(words)):
            archdsl.check_source(text)


def test_a_train_step_draws_from_its_seed_and_step():
    """y = x W^T + b + randn_like(...): one SGD step of mse against labels, in numpy with the hash's noise for
    the step's (seed, step), equals the step model's update; the inference `seed` input is gone from the step
    (its own seed state and step replace it) and stays in the eval model."""
    from archdsl.autodiff import OptimConfig, TrainConfig
    text = ("model m(x: float32[B, 3]) -> y {\n    h = x -> linear(2) as fc\n"
            "    y = h + randn_like(h) as noise + randint_like(h, -1, 2) as k\n}\n")
    ct = driver.build_train(driver.load(text=text, file="t.arch"), None, driver.CompileOptions(),
                            TrainConfig(loss="mse", optimizer=OptimConfig("sgd"), lr=0.5))
    assert [i.name for i in ct.eval_model.graph.input][:2] == ["x", "seed"]
    ins = [i.name for i in ct.step_model.graph.input]
    assert ins.count("seed") == 1 and "step" in ins
    init = {t.name: onnx.numpy_helper.to_array(t) for t in ct.step_model.graph.initializer}
    w, bias = init["fc.weight"], init["fc.bias"]
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    for seed, step in ((0, 0), (0, 1), (7, 3)):
        out = dict(zip(names, sess.run(None, {"x": x, "labels": labels, "seed": np.array(seed, np.int64),
                                               "step": np.array(step, np.int64)})))
        eps = reference(8, seed, step, "noise", "normal", NEWEST).reshape(4, 2) + \
            reference(8, seed, step, "k", "integer", NEWEST, -1, 2).reshape(4, 2)
        err = (x @ w.T + bias + eps - labels) * (2 / labels.size)
        np.testing.assert_allclose(out["loss"], np.mean((x @ w.T + bias + eps - labels) ** 2), rtol=1e-5)
        np.testing.assert_allclose(out["fc.weight.new"], w - 0.5 * err.T @ x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["fc.bias.new"], bias - 0.5 * err.sum(0), rtol=1e-5, atol=1e-6)


def test_archdsl_train_feeds_a_vae_its_step_and_seed(tmp_path, capsys):
    """The train step's data inputs listed the inference `seed` (archdsl train asked the data for it)."""
    from archdsl.cli import main
    spec = tmp_path / "vae.arch"
    spec.write_text("model vae(x: float32[B, 8]) -> recon {\n    h = x -> linear(16) as enc -> relu\n"
                    "    mu = h -> linear(4) as mu\n    logvar = h -> linear(4) as logvar\n"
                    "    z = mu + exp(0.5 * logvar) * randn_like(mu)\n    recon = z -> linear(8) as dec\n}\n")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=x)
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
                 "--loss", "mse", "--epochs", "3", "--batch-size", "16", "--lr", "0.01", "--optimizer", "adam",
                 "-o", str(tmp_path / "w.npz")]) == 0
    said = capsys.readouterr()
    losses = [float(line.split("loss ")[1].split()[0]) for line in (said.out + said.err).splitlines()
              if line.startswith("epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert main(["run", str(spec), "--weights", str(tmp_path / "w.npz")]) == 0


def test_seed_inputs_nothing_else_reads_leave_the_model_and_the_step():
    """A train step kept an input read only by seed= (archdsl train asked the data for it); a random call the
    passes dropped left a `seed` input nothing read, which onnxruntime still required."""
    from archdsl.autodiff import OptimConfig, TrainConfig
    text = ("model m(x: float32[B, 8], s: int64[]) -> y {\n    h = x -> linear(8) as fc\n"
            "    y = h + randn_like(h, seed=s)\n}\n")
    ct = driver.build_train(driver.load(text=text, file="t.arch"), None, driver.CompileOptions(),
                            TrainConfig(loss="mse", optimizer=OptimConfig("sgd"), lr=0.1))
    assert "s" not in ct.info.data_inputs and "s" not in [i.name for i in ct.step_model.graph.input]
    dead = archdsl.compile_source("model m(x: float32[B, 8]) -> y {\n    n = randn_like(x)\n    y = x * 2\n}\n")
    assert [i.name for i in dead.graph.input] == ["x"]
    kept = archdsl.compile_source("model m(x: float32[B, 8]) -> y {\n    n = randn_like(x)\n    y = x * 2\n}\n",
                                  opt_level=0)
    assert [i.name for i in kept.graph.input] == ["x", "seed"]  # -O0 keeps the call, so its seed
    with pytest.raises(ArchError, match="has the name of an input \\(the int64 `seed` a model that draws random"):
        archdsl.check_source("model m(x: float32[B, 8]) -> seed {\n    seed = randn_like(x)\n}\n")


def test_archdsl_run_draws_the_seed_from_31_bits():
    m = archdsl.compile_source("model m(x: float32[B, 8]) -> y {\n    y = randn_like(x)\n}\n")
    seeds = {int(runtime.random_feeds(runtime.session(m, "cpu"), seed=s)["seed"]) for s in range(20)}
    assert len(seeds) == 20  # it drew from {0, 1}, as for integer data


def test_randint_like_takes_torchs_forms():
    """A one-value range was refused for integer dtypes ('does not fit int64; give dtype="int64"'), high= alone
    was 'missing low', a bool tensor's [0, 2) was refused."""
    src = ("model m(x: float32[B, 6], b: bool[6]) -> (z, h, t) {\n    z = randint_like(x, 5, 6, dtype=\"int32\")\n"
           "    h = randint_like(x, high=3, dtype=\"int64\")\n    t = randint_like(b, 2)\n}\n")
    (z, h, t), = _run(src, x=np.zeros((50, 6), np.float32), b=np.zeros(6, bool))
    assert z.dtype == np.int32 and (z == 5).all()
    assert set(np.unique(h)) == {0, 1, 2}
    assert t.dtype == np.bool_
    with pytest.raises(ArchError, match="give high"):
        archdsl.check_source("model m(x: float32[4]) -> y {\n    y = randint_like(x)\n}\n")


def test_train_steps_of_models_with_dead_or_output_seeds_build():
    """-O2 dropped a dead random call, then the step's seed state: 'internal: optimizing the train step removed
    the state input'; an input read by seed= and also an output: 'internal: output 's' is not defined' (now the
    message any input output as it is gets); a declared `seed` read as data: a message about a parameter."""
    from archdsl.autodiff import OptimConfig, TrainConfig
    cfg = TrainConfig(loss="mse", optimizer=OptimConfig("sgd"), lr=0.1)

    def build(text):
        return driver.build_train(driver.load(text=text, file="t.arch"), None, driver.CompileOptions(), cfg)
    dead = build("model m(x: float32[B, 4]) -> y {\n    n = randn_like(x)\n    y = x -> linear(3) as fc\n}\n")
    assert "seed" not in dead.info.state_inputs
    with pytest.raises(ArchError, match="the train step's output 's' would have the name of an input"):
        build("model m(x: float32[B, 4], s: int64[]) -> (y, s) {\n    h = x -> linear(4) as fc\n"
              "    y = h + randn_like(h, seed=s)\n}\n")  # as for any input a model outputs as it is
    both = build("model m(x: float32[B, 4], s: int64[]) -> y {\n    h = x -> linear(4) as fc\n"
                 "    y = h + cast(randint_like(s, 10, seed=s), \"float32\")\n}\n")
    assert "s" in both.info.data_inputs  # read as the call's tensor too: kept ("reads a value before it is defined")
    with pytest.raises(ArchError, match="a model input is named 'seed', which the train step takes as its own"):
        build("model m(x: float32[B, 4], seed: int64[]) -> y {\n    h = x -> linear(4) as fc\n"
              "    y = h + cast(seed, \"float32\") + randn_like(h)\n}\n")


def test_one_label_given_to_two_random_calls_draws_two_streams():
    """A block's `randn_like(mu) as eps` called twice, or a loop's `rand_like(x) as r`, drew the same numbers
    each time: the stream is keyed by the node's name, which the label made the same (no parameter to refuse
    the second). The second is eps#2."""
    src = ("block sample(mu) { return mu + randn_like(mu) as eps }\n"
           "model m(x: float32[B, 4]) -> (z1, z2, r) {\n    z1 = sample(x)\n    z2 = sample(x)\n"
           "    l = []\n    for i in range(2) { l = l + [rand_like(x) as u] }\n    r = l[0] - l[1]\n}\n")
    model = archdsl.compile_source(src)
    z1, z2, r = runtime.session(model).run(None, {"x": np.zeros((3, 4), np.float32), "seed": np.array(3)})
    assert not np.allclose(z1, z2) and np.abs(r).min() > 0
    assert {n.name.split("/")[0] for n in model.graph.node} >= {"eps", "eps#2", "u", "u#2"}


def test_one_dropout_label_used_twice_draws_two_masks_in_a_train_step():
    from archdsl.autodiff import OptimConfig, TrainConfig
    src = ("model m(x: float32[B, 64]) -> loss {\n    h = x -> linear(64) as fc\n"
           "    a = h -> dropout(0.5) as drop\n    b = h -> dropout(0.5) as drop\n    loss = mean((a - b) ** 2)\n}\n")
    ct = driver.build_train(driver.load(text=src), None, driver.CompileOptions(),
                            TrainConfig(loss="model", optimizer=OptimConfig("sgd"), lr=0.1))
    sess = runtime.session(ct.step_model)
    feeds = runtime.random_feeds(sess, 4, {}, seed=0)
    assert float(sess.run(["loss"], feeds)[0]) > 0  # two masks: a - b is not zero everywhere


@pytest.mark.parametrize("shape", ["2, 4, 8", "B, 4, 8"])
def test_random_numbers_shaped_like_an_empty_slice(shape):
    """Their Reshape read the 0 as "copy this dim": the model failed ONNX's checker (static sizes) or
    onnxruntime ("dimension with value zero exceeds", symbolic ones)."""
    model = archdsl.compile_source(f"model m(x: float32[{shape}]) -> y {{\n    y = randn_like(x[:, :, 3:3])\n}}\n")
    onnx.checker.check_model(model, full_check=True)
    (y,) = runtime.session(model).run(None, {"x": np.ones((2, 4, 8), np.float32), "seed": np.array(0)})
    assert y.shape == (2, 4, 0)


def test_randint_over_a_large_range_is_uniform():
    """24 bits scaled to a range of 3 * 2**22 gave each value floor or ceil of 2**24 / range patterns: one value
    in three twice as likely as the others (vae hunt); 40 bits leave 2**-16 of that."""
    src = "model m(x: float32[B, 1000]) -> r {\n    r = randint_like(x, 12582912)\n}\n"
    r, = _run(src, x=np.zeros((400, 1000), np.float32))[0]
    assert abs((r % 3 == 0).mean() - 1 / 3) < 0.003 and 0 <= r.min() and r.max() < 12582912
