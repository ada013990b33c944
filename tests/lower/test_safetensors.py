"""--weights W.safetensors is read by mapping the file (lower/weights.py read_safetensors), not by safetensors'
numpy loader, which copied every tensor into memory first (a 500 MB GPT-2 checkpoint: 500 MB of RSS before
the build wrote a byte). The arrays must be exactly what safetensors itself reads, and a foreign or corrupt
file a diagnostic."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from archdsl import driver
from archdsl.cli import main
from archdsl.diagnostics import ArchError
from archdsl.lower.weights import load_weights, read_safetensors, save_weights

SPECS = Path(__file__).resolve().parents[2] / "specs"


def test_every_dtype_reads_back_as_written(tmp_path):
    """Against the arrays saved, not safetensors' own numpy loader, which in 0.4.0 read BF16 as a numpy type
    that does not exist."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((3, 2)), "f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "f16": rng.standard_normal(5).astype(np.float16), "bf16": rng.standard_normal(7).astype(ml_dtypes.bfloat16),
        "i64": rng.integers(-2**62, 2**62, 4), "i32": rng.integers(-9, 9, (2, 2)).astype(np.int32),
        "i16": np.arange(3, dtype=np.int16), "i8": np.array([-128, 127], np.int8), "u8": np.arange(4, dtype=np.uint8),
        "u16": np.array([65535], np.uint16), "u32": np.array([7], np.uint32), "u64": np.array([2**64 - 1], np.uint64),
        "bool": np.array([True, False, True]), "empty": np.zeros((0, 3), np.float32), "scalar": np.float32(2.5),
    }
    path = tmp_path / "w.safetensors"
    save_file({k: np.asarray(v) for k, v in arrays.items()}, str(path))
    want, got = {k: np.asarray(v) for k, v in arrays.items()}, read_safetensors(path)
    assert want.keys() == got.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        assert got[k].tobytes() == want[k].tobytes(), k
    assert not got["f32"].flags.writeable  # a view of the file, which a build must not change
    assert got["scalar"].shape == () and float(got["scalar"]) == 2.5


def test_float8_reads_from_the_file(tmp_path):
    """safetensors' numpy loader refused F8_E4M3 and F8_E5M2 (torch writes them); they load as ml_dtypes' types."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    t = torch.tensor([[0.5, -1.75], [3.0, 0.0]])
    save_file({"a": t.to(torch.float8_e4m3fn), "b": t.to(torch.float8_e5m2)}, str(tmp_path / "w.safetensors"))
    got = read_safetensors(tmp_path / "w.safetensors")
    assert got["a"].dtype == ml_dtypes.float8_e4m3fn and got["b"].dtype == ml_dtypes.float8_e5m2
    np.testing.assert_array_equal(got["a"].astype(np.float32), t.numpy())
    np.testing.assert_array_equal(got["b"].astype(np.float32), t.numpy())


def _header_file(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


@pytest.mark.parametrize("case,words", [
    ("short", "too short for a safetensors file"),
    ("length", "its header length is past the end of the file"),
    ("length_by_4", "its header length is past the end of the file"),  # past it by less than the 8 length bytes
    ("json", "its header is not JSON"),
    ("list", "its header is not a JSON object"),
    ("fields", "'fc1.weight': no dtype, shape and data_offsets"),
    ("dtype", "'fc1.weight': dtype C64 is not one archdsl reads"),
    ("offsets", r"'fc1.weight': its shape \[3, 4\] and data_offsets \[0, 40\] do not fit the file"),
    ("past_end", r"'fc1.weight': its shape \[3, 4\] and data_offsets \[8, 56\] do not fit the file"),
    ("overlap", r"'fc1.weight' starts at byte 0 of the data, where another tensor is"),
    ("gap", r"'fc1.weight' starts at byte 4 of the data, where a gap is"),
    ("short_data", r"the tensors end at byte 48 of the data, which has 52"),
    ("twice", r"'fc1.weight' is named twice in the header"),
    ("deep", r"its header is not JSON"),
    ("huge_header", r"a header of 104,857,601 bytes; at most 100 MiB"),
])
def test_a_foreign_or_corrupt_file_is_a_diagnostic(tmp_path, capsys, case, words):
    p = tmp_path / "w.safetensors"
    entry = {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}
    if case == "short":
        p.write_bytes(b"abc")
    elif case == "length":
        _header_file(p, {}, length=10**9)
    elif case == "length_by_4":
        _header_file(p, {"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, length=62)
    elif case == "json":
        p.write_bytes(struct.pack("<Q", 4) + b"\xff{}x")
    elif case == "list":
        _header_file(p, [1, 2])
    elif case == "fields":
        _header_file(p, {"fc1.weight": {"dtype": "F32"}})
    elif case == "dtype":
        _header_file(p, {"fc1.weight": dict(entry, dtype="C64")}, bytes(96))
    elif case == "offsets":
        _header_file(p, {"fc1.weight": dict(entry, data_offsets=[0, 40])}, bytes(48))
    elif case == "past_end":
        _header_file(p, {"fc1.weight": dict(entry, data_offsets=[8, 56])}, bytes(48))
    elif case == "overlap":  # two tensors over the same bytes: each would read the other's values
        _header_file(p, {"fc1.weight": entry, "fc1.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}},
                     bytes(48))
    elif case == "gap":
        _header_file(p, {"fc1.weight": dict(entry, data_offsets=[4, 52])}, bytes(52))
    elif case == "short_data":
        _header_file(p, {"fc1.weight": entry}, bytes(52))
    elif case == "twice":
        raw = b'{"fc1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, ' \
              b'"fc1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
        p.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    elif case == "deep":  # json's RecursionError was not caught
        raw = b"[" * 200_000
        p.write_bytes(struct.pack("<Q", len(raw)) + raw)
    else:
        p.write_bytes(struct.pack("<Q", (100 << 20) + 1) + bytes((100 << 20) + 2))
    with pytest.raises(ArchError, match=words):
        load_weights(p)
    out = tmp_path / "m.onnx"
    assert main(["build", str(SPECS / "mlp.arch"), "--weights", str(p), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot read weights from {p}:" in err and "Traceback" not in err
    assert not out.exists()


def test_a_build_from_a_mapped_checkpoint_is_the_build_from_its_npz(tmp_path):
    """Same initializers, byte for byte, streamed from the mapped file as from arrays in memory; the weights
    file itself is untouched."""
    defines = {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab": 50, "n_positions": 16}
    mod = driver.load(SPECS / "gpt2.arch", defines=defines)
    g = driver.check_file(SPECS / "gpt2.arch", defines=defines)
    rng = np.random.default_rng(1)
    weights = {k: rng.standard_normal(v.type.shape).astype(np.float32) for k, v in g.params.items()}
    for suffix in (".npz", ".safetensors"):
        save_weights(tmp_path / f"w{suffix}", weights)
    before = (tmp_path / "w.safetensors").read_bytes()
    models = []
    for suffix in (".npz", ".safetensors"):
        out = tmp_path / f"m{suffix}.onnx"
        driver.build_file(mod, None, driver.CompileOptions(weights=str(tmp_path / f"w{suffix}")), out)
        models.append(onnx.load(str(out)))
    a, b = ({t.name: numpy_helper.to_array(t) for t in m.graph.initializer} for m in models)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert "wte.weight" in a and np.array_equal(a["wte.weight"], weights["wte.weight"])
    assert (tmp_path / "w.safetensors").read_bytes() == before


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("body", ["    y = x -> linear(hidden) as fc",
                                  "    y = mlp(x, hidden)",  # review39: through a block's argument, noted no more
                                  "    y = outer(x, hidden)",  # review40: through the block that calls it
                                  "    g = mlp\n    y = g(x, hidden)"])  # review40: called through a name
def test_weights_of_another_size_than_a_define_makes_note_the_define(tmp_path, capsys, train, body):
    """-D hidden=128 against a checkpoint of 256: the error named the linear but not where 128 came from."""
    from archdsl.cli import main
    spec = tmp_path / "m.arch"
    spec.write_text("param hidden = 8\nparam other = 1\nblock mlp(x, n) {\n    return x -> linear(n) as fc\n}\n"
                    "block outer(x, w) {\n    return mlp(x, w)\n}\n"
                    f"model m(x: float32[B, 4]) -> y {{\n{body}\n}}\n")
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.zeros((8, 4), np.float32), "fc.bias": np.zeros(8, np.float32)})
    argv = ["build", str(spec), "-D", "hidden=6", "-D", "other=2", "--weights", str(tmp_path / "w.npz"), "-o",
            str(tmp_path / "o.onnx")]
    assert main(argv + (["--train"] if train else [])) == 1
    err = capsys.readouterr().err
    assert "'fc.weight' has shape [8, 4] in the file, the model needs [6, 4]" in err
    assert err.count("note: param 'hidden' is set by -D here") == 1
    assert ("'other'" in err) == ("g = mlp" in body)  # a block held as a value: every note, as its callers are unknown


def test_a_header_number_too_long_for_python_is_said_plainly(tmp_path):
    """A 5000-digit offset gave Python's own 'use sys.set_int_max_str_digits()' advice."""
    from archdsl.lower.weights import load_weights
    head = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,' + b"9" * 5000 + b"]}}"
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bytes(4))
    with pytest.raises(ArchError, match=r"a number in its header is thousands of digits long") as e:
        load_weights(tmp_path / "w.safetensors")
    assert "sys." not in str(e.value)


def test_a_directory_or_an_unreadable_npz_is_said_as_the_os_says_it(tmp_path):
    from archdsl.lower.weights import load_weights
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ArchError) as e:
        load_weights(tmp_path / "d.npz")
    assert str(e.value.message) == f"cannot read weights from {tmp_path / 'd.npz'}: Is a directory"


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_saved_weights_keep_every_shape_and_load_back(tmp_path, suffix):
    """A 0-d parameter (CLIP's logit_scale) was saved as [1] to .safetensors (numpy's ascontiguousarray is at
    least 1-d), and `build --weights` then refused the file `train -o` had written."""
    arrays = {"s": np.asarray(np.float32(2.5)), "m": np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]}
    path = tmp_path / f"w{suffix}"
    save_weights(path, arrays)
    got = load_weights(path)
    assert {k: v.shape for k, v in got.items()} == {"s": (), "m": (2, 2)}
    np.testing.assert_array_equal(got["m"], arrays["m"])
    spec = tmp_path / "scal.arch"
    spec.write_text('model net(x: float32[B, 4]) -> y {\n    s = parameter([], init="constant", value=2.0) as '
                    'logit_scale\n    y = (x -> linear(3) as fc) * exp(s)\n}\n')
    model = driver.compile_file(spec, with_weights=True)
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    w["logit_scale"] = np.asarray(np.float32(0.5))
    save_weights(path, w)
    assert main(["build", str(spec), "--weights", str(path), "-o", str(tmp_path / "m.onnx")]) == 0
    got = {i.name: numpy_helper.to_array(i) for i in onnx.load(tmp_path / "m.onnx").graph.initializer}
    assert got["logit_scale"].shape == () and got["logit_scale"] == np.float32(0.5)
