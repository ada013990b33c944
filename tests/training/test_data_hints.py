"""What `archdsl train` says of data that does not fit (training/data.py): the loss and output the labels are
for, and the likely fix (one-hot rows, regression targets under the default loss, class indices under mse or
bce, another output, a channels-last image, a dim of 1 too few or too many, whole numbers stored as floats,
1-based labels, class names); integer pixels cast as they are get a note. Each said only "the model takes
[...]" before, or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main

MLP = "model mlp(x: float32[B, 6]) -> logits {\n    logits = x -> linear(8) as fc1 -> relu -> linear(4) as fc2\n}\n"
TWO = ("model two(x: float32[B, 6]) -> (logits, stats) {\n    logits = x -> linear(4) as fc\n"
       "    stats = x -> linear(2) as reg\n}\n")
CNN = ("model cnn(x: float32[B, 1, 8, 8]) -> logits {\n"
       "    logits = x -> conv2d(2, 3) as c -> flatten -> linear(4) as fc\n}\n")
BIN = "model bin(x: float32[B, 6]) -> y {\n    y = x -> linear(1) as fc\n}\n"
N = 12
RNG = np.random.default_rng(0)
X = RNG.standard_normal((N, 6)).astype(np.float32)
IMG = RNG.standard_normal((N, 1, 8, 8)).astype(np.float32)
CLASSES = RNG.integers(0, 4, N)


def train(tmp_path, capsys, spec: str, flags=(), **arrays) -> tuple[int, str]:
    (tmp_path / "s.arch").write_text(spec)
    np.savez(tmp_path / "d.npz", **arrays)
    rc = main(["train", str(tmp_path / "s.arch"), "--data", str(tmp_path / "d.npz"), "--epochs", "1",
               "-o", str(tmp_path / "w.npz"), *flags])
    return rc, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("spec, flags, arrays, said", [
    (MLP, [], {"x": X, "labels": np.eye(4, dtype=np.float32)[CLASSES]},
     "'labels' has shape [12, 4], the model takes [B] (cross_entropy's labels for output 'logits' [B, 4]); "
     "cross_entropy takes one class index per example: one-hot rows become labels.argmax(-1); targets of the "
     "output's shape take --loss mse (or bce_with_logits for 0/1 targets)"),
    (MLP, ["--loss", "bce_with_logits"], {"x": X, "labels": CLASSES},
     "'labels' has shape [12], the model takes [B, 4] (bce_with_logits's labels for output 'logits' [B, 4]); "
     "bce_with_logits takes a float 0/1 target of the output's shape: class indices go with --loss cross_entropy"),
    (TWO, ["--loss", "mse"], {"x": X, "labels": X[:, :2]},
     "'labels' has shape [12, 2], the model takes [B, 4] (mse's labels for output 'logits' [B, 4]); output 'stats' "
     "is [B, 2]: --output-name stats trains on it"),
    (BIN, ["--loss", "mse"], {"x": X, "labels": CLASSES.astype(np.float32)},  # no "class indices" for one output
     "'labels' has shape [12], the model takes [B, 1] (mse's labels for output 'y' [B, 1]); labels[:, None] adds the "
     "missing dim of 1"),
    (MLP, [], {"x": X, "labels": CLASSES[:, None]},
     "'labels' has shape [12, 1], the model takes [B] (cross_entropy's labels for output 'logits' [B, 4]); "
     "labels.squeeze(1) drops the dim of 1"),
    (CNN, [], {"x": IMG.transpose(0, 2, 3, 1), "labels": CLASSES},
     "'x' has shape [12, 8, 8, 1], the model takes [B, 1, 8, 8]; channels last? x.transpose(0, 3, 1, 2) is "
     "[12, 1, 8, 8]"),
    (CNN, [], {"x": IMG[:, 0], "labels": CLASSES}, "'x' has shape [12, 8, 8], the model takes [B, 1, 8, 8]; "
                                                   "x[:, None] adds the missing dim of 1"),
    (MLP, [], {"x": X, "labels": CLASSES.astype(np.float32)},
     "'labels' must hold integers (int64), got float32; its values are whole numbers: store "
     "labels.astype(np.int64)"),
    (MLP, [], {"x": X, "labels": CLASSES + 0.5}, "'labels' must hold integers (int64), got float64; cross_entropy "
                                                 "takes class indices, not probabilities"),
    (MLP, [], {"x": X, "labels": np.full(N, 1e30)}, "'labels' must hold integers (int64), got float64; cross_entropy "
                                                    "takes class indices, not probabilities"),  # (no cast: review53)
    (MLP, [], {"x": X, "labels": np.arange(N) % 4 + 1},
     "labels[3] is 4, but 'logits' has 4 classes: cross_entropy takes class indices 0..3 (3 labels out of "
     "range); the labels run 1..4: store labels - 1"),
    (MLP, [], {"x": X, "labels": np.where(np.arange(N) % 5 == 4, 255, CLASSES)},
     "labels[4] is 255, but 'logits' has 4 classes: cross_entropy takes class indices 0..3 (2 labels out of "
     "range); if 255 marks what the loss skips (a segmentation's unlabelled pixels), --ignore-index 255"),
    (MLP, [], {"x": X, "labels": np.array(["cat", "dog", "owl"] * 4)},
     "'labels' holds <U3 values; the model takes int64; class names become indices with np.unique(labels, "
     "return_inverse=True)[1]"),
])
def test_data_that_does_not_fit_says_what_it_is_likely_meant_for(tmp_path, capsys, spec, flags, arrays, said):
    rc, err = train(tmp_path, capsys, spec, flags, **arrays)
    assert rc == 1 and err.endswith(said), err
    assert not (tmp_path / "w.npz").exists()


def test_other_mistakes_get_no_guess(tmp_path, capsys):
    rc, err = train(tmp_path, capsys, MLP, (), x=X, labels=np.zeros((N, 3), np.int64))
    assert rc == 1 and err.endswith("'labels' has shape [12, 3], the model takes [B] (cross_entropy's labels for "
                                    "output 'logits' [B, 4])"), err
    rc, err = train(tmp_path, capsys, CNN, (), x=IMG[:, :, :, :7], labels=CLASSES)
    assert rc == 1 and err.endswith("'x' has shape [12, 1, 8, 7], the model takes [B, 1, 8, 8]"), err


def test_integer_pixels_are_cast_as_they_are_with_a_note(tmp_path, capsys):
    """uint8 images trained at 0..255 (loss 15.7 against 2.2 at 0..1) without a word; float64 is cast
    silently (numpy's default float)."""
    pixels = (RNG.random((N, 1, 8, 8)) * 255).astype(np.uint8)
    rc, err = train(tmp_path, capsys, CNN, (), x=pixels, labels=CLASSES)
    assert rc == 0 and f"note: {tmp_path / 'd.npz'}: 'x' holds uint8 values ({pixels.min()}..{pixels.max()}), " \
                       "cast to float32 as they are (not scaled)" in err, err
    rc, err = train(tmp_path, capsys, CNN, (), x=IMG.astype(np.float64), labels=CLASSES)
    assert rc == 0 and "note:" not in err, err


def test_one_class_under_cross_entropy_is_refused_with_the_binary_loss(tmp_path, capsys):
    """One logit trained with the default loss: 0 whatever the weights, '100% accuracy' on all-zero labels."""
    spec = "model bin(x: float32[B, 6]) -> logit {\n    logit = x -> linear(1) as fc\n}\n"
    rc, err = train(tmp_path, capsys, spec, (), x=X, labels=np.zeros(N, np.int64))
    assert rc == 1 and "error: cross_entropy over output 'logit' (float32[B, 1]): one class, so the loss is 0 " \
                       "whatever the weights; for a yes/no target, --loss bce_with_logits with float 0/1 labels " \
                       "of the output's shape" in err, err
    assert "torch's layout" not in err
    rc, err = train(tmp_path, capsys, spec, ["--loss", "bce_with_logits"], x=X, labels=np.zeros((N, 1), np.float32))
    assert rc == 0, err
    head = "model head(x: float32[B, 6, 1, 1]) -> logits {\n    logits = x -> conv2d(10, 1) as fc\n}\n"
    rc, err = train(tmp_path, capsys, head, (), x=X[:, :, None, None], labels=np.zeros(N, np.int64))
    assert rc == 1 and "one class, so the loss is 0 whatever the weights; for a yes/no target, --loss " \
        "bce_with_logits with float 0/1 labels of the output's shape; if dim 1 (10) holds the classes (torch's " \
        "layout), end the spec with flatten" in " ".join(err.split()), err  # [B, 10, 1, 1]: a conv head's
    one = "model one(x: float32[B, 6]) -> y {\n    y = x -> linear(1) as fc -> unsqueeze(1)\n}\n"  # [B, 1, 1]
    rc, err = train(tmp_path, capsys, one, (), x=X, labels=np.zeros(N, np.int64))
    assert rc == 1 and "one class" in err and "torch's layout" not in err, err  # dim 1 is one class as well


@pytest.mark.parametrize("loss, said", [
    ("cross_entropy", "its class dim is empty, so no label is a class (torch refuses it)"),
    ("mse", "it is empty, and the mean of no elements is NaN"),
])
def test_an_empty_output_is_refused_with_the_outputs_place(tmp_path, capsys, loss, said):
    """Zero classes (an empty slice of the logits): a ZeroDivisionError in the step's lowering under
    cross_entropy, and under mse "error: mean: ..." without a place in the file or a word of the user's."""
    spec = tmp_path / "e.arch"
    spec.write_text("model m(x: float32[B, 8]) -> y {\n    y = (x -> linear(8) as fc)[:, 2:2]\n}\n")
    assert main(["build", str(spec), "--train", "--loss", loss, "-o", str(tmp_path / "e.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:2:9: error: {loss} over output 'y' (float32[B, 0]): {said}"), err


def test_a_missing_or_foreign_data_file_is_said_before_the_step_is_compiled(tmp_path, capsys, monkeypatch):
    """A typo'd --data or --val was found after the train step was compiled (27 s and 7 GB for GPT-2)."""
    from archdsl import driver

    def no_compile(*a, **k):
        raise AssertionError("compiled before the data file was looked at")
    monkeypatch.setattr(driver, "build_train", no_compile)
    (tmp_path / "s.arch").write_text(MLP)
    np.savez(tmp_path / "d.npz", x=X, labels=CLASSES)
    np.save(tmp_path / "one.npy", X)
    for flags, words in ((["--data", "nosuch.npz"], "data file not found: nosuch.npz"),
                         (["--data", str(tmp_path / "d.npz"), "--val", "nosuch.npz"], "data file not found: nosuch"),
                         (["--data", str(tmp_path / "one.npy")], "it holds one unnamed array")):
        rc = main(["train", str(tmp_path / "s.arch"), *flags, "-o", str(tmp_path / "w.npz"), "--quiet"])
        assert rc == 1 and words in capsys.readouterr().err, flags
    assert not (tmp_path / "w.npz").exists()


def test_nan_data_is_taken_by_a_spec_that_finds_the_gaps_itself(tmp_path, capsys):
    """Tabular data marks missing values as NaN; a spec that fills them (isnan, nan_to_num) was refused ("the
    data must be finite") in train and --val alike, where run took the same input (tabular hunt). Another
    input's NaN is still refused."""
    spec = tmp_path / "imp.arch"
    spec.write_text("model imp(num: float32[B, 4], z: float32[B, 2]) -> logit {\n    miss = isnan(num)\n"
                    "    x = where(miss, parameter([4]) as fill, num)\n"
                    "    logit = concat([x, z], axis=1) -> linear(1) as fc\n}\n")
    rng = np.random.default_rng(0)
    num, z = rng.standard_normal((N, 4)).astype(np.float32), rng.standard_normal((N, 2)).astype(np.float32)
    num[3, 1] = np.nan
    labels = rng.integers(0, 2, (N, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", num=num, z=z, labels=labels)
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--val", str(tmp_path / "d.npz"), "--loss",
            "bce_with_logits", "--epochs", "2", "-o", str(tmp_path / "w.npz")]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "loss nan" not in out.out + out.err and "val_loss" in out.out + out.err
    z[2, 0] = np.nan
    np.savez(tmp_path / "d.npz", num=num, z=z, labels=labels)
    assert main(args) == 1
    assert "'z'[2, 0] is nan: the data must be finite" in capsys.readouterr().err
    z[2, 0] = 0.0  # an isinf screen lets inf through, not NaN; a slice or a cast of the input is screened too
    np.savez(tmp_path / "d.npz", num=num, z=z, labels=labels)  # (review58)
    head = "model imp(num: float32[B, 4], z: float32[B, 2]) -> logit {\n"
    tail = "    logit = concat([x, z], axis=1) -> linear(1) as fc\n}\n"
    columns = "    a = num[:, 0:2]\n    x = concat([where(isnan(a), 0.0, a), num[:, 2:]], axis=1)\n"
    for body, rc in (("    x = where(isinf(num), 0.0, num)\n", 1), (columns, 0),
                     ('    x = cast(where(isnan(cast(num, "float64")), 0.0, cast(num, "float64")), "float32")\n', 0)):
        spec.write_text(head + body + tail)
        assert main([*args, "--quiet"]) == rc, (body, capsys.readouterr().err)
        capsys.readouterr()
    for screen in ("num[:, 0:2][:, 1]", "unsqueeze(num, 1)[:, 0, 1]"):  # positions it does not map: the whole
        spec.write_text(head + f"    a = {screen}\n    x = concat([unsqueeze(where(isnan(a), 0.0, a), 1), num[:, 2:3], "
                        "num[:, 2:3], num[:, 2:3]], axis=1)\n" + tail)  # input screened, as before (review60)
        assert main([*args, "--quiet"]) == 0, (screen, capsys.readouterr().err)
    num[5, 3] = np.nan  # outside the columns the slice screens: said as it was (review59)
    np.savez(tmp_path / "d.npz", num=num, z=z, labels=labels)
    spec.write_text(head + columns + tail)
    assert main(args) == 1
    assert "'num'[5, 3] is nan: the data must be finite" in capsys.readouterr().err
