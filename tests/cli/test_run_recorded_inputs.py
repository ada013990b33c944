"""`archdsl run MODEL.onnx` draws integer inputs as the model's archdsl.int_inputs metadata says
(elaborate/provenance.py, cli/run.py): an lstm's lengths 1..T at the run's T, embedding ids below the table's
rows, a spec's own labels below its classes. An .onnx said nothing of them, and lengths were drawn 0 or 1."""

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


def test_a_train_step_and_its_eval_model_record_them_too(tmp_path, capsys):
    (tmp_path / "m.arch").write_text(SPEC.replace("[B, T, 4]", "[B, 5, 4]").replace("[B, T]", "[B, 5]"))
    assert main(["build", str(tmp_path / "m.arch"), "--train", "-o", str(tmp_path / "t.onnx")]) == 0
    for name in ("t.eval.onnx", "t.onnx"):  # the step's too (it drew 0s and 1s for its lengths)
        meta = {p.key: p.value for p in onnx.load(tmp_path / name).metadata_props}
        assert json.loads(meta["archdsl.int_inputs"])["n"] == {"low": 1, "steps": [5]}
    assert main(["build", str(tmp_path / "m.arch"), "--train", "--loss", "model", "--output-name", "loss",
                 "-o", str(tmp_path / "own.onnx")]) == 0  # the spec's own labels t, not the step's
    capsys.readouterr()
    (tmp_path / "c.arch").write_text("model c(x: float32[B, 4]) -> logits {\n    logits = x -> linear(7) as fc\n}\n")
    assert main(["build", str(tmp_path / "c.arch"), "--train", "-o", str(tmp_path / "c.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(tmp_path / "c.onnx").metadata_props}
    assert json.loads(meta["archdsl.int_inputs"]) == {"labels": {"low": 0, "high": 7}}  # --loss cross_entropy's
    assert main(["run", str(tmp_path / "c.onnx"), "--batch", "64", "--save", str(tmp_path / "o.npz")]) == 0
    assert set(np.load(tmp_path / "o.npz")["input:labels"].tolist()) == set(range(7))


def test_lengths_of_layers_with_formula_steps_are_drawn_at_the_run_sizes(tmp_path, capsys):
    """An lstm over T and a gru over 2*T steps: lengths 1..T (the fewest); a formula step dropped the whole
    range, and lengths were 0s and 1s."""
    (tmp_path / "m.arch").write_text("model m(x: float32[B, T, 8], n: int64[B]) -> y {\n"
                                     "    a = lstm(x, 16, lengths=n)\n"
                                     "    b = gru(concat([x, x], axis=1), 16, lengths=n)\n"
                                     "    y = a[:, 0] + b[:, 0]\n}\n")
    assert main(["build", str(tmp_path / "m.arch"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["run", str(tmp_path / "m.onnx"), "--batch", "64", "--dim", "T=6",
                 "--save", str(tmp_path / "o.npz")]) == 0
    n = np.load(tmp_path / "o.npz")["input:n"]
    assert n.min() >= 1 and n.max() == 6
    capsys.readouterr()


def test_metadata_that_does_not_read_as_archdsls_is_passed_over(tmp_path, capsys):
    """A hand-edited or foreign entry: internal errors (int() of "x", high <= 0, low >= high, past int64,
    steps of null or '²'); now that input's integers are 0s and 1s, as for a model from elsewhere."""
    (tmp_path / "m.arch").write_text(SPEC)
    assert main(["build", str(tmp_path / "m.arch"), "-o", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(tmp_path / "m.onnx")
    entry = next(p for p in model.metadata_props if p.key == "archdsl.int_inputs")
    for bad in ({"ids": {"high": "x"}}, {"ids": {"high": 0}}, {"ids": {"high": None}}, {"ids": {"low": 5, "high": 2}},
                {"ids": {"high": 1e30}}, {"ids": {"high": 10**20}}, {"ids": {"high": [1, 2]}}, {"ids": {"high": True}},
                {"n": {"steps": None}}, {"n": {"steps": ["\u00b2"]}}, {"n": {"steps": [True]}}, ["ids"], "ids"):
        entry.value = json.dumps(bad)
        onnx.save(model, tmp_path / "bad.onnx")
        assert main(["run", str(tmp_path / "bad.onnx"), "--dim", "T=4", "--batch", "32",
                     "--save", str(tmp_path / "o.npz")]) == 0, bad
        drawn = np.load(tmp_path / "o.npz")
        name = bad if isinstance(bad, str) else bad[0] if isinstance(bad, list) else next(iter(bad))
        assert set(np.unique(drawn[f"input:{name}"]).tolist()) <= {0, 1}, bad  # as for a model from elsewhere
    capsys.readouterr()


def test_given_integers_outside_the_recorded_range_are_refused(tmp_path, capsys):
    """As `run SPEC` refuses them: onnxruntime's Gather took id -2 as row 48 and the run went on."""
    (tmp_path / "m.arch").write_text(SPEC)
    assert main(["build", str(tmp_path / "m.arch"), "-o", str(tmp_path / "m.onnx")]) == 0
    fine = {"ids": [[1, 2, 3]], "n": [3], "t": [1]}

    def run(feeds):
        for k, v in feeds.items():
            np.save(tmp_path / f"{k}.npy", np.array(v, np.int64))
        flags = [a for k in feeds for a in ("--input", f"{k}={tmp_path / f'{k}.npy'}")]
        return main(["run", str(tmp_path / "m.onnx"), *flags, "--repeat", "1"])
    for name, bad, words in (("ids", [[1, -2, 3]], "'ids'[0, 1] is -2, outside 0..49"),
                             ("n", [0], "'n'[0] is 0, outside 1..3"), ("t", [3], "'t'[0] is 3, outside 0..2")):
        assert run({**fine, name: bad}) == 1
        assert words in capsys.readouterr().err
    assert run(fine) == 0


def test_labels_may_hold_the_ignore_index_the_model_records(tmp_path, capsys):
    """A spec's cross_entropy(..., ignore_index=-100) and a train step's --ignore-index: -100 is a label
    torch takes, which run SPEC and train took, and run MODEL.onnx refused as out of range."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4], labels: int64[B]) -> loss {\n"
                    "    loss = cross_entropy(x -> linear(3) as fc, labels, ignore_index=-100)\n}\n")
    np.save(tmp_path / "x.npy", np.ones((4, 4), np.float32))
    feeds = ["--input", f"x={tmp_path / 'x.npy'}", "--input", f"labels={tmp_path / 'y.npy'}", "--repeat", "1"]
    plain = tmp_path / "p.arch"
    plain.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n")
    assert main(["build", str(spec), "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["build", str(plain), "--train", "--ignore-index", "-100", "-o", str(tmp_path / "s.onnx")]) == 0
    for model in ("m.onnx", "s.onnx"):
        np.save(tmp_path / "y.npy", np.array([0, 1, -100, 2]))
        assert main(["run", str(tmp_path / model), *feeds]) == 0, capsys.readouterr().err
        np.save(tmp_path / "y.npy", np.array([0, 1, -99, 2]))
        assert main(["run", str(tmp_path / model), *feeds]) == 1
        assert "'labels'[2] is -99, outside 0..2" in capsys.readouterr().err


def test_an_onnx_draws_an_edge_list_within_the_node_count_of_the_run(tmp_path, capsys):
    """Ids read along a dim the run sizes (a GNN's edge_index into its N nodes) were not recorded: the .onnx drew
    0s and 1s and failed in onnxruntime at N = 1, where the spec drew within N (segment hunt)."""
    spec = tmp_path / "g.arch"
    spec.write_text("model gnn(x: float32[N, 4], edge_index: int64[2, E]) -> y {\n"
                    "    msg = take(x, edge_index[0], axis=0)\n"
                    "    y = index_add(zeros_like(x), 0, edge_index[1], msg)\n}\n")
    model = tmp_path / "g.onnx"
    assert main(["build", str(spec), "-o", str(model)]) == 0
    assert main(["run", str(model), "--dim", "N=1", "--dim", "E=6", "--repeat", "1"]) == 0
    assert main(["run", str(model), "--dim", "N=50", "--dim", "E=400", "--repeat", "1",
                 "--save", str(tmp_path / "r.npz")]) == 0
    drawn = np.load(tmp_path / "r.npz")["input:edge_index"]
    assert drawn.min() == 0 and 40 <= drawn.max() <= 49


def test_an_onnx_draws_ids_read_whole_and_along_a_run_size_below_both(tmp_path, capsys):
    """ids read whole by a 10-row embedding (recorded as high 10, checked) and at column 0 by a take over N (not
    recorded beside it): the .onnx drew up to 9 and failed in onnxruntime at N = 1 (review66)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[N, 4], ids: int64[B, 2]) -> y {\n    e = ids -> embedding(10, 4) as emb\n"
                    "    y = sum(e, dim=1) + take(x, ids[:, 0], axis=0)\n}\n")
    model = tmp_path / "m.onnx"
    assert main(["build", str(spec), "-o", str(model)]) == 0
    assert main(["run", str(model), "--dim", "N=1", "--dim", "B=64", "--repeat", "1"]) == 0, capsys.readouterr().err


def test_rows_that_do_not_read_as_archdsl_writes_them_are_passed_over(tmp_path, capsys):
    """rows of 2**70 (a hand-edited file) was an internal error, and a low of 3 beside rows dropped the table's
    high, drawing ids past it (review67)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[N, 4], ids: int64[B]) -> y {\n    e = ids -> embedding(10, 4) as emb\n"
                    "    y = e + take(x, ids, axis=0)\n}\n")
    model = tmp_path / "m.onnx"
    assert main(["build", str(spec), "-o", str(model)]) == 0
    for entry in ({"low": 0, "rows": [2 ** 70]}, {"low": 3, "high": 9, "rows": ["N"]}):
        m = onnx.load(model)
        for p in m.metadata_props:
            if p.key == "archdsl.int_inputs":
                p.value = json.dumps({"ids": entry})
        onnx.save(m, tmp_path / "e.onnx")
        assert main(["run", str(tmp_path / "e.onnx"), "--dim", "N=30", "--dim", "B=50", "--repeat", "1"]) == 0, \
            capsys.readouterr().err
