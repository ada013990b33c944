"""Damaged or hand-made files as data, weights, --input and checkpoints: each a diagnostic naming the file
and the array (datafuzz hunt: a safetensors dtype given as a list, an .npz member that is no .npy array,
a name stored twice, a damaged .npy header and a checkpoint's bookkeeping of the wrong types were internal
errors, Python's own words, or silently the last copy)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from archdsl.cli import main

MLP = str(Path(__file__).parents[2] / "specs" / "mlp.arch")


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _zip(path: Path, members: dict) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """mlp's weights, data and checkpoint after one epoch."""
    d = tmp_path_factory.mktemp("mlp")
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x=rng.standard_normal((32, 784)).astype(np.float32), labels=rng.integers(0, 10, 32))
    assert main(["train", MLP, "--data", str(d / "data.npz"), "--epochs", "1", "-o", str(d / "w.npz"), "--quiet"]) == 0
    return d


def _said(capsys, argv: list, words: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert words in err and "internal error" not in err and "object has no attribute" not in err, err


def test_a_safetensors_dtype_that_is_no_name(tmp_path, capsys, trained):
    from safetensors.numpy import save_file
    save_file(dict(np.load(trained / "w.npz")), str(tmp_path / "ok.safetensors"))
    raw = (tmp_path / "ok.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["fc2.bias"]["dtype"] = ["F32"]
    text = json.dumps(header).encode()
    (tmp_path / "w.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    _said(capsys, ["run", MLP, "--weights", str(tmp_path / "w.safetensors")], "'fc2.bias': dtype ['F32'] is not one")


def _spoilt(path: Path, arrays: dict) -> str:
    """The arrays as an .npz whose fc2.bias member is no .npy array."""
    return _zip(path, [(k + ".npy", b"garbage" if k == "fc2.bias" else _npy(a)) for k, a in arrays.items()])


def test_an_npz_member_that_is_no_npy_array(tmp_path, capsys, trained):
    bad = _spoilt(tmp_path / "w.npz", dict(np.load(trained / "w.npz")))
    _said(capsys, ["build", MLP, "--weights", bad, "-o", str(tmp_path / "m.onnx")], "'fc2.bias': it is not a .npy")
    data = _zip(tmp_path / "d.npz", [("x.npy", b"not an npy"), ("labels.npy", _npy(np.zeros(4, np.int64)))])
    _said(capsys, ["train", MLP, "--data", data, "-o", str(tmp_path / "o.npz")], "'x': it is not a .npy array")
    _said(capsys, ["run", MLP, "--input", f"x={data}"], "cannot read 'x' from")
    notes = _zip(tmp_path / "notes.npz", [("notes.txt", "hello")])
    _said(capsys, ["run", MLP, "--input", f"x={notes}"], "'notes.txt' from")
    _spoilt(tmp_path / "g.ckpt.npz", dict(np.load(trained / "w.ckpt.npz")))
    _said(capsys, ["train", MLP, "--data", str(trained / "data.npz"), "--epochs", "2", "-o", str(tmp_path / "g.npz"),
                   "--resume"], "it is not a .npy array")


def test_a_name_stored_twice_and_a_damaged_header(tmp_path, capsys, trained):
    weights = dict(np.load(trained / "w.npz"))
    twice = _zip(tmp_path / "w.npz", [(k + ".npy", _npy(a)) for k, a in weights.items()] +
                 [("fc2.bias.npy", _npy(np.full(10, 100.0, np.float32)))])
    _said(capsys, ["run", MLP, "--weights", twice], "'fc2.bias' is stored twice in it")
    text = b"{'descr': garbage, 'fortran_order': False, 'shape': (4, 784), }"
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    data = _zip(tmp_path / "d.npz", [("x.npy", header), ("labels.npy", _npy(np.zeros(4, np.int64)))])
    _said(capsys, ["train", MLP, "--data", data, "-o", str(tmp_path / "o.npz")], "'x': its .npy header is damaged")


@pytest.mark.parametrize("key, value", [("__best__", np.array([1.5])),
                                        ("__config__", np.array(json.dumps({"params": 5}))),
                                        ("__plan__", None)])
def test_a_checkpoints_bookkeeping_of_the_wrong_kind(tmp_path, capsys, trained, key, value):
    members = dict(np.load(trained / "w.ckpt.npz"))
    if value is None:  # milestones of 5
        plan = json.loads(str(members["__plan__"]))
        value = np.array(json.dumps({**plan, "schedule": "step", "milestones": 5}))
    members[key] = value
    np.savez(tmp_path / "r.ckpt.npz", **members)
    _said(capsys, ["train", MLP, "--data", str(trained / "data.npz"), "--epochs", "2", "-o", str(tmp_path / "r.npz"),
                   "--resume"], "its bookkeeping does not read")


def test_labels_with_no_positions_are_refused(tmp_path, capsys):
    """Labels [16, 0] (a tagger fed sequences of length 0) trained at loss 0 and evaluated at NaN on the same
    data (datafuzz hunt)."""
    spec = tmp_path / "tag.arch"
    spec.write_text("model tag(ids: int64[B, T]) -> y {\n    y = ids -> embedding(10, 4) as e -> linear(5) as fc\n}\n")
    np.savez(tmp_path / "d.npz", ids=np.zeros((16, 0), np.int64), labels=np.zeros((16, 0), np.int64))
    _said(capsys, ["train", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "w.npz")],
          "'labels' has shape [16, 0], no label in any example")
