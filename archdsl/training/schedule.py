"""The run's plan: the batches of an epoch (shuffled; a short last batch kept or left out), the learning-rate
schedule over the run, and what a resume that changes its settings does to it."""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

import numpy as np

from ..diagnostics import ArchError
from .data import onnx_dims

if TYPE_CHECKING:
    from .options import LoopOptions

__all__ = ["PLAN_DEFAULTS", "PLAN_KEYS", "batches", "batches_per_epoch", "check_fixed_batch", "factor", "fixed_batch",
           "plan", "plan_note", "read_plan", "unreached", "updates_per_epoch"]


PLAN_KEYS = ("epochs", "batch_size", "schedule", "schedule_per", "warmup", "milestones", "gamma", "examples")
PLAN_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "schedule": "--schedule",
              "schedule_per": "--schedule-per", "warmup": "--warmup", "milestones": "--milestones",
              "gamma": "--gamma"}
# what a checkpoint written before the step schedule (or before its examples were kept) lacks
PLAN_DEFAULTS = {"milestones": [], "gamma": 0.1, "examples": None}


def read_plan(plan) -> dict | None:
    """A checkpoint's __plan__ as the loop reads it (older checkpoints' missing keys at their defaults); a
    TypeError where it is not what train writes (a hand-made or damaged file: milestones of 5 crashed)."""
    need = set(PLAN_KEYS) - set(PLAN_DEFAULTS)  # an older checkpoint has no step keys
    if plan is None:
        return None
    if not isinstance(plan, dict) or not need <= set(plan) <= set(PLAN_KEYS) or not isinstance(
            plan.get("milestones", []), list) or not all(type(m) is int for m in plan.get("milestones", [])):
        raise TypeError("__plan__ is not the schedule's settings")
    return {**PLAN_DEFAULTS, **plan}


def plan(opts: "LoopOptions", examples: int) -> dict:
    """The settings the lr schedule reads, for a resume to compare: a per-batch schedule's length is its
    updates, so the number of training examples is one of them."""
    return {k: examples if k == "examples" else list(opts.milestones) if k == "milestones" else getattr(opts, k)
            for k in PLAN_KEYS}


def next_lr(plan: dict, base_lr: float, epoch: int, done: int, per_epoch: int) -> float:
    """The lr of the next update (the first of `epoch`, `done` updates made) under a plan, as the loop feeds it."""
    per_batch = plan["schedule_per"] == "batch" and plan["schedule"] != "constant"
    if per_batch:
        updates = plan["epochs"] * per_epoch
        f = factor(plan, min(done, updates) / updates, done)
    else:
        f = factor(plan, (epoch - 1) / plan["epochs"], epoch - 1)
    return base_lr * f * (min(1.0, (done + 1) / plan["warmup"]) if plan["warmup"] else 1.0)


def plan_note(path, saved: dict, now: dict, base_lr: float, epoch: int, done: int, per_epoch) -> str | None:
    """A resumed run whose schedule settings differ from the checkpoint's runs another lr schedule (a cosine
    over more epochs jumps back up): said, with the next update's lr under both. Settings the schedule does
    not read (--epochs of a constant or a step schedule, whose milestones are counted from the start) are not
    named."""
    scheduled = (saved["schedule"], now["schedule"]) != ("constant", "constant")
    over_the_run = [p for p in (saved, now) if p["schedule"] in ("cosine", "linear")]  # read --epochs
    per_batch = any(p["schedule_per"] == "batch" for p in over_the_run)
    keys = ["warmup"] + (["schedule", "schedule_per"] if scheduled else []) + (["epochs"] if over_the_run else []) + \
        (["batch_size", "examples"] if per_batch else []) + \
        (["milestones", "gamma"] if "step" in (saved["schedule"], now["schedule"]) else [])
    changed = [k for k in PLAN_KEYS if k in keys and saved[k] != now[k] and (k != "examples" or saved[k])]
    if not changed:
        return None
    show = lambda v: ",".join(map(str, v)) if isinstance(v, list) else v  # noqa: E731 - as the flag is written
    def reads(p: dict, k: str) -> bool:  # a cosine run has no milestones to name, a step run no length
        return (k not in ("milestones", "gamma") or p["schedule"] == "step") and \
            (k != "epochs" or p["schedule"] in ("cosine", "linear"))
    said = lambda p, k: f"--data of {p[k]} examples" if k == "examples" else f"{PLAN_FLAGS[k]} {show(p[k])}"  # noqa: E731
    was = " ".join(said(saved, k) for k in changed if reads(saved, k))
    new = " ".join(said(now, k) for k in changed if reads(now, k))
    ended = epoch > saved["epochs"] and saved["schedule"] in ("cosine", "linear")
    then = "its run had ended" if ended else \
        f"with its {was} it would be {next_lr(saved, base_lr, epoch, done, per_epoch(saved)):.6g}"
    zero = ""
    if now["schedule_per"] == "batch" and now["schedule"] in ("cosine", "linear"):  # its length is counted in this
        length = now["epochs"] * per_epoch(now)  # run's updates; the done ones were counted in the checkpoint's
        run = (now["epochs"] - epoch + 1) * per_epoch(now)
        idle = min(done + run - length, run)
        if idle > 0:  # another --batch-size or --data: the schedule ends before the run does (optim3 hunt)
            which = "every update of this run is" if idle == run else \
                f"the last {idle} update{'s' if idle != 1 else ''} of this run {'are' if idle != 1 else 'is'}"
            zero = (f"; the schedule ends at update {length}, so {which} at lr 0: resume with the same --batch-size "
                    "and --data, or more --epochs")
    return (f"note: {path} was trained with {was}; with {new} the lr schedule is another one: the next update "
            f"runs at lr {next_lr(now, base_lr, epoch, done, per_epoch(now)):.6g} ({then}){zero}")


def factor(plan: dict, u: float, passed: int) -> float:
    """The schedule's share of the lr at progress u in [0, 1], `passed` epochs (or updates, per batch) into the
    run: torch's CosineAnnealingLR (T_max the run, eta_min 0), a linear decay to 0 (a LambdaLR of 1 - u),
    MultiStepLR (gamma for every milestone passed), or 1."""
    schedule = plan["schedule"]
    if schedule == "cosine":
        return (1 + math.cos(math.pi * u)) / 2
    if schedule == "linear":
        return 1.0 - u
    if schedule == "step":
        return plan["gamma"] ** bisect.bisect_right(plan["milestones"], passed)
    return 1.0


def unreached(plan: dict, updates: int) -> list[str]:
    """Settings the run ends before they act, said before it starts (torch runs them as silently): milestones
    past the last epoch (or update, per batch), a warmup longer than the run."""
    said = []
    per_batch = plan["schedule_per"] == "batch"
    length, unit = (updates, "update") if per_batch else (plan["epochs"], "epoch")
    late = [m for m in plan["milestones"] if m >= length] if plan["schedule"] == "step" else []
    if late:
        said.append(f"--milestones {','.join(map(str, late))}: the lr is multiplied after {unit} N, and this run "
                    f"has {length} {unit}{'s' if length != 1 else ''}"
                    + ("; it stays --lr throughout" if len(late) == len(plan["milestones"]) else ""))
    if plan["warmup"] and plan["warmup"] > updates:
        rises = updates / plan["warmup"]
        # the schedule scales the warmup's lr too (a linear decay ends near 0): the last update's share of --lr
        f = factor(plan, (updates - 1) / updates, updates - 1) if per_batch else \
            factor(plan, (plan["epochs"] - 1) / plan["epochs"], plan["epochs"] - 1)
        said.append(f"--warmup {plan['warmup']} is longer than the run's {updates} "
                    f"update{'s' if updates != 1 else ''}: the lr rises to {rises:.1%} of --lr at the last"
                    + (f", which the {plan['schedule']} schedule scales to {rises * f:.1%}" if f != 1.0 else ""))
    return said


def batches_per_epoch(n: int, size: int, keep_last: int) -> int:
    """The batches batches yields: a short last batch is left out below keep_last examples."""
    full, rest = divmod(n, size)
    return full + (1 if rest >= keep_last else 0)


def updates_per_epoch(n: int, size: int, keep_last: int, accumulate: int = 1) -> int:
    """Optimizer steps per epoch: one per `accumulate` batches, the epoch's last batch closing a short group."""
    return -(-batches_per_epoch(n, size, keep_last) // accumulate)


def batches(n: int, size: int, rng: np.random.Generator | None, keep_last: int):
    """Shuffled batches; a last one of fewer than keep_last examples is left out: 2 where a BatchNorm would see
    one value per channel (batch statistics of one example are undefined; torch raises), the whole batch where
    the model fixes its size."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, size):
        idx = order[i:i + size]
        if len(idx) < keep_last:
            continue
        yield idx


def fixed_batch(model, names: list[str]) -> tuple[int, str] | None:
    """The batch size a model fixes (its data inputs' first dim a number, `x: float32[16, 8]`), and the input
    that says so."""
    inputs = {i.name: i for i in model.graph.input}
    for name in names:
        dims = onnx_dims(inputs[name].type.tensor_type)
        if dims and isinstance(dims[0], int) and dims[0] > 0:
            return dims[0], name
    return None


def check_fixed_batch(fixed: tuple[int, str], opts: "LoopOptions", data: dict, console) -> None:
    """Batches of exactly the model's size: --batch-size must be it, a short last batch is left out (torch's
    drop_last), said once per file; a file smaller than one batch is refused."""
    size, name = fixed
    if opts.batch_size != size:
        raise ArchError(f"the model takes batches of exactly {size} (its input '{name}' has a first dim of {size}): "
                        f"give --batch-size {size}, or declare that dim symbolic (B) to train on any batch size")
    if opts.eval_batch_size not in (None, size):
        raise ArchError(f"the model takes batches of exactly {size} (its input '{name}' has a first dim of {size}), "
                        f"and its evaluation too: --eval-batch-size {opts.eval_batch_size} cannot be")
    for path, arrays in data.items():
        n = len(next(iter(arrays.values())))
        if n < size:
            raise ArchError(f"{path} holds {n} example{'s' if n != 1 else ''}, fewer than the one batch of {size} "
                            "the model takes")
        if n % size and path == opts.data and opts.epochs:  # shuffled: each epoch's tail, other examples each time
            console.print(f"note: the model takes batches of exactly {size}: each epoch leaves out the last "
                          f"{n % size} examples of its shuffled order, a short batch ({n - n % size} of {n} used "
                          "per epoch)")
        if n % size and (path == opts.val or not opts.epochs):  # in file order (--epochs 0 only evaluates)
            console.print(f"note: the model takes batches of exactly {size}: {path}'s last {n % size} examples, a "
                          f"short batch, are left out ({n - n % size} of {n} used)")
