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
    assert len(row.split()) == 7 and float(row.split()[-1]) > 0


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
