"""A loss the spec computes itself (an output named `loss`, built from cross_entropy, bce_with_logits and
arithmetic): the train step minimizes it, as torch's loss.backward() on the same expression does, and
`archdsl train` runs it on data that holds the model's inputs only."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl import driver, runtime
from archdsl.cli import main

from .harness import compile_step, config, initial, ort_steps, rel

MULTITASK = """\
model multitask(x: float32[B, 8], y: int64[B], t: float32[B, 2], m: float32[B, 1]) -> (loss, logits) {
    h = x -> linear(16) as trunk -> tanh
    logits = h -> linear(3) as cls
    r = h -> linear(2) as reg
    flag = h -> linear(1) as flag
    loss = cross_entropy(logits, y, label_smoothing=0.1) + 0.5 * mean((r - t) ** 2) + bce_with_logits(flag, m)
}
"""


def _data(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    return {"x": x, "y": rng.integers(0, 3, n), "t": rng.standard_normal((n, 2)).astype(np.float32),
            "m": (rng.random((n, 1)) > 0.5).astype(np.float32)}


def _steps_like_torch_sgd(ct, data: list[dict], loss_of, **sgd) -> None:
    """The step over `data` gives the losses and final weights of torch.optim.SGD(**sgd) minimizing
    loss_of(weights, batch) from the step's initial weights."""
    import torch
    losses, states = ort_steps(ct, data)
    w = {k: torch.tensor(v, requires_grad=True) for k, v in initial(ct).items() if k in ct.info.params}
    opt = torch.optim.SGD(list(w.values()), **sgd)
    want = []
    for d in data:
        opt.zero_grad()
        loss = loss_of(w, d)
        loss.backward()
        opt.step()
        want.append(float(loss.detach()))
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    for k, v in w.items():
        assert rel(states[-1][k], v.detach().numpy()) < 1e-5, k


def test_a_multitask_loss_trains_as_torch():
    """Three heads on one trunk, each with its own loss, summed with weights: SGD with momentum over four
    batches gives torch's losses and weights (a hand-written torch module, the same initial weights)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    ct, _ = compile_step("", config(loss=None, opt="sgd", lr=0.1, momentum=0.9), text=MULTITASK)
    assert not ct.info.labelled and ct.info.output == "loss"
    assert "labels" not in {i.name for i in ct.step_model.graph.input}

    def loss_of(w, d):
        h = torch.tanh(F.linear(torch.from_numpy(d["x"]), w["trunk.weight"], w["trunk.bias"]))
        return (F.cross_entropy(F.linear(h, w["cls.weight"], w["cls.bias"]), torch.from_numpy(d["y"]),
                                label_smoothing=0.1)
                + 0.5 * F.mse_loss(F.linear(h, w["reg.weight"], w["reg.bias"]), torch.from_numpy(d["t"]))
                + F.binary_cross_entropy_with_logits(F.linear(h, w["flag.weight"], w["flag.bias"]),
                                                     torch.from_numpy(d["m"])))
    _steps_like_torch_sgd(ct, [_data(6, s) for s in range(4)], loss_of, lr=0.1, momentum=0.9)


def test_archdsl_train_on_a_spec_loss(tmp_path, capsys):
    """The data holds the model's inputs only (one may be named labels); the epoch lines give the loss and
    the held-out loss, which is the eval model's own output on the held-out set with the trained weights."""
    spec = tmp_path / "mt.arch"
    spec.write_text(MULTITASK.replace("y: int64", "labels: int64").replace("logits, y,", "logits, labels,"))
    d = _data(40, 0)
    d["labels"] = d.pop("y")
    np.savez(tmp_path / "d.npz", **d)
    np.savez(tmp_path / "v.npz", **{k: v[:24] for k, v in d.items()})
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "v.npz"),
            "-o", str(tmp_path / "w.npz"), "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 3 and all(" acc " not in ln for ln in lines), err
    first, last = (float(re.search(r"  loss (\S+)", ln).group(1)) for ln in (lines[0], lines[-1]))
    assert last < first
    val_loss = float(re.search(r"val_loss (\S+)", lines[-1]).group(1))
    sess = runtime.session(driver.compile_file(spec, weights=str(tmp_path / "w.npz")), "cpu")
    got = sess.run(["loss"], {k: v[:24] for k, v in d.items()})[0]
    assert float(got) == pytest.approx(val_loss, abs=1e-4)

    out = tmp_path / "step.onnx"
    assert main(["build", str(spec), "--train", "-o", str(out)]) == 0
    assert "the model's own loss 'loss' + adamw" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--loss", "mse"], "a model output is named 'loss', which the train step outputs as the loss it minimizes: "
                        "leave out --loss mse to train on the model's own loss, or rename the output"),
    (["--label-smoothing", "0.1"], "label smoothing applies to the cross_entropy loss archdsl adds (--loss "
                                   "cross_entropy); the model computes its own loss "
                                   "(its output 'loss'): give it to the spec's cross_entropy(...)"),
    (["--ignore-index", "-1"], "an ignored label index applies to the cross_entropy loss archdsl adds"),
    (["--output-name", "logits"], "the loss must be a float scalar to minimize; output 'logits' is "
                                  "float32[B, 3] (reduce it: mean(...))"),
])
def test_settings_that_do_not_fit_a_spec_loss(tmp_path, capsys, extra, message):
    spec = tmp_path / "mt.arch"
    spec.write_text(MULTITASK)
    np.savez(tmp_path / "d.npz", **_data(8, 0))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"),
                 "--quiet", *extra]) == 1
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize("spec, extra, where", [
    ("model m(x: float32[B, 4], labels: int64[B]) -> y {\n    y = x -> linear(3) as fc\n}\n", [],
     "t.arch:1:27: error: a model input is named 'labels'"),
    ("model m(x: float32[B, 4]) -> (y, loss) {\n    y = x -> linear(3) as fc\n    loss = mean(y)\n}\n",
     ["--loss", "mse"], "t.arch:3:12: error: a model output is named 'loss'"),
])
def test_train_step_name_clashes_point_at_the_declaration(tmp_path, capsys, spec, extra, where):
    """These two said no file:line:col and showed no source line, where the clash with `lr` did."""
    (tmp_path / "t.arch").write_text(spec)
    assert main(["build", str(tmp_path / "t.arch"), "--train", *extra]) == 1
    err = capsys.readouterr().err
    assert where in err and "^^^" in err


@pytest.mark.parametrize("extra, setting", [(["--label-smoothing", "0.1"], "label smoothing"),
                                            (["--ignore-index", "3"], "an ignored label index")])
def test_a_loss_setting_with_an_explicit_loss_model_says_where_it_goes(tmp_path, capsys, extra, setting):
    """With --loss model given, these said "... applies to the cross_entropy loss only", though the spec's
    own loss may well be a cross_entropy: the same advice as where the model's loss is taken by default."""
    spec = tmp_path / "mt.arch"
    spec.write_text(MULTITASK)
    assert main(["build", str(spec), "--train", "--loss", "model", "-o", str(tmp_path / "s.onnx"), *extra]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{setting} applies to the cross_entropy loss archdsl adds (--loss cross_entropy); with --loss model " \
           "the spec computes its own: give it to the " \
           "spec's cross_entropy(...)" in err
    assert not list(tmp_path.glob("*.onnx"))


def test_loss_model_names_its_output(tmp_path, capsys):
    """--loss model trains on the output --output-name names (default: loss), which must be a scalar."""
    spec = tmp_path / "t.arch"
    spec.write_text("model t(x: float32[B, 4], y: int64[B]) -> (total, logits) {\n"
                    "    logits = x -> linear(3) as fc\n"
                    "    total = cross_entropy(logits, y)\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((16, 4)).astype(np.float32), y=rng.integers(0, 3, 16))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet",
            "--epochs", "1"]
    assert main([*argv, "--loss", "model"]) == 1
    assert "model t has no output 'loss' (outputs: total, logits); --loss model minimizes the model's output " \
           "named loss, or the one --output-name names" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--loss", "model", "--output-name", "total"]) == 0
    assert main([*argv, "--output-name", "total"]) == 1  # without --loss model: cross_entropy on 'total'
    err = " ".join(capsys.readouterr().err.split())
    assert f"{spec}:3:13: error: cross_entropy needs float logits with a class dim; output 'total' is float32[]; " \
           "cross_entropy is the default loss: --loss names another" in err
    assert main([*argv, "--output-name", "total", "--loss", "cross_entropy"]) == 1  # chosen: no default's hint
    assert "is float32[]; if 'total' is the loss itself, --loss model trains on it\n" in capsys.readouterr().err


def test_labels_of_a_spec_cross_entropy_are_checked(tmp_path, capsys):
    """-1 read as the last class (onnxruntime's GatherElements), 3 of 3 classes a raw onnxruntime error:
    the data's labels are checked against the cross_entropy they feed, by train and by run, and an
    ignore_index of the spec is allowed; run draws random labels within the classes."""
    spec = tmp_path / "ce.arch"
    spec.write_text("model m(x: float32[B, 3], y: int64[B]) -> loss {\n"
                    "    loss = cross_entropy(x -> linear(3) as fc, y)\n}\n")
    x = np.ones((4, 3), np.float32)
    for bad, at in (([0, 1, -1, 2], "'y'[2] is -1"), ([0, 3, 1, 2], "'y'[1] is 3")):
        np.savez(tmp_path / "d.npz", x=x, y=np.array(bad))
        assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz")]) == 1
        assert f"{at}, but the cross_entropy it feeds (cross_entropy_0) has 3 classes: labels are 0..2 (1 out of " \
               f"range)" in capsys.readouterr().err
        np.save(tmp_path / "y.npy", np.array(bad))
        assert main(["run", str(spec), "--input", f"y={tmp_path / 'y.npy'}"]) == 1
        assert "has 3 classes: labels are 0..2" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "64", "--repeat", "1"]) == 0  # random labels: 0..2
    spec.write_text(spec.read_text().replace("y)", "y, ignore_index=-1)"))
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, -1, 2]))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"),
                 "--epochs", "1", "--quiet"]) == 0


def test_a_loss_output_that_would_be_hidden_is_refused(tmp_path, capsys):
    """--loss model --output-name aux on a model with an output named loss: the step's 'loss' (aux) hid the
    model's own."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4], y: int64[B]) -> (loss, aux) {\n"
                    "    h = x -> linear(3) as fc\n    loss = cross_entropy(h, y)\n    aux = mean(h ** 2)\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "model", "--output-name", "aux",
                 "-o", str(tmp_path / "s.onnx")]) == 1
    assert "would hide the model's own output named loss" in capsys.readouterr().err


def test_arrays_the_step_does_not_read_are_noted(tmp_path, capsys):
    """A 'labels' array left in the data of a spec loss was ignored without a word."""
    spec = tmp_path / "mt.arch"
    spec.write_text(MULTITASK)
    d = _data(8, 0)
    np.savez(tmp_path / "d.npz", **d, labels=d["y"])
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
                 "-o", str(tmp_path / "w.npz"), "--epochs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"note: {tmp_path / 'd.npz'} also holds 'labels', which the step does not read (it reads x, "
                     "y, t, m)") == 1


def test_class_weights_written_with_reduction_none_train_as_torch():
    """torch's F.cross_entropy(weight=w) in a spec: per-label losses (reduction="none") weighted by
    take(w, labels), over the sum of those weights; two SGD steps give torch's losses and weights."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    text = """
model weighted(x: float32[B, 8], y: int64[B]) -> loss {
    logits = x -> linear(3) as fc
    w = take(tensor([1.0, 3.0, 0.5]), y)
    loss = sum(cross_entropy(logits, y, reduction="none") * w) / sum(w)
}
"""
    ct, _ = compile_step("", config(loss=None, opt="sgd", lr=0.2), text=text)
    data = [{k: v for k, v in _data(6, s).items() if k in ("x", "y")} for s in range(2)]
    _steps_like_torch_sgd(ct, data, lambda w, d: F.cross_entropy(
        F.linear(torch.from_numpy(d["x"]), w["fc.weight"], w["fc.bias"]), torch.from_numpy(d["y"]),
        weight=torch.tensor([1.0, 3.0, 0.5])), lr=0.2)


def test_a_batch_whose_labels_are_all_ignored_is_skipped_as_with_ignore_index(tmp_path, capsys):
    """A spec's cross_entropy(..., ignore_index=-100) over a batch of padding only: its loss is 0/0 (NaN, a
    zero gradient, as torch's); training went on with --ignore-index but stopped here, blaming the lr. A
    file of padding only is refused, as for --ignore-index."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 8], y: int64[B]) -> (loss, logits) {\n"
                    "    logits = x -> linear(5) as fc\n    loss = cross_entropy(logits, y, ignore_index=-100)\n}\n")
    rng = np.random.default_rng(0)
    y = np.full(40, -100)
    y[:4] = rng.integers(0, 5, 4)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((40, 8)).astype(np.float32), y=y)
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"),
            "--batch-size", "4", "--epochs", "2", "--quiet"]
    assert main(argv) == 0
    assert all("nan" not in ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch"))
    np.savez(tmp_path / "pad.npz", x=np.ones((4, 8), np.float32), y=np.full(4, -100))
    assert main([*argv[:3], str(tmp_path / "pad.npz"), *argv[4:]]) == 1
    assert "every value of 'y' is the ignore_index -100 of the cross_entropy it feeds" in capsys.readouterr().err


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_a_contrastive_loss_over_the_batch_trains_as_torch(smoothing):
    """CLIP's loss: logits [B, B] between two embeddings, cross_entropy against positions along both axes; the
    class dim is the symbolic batch, known at run time only (the gradient's one-hot read a fixed depth and
    refused it). Two batch sizes, against torch's SGD."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    text = f"""
model clip(a: float32[B, 6], b: float32[B, 5]) -> loss {{
    za = normalize(a -> linear(4) as va, dim=1)
    zb = normalize(b -> linear(4) as vb, dim=1)
    logits = za @ zb.T * 3.0
    loss = (cross_entropy(logits, positions(logits, dim=0), label_smoothing={smoothing})
            + cross_entropy(logits.T, positions(logits, dim=0), label_smoothing={smoothing})) / 2
}}
"""
    ct, _ = compile_step("", config(loss=None, opt="sgd", lr=0.5), text=text)
    rng = np.random.default_rng(4)
    data = [{"a": rng.standard_normal((n, 6)).astype(np.float32), "b": rng.standard_normal((n, 5)).astype(np.float32)}
            for n in (5, 3)]

    def loss_of(w, d):
        za = F.normalize(F.linear(torch.from_numpy(d["a"]), w["va.weight"], w["va.bias"]), dim=1)
        zb = F.normalize(F.linear(torch.from_numpy(d["b"]), w["vb.weight"], w["vb.bias"]), dim=1)
        logits = za @ zb.T * 3.0
        y = torch.arange(len(d["a"]))
        return (F.cross_entropy(logits, y, label_smoothing=smoothing)
                + F.cross_entropy(logits.T, y, label_smoothing=smoothing)) / 2
    _steps_like_torch_sgd(ct, data, loss_of, lr=0.5)


def test_the_held_out_loss_of_a_spec_with_ignore_index_is_the_mean_over_counted_labels(tmp_path, capsys):
    """Evaluation runs in batches (--batch-size, 32 here): a batch of padding only gave NaN (and --patience
    stopped on it), and batches were weighed by their examples rather than by the labels that count. The printed
    val_loss is now torch's cross_entropy over the whole file."""
    torch = pytest.importorskip("torch")
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4], y: int64[B]) -> (loss, logits) {\n"
                    "    logits = x -> linear(3) as fc\n    loss = cross_entropy(logits, y, ignore_index=-1)\n}\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    y[:256] = -1                        # the first evaluation batches are all padding
    y[256:][rng.random(44) < 0.5] = -1  # the last ones have half their labels ignored
    np.savez(tmp_path / "v.npz", x=x, y=y)
    np.savez(tmp_path / "w.npz", **{"fc.weight": rng.standard_normal((3, 4)).astype(np.float32),
                                    "fc.bias": rng.standard_normal(3).astype(np.float32)})
    assert main(["train", str(spec), "--data", str(tmp_path / "v.npz"), "--val", str(tmp_path / "v.npz"),
                 "--weights", str(tmp_path / "w.npz"), "--epochs", "0"]) == 0
    captured = capsys.readouterr()
    line = captured.out + captured.err
    got = float(re.search(r"val_loss (\S+)", line).group(1))
    w = np.load(tmp_path / "w.npz")
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x) @ torch.from_numpy(w["fc.weight"]).T
                                             + torch.from_numpy(w["fc.bias"]), torch.from_numpy(y), ignore_index=-1)
    assert got == pytest.approx(want.item(), abs=1e-4)


def test_labels_read_through_a_shift_or_a_flatten_count_as_labels(tmp_path, capsys):
    """A causal LM's cross_entropy(logits[:, :-1], ids[:, 1:], ignore_index=0): a batch whose shifted labels are
    all padding is 0/0 (NaN, a zero gradient, as torch's), and `archdsl train` stopped there blaming the lr,
    since only labels read as given were counted; its held-out loss was NaN for the epoch (distill hunt). Now
    the mean over the labels that count, as torch's over the file."""
    torch = pytest.importorskip("torch")
    spec = tmp_path / "lm.arch"
    spec.write_text("model lm(ids: int64[B, T]) -> (loss, logits) {\n    logits = ids -> embedding(10, 8) as wte "
                    "-> linear(10) as head\n    loss = cross_entropy(reshape(logits[:, :-1], [-1, 10]), "
                    "reshape(ids[:, 1:], [-1]), ignore_index=0)\n}\n")
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 10, (8, 6))
    ids[5:, 1:] = 0  # the last three examples: one token, then padding
    np.savez(tmp_path / "d.npz", ids=ids)
    w = {"wte.weight": rng.standard_normal((10, 8)).astype(np.float32),
         "head.weight": rng.standard_normal((10, 8)).astype(np.float32), "head.bias": np.zeros(10, np.float32)}
    np.savez(tmp_path / "w.npz", **w)
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
            "--batch-size", "1", "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "o.npz")]
    assert main([*argv, "--epochs", "1"]) == 0
    assert "nan" not in capsys.readouterr().err
    assert main([*argv, "--epochs", "0"]) == 0
    captured = capsys.readouterr()
    got = float(re.search(r"val_loss (\S+)", captured.out + captured.err).group(1))
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    logits = t["wte.weight"][torch.from_numpy(ids)] @ t["head.weight"].T
    want = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 10), torch.from_numpy(ids[:, 1:]).reshape(-1),
                                             ignore_index=0)
    assert got == pytest.approx(want.item(), abs=1e-4)


def test_a_loss_that_mixes_a_masked_mean_with_other_terms_weighs_batches_by_examples(tmp_path, capsys):
    """Semi-supervised distillation: a KL over every example plus a cross_entropy whose labels are mostly
    ignored. Its held-out loss was the one labelled batch's alone (batches of no label skipped, the rest weighed
    by their labels, though the loss is finite and the KL a mean over examples); now the mean of the batches'
    losses, as a torch loop's (distill hunt)."""
    spec = tmp_path / "semi.arch"
    spec.write_text("model semi(x: float32[B, 10], y: int64[B], t: float32[B, 5]) -> (loss, s) {\n"
                    "    s = x -> linear(5) as fc\n    lt = log_softmax(t, axis=-1)\n"
                    "    kl = mean(sum(exp(lt) * (lt - log_softmax(s, axis=-1)), dim=1))\n"
                    "    ce = cross_entropy(s, y, ignore_index=-1)\n    loss = kl + where(isnan(ce), 0.0, ce)\n}\n")
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((16, 10)).astype(np.float32), "y": np.full(16, -1),
            "t": rng.standard_normal((16, 5)).astype(np.float32)}
    data["y"][0] = 2
    np.savez(tmp_path / "d.npz", **data)
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
                 "--batch-size", "4", "--epochs", "0", "-o", str(tmp_path / "o.npz")]) == 0
    captured = capsys.readouterr()
    got = float(re.search(r"val_loss (\S+)", captured.out + captured.err).group(1))
    sess = runtime.session(archdsl.compile_file(spec))
    want = np.mean([sess.run(["loss"], {k: v[i:i + 4] for k, v in data.items()})[0] for i in range(0, 16, 4)])
    assert got == pytest.approx(float(want), abs=1e-4)


@pytest.mark.parametrize("loss, scale", [("0.5 * cross_entropy(s, y, ignore_index=-1)", 0.5),
                                         ("cross_entropy(s, y, ignore_index=-1) / 4.0", 0.25),
                                         ("cross_entropy(s, y, ignore_index=-1)", 1.0)])
def test_a_scaled_masked_mean_or_one_beside_another_reading_weighs_by_labels(tmp_path, capsys, loss, scale):
    """0.5 * ce, ce / k, or ce beside an aux output reading the same labels: the loss is still a mean over the
    labels that count, and its held-out figure weighed batches by examples (1.9319 for 2.0217: review81 hunt)."""
    torch = pytest.importorskip("torch")
    spec = tmp_path / "c.arch"
    spec.write_text(f"model c(x: float32[B, 6], y: int64[B]) -> (loss, s, aux) {{\n    s = x -> linear(4) as fc\n"
                    f"    loss = {loss}\n    aux = cross_entropy(s * 2.0, y, ignore_index=-1)\n}}\n")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 6)).astype(np.float32), rng.integers(0, 4, 12)
    y[[0, 1, 2, 5, 9]] = -1
    np.savez(tmp_path / "d.npz", x=x, y=y)
    w = {"fc.weight": rng.standard_normal((4, 6)).astype(np.float32), "fc.bias": np.zeros(4, np.float32)}
    np.savez(tmp_path / "w.npz", **w)
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"),
                 "--batch-size", "4", "--weights", str(tmp_path / "w.npz"), "--epochs", "0",
                 "-o", str(tmp_path / "o.npz")]) == 0
    captured = capsys.readouterr()
    got = float(re.search(r"val_loss (\S+)", captured.out + captured.err).group(1))
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x) @ torch.from_numpy(w["fc.weight"]).T,
                                             torch.from_numpy(y), ignore_index=-1) * scale
    assert got == pytest.approx(want.item(), abs=1e-4)


def test_a_per_position_cross_entropy_with_ignore_index_weighs_batches_by_positions(tmp_path, capsys):
    """mean(cross_entropy(..., ignore_index, reduction="none")) is a mean over every position, ignored ones
    as 0: its evaluation chunks weigh by their examples, not by the labels that count (as a mean reduction's
    do); weighing them by labels gave 0.2606 where torch gives 0.2486."""
    torch = pytest.importorskip("torch")
    spec = tmp_path / "s.arch"
    spec.write_text("model s(x: float32[B, T, 4], labels: int64[B, T]) -> loss {\n    loss = mean(cross_entropy("
                    "x -> linear(3) as fc, labels, ignore_index=-100, reduction=\"none\"))\n}\n")
    r = np.random.default_rng(0)
    x = r.standard_normal((300, 6, 4)).astype(np.float32)
    y = r.integers(0, 3, (300, 6))
    y[:, 3:], y[:256, 1:], y[280:] = -100, -100, -100
    np.savez(tmp_path / "v.npz", x=x, labels=y)
    w = {"fc.weight": r.standard_normal((3, 4)).astype(np.float32), "fc.bias": np.zeros(3, np.float32)}
    np.savez(tmp_path / "w.npz", **w)
    assert main(["train", str(spec), "--loss", "model", "--data", str(tmp_path / "v.npz"), "--val",
                 str(tmp_path / "v.npz"), "--weights", str(tmp_path / "w.npz"), "--epochs", "0"]) == 0
    captured = capsys.readouterr()
    got = float(re.search(r"val_loss (\S+)", captured.out + captured.err).group(1))
    logits = torch.from_numpy(x) @ torch.from_numpy(w["fc.weight"]).T
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), torch.from_numpy(y).reshape(-1),
                                             ignore_index=-100, reduction="none").mean()
    assert got == pytest.approx(want.item(), abs=1e-4)


def test_a_missing_output_lists_a_few_of_many(tmp_path, capsys):
    """4000 outputs made one 27 KB error line."""
    from archdsl.cli import main
    spec = tmp_path / "w.arch"
    outs = ", ".join(f"o{i}" for i in range(40))
    spec.write_text(f"model w(x: float32[B, 4]) -> ({outs}) {{\n"
                    + "".join(f"    o{i} = x * {i}.0\n" for i in range(40)) + "}\n")
    assert main(["build", str(spec), "--train", "--loss", "model", "-o", str(tmp_path / "w.onnx")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "(outputs: o0, o1, o2, o3, o4, o5, o6, o7, ... (40 in all))" in err and "o39" not in err


def test_the_banner_names_the_output_a_loss_reads_of_several(tmp_path, capsys):
    """With several outputs, --loss cross_entropy trained on the first without a word (a beginner's `-> (feat,
    logits)` trained the features as 8-class logits)."""
    spec = tmp_path / "two.arch"
    spec.write_text("model m(x: float32[B, 4]) -> (feat, logits) {\n    feat = x -> linear(8) as f\n"
                    "    logits = feat -> linear(3) as head\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((16, 4)).astype(np.float32), labels=rng.integers(0, 3, 16))
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "-o", str(tmp_path / "w.npz")]
    assert main(argv) == 0
    assert "cross_entropy on output 'feat' (of feat, logits)" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--output-name", "logits"]) == 0
    assert "cross_entropy on output 'logits' (of feat, logits)" in " ".join(capsys.readouterr().err.split())


def test_evaluation_batches_draw_random_numbers_of_their_own(tmp_path, capsys):
    """The eval model's seed was the run's for every batch: a spec's randn_like drew the same numbers in each,
    so 2048 examples scored exactly what their first 256 did (one draw averaged, not 8)."""
    spec = tmp_path / "noisy.arch"
    spec.write_text("model noisy(x: float32[B, 4]) -> (loss, noise) {\n    noise = randn_like(x)\n"
                    "    loss = mean((x * parameter([4], init=\"ones\") as s - noise) ** 2)\n}\n")
    losses = []
    for n in (256, 2048):
        np.savez(tmp_path / "v.npz", x=np.zeros((n, 4), np.float32))
        assert main(["train", str(spec), "--loss", "model", "--data", str(tmp_path / "v.npz"), "--epochs", "0",
                     "--batch-size", "256", "--quiet"]) == 0
        losses.append(float(re.search(r"evaluation\s+loss (\S+)", capsys.readouterr().err).group(1)))
    assert losses[0] != losses[1] and abs(losses[1] - 1.0) < 0.05, losses


def test_an_output_name_of_a_scalar_loss_without_loss_model_says_to_add_it(tmp_path, capsys):
    """--output-name total of the spec's own scalar loss, --loss left at its default: the message listed --loss
    mse and an output named loss, never the --loss model the user needed (distill hunt)."""
    spec = tmp_path / "t.arch"
    spec.write_text("model t(x: float32[B, 4], y: int64[B]) -> (total, logits) {\n    logits = x -> linear(3) as fc\n"
                    "    total = cross_entropy(logits, y)\n}\n")
    argv = ["build", str(spec), "--train", "--output-name", "total", "-o", str(tmp_path / "t.onnx")]
    assert main(argv) == 1
    assert "if 'total' is the loss itself, --loss model trains on it" in capsys.readouterr().err
    assert main([*argv, "--loss", "model"]) == 0
