"""Training data whose values the model's inputs cannot hold (ids past an embedding's table or a take's, integers
past the input's dtype, floats past float16, non-0/1 values for a bool input): each is refused before training,
by its place, where numpy's cast or onnxruntime's Gather would have trained silently on something else (a
training-path hunt)."""

from __future__ import annotations

import json

import numpy as np

from archdsl.cli import main

LM = ("model lm(ids: {dt}[B, 6]) -> logits {{ logits = ids -> embedding(10, 8) as emb -> mean(dim=1) "
      "-> linear(10) as head }}")


def _lm(tmp_path, ids, dt="int64"):
    spec = tmp_path / "lm.arch"
    spec.write_text(LM.format(dt=dt))
    np.savez(tmp_path / "ids.npz", ids=ids, labels=np.zeros(len(ids), np.int64))
    return ["train", str(spec), "--data", str(tmp_path / "ids.npz"), "--epochs", "1", "--quiet",
            "-o", str(tmp_path / "w.npz")]


def test_embedding_ids_out_of_range_are_diagnostics(tmp_path, capsys):
    """onnxruntime's Gather reads id -1 as the last row (the loss and gradient of id 9), where torch refuses."""
    ids = np.ones((4, 6), np.int64)
    assert main(_lm(tmp_path, ids)) == 0
    capsys.readouterr()
    ids[2, 3] = -1
    assert main(_lm(tmp_path, ids)) == 1
    assert "'ids'[2, 3] is -1, but the embedding it indexes (emb) has 10 rows: ids are 0..9" in capsys.readouterr().err
    ids[2, 3] = 10
    assert main(_lm(tmp_path, ids)) == 1
    assert "'ids'[2, 3] is 10" in capsys.readouterr().err


def test_ids_a_take_of_a_parameter_table_reads_are_checked_before_training(tmp_path, capsys):
    """The translator looks its shared tables up with take(): an id past the table failed inside onnxruntime
    on a batch, naming no example, where an embedding's is said before training (seq2seq hunt). take keeps
    numpy's negative indices, so -rows..rows-1 pass; `archdsl run` draws ids within the table."""
    spec = tmp_path / "t.arch"
    spec.write_text("model lm(ids: int64[B, 6]) -> logits {\n    t = parameter([10, 8]) as table\n"
                    "    logits = take(t, ids) -> mean(dim=1) -> linear(10) as head\n}\n")
    run = lambda ids: main(["train", str(spec), "--data", str(tmp_path / "ids.npz"), "--epochs", "1",  # noqa: E731
                            "--quiet", "-o", str(tmp_path / "w.npz")]) if np.savez(
        tmp_path / "ids.npz", ids=ids, labels=np.zeros(len(ids), np.int64)) is None else None
    ids = np.ones((4, 6), np.int64)
    ids[1, 2], ids[0, 0] = -10, 9
    assert run(ids) == 0
    capsys.readouterr()
    ids[2, 3] = 10
    assert run(ids) == 1
    assert "'ids'[2, 3] is 10, but the table it looks up (table) has 10 rows: ids are -10..9" in capsys.readouterr().err
    ids[2, 3] = -11
    assert run(ids) == 1
    assert "'ids'[2, 3] is -11" in capsys.readouterr().err
    import archdsl
    meta = {p.key: p.value for p in archdsl.compile_file(spec).metadata_props}  # what `archdsl run` draws
    assert json.loads(meta["archdsl.int_inputs"]) == {"ids": {"low": 0, "high": 10}}
    spec.write_text("model lm(ids: int64[B, 6]) -> logits {\n    t = parameter([5, 8]) as table\n"  # review51: the
                    "    e = ids -> embedding(10, 8) as emb\n"  # embedding's refusal of -1 held, the table's 5 rows
                    "    logits = (take(t, ids) + e) -> mean(dim=1) -> linear(10) as head\n}\n")
    ids[2, 3] = 0
    assert run(ids) == 1
    ids[0, 0] = 4
    assert run(ids) == 1
    assert ("'ids'[1, 2] is -10, but the table it looks up (table) has 5 rows, and an embedding of them takes no "
            "negative id: ids are 0..4") in capsys.readouterr().err


def test_data_the_models_dtype_cannot_hold_is_a_diagnostic(tmp_path, capsys):
    """numpy's cast wrapped 2**40 to 0 in int32, and made 1e5 inf in float16 (then the loss was NaN and the
    message blamed the learning rate)."""
    ids = np.ones((4, 6), np.int64)
    ids[1, 2] = 2 ** 40
    assert main(_lm(tmp_path, ids, "int32")) == 1
    assert "'ids'[1, 2] is 1099511627776, which int32 (the model's dtype) cannot hold" in capsys.readouterr().err
    ids[1, 2] = -2 ** 40  # below its least: wrapped, it was row 0, a row that exists
    assert main(_lm(tmp_path, ids, "int32")) == 1
    assert "'ids'[1, 2] is -1099511627776, which int32 (the model's dtype) cannot hold" in capsys.readouterr().err
    spec = tmp_path / "h.arch"
    spec.write_text("model net(x: float16[B, 4]) -> y { y = x -> linear(3) as fc }")
    for dtype, shown in ((np.float32, "100000.0"), (np.int64, "100000")):  # integers overflowed too
        x = np.ones((8, 4), dtype)
        x[5, 3] = 100000
        np.savez(tmp_path / "h.npz", x=x, labels=np.zeros(8, np.int64))
        assert main(["train", str(spec), "--data", str(tmp_path / "h.npz"), "--optimizer", "sgd", "--quiet",
                     "-o", str(tmp_path / "w.npz")]) == 1
        assert f"'x'[5, 3] is {shown}, beyond float16 (the model's dtype, largest 65504)" in capsys.readouterr().err


def test_a_bool_input_takes_bools_or_zero_one_integers(tmp_path, capsys):
    """numpy's cast made 0.1 and 7 true: a float mask trained with every nonzero value as true; exact 0.0/1.0
    floats are a mask as they are."""
    spec = tmp_path / "m.arch"
    spec.write_text("model net(x: float32[B, 4], keep: bool[B]) -> y {\n"
                    "    y = where(unsqueeze(keep, 1), x, x * 0) -> linear(3) as fc\n}\n")
    x, labels = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    run = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--optimizer", "sgd", "--quiet",
           "-o", str(tmp_path / "w.npz")]
    for keep, rc, words in ((np.array([0, 1] * 4, np.int64), 0, ""),
                            (np.array([True, False] * 4), 0, ""),
                            (np.array([0.0, 1.0] * 4, np.float32), 0, ""),
                            (np.array([0, 0.1] * 4, np.float32), 1, "'keep'[1] is 0.1, not 0 or 1"),
                            (np.array([0, 1, 7, 0] * 2, np.int64), 1, "'keep'[2] is 7, not 0 or 1")):
        np.savez(tmp_path / "d.npz", x=x, keep=keep, labels=labels)
        assert main(run) == rc
        assert words in capsys.readouterr().err
