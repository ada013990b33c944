"""`archdsl train` and `archdsl build --train` from the command line: weights, checkpoints, --resume, the
trained inference model, and data mistakes reported as diagnostics (the examples run end to end in
test_examples.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from archdsl import runtime
from archdsl.cli import main
from archdsl.lower import load_weights

from .harness import linear_run

ROOT = Path(__file__).resolve().parents[2]
DIGITS = str(ROOT / "examples/digits/digits.arch")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sklearn = pytest.importorskip("sklearn.datasets")
    d = sklearn.load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    out = tmp_path_factory.mktemp("digits")
    np.savez(out / "train.npz", x=x[idx[:600]], labels=y[idx[:600]])
    np.savez(out / "val.npz", x=x[idx[1500:]], labels=y[idx[1500:]])
    return out


def test_train_resume_and_build_with_weights(data, tmp_path, capsys):
    w = tmp_path / "w.npz"
    args = ["train", DIGITS, "--data", str(data / "train.npz"), "--val", str(data / "val.npz"), "--batch-size", "32",
            "--lr", "5e-3", "-o", str(w), "--quiet", "-D", "width=16"]
    assert main(args + ["--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "val_acc" in err
    ckpt = tmp_path / "w.ckpt.npz"
    with np.load(ckpt) as z:
        assert int(z["__epoch__"]) == 2 and int(z["step"]) == 2 * 19
    assert main(args + ["--epochs", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed" in err and "epoch 3/4" in err and "epoch 1/4" not in err
    last = float(err.split("val_acc ")[-1].split("%")[0])
    assert last > 80.0
    with np.load(ckpt) as z:
        assert int(z["__epoch__"]) == 4 and int(z["step"]) == 4 * 19
    weights = load_weights(w)
    assert {"conv1.weight", "bn1.running_mean", "bn1.running_var", "fc.weight", "fc.bias"} <= set(weights)
    assert not any("exp_avg" in k for k in weights), "only parameters and buffers"
    onnx_out = tmp_path / "d.onnx"
    assert main(["build", DIGITS, "-D", "width=16", "--weights", str(w), "-o", str(onnx_out)]) == 0
    with np.load(data / "val.npz") as z:
        x, y = z["x"], z["labels"]
    logits = runtime.session(onnx_out, "cpu").run(None, {"x": x})[0]
    assert abs(100 * float((logits.argmax(-1) == y).mean()) - last) < 0.01, "same accuracy as the loop measured"


def test_paths_that_look_like_markup_print_as_they_are(data, tmp_path, capsys):
    """rich read `exp[lr=0.1].npz` as a style tag (printed `wrote exp.npz`) and `runs[/]w.npz` as an error."""
    (tmp_path / "runs[").mkdir()
    for name in ("exp[lr=0.1].npz", "runs[/]w.npz"):
        out = tmp_path / name
        assert main(["train", DIGITS, "-D", "width=4", "--data", str(data / "train.npz"), "--epochs", "1",
                     "-o", str(out), "--quiet"]) == 0
        assert f"wrote {out} (" in capsys.readouterr().err and out.exists()


def test_a_full_disk_under_safetensors_is_a_diagnostic(data, tmp_path, capsys, monkeypatch):
    """safetensors raises its own SafetensorError, no OSError, for a full disk: it was an internal error."""
    import safetensors.numpy
    from safetensors import SafetensorError

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    out = tmp_path / "w.safetensors"
    assert main(["train", DIGITS, "-D", "width=4", "--data", str(data / "train.npz"), "--epochs", "1",
                 "-o", str(out), "--quiet"]) == 1
    assert f"cannot write {out}: No space left on device" in capsys.readouterr().err
    assert not out.exists()


def test_onnxruntime_failing_on_a_batch_shows_the_spec_line(tmp_path, capsys):
    """As `run` shows it: the message named the node (`@rs.arch:2`) but had no source line or caret, and said
    "examples in 2..59", the lowest and highest of a shuffled batch, for its examples."""
    spec = tmp_path / "rs.arch"
    spec.write_text("model net(x: float32[B, 4]) -> loss {\n    h = reshape(x, [-1, 8])\n"
                    "    loss = mean(h -> linear(3) as fc)\n}\n")
    np.savez(tmp_path / "d.npz", x=np.ones((63, 4), np.float32))  # a last batch of 31 rows of 4: no rows of 8
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--quiet",
                 "-o", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:2:5: error:" in err and "   2 |     h = reshape(x, [-1, 8])" in err
    assert "onnxruntime failed on a batch of examples " in err and " and 26 more: " in err


def test_safetensors_and_build_train(data, tmp_path, capsys):
    pytest.importorskip("safetensors")
    w = tmp_path / "w.safetensors"
    assert main(["train", DIGITS, "-D", "width=4", "--data", str(data / "train.npz"), "--epochs", "1",
                 "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05", "-o", str(w), "--quiet"]) == 0
    assert "fc.weight" in load_weights(w)
    step = tmp_path / "step.onnx"
    assert main(["build", DIGITS, "-D", "width=4", "--train", "--optimizer", "sgd", "--momentum", "0.9",
                 "--weights", str(w), "-o", str(step)]) == 0
    onnx.checker.check_model(onnx.load(step), full_check=True)
    onnx.checker.check_model(onnx.load(tmp_path / "step.eval.onnx"), full_check=True)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("arrays,words", [
    ({"x": np.zeros((4, 1, 8, 8), np.float32)}, "no array 'labels'"),
    ({"x": np.zeros((4, 1, 7, 8), np.float32), "labels": np.zeros(4, np.int64)}, "shape"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(4, np.float32)}, "integers"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(3, np.int64)}, "examples"),
    # onnxruntime stopped at 10 ("internal error") and read -3 as class 7 (trained on the wrong class)
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.array([1, 2, 10, 3])}, "labels[2] is 10"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.array([-3, 2, 1, 0])}, "class indices 0..9"),
    # refused before training, by its place (else "the loss is nan at epoch 1", which blamed the model)
    ({"x": np.where(np.arange(256).reshape(4, 1, 8, 8) == 70, np.inf, 0).astype(np.float32),
      "labels": np.zeros(4, np.int64)}, "'x'[1, 0, 0, 6] is inf: the data must be finite"),
])
def test_data_mistakes_are_diagnostics(tmp_path, capsys, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    assert main(["train", DIGITS, "--data", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "w.npz"),
                 "--quiet"]) == 1
    assert words in capsys.readouterr().err


def test_validation_labels_out_of_range_are_refused_before_training(tmp_path, capsys):
    x = np.zeros((4, 1, 8, 8), np.float32)
    np.savez(tmp_path / "train.npz", x=x, labels=np.zeros(4, np.int64))
    np.savez(tmp_path / "val.npz", x=x, labels=np.array([0, 1, 2, 12]))
    assert main(["train", DIGITS, "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
                 "-o", str(tmp_path / "w.npz"), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "val.npz: labels[3] is 12" in captured.err and "epoch" not in captured.err + captured.out
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize("which", ["--data", "--val"])
def test_the_spec_is_checked_at_each_data_files_sizes_before_training(tmp_path, capsys, which):
    """A 3x3 validation set under a 5x5 kernel failed in onnxruntime after a whole epoch had trained (and its
    checkpoint was never written); `archdsl run` said where, `train` did not."""
    spec = tmp_path / "sym.arch"
    spec.write_text("model sym(x: float32[B, 1, H, W]) -> logits {\n"
                    "    logits = x -> conv2d(4, 5) as c -> global_avgpool -> flatten -> linear(3) as fc\n}\n")
    ok = {"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(4, np.int64)}
    small = {"x": np.zeros((4, 1, 3, 3), np.float32), "labels": np.zeros(4, np.int64)}
    np.savez(tmp_path / "ok.npz", **ok)
    np.savez(tmp_path / "small.npz", **small)
    files = {"--data": "ok.npz", "--val": "ok.npz", which: "small.npz"}
    assert main(["train", str(spec), "--data", str(tmp_path / files["--data"]), "--val", str(tmp_path / files["--val"]),
                 "--epochs", "1", "-o", str(tmp_path / "w.npz"), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "sym.arch:2:19: error: conv2d: window of 5 (kernel 5, dilation 1) is larger than the padded input of 3" \
        in captured.err
    assert "note: checked at the sizes of " in captured.err and "small.npz: H=3, W=3" in captured.err
    assert "epoch" not in captured.err + captured.out
    assert not (tmp_path / "w.npz").exists() and not (tmp_path / "w.ckpt.npz").exists()


def test_per_pixel_labels_shaped_for_torch_point_to_the_class_dim(tmp_path, capsys):
    """Labels [B, H, W] for [B, C, H, W] logits (torch's CrossEntropyLoss convention) were refused as "the model
    takes [B, 3, 8]" with no word that cross_entropy reads the classes on the last dim."""
    spec = tmp_path / "seg.arch"
    spec.write_text("model seg(x: float32[B, 1, 8, 8]) -> logits {\n"
                    "    logits = x -> conv2d(3, 3, padding=1) as c\n}\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 8, 8), np.float32), labels=np.zeros((4, 8, 8), np.int64))
    argv = ["--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet", "--epochs", "1"]
    assert main(["train", str(spec), *argv]) == 1
    assert "end the spec with permute([0, 2, 3, 1]) to put them last" in capsys.readouterr().err
    spec.write_text(spec.read_text().replace("as c\n", "as c -> permute([0, 2, 3, 1])\n"))
    assert main(["train", str(spec), *argv]) == 0
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 8, 8), np.float32), labels=np.zeros((4, 8), np.int64))
    assert main(["train", str(spec), *argv]) == 1
    assert "permute" not in capsys.readouterr().err  # another mistake: no hint

def test_data_whose_arrays_disagree_on_a_dim_name_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from archdsl.diagnostics import ArchError
    from archdsl.training.loop import load_data
    g = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 4]),
                                    helper.make_tensor_value_info("labels", TensorProto.INT64, ["B", "T"])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 4])])
    model = helper.make_model(g)
    np.savez(tmp_path / "ok.npz", x=np.zeros((5, 3, 4), np.float32), labels=np.zeros((5, 3), np.int64))
    assert load_data(str(tmp_path / "ok.npz"), model, ["x", "labels"])["labels"].shape == (5, 3)
    np.savez(tmp_path / "bad.npz", x=np.zeros((5, 3, 4), np.float32), labels=np.zeros((5, 2), np.int64))
    with pytest.raises(ArchError, match="dim 'T' is 3 in 'x' but 2 in 'labels'"):
        load_data(str(tmp_path / "bad.npz"), model, ["x", "labels"])


def test_resume_without_checkpoint(data, tmp_path, capsys):
    assert main(["train", DIGITS, "--data", str(data / "train.npz"), "-o", str(tmp_path / "w.npz"), "--resume",
                 "--quiet"]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    (tmp_path / "w.ckpt.npz").write_text("junk\n")  # numpy said to load it unsafely with allow_pickle
    assert main(["train", DIGITS, "--data", str(data / "train.npz"), "-o", str(tmp_path / "w.npz"), "--resume",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "w.ckpt.npz: not a .npy or .npz file; a checkpoint is the .npz" in err and "pickle" not in err


def test_resume_refuses_a_checkpoint_that_does_not_fit(data, tmp_path, capsys):
    """Another -D width (same names, other shapes) was an internal error from onnxruntime; a file that is no
    checkpoint was a KeyError."""
    w = str(tmp_path / "w.npz")
    train = ["train", DIGITS, "--data", str(data / "train.npz"), "-o", w, "--quiet"]
    assert main(train + ["--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(train + ["--epochs", "2", "--resume", "-D", "width=16"]) == 1
    assert "made by another train step (-D width=32 there, 16 here)" in capsys.readouterr().err
    ckpt = tmp_path / "w.ckpt.npz"  # a checkpoint from before the step's digest was kept: its shapes say it
    with np.load(ckpt) as z:
        np.savez(ckpt, **{k: z[k] for k in z.files if k != "__step__"})
    assert main(train + ["--epochs", "2", "--resume", "-D", "width=16"]) == 1
    assert "holds 'conv1.weight' as [32, 1, 3, 3], the model has [16, 1, 3, 3]" in capsys.readouterr().err
    other = tmp_path / "other.npz"  # some other .npz (the --data file itself is refused as an output)
    other.write_bytes((data / "train.npz").read_bytes())
    assert main(train + ["--epochs", "2", "--resume", "--checkpoint", str(other)]) == 1
    assert "is not a checkpoint of `archdsl train`" in capsys.readouterr().err


def test_trainer_binding_matches_plain_runs():
    """The loop's I/O binding (state kept as OrtValues, re-pointed each step) computes what plain runs do."""
    from archdsl.training.loop import Trainer

    from .harness import batches, compile_step, config, ort_steps
    ct, _ = compile_step(str(ROOT / "specs/lenet5.arch"), config(opt="adamw", lr=1e-2))
    data = batches(ct, 3, 5, 10) + batches(ct, 1, 3, 10, seed=1)  # a last, smaller batch
    losses, states = ort_steps(ct, data)
    tr = Trainer(ct, "cpu")
    for want, feeds in zip(losses, data):
        loss, pred = tr.train_step(feeds)
        assert loss == want and pred.shape[0] == len(feeds["labels"])
    for k, v in states[-1].items():
        np.testing.assert_array_equal(tr.get(k), v)


def test_data_that_cannot_train_is_refused_before_training(tmp_path, capsys):
    """Strings and complex numbers were internal errors, an empty file trained to "loss 0.0000", a NaN was
    reported as a NaN loss with advice to lower the learning rate; an embedding id past the table was an
    onnxruntime traceback (exit 70)."""
    spec = tmp_path / "t.arch"
    spec.write_text("model t(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)
    nan = x.copy()
    nan[3, 1] = np.nan
    cases = {"str": (dict(x=x.astype(str), labels=labels), "'x' holds <U"),
             "complex": (dict(x=x.astype(complex), labels=labels), "'x' holds complex128 values"),
             "empty": (dict(x=x[:0], labels=labels[:0]), "'x' has no examples"),
             "nan": (dict(x=nan, labels=labels), "'x'[3, 1] is nan: the data must be finite")}
    for name, (arrays, words) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        argv = ["train", str(spec), "--data", str(tmp_path / f"{name}.npz"), "-o", str(tmp_path / "w.npz"), "--quiet"]
        assert main(argv) == 1, name
        assert words in capsys.readouterr().err, name
    assert not (tmp_path / "w.npz").exists()
    lm = tmp_path / "lm.arch"
    lm.write_text("model lm(ids: int64[B, T]) -> y {\n"
                  "    y = ids -> embedding(16, 8) as emb -> linear(16) as head\n}\n")
    ids = rng.integers(0, 16, (6, 5))
    ids[4, 2] = 99
    np.savez(tmp_path / "ids.npz", ids=ids, labels=rng.integers(0, 16, (6, 5)))
    assert main(["train", str(lm), "--data", str(tmp_path / "ids.npz"), "-o", str(tmp_path / "w.npz"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "ids.npz: 'ids'[4, 2] is 99, but the embedding it indexes (emb) has 16 rows" in err  # before any step
    assert "internal error" not in err
    heads = tmp_path / "heads.arch"  # a per-head mask of 2*B rows: its right data was refused as '32 examples'
    heads.write_text("model m(x: float32[B, 4], m: float32[2 * B, 4]) -> y {\n"
                     "    y = (x -> linear(3) as a) + sum(m)\n}\n")
    np.savez(tmp_path / "heads.npz", x=x, m=np.zeros((16, 4), np.float32), labels=labels)
    assert main(["train", str(heads), "--data", str(tmp_path / "heads.npz"), "--quiet"]) == 1
    assert "'m' is declared [2*B, 4]: training cuts every array into batches of examples along its first dim, " \
        "which a formula (2*B) is not" in capsys.readouterr().err


def test_an_output_named_loss_is_the_models_own_loss(tmp_path, capsys):
    """An output named `loss` is the loss the spec computes: it must be a scalar, and a --loss of the flags
    beside it is refused (the step's own `loss` output hid it: training accuracy was computed from it)."""
    spec = tmp_path / "l.arch"
    spec.write_text("model m(x: float32[B, 4]) -> loss {\n    loss = x -> linear(3) as fc\n}\n")
    argv = ["build", str(spec), "--train", "-o", str(tmp_path / "s.onnx")]
    assert main(argv) == 1
    assert "the loss must be a float scalar to minimize; output 'loss' is float32[B, 3] (reduce it: mean(...))" \
        in capsys.readouterr().err
    assert main([*argv, "--loss", "cross_entropy"]) == 1
    assert "a model output is named 'loss', which the train step outputs as the loss it minimizes" \
        in capsys.readouterr().err


def test_safetensors_weights_get_the_same_mode_as_npz(tmp_path):
    from archdsl.lower import save_weights
    save_weights(tmp_path / "a.npz", {"w": np.zeros(3, np.float32)})
    save_weights(tmp_path / "a.safetensors", {"w": np.zeros(3, np.float32)})
    mode = lambda p: (tmp_path / p).stat().st_mode & 0o777  # noqa: E731
    assert mode("a.safetensors") == mode("a.npz")


def test_a_kernel_onnxruntime_lacks_is_not_blamed_on_the_data():
    """A float16 scatter-add onnxruntime's CPU lacks was reported as 'd.npz: onnxruntime failed on a batch
    of examples in 0..7', pointing the user at their data."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from archdsl.diagnostics import ArchError
    from archdsl.training.loop import _on_batch
    node = helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=0, reduction="add")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("d", TensorProto.FLOAT16, [4]),
                                        helper.make_tensor_value_info("i", TensorProto.INT64, [2]),
                                        helper.make_tensor_value_info("u", TensorProto.FLOAT16, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4])])
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString(),
                                so, providers=["CPUExecutionProvider"])
    feeds = {"d": np.zeros(4, np.float16), "i": np.array([0, 1]), "u": np.ones(2, np.float16)}
    with pytest.raises(ArchError) as e:
        _on_batch("d.npz", np.arange(8), lambda: sess.run(None, feeds))
    assert e.value.message.startswith("onnxruntime cannot run this model on its provider") and "d.npz" not in \
        e.value.message


def test_a_model_onnxruntime_cannot_load_is_a_diagnostic(tmp_path, capsys):
    """A bfloat16 model (no bfloat16 Gemm on onnxruntime's CPU) was an internal error, exit 70."""
    import ml_dtypes
    spec = tmp_path / "bf.arch"
    spec.write_text("model m(x: bfloat16[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    np.savez(tmp_path / "d.npz", x=np.ones((4, 4), ml_dtypes.bfloat16), labels=np.ones((4, 3), ml_dtypes.bfloat16))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--quiet",
                 "-o", str(tmp_path / "w.npz")]) == 1
    assert "onnxruntime cannot run this model on its provider" in capsys.readouterr().err


def test_a_nan_in_the_starting_weights_is_named(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text("model net(x: float32[B, 4]) -> y { y = x -> linear(3) as fc }")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    w = np.zeros((3, 4), np.float32)
    w[1, 2] = np.nan
    np.savez(tmp_path / "start.npz", **{"fc.weight": w, "fc.bias": np.zeros(3, np.float32)})
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "start.npz"),
                 "--quiet", "-o", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "the weights: 'fc.weight'[1, 2] is nan" in err and "learning rate" not in err


@pytest.mark.parametrize("flags, words", [
    (["--val", ""], "--val needs a file name"),
    (["--weights", ""], "--weights needs a file name"),
    (["-o", "w.txt"], "-o w.txt: the weights are written as .npz or .safetensors"),
    (["-o", "-"], "-o -: train writes its weights (and their checkpoint beside them) to files"),
    (["--checkpoint", "-"], "--checkpoint -: the checkpoint is a file, read again by --resume"),
    (["--lr", "1e-50"], "the learning rate 1e-50 is 0.0 in float32"),
    (["--lr", "1e39"], "the learning rate 1e+39 is inf in float32"),
])
def test_train_flags_that_were_quietly_ignored_or_lost(flags, words, tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text("model net(x: float32[B, 4]) -> y { y = x -> linear(3) as fc }")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--quiet", "-o", str(tmp_path / "w.npz")]
    assert main(args + flags) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "w.txt").exists() and not Path("-").exists()


def test_an_empty_weights_name_is_a_usage_error_in_build_and_run(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text("model net(x: float32[B, 4]) -> y { y = x -> linear(3) as fc }")
    for command in ("build", "run"):
        assert main([command, str(spec), "--weights", ""]) == 2  # random weights, before
        assert "--weights needs a file name" in capsys.readouterr().err


def test_take_keeps_numpys_negative_indices_in_training(tmp_path, capsys):
    """Only embedding ids are refused below 0; take(w, ids) reads -1 as the last row, as numpy.take."""
    spec = tmp_path / "take.arch"
    spec.write_text('model m(ids: int64[B, 3]) -> y { w = parameter([10, 4], init="normal") as w\n'
                    "    y = take(w, ids) -> mean(dim=1) -> linear(2) as head }")
    np.savez(tmp_path / "d.npz", ids=np.array([[0, 1, -1], [2, -3, 4]]), labels=np.array([0, 1]))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--quiet", "--epochs", "1",
                 "-o", str(tmp_path / "w.npz")]) == 0


def test_an_inf_in_a_buffer_is_a_value_a_nan_is_not(tmp_path, capsys):
    """A -inf in a buffer (an additive mask) is a value a model may hold; only NaN is refused there."""
    spec = tmp_path / "m.arch"
    spec.write_text('model net(x: float32[B, 4]) -> y {\n'
                    '    bias = parameter([4], init="zeros", trainable=false) as mask\n'
                    "    y = softmax(x + bias) -> linear(3) as fc\n}")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    start = {"mask": np.array([0, 0, -np.inf, 0], np.float32), "fc.weight": np.zeros((3, 4), np.float32),
             "fc.bias": np.zeros(3, np.float32)}
    np.savez(tmp_path / "start.npz", **start)
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "start.npz"),
            "--quiet", "--epochs", "1", "-o", str(tmp_path / "w.npz")]
    assert main(args) == 0
    start["mask"][1] = np.nan
    np.savez(tmp_path / "start.npz", **start)
    assert main(args) == 1
    assert "the weights: 'mask'[1] is nan: training starts from numbers only" in capsys.readouterr().err


def test_a_dotted_output_name_is_an_npz(tmp_path, capsys):
    """-o run.v2 is a name, not a format: only another format's suffix is refused."""
    spec = tmp_path / "n.arch"
    spec.write_text("model net(x: float32[B, 4]) -> y { y = x -> linear(3) as fc }")
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), np.float32), labels=np.zeros(8, np.int64))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--quiet", "--epochs", "1",
                 "-o", str(tmp_path / "run.v2")]) == 0
    assert set(np.load(tmp_path / "run.v2")) == {"fc.weight", "fc.bias"}


def test_a_nan_loss_blames_the_learning_rate_only_after_an_update(tmp_path, capsys):
    """The message always said "lower the learning rate", even when the first step's forward pass gave the NaN
    (a log of negative data), before any update."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 4)).astype(np.float32), labels=rng.integers(0, 2, 64))
    spec = tmp_path / "nm.arch"
    spec.write_text("model nm(x: float32[B, 4]) -> y {\n    y = log(x) -> linear(2) as fc\n}\n")
    argv = ["--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet", "--optimizer", "sgd"]
    assert main(["train", str(spec), *argv, "--lr", "1e-9"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the loss is nan at epoch 1, step 1 of 2 (a batch of examples" in err and "--lr" not in err
    assert "before any update moved the weights" in err
    spec.write_text("model nm(x: float32[B, 4]) -> y {\n    y = x * 1e30 -> linear(2) as fc\n}\n")
    assert main(["train", str(spec), *argv, "--lr", "1e30"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "at epoch 1, step 2 of 2 (a batch of examples" in err and \
        "); if the weights diverged, lower the learning rate (--lr)" in err
    assert not (tmp_path / "w.npz").exists()


def test_log_lines_are_not_wrapped_when_stderr_is_a_file(tmp_path, capsys, monkeypatch):
    """rich wrapped at 80 columns off a terminal: "... adamw lr" and "0.001" came out on two lines of a log."""
    monkeypatch.setenv("COLUMNS", "40")
    argv = linear_run(tmp_path)
    assert main([*argv, "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "training t on CPUExecutionProvider: 16 examples, batch 32, adamw lr 0.001\n" in err


def test_a_non_finite_loss_counts_the_batches_that_run_and_names_the_starting_weights(tmp_path, capsys):
    """A fixed batch size leaves the last 2 of 50 examples out: 3 steps an epoch, where the message (and the
    bar) said 4. Finite weights of 3e38 (a diverged run's) gave an inf loss blamed on the model and data alone."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((50, 8)).astype(np.float32), labels=rng.integers(0, 3, 50))
    spec = tmp_path / "f.arch"
    spec.write_text("model fixed(x: float32[16, 8]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    argv = ["--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet", "--optimizer", "sgd",
            "--batch-size", "16"]
    assert main(["train", str(spec), *argv, "--lr", "1e38"]) == 1
    assert "the loss is inf at epoch 1, step 2 of 3 (" in " ".join(capsys.readouterr().err.split())
    big = tmp_path / "big.npz"
    np.savez(big, **{"fc.weight": np.full((3, 8), 3e38, np.float32), "fc.bias": np.zeros(3, np.float32)})
    assert main(["train", str(spec), *argv, "--lr", "1e-3", "--weights", str(big)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"before any update moved the weights: the starting weights ({big}) or the model give it" in err


def test_a_non_finite_loss_before_the_first_update_of_accumulated_steps_is_not_blamed_on_the_lr(tmp_path, capsys):
    """With --accumulate 3 the first update runs after micro-batch 3: a NaN at micro-batch 2 was blamed on the
    learning rate (review47)."""
    x = np.ones((48, 8), np.float32)
    x[20] = 1e30  # x * x overflows in the second batch of 16
    np.savez(tmp_path / "d.npz", x=x, labels=np.zeros(48, np.int64))
    spec = tmp_path / "sq.arch"
    spec.write_text("model sq(x: float32[B, 8]) -> y {\n    y = x * x -> linear(3) as fc\n}\n")
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--batch-size", "16",
                 "--accumulate", "3", "-o", str(tmp_path / "w.npz"), "--quiet"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "before any update moved the weights: the model gives it on this data" in err and "--lr" not in err
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--batch-size", "16",
                 "--lr", "0", "-o", str(tmp_path / "w.npz"), "--quiet"]) == 1  # updates at lr 0 move nothing
    err = " ".join(capsys.readouterr().err.split())  # (gnn hunt: a data NaN at step 2 blamed on --lr 0)
    assert "step 2 of 3 (a batch of examples" in err and "before any update moved the weights" in err, err


def test_a_nan_gradient_is_said_to_be_one_not_a_learning_rate_to_lower(tmp_path, capsys):
    """sqrt at 0 with 0 arriving is 0/0: the first update made a weight NaN, and the next loss's message said
    only to lower the learning rate, which cannot help (crf hunt); it says both, since one step that diverges
    leaves the weights alike (review83 hunt). An inf loss or huge weights still get the lr advice alone."""
    np.savez(tmp_path / "d.npz", x=np.zeros((8, 4), np.float32), labels=np.zeros(8, np.float32))
    spec = tmp_path / "s.arch"
    spec.write_text("model s(x: float32[B, 4]) -> y {\n    w = parameter([4], init=\"ones\") as w\n"
                    "    y = sum(sqrt(x * w), dim=1)\n}\n")
    argv = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz"), "--quiet",
            "--loss", "mse", "--optimizer", "sgd", "--batch-size", "4"]
    assert main(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the loss is nan at epoch 1, step 2 of 2" in err and "'w' holds NaN beside values that stayed modest: " \
        "either a gradient was NaN (a 0/0" in err and "which a lower learning rate does not cure, or the weights " \
        "diverged in one step" in err
