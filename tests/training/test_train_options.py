"""The loss and optimizer flags of `archdsl train` from the command line, each against torch or its own
definition: --ignore-index, --clip-grad-norm, --warmup, --freeze."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from archdsl.cli import main

from .harness import linear_run


def test_padding_labels_are_ignored_with_ignore_index(tmp_path, capsys):
    """--ignore-index: padded positions (label -1) train nothing and are not counted in the accuracy; without
    the flag the -1 labels are refused; a batch whose labels are all padding does not stop the run; the
    flag belongs to cross_entropy only."""
    spec = tmp_path / "tag.arch"
    spec.write_text("model tag(ids: int64[B, 6]) -> logits {\n"
                    "    logits = ids -> embedding(10, 16) as emb -> linear(10) as head\n}\n")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10, (40, 6))
    labels = ids.copy()  # learn the identity: easy, so the accuracy on the labels that count reaches 100%
    labels[:, 4:] = -1  # the last two positions are padding
    labels[:8] = -1  # and the first batch of 8 is padding only
    np.savez(tmp_path / "d.npz", ids=ids, labels=labels)
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
            "-o", str(tmp_path / "w.npz"), "--batch-size", "8", "--lr", "0.1", "--quiet"]
    assert main(argv) == 1
    assert "labels[0, 0] is -1, but 'logits' has 10 classes" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--epochs", "30", "--ignore-index", "-1"]) == 0
    last = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch 30/30")][0]
    assert "  acc 100.00%" in last and "val_acc 100.00%" in last, last  # -1 would never be argmax
    assert main([*argv, "--loss", "mse", "--ignore-index", "-1"]) == 2
    assert "applies to the cross_entropy loss only" in capsys.readouterr().err
    np.savez(tmp_path / "pad.npz", ids=ids, labels=np.full_like(labels, -1))  # padding only: nothing trains
    for flag in ("--data", "--val"):
        at = argv.index(flag) + 1
        assert main([*argv[:at], str(tmp_path / "pad.npz"), *argv[at + 1:], "--ignore-index", "-1"]) == 1
        assert "pad.npz: every label is the ignored index -1 (--ignore-index)" in capsys.readouterr().err


def test_clip_grad_norm_from_the_command_line(tmp_path, capsys):
    """--clip-grad-norm reaches the step (its metadata says so, and a resume with another value is refused);
    a bound that is not positive is a usage error."""
    argv = linear_run(tmp_path)
    assert main([*argv, "--epochs", "1", "--clip-grad-norm", "0.5", "--quiet"]) == 0
    assert main([*argv, "--epochs", "2", "--clip-grad-norm", "0.25", "--resume", "--quiet"]) == 1
    assert "made with other settings (clip_grad_norm 0.5 there, 0.25 here)" in capsys.readouterr().err
    for bad in ("0", "-1", "inf"):
        assert main([*argv, "--clip-grad-norm", bad]) == 2
        assert "the gradient norm to clip to must be positive and finite" in capsys.readouterr().err
    out = tmp_path / "step.onnx"
    assert main(["build", argv[1], "--train", "--clip-grad-norm", "1.5", "-o", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["archdsl.train"])["clip_grad_norm"] == 1.5
    # past float32's largest: clips nothing, as torch's max_norm=inf (review119: refused as inf in float32)
    capsys.readouterr()
    assert main([*argv, "--epochs", "1", "--clip-grad-norm", "1e300", "--quiet", "-o", str(tmp_path / "a.npz")]) == 0
    assert main([*argv, "--epochs", "1", "--quiet", "-o", str(tmp_path / "b.npz")]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert all(np.array_equal(a[k], b[k]) for k in b.files)


def _eight_examples(tmp_path, seed: int):
    """A bias-free linear regression on 8 random examples, in batches of 4 with SGD: (x, y, its starting
    weight, the train command without --lr); --weights w0.npz starts from that weight."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)
    w0 = rng.standard_normal((2, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    np.savez(tmp_path / "w0.npz", **{"fc.weight": w0})
    spec = tmp_path / "lin.arch"
    spec.write_text("model lin(x: float32[B, 4]) -> y {\n    y = x -> linear(2, bias=false) as fc\n}\n")
    return x, y, w0, ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--optimizer", "sgd",
                      "--batch-size", "4", "-o", str(tmp_path / "w.npz"), "--quiet"]


def _torch_sgd(x, y, w0, epochs: int, schedule, momentum: float = 0.0, per: str = "batch"):
    """torch's SGD (lr 0.1) over _eight_examples' batches in the loop's shuffle (seed 0), the scheduler
    `schedule(opt)` stepped per batch or per epoch: (the final weight, the lr of every update)."""
    import torch
    lin = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w0))
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=momentum)
    sched = schedule(opt)
    lrs = []
    for epoch in range(1, epochs + 1):
        order = np.random.default_rng([0, epoch]).permutation(8)
        for idx in (order[:4], order[4:]):
            opt.zero_grad()
            torch.nn.functional.mse_loss(lin(torch.from_numpy(x[idx])), torch.from_numpy(y[idx])).backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if per == "batch":
                sched.step()
        if per == "epoch":
            sched.step()
    return lin.weight.detach().numpy(), lrs


def test_warmup_ramps_the_learning_rate_per_update_as_torchs_lambda_lr(tmp_path, capsys):
    """--warmup 3 over three epochs of two updates (one epoch, then two more by --resume): factors 1/3, 2/3, 1,
    1, ... as torch's LambdaLR stepped per batch; the resumed run goes on from the step it had reached."""
    torch = pytest.importorskip("torch")
    x, y, w0, argv = _eight_examples(tmp_path, 0)
    argv += ["--lr", "0.1", "--warmup", "3"]
    assert main([*argv, "--epochs", "1", "--weights", str(tmp_path / "w0.npz")]) == 0
    assert main([*argv, "--epochs", "3", "--resume"]) == 0
    ours = np.load(tmp_path / "w.npz")["fc.weight"]

    want, lrs = _torch_sgd(x, y, w0, 3, lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 3)))
    assert np.allclose(lrs[:4], [0.1 / 3, 0.2 / 3, 0.1, 0.1])
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
    assert main([*argv, "--warmup", "-1"]) == 2
    assert main([*argv, "--schedule-per", "batch"]) == 2  # the constant schedule: it moved nothing


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_a_schedule_per_batch_is_torchs_scheduler_stepped_per_batch(tmp_path, schedule):
    """--schedule-per batch over three epochs of two updates: update s of the run's 6 at cosine's
    (1 + cos(pi (s-1)/6)) / 2 (torch's CosineAnnealingLR, T_max 6) or linear's 1 - (s-1)/6 (a LambdaLR), with
    SGD momentum: torch's weights. (The run's length is its --epochs: a resume with the same --epochs goes on
    with the step counter, as --warmup does.)"""
    torch = pytest.importorskip("torch")
    x, y, w0, argv = _eight_examples(tmp_path, 1)
    argv += ["--momentum", "0.9", "--lr", "0.1", "--schedule", schedule, "--schedule-per", "batch"]
    assert main([*argv, "--epochs", "3", "--weights", str(tmp_path / "w0.npz")]) == 0
    whole = np.load(tmp_path / "w.npz")["fc.weight"]

    want, _ = _torch_sgd(x, y, w0, 3, lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
                         if schedule == "cosine" else torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / 6),
                         momentum=0.9)
    np.testing.assert_allclose(whole, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_a_schedule_per_epoch_is_torchs_scheduler_stepped_per_epoch(tmp_path, schedule):
    """The default --schedule-per epoch over three epochs: epoch e of 3 at cosine's (1 + cos(pi (e-1)/3)) / 2
    (CosineAnnealingLR, T_max 3) or linear's 1 - (e-1)/3, the same lr for both of its updates: torch's weights
    (an epoch counted from 1 started at 0.75 lr and ended at 0)."""
    torch = pytest.importorskip("torch")
    x, y, w0, argv = _eight_examples(tmp_path, 2)
    argv += ["--momentum", "0.9", "--lr", "0.1", "--schedule", schedule]
    assert main([*argv, "--epochs", "3", "--weights", str(tmp_path / "w0.npz")]) == 0
    want, lrs = _torch_sgd(x, y, w0, 3, lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
                           if schedule == "cosine" else torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / 3),
                           momentum=0.9, per="epoch")
    assert lrs[0] == lrs[1] == 0.1 and lrs[2] == lrs[3] < 0.1 and lrs[4] > 0
    np.testing.assert_allclose(np.load(tmp_path / "w.npz")["fc.weight"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per", ["epoch", "batch"])
def test_a_step_schedule_is_torchs_multistep_lr(tmp_path, capsys, per):
    """--schedule step --milestones 1,3 --gamma 0.5 over four epochs of two updates: torch's MultiStepLR stepped
    per epoch (the lr halves after epochs 1 and 3), or per batch (after updates 1 and 3); two epochs, then two
    more by --resume, give the weights of the straight run. Bad milestones are usage errors."""
    torch = pytest.importorskip("torch")
    x, y, w0, argv = _eight_examples(tmp_path, 2)
    argv += ["--momentum", "0.9", "--lr", "0.1", "--schedule", "step", "--milestones", "1,3", "--gamma", "0.5",
             "--schedule-per", per]
    assert main([*argv, "--epochs", "2", "--weights", str(tmp_path / "w0.npz")]) == 0
    assert main([*argv, "--epochs", "4", "--resume"]) == 0
    ours = np.load(tmp_path / "w.npz")["fc.weight"]

    want, lrs = _torch_sgd(x, y, w0, 4, lambda opt: torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[1, 3], gamma=0.5), momentum=0.9, per=per)
    assert lrs == ([0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025] if per == "epoch" else
                   [0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025])
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    for bad in (["--milestones", "3,1"], ["--milestones", "0"], ["--milestones", "a"]):
        with pytest.raises(SystemExit) as e:
            main([*argv[:-6], *bad, "--epochs", "1"])
        assert e.value.code == 2
    assert main([*argv[:-8], "--schedule", "step", "--epochs", "1"]) == 2  # no milestones
    assert main([*argv[:-8], "--schedule", "cosine", "--gamma", "0.5", "--epochs", "1"]) == 2
    assert "--schedule step takes its --milestones" in capsys.readouterr().err
    for gamma in ("0", "-0.5", "inf"):  # 0 would drop the lr to 0 at the first milestone
        assert main([*argv[:-3], gamma, "--schedule-per", per, "--epochs", "1"]) == 2
        assert "--gamma must be a positive number" in capsys.readouterr().err


def test_milestones_and_a_warmup_the_run_ends_before_are_noted(tmp_path, capsys):
    """--milestones 5,10 in a 2-epoch run, --warmup 1000 in one of 4 updates changed nothing or little, without
    a word (torch's schedulers run them as silently). Milestones the run passes say nothing."""
    _, _, _, argv = _eight_examples(tmp_path, 3)
    argv = [a for a in argv if a != "--quiet"]
    for flags, said in (
            (["--schedule", "step", "--milestones", "1,5,10", "--epochs", "2"],
             "note: --milestones 5,10: the lr is multiplied after epoch N, and this run has 2 epochs\n"),
            (["--schedule", "step", "--milestones", "2", "--epochs", "2"],  # after epoch 2: past the run's end
             "note: --milestones 2: the lr is multiplied after epoch N, and this run has 2 epochs; it stays --lr "
             "throughout\n"),
            (["--schedule", "step", "--milestones", "5", "--schedule-per", "batch", "--epochs", "2"],
             "note: --milestones 5: the lr is multiplied after update N, and this run has 4 updates; it stays --lr "
             "throughout\n"),
            (["--warmup", "1000", "--epochs", "2"],
             "note: --warmup 1000 is longer than the run's 4 updates: the lr rises to 0.4% of --lr at the last\n"),
            (["--warmup", "20", "--epochs", "2", "--schedule", "linear", "--schedule-per", "batch"],  # optim3 hunt
             "note: --warmup 20 is longer than the run's 4 updates: the lr rises to 20.0% of --lr at the last, which "
             "the linear schedule scales to 5.0%\n"),
            (["--schedule", "step", "--milestones", "1,3", "--schedule-per", "batch", "--warmup", "4",
              "--epochs", "2"], None)):
        assert main([*argv, *flags]) == 0
        err = capsys.readouterr().err
        assert said in err if said else "note:" not in err, err


@pytest.mark.parametrize("optimizer", [["--optimizer", "sgd", "--momentum", "0.9", "--weight-decay", "0.1"],
                                       ["--optimizer", "adamw", "--weight-decay", "0.1"]])
def test_freeze_leaves_parameters_as_torchs_requires_grad_false(tmp_path, capsys, optimizer):
    """--freeze fc1: fc1 keeps its values exactly (no gradient, no momentum, no weight decay) and fc2 trains
    as torch's with fc1.requires_grad_(False); a pattern that names nothing is refused."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    w0 = {"fc1.weight": rng.standard_normal((8, 4)), "fc1.bias": rng.standard_normal(8),
          "fc2.weight": rng.standard_normal((3, 8)), "fc2.bias": rng.standard_normal(3)}
    w0 = {k: v.astype(np.float32) for k, v in w0.items()}
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    np.savez(tmp_path / "w0.npz", **w0)
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8) as fc1 -> relu -> linear(3) as fc2\n}\n")
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w0.npz"),
            "--batch-size", "16", "--epochs", "3", "--lr", "0.1", "-o", str(tmp_path / "w.npz"), "--quiet", *optimizer]
    assert main([*argv, "--freeze", "fc1"]) == 0
    ours = np.load(tmp_path / "w.npz")

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for (i, name) in ((0, "fc1"), (2, "fc2")):
            net[i].weight.copy_(torch.from_numpy(w0[f"{name}.weight"]))
            net[i].bias.copy_(torch.from_numpy(w0[f"{name}.bias"]))
    net[0].requires_grad_(False)
    live = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(live, lr=0.1, momentum=0.9, weight_decay=0.1) if optimizer[1] == "sgd" \
        else torch.optim.AdamW(live, lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        opt.step()
    assert np.array_equal(ours["fc1.weight"], w0["fc1.weight"]) and np.array_equal(ours["fc1.bias"], w0["fc1.bias"])
    np.testing.assert_allclose(ours["fc2.weight"], net[2].weight.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["fc2.bias"], net[2].bias.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert main([*argv, "--freeze", "fc9"]) == 1
    assert "--freeze fc9: no trainable parameter of m matches" in capsys.readouterr().err


def test_epochs_0_evaluates_the_starting_weights(tmp_path, capsys):
    """--epochs 0 gives the loss and accuracy of --weights, a checkpoint or the initialization on --data and
    --val, as the last epoch's held-out figures of the run that wrote them, and writes nothing."""
    argv = linear_run(tmp_path)
    data = argv[argv.index("--data") + 1]
    assert main([*argv, "--epochs", "2", "--val", data, "--quiet"]) == 0
    last = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch 2/2")][0]
    held_out = re.search(r"val_loss (\S+)  val_acc (\S+)", last).groups()
    weights = tmp_path / "w.npz"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    for extra, source in ((["--weights", str(weights)], f"the weights of {weights}"),
                          (["--resume"], f"the checkpoint {tmp_path / 'w.ckpt.npz'}")):
        assert main([*argv, "--epochs", "0", "--val", data, *extra]) == 0
        err = capsys.readouterr().err
        assert f"evaluated {source} (--epochs 0: nothing trained or written)" in err
        line = [ln for ln in err.splitlines() if ln.startswith("evaluation")][0]
        assert f"loss {held_out[0]}  acc {held_out[1]}  val_loss {held_out[0]}  val_acc {held_out[1]}" in line
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert main([*argv, "--epochs", "0"]) == 0
    assert "evaluated the initial weights" in capsys.readouterr().err
    assert main([*argv, "--epochs", "-1"]) == 2
    assert "--epochs must be 0 (evaluate only) or more" in capsys.readouterr().err
    for extra in (["--schedule", "cosine"], ["--warmup", "5"], ["--checkpoint", str(tmp_path / "c.npz")],
                  ["--val", data, "--patience", "2"]):  # each was taken and set nothing
        assert main([*argv, "--epochs", "0", *extra]) == 2, extra
        assert f"--epochs 0 evaluates the starting weights and trains nothing; {extra[-2]} applies to training" in \
            capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_patience_stops_and_keeps_the_best_epochs_weights(tmp_path, capsys):
    """--patience 3 with held-out labels half of them flipped at random (the model overfits after a few
    epochs): training stops 3 epochs after the lowest val_loss, and -o holds that epoch's weights (equal to a
    run of exactly that many epochs); a run resumed before the best epoch stops at the same epoch with the same
    -o. Without --val, or below 1, it is refused."""
    rng = np.random.default_rng(5)
    rule = rng.standard_normal((8, 3))

    def data(name: str, flip: float) -> None:
        x = rng.standard_normal((64, 8)).astype(np.float32)
        y = (x @ rule).argmax(1)
        flipped = rng.random(64) < flip
        y[flipped] = rng.integers(0, 3, int(flipped.sum()))
        np.savez(tmp_path / name, x=x, labels=y)
    data("tr.npz", 0.0)
    data("va.npz", 0.5)
    spec = tmp_path / "c.arch"
    spec.write_text("model c(x: float32[B, 8]) -> y {\n    y = x -> linear(32) as a -> relu -> linear(3) as b\n}\n")
    base = ["train", str(spec), "--data", str(tmp_path / "tr.npz"), "--lr", "0.01", "--quiet"]
    argv = [*base, "--val", str(tmp_path / "va.npz"), "--patience", "3", "-o", str(tmp_path / "best.npz")]
    assert main([*argv, "--epochs", "40"]) == 0
    err = capsys.readouterr().err
    val = [float(v) for v in re.findall(r"^epoch .*val_loss (\S+)", err, re.M)]
    best = int(np.argmin(val)) + 1
    assert 2 < best and len(val) == best + 3 < 40 and "stopping: val_loss has not improved for 3 epochs" in err
    assert f"the weights of epoch {best}, the lowest val_loss ({min(val):.4f})" in err
    assert main([*base, "--epochs", str(best), "-o", str(tmp_path / "exact.npz")]) == 0
    got, want = np.load(tmp_path / "best.npz"), np.load(tmp_path / "exact.npz")
    assert all(np.array_equal(got[k], want[k]) for k in want.files)

    assert main([*argv[:-1], str(tmp_path / "r.npz"), "--epochs", "1"]) == 0
    with np.load(tmp_path / "r.ckpt.npz") as ckpt:  # where the resumed run's patience goes on from
        assert ckpt["__best__"][1] == 1 and ckpt["__best__"][0] == pytest.approx(val[0], abs=1e-4)
    assert main([*argv[:-1], str(tmp_path / "r.npz"), "--epochs", "40", "--resume"]) == 0
    assert f"the weights of epoch {best}" in capsys.readouterr().err
    # resumed again after it stopped: it stops at once (it trained one more epoch, "not improved for 3")
    assert main([*argv[:-1], str(tmp_path / "r.npz"), "--epochs", "45", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"stopping: at epoch {best + 3}, where {tmp_path / 'r.ckpt.npz'} was written, val_loss had not improved " \
        "for 3 epochs (--patience 3)" in err
    assert not re.search(r"^epoch \d+/45", err, re.M) and f"the weights of epoch {best}" in err
    resumed = np.load(tmp_path / "r.npz")
    assert all(np.array_equal(resumed[k], want[k]) for k in want.files)
    for bad, why in ((["--patience", "3"], "--patience needs --val"),
                     (["--patience", "0", "--val", str(tmp_path / "va.npz")], "--patience is a number of epochs, at "
                                                                               "least 1, got 0")):
        assert main([*base, *bad]) == 2
        assert why in capsys.readouterr().err


def test_a_resume_that_changes_the_schedule_names_the_lr_it_runs_at(tmp_path, capsys):
    """A cosine schedule resumed with other --epochs is another schedule (the lr jumps): the resumed run says
    so, with the next update's lr under its settings and the checkpoint's. Settings a schedule does not read
    (--epochs of a constant lr, --batch-size of a per-epoch schedule) are not named."""
    import json
    _, _, _, argv = _eight_examples(tmp_path, 0)
    argv += ["--lr", "0.1", "--weights", str(tmp_path / "w0.npz")]
    assert main([*argv, "--epochs", "1"]) == 0
    assert main([a for a in argv if a != "--weights" and not a.endswith("w0.npz")] +
                ["--epochs", "2", "--resume", "--batch-size", "8"]) == 0
    assert "note:" not in capsys.readouterr().err  # a constant lr: the run is simply longer

    ckpt = tmp_path / "w.ckpt.npz"
    argv += ["--schedule", "cosine"]
    assert main([*argv, "--epochs", "1"]) == 0
    with np.load(ckpt) as z:  # as if the first run had been planned as 2 epochs and stopped after 1
        arrays = dict(z)
    plan = json.loads(str(arrays["__plan__"]))
    assert plan == {"epochs": 1, "batch_size": 4, "schedule": "cosine", "schedule_per": "epoch", "warmup": 0,
                    "milestones": [], "gamma": 0.1, "examples": 8}
    # and written as a checkpoint from before --schedule step was (no milestones, no gamma, no examples): it
    # still resumes
    old = {k: v for k, v in plan.items() if k not in ("milestones", "gamma", "examples")}
    arrays["__plan__"] = np.array(json.dumps({**old, "epochs": 2}))
    np.savez(ckpt, **arrays)
    resume = [a for a in argv if a != "--weights" and not a.endswith("w0.npz")] + ["--resume"]
    capsys.readouterr()
    assert main([*resume, "--epochs", "3", "--batch-size", "8"]) == 0
    err = capsys.readouterr().err
    # epoch 2: cosine at u = 1/3 of 3 epochs, 0.1 * 0.75; the checkpoint's plan: u = 1/2 of 2 epochs
    assert (f"note: {ckpt} was trained with --epochs 2; with --epochs 3 the lr schedule is another one: the next "
            "update runs at lr 0.075 (with its --epochs 2 it would be 0.05)") in " ".join(err.split())
    assert main([*resume, "--epochs", "5"]) == 0  # the checkpoint (now of epoch 3 of 3) had ended its run
    err = " ".join(capsys.readouterr().err.split())
    assert "the next update runs at lr 0.0345492 (its run had ended)" in err  # epoch 4 of 5: u = 3/5
    with np.load(ckpt) as z:
        arrays = dict(z)
    arrays["__plan__"] = np.array(json.dumps({**plan, "epochs": 7}))  # planned as 7, stopped after 5
    np.savez(ckpt, **arrays)
    assert main([*resume, "--epochs", "7"]) == 0  # the same settings: nothing to say
    assert "note:" not in capsys.readouterr().err


def test_a_resume_with_another_warmup_says_the_lr_of_its_next_update(tmp_path, capsys):
    """Two updates done under --warmup 100; the third runs at 3/10 of --lr under --warmup 10 (as the loop feeds
    it: update k of a warmup of w runs at k/w)."""
    _, _, _, argv = _eight_examples(tmp_path, 0)
    ckpt = ["--lr", "0.1", "--checkpoint", str(tmp_path / "c.npz")]
    assert main([*argv, *ckpt, "--warmup", "100", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*argv, *ckpt, "--warmup", "10", "--epochs", "2", "--resume"]) == 0
    assert ("with --warmup 10 the lr schedule is another one: the next update runs at lr 0.03 (with its --warmup "
            "100 it would be 0.003)") in " ".join(capsys.readouterr().err.split())


def test_a_per_batch_schedule_resumed_on_more_examples_says_the_lr_it_runs_at(tmp_path, capsys):
    """A per-batch cosine's length is its updates, so more examples (--data of 16 where the checkpoint's run
    had 8) is another schedule: the lr jumped back up with no note, where another --batch-size had one
    (schedules hunt). A per-epoch schedule does not read the count."""
    import json
    x, y, _, argv = _eight_examples(tmp_path, 0)
    np.savez(tmp_path / "d16.npz", x=np.concatenate([x, x]), labels=np.concatenate([y, y]))
    more = [str(tmp_path / "d16.npz") if a == str(tmp_path / "d.npz") else a for a in argv]
    ckpt = tmp_path / "w.ckpt.npz"
    for per, said in (("batch", True), ("epoch", False)):
        assert main([*argv, "--lr", "0.1", "--schedule", "cosine", "--schedule-per", per, "--epochs", "1"]) == 0
        with np.load(ckpt) as z:  # as if planned as 2 epochs and stopped after 1
            arrays = dict(z)
        arrays["__plan__"] = np.array(json.dumps({**json.loads(str(arrays["__plan__"])), "epochs": 2}))
        np.savez(ckpt, **arrays)
        capsys.readouterr()
        assert main([*more, "--lr", "0.1", "--schedule", "cosine", "--schedule-per", per, "--epochs", "2",
                     "--resume"]) == 0
        err = " ".join(capsys.readouterr().err.split())
        # update 3 of 2 epochs of 4 batches: 0.1 * (1 + cos(pi * 2/8)) / 2; of 2 epochs of 2 batches the
        # checkpoint's plan: 0.1 * (1 + cos(pi * 2/4)) / 2
        note = ("was trained with --data of 8 examples; with --data of 16 examples the lr schedule is another one: "
                "the next update runs at lr 0.0853553 (with its --data of 8 examples it would be 0.05)")
        assert (note in err) == said, err


def test_a_per_batch_schedule_resumed_on_fewer_examples_says_its_last_updates_run_at_lr_0(tmp_path, capsys):
    """Resumed on 8 examples after an epoch of 16 (4 updates done), the run's 2 epochs of 2 updates end the cosine
    at update 4: its remaining updates run at lr 0, which the note did not say (optim3 hunt)."""
    import json
    x, y, _, argv = _eight_examples(tmp_path, 0)
    np.savez(tmp_path / "d16.npz", x=np.concatenate([x, x]), labels=np.concatenate([y, y]))
    more = [str(tmp_path / "d16.npz") if a == str(tmp_path / "d.npz") else a for a in argv]
    flags = ["--lr", "0.1", "--schedule", "cosine", "--schedule-per", "batch"]
    assert main([*more, *flags, "--epochs", "1"]) == 0
    ckpt = tmp_path / "w.ckpt.npz"
    with np.load(ckpt) as z:  # as if planned as 2 epochs and stopped after 1
        arrays = dict(z)
    arrays["__plan__"] = np.array(json.dumps({**json.loads(str(arrays["__plan__"])), "epochs": 2}))
    np.savez(ckpt, **arrays)
    capsys.readouterr()
    assert main([*argv, *flags, "--epochs", "2", "--resume"]) == 0
    assert "the schedule ends at update 4, so every update of this run is at lr 0" in \
        " ".join(capsys.readouterr().err.split())
    np.savez(tmp_path / "d4.npz", x=x[:4], labels=y[:4])  # 8 updates done of a run planned as 4 epochs, resumed
    assert main([*more, *flags, "--epochs", "2"]) == 0  # on 4 examples for epochs 3-4: 2 updates past the
    with np.load(ckpt) as z:  # schedule's 4 (review65: "the last 6 updates" of a run of 2)
        arrays = dict(z)
    arrays["__plan__"] = np.array(json.dumps({**json.loads(str(arrays["__plan__"])), "epochs": 4}))
    np.savez(ckpt, **arrays)
    capsys.readouterr()
    fewer = [str(tmp_path / "d4.npz") if a == str(tmp_path / "d.npz") else a for a in argv]
    assert main([*fewer, *flags, "--epochs", "4", "--resume"]) == 0
    assert "the schedule ends at update 4, so every update of this run is at lr 0" in \
        " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("per", ["epoch", "batch"])
def test_a_step_schedule_resumed_for_more_epochs_is_the_same_schedule(tmp_path, capsys, per):
    """MultiStepLR's milestones count from the start, whatever --epochs says: a step schedule resumed with more
    epochs runs what one longer run runs (same weights), and the resume said "the lr schedule is another one"
    (and, once past its epochs, "its run had ended"). Other milestones are another schedule."""
    _, _, _, argv = _eight_examples(tmp_path, 0)
    argv += ["--lr", "0.1", "--schedule", "step", "--milestones", "1,2", "--schedule-per", per]
    assert main([*argv, "--epochs", "3", "-o", str(tmp_path / "full.npz"),
                 "--checkpoint", str(tmp_path / "full.ckpt.npz")]) == 0
    assert main([*argv, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--epochs", "3", "--resume"]) == 0
    assert "note:" not in capsys.readouterr().err
    with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "w.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert main([*argv[:-6], "--schedule", "step", "--milestones", "1,5", "--schedule-per", per, "--epochs", "4",
                 "--resume"]) == 0
    assert "with --milestones 1,5 the lr schedule is another one" in " ".join(capsys.readouterr().err.split())
    assert main([*argv[:-6], "--schedule", "cosine", "--epochs", "6", "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # a cosine run has no milestones to name (it printed '')
    extra = " --schedule-per batch" if per == "batch" else ""
    assert f"was trained with --schedule step{extra} --milestones 1,5; with --epochs 6 --schedule cosine" in err, err


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_no_decay_is_a_param_group_without_weight_decay(tmp_path, capsys, optimizer):
    """--no-decay '*.bias' --no-decay norm: those parameters train as a torch param group with
    weight_decay 0, the rest with --weight-decay (SGD's L2 term or AdamW's decoupled decay), over two epochs;
    a pattern naming nothing, or --no-decay without a decay, is refused."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n"
                    "    y = x -> linear(5) as fc -> layernorm as norm -> tanh -> linear(3) as out\n}\n")
    w0 = {"fc.weight": rng.standard_normal((5, 4)), "fc.bias": rng.standard_normal(5),
          "norm.weight": 1 + rng.standard_normal(5), "norm.bias": rng.standard_normal(5),
          "out.weight": rng.standard_normal((3, 5)), "out.bias": rng.standard_normal(3)}
    w0 = {k: (0.5 * v).astype(np.float32) for k, v in w0.items()}
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    np.savez(tmp_path / "w0.npz", **w0)
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--optimizer", optimizer,
            "--lr", "0.1", "--batch-size", "4", "--epochs", "2", "-o", str(tmp_path / "w.npz"), "--quiet"]
    assert main([*argv, "--weights", str(tmp_path / "w0.npz"), "--weight-decay", "0.5",
                 "--no-decay", "*.bias", "--no-decay", "norm"]) == 0
    ours = np.load(tmp_path / "w.npz")

    w = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    plain = [w[k] for k in ("fc.bias", "norm.weight", "norm.bias", "out.bias")]
    kind = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
    opt = kind([{"params": [w["fc.weight"], w["out.weight"]]}, {"params": plain, "weight_decay": 0.0}],
               lr=0.1, weight_decay=0.5)
    for epoch in (1, 2):
        order = np.random.default_rng([0, epoch]).permutation(8)
        for idx in (order[:4], order[4:]):
            h = F.linear(torch.from_numpy(x[idx]), w["fc.weight"], w["fc.bias"])
            h = torch.tanh(F.layer_norm(h, (5,), w["norm.weight"], w["norm.bias"]))
            loss = F.mse_loss(F.linear(h, w["out.weight"], w["out.bias"]), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for k, v in w.items():
        np.testing.assert_allclose(ours[k], v.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=k)
    assert main([*argv, "--weight-decay", "0.5", "--no-decay", "*.gamma"]) == 1
    assert "--no-decay *.gamma: no trainable parameter of m matches" in capsys.readouterr().err
    if optimizer == "sgd":
        assert main([*argv, "--no-decay", "*.bias"]) == 2
        assert "--no-decay leaves out weight decay, but sgd has none here" in capsys.readouterr().err


def test_a_freeze_prefix_that_matches_nothing_suggests_the_closest_prefix(tmp_path, capsys):
    """`--freeze transformer.decoder.layer` (one letter short of a prefix) suggested a leaf parameter name
    ('transformer.decoder.layers.0.fc.bias'); a pattern that reads as a prefix is compared with prefixes, one
    that reads as a full name (`head.wieght`) with full names."""
    spec = tmp_path / "t.arch"
    spec.write_text('block layer(x) {\n    return x -> linear(8) as fc -> layernorm as norm\n}\n'
                    'model m(x: float32[B, 8]) -> y {\n    h = x\n    for i in range(2) {\n'
                    '        h = layer(h) as "transformer.decoder.layers.{i}"\n    }\n'
                    '    y = h -> linear(3) as head\n}\n')
    argv = ["build", str(spec), "--train", "-o", str(tmp_path / "t.onnx")]
    for pattern, near in [("transformer.decoder.layer", "transformer.decoder.layers"), ("transformr", "transformer"),
                          ("transformer.decoder.layers.1.fcc", "transformer.decoder.layers.1.fc"),
                          ("head.wieght", "head.weight")]:
        assert main([*argv, "--freeze", pattern]) == 1
        err = capsys.readouterr().err
        assert f"--freeze {pattern}: no trainable parameter of m matches; did you mean '{near}'?" in err, err
    assert not list(tmp_path.glob("*.onnx"))


def test_a_wildcard_pattern_names_a_layers_parameters_as_a_prefix_does(tmp_path, capsys):
    """LoRA's --freeze '*.base_layer' matched nothing (a prefix up to a dot held for literal patterns alone), and
    torch's q_proj.weight, now q_proj.base_layer.weight, was said as the LoRA weights' names (lora hunt)."""
    spec = tmp_path / "l.arch"
    spec.write_text('block lora(x, out) {\n    h = x -> linear(out) as base_layer\n'
                    '    a = parameter([2, shape(x)[-1]], init="normal") as "lora_A.weight"\n'
                    '    return h + x @ a.T @ parameter([out, 2]).T\n}\n'
                    'model m(x: float32[B, 8]) -> y {\n    y = x -> lora(8) as q_proj -> lora(3) as v_proj\n}\n')
    from archdsl import driver
    from archdsl.autodiff import TrainConfig
    ct = driver.compile_train_file(spec, TrainConfig(freeze=("*.base_layer",)))
    assert sorted(ct.info.params) == ["q_proj.lora_A.weight", "q_proj.param_0", "v_proj.lora_A.weight",
                                      "v_proj.param_0"]
    assert main(["build", str(spec), "--train", "--freeze", "q_proj.weight", "-o", str(tmp_path / "l.onnx")]) == 1
    assert "did you mean 'q_proj.base_layer.weight' or 'q_proj.lora_A.weight' (inside q_proj)?" in \
        capsys.readouterr().err


def test_a_near_miss_between_equally_close_names_suggests_them_all(tmp_path, capsys):
    """`--freeze fc` of fc1 and fc2 suggested fc2 alone (difflib's pick among ties is the one sorting last)."""
    spec = tmp_path / "t.arch"
    spec.write_text("model m(x: float32[B, 8]) -> y {\n    y = x -> linear(8) as fc1 -> linear(3) as fc2\n}\n")
    assert main(["build", str(spec), "--train", "--freeze", "fc", "-o", str(tmp_path / "t.onnx")]) == 1
    assert "did you mean 'fc1' or 'fc2'?" in capsys.readouterr().err


def test_a_model_with_nothing_to_train_is_said_at_its_header(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text("model n(x: float32[B, 4]) -> y {\n    y = relu(x)\n}\n")
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "n.onnx")]) == 1
    assert capsys.readouterr().err.startswith(f"{spec}:1:1: error: model n has no trainable parameters\n")


def test_no_decay_may_name_what_freeze_froze(tmp_path, capsys):
    """`--freeze fc1 --no-decay fc1.bias` (or '*.bias' for both): the frozen parameter gets no decay anyway,
    as in a torch param group; it was refused as matching no parameter, with a suggestion naming another
    layer. A pattern that names nothing at all is still refused."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8) as fc1 -> tanh -> linear(3) as fc2\n}\n")
    argv = ["build", str(spec), "--train", "--optimizer", "adamw", "-o", str(tmp_path / "m.onnx")]
    assert main([*argv, "--freeze", "fc1", "--no-decay", "fc1.bias"]) == 0
    assert main([*argv, "--freeze", "*.bias", "--no-decay", "*.bias"]) == 0
    capsys.readouterr()
    assert main([*argv, "--freeze", "fc1", "--no-decay", "fc3.bias"]) == 1
    assert "--no-decay fc3.bias: no trainable parameter of m matches" in capsys.readouterr().err
    bn = tmp_path / "bn.arch"  # a BatchNorm's running mean is a buffer, never a parameter --freeze froze
    bn.write_text("model b(x: float32[B, 4]) -> y {\n    y = x -> linear(4) as fc -> batchnorm1d as bn\n}\n")
    assert main(["build", str(bn), "--train", "--optimizer", "adamw", "-o", str(tmp_path / "b.onnx"),
                 "--freeze", "bn", "--no-decay", "bn.running_mean"]) == 1
    assert "--no-decay bn.running_mean: no trainable parameter of b matches" in capsys.readouterr().err
