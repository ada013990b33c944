"""The bench where its inputs are odd (bench2 hunt): a reference whose activations fade to its biases, a torch
that raises on import, a torch export onnxruntime cannot load, an archdsl checkout in the working directory,
flags as a shell gives them."""

from __future__ import annotations

import builtins
import os
import sys
import tempfile
from pathlib import Path

import pytest

from archdsl.bench import main, run

from .test_bench import MACHINE, QUICK, _stub_models


def test_the_agreement_calibrates_batchnorm_so_the_convs_show():
    """torch's default BatchNorm statistics are the identity: EfficientNet-B0's activations faded to ~1e-11 by its
    last stage and its output was its classifier's bias alone, an agreement of 0 whatever the convs computed."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    layers = []
    for _ in range(6):
        layers += [nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, momentum=0.1), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(0.02)  # each block shrinks what it reads, as a default-init deep net does
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        faded = (net.eval()(x) - net[-1].bias).abs().max().item()
    run._calibrate_batchnorm(net, [("x", (1, 4, 8, 8), "float32")], {})
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not net.training and all(m.momentum == 0.1 for m in norms)
    assert all(not torch.allclose(m.running_var, torch.ones(4)) for m in norms)
    with torch.no_grad():
        lively = (net(x) - net[-1].bias).abs().max().item()
    assert faded < 1e-6 < 1e-2 < lively


def test_a_torch_export_onnxruntime_cannot_load_leaves_the_others_timed():
    """One file of a custom op's export failed the whole row's timing: archdsl's own -O0/-O2 read `error`."""
    class Session:
        def run(self, outputs, feeds):
            return []

    def make(label):
        if label == "legacy":
            raise RuntimeError("mydomain:Weird(-1) is not a registered function/op")
        return Session(), {}
    out = run._timed(make, ["O0", "O2", "legacy"], 2, "latency_ms", "ratio", "latency_error")
    assert set(out["latency_ms"]) == {"O0", "O2"} and "O0" in out["ratio"]
    assert out["latency_error"].startswith("legacy: ") and "Weird" in out["latency_error"]
    assert set(run._timed(lambda label: make("legacy"), ["a"], 1, "ms", "r", "err")) == {"err"}


def test_a_torch_that_raises_on_import_is_said_not_a_crash(monkeypatch):
    """A broken install (a missing shared library) raises OSError, not ImportError: a traceback, --no-torch too."""
    real = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torch":
            raise OSError("libtorch_cpu.so: cannot open shared object file")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", broken)
    assert run._have_torch() == "torch does not import (OSError: libtorch_cpu.so: cannot open shared object file)"
    assert run.machine()["torch"] == "does not import (OSError)"
    assert run.machine(skip_torch=True)["torch"] == "not used (--no-torch)"


def test_a_child_measures_the_archdsl_its_parent_runs(tmp_path, monkeypatch):
    """`-m` put the working directory first on the path: an archdsl checkout there (another version) was what the
    fresh-process compiles measured."""
    fake = tmp_path / "archdsl" / "bench"
    fake.mkdir(parents=True)
    (tmp_path / "archdsl" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "child.py").write_text('print(\'BENCH-RESULT {"seconds": 123.0, "nodes": 7, "peak_mb": 1}\')\n')
    monkeypatch.chdir(tmp_path)
    r = run._child(["mlp", "2", "16", str(tmp_path / "mlp.onnx")])
    assert r.get("seconds") != 123.0 and r["nodes"] == 4, r
    assert Path(sys.modules["archdsl"].__file__).parent != tmp_path / "archdsl"
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the child's folder is an empty one of its own, not the shared
    monkeypatch.setattr(tempfile, "tempdir", None)  # temp folder, where anything planted was imported (review77)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = run._child(["mlp", "2", "16", str(tmp_path / "mlp.onnx")])
    assert r.get("seconds") != 123.0 and r["nodes"] == 4, r


def test_a_childs_path_reads_the_parents_relative_entries_from_the_parents_folder(tmp_path, monkeypatch):
    """PYTHONPATH=refs (relative) found a reference module in the parent, and in the child, run in its own folder,
    pointed elsewhere (review77)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "refs" + os.pathsep)
    parts = run._same_archdsl()["PYTHONPATH"].split(os.pathsep)
    assert parts[1:] == [str(tmp_path / "refs"), str(tmp_path), str(tmp_path)]


def test_a_cuda_row_keeps_what_was_timed_beside_a_side_that_failed(capsys):
    """One torch export that failed on CUDA turned the whole row to `error`, the -O2 figures measured with it."""
    from archdsl.bench.report import render
    row = {"model": "M", "cuda_ms": {"O2": 1.25}, "cuda_error": "legacy: RuntimeError: no CUDA kernel",
           "cuda_ratio": {}, "cuda_ratio_ci": {}}
    render({"machine": MACHINE, "threads": 2, "rounds": 3, "torch": "yes", "scaling": [], "models": [row]}, ["legacy"],
           markdown=True)
    out = capsys.readouterr().out
    assert "| M | 1.25 / error | - |" in out and "M, CUDA latency: legacy: RuntimeError" in out


def test_flags_as_a_shell_gives_them(monkeypatch, capsys, tmp_path):
    """"resnet50, gpt2_small" (a space after the comma) was "unknown model  gpt2_small"; --scaling "" ran the whole
    default scaling where " " skipped it; --json out.json/ overwrote out.json."""
    seen = _stub_models(monkeypatch)
    assert main(["--models", "resnet50, gpt2_small", "--exporters", "legacy, dynamo", *QUICK]) == 0
    assert [(k, e) for k, e, _ in seen] == [("resnet50", ["legacy", "dynamo"]), ("gpt2_small", ["legacy", "dynamo"])]
    monkeypatch.setattr(run, "bench_scaling", lambda sizes, work: pytest.fail(f"scaled {sizes}"))
    assert main(["--models", "resnet50", "--scaling", "", "--no-choices", "--no-cuda", "--rounds", "1"]) == 0
    assert main(["--models", "resnet50", *QUICK, "--json", str(tmp_path / "out.json") + "/"]) == 2
    assert "a folder's name; give a file name" in capsys.readouterr().err
