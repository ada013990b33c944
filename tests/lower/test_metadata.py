"""What a built model records of its making (README: the archdsl version, the model, the seed, every param
value, the source file), read back from the file the CLI wrote; and writing past protobuf's 2 GiB limit
moves the weights to external data without serializing the model to find out."""

from __future__ import annotations

import json

import onnx

from archdsl import __version__
from archdsl.cli import main
from archdsl.lower import model_file


def test_a_built_model_records_its_making(tmp_path, capsys):
    spec = tmp_path / "two.arch"
    spec.write_text("param width = 4\nmodel enc(x: float32[B, 3]) -> y { y = x -> linear(width) }\n"
                    "model head(x: float32[B, 3]) -> y { y = x -> linear(2) }\n")
    assert main(["build", str(spec), "--model", "head", "--seed", "7", "-D", "width=5", "-o",
                 str(tmp_path / "m.onnx")]) == 0
    m = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["archdsl.model"] == "head" and meta["archdsl.seed"] == "7" and meta["archdsl.source"] == "two.arch"
    assert json.loads(meta["archdsl.params"]) == {"width": 5} and meta["archdsl.version"] == __version__
    assert m.producer_name == "archdsl" and m.producer_version == __version__


def test_an_imported_files_params_are_recorded_set_or_not(tmp_path, capsys, monkeypatch):
    """Only those -D set were recorded: a -D of the default value changed the file's bytes, and an edit of the
    imported file left the metadata as it was (determinism hunt). A file imported without `as` records its
    params under their plain names."""
    (tmp_path / "lib.arch").write_text("param width = 16\nblock mlpb(x) { return x -> linear(width) as fc }\n")
    (tmp_path / "a.arch").write_text('import "lib.arch" as lib\nmodel m(x: float32[B, 8]) -> y { y = x -> lib.mlpb }\n')
    (tmp_path / "p.arch").write_text('import "lib.arch"\nmodel m(x: float32[B, 8]) -> y { y = x -> mlpb }\n')

    def params(spec, *flags):
        out = tmp_path / "m.onnx"
        assert main(["build", str(tmp_path / spec), *flags, "-o", str(out)]) == 0
        m = onnx.load(str(out))
        return json.loads({p.key: p.value for p in m.metadata_props}["archdsl.params"]), out.read_bytes()

    plain, bytes_plain = params("a.arch")
    redundant, bytes_redundant = params("a.arch", "-D", "lib.width=16")
    assert plain == redundant == {"lib.width": 16} and bytes_plain == bytes_redundant
    assert params("a.arch", "-D", "lib.width=32")[0] == {"lib.width": 32}
    assert params("p.arch")[0] == {"width": 16}
    # nested: a plain import inside an aliased one, an aliased one inside a plain one (review86)
    (tmp_path / "sub.arch").write_text("param depth = 1\nblock sb(x) { return x -> linear(4 * depth) }\n")
    (tmp_path / "lp.arch").write_text('import "sub.arch"\nblock lb(x) { return x -> sb }\n')
    (tmp_path / "la.arch").write_text('import "sub.arch" as s\nblock lb(x) { return x -> s.sb }\n')
    (tmp_path / "g1.arch").write_text('import "lp.arch" as lp\nmodel m(x: float32[B, 4]) -> y { y = x -> lp.lb }\n')
    (tmp_path / "g2.arch").write_text('import "la.arch"\nmodel m(x: float32[B, 4]) -> y { y = x -> lb }\n')
    assert params("g1.arch")[0] == {"lp.depth": 1} and params("g2.arch")[0] == {"s.depth": 1}
    (tmp_path / "shadow.arch").write_text('import "sub.arch"\nparam depth = 5\n'
                                          "model m(x: float32[B, 4]) -> y { y = x -> sb -> linear(depth) }\n")
    assert params("shadow.arch")[0] == {"depth": 5, "sub.arch:depth": 1}  # its own, and the one sub.arch reads
    # two files both imported as "k.arch", from two folders: each by its path from the spec's folder (review88)
    (tmp_path / "lib").mkdir()
    (tmp_path / "k.arch").write_text("param depth = 11\nblock kb(x) { return x -> linear(depth) }\n")
    (tmp_path / "lib" / "k.arch").write_text("param depth = 22\nblock kb2(x) { return x -> linear(depth) }\n")
    (tmp_path / "lib" / "m.arch").write_text('import "k.arch"\nparam depth = 33\n'
                                             "block mb(x) { return x -> kb2 -> linear(depth) }\n")
    both = {"depth": 5, "k.arch:depth": 11, "lib/k.arch:depth": 22, "lib/m.arch:depth": 33}
    for first, second in (("k.arch", "lib/m.arch"), ("lib/m.arch", "k.arch")):
        (tmp_path / "c.arch").write_text(f'import "{first}"\nimport "{second}"\nparam depth = 5\n'
                                         "model m(x: float32[B, 4]) -> y { y = x -> kb -> mb -> linear(depth) }\n")
        assert params("c.arch")[0] == both
    # PATH as the imports spell it: neither the working directory nor where a search folder sits changes the
    # key, nor the build's bytes (review89: a relpath from the spec's folder or the cwd did)
    import archdsl
    (tmp_path / "far" / "away").mkdir(parents=True)
    (tmp_path / "far" / "away" / "sub.arch").write_text("param depth = 3\nblock sb(x) { return x -> linear(depth) }\n")
    top = 'import "sub.arch"\nparam depth = 4\nmodel m(x: float32[B, 4]) -> y { y = x -> sb -> linear(depth) }\n'
    built = []
    (tmp_path / "far" / "x").mkdir()
    for cwd in (tmp_path / "lib", tmp_path / "far", tmp_path / "far" / "x"):
        monkeypatch.chdir(cwd)
        model = archdsl.compile_source(top, search_path=[str(tmp_path / "far" / "away")])
        built.append(model.SerializeToString())
        assert json.loads({p.key: p.value for p in model.metadata_props}["archdsl.params"]) == \
            {"depth": 4, "sub.arch:depth": 3}
    assert built[0] == built[1] == built[2]


def test_params_holding_ops_blocks_and_builtins_are_recorded_by_name(tmp_path, capsys):
    """They were recorded as Python reprs with memory addresses: two builds of one spec differed, and the value
    of -D act=silu could not be read back."""
    spec = tmp_path / "f.arch"
    spec.write_text("param act = relu\nparam norm = batchnorm2d\nblock twice(x) {\n    return x * 2\n}\n"
                    "param b = twice\nparam f = max\n"
                    "model m(x: float32[2, 4, 3, 3]) -> y {\n    y = x -> conv2d(4, 1) -> act -> norm -> b\n}\n")
    out = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    for o in out:
        assert main(["build", str(spec), "-D", "act=silu", "-o", str(o)]) == 0
    assert out[0].read_bytes() == out[1].read_bytes()
    meta = {p.key: p.value for p in onnx.load(str(out[0])).metadata_props}
    assert json.loads(meta["archdsl.params"]) == {"act": "silu", "norm": "batchnorm2d", "b": "twice", "f": "max"}


def test_a_model_built_from_given_weights_names_them_not_a_seed(tmp_path, capsys):
    """The seed draws no weight of such a model: `archdsl.seed` said where its weights came from wrongly."""
    import numpy as np

    import archdsl
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 3]) -> y { y = x -> linear(2) as fc }\n")
    weights = {"fc.weight": np.ones((2, 3), np.float32), "fc.bias": np.zeros(2, np.float32)}
    np.savez(tmp_path / "w.npz", **weights)
    for flags in ([], ["--train"]):
        out = tmp_path / ("t.onnx" if flags else "m.onnx")
        assert main(["build", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(out), *flags]) == 0
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert meta["archdsl.weights"] == "w.npz" and "archdsl.seed" not in meta
    meta = {p.key: p.value for p in archdsl.compile_source(spec.read_text(), weights=weights).metadata_props}
    assert meta["archdsl.weights"] == "arrays given" and "archdsl.seed" not in meta
    drop = tmp_path / "d.arch"  # a train step with dropout: --seed draws its masks, so it is recorded too
    drop.write_text("model m(x: float32[B, 3]) -> y { y = x -> linear(2) as fc -> dropout(0.5) }\n")
    for seed in ("1", "7"):
        out = tmp_path / f"d{seed}.onnx"
        assert main(["build", str(drop), "--train", "--weights", str(tmp_path / "w.npz"), "--seed", seed, "-o",
                     str(out)]) == 0
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert meta["archdsl.weights"] == "w.npz" and meta["archdsl.seed"] == seed


def test_a_model_past_protobufs_limit_goes_to_external_data():
    """Decided from dims and dtypes (a tensor declared 3 GiB with no data): a train step that big must not
    be serialized whole (it failed as out of memory)."""
    for n, fits in ((3 * 1024**3 // 4, False), (1024, True)):
        t = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[n])
        m = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [], initializer=[t]))
        assert model_file._small_enough(m) == fits
