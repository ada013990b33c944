"""What a train step may cost, said before the work: its size in nodes (a model's limit, given by the caller,
holds for the step too) and the memory its state takes to build."""

from __future__ import annotations

from ..diagnostics import ArchError, LimitError
from ..ir import Graph
from .train_step import TrainConfig, state_bytes

__all__ = ["available_memory", "check_model_size", "check_session_memory", "check_step_size", "check_train_memory"]


def check_model_size(graph: Graph, limit: int) -> None:
    """Its gradients alone make a step at least ~4 times the model (a 100,000-node model's step took 49 s and
    2.1 GB, one of 400,000 went past 4 GB), so a model over a quarter of the limit is refused before the work;
    the step itself is held to the limit by check_step_size."""
    if 4 * len(graph.nodes) > limit:
        raise LimitError(f"model {graph.name} has {len(graph.nodes):,} nodes: its train step would have at least "
                         f"four times as many, past the limit of {limit:,} (a model of at most {limit // 4:,} nodes "
                         "may train)", graph.span)


def check_step_size(step: Graph, model: Graph, nodes: int, limit: int) -> None:
    """The step as autodiff made it, before it is optimized and lowered (three quarters of the work): with
    each parameter's update and BatchNorm's and dropout's training forms it came to 7-38 times the model (a
    16,000-node MLP's adamw step: 288,000 nodes, 35 s, 1.4 GB), so the model's own check let millions by."""
    if len(step.nodes) > limit:
        raise LimitError(f"the train step of model {model.name} has {len(step.nodes):,} nodes, "
                         f"{len(step.nodes) / nodes:.0f} times the model's {nodes:,} (gradients, each parameter's "
                         f"update), past the limit of {limit:,} (a smaller model, or sgd, whose update is the "
                         "smallest)", model.span)


def available_memory(root: str = "/") -> int | None:
    """Bytes a new allocation can have: Linux's MemAvailable, or less where the process's cgroup (a container's
    memory limit, v2 or v1) leaves less, since the host's figure ignores that limit; None where neither says."""
    def read(path: str) -> str | None:
        try:
            with open(root + path) as f:
                return f.read()
        except OSError:
            return None
    found = []
    meminfo = read("proc/meminfo") or ""
    found += [int(line.split()[1]) * 1024 for line in meminfo.splitlines() if line.startswith("MemAvailable:")
              and line.split()[1].isdigit()]
    for limit, used in (("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
                        ("sys/fs/cgroup/memory/memory.limit_in_bytes", "sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, now = (read(limit) or "").strip(), (read(used) or "").strip()
        if cap.isdigit() and now.isdigit() and int(cap) < 2**60:  # "max", or v1's "no limit": a huge number
            found.append(max(int(cap) - int(now), 0))
    return min(found) if found else None


def check_train_memory(graph: Graph, cfg: TrainConfig, available: int | None) -> None:
    """A train step holds its parameters, buffers and the state its update adds (optimizer moments, gradient
    sums), and building it took about twice that at its peak (GPT-2 medium with adamw: 4.3 GB of state,
    8.5 GB): past the memory there is, the kernel killed the build (LLaMA-2-7B: 75 GiB of state) with no word.
    Said before the work, with what would fit."""
    weights, added = state_bytes(graph, cfg)
    if available is None or 2 * (weights + added) <= available:
        return
    fix = "a smaller model: its weights alone, twice over, are more" if 2 * weights > available else \
        "sgd without momentum and no --accumulate keep no state beside the weights, or --freeze part of the model"
    raise ArchError(f"the train step of model {graph.name} holds {_size(weights + added)} of state "
                    f"({_size(weights)} of parameters and buffers, {_size(added)} of optimizer moments and gradient "
                    f"sums), and building it takes about twice that; {_size(available)} of memory is available "
                    f"({fix})", graph.span)


def check_session_memory(name: str, sizes: dict[str, int], stateless: bool, available: int | None) -> None:
    """Running a built step takes, beside the built models, the state once more to feed it (its largest tensor
    twice while it is read), what the step updates twice more (its outputs beside its inputs), and the
    gradients and the update's work, about 3x the trained parameters (a 250k x 64 table's step, MiB measured
    against estimated: adam 706 / 793, sgd 315 / 427, sgd with the table frozen 131 / 122; a frozen one was
    charged as trained before: review81 hunt). The build's check counts the build
    alone: a 1M x 64 table's adam step passed it and peaked at 7.4x its state (recsys hunt). Said before the
    sessions, with the memory left after the build. `stateless`: sgd without momentum or --accumulate."""
    need = sizes["state"] + sizes["largest"] + 2 * sizes["updated"] + 3 * sizes["trained"]
    if available is None or need <= available:
        return
    fix = "--freeze part of the model" if stateless else \
        "sgd without momentum and no --accumulate keep no state beside the weights, or --freeze part of the model"
    raise ArchError(f"training model {name} takes about {_size(need)} beside its built step (its "
                    f"{_size(sizes['state'])} of state fed to it, what it updates twice over, and 3 times its "
                    f"{_size(sizes['trained'])} of trained parameters: the gradients and the update's work); "
                    f"{_size(available)} of memory is available ({fix})")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
