"""The terminal tables (archdsl/cli/table.py): which columns are text, left-aligned, and which numbers, right;
rich up to PLAIN_PAST rows, plain text past it (mutnew3 hunt)."""

from __future__ import annotations

import pytest

from archdsl.cli import main

TWO = ("model m(x: float32[B, 8, 16]) -> y {\n    h = x -> linear(16) as fc1 -> relu\n"
       "    y = h -> linear(4) as fc2\n}\n")


@pytest.mark.parametrize("plain", [False, True])
def test_the_summarys_output_shape_is_left_aligned_as_the_layer_names(tmp_path, capsys, monkeypatch, plain):
    """print_table's default of three text columns: the summary's layer, op and output shape (only the report
    gives 2)."""
    from archdsl.cli import table
    if plain:
        monkeypatch.setattr(table, "PLAIN_PAST", -1)
    spec = tmp_path / "two.arch"
    spec.write_text(TWO)
    assert main(["summary", str(spec)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if "output shape" in line)
    row = next(line for line in lines if "fc2" in line)
    assert row[head.index("output shape"):].startswith("[B, 8, 4]"), "\n".join(lines)


@pytest.mark.parametrize("plain", [False, True])
def test_the_pass_tables_pass_names_are_left_aligned(tmp_path, capsys, monkeypatch, plain):
    """The report's two text columns are round and pass: the pass names start under the header 'pass'."""
    from archdsl.cli import table
    if plain:
        monkeypatch.setattr(table, "PLAIN_PAST", -1)
    spec = tmp_path / "two.arch"
    spec.write_text(TWO)
    assert main(["build", str(spec), "--report", "-o", str(tmp_path / "r.onnx")]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if "IR nodes before" in line)
    total = next(line for line in lines if "total" in line)
    assert total.index("total") == head.index("pass"), "\n".join(lines)


def test_a_table_of_exactly_plain_past_rows_is_still_rich_and_one_more_is_plain(capsys, monkeypatch):
    from archdsl.cli import table
    monkeypatch.setattr(table, "PLAIN_PAST", 2)
    rows = [("a", "b", "c", "1", "2"), ("d", "e", "f", "3", "4"), ("g", "h", "i", "5", "6")]
    table.print_table("t", ("l", "o", "s", "p", "f"), rows[:2])
    assert "│" in capsys.readouterr().out
    table.print_table("t", ("l", "o", "s", "p", "f"), rows)
    assert "│" not in capsys.readouterr().out


def test_plain_rows_with_an_empty_last_cell_have_no_trailing_blanks(capsys, monkeypatch):
    from archdsl.cli import table
    monkeypatch.setattr(table, "PLAIN_PAST", -1)
    table.print_table("t", ("layer", "op", "shape", "params", "FLOPs"), [("a", "relu", "[2]", "", ""),
                                                                         ("bb", "linear", "[4]", "20", "160")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line == line.rstrip() for line in lines), lines
