"""A weights file that lacks some of the model's names, or holds them under other names: what to do is said
(newuser6 hunt: a renamed key said only the extra name; a LoRA run's base checkpoint had no way forward)."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

import archdsl
from archdsl.cli import main

SPEC = "model m(x: float32[B, 4]) -> y {\n    y = x -> linear(8) as fc1 -> relu -> linear(3) as fc2\n}\n"
SHAPES = {"fc1.weight": (8, 4), "fc1.bias": (8,), "fc2.weight": (3, 8), "fc2.bias": (3,)}


def _build(tmp_path, capsys, weights: dict) -> tuple[int, str]:
    (tmp_path / "m.arch").write_text(SPEC)
    np.savez(tmp_path / "w.npz", **weights)
    rc = main(["build", str(tmp_path / "m.arch"), "--weights", str(tmp_path / "w.npz"), "-o", str(tmp_path / "m.onnx")])
    return rc, " ".join(capsys.readouterr().err.split())


def test_a_renamed_key_says_the_name_the_model_lacks_too(tmp_path, capsys):
    """torch's strict load_state_dict lists the unexpected and the missing keys together; one of each of one
    shape is the same weight under another name (safetensors' save_model keeps one name of a tied pair)."""
    w = {k: np.zeros(v, np.float32) for k, v in SHAPES.items() if k != "fc1.weight"}
    rc, err = _build(tmp_path, capsys, {**w, "dense_in.weight": np.zeros((8, 4), np.float32)})
    assert rc == 1 and "has 1 name the model does not: 'dense_in.weight'" in err
    assert ("it lacks 1 of the model's names too: 'fc1.weight' (of 'dense_in.weight''s shape: the same weight under "
            "another name? safetensors' save_model keeps one name of tied weights: rename it 'fc1.weight')") in err
    rc, err = _build(tmp_path, capsys, {**w, "dense_in.weight": np.zeros((5, 4), np.float32)})
    assert "lacks 1 of the model's names too: 'fc1.weight'" in err and "rename it" not in err
    rc, err = _build(tmp_path, capsys, {**w, "fc1.wieght": np.zeros((8, 4), np.float32)})  # a typo: said once
    assert "did you mean 'fc1.weight'?" in err and "rename it" not in err, err


def test_a_file_that_lacks_new_layers_says_how_to_start_them_from_their_init(tmp_path, capsys):
    """A base checkpoint without a new head or adapters (torch's load_state_dict(strict=False)): the recipe the
    message gives builds, with the file's values where it has them."""
    base = {k: np.full(v, 0.5, np.float32) for k, v in SHAPES.items() if k.startswith("fc1")}
    rc, err = _build(tmp_path, capsys, base)
    assert rc == 1 and "{**archdsl.lower.initial_weights(archdsl.check_file(spec), seed), **yours}" in err
    merged = {**archdsl.lower.initial_weights(archdsl.check_file(str(tmp_path / "m.arch")), 0), **base}
    assert _build(tmp_path, capsys, merged)[0] == 0
    model = archdsl.compile_file(str(tmp_path / "m.arch"), weights=str(tmp_path / "w.npz"), opt_level=0)
    loaded = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert np.all(loaded["fc1.bias"] == 0.5) and not np.all(loaded["fc2.weight"] == 0.5)
