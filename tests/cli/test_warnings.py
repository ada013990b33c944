"""What check, build and --train warn of (a result no output reads, torch's argument order, a symbolic
dim's name given another value), said once, and what the build then keeps or leaves out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")


def test_a_result_that_reaches_no_output_is_a_warning(tmp_path, capsys):
    """`z = x -> linear(3)` never read: check and build counted its 15 parameters, and the built model had none,
    without a word. A weight it shares with a live layer is not counted as dropped. An unnamed layer is called by
    the name the spec gave its result (it was 'relu_0': porting18 hunt)."""
    spec = tmp_path / "u.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    z = x -> linear(3) as fc -> relu\n"
                    "    w = x -> linear(4) as head\n    v = x @ ref(\"head.weight\")\n    y = w\n}\n")
    for argv in (["check", str(spec)], ["build", str(spec), "-o", str(tmp_path / "u.onnx")],
                 ["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "t.onnx")]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.count("warning:") == 2, err
        fate = "; its 15 parameters stay in the train step, unchanged (nothing reads them)" if "--train" in argv \
            else ", and its 15 parameters with it"  # the step keeps fc.weight and fc.bias (and their Adam state)
        assert "u.arch:2:33: warning: 'z' (relu) is computed but reaches no output: the built model leaves it " \
               f"out{fate}\n   2 |     z = x -> linear(3) as fc -> relu\n" in err
        assert "u.arch:4:9: warning: 'v' (matmul) is computed but reaches no output: the built model leaves " \
               "it out, not the parameters it reads, which the rest of the model reads\n" in err  # head.weight
    assert main(["check", MLP]) == 0 and capsys.readouterr().err == ""
    assert main(["build", str(spec), "-o", str(tmp_path / "u.onnx")]) == 0  # head's 20, not fc's 15 as well
    assert f"wrote {tmp_path / 'u.onnx'} (m: 20 params," in capsys.readouterr().out
    for flags in (["-O0"], ["--disable-pass", "dead_code"], ["--train", "--loss", "mse", "-O0"]):  # kept: said so
        assert main(["build", str(spec), *flags, "-o", str(tmp_path / "k.onnx")]) == 0
        out, err = capsys.readouterr()
        assert "--train" in flags or f"wrote {tmp_path / 'k.onnx'} (m: 35 params," in out
        assert "'z' (relu) is computed but reaches no output: the built model keeps it, with its 15 " \
               "parameters (the dead_code pass, on at -O1 and up, leaves it out)\n" in err
        assert {"fc.weight", "fc.bias"} <= {t.name for t in onnx.load(tmp_path / "k.onnx").graph.initializer}
    spec.write_text("model m(x: float32[B, 3, 8, 8]) -> y {\n    z = x -> conv2d(4, 3) as c -> batchnorm as bn\n"
                    "    y = x\n}\n")  # fold_batchnorm replaces the dead node: it is still kept
    assert main(["build", str(spec), "--disable-pass", "dead_code", "-o", str(tmp_path / "k.onnx")]) == 0
    assert "'bn' (batchnorm) is computed but reaches no output: the built model keeps it" in capsys.readouterr().err
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    d = tensor([1.0, 2.0]) * 2.0\n    y = relu(x)\n}\n")
    assert main(["build", str(spec), "-O1", "--disable-pass", "dead_code", "-o", str(tmp_path / "k.onnx")]) == 0
    assert "the built model leaves it out" in capsys.readouterr().err  # fold_constants computed it away


def test_a_symbolic_dim_given_another_value_is_a_warning(tmp_path, capsys):
    """`T = 5` silently made reshape(x, [-1, T, 4]) use 5; a Mamba-style `B = x -> linear(3)` turned the next
    [B, T, 3] into 'a list of dims, got list of 3'. B = x.shape[0] (the same dim) says nothing."""
    spec = tmp_path / "s.arch"
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    B = x.shape[0]\n    T = 5\n"
                    "    y = reshape(x, [-1, T, 4]) -> linear(2) as fc\n}\n")
    for argv in (["check", str(spec)], ["build", str(spec), "-o", str(tmp_path / "s.onnx")],
                 ["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "t.onnx")]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.count("warning:") == 2, err  # and the reshape that T = 5 makes run at some sizes only
        assert "s.arch:4:9: warning: reshape to [-1, 5, 4] of [B, T, 4] makes its -1 B*T * 1/5" in err
        assert "s.arch:3:5: warning: 'T' was the symbolic dim T of the model's inputs; from here on it names " \
               "int 5, and a shape written with T below uses that (another name keeps the dim)\n" in err
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    B = x.shape[0]\n"
                    "    for B in [1] {\n        y = x\n    }\n}\n")
    assert main(["check", str(spec)]) == 0  # a loop variable too
    assert "s.arch:3:5: warning: 'B' was the symbolic dim B of the model's inputs; from here on it names the loop " \
           "variable (int 1 first)" in capsys.readouterr().err  # after B = the same dim
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    repeat 2 as T {\n        x = x * 2.0\n    }\n"
                    "    y = reshape(x, [B, T * 4])\n}\n")  # checked as [B, 4] (T = 1), failed at run time
    assert main(["check", str(spec)]) == 0
    assert "s.arch:2:5: warning: 'T' was the symbolic dim T of the model's inputs; from here on it names the loop " \
           "variable (int 0 first)" in capsys.readouterr().err


def test_a_symbolic_dim_rebound_to_the_size_a_layer_made_says_nothing(tmp_path, capsys):
    """torch's `B, C, H, W = shape(h)` after a strided conv: H and W are meant to name the new sizes."""
    spec = tmp_path / "s.arch"
    spec.write_text("model m(x: float32[B, 3, H, W]) -> y {\n    h = x -> conv2d(64, 4, stride=4) as stem\n"
                    "    B, C, H, W = shape(h)\n    y = reshape(h, [B, C, H * W])\n}\n")
    assert main(["check", str(spec)]) == 0
    assert "warning" not in capsys.readouterr().err
    spec.write_text("model m(x: float32[B, T, 8], s: float32[B, S, 8]) -> y {\n    T = shape(s)[1]\n"
                    "    y = reshape(x, [B, T * 8])\n}\n")  # another input's dim: said
    assert main(["check", str(spec)]) == 0
    assert "'T' was the symbolic dim T of the model's inputs; from here on it names symbolic dim S" in \
        capsys.readouterr().err


def test_a_conv_in_torchs_argument_order_is_a_warning_said_once(tmp_path, capsys):
    """conv2d(3, 16, 3) over 3 channels (torch's Conv2d(in, out, kernel)) passed the shape check as
    out_channels=3, kernel_size=16, stride=3, silently; a block called twice says it once; keywords, or a
    first number that is not x's channel count, say nothing."""
    spec = tmp_path / "s.arch"
    spec.write_text("block b(x) {\n    return x -> conv2d(3, 16, 3)\n}\n"
                    "model m(x: float32[B, 3, 32, 32]) -> y {\n    y = b(b(x) -> upsample(size=[32, 32]))\n}\n")
    for argv in (["check", str(spec)], ["build", str(spec), "-o", str(tmp_path / "s.onnx")]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.count("warning:") == 1, err
        assert "s.arch:2:17: warning: conv2d(3, 16, 3) reads as out_channels=3, kernel_size=16, stride=3; torch's " \
               "nn.Conv2d(in, out, kernel) is conv2d(16, 3) here (the input's 3 channels come from x)" in err
    for body in ("x -> conv2d(3, kernel_size=16, stride=3)", "x -> conv2d(8, 16, 3)", "x -> conv2d(3, 3, 2)",
                 "x -> conv_transpose2d(3, 5, 2)"):
        spec.write_text(f"model m(x: float32[B, 3, 32, 32]) -> y {{\n    y = {body}\n}}\n")
        assert main(["check", str(spec)]) == 0
        assert "warning" not in capsys.readouterr().err


def test_a_parameter_nothing_reads_is_warned_and_left_out_of_the_count(tmp_path, capsys):
    """check said nothing of it, and build counted its 7 values in 'wrote ... 12 params' while the model held 5."""
    spec = tmp_path / "p.arch"
    spec.write_text("model m(x: float32[B, 4]) -> (y, p) {\n    y = x -> relu\n"
                    "    p = parameter([5], init=\"ones\") as pp\n"
                    "    q = parameter([7], init=\"ones\") as unused_p\n}\n")
    assert main(["check", str(spec)]) == 0
    assert "p.arch:4:9: warning: parameter 'unused_p' is made but nothing reads it" in capsys.readouterr().err
    assert main(["build", str(spec), "-o", str(tmp_path / "p.onnx")]) == 0
    out = capsys.readouterr()
    assert "(m: 5 params," in out.out + out.err and "leaves it out (7 values)" in out.err
    assert main(["build", str(spec), "-o", str(tmp_path / "p.onnx"), "-O0"]) == 0
    out = capsys.readouterr()
    assert "(m: 12 params," in out.out + out.err and "keeps it (7 values)" in out.err


def test_results_a_loop_leaves_unread_are_one_warning(tmp_path, capsys):
    """8000 passes of a loop printed 8000 identical warnings (24,001 lines)."""
    spec = tmp_path / "l.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    for i in range(300) {\n"
                    "        u = x -> linear(2) as \"l{i}\"\n    }\n    y = x\n}\n")
    assert main(["check", str(spec)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "(and 299 more made here, as a loop or a block called again runs it, " \
        "3,000 parameters in all)" in " ".join(err.split())


def test_an_rnn_in_torchs_argument_order_is_warned_of(tmp_path, capsys):
    """lstm(8, 16) over 8 features is torch's nn.LSTM(input_size, hidden_size): here 8 hidden and 16 layers,
    built without a word. 8 layers is a stack people build (GNMT's lstm(1024, 8)): not said."""
    spec = tmp_path / "r.arch"
    for call, warned in (("lstm(8, 16)", True), ("gru(8, 16)", True), ("lstm(16)", False),
                         ("lstm(8, num_layers=16)", False), ("lstm(8, 2)", False), ("lstm(8, 8)", False)):
        spec.write_text(f"model m(x: float32[B, T, 8]) -> y {{\n    y = x -> {call} as r\n}}\n")
        assert main(["check", str(spec)]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert ("reads as hidden_size=8, num_layers=" in err) == warned, (call, err)


def test_a_train_step_keeps_a_parameter_nothing_reads_and_says_so(tmp_path, capsys):
    spec = tmp_path / "t.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n"
                    "    q = parameter([7], init=\"ones\") as unused_p\n}\n")
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "t.onnx")]) == 0
    assert "the built model keeps it (7 values)" in capsys.readouterr().err


def test_a_train_step_keeps_a_dead_layers_parameters_and_says_so(tmp_path, capsys):
    """'the built model leaves it out, and its 40 parameters with it': the train step keeps them (unchanged)."""
    spec = tmp_path / "d.arch"
    spec.write_text("model u(x: float32[B, 4]) -> y {\n    t = x -> linear(8)\n    y = x -> linear(4) as out\n}\n")
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "d.onnx")]) == 0
    assert "its 40 parameters stay in the train step, unchanged" in " ".join(capsys.readouterr().err.split())
    assert "linear_0.weight" in {i.name for i in onnx.load(str(tmp_path / "d.onnx")).graph.input}


def test_a_head_no_loss_reads_is_a_warning_in_build_train_and_train(tmp_path, capsys):
    """A second head beside the one --loss reads stayed at its initialization (as torch's would) without a
    word; a parameter that feeds nothing keeps its own warning, and a head --output-name picks is trained."""
    spec = tmp_path / "two.arch"
    spec.write_text("model two(x: float32[B, 6]) -> (logits, stats) {\n    h = x -> linear(8) as trunk -> relu\n"
                    "    logits = h -> linear(4) as cls\n    stats = h -> linear(2) as reg\n"
                    "    unused = x -> linear(3) as dead\n}\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 6)).astype(np.float32), labels=rng.integers(0, 4, 8))
    said = ("two.arch:4:18: warning: 'reg.weight', 'reg.bias' get no gradient from the loss (on 'logits'); they "
            "feed output 'stats', and the train step leaves them as initialized, as torch does; a loss the spec "
            "computes (an output named loss) can train every output\n")
    for argv in (["build", str(spec), "--train", "-o", str(tmp_path / "t.onnx")],
                 ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1",
                  "-o", str(tmp_path / "w.npz")]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert said in err and err.count("warning:") == 2 and "'dead' (linear) is computed" in err, err
    assert main(["check", str(spec)]) == 0 and "no gradient" not in capsys.readouterr().err
    assert main(["build", str(spec), "--train", "--output-name", "stats", "--loss", "mse",
                 "-o", str(tmp_path / "t.onnx")]) == 0
    err = capsys.readouterr().err
    assert "'cls.weight', 'cls.bias' get no gradient from the loss (on 'stats'); they feed output 'logits'" in err
    spec.write_text("model d(x: float32[B, 6]) -> (y, z) {\n    z = x -> linear(4) as head2\n"
                    "    y = (x -> linear(4) as head1) + detach(z)\n}\n")  # head2 reaches y, without a gradient
    assert main(["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "t.onnx")]) == 0
    assert "'head2.weight', 'head2.bias' reach the loss (on 'y') only through detach" in \
        capsys.readouterr().err  # what reaches the loss is said so, whatever else it feeds (vqvae hunt)


def test_a_segmentation_map_trained_with_classes_on_its_last_dim_is_a_warning(tmp_path, capsys):
    """[B, 2, 32, 32] logits: the step took 32 classes on the last dim (labels [B, 2, 32]) with no word, where
    torch's cross_entropy takes the 2 on dim 1 (a symbolic H, W was refused with the same advice)."""
    head = "model seg(x: float32[B, 3, 32, 32]) -> logits {\n    logits = x -> conv2d(2, 1)"
    for tail, warned in (("", True), (" -> permute([0, 2, 3, 1])", False)):
        spec = tmp_path / "seg.arch"
        spec.write_text(head + tail + "\n}\n")
        assert main(["build", str(spec), "--train", "-o", str(tmp_path / "seg.onnx")]) == 0
        err = capsys.readouterr().err
        assert ("seg.arch:2:19: warning: cross_entropy takes the classes on the last dim of output 'logits' "
                "(float32[B, 2, 32, 32]: 32 classes, labels int64[B, 2, 32]); torch's takes dim 1 (2) of such a "
                "map: for that layout end the spec with permute([0, 2, 3, 1])" in err) == warned, err
        assert main(["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "seg.onnx")]) == 0
        assert "warning" not in capsys.readouterr().err


def test_a_map_that_is_not_square_is_warned_of_only_where_a_conv_made_it(tmp_path, capsys):
    """Fewer channels than spatial size also matched a channels-last map and a multi-codebook output, whose
    classes are rightly last, and told them to permute (review43): only square maps were warned of, and a
    U-Net's 16x64 (or a WaveNet's [B, 16, 64]) took its last dim as the classes with no word. A conv's output,
    through layout-keeping ops, has its channels on dim 1."""
    for inp, out, warned in (("3, 16, 64", "conv2d(21, 1) -> permute([0, 2, 3, 1])", ""),
                             ("64", "linear(2048) -> reshape([B, 4, 16, 32])", ""),
                             ("3, 16, 64", "conv2d(2, 1)", "(float32[B, 2, 16, 64]: 64 classes"),
                             ("3, 16, 64", "conv2d(2, 1) -> batchnorm -> relu", "permute([0, 2, 3, 1])"),
                             ("8, 64", "conv1d(16, 1)", "(float32[B, 16, 64]: 64 classes, labels int64[B, 16])"),
                             # 16 channels in or more: the train step's conv is another op (segmentation hunt)
                             ("16, 10, 14", "conv2d(4, 1)", "(float32[B, 4, 10, 14]: 14 classes"),
                             ("32, 64", "conv1d(16, 1)", "(float32[B, 16, 64]: 64 classes"),
                             ("3, 40, 56", "conv2d(16, 3, stride=4, padding=1) -> conv2d(5, 1) -> "
                              "upsample(size=[40, 56], mode=\"bilinear\")", "(float32[B, 5, 40, 56]: 56 classes")):
        spec = tmp_path / "seg.arch"
        spec.write_text(f"model seg(x: float32[B, {inp}]) -> logits {{\n    logits = x -> {out}\n}}\n")
        assert main(["build", str(spec), "--train", "--loss", "cross_entropy", "-o", str(tmp_path / "s.onnx")]) == 0
        err = capsys.readouterr().err
        assert ("warning" in err) == bool(warned) and warned in err, err


def test_a_one_channel_map_under_the_default_loss_is_told_to_name_another(tmp_path, capsys):
    """A denoiser's [B, 1, 8, 8] noise with no --loss was advised permute([0, 2, 3, 1]), which then failed as one
    class; it holds values, and the default loss is what to change."""
    spec = tmp_path / "den.arch"
    spec.write_text("model den(x: float32[B, 1, 8, 8]) -> noise {\n    noise = x -> conv2d(1, 3, padding=1)\n}\n")
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "den.onnx")]) == 0
    err = capsys.readouterr().err
    assert "a map of one channel holds values, not classes' scores; cross_entropy is the default loss: --loss " \
           "names another (mse, bce_with_logits)" in err and "permute" not in err


def test_parameters_the_loss_reaches_only_through_detach_are_said_with_the_freeze_that_drops_them(tmp_path, capsys):
    """A GAN's discriminator step over detach(gen(z)): the generator's weights were counted as trained and
    carried their Adam state through unchanged, with no word (torch's optimizer would hold D's alone)."""
    spec = tmp_path / "g.arch"
    spec.write_text("block gen(z) {\n    return z -> linear(8) as fc1 -> relu -> linear(8) as fc2\n}\n"
                    "model d(z: float32[B, 4], real: float32[B, 8], t: float32[B, 1]) -> loss {\n"
                    "    fake = detach(gen(z) as G)\n"
                    "    both = concat([real, fake], axis=0)\n"
                    "    loss = bce_with_logits(both -> linear(1) as D, concat([t, t], axis=0))\n"
                    "}\n")
    out = str(tmp_path / "d.onnx")
    assert main(["build", str(spec), "--train", "-o", out]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "g.arch:2:17: warning: 'G.fc1.weight', 'G.fc1.bias', 'G.fc2.weight', 'G.fc2.bias' reach the loss (on " \
        "'loss') only through detach (or integer and comparison ops): no gradient, so the step leaves them as they " \
        "are, carrying their optimizer state unchanged; --freeze G leaves them out of the update's state" in err, err
    assert main(["build", str(spec), "--train", "--freeze", "G", "-o", out]) == 0
    assert "warning" not in capsys.readouterr().err
    spec.write_text('model m(x: float32[B, 4]) -> y {\n    s = parameter([4]) as "t"\n'  # t itself trains: no
                    '    u = x -> linear(4) as "t.b" -> linear(4) as "t.c" -> detach\n    y = x * s + u\n}\n')
    assert main(["build", str(spec), "--train", "--loss", "mse", "-o", out]) == 0  # --freeze t (review48)
    assert "--freeze with each of their names leaves them out" in " ".join(capsys.readouterr().err.split())
    spec.write_text('model m(x: float32[B, 4]) -> y {\n    s = parameter([4]) as scale\n    y = x * detach(s)\n'
                    '    y = y -> linear(4) as fc\n}\n')  # one parameter: its own name (review57)
    assert main(["build", str(spec), "--train", "--loss", "mse", "-o", out]) == 0
    assert "--freeze scale leaves it out of the update's state" in " ".join(capsys.readouterr().err.split())


def test_a_parameter_past_an_argmin_that_feeds_the_read_output_is_said_stopped_not_unread(tmp_path, capsys):
    """A VQ-VAE without its straight-through estimator: the encoder reaches the loss only through argmin, and
    the warning said it "feeds output 'recon'" (an output the loss reads) and advised a loss in the spec,
    which the spec had (vqvae hunt)."""
    spec = tmp_path / "vq.arch"
    spec.write_text("model m(x: float32[B, 6]) -> (loss, recon) {\n    z = x -> linear(4) as enc\n"
                    "    cb = parameter([8, 4], init=\"normal\") as codebook\n"
                    "    q = take(cb, argmin(cdist(z, cb), dim=1))\n"
                    "    recon = q -> linear(6) as dec\n    loss = mean((recon - x) ** 2)\n}\n")
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "vq.onnx")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "'enc.weight', 'enc.bias' reach the loss (on 'loss') only through detach (or integer and comparison " \
        "ops)" in err and "--freeze enc" in err, err
    assert "feed output" not in err and "a loss the spec computes" not in err
    spec.write_text("model m(x: float32[B, 6]) -> (loss, codes) {\n    z = x -> linear(4) as enc\n"
                    "    codes = z -> linear(3) as head\n    loss = mean(z ** 2)\n}\n")  # a second head: unread
    assert main(["build", str(spec), "--train", "-o", str(tmp_path / "vq.onnx")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "'head.weight', 'head.bias' get no gradient from the loss (on 'loss'); they feed output 'codes', and " \
        "the train step leaves them as initialized, as torch does" in err, err
    assert "a loss the spec computes" not in err  # the spec computes it already
