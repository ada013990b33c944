"""Per-layer table and totals from the checked IR; never materializes weights."""

from __future__ import annotations

import math
import numbers

from .diagnostics import ArchError
from .ir import Graph
from .ops import OpCall
from .types import Sym, TensorType, dim_size, dim_symbols

__all__ = ["summarize", "bind_dims", "counted_at"]


def _numel(shape) -> int:
    return math.prod(d if isinstance(d, int) else 1 for d in shape)


class _OneUnlessGiven(dict):
    """Sizes where a symbol not given is 1: `4*B` counts 4 at batch 1, `B*T` counts T (it counted 1)."""

    def get(self, key, default=None):
        return super().get(key, 1)


def bind_dims(t: TensorType, dims: dict) -> TensorType:
    """Give symbolic dims sizes (`T=128`) for counting; unknown symbols count as 1, as a batch of one, inside
    products and formulas too. A dim that then has no whole positive size (H/2 at H = 1) stays symbolic
    (counted as 1 by the cost rules), except 0 at sizes all given: x[:, 5:] at --dim T=5 is empty, no work."""
    given = {k: int(v) for k, v in (dims or {}).items()}
    sizes = _OneUnlessGiven(given)

    def sized(d):
        n = dim_size(d, sizes)
        if n is not None and (n > 0 or n == 0 and set(dim_symbols(d)) <= set(given)):
            return int(n) if float(n).is_integer() else d
        return d
    return t.with_shape([sized(d) for d in t.shape])


def input_dims(g: Graph) -> list[str]:
    """The names of the symbolic dims of the model's inputs, in order."""
    return list(dict.fromkeys(n for v in g.inputs for d in v.type.shape for n in dim_symbols(d)))  # T of (T+1) too


def unsized_dims(g: Graph, dims: dict) -> list[str]:
    """The symbolic dims of the inputs, other than a batch, that FLOPs counted as 1 (none given in `dims`)."""
    batch = {str(v.type.shape[0]) for v in g.inputs if v.type.shape and isinstance(v.type.shape[0], Sym)}
    return [f for f in input_dims(g) if f not in dims and f not in batch]


def counted_at(g: Graph, dims: dict) -> str:
    """The sizes a FLOP count took, as a label: "batch 1" where an input's first dim is a symbol counted as 1
    (not fixed, nor given), the given dims, the other symbols as 1; "the model's sizes" where none is open."""
    batch = sorted({n for v in g.inputs if v.type.shape and isinstance(v.type.shape[0], Sym)
                    and not set(dim_symbols(v.type.shape[0])) <= set(dims)  # 2*B: B given
                    for n in dim_symbols(v.type.shape[0]) if n not in dims})
    said = [] if not batch else ["batch 1"] if set(batch) <= {"B", "batch"} else \
        [f"batch 1 ({', '.join(f'{b}=1' for b in batch)})"]  # [T, B, F]: T is the one counted as a batch
    return ", ".join(said + [f"{k}={v}" for k, v in dims.items()]
                     + [f"{u}=1" for u in unsized_dims(g, dims)]) or "the model's sizes"


def _param_row(v) -> dict:
    return {"name": v.name, "op": "parameter", "flops": 0, "params": _numel(v.type.shape),
            "shape": [[d if isinstance(d, int) else str(d) for d in v.type.shape]]}


def _check_dims(g: Graph, dims) -> None:
    """What `summary --dim` checks, for a caller from Python: {"Z": 4} counted at "Z=4" a model without Z,
    {"B": -4} gave B=1's count labelled B=-4, 4.5 counted as 4 (review116)."""
    if not isinstance(g, Graph):
        raise ArchError(f"summarize takes the IR graph of a spec (archdsl.check_file(path)), got {type(g).__name__}")
    if dims is not None and not isinstance(dims, dict):
        raise ArchError(f"dims takes a dict of sizes by symbolic dim ({{'T': 128}}), got {type(dims).__name__}")
    symbols = input_dims(g)
    for k, v in (dims or {}).items():
        if k not in symbols:
            raise ArchError(f"dims: the model has no symbolic dim {k!r} (its symbolic dims: "
                            f"{', '.join(symbols) or 'none'})")
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ArchError(f"dims: {k} takes a whole number of 0 or more, got {v!r}")


def summarize(g: Graph, dims: dict | None = None) -> dict:
    """params count trainable tensors once each (tied weights once), as torch's parameters() does.
    FLOPs are 2 x multiply-accumulates plus the elementwise ops (an activation, a norm, a residual add: 1-8
    per element) at batch 1, with `dims` sizing other symbolic dims."""
    _check_dims(g, dims)
    dims = dict(dims or {})
    layers = []
    total_flops = 0
    counted: set[int] = set()  # a tied weight counts at the first layer that reads it, as in the total
    unfit = []  # layers with a size that is not a whole positive number at these sizes (conv 3 at H=1)
    for n in g.nodes:
        call = OpCall(tuple(bind_dims(v.type, dims) for v in n.inputs),
                      tuple(bind_dims(o.type, dims) for o in n.outputs), n.attrs)
        if any(not isinstance(d, int) for t in call.out_types for d in t.shape):
            unfit.append(n.name)
        cost = n.opdef.cost
        flops = int(cost(call)) if cost else 0
        total_flops += flops
        params = 0
        for v in n.inputs:
            if v.kind == "param" and id(v) not in counted:
                counted.add(id(v))
                if v.name.startswith(n.name + "."):
                    params += _numel(v.type.shape)
                else:  # a free parameter(...): a row of its own, under its name (DETR's query_embed.weight
                    layers.append(_param_row(v))  # showed as the unsqueeze that first read it)
        layers.append({"name": n.name, "op": n.op,
                       "shape": [[d if isinstance(d, int) else str(d) for d in o.type.shape] for o in n.outputs],
                       "params": params, "flops": flops})
    for v in g.params.values():  # a parameter no layer reads (an output itself, or unused): a row of its own,
        if v.kind == "param" and id(v) not in counted:  # so that the rows add up to the total
            layers.append(_param_row(v))
    return {
        "model": g.name,
        "inputs": {v.name: str(v.type) for v in g.inputs},
        "outputs": {k: str(v.type) for k, v in g.outputs},
        "params": g.param_count(),
        "buffers": g.buffer_count(),
        "flops": total_flops,
        "flops_unsized": unsized_dims(g, dims),
        "flops_at": counted_at(g, dims),
        "flops_unfit": unfit,
        "layers": layers,
    }
