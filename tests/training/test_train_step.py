"""The train-step model as a file other runtimes can drive: full ONNX check, ONNX's shape inference agreeing,
the first step runnable from data alone, the state mapping in metadata, dropout drawn from inputs, and
diagnostics for what cannot be trained."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from archdsl import driver, runtime
from archdsl.diagnostics import ArchError
from archdsl.training import TRAIN_STATE_KEY

from .harness import DROPOUT, batches, compile_step, config, initial, ort_steps, rel, torch_steps

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    "mlp": (str(ROOT / "specs/mlp.arch"), None),
    "lenet5": (str(ROOT / "specs/lenet5.arch"), None),
    "resnet18": (str(Path(__file__).parent / "specs/resnet18_narrow.arch"), None),
    "gpt2": (str(ROOT / "specs/gpt2.arch"), ["n_layer=2", "n_head=2", "n_embd=32", "vocab=16", "n_positions=16"]),
    "vit": (str(ROOT / "specs/vit.arch"), ["image=16", "patch=4", "layers=2", "heads=2", "hidden=16", "mlp_dim=32",
                                           "classes=10"]),
}


def _dims(vi):
    return [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", list(SPECS))
def test_step_model_is_standard_onnx_and_runs_from_data_alone(name):
    spec, defines = SPECS[name]
    ct, _ = compile_step(spec, config(opt="adamw", lr=1e-3), defines)
    m = ct.step_model
    onnx.checker.check_model(m, full_check=True)
    assert {o.domain for o in m.opset_import} == {""}, "only the standard ONNX domain"
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    ours = {o.name: _dims(o) for o in m.graph.output}
    for vi in inferred.graph.output:
        assert _dims(vi) == ours[vi.name]
    state = json.loads(next(p.value for p in m.metadata_props if p.key == TRAIN_STATE_KEY))
    inputs = {i.name: i for i in m.graph.input}
    outputs = {o.name: o for o in m.graph.output}
    inits = {t.name for t in m.graph.initializer}
    for out, inp in state.items():
        assert inp in inputs and inp in inits, f"{inp} is an input with a default"
        assert outputs[out].type == inputs[inp].type
    assert set(state.values()) >= set(ct.info.params) | set(ct.info.buffers) | {"step"} and "lr" in inits
    assert [i.name for i in m.graph.input][:len(ct.info.data_inputs) + 1] == ct.info.data_inputs + ["labels"]
    assert next(o.name for o in m.graph.output) == "loss"
    if name == "gpt2":
        assert "seed" in inputs, "dropout is active and reads a seed"
    feeds = batches(ct, 1, 2, 10)[0]
    sess = runtime.session(m, "cpu")
    res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))  # data and labels only
    assert np.isfinite(res["loss"]) and res["step.new"] == 1
    nxt = {inp: res[out] for out, inp in state.items()}
    res2 = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**feeds, **nxt})))
    assert res2["step.new"] == 2 and res2["loss"] != res["loss"]
    evm = ct.eval_model
    onnx.checker.check_model(evm, full_check=True)
    names = {i.name for i in evm.graph.input}
    assert names >= set(ct.info.params) | set(ct.info.buffers), "the eval model reads the trained state"
    ev = runtime.session(evm, "cpu")
    data = {k: v for k, v in feeds.items() if k in ct.info.data_inputs}
    before = ev.run(None, data)[0]
    after = ev.run(None, {**data, **{k: v for k, v in nxt.items() if k in names}})[0]
    assert before.shape == after.shape and not np.allclose(before, after)


def test_deterministic_output():
    spec, _ = SPECS["lenet5"]
    a, _ = compile_step(spec, config())
    b, _ = compile_step(spec, config())
    assert a.step_model.SerializeToString(deterministic=True) == b.step_model.SerializeToString(deterministic=True)


def _mean_square_difference(block: str, body: str) -> float:
    """The loss mean((a - b) ** 2) of one train step of a model whose body draws a and b from x."""
    text = (block + "model m(x: float32[B, 64]) -> loss {\n" + body + "    loss = mean((a - b) ** 2 * parameter([64], "
            "init=\"ones\") as w)\n}\n")
    ct, _ = compile_step(None, config(loss="model", opt="sgd", lr=0.1), text=text)
    sess = runtime.session(ct.step_model, "cpu")
    feeds = {**batches(ct, 1, 4, 2)[0], "seed": np.array(0, np.int64), "step": np.array(0, np.int64)}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return float(out["loss"])


def test_two_dropouts_with_one_label_draw_masks_of_their_own():
    """`dropout(0.5) as d` twice (legal: a dropout has no parameters) seeded both by the name d: the same
    mask, so a - b was 0 in every step; so was a labelled dropout in a block called twice."""
    for body in ("    a = x -> dropout(0.5) as d\n    b = x -> dropout(0.5) as d\n",
                 "    a = noisy(x)\n    b = noisy(x)\n"):
        assert _mean_square_difference("block noisy(x) {\n    return x -> dropout(0.5) as d\n}\n", body) > 0.1, body


@pytest.mark.parametrize("body", [
    "    a = randn_like(x)\n    b = randn_like(x)\n",
    "    a = rand_like(x)\n    b = rand_like(x)\n",
    "    a = noise(x)\n    b = noise(x)\n",  # one call in a block, called twice
    "    q = reshape(x, [-1, 1, 8, 8])\n"
    "    a = scaled_dot_product_attention(q, q, q, dropout_p=0.5) -> reshape([-1, 64])\n"
    "    b = scaled_dot_product_attention(q, q, q, dropout_p=0.5) -> reshape([-1, 64])\n",
])
def test_two_random_draws_of_one_shape_in_a_step_differ(body):
    """Each random call and each attention dropout draws from its own stream in the train step: one shared by
    all (a VAE's two noise draws the same numbers, a - b = 0) passed every other test (muttrain2 hunt)."""
    assert _mean_square_difference("block noise(x) {\n    return randn_like(x)\n}\n", body) > 0.1, body


DROP_PATH = """
model residual(x: float32[B, 3, 4]) -> y {
    h = x -> linear(4) as fc -> drop_path(0.5)
    y = x + h
}
"""


def test_drop_path_drops_whole_examples_and_only_their_gradient():
    """drop_path(0.5) in the step: each example's branch is zero or doubled, as a whole, about half of them
    (and other draws at another step); the weight update is torch's for that mask (read back from the step's
    own output); an inference build has no node for it."""
    torch = pytest.importorskip("torch")
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=DROP_PATH)
    assert not [n for n in ct.eval_model.graph.node if n.op_type in ("Identity", "Mul")]
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    feeds = batches(ct, 1, 256, 3)[0]
    init = initial(ct)
    out = dict(zip(names, sess.run(None, feeds)))
    h = feeds["x"] @ init["fc.weight"].T + init["fc.bias"]
    branch = out["y"] - feeds["x"]
    dropped = np.abs(branch).reshape(256, -1).max(1) < 1e-6
    assert 0.4 < dropped.mean() < 0.6
    np.testing.assert_allclose(branch[~dropped], 2 * h[~dropped], rtol=1e-5, atol=1e-6)
    again = dict(zip(names, sess.run(None, {**feeds, "step": np.array(1, np.int64)})))
    assert ((np.abs(again["y"] - feeds["x"]).reshape(256, -1).max(1) < 1e-6) != dropped).any()
    w = {k: torch.tensor(init[k], requires_grad=True) for k in ("fc.weight", "fc.bias")}
    mask = torch.tensor((~dropped).astype(np.float32) * 2).reshape(256, 1, 1)
    y = torch.from_numpy(feeds["x"]) + torch.nn.functional.linear(torch.from_numpy(feeds["x"]), *w.values()) * mask
    torch.nn.functional.mse_loss(y, torch.from_numpy(feeds["labels"])).backward()
    for k, v in w.items():
        np.testing.assert_allclose(out[k + ".new"], init[k] - 0.1 * v.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("op", ["dropout", "drop_path"])
def test_dropping_everything_is_torchs_times_zero(op):
    """p = 1 (torch allows it; its train-mode dropout is then x * 0): the step's branch is zero and the layer
    before gets no gradient; the inference model keeps the branch (the identity), as torch's eval mode."""
    text = DROP_PATH.replace("drop_path(0.5)", f"{op}(1.0)")
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=text)
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    feeds = batches(ct, 1, 8, 3)[0]
    init = initial(ct)
    out = dict(zip(names, sess.run(None, feeds)))
    np.testing.assert_array_equal(out["y"], feeds["x"])
    np.testing.assert_array_equal(out["fc.weight.new"], init["fc.weight"])
    np.testing.assert_array_equal(out["fc.bias.new"], init["fc.bias"])
    eval_out = runtime.session(ct.eval_model, "cpu").run(None, {"x": feeds["x"], **{
        k: init[k] for k in ("fc.weight", "fc.bias") if k in {i.name for i in ct.eval_model.graph.input}}})[0]
    h = feeds["x"] @ init["fc.weight"].T + init["fc.bias"]
    np.testing.assert_allclose(eval_out, feeds["x"] + h, rtol=1e-6, atol=1e-6)


HEAVISIDE = """
model m(x: float32[B, 4]) -> y {
    y = x -> linear(4) as fc1 -> heaviside -> linear(2) as fc2
}
"""


def test_op_without_gradient_rule_on_the_path_is_a_diagnostic():
    with pytest.raises(ArchError) as e:
        compile_step(None, config(), text=HEAVISIDE)
    msg = e.value.message
    assert "heaviside" in msg and "no gradient rule" in msg and "'fc1.weight'" in msg
    assert e.value.span is not None and e.value.span.line == 3


def test_op_without_gradient_rule_names_only_the_parameters_behind_it():
    """The message listed the parameters downstream of the node too ('fc1.weight', 'fc1.bias', 'fc2.weight'
    and 3 more): only those its inputs depend on are why it is on the path."""
    src = ("model m(x: float32[B, 4]) -> y {\n    h = x -> linear(4) as fc0 -> relu -> linear(4) as fc1\n"
           "    y = (h -> heaviside -> linear(4) as fc2) + (x -> linear(4) as side) -> linear(2) as out\n}\n")
    with pytest.raises(ArchError) as e:
        compile_step(None, config(), text=src)
    msg = e.value.message
    assert "on the path from 'fc0.weight', 'fc0.bias', 'fc1.weight' and 1 more to the loss" in msg, msg
    assert e.value.span is not None and e.value.span.line == 3


@pytest.mark.parametrize("name, accumulate", [("labels", 1), ("apply", 2), ("seed", 1), ("lr", 1), ("micro", 2)])
def test_a_parameter_named_as_an_input_of_the_step_is_a_diagnostic(name, accumulate):
    """labels and apply became one graph input with the step's own (float weights read as int64 targets: a model
    the checker refuses), seed a wrong-shaped weight, and lr said so without pointing at the parameter."""
    src = f"model m(x: float32[B, 4]) -> y {{\n    let w = parameter([4]) as {name}\n    y = (x * w) -> linear(3)\n}}\n"
    with pytest.raises(ArchError) as e:
        compile_step(None, dataclasses.replace(config(), accumulate=accumulate), text=src)
    assert f"parameter '{name}' has the name of an input of the train step" in e.value.message
    assert e.value.span is not None and e.value.span.line == 2


@pytest.mark.parametrize("name, words", [
    ("loss", "the train step's output 'loss' would have the name of an input"),
    ("w.new", "the train step's output 'w.new' would have the name of an input"),
    ("w.exp_avg", "optimizer state 'w.exp_avg' has the name of a model parameter")])
def test_a_parameter_named_as_the_steps_state_or_output_is_shown_where_it_is_made(name, words):
    """These said `error:` with no line: which of the spec's parameters, the message did not show."""
    src = (f'model m(x: float32[B, 4]) -> y {{\n    let w = parameter([4]) as "w"\n    let v = parameter([4]) as '
           f'"{name}"\n    y = (x * w * v) -> linear(3)\n}}\n')
    with pytest.raises(ArchError) as e:
        compile_step(None, config(opt="adam"), text=src)
    assert words in e.value.message and e.value.span is not None and e.value.span.line == 3


def test_a_model_output_named_as_an_input_of_the_step_is_shown_where_it_is_made():
    """An output `lr` beside the one trained: the step's own lr parameter was found, and had no line."""
    src = "model m(x: float32[B, 4]) -> (y, lr) {\n    y = x -> linear(3)\n    lr = y * 2.0\n}\n"
    with pytest.raises(ArchError) as e:
        compile_step(None, dataclasses.replace(config(), output="y"), text=src)
    assert "output 'lr' would have the name of an input" in e.value.message and e.value.span.line == 3
    src = "model m(x: float32[B, 4], t: float32[B, 3]) -> (y, t) {\n    y = x -> linear(3)\n}\n"  # passed through
    with pytest.raises(ArchError) as e:
        compile_step(None, dataclasses.replace(config(), output="y"), text=src)
    assert "output 't' would have the name of an input" in e.value.message and e.value.span.line == 1
    src = "model m(x: float32[B, 4], lr: float32[B, 4]) -> y {\n    y = (x + lr) -> linear(3)\n}\n"  # an input
    with pytest.raises(ArchError) as e:
        compile_step(None, config(), text=src)
    assert "a model input is named 'lr'" in e.value.message and e.value.span.line == 1
    for name, cfg in (("apply", dataclasses.replace(config(), accumulate=2)), ("loss", config())):  # these two
        with pytest.raises(ArchError) as e:  # had no line (tabular hunt)
            compile_step(None, cfg, text=src.replace("lr", name))
        assert f"'{name}'" in e.value.message and e.value.span is not None and e.value.span.line == 1


def test_cross_entropy_on_a_symbolic_class_dim_is_refused_at_build_time():
    """torch's [B, C, T] logits under --loss cross_entropy: the classes are taken on the last dim, T, which is
    symbolic, so no data check could see that labels [B, C] were meant for dim 1; refused when the step is built,
    saying which dim it took and how to choose; the two ways it names both build."""
    conv = "model m(x: float32[B, 16, T]) -> logits {\n    logits = x -> conv1d(10, 3, padding=1) as head%s\n}\n"
    with pytest.raises(ArchError) as e:
        compile_step(None, config(), text=conv % "")
    assert e.value.message.startswith(
        "cross_entropy takes the classes on the last dim of output 'logits' (float32[B, 10, T]: T), a symbolic dim, "
        "where a class count is a fixed size: for torch's layout, classes on dim 1 (10 here), end the spec with "
        "permute([0, 2, 1]); or compute the loss in the spec with the class axis chosen (an output named loss = "
        "cross_entropy(logits, targets, axis=1), targets an input of the model)"), e.value.message
    assert e.value.span is not None and e.value.span.line == 2
    with pytest.raises(ArchError, match=r"output 'logits' \(float32\[B, T\]: T\), a symbolic dim, where a class "
                                        r"count is a fixed size; or compute"):
        compile_step(None, config(), text="model m(x: float32[B, T]) -> logits {\n"
                                          "    logits = x * parameter([1]) as s\n}\n")
    compile_step(None, config(), text=conv % " -> permute([0, 2, 1])")
    compile_step(None, config(loss=None), text="model m(x: float32[B, 16, T], y: int64[B, T]) -> (loss, logits) {\n"
                 "    logits = x -> conv1d(10, 3, padding=1) as head\n    loss = cross_entropy(logits, y, axis=1)\n}\n")


def test_a_loss_no_parameter_reaches_is_a_diagnostic():
    """eq passes no gradient (as in torch): with nothing else the optimizer pass removed the unused lr and the
    build failed with 'internal: optimizing the train step removed the state input'."""
    src = "model m(x: float32[B, 4]) -> y {\n    h = x -> linear(3) as fc\n    y = cast(eq(h, 1.0), \"float32\")\n}\n"
    with pytest.raises(ArchError, match="the loss does not depend on any trainable parameter") as e:
        compile_step(None, config(loss="mse"), text=src)
    assert e.value.span is not None and e.value.span.line == 3


def test_op_without_gradient_rule_off_the_path_is_fine():
    ct, _ = compile_step(None, config(), text="model m(x: float32[B, 4]) -> y { y = x -> heaviside -> linear(2) }")
    onnx.checker.check_model(ct.step_model, full_check=True)


@pytest.mark.parametrize("bad,words", [
    ({"opt": "adam", "lr": 0.1, "nesterov": True}, "nesterov"),
    ({"opt": "sgd", "lr": -1.0}, "learning rate"),
    ({"opt": "sgd", "lr": float("inf")}, "0 or more and finite"),  # trained to nan at the second epoch
    ({"opt": "sgd", "lr": float("nan")}, "0 or more and finite"),
    ({"opt": "sgd", "lr": 0.1, "momentum": float("nan")}, "momentum must be >= 0 and finite, got nan"),  # nan passed
    ({"opt": "sgd", "lr": 0.1, "betas": (0.5, 0.5)}, "adam/adamw settings"),  # ignored before
    ({"opt": "sgd", "lr": 0.1, "eps": 0.1}, "adam/adamw settings"),
    ({"opt": "adamw", "lr": 0.1, "weight_decay": float("inf")}, "weight decay must be >= 0 and finite, got inf"),
    ({"loss": "mse", "label_smoothing": 0.1}, "label smoothing"),
    ({"loss": "hinge"}, "unknown loss"),
])
def test_bad_settings_are_diagnostics(bad, words):
    with pytest.raises(ArchError, match=words):
        compile_step(str(ROOT / "specs/mlp.arch"), config(**bad))


def test_labels_name_is_reserved():
    with pytest.raises(ArchError, match="labels"):
        compile_step(None, config(), text="model m(labels: float32[B, 4]) -> y { y = labels -> linear(2) }")


@pytest.mark.parametrize("name", ["lenet5", "gpt2"])
def test_oldest_opset(name):
    """Opset 17: no BitwiseXor for the dropout hash, LayerNormalization but no Gelu; still standard ONNX."""
    spec, defines = SPECS[name]
    mod = driver.load(spec, defines=defines)
    ct = driver.build_train(mod, None, driver.CompileOptions(opset=17), config(opt="sgd", lr=0.1, momentum=0.9))
    assert ct.step_model.opset_import[0].version == 17
    onnx.checker.check_model(ct.step_model, full_check=True)
    feeds = batches(ct, 1, 2, 10)[0]
    out = runtime.session(ct.step_model, "cpu").run(["loss"], feeds)[0]
    assert np.isfinite(out)


ATTENTION_DROPOUT = """
model m(x: float64[2, 5, 8]) -> y {
    y = x -> multihead_attention(8, 2, dropout=0.5, causal=true) as attn -> linear(3) as out
}
"""



def test_attention_dropout_one_drops_every_weight():
    """dropout=1.0 was refused ("must be in [0, 1)") where torch's MultiheadAttention takes it: every attention
    weight is dropped, so the layer gives its out-projection's bias (a mask would scale by 1 / (1 - p))."""
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=1.0),
                         text=ATTENTION_DROPOUT.replace("dropout=0.5", "dropout=1.0"))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 5, 8)), "labels": rng.standard_normal((2, 5, 3))}
    sess = runtime.session(ct.step_model, "cpu")
    assert "seed" not in {i.name for i in sess.get_inputs()}, "nothing is drawn"
    w = initial(ct)
    loss = sess.run(["loss"], {i.name: feeds.get(i.name, w.get(i.name)) for i in sess.get_inputs()})[0]
    y = w["out.weight"] @ w["attn.out_proj.bias"] + w["out.bias"]
    assert np.isclose(float(loss), float(np.mean((y - feeds["labels"]) ** 2)), rtol=1e-12)

def test_the_step_models_dropout_seed_is_the_builds_seed(tmp_path):
    """`build --train --seed 1` wrote a seed of 0 into the step model: every seed gave the same masks to a
    program that drives the step itself (`archdsl train` feeds its own)."""
    from archdsl.cli import main
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.eye(64, dtype=np.float32), "fc.bias": np.zeros(64, np.float32),
                                    "out.weight": rng.standard_normal((3, 64), np.float32),
                                    "out.bias": np.zeros(3, np.float32)})
    (tmp_path / "d.arch").write_text(DROPOUT)
    losses = []
    for seed in ("0", "1", "1"):
        out = tmp_path / f"s{seed}.onnx"
        assert main(["build", str(tmp_path / "d.arch"), "--train", "--optimizer", "sgd", "--seed", seed,
                     "--weights", str(tmp_path / "w.npz"), "-o", str(out)]) == 0
        seeds = [t for t in onnx.load(out).graph.initializer if t.name == "seed"]
        assert onnx.numpy_helper.to_array(seeds[0]) == int(seed)
        feeds = {"x": np.ones((8, 64), np.float32), "labels": np.zeros(8, np.int64)}
        losses.append(float(runtime.session(out, "cpu").run(["loss"], feeds)[0]))
    assert losses[0] != losses[1] and losses[1] == losses[2]

def test_attention_dropout_trains_and_its_gradient_matches_finite_differences():
    """Attention dropout drops softmax weights (torch's place for it), drawn from seed and step; the step's
    gradient (SGD, lr 1: grad = old - new) is the derivative of the very loss the step computes."""
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=1.0), text=ATTENTION_DROPOUT)
    onnx.checker.check_model(ct.step_model, full_check=True)
    assert "seed" in {i.name for i in ct.step_model.graph.input}
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 5, 8)), "labels": rng.standard_normal((2, 5, 3)),
             "seed": np.array(3, np.int64), "step": np.array(0, np.int64)}

    def run(**over):
        return dict(zip(names, sess.run(None, {**feeds, **over})))

    base = run()
    assert run(seed=np.array(4, np.int64))["loss"] != base["loss"], "the mask comes from the seed"
    w0 = initial(ct)["attn.in_proj_weight"]
    out_name = next(o for o, i in ct.info.state.items() if i == "attn.in_proj_weight")
    grad = w0 - base[out_name]
    v = rng.standard_normal(w0.shape)
    eps = 1e-5
    fd = (run(**{"attn.in_proj_weight": w0 + eps * v})["loss"] - run(**{"attn.in_proj_weight": w0 - eps * v})["loss"])
    assert np.isclose(float(np.sum(grad * v)), float(fd) / (2 * eps), rtol=1e-6, atol=1e-9)
    no_drop = compile_step(None, config(loss="mse", opt="sgd", lr=1.0),
                           text=ATTENTION_DROPOUT.replace("dropout=0.5", "dropout=0.0"))[0]
    plain = dict(zip(names, runtime.session(no_drop.step_model, "cpu").run(
        None, {k: v for k, v in feeds.items() if k != "seed"})))
    assert not np.isclose(plain["loss"], base["loss"]), "dropout is active in training"


CONV_GEMM = {  # convs with >= 16 input channels train as GEMMs (autodiff/conv_train.py); the 3-channel stem keeps Conv
    "2d": """
model m(x: float32[B, 3, 11, 14]) -> y {
    y = x -> conv2d(16, 3, padding=1) as stem -> relu
          -> conv2d(18, 3, stride=2, padding=1, bias=false) as a -> batchnorm as bn -> relu
          -> conv2d(16, [3, 2], dilation=[2, 1], padding="same") as b -> relu
          -> conv2d(16, 3, padding=1) as w1 -> relu -> conv2d(20, 3, padding=[2, 0]) as w2
          -> conv2d(24, 1, stride=2, bias=false) as c
          -> conv2d(16, [2, 3], stride=[1, 2], padding=[2, 0]) as d
          -> global_avgpool -> flatten -> linear(5) as fc
}""",
    "1d": """
model m(x: float32[B, 16, 13]) -> y {
    y = x -> conv1d(20, 5, stride=3, padding=2) as a -> relu -> conv1d(16, 3, dilation=2) as b
          -> global_avgpool -> flatten -> linear(5) as fc
}""",
    "3d": """
model m(x: float32[B, 16, 5, 6, 4]) -> y {
    y = x -> conv3d(16, 3, stride=[1, 2, 1], padding=1) as a -> relu -> conv3d(17, [2, 3, 2], bias=false) as b
          -> global_avgpool -> flatten -> linear(5) as fc
}""",
}


@pytest.mark.parametrize("name", list(CONV_GEMM))
def test_convs_train_as_gemms_and_match_torch(name):
    """Three steps of AdamW against torch (float64 reference), every wide conv on the GEMM form."""
    pytest.importorskip("torch")
    from .harness import ort_steps, rel, torch_steps
    ct, fwd = compile_step(None, config(opt="adamw", lr=1e-3), text=CONV_GEMM[name])
    onnx.checker.check_model(ct.step_model, full_check=True)
    convs = [n for n in ct.step_model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert all(n.name.startswith("stem") for n in convs), [n.name for n in convs]
    assert any(n.op_type == "Gemm" for n in ct.step_model.graph.node)
    if name == "2d":  # 3x3 stride 1 with enough tiles: Winograd (its U, transformed kernels, is a Gk MatMul)
        assert any(n.name.startswith("w2.") and n.op_type == "Gather" for n in ct.step_model.graph.node)
    data = batches(ct, 3, 3, 5, seed=1)
    lo, so = ort_steps(ct, data)
    lt, st = torch_steps(ct, fwd, data)
    l64, s64 = torch_steps(ct, fwd, data, np.float64)
    for step in range(3):
        assert rel(lo[step], l64[step]) <= max(1e-4, 2 * rel(lt[step], l64[step])), (step, lo, l64)
        for k, ref in s64[step].items():
            bound = max(1e-4, 2 * rel(st[step][k], ref))
            assert rel(so[step][k], ref) <= bound, f"step {step + 1}: {k} off by {rel(so[step][k], ref):.2e}"


def test_float16_convs_train_on_gemms_without_winograd(monkeypatch):
    """float16 takes the im2col GEMM form (Winograd's transforms round too coarsely in 16 bits) and agrees with
    the step trained on ONNX Conv to float16 precision."""
    from archdsl.autodiff import train_mode

    from .harness import ort_steps
    text = """
model m(x: float16[B, 16, 8, 8]) -> y {
    y = x -> conv2d(16, 3, padding=1) as a -> relu -> conv2d(16, 3, stride=2, padding=1) as b
          -> global_avgpool -> flatten -> linear(5) as fc
}"""
    ct, _ = compile_step(None, config(opt="sgd", lr=0.1), text=text)
    ops_used = {n.op_type for n in ct.step_model.graph.node}
    assert "Conv" not in ops_used and "Gemm" in ops_used
    assert any(n.op_type == "Gemm" and n.name.startswith("a.") for n in ct.step_model.graph.node), "not Winograd"
    data = batches(ct, 2, 4, 5, seed=0)
    lo, so = ort_steps(ct, data)
    for k in ("conv1d", "conv2d", "conv3d"):
        monkeypatch.delitem(train_mode.TRAIN_FORMS, k)
    ref_ct, _ = compile_step(None, config(opt="sgd", lr=0.1), text=text)
    assert any(n.op_type == "Conv" for n in ref_ct.step_model.graph.node)
    lr_, sr = ort_steps(ref_ct, data)
    assert np.allclose(lo, lr_, rtol=1e-3)
    for k, ref in sr[-1].items():
        ours = so[-1][k].astype(np.float64)
        assert np.abs(ours - ref).max() <= 5e-3 * max(np.abs(ref).max(), 1e-3), k


@pytest.mark.parametrize("opt,decay", [("adam", 0.0), ("adamw", 0.1)])  # adam's decay would make g nonzero
def test_adam_fed_lr_zero_leaves_every_parameter_unchanged(opt, decay):
    """A warm-up schedule starts at lr = 0: torch.optim then moves nothing. Embedding rows no id reads have a
    zero gradient (and a zero v), which the rewritten update once turned into NaN."""
    text = "model m(ids: int64[B, T]) -> y {\n    y = ids -> embedding(10, 4) as emb -> linear(3) as fc\n}\n"
    ct, _ = compile_step(None, config(loss="mse", opt=opt, lr=1e-3, weight_decay=decay), text=text)
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    labels = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    feeds = {"ids": np.array([[0, 1, 2], [3, 4, 0]], np.int64), "labels": labels, "lr": np.array(0.0, np.float32)}
    out = dict(zip(names, sess.run(None, feeds)))
    before = initial(ct)
    for p in ("emb.weight", "fc.weight", "fc.bias"):
        np.testing.assert_array_equal(out[p + ".new"], before[p])
    feeds["lr"] = np.array(1e-2, np.float32)  # and a real step still moves the rows that were read
    moved = dict(zip(names, sess.run(None, feeds)))["emb.weight.new"]
    assert np.all(moved[:5] != before["emb.weight"][:5]) and np.all(np.isfinite(moved))


@pytest.mark.parametrize("opset", [17, None])
def test_a_scalar_output_trains_at_every_opset(opset):
    """mse on a scalar reduces a rank-0 tensor over no axes; before opset 18 that was an empty `axes`
    attribute, which onnx cannot write (an internal error)."""
    text = 'model m(x: float32[2, 3]) -> y {\n    q = parameter([2, 3], init="normal") as q\n    y = mean(x + q)\n}\n'
    mod = driver.load(text=text, file="t.arch")
    ct = driver.build_train(mod, None, driver.CompileOptions(opset=opset), config(loss="mse", opt="sgd", lr=0.5))
    sess = runtime.session(ct.step_model, "cpu")
    x = np.ones((2, 3), np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x, "labels": np.array(0.0, np.float32)})))
    q = initial(ct)["q"]
    y = (x + q).mean()
    assert np.isclose(out["loss"], y ** 2, rtol=1e-5)
    np.testing.assert_allclose(out["q.new"], q - 0.5 * 2 * y / 6, rtol=1e-5, atol=1e-6)  # d(y^2)/dq = 2y / 6


@pytest.mark.parametrize("loss,smooth", [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("bce_with_logits", 0.0)])
def test_float64_models_train_on_onnxruntime(loss, smooth):
    """The losses emitted OneHot and Softplus in the model's dtype, which onnxruntime's CPU provider has only
    in float32: a float64 step did not load (an internal error). The float64 step now runs and takes the
    float32 step's values."""
    src = "model m(x: {dt}[B, 4]) -> y {{\n    y = x -> linear(8) as a -> tanh -> linear(3) as b\n}}\n"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    labels = rng.integers(0, 3, 5) if loss == "cross_entropy" else rng.random((5, 3))
    cfg = config(loss=loss, opt="sgd", lr=0.5, label_smoothing=smooth)
    start = initial(compile_step("", cfg, text=src.format(dt="float32"))[0])
    got = {}
    for dt, np_dt in (("float32", np.float32), ("float64", np.float64)):
        ct, _ = compile_step("", cfg, text=src.format(dt=dt))
        feeds = {"x": x.astype(np_dt), "labels": labels if loss == "cross_entropy" else labels.astype(np_dt)}
        feeds.update({k: v.astype(np_dt) for k, v in start.items() if k in ct.info.params})  # the same weights
        losses, states = ort_steps(ct, [feeds, feeds])
        got[dt] = losses, states[-1]["a.weight"]
    np.testing.assert_allclose(got["float64"][0], got["float32"][0], rtol=1e-5)
    np.testing.assert_allclose(got["float64"][1], got["float32"][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_parameters_of_two_dtypes_train_with_every_optimizer(opt):
    """Adam's shared scalars (step, lr, bias corrections) were made once in the first parameter's dtype and
    reused for the others: `'*': dtypes differ (float32 vs float64)`, located nowhere. Now one set per dtype,
    and the steps match torch.optim on the same mixed-dtype parameters."""
    pytest.importorskip("torch")
    src = ("model m(x: float32[B, 4]) -> y {\n    a = parameter([4], init=\"normal\", dtype=\"float64\") as a\n"
           "    y = (x -> linear(4) as fc) * cast(a, \"float32\")\n}\n")
    cfg = config(loss="mse", opt=opt, lr=0.05, weight_decay=0.01)
    ct, fwd = compile_step("", cfg, text=src)
    data = batches(ct, 3, 5, classes=4)
    ort_losses, ort_states = ort_steps(ct, data)
    torch_losses, torch_states = torch_steps(ct, fwd, data)
    np.testing.assert_allclose(ort_losses, torch_losses, rtol=1e-5)
    assert ort_states[-1]["a"].dtype == np.float64
    for name in ("a", "fc.weight", "fc.bias"):
        assert rel(ort_states[-1][name], torch_states[-1][name]) < 1e-5, name


@pytest.mark.parametrize("body", [
    "x -> conv2d(2, 1) as c -> maxpool2d(2) -> flatten -> linear(3) as fc",
    "x -> conv2d(2, 1) as c -> upsample(scale_factor=2) -> flatten -> linear(3) as fc",
    "x -> pad([1, 1, 1, 1], mode=\"reflect\") -> conv2d(2, 3) as c -> flatten -> linear(3) as fc",
    "take(parameter([10, 4], dtype=\"float16\") as table, ids) -> flatten -> linear(3) as fc",
])
def test_float16_train_steps_run_on_onnxruntime(body):
    """Their gradients scatter-add (MaxPool's argmax, element moves, embedding rows), which onnxruntime's CPU
    kernel has only in 32/64-bit: the float16 step built but failed on its first batch. Now the sums run in
    float32; one step agrees with the float32 step."""
    src = ("model m(x: {dt}[B, 1, 4, 4], ids: int64[B, 2]) -> y {{\n    y = {body}\n}}\n")
    rng = np.random.default_rng(0)
    x, ids, labels = rng.standard_normal((3, 1, 4, 4)), rng.integers(0, 10, (3, 2)), rng.random((3, 3))
    cfg = config(loss="mse", opt="sgd", lr=0.5)
    start = initial(compile_step("", cfg, text=src.format(dt="float32", body=body.replace("float16", "float32")))[0])
    got = {}
    for dt, np_dt in (("float32", np.float32), ("float16", np.float16)):
        ct, _ = compile_step("", cfg, text=src.format(dt=dt, body=body.replace("float16", dt)))
        feeds = {"x": x.astype(np_dt), "ids": ids, "labels": labels.astype(np_dt)}
        feeds = {k: v for k, v in feeds.items() if k in ct.info.data_inputs + ["labels"]}
        feeds.update({k: v.astype(np_dt) for k, v in start.items() if k in ct.info.params})  # the same weights
        losses, states = ort_steps(ct, [feeds, feeds])
        got[dt] = losses, states[-1]
    np.testing.assert_allclose(got["float16"][0], got["float32"][0], rtol=2e-2)
    for name, v in got["float32"][1].items():
        if v.dtype.kind == "f":
            np.testing.assert_allclose(got["float16"][1][name].astype(np.float32), v, rtol=3e-2, atol=3e-3)


def test_a_bfloat16_model_builds_a_train_step():
    """The gradient's constants were made with numpy's type of the dtype, which bfloat16 lacks (float64
    constants, then '/: dtypes differ')."""
    ct, _ = compile_step("", config(loss="mse", opt="adam", lr=1e-3),
                         text="model m(x: bfloat16[B, 4]) -> y {\n    y = x -> linear(3) as f\n}\n")
    onnx.checker.check_model(ct.step_model, full_check=True)
    outs = {o.name: o.type.tensor_type.elem_type for o in ct.step_model.graph.output}
    assert outs["f.weight.new"] == onnx.TensorProto.BFLOAT16 and outs["loss"] == onnx.TensorProto.BFLOAT16
