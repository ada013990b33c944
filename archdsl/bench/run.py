"""`archdsl bench` / `python -m archdsl.bench`: compile time, node counts, onnxruntime latency and compile
memory of archdsl against torch.onnx.export (both exporters) on five architectures, and compile time
against graph size on a generated deep MLP. Without torch it reports archdsl's own figures."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ..cli.args import some_threads
from ..cli.signals import interruptible, stdout_closed
from ..diagnostics import ArchError
from ..files import atomic_write
from ..interrupts import deferred_signals
from ..runtime import MAX_THREADS
from .latency import alternate_orders, feeds_for, make_session, median_ratio, ratio_interval
from .models import CUDA_VARIANTS, MODELS, BenchModel, example_inputs, reference_module, torch_module
from .report import error_text

__all__ = ["main"]

EXPORTERS = ("dynamo", "legacy")


def _child(args: list[str], timeout: float = 1800) -> dict:
    """One measurement in a process of its own. A stop (Ctrl-C, SIGTERM) that comes while the child starts is
    held and raised once `p` names it, so the child is killed with it: one inside Popen's own Python code left
    the child building into the temp folder the parent then removed (and recreated it). A signal mask did not
    hold it: the kernel gives the signal to another thread (OpenBLAS's) and Python still raises in the main one."""
    import shutil
    import tempfile
    cmd = [sys.executable, "-m", "archdsl.bench.child", *args]
    home = tempfile.mkdtemp(prefix="archdsl-bench-child-")  # empty: `-m` puts it first on the child's path
    try:
        return _run_child(cmd, home, timeout)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run_child(cmd: list[str], home: str, timeout: float) -> dict:
    p = None
    try:
        with deferred_signals():
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home,
                                 env=_same_archdsl())
    except BaseException:  # a stop that came while it started
        if p is not None:
            p.kill()
            p.wait()
        raise
    with p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return {"error": f"timed out after {timeout:.0f}s"}
        except BaseException:  # a stop: the child goes with it (Popen's exit would wait for it to finish)
            p.kill()
            raise
    for line in reversed(out.splitlines()):
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    tail = (err or out).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {p.returncode}: {tail[0][:200]}"}


def _same_archdsl() -> dict:
    """The env of a child that imports the archdsl this process runs: `-m` puts the working directory first on
    the path, and an archdsl checkout there (another version) was measured instead (bench2 hunt). The child runs
    in an empty folder of its own (in the shared temp folder anything planted there was imported: review77), with
    this package's parent first on PYTHONPATH, the parent's entries made absolute (a relative one is read from
    the child's folder), and the working directory last (where $ARCHDSL_TORCH_MODELS's module may lie)."""
    given = os.environ.get("PYTHONPATH")
    entries = [os.path.abspath(e or os.curdir) for e in given.split(os.pathsep)] if given is not None else []
    parts = [str(Path(__file__).resolve().parents[2]), *entries, os.getcwd()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(parts)}


def _have_torch() -> str | None:
    """None when torch and the reference modules are importable, else why not."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed"
    except Exception as e:  # noqa: BLE001 - a broken install (a missing shared library: OSError) crashed the bench
        return f"torch does not import ({type(e).__name__}: {e})"
    try:
        reference_module()
    except Exception as e:  # noqa: BLE001 - a missing module, or one that fails to import (a SyntaxError)
        return f"the torch reference modules are not importable ({type(e).__name__}: {e})"
    return None


def machine(skip_torch: bool = False) -> dict:
    import onnx
    import onnxruntime as ort
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 ** 2:.0f} GiB"
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "onnx": onnx.__version__, "onnxruntime": ort.__version__,
            "providers": ",".join(ort.get_available_providers())}
    if skip_torch:
        info["torch"] = "not used (--no-torch)"
        return info
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    except Exception as e:  # noqa: BLE001 - a broken install: said, not a crash (bench2 hunt)
        info["torch"] = f"does not import ({type(e).__name__})"
    return info


def _agreement(m: BenchModel, path_o2_weights: Path, opset: int | None = None) -> str:
    """max |archdsl - torch eager| with torch's weights loaded by name into archdsl (a wrong reference or a
    wrong compile both show here)."""
    import numpy as np
    import torch

    from .. import driver
    from ..lower import save_weights
    module = torch_module(m)
    _calibrate_batchnorm(module, example_inputs(m), m.int_high)
    g = driver.check_file(m.path, defines=m.defines)
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    weights = {}
    for name, v in g.params.items():
        if name not in sd:
            return f"n/a ({name} not in state_dict)"
        a = sd[name]
        if tuple(a.shape) != tuple(v.type.shape) and a.ndim == 2 and tuple(a.shape[::-1]) == tuple(v.type.shape):
            a = a.T
        weights[name] = np.ascontiguousarray(a)
    save_weights(path_o2_weights, weights)
    model = driver.compile_file(m.path, defines=m.defines, weights=str(path_o2_weights), opset=opset)
    sess = make_session(model.SerializeToString(), 2)
    ins = example_inputs(m)
    feeds = feeds_for(sess, ins, m.int_high, seed=7)
    ours = sess.run(None, feeds)
    with torch.no_grad():
        ref = module(*[torch.from_numpy(feeds[x.name]) for x in sess.get_inputs()])
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    diffs = [float(np.abs(o - r.numpy()).max()) for o, r in zip(ours, ref)]
    return f"{max(diffs):.1e}"


def _calibrate_batchnorm(module, inputs: list, int_high: dict) -> None:
    """BatchNorm statistics from one train-mode pass (momentum 1) over a random input: torch's default ones are
    the identity, under which EfficientNet-B0's activations fade to ~1e-11 by its last stage and its output is
    its classifier's bias alone, so the agreement read 0 whatever the convs computed (bench2 hunt); and the
    folding of non-trivial statistics is then checked too."""
    import numpy as np
    import torch
    norms = [n for n in module.modules() if isinstance(n, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    rng = np.random.default_rng(3)
    args = [torch.from_numpy(rng.integers(0, int_high.get(name, 2), shape) if dt == "int64" else
                             rng.standard_normal(shape).astype(np.float32)) for name, shape, dt in inputs]
    kept = [n.momentum for n in norms]
    for n in norms:
        n.momentum = 1.0
    module.train()
    with torch.no_grad():
        module(*args)
    for n, k in zip(norms, kept):
        n.momentum = k
    module.eval()


def bench_model(m: BenchModel, work: Path, opts, torch_reason: str | None) -> dict:
    row: dict = {"model": m.title}
    files = {}
    opset = [str(opts.opset)] if opts.opset else []
    jobs = {f"archdsl_O{level}": ["archdsl", m.key, str(level), str(work / f"{m.key}_O{level}.onnx"), *opset]
            for level in (0, 2)}
    jobs["archdsl_graph"] = ["archdsl-graph", m.key, "2", str(work / f"{m.key}_graph.onnx"), *opset]
    jobs["archdsl_given"] = ["archdsl-given", m.key, "2", str(work / f"{m.key}_given.onnx"), *opset]
    for ex in [] if torch_reason else opts.exporters:
        jobs[f"torch_{ex}"] = ["torch", m.key, ex, str(work / f"{m.key}_torch_{ex}.onnx")]
    runs: dict[str, list[dict]] = {k: [] for k in jobs}
    for _ in range(opts.compile_runs):  # alternated, so that a slow spell of the machine hits every side
        for key, args in jobs.items():
            _remove_outputs(Path(args[3]))
            runs[key].append(_child(args))
            if key == "archdsl_O2" and "error" not in runs[key][-1]:  # the bytes of that file, written alone
                size, floor = sum(f.stat().st_size for f in work.glob(f"{m.key}_O2.onnx*")), work / f"{m.key}_floor.bin"
                _remove_outputs(floor)
                runs.setdefault("write_floor", []).append(_child(["write", str(size), str(floor)]))
    for key, rs in runs.items():
        row[key] = median_run(rs)
    for level in (0, 2):
        if "error" not in row[f"archdsl_O{level}"]:
            files[f"O{level}"] = Path(jobs[f"archdsl_O{level}"][3])
    for ex in [] if torch_reason else opts.exporters:
        if "error" not in row[f"torch_{ex}"]:
            files[ex] = Path(jobs[f"torch_{ex}"][3])
    if files and opts.rounds > 0:
        ins = example_inputs(m)

        def make(label: str, provider: str = "cpu"):
            sess = make_session(str(files[label]), opts.threads, provider)
            return sess, feeds_for(sess, ins, m.int_high)
        row.update(_timed(make, list(files), opts.rounds, "latency_ms", "ratio", "latency_error"))
        if opts.cuda:  # a CUDA failure is reported in the CUDA table; the CPU figures stand
            variants = {}
            try:
                variants = cuda_variants(m, opts.opset, work, row["archdsl_O2"].get("nodes")) if "O2" in files else {}
            except Exception as e:  # noqa: BLE001 - a note; the default build is still timed
                row["cuda_variant_error"] = error_text(e)
            files.update(variants)
            labels = (["O2"] if "O2" in files else []) + list(variants) + \
                [k for k in files if k not in ("O0", "O2") and k not in variants]  # torch's, where -O2 failed too
            if labels:  # none where -O2 failed and torch is not there
                row.update(_timed(lambda k: make(k, "cuda"), labels, opts.rounds, "cuda_ms", "cuda_ratio",
                                  "cuda_error", variants=list(variants)))
    if not torch_reason and opts.check_outputs:
        try:
            row["max_abs_diff"] = _agreement(m, work / f"{m.key}_weights.npz", opts.opset)
        except Exception as e:  # noqa: BLE001 - a missing reference is reported, not fatal
            row["max_abs_diff"] = f"n/a ({type(e).__name__})"
    for f in work.glob(f"{m.key}_*"):
        f.unlink()
    return row


def median_run(runs: list[dict]) -> dict:
    """The run of median time (the lower of the two middle ones for an even count), its peak memory and
    node count with it, and every run's seconds; the first failure, if any run failed."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "runs": [r["seconds"] for r in runs]}


def _remove_outputs(out: Path) -> None:
    """A compile's file (and external data) from the previous run: replacing a 500 MB file costs the rename
    ~0.16 s on ext4 (it flushes the new file), which a first build into a fresh folder does not pay."""
    for f in out.parent.glob(out.name + "*"):  # with `archdsl-given`'s checkpoint, made anew outside the clock
        f.unlink()


def _timed(make, labels: list[str], rounds: int, ms_key: str, ratio_key: str, error_key: str,
           variants: list[str] = ()) -> dict:
    """The sides alternated: median ms each, and the -O2 side's median ratio (with its interval) to each other
    (each variant's too, to torch's); or, where a session cannot be made or run (a model onnxruntime cannot
    load), why not."""
    failed: dict[str, str] = {}

    def each(label: str):  # a file onnxruntime cannot load (a torch export's custom op) leaves the others timed
        try:
            return make(label)
        except Exception as e:  # noqa: BLE001 - said in the row's note (bench2 hunt: it erased archdsl's figures)
            failed[label] = error_text(e)
            return None
    try:
        times = {k: v for k, v in alternate_orders(each, labels, rounds).items() if v}
    except Exception as e:  # noqa: BLE001 - the row says so; the other models are still measured
        return {error_key: error_text(e)}
    said = "; ".join(f"{k}: {msg}" for k, msg in failed.items())
    if not times:
        return {error_key: said}
    out: dict = {ms_key: {k: statistics.median(v) for k, v in times.items()}}
    if failed:
        out[error_key] = said
    for side in ("O2", *variants):
        if side not in times:
            continue
        others = [k for k in times if k != side and (side == "O2" or k not in ("O2", *variants))]
        key = ratio_key if side == "O2" else f"{ratio_key}@{side}"
        out[key] = {k: median_ratio(times[side], times[k]) for k in others}
        out[key + "_ci"] = {k: ratio_interval(times[side], times[k]) for k in others}
    return out


def cuda_variants(m: BenchModel, opset: int | None, work: Path, o2_nodes: int | None) -> dict[str, Path]:
    """CUDA_VARIANTS that differ from the default -O2 build of this model (an opset the run is at or below,
    a pass that changes nothing: none), each written to WORK; label -> file."""
    import onnx

    from .. import driver
    from ..runtime import newest_opset
    out = {}
    for label, (_, options) in CUDA_VARIANTS.items():
        if options.get("opset", 0) >= (opset or newest_opset()):
            continue
        model = driver.compile_file(m.path, defines=m.defines, **{"opset": opset, **options})
        if "disabled_passes" in options and len(model.graph.node) == o2_nodes:
            continue
        out[label] = work / f"{m.key}_{label}.onnx"
        onnx.save(model, str(out[label]))
    return out


def bench_scaling(sizes: list[int], work: Path) -> list[dict]:
    rows = []
    for nodes in sizes:
        layers = max(1, nodes // 2)
        r = _child(["mlp", str(layers), "16", str(work / "mlp.onnx")])
        r["layers"] = layers
        rows.append(r)
        (work / "mlp.onnx").unlink(missing_ok=True)
    return rows


def _check_options(opts) -> str | None:
    """What is wrong with the flags, if anything; fills in the parsed lists (keys, exporters, sizes) and the
    defaults that depend on --quick."""
    from ..driver import MIN_OPSET
    from ..runtime import newest_opset
    opts.rounds = opts.rounds if opts.rounds is not None else (8 if opts.quick else 30)
    opts.exporters = list(dict.fromkeys(e.strip() for e in opts.exporters.split(",") if e.strip()))  # timed once
    opts.keys = [m.key for m in MODELS] if opts.models.strip() == "all" else \
        [k.strip() for k in opts.models.split(",") if k.strip()]  # "resnet50, gpt2_small" as the shell gives it
    unknown = [k for k in opts.keys if k not in {m.key for m in MODELS}]
    if not opts.keys:
        return f"--models names none (models: {', '.join(m.key for m in MODELS)})"
    if unknown:
        return f"unknown model {unknown[0]} (models: {', '.join(m.key for m in MODELS)})"
    if opts.rounds < 1:
        return "--rounds must be at least 1"
    opts.compile_runs = opts.compile_runs if opts.compile_runs is not None else (1 if opts.quick else 3)
    if opts.compile_runs < 1:
        return "--compile-runs must be at least 1"
    bad = [e for e in opts.exporters if e not in EXPORTERS]
    if bad:
        return f"unknown exporter {bad[0]} (exporters: {', '.join(EXPORTERS)})"
    if not opts.exporters and not opts.no_torch:  # it printed "no torch comparison: yes"
        return f"--exporters names none (exporters: {', '.join(EXPORTERS)}; --no-torch skips torch)"
    scaling = opts.scaling if opts.scaling is not None else ("1000,10000" if opts.quick else "1000,10000,100000")
    try:
        opts.sizes = [int(s) for s in scaling.split(",") if s.strip()]
    except ValueError:
        return f"--scaling expects node counts like 1000,10000 (0 = skip), got '{scaling}'"
    if any(n < 0 for n in opts.sizes):
        return f"--scaling expects node counts like 1000,10000 (0 = skip), got '{scaling}'"
    if opts.opset is not None and not MIN_OPSET <= opts.opset <= newest_opset():  # timed: onnxruntime must run it
        return f"--opset {opts.opset} is not supported ({MIN_OPSET}..{newest_opset()})"
    if opts.json == "":
        return "--json needs a file name"
    if stdout_closed() and not opts.json:  # started with `>&-`: minutes of timing, and the table dropped
        return "stdout is closed, and the table goes there; give --json PATH"
    if opts.json:
        p = Path(opts.json)
        if opts.json.endswith(("/", os.sep)):  # Path() drops it: out.json/ overwrote out.json
            return f"--json {opts.json}: a folder's name; give a file name"
        if p.is_dir() or not p.parent.is_dir() or not os.access(p.parent, os.W_OK):
            return f"--json {p}: cannot write there ({'a directory' if p.is_dir() else 'no such writable folder'})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Ctrl-C or a SIGTERM ends the run cleanly: the child process is killed (subprocess.run does so on any
    exception) and the temp folder of models removed, where a traceback used to leave hundreds of MB."""
    return interruptible(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="archdsl bench", description=__doc__)
    ap.add_argument("--models", default="all", metavar="KEYS",
                    help=f"comma-separated subset of: {', '.join(m.key for m in MODELS)} (default all)")
    ap.add_argument("--quick", action="store_true", help="fewer latency rounds, scaling only to 10k nodes")
    ap.add_argument("--rounds", type=int, metavar="N",
                    help="latency rounds per model (default 30, quick 8); the lowering choices take 3x as many, "
                         "at least 10")
    ap.add_argument("--compile-runs", type=int, metavar="N",
                    help="times each compile (archdsl's and each exporter's) is run, alternated; the tables show "
                         "the median run (default 3, quick 1)")
    ap.add_argument("--threads", type=some_threads, default=2, metavar="N",
                    help=f"onnxruntime intra-op threads, 1 to {MAX_THREADS} (default 2)")
    ap.add_argument("--opset", type=int, metavar="N",
                    help="opset of archdsl's builds (default: the newest onnxruntime runs, as `archdsl build`); "
                         "torch's exporters keep their own")
    ap.add_argument("--exporters", default=",".join(EXPORTERS), metavar="NAMES",
                    help="torch exporters to compare with, comma-separated (default dynamo,legacy)")
    ap.add_argument("--no-torch", action="store_true", help="archdsl's own figures only")
    ap.add_argument("--no-check", dest="check_outputs", action="store_false",
                    help="skip comparing archdsl's outputs with torch eager (same weights)")
    ap.add_argument("--scaling", metavar="SIZES",
                    help="deep-MLP node counts (default 1000,10000,100000; quick 1000,10000; 0 = skip)")
    ap.add_argument("--no-choices", dest="choices", action="store_false",
                    help="skip the micro-benchmarks behind the lowering choices (each A against B)")
    ap.add_argument("--no-cuda", dest="use_cuda", action="store_false",
                    help="skip the CUDA latency table (measured when onnxruntime lists CUDAExecutionProvider; "
                         "it also times the -O2 build at --opset 21 and without expand_channel_scale, where those "
                         "differ from it)")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for the README)")
    opts = ap.parse_args(argv)
    problem = _check_options(opts)
    if problem:  # before any work: a bench runs for many minutes
        print(f"archdsl bench: error: {problem}", file=sys.stderr)
        return 2
    sizes = [n for n in opts.sizes if n > 0]
    import onnxruntime as ort

    from ..runtime import newest_opset
    opts.cuda = opts.use_cuda and "CUDAExecutionProvider" in ort.get_available_providers()
    torch_reason = "--no-torch" if opts.no_torch else _have_torch()
    from .report import render
    results = {"machine": machine(opts.no_torch), "opset": opts.opset or newest_opset(), "threads": opts.threads,
               "rounds": opts.rounds, "compile_runs": opts.compile_runs, "torch": torch_reason or "yes",
               "models": [], "scaling": []}
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        work = Path(tmp)
        for m in MODELS:
            if m.key in opts.keys:
                print(f"... {m.title}", file=sys.stderr, flush=True)
                results["models"].append(bench_model(m, work, opts, torch_reason))
        if sizes:
            print("... deep MLP scaling", file=sys.stderr, flush=True)
            results["scaling"] = bench_scaling(sizes, work)
    if opts.choices:
        print("... lowering choices", file=sys.stderr, flush=True)
        from .choices import measure_choices
        results["choices"] = measure_choices(results["opset"], opts.threads, max(10, opts.rounds * 3))
    render(results, opts.exporters if not torch_reason else [], markdown=opts.markdown)
    if opts.json:  # after the table: a write that fails now loses nothing printed
        text = json.dumps(results, indent=2)
        try:  # whole or not at all (a full disk truncated the previous file); through a link, into a pipe
            atomic_write(opts.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except ArchError as e:
            print(f"archdsl bench: error: {e.message}", file=sys.stderr)
            return 1
    failed = [r["model"] for r in results["models"] if "error" in (r.get("archdsl_O2") or {})]
    if failed:  # a table of errors exited 0 (an installed package without its specs)
        print(f"archdsl bench: error: archdsl did not build {', '.join(failed)} (the notes say why)", file=sys.stderr)
        return 1
    return 0
