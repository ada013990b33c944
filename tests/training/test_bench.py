"""python -m archdsl.training.bench: one train step on onnxruntime against torch eager."""

from __future__ import annotations

import pytest

from archdsl.training.bench import main


def test_bench_prints_a_row_per_model(capsys):
    pytest.importorskip("torch")
    assert main(["--models", "mlp", "--repeat", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "one train step (adamw), CPUExecutionProvider vs torch eager" in out
    row = next(line for line in out.splitlines() if line.startswith("mlp "))
    assert len(row.split()) == 8 and row.split()[1] == "2" and float(row.split()[-1]) > 0


def test_bench_times_levels_side_by_side(capsys):
    """--levels 1,2: a row per level of one model, timed in turn against one torch step."""
    pytest.importorskip("torch")
    assert main(["--models", "vit", "--levels", "1,2", "--repeat", "1", "--threads", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("vit ")]
    assert [r[1] for r in rows] == ["1", "2"]
    assert rows[0][6] == rows[1][6]  # one torch time
    with pytest.raises(SystemExit) as e:
        main(["--levels", "3"])
    assert e.value.code == 2 and "levels among 0, 1, 2" in capsys.readouterr().err


def test_bench_on_cuda_without_it_is_an_error_not_a_traceback(capsys):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    pytest.importorskip("torch")
    assert main(["--models", "mlp", "--provider", "cuda", "--repeat", "1"]) == 1
    assert "error: --provider cuda: CUDAExecutionProvider is not available" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "257"])
def test_thread_counts_both_sides_can_take(count, capsys):
    """--threads 0 passed argparse and then torch.set_num_threads(0) raised a traceback."""
    with pytest.raises(SystemExit) as e:
        main(["--threads", count])
    assert e.value.code == 2 and "must be 1 to 256" in capsys.readouterr().err


def test_a_repeat_below_one_is_a_usage_error(capsys):
    """--repeat 0 timed nothing and then failed on the median of no steps (a traceback)."""
    with pytest.raises(SystemExit) as e:
        main(["--models", "mlp", "--repeat", "0"])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_without_torch_it_says_so(capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert main(["--models", "mlp", "--repeat", "1"]) == 1
    assert "compares with torch eager, which is not importable" in capsys.readouterr().err


def test_a_model_named_twice_is_timed_once(capsys, monkeypatch):
    from archdsl.training import bench
    seen = []
    monkeypatch.setattr(bench, "bench_one", lambda name, *a: seen.append(name) or [
        {"model": name, "level": 2, "params": 1, "batch": 1, "nodes": 1, "ort_ms": 1.0, "torch_ms": 1.0,
         "ratio": 1.0, "provider": "CPUExecutionProvider"}])
    pytest.importorskip("torch")
    assert main(["--models", "mlp", "mlp"]) == 0
    assert seen == ["mlp"]
