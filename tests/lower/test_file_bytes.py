"""Weights mapped from a .safetensors file are written into the model by reading the file (lower/weights.py
file_bytes, lower/stream.py _read), not through the mapping: only an array whose bytes are exactly the file's
takes that path."""

from __future__ import annotations

import gc
import io
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from archdsl.diagnostics import ArchError
from archdsl.lower import weights as w
from archdsl.lower.stream import PIECE, write_streaming


def _saved(tmp_path, arrays):
    p = tmp_path / "w.safetensors"
    w.save_weights(p, arrays)
    return p


def test_only_arrays_holding_the_files_bytes_are_found(tmp_path):
    rng = np.random.default_rng(0)
    p = _saved(tmp_path, {"a": rng.standard_normal((3, 5)).astype(np.float32), "b": np.arange(7, dtype=np.int64)})
    got = w.read_safetensors(p)
    for name in ("a", "b"):
        f, offset = w.file_bytes(got[name])
        with open(p, "rb") as g:
            g.seek(offset)
            assert g.read(got[name].nbytes) == got[name].tobytes(), name
    a = got["a"]
    assert w.file_bytes(a.T) is None  # its bytes lie in the file, in another order
    assert w.file_bytes(a[:, 1:]) is None and w.file_bytes(a.copy()) is None
    assert w.file_bytes(a[1:]) == (w.file_bytes(a)[0], w.file_bytes(a)[1] + 20)  # a contiguous part is its bytes
    f = w.file_bytes(a)[0]
    del got, a
    gc.collect()
    assert f.closed and not w._MAPPINGS  # the file is let go with the last array of it


def test_a_tensor_over_several_pieces_is_written_whole(tmp_path):
    big = np.random.default_rng(1).standard_normal(PIECE // 4 * 2 + 7).astype(np.float32)
    got = w.read_safetensors(_saved(tmp_path, {"big": big, "small": np.ones(3, np.float32)}))
    assert w.file_bytes(got["big"]) is not None
    f = io.BytesIO()
    write_streaming(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), got.items(), f)
    back = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(f.getvalue()).graph.initializer}
    assert np.array_equal(back["big"], big) and np.array_equal(back["small"], np.ones(3, np.float32))


def test_a_file_cut_short_while_building_is_an_error(tmp_path):
    """Reading through the mapping raised SIGBUS, which killed the process."""
    p = _saved(tmp_path, {"big": np.ones(PIECE, np.float32)})
    got = w.read_safetensors(p)
    os.truncate(p, 1000)
    with pytest.raises(ArchError, match="cut short"):
        write_streaming(onnx.ModelProto(), got.items(), io.BytesIO())


def test_interleaved_reads_of_one_file_do_not_share_a_position(tmp_path):
    """Two builds from one loaded checkpoint (threads, or forked processes) read the same open file: a seek
    then sequential reads let one move the other's position, and wrong weights were written."""
    from archdsl.lower.stream import _read
    rng = np.random.default_rng(2)
    arrays = {k: rng.standard_normal(PIECE // 4 * 3).astype(np.float32) for k in ("a", "b")}
    got = w.read_safetensors(_saved(tmp_path, arrays))
    readers = {k: _read(*w.file_bytes(got[k]), got[k].nbytes) for k in arrays}
    pieces: dict = {k: [] for k in arrays}
    for _ in range(3):  # a piece of one, then a piece of the other
        for k, r in readers.items():
            pieces[k].append(bytes(next(r)))
    for k, a in arrays.items():
        assert b"".join(pieces[k]) == a.tobytes(), k


def test_a_cast_or_folded_weight_is_read_from_the_file(tmp_path):
    """A float16 checkpoint of a float32 parameter is cast from a copy read from the file, not through the
    mapping (a file cut short meanwhile was SIGBUS there)."""
    from archdsl import driver
    src = 'model m(x: float32[B, 4]) -> y {\n    y = parameter([512, 1024], init="normal") as p\n}\n'
    p = _saved(tmp_path, {"p": np.ones((512, 1024), np.float16)})
    weights = w.read_safetensors(p)
    assert w.file_bytes(w.resident(weights["p"])) is None and np.array_equal(w.resident(weights["p"]), weights["p"])
    os.truncate(p, 1000)
    with pytest.raises(ArchError, match="cut short"):
        driver.build_file(driver.load(text=src, file="m.arch"), None, driver.CompileOptions(weights=weights),
                          tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _bf16_file(path, shape):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    save_file({"p": t}, str(path))
    return t.float().numpy()


SRC = 'model m(x: float32[B, 4]) -> y {\n    y = parameter([512, 1024], init="normal") as p\n}\n'


def test_a_bfloat16_checkpoint_builds_into_float32_parameters(tmp_path):
    """bfloat16 (most Hugging Face checkpoints) has no buffer protocol: reading it from the file as bytes
    failed with an internal error."""
    from archdsl import driver
    want = _bf16_file(tmp_path / "w.safetensors", (512, 1024))
    driver.build_file(driver.load(text=SRC, file="m.arch"), None,
                      driver.CompileOptions(weights=str(tmp_path / "w.safetensors")), tmp_path / "m.onnx")
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    assert np.array_equal(got["p"], want)


@pytest.mark.parametrize("bf16", [False, True])
def test_a_file_cut_short_after_loading_is_an_error_in_every_build(tmp_path, bf16):
    """checked_weights' bfloat16 cast and the in-memory ModelProto (compile_file) read through the mapping too."""
    import archdsl
    from archdsl import driver
    p = tmp_path / "w.safetensors"
    if bf16:
        _bf16_file(p, (512, 1024))
    else:
        w.save_weights(p, {"p": np.ones((512, 1024), np.float32)})
    for build in (lambda ws: driver.build_file(driver.load(text=SRC, file="m.arch"), None,
                                               driver.CompileOptions(weights=ws), tmp_path / "m.onnx"),
                  lambda ws: archdsl.compile_source(SRC, weights=ws)):
        weights = w.read_safetensors(p)
        os.truncate(p, 1000)
        with pytest.raises(ArchError, match="cut short"):
            build(weights)
        del weights
        if bf16:
            _bf16_file(p, (512, 1024))
        else:
            w.save_weights(p, {"p": np.ones((512, 1024), np.float32)})
    assert not (tmp_path / "m.onnx").exists()


def test_a_file_cut_short_is_an_error_where_an_extra_name_is_compared_too(tmp_path):
    """A checkpoint with a name the model lacks is searched for a tied twin (head.weight = embed.weight):
    that comparison read through the mapping, SIGBUS on a file cut short."""
    import archdsl
    rng = np.random.default_rng(3)
    p = _saved(tmp_path, {"p": rng.standard_normal((512, 1024)).astype(np.float32),
                          "extra": rng.standard_normal((512, 1024)).astype(np.float32)})
    weights = w.read_safetensors(p)
    os.truncate(p, 1000)
    with pytest.raises(ArchError, match="cut short"):
        archdsl.compile_source(SRC, weights=weights)
