"""`archdsl run`'s inputs: given as .npy/.npz (their shapes checked, numbers cast where they fit, as training
data is), drawn at random (each from its own stream, by --seed), and the dims they must agree on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")


def _uint8_model(path):
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Cast", ["img"], ["y"], to=TensorProto.FLOAT)], "g",
                          [helper.make_tensor_value_info("img", TensorProto.UINT8, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.parametrize("arr, what", [(np.ones((2, 5), np.float32), "float32[2, 5]"),
                                       (np.ones((2, 5), np.float64), "float64[2, 5]"),
                                       (np.full((2, 784), "a"), "str32[2, 784]"),
                                       (np.ones(784, np.float32), "float32[784]")])
def test_run_input_of_the_wrong_shape_or_dtype_is_a_diagnostic(tmp_path, capsys, arr, what):
    x = tmp_path / "x.npy"
    np.save(x, arr)
    assert main(["run", MLP, "--input", f"x={x}"]) == 1
    err = capsys.readouterr().err
    assert f"--input x: the model takes float32[B, 784], {x} holds {what}" in err
    assert "internal error" not in err


def test_run_input_numbers_are_cast_where_they_fit_as_training_data_is(tmp_path, capsys):
    """np.random.randn's float64 for a float32 input was refused (`archdsl train` casts it)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 3], i: int64[B]) -> (y, j) {\n    y = x * 2.0\n    j = i + 1\n}\n")
    feeds = {"x": np.full((2, 3), 0.1), "i": np.arange(2, dtype=np.int32), "big": np.full((2, 3), 1e300),
             "half": np.array([0.5, 1.0])}
    for k, v in feeds.items():
        np.save(tmp_path / f"{k}.npy", v)
    out = tmp_path / "out.npz"
    assert main(["run", str(spec), "--input", f"x={tmp_path / 'x.npy'}", "--input", f"i={tmp_path / 'i.npy'}",
                 "--repeat", "1", "--save", str(out)]) == 0
    capsys.readouterr()
    with np.load(out) as z:
        assert z["input:x"].dtype == np.float32 and z["input:i"].dtype == np.int64
        np.testing.assert_array_equal(z["y"], np.full((2, 3), np.float32(0.1) * 2, np.float32))
        np.testing.assert_array_equal(z["j"], [1, 2])
    assert main(["run", str(spec), "--input", f"x={tmp_path / 'big.npy'}"]) == 1
    assert "'x'[0, 0] is 1e+300, beyond float32" in capsys.readouterr().err
    assert main(["run", str(spec), "--input", f"i={tmp_path / 'half.npy'}"]) == 1
    err = capsys.readouterr().err
    assert "the model takes int64[B]" in err and "whole numbers" not in err
    np.save(tmp_path / "whole.npy", np.array([0.0, 1.0]))  # said as training data's is (diffusion hunt)
    assert main(["run", str(spec), "--input", f"i={tmp_path / 'whole.npy'}"]) == 1
    assert "holds float64[2]; its values are whole numbers: store them .astype(np.int64)" in capsys.readouterr().err
    for bad in (np.array([np.inf, 1.0]), np.array([1e30, 1.0]), np.array([2.0 ** 63, 1.0])):  # no advice a
        # cast would betray (review52, review53: 2**63 passed a bound compared in float64)
        np.save(tmp_path / "bad.npy", bad)
        assert main(["run", str(spec), "--input", f"i={tmp_path / 'bad.npy'}"]) == 1
        assert "whole numbers" not in capsys.readouterr().err
    import ml_dtypes  # a bfloat16 .npy (exact in float32) as training data takes it
    np.save(tmp_path / "bf.npy", np.full((2, 3), 1.5).astype(ml_dtypes.bfloat16))
    assert main(["run", str(spec), "--input", f"x={tmp_path / 'bf.npy'}", "--repeat", "1", "--save", str(out)]) == 0
    with np.load(out) as z:
        np.testing.assert_array_equal(z["y"], np.full((2, 3), 3.0, np.float32))


def test_run_input_from_an_npz(tmp_path, capsys):
    """By the input's name, or the file's only array; an .npz was an internal error before."""
    np.savez(tmp_path / "named.npz", labels=np.zeros(3, np.int64), x=np.ones((3, 784), np.float32))
    np.savez(tmp_path / "only.npz", data=np.ones((2, 784), np.float32))
    np.savez(tmp_path / "two.npz", a=np.ones((2, 784), np.float32), b=np.ones((2, 784), np.float32))
    assert main(["run", MLP, "--input", f"x={tmp_path / 'named.npz'}", "--repeat", "1"]) == 0
    assert "logits: [3, 10]" in capsys.readouterr().out
    assert main(["run", MLP, "--input", f"x={tmp_path / 'only.npz'}", "--repeat", "1"]) == 0
    assert "logits: [2, 10]" in capsys.readouterr().out
    assert main(["run", MLP, "--input", f"x={tmp_path / 'two.npz'}"]) == 1
    assert "holds 2 arrays (a, b) and none is called 'x'" in capsys.readouterr().err
    (tmp_path / "cut.npz").write_bytes((tmp_path / "two.npz").read_bytes()[:300])
    assert main(["run", MLP, "--input", f"x={tmp_path / 'cut.npz'}"]) == 1
    assert "--input x: cannot read" in capsys.readouterr().err


def test_run_refuses_inputs_that_disagree_on_a_dim_name(tmp_path, capsys):
    spec = tmp_path / "two.arch"   # y with T = 1 would broadcast silently in onnxruntime
    spec.write_text("model m(x: float32[B, T, 4], y: float32[B, T, 4]) -> z {\n    z = x + y\n}\n")
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.ones((1, 3, 4), np.float32))
    np.save(y, np.ones((1, 1, 4), np.float32))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"y={y}"]) == 1
    assert "--input: dim 'T' is 3 in 'x' but 1 in 'y'" in capsys.readouterr().err
    np.save(y, np.ones((1, 3, 4), np.float32))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"y={y}"]) == 0
    np.save(x, np.ones((2, 5, 4), np.float32))   # alone: the random y takes B = 2 and T = 5 from it
    assert main(["run", str(spec), "--input", f"x={x}"]) == 0
    assert "z: [2, 5, 4] float32" in capsys.readouterr().out
    assert main(["run", str(spec), "--input", f"x={x}", "--dim", "T=6"]) == 1   # an explicit --dim disagrees
    assert "--dim T=6: --input x has 5 for dim 'T'" in capsys.readouterr().err


def test_run_unknown_input_is_a_diagnostic(tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 784), np.float32))
    assert main(["run", MLP, "--input", f"nope={x}"]) == 1
    assert "no input 'nope'" in capsys.readouterr().err


def test_run_feeds_every_integer_dtype_and_names_what_it_cannot_feed(tmp_path, capsys):
    """A uint8 input got float32 random data (onnxruntime refused it) and a uint8 --input was refused as
    'the model takes float32'; an upper-case .ONNX was read as a spec."""
    model = tmp_path / "u8.ONNX"
    _uint8_model(model)
    assert main(["run", str(model)]) == 0
    np.save(tmp_path / "u8.npy", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert main(["run", str(model), "--input", f"img={tmp_path / 'u8.npy'}"]) == 0
    assert "mean 2.5" in capsys.readouterr().out
    for name, arr in (("f.npy", np.zeros((2, 3), np.float32)), ("b.npy", np.zeros((2, 3), bool))):  # bool ids
        np.save(tmp_path / name, arr)  # were cast where training data refuses them (datafuzz hunt)
        assert main(["run", str(model), "--input", f"img={tmp_path / name}"]) == 1
        assert "the model takes uint8[N, 3]" in capsys.readouterr().err
    spec = tmp_path / "bf.arch"
    spec.write_text('model m(x: bfloat16[B, 4]) -> y {\n    y = cast(x, "float32")\n}\n')
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "input 'x' is tensor(bfloat16), which cannot be fed from Python" in err and "internal" not in err


def test_batch_over_two_first_dims_says_how_to_size_each(tmp_path, capsys):
    """--batch sizes every symbolic first dim: with a flat list of ids [N] beside dense [B, 3], `--batch 3 --dim
    N=10` said "the batch is dim 'N'" and no way out (recsys hunt)."""
    spec = tmp_path / "jag.arch"
    spec.write_text("model m(dense: float32[B, 3], ids: int64[N]) -> y {\n"
                    "    y = sum(dense) + sum(cast(ids, \"float32\"))\n}\n")
    assert main(["run", str(spec), "--batch", "3", "--dim", "N=10"]) == 1
    assert ("--batch 3 and --dim N=10 disagree (--batch sizes every symbolic first dim (B, N): drop it and give "
            "each its own, --dim B=3 --dim N=10)") in capsys.readouterr().err
    assert main(["run", str(spec), "--dim", "B=3", "--dim", "N=10", "--repeat", "1"]) == 0


def test_run_blames_the_given_inputs_that_disagree_and_never_ignores_batch(tmp_path, capsys):
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, T, 8], ids: int64[B, T], mask: bool[B, T]) -> y {\n"
                    "    y = x + cast(unsqueeze(ids, -1), \"float32\") + cast(unsqueeze(mask, -1), \"float32\")\n}\n")
    x, mask = tmp_path / "x.npy", tmp_path / "m.npy"
    np.save(x, np.ones((3, 5, 8), np.float32))
    np.save(mask, np.zeros((3, 4), bool))
    assert main(["run", str(spec), "--input", f"x={x}", "--input", f"mask={mask}"]) == 1
    assert "dim 'T' is 5 in 'x' but 4 in 'mask'" in capsys.readouterr().err  # not in the random 'ids'
    assert main(["run", str(spec), "--batch", "4", "--dim", "B=2"]) == 1
    assert "--batch 4 and --dim B=2 disagree" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "4", "--input", f"x={x}"]) == 1
    assert "--batch 4: --input x has 3 for dim 'B'" in capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "3", "--input", f"x={x}"]) == 0
    masked = tmp_path / "mask.arch"  # T is first met as x's second dim: --batch never sizes it
    masked.write_text("model m(x: float32[B, T, 4], mask: float32[T, T]) -> y {\n    y = mask @ x\n}\n")
    assert main(["run", str(masked), "--batch", "2", "--dim", "T=5", "--repeat", "1"]) == 0
    assert "y: [2, 5, 4] float32" in capsys.readouterr().out


def test_run_seed_draws_the_inputs_and_the_stats_are_the_outputs(tmp_path, capsys):
    """--seed draws the random inputs (the same seed the same inputs, another seed others), and the printed
    mean, std, min and max are the output's."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 50]) -> y {\n    y = x * 3.0\n}\n")
    saved = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["run", str(spec), "--seed", seed, "--repeat", "1", "--save", str(tmp_path / f"{name}.npz")]) == 0
        said = capsys.readouterr().out
        with np.load(tmp_path / f"{name}.npz") as z:
            saved[name] = z["input:x"]
            y = z["y"].astype(np.float64)
        assert f"mean {y.mean():.4g}  std {y.std():.4g}  min {y.min():.4g}  max {y.max():.4g}" in said
    assert np.array_equal(saved["a"], saved["b"]) and not np.array_equal(saved["a"], saved["c"])


def test_giving_one_input_leaves_the_others_random_values_as_they_were(tmp_path, capsys):
    """Each random input draws from its own stream: feeding `a` from a file used to shift `b`'s values."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(a: float32[B, 3], b: float32[B, 3]) -> y {\n    y = a + b\n}\n")
    np.save(tmp_path / "a.npy", np.ones((1, 3), np.float32))
    saved = {}
    for name, given in (("random", []), ("given", ["--input", f"a={tmp_path / 'a.npy'}"])):
        assert main(["run", str(spec), "--repeat", "1", "--save", str(tmp_path / f"{name}.npz"), *given]) == 0
        with np.load(tmp_path / f"{name}.npz") as z:
            saved[name] = {k: z[k] for k in z.files}
    capsys.readouterr()
    assert np.array_equal(saved["given"]["input:a"], np.ones((1, 3), np.float32))
    assert not np.array_equal(saved["random"]["input:a"], saved["given"]["input:a"])
    assert np.array_equal(saved["random"]["input:b"], saved["given"]["input:b"])


def test_run_flag_mistakes_are_said_before_the_spec_is_compiled(tmp_path, capsys, monkeypatch):
    """A malformed --dim, or an --input given twice, was said only after the compile and the session (8 s
    for GPT-2): the spec is not even read first now."""
    from archdsl import driver

    def no_compile(*a, **k):
        raise AssertionError("compiled before the flags were checked")
    monkeypatch.setattr(driver, "build", no_compile)
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, T]) -> y {\n    y = x\n}\n")
    assert main(["run", str(spec), "--dim", "T"]) == 2
    assert "--dim expects SYM=N" in capsys.readouterr().err
    assert main(["run", str(spec), "--dim", "T=3", "--dim", "T=4"]) == 2
    assert "--dim T is given twice" in capsys.readouterr().err
    assert main(["run", str(spec), "--input", "x=a.npy", "--input", "x=b.npy"]) == 1
    assert "--input x is given twice" in capsys.readouterr().err


def test_one_example_without_its_batch_dim_is_told_to_add_it(tmp_path, capsys):
    """[4] for int64[B, T] said only the two shapes, where train's data check gives the fix (newuser4 hunt)."""
    import numpy as np

    from archdsl.cli import main
    spec = tmp_path / "e.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    y = ids -> embedding(10, 4) as emb\n}\n")
    np.save(tmp_path / "p.npy", np.array([1, 2, 3, 4]))
    assert main(["run", str(spec), "--input", f"ids={tmp_path / 'p.npy'}", "--repeat", "1"]) == 1
    assert "p.npy holds int64[4]; one example? store it with the batch dim, as array[None]" in capsys.readouterr().err

    spec.write_text("model m(ids: int64[2, T]) -> y {\n    y = ids -> embedding(10, 4) as emb\n}\n")  # a fixed
    assert main(["run", str(spec), "--input", f"ids={tmp_path / 'p.npy'}", "--repeat", "1"]) == 1  # batch of 2
    assert "one example?" not in capsys.readouterr().err  # (review69: array[None] was refused next)


def test_run_with_weights_takes_a_seed_for_its_random_inputs(tmp_path, capsys):
    """run --weights W --seed 3 was refused as a seed beside weights (review119): run's --seed also draws the
    random inputs, which the weights leave alone."""
    import archdsl
    from archdsl.lower import initial_weights, save_weights
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    save_weights(tmp_path / "w.npz", initial_weights(archdsl.check_file(spec)))
    outs = []
    for seed in ("0", "3"):
        assert main(["run", str(spec), "--weights", str(tmp_path / "w.npz"), "--seed", seed, "--repeat", "1",
                     "--save", str(tmp_path / f"o{seed}.npz")]) == 0
        outs.append(np.load(tmp_path / f"o{seed}.npz")["y"])
    assert not np.array_equal(*outs)  # other inputs, the same weights
