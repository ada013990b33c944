"""Index and label inputs read at fixed positions (one embedding per column of an id matrix, DLRM's
cat[:, i]; multi-task labels y[:, 0]) and along symbolic dims (a GNN's edge_index[0] into its N nodes):
checked per reading in train's data and run's --input, drawn within every reading by run (they were
unchecked, or drawn as 0s and 1s)."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main

COLUMNS = ("model m(cat: int64[B, 3], x: float32[B, 2]) -> y {\n"
           "    es = [cat[:, i] -> embedding(rows, 4) as \"emb.{i}\" for i, rows in enumerate([3, 10, 4])]\n"
           "    y = concat([x] + es, axis=1) -> linear(1) as fc\n}\n")


def test_each_column_of_an_id_matrix_is_checked_against_its_own_table(tmp_path, capsys):
    """A -1 in column 2 trained silently (the last row of its table); a 10 stopped mid-epoch with
    onnxruntime's Gather message naming another batch (tabular hunt). Column 1's 10-row table takes 9."""
    spec = tmp_path / "c.arch"
    spec.write_text(COLUMNS)
    rng = np.random.default_rng(0)
    cat = np.stack([rng.integers(0, 3, 40), rng.integers(0, 10, 40), rng.integers(0, 4, 40)], axis=1)
    cat[33, 2] = -1
    x = rng.standard_normal((40, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", cat=cat, x=x, labels=rng.random((40, 1)).astype(np.float32))
    args = ["--data", str(tmp_path / "d.npz"), "--loss", "mse", "--epochs", "1", "-o", str(tmp_path / "w.npz")]
    assert main(["train", str(spec), *args]) == 1
    assert "'cat[:, 2]'[33] is -1, but the embedding it indexes (emb.2) has 4 rows: ids are 0..3" in \
        " ".join(capsys.readouterr().err.split())
    cat[33, 2] = 3
    np.savez(tmp_path / "d.npz", cat=cat, x=x, labels=rng.random((40, 1)).astype(np.float32))
    assert main(["train", str(spec), *args, "--quiet"]) == 0
    given = cat[:2].copy()
    given[1, 2] = 4
    np.save(tmp_path / "cat.npy", given)
    assert main(["run", str(spec), "--input", f"cat={tmp_path / 'cat.npy'}"]) == 1
    assert "'cat[:, 2]'[1] is 4, but the embedding it indexes (emb.2) has 4 rows" in capsys.readouterr().err
    for _ in range(3):  # drawn below the smallest table
        assert main(["run", str(spec), "--batch", "32", "--repeat", "1"]) == 0


def test_indices_along_a_symbolic_dim_are_drawn_below_its_size(tmp_path, capsys):
    """A message-passing GNN: edge_index[0] picks nodes of x [N, 8]; run drew 0s and 1s, out of range at
    N = 1 (onnxruntime's ScatterElements error: gnn hunt)."""
    spec = tmp_path / "g.arch"
    spec.write_text("model g(x: float32[N, 8], edge_index: int64[2, E]) -> y {\n"
                    "    msg = take(x, edge_index[0], axis=0)\n"
                    "    y = index_add(zeros_like(x), 0, edge_index[1], msg)\n}\n")
    for flags in ([], ["--dim", "N=3", "--dim", "E=50"]):
        for _ in range(3):
            assert main(["run", str(spec), "--repeat", "1", *flags]) == 0, capsys.readouterr().err
    spec.write_text(spec.read_text().replace("axis=0)", "axis=0) + (edge_index[0] -> embedding(1000, 8) as e)"))
    for seed in ("1", "2", "3"):  # the embedding's 1000 rows are no bound at N = 50 (review58)
        assert main(["run", str(spec), "--repeat", "1", "--dim", "N=50", "--dim", "E=200", "--seed", seed]) == 0


def test_labels_read_at_a_column_are_checked_against_their_loss(tmp_path, capsys):
    """Multi-task labels y[:, 0] and y[:, 1]: a -1 trained silently as the last class, a 3 stopped mid-epoch
    with onnxruntime's GatherElements message (tabular hunt)."""
    spec = tmp_path / "mt.arch"
    spec.write_text("model mt(x: float32[B, 4], y: int64[B, 2]) -> loss {\n    h = x -> linear(8) as trunk\n"
                    "    loss = cross_entropy(h -> linear(3) as a, y[:, 0]) + cross_entropy(h -> linear(5) as b, "
                    "y[:, 1])\n}\n")
    rng = np.random.default_rng(0)
    y = np.stack([rng.integers(0, 3, 24), rng.integers(0, 5, 24)], axis=1)
    y[7, 0] = -1
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((24, 4)).astype(np.float32), y=y)
    args = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "-o", str(tmp_path / "w.npz")]
    assert main(args) == 1
    assert "'y[:, 0]'[7] is -1, but the cross_entropy it feeds (cross_entropy_0) has 3 classes" in \
        " ".join(capsys.readouterr().err.split())
    y[7, 0] = 2  # column 1 takes 0..4
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((24, 4)).astype(np.float32), y=y)
    assert main([*args, "--quiet"]) == 0


def test_columns_read_through_an_ellipsis_or_unbind_are_checked_too(tmp_path, capsys):
    """cat[..., 1] and unbind(cat, dim=1)[i] trained a -1 silently (review58)."""
    for read in ("cat[..., i]", "unbind(cat, dim=1)[i]"):
        spec = tmp_path / "c.arch"
        spec.write_text(COLUMNS.replace("cat[:, i]", read))
        rng = np.random.default_rng(0)
        cat = np.stack([rng.integers(0, 3, 40), rng.integers(0, 10, 40), rng.integers(0, 4, 40)], axis=1)
        cat[5, 0] = -1
        np.savez(tmp_path / "d.npz", cat=cat, x=rng.standard_normal((40, 2)).astype(np.float32),
                 labels=rng.random((40, 1)).astype(np.float32))
        assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--epochs", "1",
                     "-o", str(tmp_path / "w.npz")]) == 1
        shown = "..., 0" if "..." in read else ":, 0"
        assert f"'cat[{shown}]'[5] is -1, but the embedding it indexes (emb.0) has 3 rows" in \
            " ".join(capsys.readouterr().err.split())


def test_ids_read_through_an_unsqueeze_or_a_label_dropout_where_are_checked_and_drawn(tmp_path, capsys):
    """DQN's q.gather(1, a.unsqueeze(1)) (rl hunt) and DiT's where(drop, null_class, y) -> embedding (dit hunt):
    an out-of-range action stopped in onnxruntime's GatherElements, a -3 label trained as class 8, and run drew
    both as 0s and 1s."""
    spec = tmp_path / "q.arch"
    spec.write_text("model q(s: float32[B, 6], a: int64[B], y: int64[B]) -> loss {\n"
                    "    qs = s -> linear(4) as head\n    qa = squeeze(gather(qs, 1, unsqueeze(a, 1)), 1)\n"
                    "    e = where(rand_like(qa) < 0.1, 10, y) -> embedding(11, 1) as table\n"
                    "    loss = mean((qa - squeeze(e, 1)) ** 2)\n}\n")
    rng = np.random.default_rng(0)
    a, y = rng.integers(0, 4, 32), rng.integers(0, 11, 32)
    s = rng.standard_normal((32, 6)).astype(np.float32)
    args = ["--epochs", "1", "--batch-size", "16", "--quiet", "-o", str(tmp_path / "w.npz")]
    for bad, said in (("a", "'a'[3] is 4, but dim 1 of what gather 'gather_0' reads has 4 rows"),
                      ("y", "'y'[3] is -3, but the embedding it indexes (table) has 11 rows")):
        data = {"s": s, "a": a.copy(), "y": y.copy()}
        data[bad][3] = 4 if bad == "a" else -3
        np.savez(tmp_path / "d.npz", **data)
        assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), *args]) == 1
        assert said in " ".join(capsys.readouterr().err.split())
    assert main(["run", str(spec), "--batch", "256", "--repeat", "1", "--save", str(tmp_path / "r.npz")]) == 0
    drawn = np.load(tmp_path / "r.npz")
    assert set(np.unique(drawn["input:a"])) == {0, 1, 2, 3} and drawn["input:y"].max() > 5
    np.save(tmp_path / "y.npy", np.array([3, -3]))  # run's --input, of the spec and of its .onnx (review71: the
    assert main(["build", str(spec), "-o", str(tmp_path / "q.onnx")]) == 0  # draw's seed input counted as a mask)
    for model, said in ((spec, "'y'[1] is -3, but the embedding it indexes (table) has 11 rows"),
                        (tmp_path / "q.onnx", "'y'[1] is -3, outside 0..10, the range the model records for it")):
        assert main(["run", str(model), "--input", f"y={tmp_path / 'y.npy'}", "--repeat", "1"]) == 1
        assert said in capsys.readouterr().err


def test_ids_the_model_remaps_with_a_where_of_their_own_are_not_refused(tmp_path, capsys):
    """where(ids < 0, 0, ids) -> embedding (padding ids to row 0) and where(y < 0, -100, y) into cross_entropy
    (labels to its ignore_index) remap the very values a check would refuse: the where beside a constant was
    followed whatever its condition, and valid data refused (review64)."""
    spec = tmp_path / "p.arch"
    spec.write_text("model m(ids: int64[B, 4], y: int64[B]) -> loss {\n"
                    "    e = where(ids < 0, 0, ids) -> embedding(5, 3) as emb -> mean(dim=1)\n"
                    "    loss = cross_entropy(e, where(y < 0, -100, y), ignore_index=-100)\n}\n")
    rng = np.random.default_rng(0)
    ids, y = rng.integers(0, 5, (16, 4)), rng.integers(0, 3, 16)
    ids[:, 3], y[2] = -1, -1
    np.savez(tmp_path / "d.npz", ids=ids, y=y)
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--quiet",
                 "-o", str(tmp_path / "w.npz")]) == 0, capsys.readouterr().err


def test_a_where_on_a_shape_only_condition_is_still_checked_and_a_remap_still_drawn(tmp_path, capsys):
    """A condition that reads only the input's length (positions, T) turned the check off (its dim_size counted as
    reading the values); a remapping where (ids < 0 to row 0), not checked, drew 0s and 1s (review65)."""
    spec = tmp_path / "k.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    keep = lt(positions(ids, dim=1) + 1, T)\n"
                    "    y = where(keep, ids, 0) -> embedding(5, 3) as emb\n}\n")
    np.save(tmp_path / "ids.npy", np.array([[1, -2, 3, 0]]))
    assert main(["run", str(spec), "--input", f"ids={tmp_path / 'ids.npy'}", "--repeat", "1"]) == 1
    assert "'ids'[0, 1] is -2, but the embedding it indexes (emb) has 5 rows" in capsys.readouterr().err
    spec.write_text("model m(ids: int64[B, 4]) -> y {\n    y = where(ids < 0, 0, ids) -> embedding(5, 3) as emb\n}\n")
    assert main(["run", str(spec), "--batch", "64", "--repeat", "1", "--save", str(tmp_path / "r.npz")]) == 0
    assert set(np.unique(np.load(tmp_path / "r.npz")["input:ids"])) == {0, 1, 2, 3, 4}


def test_labels_a_mask_input_picks_are_not_refused_where_the_mask_drops_them(tmp_path, capsys):
    """where(valid, y, -100) and where(pad, 0, ids) with the mask given beside the data: the -1 at a position the
    mask drops is never read, and was refused as out of range (review70; the where beside a constant was
    followed for DiT's label dropout, whose condition reads no input)."""
    spec = tmp_path / "v.arch"
    spec.write_text("model m(x: float32[B, 4], valid: bool[B], pad: bool[B], y: int64[B], ids: int64[B]) -> loss {\n"
                    "    e = where(pad, 0, ids) -> embedding(10, 4) as emb\n"
                    "    loss = cross_entropy((x + e) -> linear(3) as fc, where(valid, y, -100), ignore_index=-100)\n"
                    "}\n")
    mask = np.array([True, True, False])
    np.savez(tmp_path / "d.npz", x=np.ones((3, 4), np.float32), valid=mask, pad=~mask, y=np.array([0, 2, -1]),
             ids=np.array([1, 9, -1]))
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--loss", "model", "--epochs", "1",
                 "--quiet", "-o", str(tmp_path / "w.npz")]) == 0, capsys.readouterr().err


def test_an_input_read_as_labels_and_as_ids_is_drawn_within_both(tmp_path, capsys):
    """y read by cross_entropy (3 classes) and an embedding of 100 rows, whole or a column each: run drew ids up to
    99 into the loss (onnxruntime's GatherElements error), and the .onnx recorded the embedding's range alone
    (review70)."""
    for ys, yl in (("y", "y"), ("y[:, 1]", "y[:, 0]")):
        spec = tmp_path / "a.arch"
        spec.write_text(f"model m(x: float32[B, 4], y: int64[B{', 2' if ys != 'y' else ''}]) -> loss {{\n"
                        f"    e = {ys} -> embedding(100, 4) as emb\n"
                        f"    loss = cross_entropy((x + e) -> linear(3) as fc, {yl})\n}}\n")
        assert main(["build", str(spec), "-o", str(tmp_path / "a.onnx")]) == 0
        for model in (spec, tmp_path / "a.onnx"):
            for seed in ("1", "2"):
                assert main(["run", str(model), "--batch", "64", "--repeat", "1", "--seed", seed]) == 0, \
                    capsys.readouterr().err
    np.save(tmp_path / "y.npy", np.array([5, 1]))
    spec.write_text(spec.read_text().replace("y[:, 1]", "y").replace("y[:, 0]", "y").replace(", 2]", "]"))
    assert main(["build", str(spec), "-o", str(tmp_path / "a.onnx")]) == 0
    assert main(["run", str(tmp_path / "a.onnx"), "--input", f"y={tmp_path / 'y.npy'}"]) == 1
    assert "'y'[0] is 5, outside 0..2, the range the model records for it" in capsys.readouterr().err


@pytest.mark.parametrize("read", ["transpose(ids, 0, 1)", "permute(ids, [1, 0])", "flip(ids, [1])",
                                  "concat([ids, ids], axis=1)", "tile(ids, [2, 1])", "split(ids, 2, axis=1)[1]"])
def test_ids_read_through_ops_that_reorder_or_split_them_are_checked(tmp_path, capsys, read):
    """A time-major transpose(ids, 0, 1) -> embedding read a -1 as row 9, silently (review70); a split's piece is
    checked at its positions."""
    spec = tmp_path / "t.arch"
    spec.write_text(f"model m(ids: int64[B, 4]) -> y {{\n    y = {read} -> embedding(10, 3) as emb\n}}\n")
    np.save(tmp_path / "i.npy", np.array([[1, 2, 3, -1], [1, 2, 3, 4]]))
    assert main(["run", str(spec), "--input", f"ids={tmp_path / 'i.npy'}", "--repeat", "1"]) == 1
    shown = "'ids[:, 2:4]'[0, 1]" if "split" in read else "'ids'[0, 3]"
    assert f"{shown} is -1, but the embedding it indexes (emb) has 10 rows" in capsys.readouterr().err
