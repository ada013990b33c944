"""--accumulate N: gradient accumulation as torch's loop of (loss / N).backward() and an optimizer step every
N batches, the epoch's last batch closing a shorter group."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from archdsl.cli import main

from .harness import compile_step, config

MLP = """
model mlp(x: float32[B, 5]) -> logits {
    logits = x -> linear(8) as fc1 -> tanh -> linear(3) as fc2
}
"""


def _data(tmp_path, n: int):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    w0 = {"fc1.weight": rng.standard_normal((8, 5)), "fc1.bias": rng.standard_normal(8),
          "fc2.weight": rng.standard_normal((3, 8)), "fc2.bias": rng.standard_normal(3)}
    w0 = {k: (0.5 * v).astype(np.float32) for k, v in w0.items()}
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    np.savez(tmp_path / "w0.npz", **w0)
    (tmp_path / "mlp.arch").write_text(MLP)
    return x, labels, w0


def _torch_run(torch, x, labels, w0, opt_of, accumulate: int, batch: int, epochs: int, clip=None):
    """torch's accumulation loop over the train command's shuffle (seed 0)."""
    F = torch.nn.functional
    w = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    opt = opt_of(list(w.values()))
    n = len(x)
    for epoch in range(1, epochs + 1):
        order = np.random.default_rng([0, epoch]).permutation(n)
        groups = [order[i:i + batch] for i in range(0, n, batch)]
        for k, idx in enumerate(groups, 1):
            h = torch.tanh(F.linear(torch.from_numpy(x[idx]), w["fc1.weight"], w["fc1.bias"]))
            loss = F.cross_entropy(F.linear(h, w["fc2.weight"], w["fc2.bias"]), torch.from_numpy(labels[idx]))
            (loss / accumulate).backward()
            if k % accumulate == 0 or k == len(groups):
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(list(w.values()), clip)
                opt.step()
                opt.zero_grad()
    return {k: v.detach().numpy() for k, v in w.items()}


@pytest.mark.parametrize("optimizer, n", [("sgd", 10), ("adamw", 10), ("sgd", 9)])
def test_accumulated_gradients_update_as_torchs_loop(tmp_path, optimizer, n):
    """10 examples in batches of 4 with --accumulate 2: updates after batches 2 and 3 (a short group) of each
    epoch; SGD with momentum, weight decay and gradient clipping, or AdamW: torch's weights after 3 epochs.
    Without accumulation the result differs (the test can tell). 9 examples end each epoch on a batch of one,
    the smallest a batch may be: counted as a batch, it is applied."""
    torch = pytest.importorskip("torch")
    x, labels, w0 = _data(tmp_path, n)
    if optimizer == "sgd":
        flags = ["--optimizer", "sgd", "--lr", "0.3", "--momentum", "0.9", "--weight-decay", "0.01",
                 "--clip-grad-norm", "0.5"]
        opt_of, clip = (lambda ps: torch.optim.SGD(ps, lr=0.3, momentum=0.9, weight_decay=0.01)), 0.5
    else:
        flags = ["--optimizer", "adamw", "--lr", "0.05"]
        opt_of, clip = (lambda ps: torch.optim.AdamW(ps, lr=0.05)), None
    atol = 1e-6 if optimizer == "sgd" else 2e-5  # Adam's m / sqrt(v) magnifies float32 rounding of tiny gradients
    argv = ["train", str(tmp_path / "mlp.arch"), "--data", str(tmp_path / "d.npz"), "--weights",
            str(tmp_path / "w0.npz"), "--batch-size", "4", "--epochs", "3", "--quiet", *flags]
    assert main([*argv, "--accumulate", "2", "-o", str(tmp_path / "acc.npz")]) == 0
    ours = np.load(tmp_path / "acc.npz")
    want = _torch_run(torch, x, labels, w0, opt_of, 2, 4, 3, clip)
    for k, v in want.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-5, atol=atol, err_msg=k)
    assert main([*argv, "-o", str(tmp_path / "plain.npz")]) == 0
    plain = np.load(tmp_path / "plain.npz")
    assert not np.allclose(plain["fc1.weight"], ours["fc1.weight"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(plain["fc1.weight"], _torch_run(torch, x, labels, w0, opt_of, 1, 4, 3, clip)
                               ["fc1.weight"], rtol=1e-5, atol=atol)


def test_the_step_passes_state_through_until_apply_and_dropout_draws_per_micro_batch(tmp_path):
    """The step's own contract: with apply false only the gradient sums (and BatchNorm's running stats, as
    torch's forward) change; step does not count the micro-batch, `micro` does, and dropout masks differ
    between two micro-batches of one update."""
    from archdsl import runtime

    from .harness import batches, initial
    text = """
model m(x: float32[B, 6]) -> y {
    y = x -> linear(16) as fc -> batchnorm as bn -> dropout(0.5) -> linear(3) as out
}
"""
    ct, _ = compile_step(None, config(opt="sgd", lr=0.1, momentum=0.9), text=text)
    assert "apply" not in {i.name for i in ct.step_model.graph.input}  # no accumulation: the step as before
    import dataclasses
    cfg = dataclasses.replace(config(opt="sgd", lr=0.1, momentum=0.9), accumulate=3)
    ct, _ = compile_step(None, cfg, text=text)
    inputs = {i.name: i for i in ct.step_model.graph.input}
    assert inputs["apply"].type.tensor_type.elem_type == onnx.TensorProto.BOOL
    sess = runtime.session(ct.step_model, "cpu")
    names = [o.name for o in sess.get_outputs()]
    feeds = batches(ct, 1, 8, 3)[0]
    init = initial(ct)
    out = dict(zip(names, sess.run(None, {**feeds, "apply": np.array(False)})))
    for k in ("fc.weight", "out.bias", "fc.weight.momentum_buffer"):
        np.testing.assert_array_equal(out[k + ".new"], init[k])
    assert int(out["step.new"]) == 0 and int(out["micro.new"]) == 1
    assert np.abs(out["fc.weight.grad_sum.new"]).max() > 0
    assert not np.array_equal(out["bn.running_mean.new"], init["bn.running_mean"])
    again = dict(zip(names, sess.run(None, {**feeds, "apply": np.array(True), "micro": out["micro.new"]})))
    assert not np.array_equal(again["y"], out["y"])  # another dropout mask, same step
    assert int(again["step.new"]) == 1
    np.testing.assert_array_equal(again["fc.weight.grad_sum.new"], 0)
    assert not np.array_equal(again["fc.weight.new"], init["fc.weight"])


def test_a_gradient_sum_holds_each_micro_batchs_gradient_over_n():
    """README: `<param>.grad_sum` is the running sum of gradient / N, torch's (loss / N).backward() (review109
    hunt: it said "the gradient sums"). One micro-batch of --accumulate 2 holds half the gradient that the
    step without accumulation applies (plain SGD at lr 1: p - p.new)."""
    import dataclasses

    from archdsl import runtime

    from .harness import batches, initial
    plain, _ = compile_step(None, config(opt="sgd", lr=1.0), text=MLP)
    acc, _ = compile_step(None, dataclasses.replace(config(opt="sgd", lr=1.0), accumulate=2), text=MLP)
    feeds = batches(plain, 1, 8, 3)[0]
    runs = []
    for ct, more in ((plain, {}), (acc, {"apply": np.array(False)})):
        sess = runtime.session(ct.step_model, "cpu")
        runs.append(dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**feeds, **more}))))
    init = initial(plain)
    for k in ("fc1.weight", "fc2.bias"):
        np.testing.assert_allclose(runs[1][f"{k}.grad_sum.new"], (init[k] - runs[0][f"{k}.new"]) / 2, rtol=1e-5,
                                   atol=1e-7)


def test_accumulate_is_checked_and_recorded(tmp_path, capsys):
    _data(tmp_path, 10)
    argv = ["train", str(tmp_path / "mlp.arch"), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"),
            "--batch-size", "4", "--quiet"]
    for n in ("0", str(2**31 + 1)):
        assert main([*argv, "--accumulate", n]) == 2
        assert f"gradient accumulation takes 1 to 2147483648 micro-batches per update, got {n}" in \
            capsys.readouterr().err
    assert main([*argv, "--epochs", "1", "--accumulate", "2"]) == 0
    assert main([*argv, "--epochs", "2", "--resume"]) == 1
    assert "made with other settings (accumulate 2 there, not given here)" in capsys.readouterr().err
    assert main([*argv, "--epochs", "2", "--resume", "--accumulate", "2"]) == 0
    assert main(["build", argv[1], "--train", "--accumulate", "3", "-o", str(tmp_path / "s.onnx")]) == 0
    assert "adamw, accumulating 3 batches per update)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("text, words", [
    ("model m(x: float32[B, 4]) -> apply {\n    apply = x -> linear(3) as fc\n}\n",
     "the train step's output 'apply' would have the name of an input"),
    ("model m(x: float32[B, 4], apply: float32[B, 4]) -> y {\n    y = (x + apply) -> linear(3) as fc\n}\n",
     "a model input is named 'apply', which gradient accumulation's step feeds"),
    ("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n"
     "    z = parameter([3, 4], init=\"zeros\") as \"fc.weight.grad_sum\"\n}\n",
     "the train step's gradient sum 'fc.weight.grad_sum' has the name of a model parameter"),
])
def test_names_the_accumulating_step_takes_are_refused(text, words):
    """An output named apply made a step model onnx.checker refuses (the build said it wrote it)."""
    import dataclasses

    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match=words):
        compile_step(None, dataclasses.replace(config(opt="sgd", lr=0.1), accumulate=2), text=text)
    compile_step(None, config(opt="sgd", lr=0.1), text=text)  # without accumulation: nothing clashes


def test_accumulation_counts_updates_for_a_per_batch_schedule_and_warmup(tmp_path):
    """--accumulate 3 with --schedule cosine --schedule-per batch --warmup 2 and --no-decay: the schedule
    moves per update (one per 3 batches, the epoch's short group one more), as torch's loop setting each
    update's lr; AdamW with two param groups, three epochs of 22 examples."""
    import math
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, labels, w0 = _data(tmp_path, 22)
    argv = ["train", str(tmp_path / "mlp.arch"), "--data", str(tmp_path / "d.npz"), "--weights",
            str(tmp_path / "w0.npz"), "--batch-size", "4", "--epochs", "3", "--quiet", "--optimizer", "adamw",
            "--lr", "0.05", "--weight-decay", "0.1", "--no-decay", "*.bias", "--accumulate", "3", "--schedule",
            "cosine", "--schedule-per", "batch", "--warmup", "2", "-o", str(tmp_path / "w.npz")]
    assert main(argv) == 0
    ours = np.load(tmp_path / "w.npz")
    w = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    opt = torch.optim.AdamW([{"params": [w["fc1.weight"], w["fc2.weight"]]},
                             {"params": [w["fc1.bias"], w["fc2.bias"]], "weight_decay": 0.0}], lr=0.05,
                            weight_decay=0.1)
    total, s = 3 * 2, 0  # 6 batches an epoch: 2 updates
    for epoch in (1, 2, 3):
        order = np.random.default_rng([0, epoch]).permutation(22)
        groups = [order[i:i + 4] for i in range(0, 22, 4)]
        for k, idx in enumerate(groups, 1):
            h = torch.tanh(F.linear(torch.from_numpy(x[idx]), w["fc1.weight"], w["fc1.bias"]))
            (F.cross_entropy(F.linear(h, w["fc2.weight"], w["fc2.bias"]), torch.from_numpy(labels[idx])) / 3).backward()
            if k % 3 == 0 or k == len(groups):
                s += 1
                for g in opt.param_groups:
                    g["lr"] = 0.05 * (1 + math.cos(math.pi * (s - 1) / total)) / 2 * min(1.0, s / 2)
                opt.step()
                opt.zero_grad()
    for k, v in w.items():
        np.testing.assert_allclose(ours[k], v.detach().numpy(), rtol=1e-5, atol=2e-5, err_msg=k)
