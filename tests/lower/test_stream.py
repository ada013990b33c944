"""`archdsl build` streams weights into the file (lower/stream.py): the file must read back as exactly the
model compile_file builds in memory, with and without external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from archdsl import driver
from archdsl.lower.stream import INLINE_LIMIT
from archdsl.runtime import random_feeds, session

SPECS = Path(__file__).resolve().parents[2] / "specs"
CASES = [("resnet.arch", {"depth": 18, "resolution": 32, "classes": 10}),
         ("gpt2.arch", {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab": 50, "n_positions": 16})]


def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("spec,defines", CASES, ids=[c[0] for c in CASES])
def test_streamed_file_equals_the_in_memory_model(tmp_path, spec, defines, external):
    out = tmp_path / "m.onnx"
    compiled, written = driver.build_file(driver.load(SPECS / spec, defines=defines), None,
                                          driver.CompileOptions(seed=5), out, external_data=external)
    assert written == ([out, tmp_path / "m.onnx.data"] if external else [out])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temp dir left
    onnx.checker.check_model(str(out), full_check=True)
    ref = driver.compile_file(SPECS / spec, defines=defines, seed=5)
    got = onnx.load(str(out))
    a, b = _inits(got), _inits(ref)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [n.op_type for n in got.graph.node] == [n.op_type for n in ref.graph.node]
    if external:
        raw = onnx.load(str(out), load_external_data=False)
        for t in raw.graph.initializer:
            want = t.name in compiled.graph.params and a[t.name].nbytes >= INLINE_LIMIT
            assert (t.data_location == onnx.TensorProto.EXTERNAL) == want, t.name
    s1, s2 = session(out, "cpu", 1), session(ref, "cpu", 1)
    feeds = random_feeds(s1, 2, {"T": 4})
    for x, y in zip(s1.run(None, feeds), s2.run(None, feeds)):
        np.testing.assert_array_equal(x, y)


def test_same_build_gives_identical_bytes(tmp_path):
    spec, defines = CASES[0]
    for name in ("a.onnx", "b.onnx"):
        driver.build_file(driver.load(SPECS / spec, defines=defines), None, driver.CompileOptions(), tmp_path / name)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_bad_weights_leave_no_file(tmp_path):
    from archdsl.lower import initial_weights
    weights = initial_weights(driver.check_file(SPECS / "mlp.arch"))
    weights["fc1.weight"] = np.zeros((3, 3), np.float32)  # every name there, one of the wrong shape
    np.savez(tmp_path / "w.npz", **weights)
    out = tmp_path / "m.onnx"
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match="fc1.weight"):
        driver.build_file(driver.load(SPECS / "mlp.arch"), None, driver.CompileOptions(weights=str(tmp_path / "w.npz")),
                          out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_chunked_parameters_match_whole_ones_and_may_be_left_unread():
    """param_arrays(chunked=True) hands a large generated parameter over block by block; blocks equal the
    whole array, and a consumer that stops reading one still gets the next parameter right."""
    from archdsl.lower import initial_weights, param_arrays
    from archdsl.lower.weights import CHUNK, Chunked
    g = driver.check_file(SPECS / "gpt2.arch", defines={"n_layer": 1, "n_head": 2, "n_embd": 64, "vocab": 10000,
                                                       "n_positions": 16})
    whole = initial_weights(g, seed=2)
    assert whole["wte.weight"].size > 2 * CHUNK
    seen = []
    for name, arr in param_arrays(g, 2, None, chunked=True):
        if isinstance(arr, Chunked):
            if name == "wte.weight":  # read one block only
                first = next(arr.pieces)
                np.testing.assert_array_equal(first, whole[name].ravel()[:CHUNK])
                seen.append(name)
                continue
            arr = np.concatenate([p.copy() for p in arr.pieces]).reshape(arr.shape)  # valid until the next
        np.testing.assert_array_equal(arr, whole[name])
        seen.append(name)
    assert seen == list(g.params)


def test_chunked_blocks_reuse_a_bounded_set_of_buffers():
    """Consumed blocks' buffers are refilled (fresh arrays cost page faults); the values stay right."""
    from archdsl.lower import param_arrays
    from archdsl.lower.weights import CHUNK, Chunked, materialize
    g = driver.check_file(SPECS / "gpt2.arch", defines={"n_layer": 1, "n_head": 2, "n_embd": 64, "vocab": 100000,
                                                       "n_positions": 16})
    wte = g.params["wte.weight"]
    whole = materialize("wte.weight", wte.spec, wte.type.dtype, 5).ravel()
    for name, arr in param_arrays(g, 5, None, chunked=True):
        if name == "wte.weight":
            assert isinstance(arr, Chunked)
            buffers, at = set(), 0
            for piece in arr.pieces:
                buffers.add(piece.__array_interface__["data"][0])
                np.testing.assert_array_equal(piece, whole[at:at + piece.size])
                at += piece.size
            assert at == whole.size and whole.size // CHUNK >= 24 and len(buffers) <= 16


def test_given_arrays_cross_piece_boundaries_intact():
    """A given array is written in PIECE-sized writes: one over several pieces, one ending mid-piece and an
    empty one read back exactly, inline and as external data."""
    import io

    from archdsl.lower.stream import PIECE, write_streaming
    rng = np.random.default_rng(0)
    arrays = {"big": rng.standard_normal(PIECE // 4 * 2 + 3).astype(np.float32).reshape(-1, 1),
              "odd": rng.integers(0, 255, PIECE + 5, dtype=np.uint8), "empty": np.zeros((0, 4), np.float32)}
    skeleton = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    for external in (False, True):
        f, data = io.BytesIO(), io.BytesIO() if external else None
        write_streaming(skeleton, arrays.items(), f, data, "m.data")
        got = onnx.load_from_string(f.getvalue())
        if external:
            blob = data.getvalue()
            for t in got.graph.initializer:
                if t.data_location == onnx.TensorProto.EXTERNAL:
                    where = {e.key: int(e.value) for e in t.external_data if e.key != "location"}
                    t.raw_data = blob[where["offset"]:where["offset"] + where["length"]]
                    t.data_location = onnx.TensorProto.DEFAULT
                    del t.external_data[:]
        back = _inits(got)
        assert back.keys() == arrays.keys()
        for k, a in arrays.items():
            assert back[k].dtype == a.dtype and back[k].shape == a.shape and np.array_equal(back[k], a), k


def test_build_file_without_weights_writes_the_model_whose_parameters_are_inputs(tmp_path):
    """build_file took with_weights=False and streamed every weight into the file anyway, the -O2 graph too
    (the 2 GiB error sends API users there)."""
    mod = driver.load(SPECS / "mlp.arch")
    driver.build_file(mod, None, driver.CompileOptions(with_weights=False), tmp_path / "h.onnx")
    m = onnx.load(tmp_path / "h.onnx")
    assert [i.name for i in m.graph.input] == ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert not m.graph.initializer


@pytest.mark.parametrize("out,options", [(None, {}), (3, {}), ("", {}),
                                         ("m.onnx", {"opset": 99, "weights": "/no/such/file.npz"})])
def test_build_file_checks_its_arguments_before_reading_weights(tmp_path, out, options):
    """out=None was a TypeError, and a bad opset was found only after the weights were read."""
    mod = driver.load(SPECS / "mlp.arch")
    with pytest.raises(driver.ArchError, match="out takes the path|opset 99 is not supported"):
        driver.build_file(mod, None, driver.CompileOptions(**options), out if out != "m.onnx" else tmp_path / out)
