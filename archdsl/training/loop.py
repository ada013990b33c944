"""`archdsl train`: the loop around an exported train step, on plain onnxruntime.

Each step binds the batch and the current state, runs the step, and binds the state outputs as the next
step's inputs (I/O binding, so on CUDA the state never leaves the device). After every epoch: the loss and
accuracy of the epoch, the held-out set through the eval model, and a checkpoint (every state tensor, the
epoch) written atomically; `--resume` continues from it."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from onnx import numpy_helper

from .. import files
from ..diagnostics import ArchError, printable
from ..lower import load_weights, save_weights
from ..lower.weights import npz_member, numpy_reason, write_npz
from . import identity, schedule
from .data import (
    LabelsFor,
    check_class_labels,
    check_ctc_alignments,
    check_ctc_inputs,
    check_index_inputs,
    check_label_inputs,
    check_length_inputs,
    load_data,
    mean_masked_labels,
    onnx_dims,
)
from .export import TRAIN_CONFIG_KEY
from .metrics import batch_metrics, batch_weight, loss_value, spec_batch_weight
from .nonfinite import check_finite_state, examples, not_finite
from .options import LoopOptions

__all__ = ["LoopOptions", "Trainer", "check_index_inputs", "check_label_inputs", "load_data", "run_training"]


class Trainer:
    """A train-step session and an eval session sharing one state (name -> OrtValue)."""

    def __init__(self, compiled, provider: str = "auto", threads: int | None = None, seed: int = 0,
                 spin: bool = True):
        import onnxruntime as ort

        from .. import runtime
        from ..autodiff import limits
        self.ct, self.info = compiled, compiled.info
        limits.check_session_memory(compiled.graph.name, runtime.state_bytes(compiled), self.info.stateless,
                                    limits.available_memory())
        state = set(compiled.info.state_inputs)  # bound at every step, fed at every eval: not copied into either
        try:
            self.step = runtime.session(compiled.step_model, provider, threads, spin, fed=state)
            self.eval = runtime.session(compiled.eval_model, provider, threads, spin, fed=state)
        except ArchError:  # the provider asked for is not there
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime's own: a kernel its provider lacks (bfloat16 Gemm)
            raise ArchError(f"onnxruntime cannot run this model on its provider: {runtime.ort_message(e)}") from None
        self.device = "cuda" if self.step.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.ort = ort
        self.out_names = [o.name for o in self.step.get_outputs()]
        self.eval_inputs = {i.name for i in compiled.eval_model.graph.input}
        self.state: dict = {}
        self._binding = None
        for t in (t for t in compiled.step_model.graph.initializer if t.name in state):
            self.set(t.name, numpy_helper.to_array(t))
        if "seed" in self.info.state_inputs:
            self.set("seed", np.array(seed, dtype=np.int64))
        self.seed = seed
        self.best: tuple[float, int] | None = None  # --patience's, from a checkpoint
        self.best_output: str | None = None  # where the run that wrote the checkpoint wrote those best weights
        self.best_digest: str | None = None  # and that file's sha256 then (a checkpoint from before: none)
        self.best_eval: int | None = None  # the batch size its val_loss was evaluated at (older checkpoints: none)
        self.plan: dict | None = None  # the lr schedule's settings of the run that wrote the checkpoint
        self.fixed_batch: int | None = None  # the batch size the model fixes (its first dim a number)
        self.config = json.loads(next(p.value for p in compiled.step_model.metadata_props if p.key == TRAIN_CONFIG_KEY))

    @functools.cached_property
    def step_id(self) -> dict:
        """The train step's digest, model name and params, kept in a checkpoint (identity.check_resume)."""
        return identity.step_identity(self.ct)

    def set(self, name: str, value: np.ndarray) -> None:
        self.state[name] = self.ort.OrtValue.ortvalue_from_numpy(np.asarray(value, order="C"), self.device, 0)
        self._binding = None  # rebind everything on the next step

    def get(self, name: str) -> np.ndarray:
        return self.state[name].numpy()

    def train_step(self, batch: dict[str, np.ndarray], want_pred: bool = True) -> tuple[float, np.ndarray | None]:
        """One step; returns the loss and the model output the loss read (for accuracy). One binding is kept;
        the state inputs are re-pointed at the last step's outputs."""
        b = self._binding
        if b is None:
            b = self._binding = self.step.io_binding()
            for k, v in self.state.items():
                b.bind_ortvalue_input(k, v)
        for k, v in batch.items():
            b.bind_cpu_input(k, v)
        for k in self.out_names:  # fresh buffers: last step's outputs are this step's inputs
            b.bind_output(k, self.device)
        self.step.run_with_iobinding(b)
        outs = dict(zip(self.out_names, b.get_outputs()))
        for out, inp in self.info.state.items():
            v = outs[out]
            self.state[inp] = v
            b.bind_ortvalue_input(inp, v)
        return float(outs["loss"].numpy()), outs[self.info.output].numpy() if want_pred else None

    def predict(self, batch: dict[str, np.ndarray], index: int = 0) -> np.ndarray:
        """The eval model on a batch; its `seed` (a spec's rand_like, randn_like) is the run's plus the batch's
        index: with the run's alone every batch drew the same numbers, one draw scored over and over."""
        feeds = {k: v for k, v in batch.items() if k in self.eval_inputs}
        feeds.update({k: self.get(k) for k in self.state if k in self.eval_inputs})
        if "seed" in feeds and index:
            feeds["seed"] = np.array((int(feeds["seed"]) + index + 2**63) % 2**64 - 2**63, dtype=np.int64)
        names = [o.name for o in self.eval.get_outputs()]
        return self.eval.run([self.info.output if self.info.output in names else names[0]], feeds)[0]

    # ---- files ----
    def weights(self) -> dict[str, np.ndarray]:
        return {k: self.get(k) for k in self.info.params + self.info.buffers}

    def save_checkpoint(self, path: Path, epoch: int, best: tuple | None = None,
                        plan: dict | None = None, best_output: Path | None = None, best_digest: str | None = None
                        ) -> None:
        """Every state tensor and the bookkeeping; `best`: --patience's best held-out loss, its epoch and the
        batch size it was evaluated at, whose weights went to `best_output` (its path from the checkpoint's
        folder, and its sha256: an absolute path led a copied experiment folder's resume to another run's file);
        `plan`: the settings the lr schedule follows (a resume that changes them is told what that does)."""
        arrays = {k: self.get(k) for k in self.info.state_inputs}
        arrays["__epoch__"] = np.array(epoch)
        if best is not None:
            arrays["__best__"] = np.array(best, dtype=np.float64)
            if best_output is not None:
                arrays["__best_output__"] = np.array(os.path.relpath(Path(best_output).resolve(),
                                                                     Path(path).resolve().parent))
            if best_digest is not None:
                arrays["__best_sha256__"] = np.array(best_digest)
        if plan is not None:
            arrays["__plan__"] = np.array(json.dumps(plan))
        arrays["__seed__"] = np.array(self.seed, dtype=np.int64)
        arrays["__config__"] = np.array(json.dumps(identity.fingerprint(self.config)))
        arrays[identity.STEP_KEY] = np.array(json.dumps(self.step_id))
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                write_npz(f, arrays)
        files.atomic_write(path, save)

    def load_checkpoint(self, path: Path) -> int:
        files.refuse_special(path, f"--resume: cannot read {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: npz_member(z, k) for k in z.files}
        except FileNotFoundError:
            raise ArchError(f"--resume: no checkpoint at {path}") from None
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file (numpy guesses a pickle)
            raise ArchError(f"--resume: cannot read {path}: {numpy_reason(e)}" + ("" if isinstance(e, OSError) else
                            "; a checkpoint is the .npz `archdsl train` writes after every epoch")) from None
        if "__epoch__" not in arrays:
            raise ArchError(f"--resume: {path} is not a checkpoint of `archdsl train` (it has no __epoch__)")
        try:  # a damaged or hand-made file: its bookkeeping entries must be what train writes
            saved = json.loads(str(arrays.pop("__config__", "{}")))
            made_by = json.loads(str(arrays.pop(identity.STEP_KEY, "null")))  # older checkpoints: none
            if made_by is not None and not (isinstance(made_by, dict) and isinstance(made_by.get("sha256"), str)
                                            and isinstance(made_by.get("params", {}), dict)):
                raise TypeError(f"{identity.STEP_KEY} is not a train step's digest")
            epoch = int(arrays.pop("__epoch__"))
            best = arrays.pop("__best__", None)
            self.best = (float(best[0]), int(best[1])) if best is not None else None
            self.best_eval = int(best[2]) if best is not None and best.size > 2 else None  # its eval batches
            if "__best_output__" in arrays:  # from the checkpoint's folder (absolute in older checkpoints)
                self.best_output = str(Path(path).resolve().parent / str(arrays.pop("__best_output__")))
            self.best_digest = str(arrays.pop("__best_sha256__")) if "__best_sha256__" in arrays else None
            self.plan = schedule.read_plan(json.loads(str(arrays.pop("__plan__", "null"))))
            seed = int(arrays.pop("__seed__", self.seed))  # shuffling follows --seed: another one is another run
            if not isinstance(saved, dict) or not all(isinstance(saved.get(k) or [], list) for k in ("params",
                                                                                                   "buffers")):
                raise TypeError("__config__ is not a dict of the step's settings")
            if epoch < 0:
                raise ValueError(f"__epoch__ is {epoch}")
        except (TypeError, ValueError, IndexError) as e:  # (a __best__ of one value)
            raise ArchError(f"--resume: {path} is not a checkpoint of `archdsl train` (its bookkeeping does not "
                            f"read: {e})") from None
        identity.check_resume(path, saved, made_by, self.config, self.step_id)
        if seed != self.seed:
            raise ArchError(f"--resume: {path} was trained with --seed {seed}; resume with the same seed "
                            f"(got {self.seed})")
        names = list(self.info.state_inputs)  # what save_checkpoint writes: every one, no more (a file missing a
        missing = [k for k in names if k not in arrays]  # parameter resumed it from its random init, silently)
        extra = sorted(set(arrays) - set(names))
        if missing or extra:
            said = [f"lacks {_names(missing)}, which the train step keeps" if missing else "",
                    f"holds {_names(extra)}, which the train step does not have" if extra else ""]
            raise ArchError(f"--resume: {path} {' and '.join(w for w in said if w)}; resume from a checkpoint "
                            "`archdsl train` wrote for this model")
        for k, v in list(arrays.items()):  # every name is the state's now: checked, then set
            want = self.get(k).dtype
            if v.dtype != want and v.dtype.newbyteorder("=") == want:  # big-endian, the same numbers
                v = arrays[k] = v.astype(want)
            if tuple(v.shape) != tuple(self.state[k].shape()):  # same names, other sizes: a -D changed a width
                raise ArchError(f"--resume: {path} holds '{k}' as {list(v.shape)}, the model has "
                                f"{list(self.state[k].shape())}; resume with the same model (and -D values)")
            if v.dtype != want:  # else onnxruntime blamed the training data
                raise ArchError(f"--resume: {path} holds '{k}' as {v.dtype.name}, the model takes {want.name}")
        for k, v in arrays.items():
            self.set(k, v)
        return epoch


def _names(keys: list[str]) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _symbol_sizes(model, data: dict, names: list[str]) -> dict[str, int]:
    """The sizes the data gives the model's symbolic dims past the batch dim (`H` of x: float32[B, 3, H, W])."""
    inputs = {i.name: i for i in model.graph.input}
    sizes: dict[str, int] = {}
    for name in names:
        for i, d in enumerate(inputs[name].type.tensor_type.shape.dim):
            if i and d.dim_param and d.dim_param not in sizes:
                sizes[d.dim_param] = int(data[name].shape[i])
    return sizes


def run_training(ct, opts: LoopOptions, console=None) -> dict:
    """The whole loop; returns the last epoch's metrics."""
    opts.validate()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    # a log file's lines stay whole (no 80-column wrap); paths and names print as they are, where rich read
    # `exp[lr=0.1].npz` as markup (and `runs[/]w.npz` as an error)
    console = console or Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)
    trainer = Trainer(ct, opts.provider, opts.threads, opts.seed)
    names = ct.info.data_inputs + (["labels"] if ct.info.labelled else [])
    if not names:
        raise ArchError(f"model {ct.eval_model.graph.name} has no inputs: `archdsl train` batches its data over "
                        "the model's inputs")
    outputs = {o.name: onnx_dims(o.type.tensor_type) for o in ct.eval_model.graph.output}
    labels_for = LabelsFor(ct.info.config.loss, ct.info.output, outputs) \
        if ct.info.labelled and ct.info.output in outputs else None
    unread: tuple[list, list] = ([], [])
    notes: tuple[list, list] = ([], [])
    train = load_data(opts.data, ct.step_model, names, labels_for, unread[0], notes[0])
    val = load_data(opts.val, ct.step_model, names, labels_for, unread[1], notes[1]) if opts.val else None
    files_read = 1 if opts.val in (None, opts.data) else 2  # once per file (--val may be --data)
    for path, extra, said in list(zip((opts.data, opts.val), unread, notes))[:files_read]:
        if extra:  # a 'labels' beside a loss the spec computes: nothing reads it
            console.print(f"note: {path} also holds {', '.join(repr(k) for k in extra)}, which the step does "
                          f"not read (it reads {', '.join(names)})")
        for text in said:  # uint8 pixels, cast as they are
            console.print(f"note: {text}")
    for path, data in ((opts.data, train), (opts.val, val)):
        if data is not None:
            if opts.check_sizes is not None:
                opts.check_sizes(path, _symbol_sizes(ct.step_model, data, ct.info.data_inputs))
            check_index_inputs(path, data, ct.graph)
            check_ctc_inputs(path, data, ct.graph)
            check_ctc_alignments(path, data, ct.graph)
            check_length_inputs(path, data, ct.graph)
            if not ct.info.labelled:  # a --loss's labels: check_class_labels, below
                check_label_inputs(path, data, ct.graph)
            if ct.info.config.loss == "cross_entropy":
                check_class_labels(path, data["labels"], ct.eval_model, ct.info.output, ct.info.config.ignore_index)
    n = len(train[names[0]])
    start = 0
    if opts.resume:
        start = trainer.load_checkpoint(opts.checkpoint)
        if opts.epochs:
            console.print(f"resumed from {opts.checkpoint} after epoch {start}"
                          + (f"; --epochs {opts.epochs} leaves nothing to train: the "
                             + ("best epoch's" if opts.patience is not None and trainer.best and trainer.best[1] > 0
                                else "checkpoint's") + " weights are the output" if start >= opts.epochs else ""))
    check_finite_state(trainer, "the checkpoint" if opts.resume else "the weights")
    fixed = schedule.fixed_batch(ct.step_model, ct.info.data_inputs)
    if fixed is not None:
        files_of = {opts.data: train, **({opts.val: val} if val is not None else {})}
        schedule.check_fixed_batch(fixed, opts, files_of, console)
        trainer.fixed_batch = fixed[0]
    loss_kind, ignore = ct.info.config.loss, ct.info.config.ignore_index
    if opts.epochs == 0:  # evaluation only: the starting weights on each data file, nothing written
        return _evaluate_only(trainer, train, val, opts, loss_kind, console)
    needs_two = ct.info.min_batch_at(_symbol_sizes(ct.step_model, train, ct.info.data_inputs)) > 1
    keep_last = trainer.fixed_batch or (2 if needs_two and n >= 2 else 1)
    metrics: dict = {}
    if needs_two and n == 1:
        raise ArchError(f"{opts.data} holds one example; the model has a BatchNorm that sees one value per "
                        "channel of an example, whose batch statistics need at least 2 examples")
    if needs_two and opts.batch_size == 1 and n >= 2:
        raise ArchError("--batch-size 1: the model has a BatchNorm that sees one value per channel of an "
                        "example (no spatial dims, or all of size 1), whose batch statistics need at least 2 "
                        "examples (every batch would be skipped); give --batch-size 2 or more")
    if start < opts.epochs:
        outs = [o.name for o in ct.eval_model.graph.output]  # of several, the one a --loss reads is said
        reads = f", {ct.info.config.loss} on output '{ct.info.output}' (of {', '.join(outs)})" \
            if ct.info.labelled and len(outs) > 1 else ""
        console.print(f"training {ct.eval_model.graph.name} on {trainer.step.get_providers()[0]}: "
                      f"{n} example{'s' if n != 1 else ''}, "
                      f"batch {opts.batch_size}, {ct.info.config.optimizer.name} lr {ct.info.config.lr}{reads}")
        if needs_two and n % opts.batch_size == 1 and n > 1:
            console.print(f"note: each epoch leaves out one example, a last batch of one (its BatchNorm would see "
                          f"one value per channel; torch refuses it too): {n - 1} of {n} train")
    masked = mean_masked_labels(ct.graph, ct.info.output)
    best = trainer.best if opts.resume and trainer.best is not None else (math.inf, 0)  # --patience's
    base_lr = float(ct.info.config.lr)
    per_batch = opts.schedule_per == "batch" and opts.schedule != "constant"
    plan = schedule.plan(opts, n)
    accumulate = ct.info.config.accumulate
    batches = schedule.batches_per_epoch(n, opts.batch_size, keep_last)
    # the whole run's, for a per-batch schedule
    updates = opts.epochs * schedule.updates_per_epoch(n, opts.batch_size, keep_last, accumulate)
    if opts.resume and trainer.plan is not None and start < opts.epochs and "lr" in trainer.state:
        done = int(trainer.get("step")) if "step" in trainer.state else 0
        note = schedule.plan_note(opts.checkpoint, trainer.plan, plan, base_lr, start + 1, done, lambda p: schedule
                                  .updates_per_epoch(p["examples"] or n, p["batch_size"], keep_last, accumulate))
        if note:
            console.print(note)
    if start < opts.epochs:
        for text in schedule.unreached(plan, updates):
            console.print(f"note: {text}")
    was = trainer.best_eval or (max(trainer.plan["batch_size"], 256) if trainer.plan else None)  # before: at least 256
    held = len(next(iter(val.values()))) if val else 0  # a file smaller than both is one batch either way
    if opts.patience is not None and best[1] > 0 and start < opts.epochs and was and not trainer.fixed_batch \
            and min(was, held) != min(opts.eval_size, held):
        console.print(f"note: {opts.checkpoint}'s lowest val_loss ({best[0]:.4f}, epoch {best[1]}) was evaluated in "
                      f"batches of {was}, this run's are of {opts.eval_size}: a loss that mixes a batch's examples "
                      f"compares unlike numbers then (--eval-batch-size {was} keeps them alike)")
    resumed_at = start
    best_path = digest = None  # of the best weights this run writes (--patience with a checkpoint)
    stale = start - best[1] if opts.patience is not None and best[1] > 0 else 0
    if stale >= (opts.patience or 1) and start < opts.epochs:  # the resumed run had stopped here already
        console.print(f"stopping: at epoch {start}, where {opts.checkpoint} was written, val_loss had not "
                      f"improved for {stale} epoch{'s' if stale != 1 else ''} (--patience {opts.patience})")
        start = opts.epochs
    updated = start > 0  # an update has moved the weights (a non-finite loss before one is not the lr's doing)
    last = 0.0  # the last finite loss: a huge one before a NaN is a divergence, a modest one a NaN gradient
    for epoch in range(start + 1, opts.epochs + 1):
        t0 = time.perf_counter()
        if "lr" in trainer.state:  # lr is a step input: a schedule just feeds it (and a resumed run takes --lr)
            lr = base_lr if per_batch else base_lr * schedule.factor(plan, (epoch - 1) / opts.epochs, epoch - 1)
            trainer.set("lr", np.array(lr, np.float32))
        warming = (opts.warmup > 0 or per_batch) and "lr" in trainer.state and "step" in trainer.state
        rng = np.random.default_rng([opts.seed, epoch])
        total, seen, correct, counted = 0.0, 0, 0.0, 0
        steps = batches  # the batches that run: a fixed batch size or a batchnorm leaves a short last one out
        with Progress(TextColumn(f"epoch {epoch}/{opts.epochs}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), console=console,
                      transient=True, disable=opts.quiet or not console.is_terminal) as bar:
            task = bar.add_task("train", total=steps, loss=float("nan"))
            for step, idx in enumerate(schedule.batches(n, opts.batch_size, rng, keep_last), 1):
                batch = {k: v[idx] for k, v in train.items()}
                if accumulate > 1:  # the group's last micro-batch (or the epoch's) runs the optimizer
                    batch["apply"] = np.array(step % accumulate == 0 or step == batches)
                if warming:  # the step counter is the train step's own, so a resumed run goes on where it was
                    done = int(trainer.get("step"))
                    f = min(1.0, (done + 1) / opts.warmup) if opts.warmup else 1.0
                    if per_batch:
                        f *= schedule.factor(plan, min(done, updates) / updates, done)
                    else:
                        warming = done < opts.warmup
                    trainer.set("lr", np.array(lr * f, np.float32))
                loss, pred = _on_batch(opts.data, idx, lambda: trainer.train_step(batch))
                moved = (accumulate == 1 or bool(batch["apply"])) and not (  # an update at lr 0 moves nothing
                    "lr" in trainer.state and float(trainer.get("lr")) == 0)
                first, updated = not updated, updated or moved
                weight = batch_weight(batch.get("labels"), ignore, len(idx)) if ct.info.labelled else \
                    spec_batch_weight(batch, masked, len(idx), loss)
                if weight == 0:  # every label ignored: the step ran with a zero gradient, as torch's does
                    bar.update(task, advance=1)
                    continue
                if not np.isfinite(loss):
                    raise ArchError(not_finite(loss, epoch, step, steps, first, opts.weights_file, idx, trainer, last))
                total, last = total + loss * weight, loss
                seen += weight
                if ct.info.labelled:
                    c, k = batch_metrics(loss_kind, pred, batch["labels"], ignore)
                    correct, counted = correct + c, counted + k
                bar.update(task, advance=1, loss=total / seen)
        metrics = {"epoch": epoch, "loss": total / seen if seen else float("nan"),
                   "seconds": time.perf_counter() - t0}
        if counted:
            metrics["accuracy"] = correct / counted
        if val is not None:
            metrics.update(evaluate(trainer, val, opts.eval_size, loss_kind, opts.val))
        console.print(_line(metrics, opts.epochs))
        stop = False
        if opts.patience is not None:
            if metrics["val_loss"] < best[0]:  # NaN never improves
                best = (metrics["val_loss"], epoch)
                _write_weights(trainer, opts.output)  # the best so far, kept should a later epoch be worse
                kept = opts.checkpoint is not None and Path(opts.output).is_file()  # -o /dev/stdout: no file
                best_path, digest = (opts.output, _sha256(opts.output)) if kept else (None, None)
            stop = epoch - best[1] >= opts.patience
        if opts.checkpoint is not None:
            ours = best[1] > resumed_at
            size = opts.eval_size if ours else trainer.best_eval  # the batches its val_loss was evaluated in
            record = None if opts.patience is None else (*best, size) if size else best
            trainer.save_checkpoint(opts.checkpoint, epoch, record, plan,
                                    best_output=best_path if ours else trainer.best_output,
                                    best_digest=digest if ours else trainer.best_digest)
        if stop:
            stale = epoch - best[1]
            console.print(f"stopping: val_loss has not improved for {stale} epoch{'s' if stale != 1 else ''} "
                          f"(--patience {opts.patience})")
            break
    counts = f"{len(ct.info.params)} parameters, {len(ct.info.buffers)} buffers"
    if opts.patience is not None and best[1] > 0:  # written at that epoch (by this run, or the one resumed)
        said = f"the weights of epoch {best[1]}, the lowest val_loss ({best[0]:.4f})"
        if best[1] > resumed_at:
            console.print(f"wrote {printable(str(opts.output))} ({counts}): {said}")
        else:
            _best_of_resumed(trainer, opts.output, said, counts, console)
        return metrics
    _write_weights(trainer, opts.output)
    console.print(f"wrote {printable(str(opts.output))} ({counts})")
    return metrics


def _best_of_resumed(trainer: Trainer, out: Path, said: str, counts: str, console) -> None:
    """--patience's best epoch came before this run: its weights are in the file the resumed run wrote (this
    run holds only the last epoch's), found where the checkpoint says (from its own folder: a copied or moved
    experiment folder finds its own) or at -o, and taken only where the file is still what that run wrote (its
    sha256); kept where -o is that file, copied where it is another."""
    src = Path(trainer.best_output) if trainer.best_output else None
    if src is None and Path(out).is_file():  # a checkpoint from before it recorded the file: -o, as then
        console.print(f"kept {out} ({counts}): {said}, taken to be the run resumed's (its checkpoint does not say "
                      "where that run wrote them)")
        return
    if trainer.best_digest is None:  # a checkpoint from before the digest: the file it names, as then
        found = [src] if src is not None and src.is_file() else []
    else:
        found = [p for p in dict.fromkeys(q for q in (src, Path(out)) if q is not None)
                 if p.is_file() and _sha256(p) == trainer.best_digest]
    if any(p.resolve() == Path(out).resolve() for p in found):
        console.print(f"kept {out} ({counts}): {said}, written by the run resumed")
        return
    if not found:
        where = (f"wrote them to {src}, which " + ("holds other weights now" if src.is_file() else "is gone")
                 if src is not None else "wrote them to its -o")
        raise ArchError(f"--patience: the lowest val_loss was at epoch {trainer.best[1]}, before this run, and the "
                        f"run resumed {where}; nothing is written to {out} (its later epochs were no better)")
    weights = load_weights(found[0])  # then saved in -o's own format (.npz or .safetensors)
    files.atomic_write(out, lambda tmp: save_weights(tmp, weights))
    console.print(f"wrote {printable(str(out))} ({counts}): {said}, a copy of {found[0]}, which the run resumed wrote")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_weights(trainer: Trainer, out: Path) -> None:
    weights = trainer.weights()
    files.atomic_write(out, lambda tmp: save_weights(tmp, weights))


def _on_batch(path: str, idx, run):
    """onnxruntime refusing a batch (an embedding id past the end of its table, a sequence longer than the
    positions a model has) as a diagnostic naming the file and the examples, not an internal error."""
    try:
        return run()
    except ArchError:
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime's own exception types
        from ..runtime import ort_message
        message = ort_message(e)
        if type(e).__name__ == "NotImplemented" or any(w in message for w in ("type is not supported",
                                                                               "does not support")):  # a kernel the
            # provider lacks (no 16-bit scatter-add on the CPU): not the data's fault
            raise ArchError(f"onnxruntime cannot run this model on its provider: {message}") from None
        raise ArchError(f"{path}: onnxruntime failed on {examples(idx)}: {message}") from None


def evaluate(trainer: Trainer, data: dict, batch_size: int, loss_kind: str, path: str = "validation data") -> dict:
    n = len(next(iter(data.values())))
    total, seen, correct, counted = 0.0, 0, 0.0, 0
    size = trainer.fixed_batch or batch_size
    cfg = trainer.info.config
    masked = None if trainer.info.labelled else mean_masked_labels(trainer.ct.graph, trainer.info.output)
    for i in range(0, n - n % size if trainer.fixed_batch else n, size):  # a fixed size: whole batches only
        batch = {k: v[i:i + size] for k, v in data.items()}
        pred = _on_batch(path, np.arange(i, min(i + size, n)), lambda: trainer.predict(batch, i // size))
        labels = batch.get("labels") if trainer.info.labelled else None
        value = loss_value(loss_kind, pred, labels, cfg.label_smoothing, cfg.ignore_index)
        weight = batch_weight(labels, cfg.ignore_index, min(size, n - i)) if trainer.info.labelled else \
            spec_batch_weight(batch, masked, min(size, n - i), value)
        if weight:
            total += value * weight
            seen += weight
        if labels is not None:
            c, k = batch_metrics(loss_kind, pred, labels, cfg.ignore_index)
            correct, counted = correct + c, counted + k
    out = {"val_loss": total / seen if seen else float("nan")}
    if counted:
        out["val_accuracy"] = correct / counted
    return out


def _evaluate_only(trainer: Trainer, train: dict, val: dict | None, opts: LoopOptions, loss_kind: str,
                   console) -> dict:
    """--epochs 0: the loss (and accuracy) of the weights training would start from, through the eval model,
    on --data and --val; no step runs and no file is written."""
    t0 = time.perf_counter()
    metrics = {k[4:]: v for k, v in evaluate(trainer, train, opts.eval_size, loss_kind, opts.data).items()}
    if val is not None:
        metrics.update(evaluate(trainer, val, opts.eval_size, loss_kind, opts.val))
    metrics["seconds"] = time.perf_counter() - t0
    source = f"the checkpoint {opts.checkpoint}" if opts.resume else f"the weights of {opts.weights_file}" \
        if opts.weights_file else "the initial weights"
    console.print(f"evaluated {source} (--epochs 0: nothing trained or written)")
    console.print(_line({"epoch": 0, **metrics}, 0))
    return metrics


def _line(m: dict, epochs: int) -> str:
    parts = [f"epoch {m['epoch']}/{epochs}" if epochs else "evaluation", f"loss {m['loss']:.4f}"]
    if "accuracy" in m:
        parts.append(f"acc {100 * m['accuracy']:.2f}%")
    if "val_loss" in m:
        parts.append(f"val_loss {m['val_loss']:.4f}")
    if "val_accuracy" in m:
        parts.append(f"val_acc {100 * m['val_accuracy']:.2f}%")
    parts.append(f"{m['seconds']:.2f}s")
    return "  ".join(parts)
