"""`archdsl summary`: its table, JSON, the sizes it counts at (--dim) and what it warns of."""

from __future__ import annotations

import json
from pathlib import Path

from archdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "specs" / "mlp.arch")


def test_summary_json(capsys):
    assert main(["summary", str(ROOT / "specs" / "resnet.arch"), "-D", "depth=18", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["params"] == 11_689_512
    assert rep["buffers"] == 2 * 4800  # running mean and var of every BatchNorm channel
    assert rep["flops"] > 3e9 and len(rep["layers"]) > 50
    assert {"name", "op", "shape", "params", "flops"} <= set(rep["layers"][0])


def test_summary_sizes_symbolic_dims_and_says_which_it_counted_as_one(tmp_path, capsys):
    """FLOPs were labelled "batch 1" while every other symbolic dim also counted as 1 (GPT-2 per token)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(ids: int64[B, T]) -> y {\n    y = ids -> embedding(10, 4) as emb -> linear(4) as fc\n}\n")
    assert main(["summary", str(spec)]) == 0
    assert "FLOPs at batch 1, T=1 (--dim T=N sizes it): 32" in capsys.readouterr().out  # 2 * 4 * 4
    assert main(["summary", str(spec), "--dim", "T=8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["flops"] == 8 * 32 and rep["flops_unsized"] == []
    assert main(["summary", str(spec), "--dim", "S=8"]) == 1
    assert "--dim S: the model has no symbolic dim 'S' (its symbolic dims: B, T)" in capsys.readouterr().err
    assert main(["summary", str(spec), "--dim", "T=x"]) == 2
    assert main(["summary", str(spec), "--dim", "T=3", "--dim", "T=5"]) == 2  # the last won, unsaid
    assert "--dim T is given twice, as 3 and as 5" in capsys.readouterr().err
    two = tmp_path / "two.arch"  # a dim that only one of the models has sizes that one
    two.write_text("model enc(x: float32[B, T, 4]) -> y { y = x -> linear(4) }\n"
                   "model head(z: float32[B, 8]) -> y { y = z -> linear(2) }\n")
    assert main(["summary", str(two), "--dim", "T=16"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs at batch 1, T=16: 512" in out and "FLOPs at batch 1: 32" in out
    fixed = tmp_path / "fixed.arch"  # a fixed first dim is no "batch 1" (it counted 16)
    fixed.write_text("param B = none\nmodel m(x: float32[B, 4]) -> y { y = x -> linear(3) as l }\n")
    assert main(["summary", str(fixed), "-D", "B=16"]) == 0
    assert "FLOPs at the model's sizes: 384" in capsys.readouterr().out
    mask = tmp_path / "mask.arch"  # a formula first dim (2*B) whose B is given is no "batch 1" either
    mask.write_text("model m(x: float32[B, T, 4], m: float32[2*B, T, T]) -> y {\n"
                    "    y = (x -> linear(3) as fc) + sum(m)\n}\n")
    assert main(["summary", str(mask), "--dim", "B=4", "--dim", "T=3"]) == 0
    assert "FLOPs at B=4, T=3: 396" in capsys.readouterr().out


def test_summary_dim_sizes_formula_dims_like_fixed_ones(tmp_path, capsys):
    """After a strided conv L is `(L-1)//2+1`: --dim L=64 counted it as 1 (144 FLOPs against 4,608)."""
    body = "    y = x -> conv1d(4, 3, stride=2, padding=1) -> conv1d(4, 3, padding=1)\n}\n"
    (tmp_path / "s.arch").write_text("model m(x: float32[B, 2, L]) -> y {\n" + body)
    (tmp_path / "f.arch").write_text("model m(x: float32[B, 2, 64]) -> y {\n" + body)
    assert main(["summary", str(tmp_path / "s.arch"), "--dim", "L=64", "--json"]) == 0
    sized = json.loads(capsys.readouterr().out)["flops"]
    assert main(["summary", str(tmp_path / "f.arch"), "--json"]) == 0
    assert sized == json.loads(capsys.readouterr().out)["flops"] > 4000


def test_summary_checks_the_spec_at_the_dim_sizes(tmp_path, capsys):
    """--dim T=10 where the spec reshapes T into fours (or asserts T <= 8): a diagnostic at the line, as `run`
    gives; summary printed a table with FLOPs of 2.5 rows."""
    (tmp_path / "s.arch").write_text("model m(x: float32[B, T]) -> y {\n    assert is_symbolic(T) or T <= 16\n"
                                     "    y = x -> reshape([B, -1, 4])\n}\n")
    assert main(["summary", str(tmp_path / "s.arch"), "--dim", "T=12"]) == 0
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "s.arch"), "--dim", "T=10"]) == 1
    err = capsys.readouterr().err
    assert "s.arch:3:14: error: reshape: cannot reshape [B, 10]" in err and "checked at the sizes of --dim: T=10" in err
    assert main(["summary", str(tmp_path / "s.arch"), "--dim", "T=20", "--json"]) == 1
    assert "s.arch:2:5: error: assertion failed" in capsys.readouterr().err


def test_summary_dim_leaves_the_other_symbolic_dims_unsized_not_empty(tmp_path, capsys):
    """--dim B=2 beside an unsized H: the check of dims that must hold elements took H as 0 and refused the conv
    (review63); an unsized dim counts as 1, as before."""
    spec = tmp_path / "c.arch"
    spec.write_text("model m(x: float32[B, 3, H, W]) -> y {\n    y = x -> conv2d(8, 3) as c -> amax(dim=2)\n}\n")
    assert main(["summary", str(spec), "--dim", "B=2"]) == 0, capsys.readouterr().err


def test_summary_sizes_products_of_symbols_and_gemm(tmp_path, capsys):
    """[B*T, 64] counted as 1 row (only T given: B*T stayed symbolic), so a linear after reshape(x, [-1, 64])
    did 1/128 of the same linear before it; a gemm over a symbolic batch counted 0."""
    (tmp_path / "s.arch").write_text(
        "model m(x: float32[B, T, 64]) -> y {\n    a = x -> linear(64) as fc1\n"
        "    y = reshape(x, [-1, 64]) -> linear(64) as fc2\n}\n"
        "model g(x: float32[B, 64], w: float32[64, 32], c: float32[32]) -> y { y = gemm(x, w, c=c) }\n"
        "model w(x: float32[B, 16, 16]) -> y { y = reshape(x, [4 * B, 4, 16]) -> linear(8) as fc }\n")
    assert main(["summary", str(tmp_path / "s.arch"), "--model", "m", "--dim", "T=128", "--json"]) == 0
    fc1, fc2 = (r["flops"] for r in json.loads(capsys.readouterr().out)["layers"] if r["name"] in ("fc1", "fc2"))
    assert fc1 == fc2 == 2 * 64 * 64 * 128  # a linear's bias add is not counted
    assert main(["summary", str(tmp_path / "s.arch"), "--model", "g", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["flops"] == (2 * 64 + 1) * 32  # c's add, as MatMul + Add
    assert main(["summary", str(tmp_path / "s.arch"), "--model", "w", "--json"]) == 0  # 4*B at batch 1 is 4
    assert json.loads(capsys.readouterr().out)["flops"] == 2 * 16 * 8 * 4 * 4


def test_summary_counts_a_tied_weight_in_one_layer(summary_json):
    """The per-layer column counted a tied table in every layer that reads it, so it summed past the total."""
    rep = summary_json("model m(ids: int64[B, T]) -> y {\n    h = ids -> embedding(10, 6) as emb\n"
                       "    y = h @ ref(\"emb.weight\").T\n}\n")
    assert rep["params"] == 60 and sum(r["params"] for r in rep["layers"]) == 60


def test_summary_table(capsys):
    assert main(["summary", MLP]) == 0
    out = capsys.readouterr().out
    assert "fc1" in out and "200,960" in out and "203,530" in out


def test_summary_counts_round_into_the_next_unit():
    from archdsl.cli.commands import _fmt
    assert [_fmt(n) for n in (999, 1000, 999_994, 999_996, 999_996_000, 2_500_000_000_000)] == \
        ["999", "1.00K", "999.99K", "1.00M", "1.00G", "2.50T"]  # 999,996 was 1000.00K


def test_summary_warns_of_what_reaches_no_output_as_check_does(tmp_path, capsys):
    spec = tmp_path / "d.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    z = x -> linear(30) as dead\n    y = x -> relu\n}\n")
    for flags in ([], ["--json"]):
        assert main(["summary", str(spec), *flags]) == 0
        out = capsys.readouterr()
        assert "warning: 'dead' (linear) is computed but reaches no output" in out.err
        if flags:
            import json
            assert json.loads(out.out)["params"] == 150


def test_summary_counts_a_dim_that_comes_out_empty_as_no_work(tmp_path, capsys):
    """x[:, 5:] at --dim T=5 is empty (run gives [1, 0, 8]); its linear counted 64 FLOPs, as at T=6."""
    spec = tmp_path / "e.arch"
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    y = x[:, 5:] -> linear(8) as fc\n}\n")
    assert main(["summary", str(spec), "--dim", "T=5"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("FLOPs at batch 1, T=5: 0")
    assert main(["summary", str(spec), "--dim", "T=6"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("FLOPs at batch 1, T=6: 64")


def test_summary_sizes_an_empty_kv_cache_and_refuses_an_empty_image(tmp_path, capsys):
    """--dim P=0 (a KV cache's first step) was refused as 'N >= 1', with no other way to count those FLOPs
    (kvcache hunt); a conv over an H of 0 is the op's diagnostic, as run's."""
    spec = tmp_path / "kv.arch"
    spec.write_text("model m(q: float32[B, S, 8], past: float32[B, P, 8]) -> y {\n    k = concat([past, q], axis=1)\n"
                    "    y = softmax(causal_mask(q @ k.T)) @ k\n}\n")
    flops = []
    for p in ("0", "2"):
        assert main(["summary", str(spec), "--dim", f"P={p}", "--dim", "S=4"]) == 0
        flops.append(int(capsys.readouterr().out.rstrip().rsplit(": ", 1)[1].replace(",", "")))
    assert 0 < flops[0] < flops[1], flops
    spec.write_text("model m(x: float32[B, 3, H, 8]) -> y {\n    y = x -> conv2d(3, 4, 3, padding=1)\n}\n")
    assert main(["summary", str(spec), "--dim", "H=0"]) == 1
    assert "conv2d: the input's length is 0" in capsys.readouterr().err


def test_summary_rows_add_up_to_the_total(summary_json):
    """A parameter no layer reads (here an output) was in the total and in no row."""
    rep = summary_json("model m(x: float32[B, 4]) -> (y, p) {\n    y = x -> linear(3) as fc\n"
                       "    p = parameter([5], init=\"ones\") as pp\n}\n")
    assert sum(r["params"] for r in rep["layers"]) == rep["params"] == 20
    assert rep["layers"][-1] == {"name": "pp", "op": "parameter", "flops": 0, "params": 5, "shape": [[5]]}


def test_a_free_parameter_is_a_row_under_its_own_name(summary_json):
    """DETR's query embedding, a parameter(...) read by an unsqueeze, was counted in the row 'unsqueeze_0': its
    name, which torch's named_parameters() lists, was nowhere in the table. A layer's own stay in its row."""
    rep = summary_json("model m(mem: float32[B, S, 16]) -> q {\n"
                       "    qe = parameter([5, 16], init=\"normal\") as \"query_embed.weight\"\n"
                       "    q = expand(unsqueeze(qe, 0), [shape(mem)[0], 5, 16], like=mem) -> linear(16) as fc\n}\n")
    rows = [(r["name"], r["op"], r["params"]) for r in rep["layers"]]
    assert rows[0] == ("query_embed.weight", "parameter", 80) and ("unsqueeze_0", "unsqueeze", 0) in rows
    assert ("fc", "linear", 16 * 16 + 16) in rows and sum(r[2] for r in rows) == rep["params"]


def test_summary_prints_shapes_and_names_that_look_like_markup(tmp_path, capsys):
    """rich read `[batch, seq, 8]` and a layer "experts[red]" as style tags: the shape column was empty."""
    spec = tmp_path / "m.arch"
    spec.write_text('model m(x: float32[batch, seq, 16]) -> y {\n    y = x -> linear(8) as "experts[red]"\n}\n')
    assert main(["summary", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "[batch, seq, 8]" in out and "experts[red]" in out


def test_long_layer_names_wrap_instead_of_being_cut_alike(tmp_path, capsys):
    """rich cut names past the column with an ellipsis: two layers whose names differ at the end read the same."""
    stem = "stage_" + "very_long_name_" * 8
    spec = tmp_path / "long.arch"
    spec.write_text(f'model m(x: float32[B, 64]) -> y {{\n    y = x -> linear(32) as "{stem}.one" -> relu -> '
                    f'linear(64) as "{stem}.two"\n}}\n')
    assert main(["summary", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    rows = [line for line in out.splitlines() if "│" in line]
    cells = "".join(line.split("│")[1].strip() for line in rows)
    assert f"{stem}.one" in cells and f"{stem}.two" in cells


def test_a_summary_of_thousands_of_layers_is_plain_text_aligned_as_the_table(tmp_path, capsys):
    """rich laid out GPT-2 XL's 2,000 rows at 1.5-2 ms each, longer than the compile (scaling2 hunt): past
    1,000 rows the table is plain text, names left and numbers right, as the rich one aligns them."""
    from archdsl.cli import table
    spec = tmp_path / "deep.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    h = x\n    repeat 1100 {\n        h = h -> linear(4)\n"
                    "    }\n    y = h\n}\n")
    assert main(["summary", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("linear_")]
    assert len(rows) == 1100 and not any("│" in line for line in out)
    assert len({len(line) for line in rows}) == 1 and rows[0].split()[-2:] == ["20", "32"] and rows[0].endswith(" 32")
    assert table.PLAIN_PAST == 1000


def test_a_dim_empty_only_at_an_unsized_symbols_stand_in_is_not_no_work(tmp_path, capsys):
    """x[:, 1:] of [B, T, 4] with T not given: T-1 at the stand-in T=1 is 0, which is no size the model has
    (said, and counted as 1), not an empty layer of 0 FLOPs (S03); at --dim T=1 it is empty."""
    spec = tmp_path / "e.arch"
    spec.write_text("model m(x: float32[B, T, 4]) -> y {\n    y = x[:, 1:] -> linear(8) as fc\n}\n")
    assert main(["summary", str(spec), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["flops"] == 64 and rep["flops_unfit"] == ["getitem_0", "fc"]
    assert main(["summary", str(spec), "--dim", "T=1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["flops"] == 0


def test_a_free_parameter_named_like_its_reader_is_still_its_own_row(summary_json):
    """'proj_w' read by the matmul 'proj' is no parameter of that layer (its own are 'proj.*'): it was counted in
    the row 'proj' (S07)."""
    rep = summary_json("model m(x: float32[B, 4]) -> y {\n"
                       "    w = parameter([4, 4], init=\"normal\") as \"proj_w\"\n    y = matmul(x, w) as proj\n}\n")
    rows = [(r["name"], r["op"], r["params"]) for r in rep["layers"]]
    assert rows == [("proj_w", "parameter", 16), ("proj", "matmul", 0)]
