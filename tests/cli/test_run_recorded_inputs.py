"""`archdsl run MODEL.onnx` draws integer inputs as the model's archdsl.int_inputs metadata says (driver.py,
cli/run.py): an lstm's lengths 1..T at the run's T, embedding ids below the table's rows, a spec's own labels
below its classes. An .onnx said nothing of them, and lengths were drawn 0 or 1."""

from __future__ import annotations

import json

import numpy as np
import onnx

from archdsl.cli import main

SPEC = """model m(x: float32[B, T, 4], n: int64[B], ids: int64[B, T], t: int64[B]) -> (y, loss) {
    h = (x + (ids -> embedding(50, 4) as emb)) -> lstm(8, lengths=n) as rnn
    y = h
    loss = cross_entropy(h[:, -1] -> linear(3) as head, t)
}
"""


def test_an_onnx_records_what_its_integer_inputs_hold_and_run_draws_them(tmp_path, capsys):
    (tmp_path / "m.arch").write_text(SPEC)
    assert main(["build", str(tmp_path / "m.arch"), "-o", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert json.loads(meta["archdsl.int_inputs"]) == {"ids": {"low": 0, "high": 50}, "n": {"low": 1, "steps": ["T"]},
                                                     "t": {"low": 0, "high": 3}}
    assert main(["run", str(tmp_path / "m.onnx"), "--batch", "64", "--dim", "T=7",
                 "--save", str(tmp_path / "o.npz")]) == 0
    got = np.load(tmp_path / "o.npz")
    n, ids, t = got["input:n"], got["input:ids"], got["input:t"]
    assert n.min() >= 1 and n.max() == 7 and len(set(n.tolist())) > 3  # was 0s and 1s: a length of 0 is none
    assert ids.min() >= 0 and ids.max() <= 49 and ids.max() > 1
    assert set(t.tolist()) == {0, 1, 2}
    del got
    model = onnx.load(tmp_path / "m.onnx")  # a model from elsewhere: 0s and 1s, as for any integer input
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    assert main(["run", str(tmp_path / "bare.onnx"), "--batch", "64", "--dim", "T=7",
                 "--save", str(tmp_path / "b.npz")]) == 0
    assert set(np.load(tmp_path / "b.npz")["input:n"].tolist()) <= {0, 1}
    capsys.readouterr()


def test_a_train_steps_eval_model_records_them_too(tmp_path, capsys):
    (tmp_path / "m.arch").write_text(SPEC.replace("[B, T, 4]", "[B, 5, 4]").replace("[B, T]", "[B, 5]"))
    assert main(["build", str(tmp_path / "m.arch"), "--train", "-o", str(tmp_path / "t.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(tmp_path / "t.eval.onnx").metadata_props}
    assert json.loads(meta["archdsl.int_inputs"])["n"] == {"low": 1, "steps": ["5"]}
