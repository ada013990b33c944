"""Pass manager, levels, --disable-pass, --report, derived parameters through the driver, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from archdsl import check_source, driver
from archdsl.cli import main
from archdsl.diagnostics import ArchError
from archdsl.passes import PassContext, PassError, all_passes, manager, optimize, passes_for
from archdsl.passes.derived import DerivedSpec
from archdsl.runtime import session

CONV_BN = """
model m(x: float32[B, 3, 8, 8]) -> y {
    y = x -> conv2d(4, 3, padding=1) as conv -> batchnorm as bn -> relu -> dropout(0.2)
}"""


def test_levels_are_lists_of_passes():
    assert passes_for(0) == []
    o1, o2 = passes_for(1), passes_for(2)
    assert o1 and all(p.level == 1 for p in o1)
    assert set(o1) < set(o2)
    assert "fold_batchnorm" not in {p.name for p in passes_for(2, inference=False)}
    assert "fold_batchnorm" not in {p.name for p in passes_for(2, disabled=("fold_batchnorm",))}
    # a train step's forward graph, before autodiff: the passes that keep every parameter as written
    assert [p.name for p in passes_for(2, inference=False, train_forward=True)] == ["narrow_rows"]
    assert passes_for(1, inference=False, train_forward=True) == []
    assert passes_for(2, disabled=("narrow_rows",), train_forward=True) == []
    ran = {p.name for p in all_passes() if p.in_train_steps}
    assert ran == {p.name for p in o1} | {"narrow_rows"}


def test_unknown_pass_is_a_diagnostic_with_a_suggestion():
    with pytest.raises(ArchError, match="did you mean 'fold_batchnorm'"):
        passes_for(2, disabled=("fold_batchnom",))


def test_a_failing_pass_is_named(monkeypatch):
    def boom(g, ctx):
        raise KeyError("oops")
    p = manager._PASSES["cse"]
    monkeypatch.setitem(manager._PASSES, "cse", manager.Pass("cse", boom, p.level, p.doc))
    with pytest.raises(PassError, match="pass 'cse' failed: KeyError"):
        optimize(check_source(CONV_BN), 2)


def test_training_graph_keeps_dropout_and_batchnorm():
    g = check_source(CONV_BN)
    optimize(g, 2, ctx=PassContext(inference=False))
    assert [n.op for n in g.nodes] == ["conv2d", "batchnorm", "relu", "dropout"]
    g = check_source(CONV_BN)
    stats = optimize(g, 2)
    assert [n.op for n in g.nodes] == ["conv2d", "relu"]
    assert stats[-1].nodes_after == 2 and not any(s.changed for s in stats if s.round == stats[-1].round)


def test_folded_batchnorm_uses_loaded_weights(tmp_path):
    rng = np.random.default_rng(0)
    g = check_source(CONV_BN)
    w = {k: rng.uniform(0.5, 1.5, v.type.shape).astype(np.float32) for k, v in g.params.items()}
    path = tmp_path / "w.npz"
    np.savez(path, **w)
    x = {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)}
    outs = []
    for level in (0, 2):
        m = driver.compile_source(CONV_BN, weights=str(path), opt_level=level)
        onnx.checker.check_model(m, full_check=True)
        outs.append(session(m, "cpu", 1).run(None, x)[0])
        ops = [n.op_type for n in m.graph.node]
        assert ("BatchNormalization" in ops) == (level == 0)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    ref = np.maximum(outs[0], 0)
    assert np.array_equal(ref, outs[0])


def test_counting_never_materializes_derived_weights(monkeypatch):
    def no(self, resolve):
        raise AssertionError("materialized")
    monkeypatch.setattr(DerivedSpec, "derive", no)
    c = driver.build(driver.load(text=CONV_BN), None, driver.CompileOptions(with_weights=False))
    assert c.declared_params == 3 * 4 * 9 + 4 + 4 + 4
    assert not c.model.graph.initializer or all("conv" not in i.name for i in c.model.graph.initializer)


def test_cli_levels_report_and_disable(tmp_path, capsys):
    spec = tmp_path / "m.arch"
    spec.write_text(CONV_BN)
    out = tmp_path / "m.onnx"
    assert main(["build", str(spec), "-o", str(out), "-O0"]) == 0
    assert any(n.op_type == "BatchNormalization" for n in onnx.load(out).graph.node)
    assert main(["build", str(spec), "-o", str(out), "--report"]) == 0
    text = capsys.readouterr().out
    assert "fold_batchnorm" in text and "nodes before" in text
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(out).graph.node)
    assert main(["build", str(spec), "-o", str(out), "--disable-pass", "fold_batchnorm"]) == 0
    assert any(n.op_type == "BatchNormalization" for n in onnx.load(out).graph.node)
    assert main(["build", str(spec), "--disable-pass", "nope"]) == 2  # a usage error
    assert "unknown pass 'nope'" in capsys.readouterr().err
    assert main(["build", str(spec), "--emit", "ir", "-O2"]) == 0
    assert "batchnorm" not in capsys.readouterr().out
    assert main(["passes"]) == 0
    listing = capsys.readouterr().out
    assert all(p.name in listing for p in all_passes())
    rows = [line for line in listing.splitlines() if line.split()[0] in {p.name for p in all_passes()}]
    assert len({line.index(" -O") for line in rows}) == 1  # the level column lines up, whatever the longest name
    marked = {line.split()[0] for line in rows if "(inference)" in line}  # what a train step never runs
    assert marked == {p.name for p in all_passes() if not p.in_train_steps}
    assert "pretranspose_linear" in marked and "narrow_rows" not in marked and "cse" not in marked


def test_report_rows_are_the_passes_that_changed_with_their_weights():
    """The conv's 108 + 4 weights stay; BatchNorm's 4 x 4 (two parameters, two statistics) go into them."""
    from archdsl.passes.report import report_rows
    stats = optimize(check_source(CONV_BN), 2)
    rows = report_rows(stats)
    assert [r[1] for r in rows] == ["remove_noops", "fold_batchnorm", "total"]  # not the passes that kept it
    assert [r[2:6] for r in rows[1:]] == [("3", "2", "128", "112"), ("4", "2", "128", "112")]


def test_summary_counts_the_model_as_written(capsys):
    from pathlib import Path
    spec = Path(__file__).resolve().parents[2] / "specs" / "resnet.arch"
    assert main(["summary", str(spec), "--json", "-O2", "--report"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["params"] == 25_557_032
    assert "fold_batchnorm" in cap.err
    total = next(line for line in cap.err.splitlines() if "total" in line)
    # the report counts weights: parameters and BatchNorm's running statistics (53,120 buffer elements)
    assert "25,610,152" in total and "weights before" in cap.err


def test_cse_keeps_nodes_whose_attributes_differ_only_in_the_sign_of_zero():
    """pad(value=0.0) and pad(value=-0.0) compare equal, yet 1 / each differs at the padding (inf vs -inf)."""
    import archdsl
    from archdsl import runtime
    src = ("model m(x: float32[2, 3]) -> (a, b) {\n    a = 1.0 / pad(x, [1, 1], value=0.0)\n"
           "    b = 1.0 / pad(x, [1, 1], value=-0.0)\n}\n")
    for level in (0, 1, 2):
        model = archdsl.compile_source(src, opt_level=level)
        a, b = runtime.session(model).run(None, {"x": np.ones((2, 3), np.float32)})
        assert a[0, 0] == np.inf and b[0, 0] == -np.inf, level


def test_cse_merges_nodes_whose_attributes_are_both_nan():
    """NaN != NaN, yet two pads by NaN are the same node: CSE keys NaN apart so that they merge."""
    import archdsl
    src = ("model m(x: float32[2, 3]) -> (a, b) {\n    a = pad(x, [1, 1], value=float(\"nan\")) * 2.0\n"
           "    b = pad(x, [1, 1], value=float(\"nan\")) * 2.0\n}\n")
    ops = [n.op_type for n in archdsl.compile_source(src, opt_level=1).graph.node]
    assert ops.count("Pad") == 1 and ops.count("Mul") == 1, ops


def test_report_counts_flops_as_written_and_optimized(tmp_path, capsys):
    """narrow_rows adds nodes (the narrowing) while it computes less: the report shows both counts."""
    from archdsl import check_source
    from archdsl.summary import summarize
    text = "model m(x: float32[B, 5, 8]) -> y {\n    y = (x -> linear(16) as fc -> gelu)[:, 0]\n}\n"
    spec = tmp_path / "m.arch"
    spec.write_text(text)
    written = summarize(check_source(text))["flops"]

    def reported(*flags) -> tuple[int, int]:
        assert main(["build", str(spec), "-o", str(tmp_path / "m.onnx"), "--report", *flags]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("FLOPs"))
        nums = [int(w.replace(",", "")) for w in line.split(":")[1].split() if w[0].isdigit()]
        return nums[0], nums[1]

    keep_linear = ("--disable-pass", "pretranspose_linear")  # its MatMul + Add also counts the bias adds
    assert reported(*keep_linear) == (written, written // 5)  # the linear and gelu on 1 of 5 positions
    assert reported(*keep_linear, "--disable-pass", "narrow_rows") == (written, written)
    assert reported()[1] < written // 4
    assert main(["summary", str(spec), "--json", "--report", *keep_linear]) == 0
    assert f"{written:,} as written, {written // 5:,} optimized" in capsys.readouterr().err
    assert main(["run", str(spec), "--report", *keep_linear]) == 0
    assert f"{written:,} as written, {written // 5:,} optimized" in capsys.readouterr().out


def test_report_names_the_model_and_the_dims(tmp_path, capsys):
    spec = tmp_path / "two.arch"
    spec.write_text("model a(x: float32[B, T, 8]) -> y {\n    y = (x -> linear(4) as fc)[:, 0]\n}\n"
                    "model b(x: float32[B, 8]) -> y {\n    y = x -> relu\n}\n")
    assert main(["summary", str(spec), "--json", "--report", "--dim", "T=16"]) == 0
    err = capsys.readouterr().err
    assert "optimization passes of a" in err and "optimization passes of b" in err
    assert "FLOPs of a (batch 1, T=16): 1,024 as written" in err  # 2 * 8 * 4 on 16 positions
    assert "FLOPs of b (batch 1): 8 as written, 8 optimized" in err  # the summary table's words for its sizes
    assert main(["build", str(spec), "--model", "a", "--train", "--report", "-o", str(tmp_path / "a.onnx")]) == 2
    assert "a train step runs only the -O1 cleanups" in capsys.readouterr().err


def test_report_of_a_model_of_fixed_sizes_says_so(tmp_path, capsys):
    """--report said "(batch 1, every symbolic dim 1)" for a model of batch 2 and no symbolic dim, whose count
    it was not: it now says what summary's table says."""
    spec = tmp_path / "fixed.arch"
    spec.write_text("model m(x: float32[2, 4]) -> y {\n    y = x -> linear(8)\n}\n")
    assert main(["summary", str(spec), "--report"]) == 0
    assert "FLOPs (the model's sizes): 128 as written, 128 optimized" in capsys.readouterr().out
