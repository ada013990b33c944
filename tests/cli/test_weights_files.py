"""`--weights FILE` (.npz, .safetensors) as build, run and train read it: every parameter named, numbers only, a
file that is no archive or holds other things said so, dtypes loaded exactly or not at all."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from archdsl.cli import main


def test_a_weights_file_names_every_parameter_and_only_numbers(work, capsys):
    """torch's strict load_state_dict: a missing name kept its random init without a word."""
    w = {"fc1.weight": np.zeros((8, 4), np.float32), "fc1.bias": np.zeros(8, np.float32),
         "fc2.weight": np.zeros((3, 8), np.float32)}
    np.savez(work / "missing.npz", **w)
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "missing.npz")]) == 1
    assert "missing.npz lacks 1 of the model's 4 parameters and buffers: 'fc2.bias'" in capsys.readouterr().err
    train = ["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--quiet", "-o", str(work / "o.npz")]
    assert main(train + ["--weights", str(work / "missing.npz")]) == 1
    assert "lacks 1" in capsys.readouterr().err
    np.savez(work / "str.npz", **w, **{"fc2.bias": np.array(["a", "b", "c"])})
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "str.npz")]) == 1
    assert "'fc2.bias' holds strings; a parameter takes real numbers" in capsys.readouterr().err
    np.savez(work / "ok.npz", **w, **{"fc2.bias": np.zeros(3, np.float32)})
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "ok.npz"), "-o", str(work / "ok.onnx")]) == 0


def test_files_that_are_not_npz_archives_say_so(work, capsys):
    """A .npy gave "'numpy.ndarray' object does not support the context manager protocol"; a text file a hint
    to pass allow_pickle."""
    np.save(work / "one.npy", np.zeros(3))
    (work / "text.npz").write_text("hello")
    for flag, path, words in (("--weights", "one.npy", "holds one unnamed array"),
                              ("--weights", "text.npz", "not a .npy or .npz file"),
                              ("--data", "one.npy", "holds one unnamed array"),
                              ("--data", "text.npz", "not a .npy or .npz file")):
        argv = ["build", str(work / "tiny.arch"), flag, str(work / path)] if flag == "--weights" else \
            ["train", str(work / "tiny.arch"), flag, str(work / path), "-o", str(work / "w.npz")]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert words in err and "pickle" not in err and "context manager" not in err


def test_archives_that_are_not_numbers_say_what_they_are(work, capsys):
    """A torch.save file opened as an .npz (zip) named 'sd/.data/serialization_id' as an unknown parameter;
    an object array in a real .npz was 'not an .npz archive'; a text file fed to run --input brought numpy's
    advice to pass allow_pickle."""
    import zipfile
    with zipfile.ZipFile(work / "sd.pt", "w") as z:  # the layout of torch.save's zip
        z.writestr("sd/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("sd/.data/serialization_id", b"0")
    with zipfile.ZipFile(work / "other.npz", "w") as z:
        z.writestr("readme.txt", b"hello")
    np.savez(work / "obj.npz", **{"fc1.weight": np.array([{"a": 1}], dtype=object)})
    (work / "text.npy").write_text("1 2 3")
    np.save(work / "obj.npy", np.array([np.zeros(4), np.zeros(3)], dtype=object))
    spec = str(work / "tiny.arch")
    for argv, words in (
            (["build", spec, "--weights", str(work / "sd.pt")], "sd.pt: it is a torch.save file (pickled)"),
            (["build", spec, "--weights", str(work / "other.npz")], "a zip archive of other files, not an .npz"),
            (["build", spec, "--weights", str(work / "obj.npz")], "'fc1.weight': it holds Python objects"),
            (["run", spec, "--input", f"x={work / 'text.npy'}"], "text.npy: not a .npy or .npz file"),
            (["run", spec, "--input", f"x={work / 'obj.npz'}"], "it holds Python objects (an object array)"),
            (["run", spec, "--input", f"x={work / 'obj.npy'}"], "obj.npy: it holds Python objects")):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert words in err and "allow_pickle" not in err, (argv, err)
        if argv[-1].endswith("sd.pt"):  # numpy's savez, advised alone, fails on a bfloat16 state_dict
            assert "(safetensors.torch.save_file(state_dict, 'w.safetensors'), which keeps bfloat16" in err


def test_weights_file_mistakes_name_the_file_and_suggest_among_the_unmatched(work, capsys):
    """The suggestion searched every name: a missing fc2.bias got 'did you mean fc1.bias?', which the file
    had; a checkpoint given as --weights was '13 names the model does not: __config__'."""
    w = {"fc1.weight": np.zeros((8, 4), np.float32), "fc1.bias": np.zeros(8, np.float32),
         "fc2.weight": np.zeros((3, 8), np.float32), "fc2.bais": np.zeros(3, np.float32)}
    np.savez(work / "typo.npz", **w)
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "typo.npz")]) == 1
    err = capsys.readouterr().err
    assert f"weights file {work / 'typo.npz'} has 1 name the model does not: 'fc2.bais'; did you mean 'fc2.bias'?" \
        in err
    w["fc2.bias"] = w.pop("fc2.bais")
    np.savez(work / "more.npz", **w, **{"enc.weight": np.zeros((2, 2), np.float32)})  # a VAE's, for its decoder
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "more.npz")]) == 1
    assert ("has 1 name the model does not: 'enc.weight'; it holds all 4 of the model's parameters and buffers "
            "besides") in " ".join(capsys.readouterr().err.split())  # (porting hunt)
    del w["fc2.bias"]
    np.savez(work / "short.npz", **w)
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "short.npz")]) == 1
    err = capsys.readouterr().err
    assert "lacks 1 of the model's 4 parameters and buffers: 'fc2.bias'" in err and "did you mean" not in err
    train = ["train", str(work / "tiny.arch"), "--data", str(work / "data.npz"), "--quiet", "--epochs", "1"]
    assert main(train + ["-o", str(work / "w.npz")]) == 0
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "w.ckpt.npz")]) == 1
    assert "w.ckpt.npz is a checkpoint of `archdsl train`" in capsys.readouterr().err
    assert main(train + ["-o", str(work / "W.SAFETENSORS")]) == 0  # the suffix in any case
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "W.SAFETENSORS"),
                 "-o", str(work / "t.onnx")]) == 0


def test_a_file_of_none_of_the_models_names_is_not_given_a_guess(work, capsys):
    """Another model's weights (or training data) got "did you mean 'fc1.bias'?" for 'embed.weight'; a file
    whose every name is misspelt is still told what each was meant to be (review42)."""
    np.savez(work / "other.npz", **{"embed.weight": np.zeros((8, 4), np.float32),
                                    "encoder.layers.0.attn.in_proj": np.zeros(8, np.float32)})
    for f in ("other.npz", "data.npz"):
        assert main(["build", str(work / "tiny.arch"), "--weights", str(work / f)]) == 1
        err = capsys.readouterr().err
        assert "none of its 2 names is one of the model's 4 (another model's weights, or not weights at all?)" in err
        assert "did you mean" not in err
    np.savez(work / "typo.npz", **{"fc1.wieght": np.zeros((8, 4), np.float32)})
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "typo.npz")]) == 1
    assert "'fc1.wieght'; did you mean 'fc1.weight'?" in capsys.readouterr().err


def test_weights_of_another_dtype_load_exactly_or_not_at_all(work, capsys):
    """Every value went through float32: int64 2**40 became -2**31 in an int32 buffer, 1.7 became 1, int64
    100000 became inf in float16 with no word, and a float64 parameter lost the last bit of 2**53 - 1."""
    from onnx import numpy_helper
    spec = work / "p.arch"
    spec.write_text("""model m(x: float64[B, 2]) -> y {
    p = parameter([2], init="zeros", dtype="int32", trainable=false) as p
    q = parameter([2], init="zeros", dtype="float16", trainable=false) as q
    r = parameter([2], init="zeros", dtype="float64", trainable=false) as r
    y = x + cast(p, "float64") + cast(q, "float64") + r
}""")

    def build(**given):
        w = {"p": np.zeros(2, np.int32), "q": np.zeros(2, np.float16), "r": np.zeros(2)}
        np.savez(work / "w.npz", **{**w, **given})
        return main(["build", str(spec), "--weights", str(work / "w.npz"), "-o", str(work / "p.onnx")])
    for given, words in (({"p": np.array([1, 2 ** 40])}, "'p': the value given reaches 1099511627776, "
                                                          "beyond int32's range"),
                         ({"p": np.array([1.7, 2.0])}, "'p': the value given holds fractions"),
                         ({"q": np.array([1, 100000])}, "'q': the value given reaches 100000, beyond "
                                                        "float16's range")):
        assert build(**given) == 1, given
        assert words in capsys.readouterr().err
    assert build(p=np.array([1.0, -3.0]), r=np.array([2 ** 53 - 1, 3], np.int64)) == 0
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(work / "p.onnx").graph.initializer}
    assert got["p"].tolist() == [1, -3] and got["r"].tolist() == [2 ** 53 - 1, 3]


def test_weights_at_the_edge_of_int64_and_into_bool(work):
    """A float 2**63 passed int64's range test (2**63 - 1 rounds up to it in float64) and wrapped to -2**63;
    2.5 or NaN loaded into a bool buffer as true."""
    import archdsl
    src = """model m(x: float32[B, 2]) -> (y, c, f) {
    y = x
    c = parameter([2], dtype="int64", trainable=false) as c
    f = parameter([2], dtype="bool", trainable=false) as f
}"""

    def build(**given):
        w = {"c": np.zeros(2, np.int64), "f": np.zeros(2, bool), **given}
        np.savez(work / "w.npz", **w)
        return archdsl.compile_source(src, weights=str(work / "w.npz"))
    for given, words in (({"c": np.array([2.0 ** 63, 0.0])}, "'c': the value given reaches 9.22"),
                         ({"f": np.array([1.0, 2.5])}, "'f': the value given holds values other than 0"),
                         ({"f": np.array([np.nan, 0.0])}, "holds values other than 0 and 1")):
        with pytest.raises(archdsl.ArchError, match=words):
            build(**given)
    from onnx import numpy_helper
    m = build(c=np.array([2.0 ** 62, -(2.0 ** 63)]), f=np.array([1.0, 0.0]))
    got = {t.name: numpy_helper.to_array(t).tolist() for t in m.graph.initializer}
    assert got["c"] == [2 ** 62, -(2 ** 63)] and got["f"] == [True, False]


def test_bfloat16_and_float8_arrays_from_npy_files(work, capsys):
    """numpy's .npy format writes ml_dtypes' bfloat16 as raw 2-byte values (|V2), which were refused as "holds
    |V2 values" (weights) or said as "void16" (--input): they are read as the bfloat16 they hold. A float8 (|V1)
    does not say which kind it is: the message says what it is and what to save instead."""
    import ml_dtypes
    w = {"fc1.weight": np.ones((8, 4)), "fc1.bias": np.zeros(8), "fc2.weight": np.full((3, 8), 0.5),
         "fc2.bias": np.zeros(3)}
    np.savez(work / "bf.npz", **{k: v.astype(ml_dtypes.bfloat16) for k, v in w.items()})
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "bf.npz"), "-o", str(work / "b.onnx")]) == 0
    got = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(work / "b.onnx")).graph.initializer}
    assert all(np.array_equal(got[k], v) for k, v in w.items())
    np.savez(work / "f8.npz", **{**w, "fc2.bias": np.zeros(3, ml_dtypes.float8_e4m3fn)})
    assert main(["build", str(work / "tiny.arch"), "--weights", str(work / "f8.npz")]) == 1
    assert "'fc2.bias' holds raw 1-byte values (numpy's .npy format does not record ml_dtypes' float8 types; save " \
           "them as float32, or in a .safetensors file)" in capsys.readouterr().err
    np.save(work / "x.npy", np.ones((2, 4), ml_dtypes.bfloat16))  # read as bfloat16, then cast as training data
    assert main(["run", str(work / "tiny.arch"), "--input", f"x={work / 'x.npy'}"]) == 0
    np.save(work / "x.npy", np.ones((2, 5), ml_dtypes.bfloat16))
    assert main(["run", str(work / "tiny.arch"), "--input", f"x={work / 'x.npy'}"]) == 1
    assert "takes float32[B, 4], " + str(work / "x.npy") + " holds bfloat16[2, 5]" in capsys.readouterr().err


def test_bfloat16_training_data_is_cast_as_float16_data_is(work, capsys):
    """--data refused bfloat16 arrays ("holds bfloat16 values; the model takes float32"), where float16 ones are
    cast; a float8 array says it came back as raw bytes, and a raw array of another size does not blame float8."""
    import ml_dtypes
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    train = ["train", str(work / "tiny.arch"), "--epochs", "1", "--quiet", "-o", str(work / "o.npz"), "--data"]
    for dt, ok in ((ml_dtypes.bfloat16, True), (ml_dtypes.float8_e4m3fn, False), ("V4", False)):
        np.savez(work / "d.npz", x=x.astype(dt) if dt != "V4" else x.view("V4"), labels=labels)
        assert main(train + [str(work / "d.npz")]) == (0 if ok else 1)
        err = capsys.readouterr().err
        if dt is ml_dtypes.float8_e4m3fn:
            assert "'x' holds raw 1-byte values (numpy's .npy format does not record ml_dtypes' float8 types" in err
        elif dt == "V4":
            assert "'x' holds raw 4-byte values (of no type numpy records); the model takes float32" in err


def test_a_bfloat16_input_model_is_refused_by_train_before_the_batches(work, capsys):
    """onnxruntime cannot be fed bfloat16 from Python: `train` failed at the first batch, blaming examples 0, 1,
    3, ...; it is said at the data, as `run` says it. A bfloat16 labels array is named as such, not as the
    float32 it was cast to; a real bfloat16 --input is not said to be raw bytes (review34). The model's input is
    said first, before its data's shape (review35)."""
    import ml_dtypes
    spec = work / "bf.arch"
    spec.write_text("model m(x: bfloat16[B, 4]) -> y {\n    y = cast(x, \"float32\") -> linear(3) as fc\n}\n")
    rng = np.random.default_rng(0)
    np.savez(work / "d.npz", x=rng.standard_normal((40, 3)).astype(np.float32), labels=rng.integers(0, 3, 40))
    assert main(["train", str(spec), "--data", str(work / "d.npz"), "--epochs", "1", "-o", str(work / "o.npz")]) == 1
    assert "the model's input 'x' is bfloat16, which onnxruntime cannot be fed from Python (numpy has no such " \
           "type): declare it float32 and cast(x, \"bfloat16\") in the spec" in capsys.readouterr().err
    np.savez(work / "d.npz", x=rng.standard_normal((40, 4)).astype(np.float32),
             labels=rng.integers(0, 3, 40).astype(ml_dtypes.bfloat16))
    assert main(["train", str(work / "tiny.arch"), "--data", str(work / "d.npz"), "--epochs", "1",
                 "-o", str(work / "o.npz")]) == 1
    assert "'labels' must hold integers (int64), got bfloat16" in capsys.readouterr().err
    np.save(work / "x.npy", np.ones((2, 5), ml_dtypes.bfloat16))
    assert main(["run", str(work / "tiny.arch"), "--input", f"x={work / 'x.npy'}"]) == 1
    err = capsys.readouterr().err
    assert "holds bfloat16[2, 5]" in err and "raw" not in err


def _refused_with(tmp_path, capsys, body: str, shapes: dict) -> str:
    """Build `y = x -> body` over x: float32[B, 3, 8] with a weights file of these names and shapes: its error."""
    import numpy as np

    from archdsl.cli import main
    spec = tmp_path / "a.arch"
    spec.write_text(f"model m(x: float32[B, 3, 8]) -> y {{\n    y = x -> {body}\n}}\n")
    np.savez(tmp_path / "w.npz", **{k: np.zeros(v, np.float32) for k, v in shapes.items()})
    assert main(["build", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "a.onnx")]) == 1
    return " ".join(capsys.readouterr().err.split())


def test_torchs_name_for_an_unlabelled_layer_says_to_label_it(tmp_path, capsys):
    """A torch state_dict's self_attn.* against the model's automatic multihead_attention_0.*: only renaming the
    file's keys to the automatic names was said (newuser4 hunt). Layers are paired by every name and shape (review69:
    proj/head against linear_0/linear_1 said `as head` of linear_0), never by a user's own label (enc_1)."""
    err = _refused_with(tmp_path, capsys, "multihead_attention(8, 2)", {
        "self_attn.in_proj_weight": (24, 8), "self_attn.in_proj_bias": (24,), "self_attn.out_proj.weight": (8, 8),
        "self_attn.out_proj.bias": (8,)})
    assert "'multihead_attention_0' is an unlabelled layer's automatic name, and labelling that layer `as self_attn`" \
        in err
    err = _refused_with(tmp_path, capsys, "linear(16) -> relu -> linear(3)", {
        "proj.weight": (16, 8), "proj.bias": (16,), "head.weight": (3, 16), "head.bias": (3,)})
    assert "'linear_1' is an unlabelled layer's automatic name, and labelling that layer `as head`" in err
    assert "automatic name" not in _refused_with(tmp_path, capsys, "linear(16) as enc_1", {
        "enc1.weight": (16, 8), "enc1.bias": (16,)})


def test_a_torch_wrappers_name_for_one_layer_inside_a_block_says_to_label_that_layer(tmp_path, capsys):
    """WaveNet's CausalConv1d (a pad, then its conv) keeps its weight as filter_conv.weight; written as a block called
    `as filter_conv`, the model's name is filter_conv.conv1d_0.weight, and only "did you mean" (rename the file's
    key) was said (porting6 hunt). Where the same-length hint fires, "did you mean" is left out too."""
    import numpy as np

    from archdsl.cli import main
    spec = tmp_path / "cc.arch"
    spec.write_text("block causal_conv(x, out, k, d) {\n    return x -> pad([(k - 1) * d, 0]) -> conv1d(out, k, "
                    "dilation=d, bias=false)\n}\nmodel m(x: float32[B, 4, T]) -> y {\n"
                    "    y = causal_conv(x, 4, 2, 2) as filter_conv\n}\n")
    np.savez(tmp_path / "w.npz", **{"filter_conv.weight": np.ones((4, 4, 2), np.float32)})
    assert main(["build", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "a.onnx")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("'conv1d_0' is the automatic name of the unlabelled conv1d inside the block named 'filter_conv', "
            "where the file's module holds its weights itself: label that conv1d `as \"{name}\"`") in err, err
    assert "did you mean" not in err
    err = _refused_with(tmp_path, capsys, "conv1d(4, 2, bias=false)", {"filter_conv.weight": (4, 3, 2)})
    assert "labelling that layer `as filter_conv`" in err and "did you mean" not in err, err
    looped = spec.read_text().replace("    y = causal_conv(x, 4, 2, 2) as filter_conv\n",
                                      "    y = x\n    for i in range(2) {\n"
                                      "        y = causal_conv(y, 4, 2, 2) as \"layers.{i}\"\n    }\n")
    (tmp_path / "loop.arch").write_text(looped)  # the whole name (review74: `as 0`; a quoted label is no `as` the
    # file wrote where blocks nest: review75)
    np.savez(tmp_path / "w2.npz", **{f"layers.{i}.weight": np.ones((4, 4, 2), np.float32) for i in range(2)})
    assert main(["build", str(tmp_path / "loop.arch"), "--weights", str(tmp_path / "w2.npz"), "-o",
                 str(tmp_path / "b.onnx")]) == 1
    assert "inside the block named 'layers.0'," in capsys.readouterr().err
    fixed = spec.read_text().replace("d) {", "d, name) {").replace("bias=false)", "bias=false) as \"{name}\"") \
        .replace("2, 2) as filter_conv", "2, 2, \"filter_conv\")")
    spec.write_text(fixed)
    np.savez(tmp_path / "w.npz", **{"filter_conv.weight": np.ones((4, 4, 2), np.float32)})
    assert main(["build", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "a.onnx")]) == 0
