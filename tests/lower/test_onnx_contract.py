"""The output contract of DESIGN.md: full ONNX check, ONNX's shape inference agrees with ours, dim_params,
opsets, determinism, atomic writes, metadata and source locations, weights by name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import driver, runtime
from archdsl.cli import main
from archdsl.diagnostics import ArchError
from archdsl.lower import initial_weights, lower_graph, save_weights
from archdsl.types import Sym

from .shape_agreement import assert_shapes_agree

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
CASES = [("mlp.arch", {}), ("lenet5.arch", {}), ("resnet.arch", {"depth": 18, "resolution": 64}),
         ("resnet.arch", {"depth": 50, "resolution": 64}),
         ("gpt2.arch", {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab": 50, "n_positions": 16})]
IDS = [f"{s}{'-' + '-'.join(f'{k}{v}' for k, v in d.items()) if d else ''}" for s, d in CASES]


@pytest.mark.parametrize("opset", [17, None])
@pytest.mark.parametrize("spec,defines", CASES, ids=IDS)
def test_onnx_shape_inference_agrees_with_ours(spec, defines, opset):
    """Every intermediate value: ONNX's own inference (our value_info dropped) gives our rank and dims."""
    g = archdsl.check_file(SPECS / spec, defines=defines)
    res = lower_graph(g, opset=opset or runtime.newest_opset())
    onnx.checker.check_model(res.model, full_check=True)
    assert assert_shapes_agree(g, res) > 0


@pytest.mark.parametrize("opset", [17, 20, None])
def test_symbolic_batch_runs_at_any_size(opset):
    m = archdsl.compile_file(SPECS / "lenet5.arch", opset=opset)
    onnx.checker.check_model(m, full_check=True)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"
    assert m.opset_import[0].version == (opset or runtime.newest_opset())
    sess = runtime.session(m)
    for batch in (1, 3):
        (y,) = sess.run(None, runtime.random_feeds(sess, batch=batch))
        assert y.shape == (batch, 10) and np.isfinite(y).all()


def test_gelu_decomposed_below_opset_20_and_native_above():
    src = "model m(x: float32[B, 8]) -> y {\n    y = x -> gelu\n}\n"
    old = archdsl.compile_source(src, opset=17)
    new = archdsl.compile_source(src, opset=20)
    assert "Gelu" not in {n.op_type for n in old.graph.node} and "Erf" in {n.op_type for n in old.graph.node}
    assert "Gelu" in {n.op_type for n in new.graph.node}
    x = np.linspace(-4, 4, 16, dtype=np.float32).reshape(2, 8)
    a = runtime.session(old).run(None, {"x": x})[0]
    b = runtime.session(new).run(None, {"x": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_opset_below_17_is_refused():
    with pytest.raises(ArchError):
        archdsl.compile_file(SPECS / "mlp.arch", opset=16)


@pytest.mark.parametrize("options,words", [({"opt_level": 5}, "opt_level must be 0, 1 or 2"),
                                           ({"seed": -1}, "seed must be an integer in 0..4294967295"),
                                           ({"seed": 2**32}, "seed must be"), ({"seed": 1.5}, "seed must be"),
                                           ({"opt_level": True}, "opt_level must be"),
                                           ({"opset": 17.0}, "opset must be an integer"),
                                           ({"disabled_passes": "cse"}, "disabled_passes takes a list"),
                                           ({"disabled_passes": 5}, "disabled_passes takes a list"),
                                           ({"model": 5}, "model takes a model's name"),
                                           ({"model": "mpl"}, r"^model='mpl': no model 'mpl' in mlp.arch; did you "
                                                              r"mean 'mlp'\?"),  # it said --model mpl
                                           ({"defines": 5}, "defines takes a dict or a list"),
                                           ({"defines": [("a", 1)]}, "defines takes a dict or a list"),
                                           ({"search_path": "inc"}, "search_path takes a list of directories"),
                                           ({"search_path": None}, "search_path takes a list"),
                                           ({"weights": 5}, "weights takes the path"),
                                           ({"weights": ""}, "weights takes the path"),  # ignored before
                                           ({"weights": {1: np.zeros(3)}}, "the keys are parameter names"),
                                           ({"weights": {"fc9.weight": np.zeros(3)}}, "weights has 1 name the model"),
                                           ({"opt_level": 2.0}, "opt_level must be"),  # passed, as opset=17.0 not
                                           ({"with_weights": "no"}, "with_weights must be true or false"),
                                           ({"defines": {3: 3}}, "defines: a key must be a param's name, got 3"),
                                           ({"defines": {"hidden": "64"}}, r"defines\['hidden'\]: expected an integer"
                                            r".* got string \"64\" \(the Python API's defines take Python values"),
                                           ({"defines": {"hiden": 64}}, r"defines\['hiden'\]: mlp.arch has no param"),
                                           ({"defines": {"a.n": 2}}, r"defines\['a.n'\]: mlp.arch imports no file as "
                                            r"'a' \(the key ALIAS.NAME sets"),
                                           ({"defines": {"hidden": 10**5000}}, r"defines\['hidden'\]: integer too "
                                            r"large \(16610 bits\)"),  # a ValueError printing it
                                           ({"optlevel": 1}, "unknown option 'optlevel'; did you mean 'opt_level'"),
                                           ({"defnes": {}}, r"'defnes'; did you mean 'defines'\? \(options: defines, "
                                                            "model, opset"),
                                           ({"with_weights": False, "weights": {"fc1.weight": np.zeros(3)}},
                                            "the given weights would be dropped"),
                                           ({"with_weights": np.False_, "weights": {"fc1.weight": np.zeros(3)}},
                                            "the given weights would be dropped")])  # numpy's false was not
def test_api_options_are_checked_like_the_flags(options, words):
    """opt_level=5 built at -O2 and seeds were masked to 32 bits, silently; archdsl.ArchError is exported. The
    names the functions take themselves (defines, model) are listed and suggested too; weights given with
    with_weights=false were checked and then dropped."""
    with pytest.raises(archdsl.ArchError, match=words):
        archdsl.compile_file(SPECS / "mlp.arch", **options)


def test_an_empty_path_is_named_as_such():
    """compile_file("") said " is a directory, not a .arch file" (pathlib reads "" as the current folder)."""
    for fn in (archdsl.compile_file, archdsl.check_file):
        with pytest.raises(archdsl.ArchError, match="expected the path of a .arch file, got an empty one"):
            fn("")


def test_the_check_functions_refuse_an_unknown_option_as_an_arch_error():
    """check_source(src, opset=17) was a Python TypeError (compile_source's options mean nothing there)."""
    src = (SPECS / "mlp.arch").read_text()
    with pytest.raises(archdsl.ArchError, match=r"unknown option 'opset' \(options: defines, model, file, search_path"):
        archdsl.check_source(src, opset=17)
    with pytest.raises(archdsl.ArchError, match=r"unknown option 'defnes'; did you mean 'defines'"):
        archdsl.check_file(SPECS / "mlp.arch", defnes={})




def test_a_tied_weight_listed_twice_by_torch_is_named_as_such():
    """torch's state_dict lists a tied weight under both modules; the spec reads it once, through ref(), and the
    extra name was refused with no word of the tie. Equal zeros (a fresh bias) are no sign of one."""
    text = ("model lm(ids: int64[B, T]) -> logits {\n    h = ids -> embedding(30, 8) as embed -> linear(8) as mix\n"
            "    logits = h @ ref(\"embed.weight\").T\n}\n")
    rng = np.random.default_rng(0)
    w = {"embed.weight": rng.standard_normal((30, 8)), "mix.weight": rng.standard_normal((8, 8)),
         "mix.bias": np.zeros(8)}
    archdsl.compile_source(text, weights=w)
    with pytest.raises(archdsl.ArchError, match=r"'head.weight' holds the same values as 'embed.weight': a weight "
                                                r"torch ties, listed under both names"):
        archdsl.compile_source(text, weights={**w, "head.weight": w["embed.weight"].copy()})
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.compile_source(text, weights={**w, "head.bias": np.zeros(8)})
    assert "ties" not in str(e.value)

def test_api_weights_can_be_a_dict_of_arrays_or_tensors(tmp_path):
    """A state_dict-like dict was refused by a message that printed the whole dict (140 kB)."""
    first = archdsl.compile_file(SPECS / "mlp.arch", seed=3)
    arrays = {t.name: onnx.numpy_helper.to_array(t) * 2 for t in first.graph.initializer}
    np.savez(tmp_path / "w.npz", **arrays)
    from_file = archdsl.compile_file(SPECS / "mlp.arch", weights=str(tmp_path / "w.npz"))
    from_dict = archdsl.compile_file(SPECS / "mlp.arch", weights=arrays)
    assert from_dict.graph.initializer == from_file.graph.initializer
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(v).requires_grad_(v.dtype.kind == "f") for k, v in arrays.items()}
    assert archdsl.compile_file(SPECS / "mlp.arch", weights=tensors).graph.initializer == from_file.graph.initializer
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.compile_file(SPECS / "mlp.arch", weights=[arrays])
    assert len(str(e.value)) < 300
    lists = {k: v.tolist() for k, v in arrays.items()}  # nested lists are arrays too; a ragged one is not
    assert archdsl.compile_file(SPECS / "mlp.arch", weights=lists).graph.initializer == from_file.graph.initializer
    name = next(k for k, v in arrays.items() if v.ndim == 2)
    with pytest.raises(archdsl.ArchError, match=f"'{name}' is a ragged nested list"):
        archdsl.compile_file(SPECS / "mlp.arch", weights={**lists, name: lists[name][:-1] + [lists[name][-1][:-1]]})


@pytest.mark.parametrize("model_dtype", ["float32", "bfloat16"])
def test_bfloat16_weights_load_from_safetensors_and_torch(tmp_path, model_dtype):
    """Checkpoints ship as bfloat16 (ml_dtypes' type in a safetensors file, kind 'V'; a torch tensor numpy
    cannot take): they were refused as 'not numbers', or a TypeError from the API. Each value is exact in
    float32 and in a bfloat16 model; a complex tensor is still refused."""
    torch = pytest.importorskip("torch")
    import ml_dtypes
    from safetensors.numpy import save_file
    src = f"model m(x: {model_dtype}[B, 4]) -> y {{\n    y = x -> linear(2) as fc\n}}\n"
    sd = {"fc." + k: v.to(torch.bfloat16) for k, v in torch.nn.Linear(4, 2).state_dict().items()}
    want = {k: v.float().numpy() for k, v in sd.items()}
    save_file({k: v.astype(ml_dtypes.bfloat16) for k, v in want.items()}, str(tmp_path / "w.safetensors"))
    for weights in (sd, str(tmp_path / "w.safetensors")):
        model = archdsl.compile_source(src, weights=weights)
        got = {t.name: onnx.numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    with pytest.raises(archdsl.ArchError, match="'fc.weight' holds complex numbers; a parameter takes real numbers"):
        archdsl.compile_source(src, weights={**sd, "fc.weight": torch.zeros(2, 4, dtype=torch.complex64)})


def test_bfloat16_checkpoints_are_checked_against_the_parameters_dtype(tmp_path, capsys):
    """ml_dtypes' bfloat16 is of numpy kind 'V', which the range and whole-number checks skipped where
    `archdsl build` streams a .safetensors file: 1e30 became inf in a float16 parameter and [2.5, -1.75] was
    truncated into an int64 buffer, where float32 values are refused (the API checked both)."""
    import ml_dtypes
    from safetensors.numpy import save_file
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float16[B, 2]) -> y {\n    p = parameter([2], dtype=\"int64\") as idx\n"
                    "    y = (x -> linear(2) as fc) + cast(p, \"float16\")\n}\n")
    ok = {"fc.weight": np.eye(2), "fc.bias": np.zeros(2), "idx": np.array([2, -1])}
    cases = {"ok": {}, "big": {"fc.weight": np.full((2, 2), 1e30)}, "frac": {"idx": np.array([2.5, -1.75])}}
    for name, change in cases.items():
        w = tmp_path / f"{name}.safetensors"
        save_file({k: v.astype(ml_dtypes.bfloat16) for k, v in {**ok, **change}.items()}, str(w))
        for build in (lambda: main(["build", str(spec), "--weights", str(w), "-o", str(tmp_path / "m.onnx")]),
                      lambda: archdsl.compile_file(spec, weights=str(w)) and 0):
            if name == "ok":
                assert build() == 0
                continue
            try:
                code = build()
            except ArchError as e:
                code, err = 1, str(e)
            else:
                err = capsys.readouterr().err
            assert code == 1 and ("reaches 1.00026e+30, beyond float16's range" in err if name == "big" else
                                  "'idx': the value given holds fractions" in err), err


def test_torch_meta_and_sparse_weights():
    """A meta tensor (a model built on the meta device) has no values: an ArchError saying so, not torch's
    NotImplementedError; a sparse one loads its values, as load_state_dict's copy does."""
    torch = pytest.importorskip("torch")
    src = "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc\n}\n"
    with pytest.raises(archdsl.ArchError, match="'fc.weight' is a torch tensor on the meta device, which holds no "
                                                "values"):
        archdsl.compile_source(src, weights={"fc.weight": torch.empty(2, 4, device="meta"), "fc.bias": torch.zeros(2)})
    w = torch.eye(2, 4)
    lazy = torch.randn(2, dtype=torch.cfloat).conj().imag  # a real tensor with its negation bit set
    got = archdsl.compile_source(src, weights={"fc.weight": w, "fc.bias": lazy})  # torch's RuntimeError before
    assert np.array_equal({t.name: onnx.numpy_helper.to_array(t) for t in got.graph.initializer}["fc.bias"],
                          lazy.resolve_neg().numpy())
    nested = torch.nested.nested_tensor([torch.zeros(1), torch.zeros(2)])
    with pytest.raises(archdsl.ArchError, match="torch cannot give its values as an array") as e:
        archdsl.compile_source(src, weights={"fc.weight": w, "fc.bias": nested})
    assert "file an issue" not in str(e.value)
    model = archdsl.compile_source(src, weights={"fc.weight": w.to_sparse(), "fc.bias": torch.ones(2).to_sparse()})
    got = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert np.array_equal(got["fc.weight"], w.numpy()) and np.array_equal(got["fc.bias"], np.ones(2, np.float32))


@pytest.mark.parametrize("call, words", [
    (lambda: archdsl.compile_file(None), "expected the path of a .arch file"),
    (lambda: archdsl.compile_file(b"mlp.arch"), "expected the path of a .arch file"),
    (lambda: archdsl.check_file(3), "expected the path of a .arch file"),
    (lambda: archdsl.compile_source(None), "the spec's text must be a str, got NoneType"),
    (lambda: archdsl.compile_source(b"model"), "the spec's text must be a str, got bytes"),
    (lambda: archdsl.check_source(3), "the spec's text must be a str, got int"),
    (lambda: archdsl.compile_source("model m(x: float32[4]) -> y { y = x }", file=None), "file names the spec"),
])
def test_api_arguments_of_the_wrong_type_are_arch_errors(call, words):
    """They were raw TypeErrors and AttributeErrors from pathlib and the parser."""
    with pytest.raises(archdsl.ArchError, match=words):
        call()


def test_a_path_for_text_or_a_file_of_arrays_for_a_spec_says_which_function(tmp_path):
    """compile_source("mlp.arch") parsed the name ("unexpected 'mlp'"); compile_file of an .npz said "the file is
    not UTF-8" where the command line said what the file was. A one-line spec is still text."""
    for fn in (archdsl.compile_source, archdsl.check_source):
        with pytest.raises(archdsl.ArchError, match=r"^the spec's text is 'specs/mlp.arch', a file name: compile_file "
                           "and check_file read a file, compile_source and check_source a spec's text$"):
            fn("specs/mlp.arch")
    archdsl.check_source("model m(x: float32[B, 2]) -> y { y = x }  # from mlp.arch")
    np.savez(tmp_path / "d.npz", x=np.zeros(3))
    for fn in (archdsl.compile_file, archdsl.check_file):
        with pytest.raises(archdsl.ArchError, match=r"d.npz is a file of arrays \(.npz\), not a .arch spec$"):
            fn(tmp_path / "d.npz")


def test_a_state_dict_behind_a_wrappers_prefix_says_to_strip_it():
    """DataParallel's 'module.fc1.weight' got "did you mean 'fc1.bias'?"."""
    src = "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc1 -> linear(2) as fc2\n}\n"
    shapes = {"fc1.weight": (3, 4), "fc1.bias": (3,), "fc2.weight": (2, 3), "fc2.bias": (2,)}
    for prefix in ("module.", "_orig_mod.model."):
        with pytest.raises(archdsl.ArchError) as e:
            archdsl.compile_source(src, weights={prefix + k: np.zeros(v, np.float32) for k, v in shapes.items()})
        assert e.value.message.endswith(f"; each is a parameter's name behind '{prefix}' (a wrapper's, as torch's "
                                        f"DataParallel 'module.'): strip it, {{k.removeprefix('{prefix}'): v for k, "
                                        "v in state_dict.items()}"), e.value.message
    weights = {k: np.zeros(v, np.float32) for k, v in shapes.items() if k != "fc2.bias"}
    with pytest.raises(archdsl.ArchError, match="did you mean 'fc2.bias'"):  # a typo: no prefix to strip
        archdsl.compile_source(src, weights={**weights, "fc2.bais": np.zeros(2, np.float32)})
    with pytest.raises(archdsl.ArchError, match="'module.fc2.bias', 'x.fc1.bias'; did you mean 'fc2.bias'"):
        archdsl.compile_source(src, weights={**{k: v for k, v in weights.items() if k != "fc1.bias"},
                                             "module.fc2.bias": np.zeros(2), "x.fc1.bias": np.zeros(3)})


def test_a_float_param_given_a_huge_integer_is_a_diagnostic():
    with pytest.raises(archdsl.ArchError, match=r"defines\['s'\]: the integer is too large for a number"):
        archdsl.compile_source("param s = 1.0\nmodel m(x: float32[B, 2]) -> y { y = x * s }", defines={"s": 10**400})


def test_param_values_that_nest_without_end_are_not_recorded():
    """A define holding itself made _jsonable recurse until RecursionError."""
    import json
    loop: list = []
    loop.append(loop)
    m = archdsl.compile_source("param p = []\nmodel m(x: float32[B, 2]) -> y { y = x }", defines={"p": loop})
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["archdsl.params"])["p"] == "<list nested deeper than 100, not recorded>"


def test_a_pipe_is_not_read_as_a_spec_or_weights(tmp_path):
    """np.load waited on a pipe forever; the spec loader called it 'no such file'."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(archdsl.ArchError, match="not a regular file"):
        archdsl.compile_file(SPECS / "mlp.arch", weights=str(fifo))
    with pytest.raises(archdsl.ArchError, match="is not a regular file"):
        archdsl.compile_file(fifo)


def test_same_input_gives_identical_bytes(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    args = [str(SPECS / "resnet.arch"), "-D", "depth=18", "-D", "resolution=64"]
    assert main(["build", *args, "-o", str(a)]) == 0
    assert main(["build", *args, "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    m1 = archdsl.compile_file(SPECS / "lenet5.arch", seed=3).SerializeToString()
    m2 = archdsl.compile_file(SPECS / "lenet5.arch", seed=3).SerializeToString()
    m3 = archdsl.compile_file(SPECS / "lenet5.arch", seed=4).SerializeToString()
    assert m1 == m2 and m1 != m3


def test_failed_build_leaves_previous_output_untouched(tmp_path):
    out = tmp_path / "model.onnx"
    assert main(["build", str(SPECS / "mlp.arch"), "-o", str(out)]) == 0
    before = out.read_bytes()
    bad = tmp_path / "bad.arch"
    bad.write_text("model mlp(x: float32[B, 784]) -> logits {\n    logits = x -> linear(10) -> softmax(axis=3)\n}\n")
    assert main(["build", str(bad), "-o", str(out)]) == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.arch", "model.onnx"]  # no temp files left


def test_metadata_and_source_locations():
    m = archdsl.compile_file(SPECS / "resnet.arch", defines={"depth": 18, "resolution": 64})
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["archdsl.version"] == archdsl.__version__
    assert '"depth": 18' in meta["archdsl.params"] and meta["archdsl.source"] == "resnet.arch"
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all("resnet.arch:" in n.doc_string and "@resnet.arch:" in n.name for n in convs)
    assert any(n.name.startswith("layer1.0.conv1/") for n in convs)


def test_initializers_are_pytorch_style_and_seeded():
    g = archdsl.check_file(SPECS / "mlp.arch")
    w = initial_weights(g, seed=0)
    bound = 1 / np.sqrt(784)
    assert w["fc1.weight"].shape == (256, 784) and np.abs(w["fc1.weight"]).max() <= bound
    assert abs(w["fc1.weight"].std() - bound / np.sqrt(3)) < 1e-3  # U(-b, b)
    from scipy import stats
    assert stats.kstest(w["fc1.weight"].ravel().astype(np.float64), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert not np.array_equal(w["fc1.weight"], initial_weights(g, seed=1)["fc1.weight"])
    g2 = archdsl.check_file(SPECS / "mlp.arch", defines={"hidden": 300})
    assert np.array_equal(initial_weights(g2)["fc2.bias"].shape, (10,))


@pytest.mark.parametrize("kind,std", [("normal", 0.02), ("trunc_normal", 1.0), ("trunc_normal", 0.02)])
def test_normal_initializers_have_the_asked_distribution(kind, std):
    """Normals come from our own Box-Muller (weights.py): check the law, not just the first moments."""
    from scipy import stats
    g = archdsl.check_source(f'model m(x: float32[B, 4]) -> y {{ w = parameter([1001, 999], init="{kind}", '
                             f'std={std}) as w\n y = x @ w[0:4] }}')
    w = initial_weights(g, seed=3)["w"].astype(np.float64).ravel() / std
    assert w.dtype == np.float64 and w.size == 1001 * 999
    if kind == "normal":
        assert stats.kstest(w, "norm").pvalue > 1e-3
        assert abs(w.mean()) < 5e-3 and abs(w.std() - 1) < 5e-3 and abs(stats.kurtosis(w)) < 0.03
        assert np.abs(w).max() > 4.5, "the tails are there"
    else:  # truncated at 2 std (at std 0.02, not at torch's default absolute 2): redrawn, not clipped
        assert np.abs(w).max() <= 2.0 and (np.abs(w) > 1.999).mean() < 1e-3
        assert stats.kstest(w, stats.truncnorm(-2, 2).cdf).pvalue > 1e-3
    assert np.array_equal(initial_weights(g, seed=3)["w"], initial_weights(g, seed=3)["w"])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_load_by_name(tmp_path, suffix):
    g = archdsl.check_file(SPECS / "mlp.arch")
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(v.type.shape).astype(np.float32) for k, v in g.params.items()}
    path = tmp_path / f"w{suffix}"
    save_weights(path, weights)
    m = archdsl.compile_file(SPECS / "mlp.arch", weights=str(path))
    x = rng.standard_normal((2, 784)).astype(np.float32)
    (y,) = runtime.session(m).run(None, {"x": x})
    hidden = np.maximum(x @ weights["fc1.weight"].T + weights["fc1.bias"], 0)
    ref = hidden @ weights["fc2.weight"].T + weights["fc2.bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_weights_with_wrong_shape_or_name_are_diagnostics(tmp_path):
    g = archdsl.check_file(SPECS / "mlp.arch")
    weights = {k: np.zeros(v.type.shape, np.float32) for k, v in g.params.items()}
    save_weights(tmp_path / "bad_shape.npz", dict(weights, **{"fc1.bias": np.zeros(3, np.float32)}))
    save_weights(tmp_path / "bad_name.npz", dict(weights, **{"fc3.weight": np.zeros(3, np.float32)}))
    with pytest.raises(ArchError, match="fc1.bias"):
        archdsl.compile_file(SPECS / "mlp.arch", weights=str(tmp_path / "bad_shape.npz"))
    with pytest.raises(ArchError, match="fc3.weight"):
        archdsl.compile_file(SPECS / "mlp.arch", weights=str(tmp_path / "bad_name.npz"))
    assert main(["build", str(SPECS / "mlp.arch"), "--weights", str(tmp_path / "bad_name.npz"),
                 "-o", str(tmp_path / "m.onnx")]) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_a_weight_of_a_layer_the_passes_drop_is_checked_too(tmp_path):
    """Shapes were checked only for the parameters that survived the passes: at -O2 a wrong-shaped weight of
    an unused layer (dead code) was accepted, at -O0 refused; torch's strict load_state_dict refuses it."""
    src = ("model d(x: float32[B, 4]) -> y {\n    unused = x -> linear(100) as dead\n"
           "    y = x -> linear(2) as fc\n}\n")
    weights = {"fc.weight": np.zeros((2, 4), np.float32), "fc.bias": np.zeros(2, np.float32),
               "dead.weight": np.zeros((3, 4), np.float32), "dead.bias": np.zeros(100, np.float32)}
    for level in (0, 2):
        with pytest.raises(ArchError, match=r"'dead.weight' has shape \[3, 4\], the model needs "
                                            r"\[100, 4\]") as e:  # a dict: no file to name
            archdsl.compile_source(src, weights=weights, opt_level=level)
        assert e.value.span is not None and e.value.span.line == 2
    weights["dead.weight"] = np.zeros((100, 4), np.float32)
    assert [n.op_type for n in archdsl.compile_source(src, weights=weights).graph.node] == ["Gemm"]  # dropped


def test_external_data_when_asked(tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["build", str(SPECS / "mlp.arch"), "-o", str(out), "--external-data"]) == 0
    assert (tmp_path / "m.onnx.data").stat().st_size >= 784 * 256 * 4  # tensors under 1 KiB stay inline
    sess = runtime.session(out)
    (y,) = sess.run(None, runtime.random_feeds(sess, batch=2))
    assert y.shape == (2, 10)
    assert oct(os.stat(tmp_path / "m.onnx.data").st_mode & 0o777) == oct(os.stat(out).st_mode & 0o777)


def test_symbolic_dims_become_dim_params():
    m = archdsl.compile_file(SPECS / "gpt2.arch", defines=dict(CASES[-1][1]))
    dims = [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["B", "T"]
    assert isinstance(archdsl.check_file(SPECS / "gpt2.arch", defines=dict(CASES[-1][1])).inputs[0].type.shape[1], Sym)


def test_api_compile_source_and_check_source():
    src = "param n = 3\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> linear(n) as head\n}\n"
    g = archdsl.check_source(src, defines={"n": 5})
    assert g.param_count() == 4 * 5 + 5 and list(g.params) == ["head.weight", "head.bias"]
    assert isinstance(archdsl.compile_source(src), onnx.ModelProto)
    assert driver.select_models(driver.load(text=src), None) == ["m"]


@pytest.mark.parametrize("src", [
    "model m(x: float32[B, 4]) -> y {\n    p = parameter([4], init='ones') as const_0\n    y = x * 2 + p\n}\n",
    "model m(const_0: float32[B, 4]) -> y {\n    y = const_0 * 2 + 1\n}\n",
    "model m(x: float32[B, 4]) -> relu_0 {\n    relu_0 = x -> relu -> relu\n}\n",
])
def test_onnx_names_never_collide(src):
    """Constants, layer outputs, inputs, parameters and outputs share one ONNX namespace."""
    m = archdsl.compile_source(src, opt_level=0)
    onnx.checker.check_model(m, full_check=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    (y,) = runtime.session(m).run(None, {m.graph.input[0].name: x})
    want = np.maximum(x, 0) if "relu" in src else x * 2 + 1
    np.testing.assert_allclose(y, want)


def test_an_op_the_opset_cannot_express_is_a_diagnostic_at_build(tmp_path, capsys):
    spec = tmp_path / "bf16.arch"
    spec.write_text("model m(x: bfloat16[B, 3, 8, 8]) -> y {\n    y = x -> conv2d(4, 3) as c\n}\n")
    out = tmp_path / "m.onnx"
    assert main(["build", str(spec), "--opset", "17", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bf16.arch:2:14: error: conv2d: ONNX Conv takes bfloat16 from opset 22; this build targets opset 17 " \
        "(--opset 22)" in err and "^" in err
    assert not out.exists()
    assert main(["build", str(spec), "--opset", "22", "-o", str(out)]) == 0
    onnx.checker.check_model(str(out), full_check=True)


_BF16_OPS = ["heaviside(value_at_zero=0.5)", "layernorm(elementwise_affine=false)", "group_norm(2, affine=false)",
             "group_norm(2)", "instance_norm(affine=true)", "sinusoidal_embedding(6)", "gru(4)", "lstm(4)",
             "conv_transpose1d(4, 3)", "conv1d(4, 3)", "maxpool1d(2)", "rms_norm", "softmax(axis=-1)", "gelu",
             "linear(3)"]


@pytest.mark.parametrize("op", _BF16_OPS)
def test_bfloat16_models_pass_the_full_check_or_name_the_opset_they_need(op, tmp_path, capsys):
    """Constants took numpy's type of the dtype (bfloat16 has none: float64 and int64 constants), and ops
    whose ONNX form takes bfloat16 only from opset 22 were written at 17: both built models that failed the
    checker and did not load."""
    from archdsl.runtime import newest_opset
    spec = tmp_path / "bf.arch"
    spec.write_text(f"model m(x: bfloat16[B, 4, 8]) -> y {{\n    y = x -> {op}\n}}\n")
    for opset in sorted({17, 21, 22, newest_opset()}):
        out = tmp_path / f"m{opset}.onnx"
        rc = main(["build", str(spec), "--opset", str(opset), "-o", str(out)])
        err = capsys.readouterr().err
        if rc == 0:
            onnx.checker.check_model(str(out), full_check=True)
        else:
            assert rc == 1 and opset < 22 and "bfloat16 from opset" in err and "bf.arch:2:" in err, err


def test_bfloat16_attention_passes_the_full_check_at_every_opset(tmp_path):
    from archdsl.runtime import newest_opset
    sdpa = tmp_path / "sdpa.arch"
    sdpa.write_text("model m(q: bfloat16[B, 2, 4, 8]) -> y {\n    y = sdpa(q, q, q)\n}\n")
    for opset in (17, 22, newest_opset()):
        m = archdsl.compile_file(str(sdpa), opset=opset)
        onnx.checker.check_model(m, full_check=True)


def test_a_torch_batchnorm_state_dict_loads_as_it_is(tmp_path):
    """torch's BatchNorm state_dict holds num_batches_tracked, which --weights refused as a foreign name."""
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm1d(4)
    bn.running_mean += 0.5
    sd = {f"bn.{k}": v.numpy() for k, v in bn.state_dict().items()}
    assert "bn.num_batches_tracked" in sd
    np.savez(tmp_path / "w.npz", **sd)
    m = archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> batchnorm as bn\n}\n",
                               weights=str(tmp_path / "w.npz"), opt_level=0)
    x = np.ones((2, 4), np.float32)
    (y,) = runtime.session(m).run(None, {"x": x})
    np.testing.assert_allclose(y, bn.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    spec = tmp_path / "bn.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> batchnorm as bn\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "mse", "--weights", str(tmp_path / "w.npz"),
                 "-o", str(tmp_path / "t.onnx")]) == 0  # the train step's own name check refused it
    with pytest.raises(ArchError, match="'other.num_batches_tracked'"):  # only beside a BatchNorm's statistics
        np.savez(tmp_path / "w2.npz", **sd, **{"other.num_batches_tracked": np.array(0)})
        archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> batchnorm as bn\n}\n",
                               weights=str(tmp_path / "w2.npz"))


@pytest.mark.parametrize("opt_level", [0, 2])
def test_without_weights_the_parameters_are_graph_inputs(opt_level):
    """with_weights=False gave a model whose nodes read names nothing defined (the checker and onnxruntime
    refused it); now, as torch.onnx.export(export_params=False), the parameters are inputs after the model's
    own, all of them as written (at -O2 too: no BatchNorm folded into conv.weight under its name), and
    feeding the unoptimized model's weights, a state_dict's, gives its outputs."""
    src = ("model t(x: float32[B, 3, 8, 8]) -> y {\n"
           "    y = x -> conv2d(4, 3, padding=1) as conv -> batchnorm as bn -> relu -> flatten -> linear(5) as fc\n}\n")
    bare = archdsl.compile_source(src, with_weights=False, opt_level=opt_level)
    onnx.checker.check_model(bare, full_check=True)
    assert not bare.graph.initializer or {i.name for i in bare.graph.initializer}.isdisjoint(
        i.name for i in bare.graph.input)
    state = {t.name: onnx.numpy_helper.to_array(t) for t in archdsl.compile_source(src, opt_level=0).graph.initializer
             if t.name in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias")}
    rng = np.random.default_rng(1)  # batchnorm statistics that folding would change
    state.update({"bn.running_mean": rng.standard_normal(4).astype(np.float32),
                  "bn.running_var": rng.uniform(0.5, 2, 4).astype(np.float32)})
    full = archdsl.compile_source(src, opt_level=0, weights=state)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in full.graph.initializer}
    params = [i.name for i in bare.graph.input][1:]
    assert params == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                      "fc.weight", "fc.bias"]
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = runtime.session(full, provider="cpu").run(None, {"x": x})[0]
    got = runtime.session(bare, provider="cpu").run(None, {"x": x, **{p: weights[p] for p in params}})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # onnxruntime folds constant weights: rounding


def test_api_takes_numpy_values_inside_defines_and_for_with_weights():
    """np.int64 was taken as a define on its own but refused inside a list ("element 0 is int64, and the
    default's elements are integers"); with_weights=np.False_ was refused where seed= takes numpy integers."""
    src = ("param widths = [8, 16]\nmodel m(x: float32[B, 4]) -> y {\n    h = x\n"
           "    for w in widths {\n        h = h -> linear(w)\n    }\n    y = h\n}\n")
    model = archdsl.compile_source(src, defines={"widths": list(np.array([4, 2]))}, with_weights=np.False_)
    assert [i.name for i in model.graph.input] == ["x", "linear_0.weight", "linear_0.bias", "linear_1.weight",
                                                    "linear_1.bias"]
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 2


def test_api_defines_keep_what_the_cli_takes():
    """A float param given 10**50 built from the CLI and was refused through the API (a 128-bit limit); a
    namedtuple define raised TypeError rebuilding it."""
    import collections
    src = "param s = 1.0\nmodel m(x: float64[B, 2]) -> y { y = x * s }"
    archdsl.compile_source(src, defines={"s": 10**50})
    with pytest.raises(archdsl.ArchError, match=r"defines\['s'\]: expected a number"):
        archdsl.compile_source(src, defines={"s": collections.namedtuple("P", "a b")(3, 4)})


def test_an_in_memory_model_past_2_gib_is_refused_before_its_weights_are_made():
    """compile_source returned a model whose every use (serializing, a session, the checker) raised protobuf's
    EncodeError; a 6.7B LLaMA ran out of memory first."""
    src = "model big(x: float32[B, 16384]) -> y {\n    y = x -> linear(34000, bias=false) as fc\n}\n"
    with pytest.raises(archdsl.ArchError, match=r"the model.s weights take 2.08 GiB, past the 1.94 GiB an in-memory "
                                                r"ONNX model can hold"):
        archdsl.compile_source(src)
    assert [i.name for i in archdsl.compile_source(src, with_weights=False).graph.input] == ["x", "fc.weight"]
