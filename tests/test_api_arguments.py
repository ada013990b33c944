"""The Python API's arguments that only Python can give: objects no -D can write, a spec's text where a path
goes, a NUL byte in a weights path. Each was a raw exception from deep inside, or taken silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import archdsl

SRC = "param T = none\nmodel m(x: float32[B, T, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n"


@pytest.mark.parametrize("value,kind", [(np.array([64, 64]), "ndarray"), (lambda: 1, "function"),
                                        (object(), "object"), ({1, 2}, "set")])
def test_a_define_no_dash_d_could_write_is_refused(value, kind):
    """A param = none took anything: an array as a dim was numpy's ValueError, a lambda went into the model's
    metadata as its repr."""
    with pytest.raises(archdsl.ArchError, match=rf"^defines\['T'\]: {kind} .* is no value a param takes"):
        archdsl.check_source(SRC, defines={"T": value})
    assert archdsl.check_source(SRC, defines={"T": np.int64(4)}).inputs[0].type.shape[1] == 4


def test_a_specs_text_given_as_its_path_says_which_function_takes_text():
    with pytest.raises(archdsl.ArchError, match="reads as a spec's text .*compile_source and check_source take the"):
        archdsl.compile_file("model m(x: float32[B, 4]) -> y {\n    y = x\n}\n")
    with pytest.raises(archdsl.ArchError, match=r"^no such file: specs/\{name\}.arch"):  # a template, not text
        archdsl.compile_file("specs/{name}.arch")
    with pytest.raises(archdsl.ArchError, match=r"^no such file: models/model resnet\(v1\).arch"):
        archdsl.compile_file("models/model resnet(v1).arch")


def test_a_nul_byte_in_a_weights_path_is_said():
    with pytest.raises(archdsl.ArchError, match="weights: the path holds a NUL byte"):
        archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n", weights="w\0.npz")


def test_an_api_error_renders_against_the_text_it_was_compiled_from(tmp_path):
    """render(e) read the source line from disk: compile_source(text, file=...) of an unsaved buffer showed the
    file's line 2 under the caret, and "<string>" showed no line at all."""
    from archdsl.diagnostics import render
    on_disk = tmp_path / "m.arch"
    on_disk.write_text("# an older version\n# of the file\n")
    text = "model m(x: float32[B, 4]) -> y {\n    y = conv2(x)\n}\n"
    for kwargs in ({"file": str(on_disk)}, {}):
        for call in (archdsl.compile_source, archdsl.check_source):
            with pytest.raises(archdsl.ArchError) as e:
                call(text, **kwargs)
            assert render(e.value).splitlines()[1:] == ["   2 |     y = conv2(x)", "               ^^^^^"]


@pytest.mark.parametrize("args,said", [(("/no/such/model.onnx",), "no such model file"),
                                       ((".",), "is not a model file"),
                                       (("m.onnx", "cpu", "2"), "threads must be 0"),
                                       (("m.onnx", "cpu", 2.5), "threads must be 0")])
def test_runtime_session_refuses_what_onnxruntime_would_fail_on(tmp_path, monkeypatch, args, said):
    from archdsl import runtime
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(archdsl.compile_source(SRC, defines={"T": 2}).SerializeToString())
    with pytest.raises(archdsl.ArchError, match=said):
        runtime.session(*args)
    assert runtime.session("m.onnx", "cpu", 2).get_inputs()[0].name == "x"


def test_an_uncaught_error_shows_where_it_is():
    """str(e) was the bare message: a traceback left the API user to find the line (render gives the rest)."""
    from archdsl.diagnostics import render
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = x @ x\n}\n", file="m.arch")
    assert str(e.value) == f"m.arch:2:9: {e.value.message}" and e.value.message.startswith("'@'")
    assert render(e.value).splitlines()[:2] == [f"m.arch:2:9: error: {e.value.message}", "   2 |     y = x @ x"]


def test_the_seed_and_thread_bounds_take_their_ends():
    """2**32 - 1 is the largest seed the help names, 256 the most threads: each is taken, one past is refused."""
    import argparse

    from archdsl.cli import args
    src = "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n"
    assert archdsl.compile_source(src, seed=2**32 - 1).graph.initializer
    with pytest.raises(archdsl.ArchError, match="seed must be an integer in 0..4294967295, got 4294967296"):
        archdsl.compile_source(src, seed=2**32)
    assert args.seed(str(2**32 - 1)) == 2**32 - 1 and args.threads("256") == 256
    for parse, text in ((args.seed, str(2**32)), (args.threads, "257")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


# mutdriver hunt: each test below failed a mutant the suite let by
def test_build_file_without_weights_keeps_external_data(tmp_path):
    """with_weights=False writes the model whose parameters are inputs; external_data=True still moves its
    tensors of 1 KiB or more (a constant here) to OUT.onnx.data (D9: the flag was dropped on that path)."""
    import onnx

    from archdsl import driver
    spec = tmp_path / "c.arch"
    vals = ", ".join(str(float(i)) for i in range(256))
    spec.write_text(f"model c(x: float32[B, 256]) -> y {{\n    y = x + tensor([{vals}])\n}}\n")
    out = tmp_path / "m.onnx"
    _, written = driver.build_file(driver.load(str(spec)), None, driver.CompileOptions(with_weights=False), out,
                                   external_data=True)
    assert written == [out, tmp_path / "m.onnx.data"]
    m = onnx.load(str(out), load_external_data=False)
    assert [t.data_location for t in m.graph.initializer] == [onnx.TensorProto.EXTERNAL]


@pytest.mark.parametrize("level", [-1, 3])
def test_an_opt_level_past_the_three_is_refused(level):
    """opt_level takes 0, 1 or 2 (-O0..-O2); 3 was built as -O2 without a word (D37)."""
    from archdsl import driver
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match="opt_level must be 0, 1 or 2"):
        driver.compile_source("model s(x: float32[B, 8]) -> y {\n    y = x -> linear(8)\n}\n", opt_level=level)


def test_compile_file_of_an_upper_case_onnx_name_says_what_it_is(tmp_path):
    """compile_file('M.ONNX') says it is a compiled model, as for m.onnx (D16: its bytes were read as a spec:
    'the file is not UTF-8')."""
    from archdsl.diagnostics import ArchError
    path = tmp_path / "M.ONNX"
    archdsl.driver.write_model(archdsl.compile_source("model t(x: float32[B, 4]) -> y {\n    y = x -> relu\n}\n"),
                               path)
    with pytest.raises(ArchError, match="is a compiled ONNX model, not a .arch spec"):
        archdsl.compile_file(str(path))
    (tmp_path / "m.arch").write_bytes(path.read_bytes())  # named as a spec: 'not UTF-8' said (review116)
    with pytest.raises(ArchError, match=r"m.arch is a compiled ONNX model, not a .arch spec \(`archdsl run`"):
        archdsl.compile_file(str(tmp_path / "m.arch"))


def test_build_file_refuses_to_write_over_what_it_reads(tmp_path, monkeypatch):
    """build -o refused these and build_file wrote its model over the spec, an imported spec, or the weights
    file it read (review116)."""
    from archdsl.driver import CompileOptions, build_file, load
    from archdsl.lower import initial_weights, save_weights
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.arch").write_text("block head(x) {\n    return x -> linear(2) as fc\n}\n")
    (tmp_path / "top.arch").write_text('import "lib.arch"\nmodel top(x: float32[B, 4]) -> y {\n    y = head(x)\n}\n')
    mod = load("top.arch")
    save_weights("w.npz", initial_weights(archdsl.check_file("top.arch")))
    for out, opts, what in [("top.arch", CompileOptions(), "the spec file"),
                            ("lib.arch", CompileOptions(), "the imported lib.arch file"),
                            ("w.npz", CompileOptions(weights="w.npz"), "the weights file")]:
        before = (tmp_path / out).read_bytes()
        with pytest.raises(archdsl.ArchError, match=f"^out {out} is {what}: writing it would destroy the input"):
            build_file(mod, None, opts, out)
        assert (tmp_path / out).read_bytes() == before
    with pytest.raises(archdsl.ArchError, match="^out's external data m.onnx.data is the weights file"):
        build_file(mod, None, CompileOptions(weights="m.onnx.data"), "m.onnx", external_data=True)
    assert build_file(mod, None, CompileOptions(weights="w.npz"), "m.onnx")[1] == [Path("m.onnx")]


def test_build_options_the_cli_refuses_are_refused_through_the_api_too(tmp_path):
    """with_weights=False beside weights= built a model whose metadata named weights it did not hold, and a
    seed beside weights was ignored, through driver.build (compile_file refused the first only); options as a
    dict, or a path for the module, were AttributeErrors (review116)."""
    from archdsl.driver import CompileOptions, build, build_train, load
    from archdsl.lower import initial_weights, save_weights
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    save_weights(tmp_path / "w.npz", initial_weights(archdsl.check_file(spec)))
    w = str(tmp_path / "w.npz")
    with pytest.raises(archdsl.ArchError, match="^weights= and with_weights=false: .* would be dropped"):
        build(load(spec), None, CompileOptions(with_weights=False, weights=w))
    with pytest.raises(archdsl.ArchError, match="^seed= draws the random initialization, which weights= replaces"):
        archdsl.compile_file(spec, weights=w, seed=5)
    with pytest.raises(archdsl.ArchError, match=r"^options takes a CompileOptions .*got dict"):
        build(load(spec), None, {"opt_level": 2})
    for fn, name in [(build, "build"), (lambda *a: build_train(*a, None), "build_train")]:
        with pytest.raises(archdsl.ArchError, match=f"^{name} takes a loaded module, archdsl.driver.load"):
            fn(str(spec), None, CompileOptions())
    assert len(archdsl.compile_file(spec, weights=w).graph.initializer) == 2


def test_the_runtime_and_writer_helpers_say_what_they_take(tmp_path):
    """runtime.session of a spec's path was onnxruntime's InvalidProtobuf, random_feeds(batch=-1) numpy's
    ValueError, write_model of a path an AttributeError, external_data="yes" taken as true (review116)."""
    from archdsl import runtime
    from archdsl.diagnostics import ArchError
    from archdsl.driver import CompileOptions, build_file, load, write_model
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> relu\n}\n")
    with pytest.raises(ArchError, match=r"m.arch is not an ONNX model: it is a .arch spec; compile it first"):
        runtime.session(str(spec))
    with pytest.raises(ArchError, match="^the bytes given are not an ONNX model$"):
        runtime.session(b"junk")
    sess = runtime.session(archdsl.compile_file(spec))
    for batch in (-1, 1.5, True):
        with pytest.raises(ArchError, match="^batch takes a whole number of 0 or more"):
            runtime.random_feeds(sess, batch=batch)
    with pytest.raises(ArchError, match=r"^dims\['B'\] takes a whole number of 0 or more, got -2"):
        runtime.random_feeds(sess, dims={"B": -2})
    assert runtime.random_feeds(sess, batch=0)["x"].shape == (0, 4)
    with pytest.raises(ArchError, match="^write_model takes an onnx.ModelProto"):
        write_model(str(spec), tmp_path / "o.onnx")
    for write in (lambda: write_model(archdsl.compile_file(spec), tmp_path / "o.onnx", "yes"),
                  lambda: build_file(load(spec), None, CompileOptions(), tmp_path / "o.onnx", "yes")):
        with pytest.raises(ArchError, match="^external_data takes true, false or None"):
            write()
    assert not (tmp_path / "o.onnx").exists()


def test_a_train_step_takes_a_seed_beside_weights(tmp_path):
    """An inference build refuses seed= beside weights=; a train step's dropout draws from the seed, so it takes
    both (mutnew5)."""
    from archdsl.autodiff import TrainConfig
    from archdsl.driver import compile_train_file
    from archdsl.lower import initial_weights, save_weights
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc -> dropout(0.5)\n}\n")
    save_weights(tmp_path / "w.npz", initial_weights(archdsl.check_file(spec)))
    assert compile_train_file(spec, TrainConfig(), weights=str(tmp_path / "w.npz"), seed=5).step_model.graph.node


def test_build_file_refuses_a_path_weights_file_and_a_file_imported_through_another(tmp_path, monkeypatch):
    """weights given as a pathlib.Path is the file read too, and an import of an import is an input too
    (mutnew5)."""
    from archdsl.driver import CompileOptions, build_file, load
    from archdsl.lower import initial_weights, save_weights
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.arch").write_text("block head(x) {\n    return x -> linear(2) as fc\n}\n")
    (tmp_path / "a.arch").write_text('import "b.arch"\n')
    (tmp_path / "top.arch").write_text('import "a.arch"\nmodel top(x: float32[B, 4]) -> y {\n    y = head(x)\n}\n')
    save_weights("w.npz", initial_weights(archdsl.check_file("top.arch")))
    mod = load("top.arch")
    for out, opts, what in [("b.arch", CompileOptions(), "the imported b.arch file"),
                            ("w.npz", CompileOptions(weights=Path("w.npz")), "the weights file")]:
        before = (tmp_path / out).read_bytes()
        with pytest.raises(archdsl.ArchError, match=f"^out {out} is {what}: writing it would destroy the input"):
            build_file(mod, None, opts, out)
        assert (tmp_path / out).read_bytes() == before


def test_session_of_an_upper_case_arch_file_says_compile_it(tmp_path):
    """M.ARCH is a spec too (mutnew6)."""
    from archdsl import runtime
    p = tmp_path / "M.ARCH"
    p.write_text("model m(x: float32[B]) -> x {}\n")
    with pytest.raises(archdsl.ArchError, match="it is a .arch spec; compile it first"):
        runtime.session(str(p))
