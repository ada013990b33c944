"""What a built model records of its making, in its metadata and doc string: the params as set, the
source file's name, the model's name and seed, and what its integer inputs hold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..diagnostics import utf8
from ..ir import Graph
from .module import Module

__all__ = ["int_input_metadata", "model_metadata", "source_name"]

_METADATA_ITEMS = 100_000  # list items and dict entries recorded per param value
_METADATA_DEPTH = 100  # and how deeply nested


def model_metadata(mod: Module, name: str, seed: int, weights=None) -> dict:
    """What a model (inference or train step) records of its making: the params as set, the imported files'
    too (ALIAS.NAME under `import ... as ALIAS`, the plain name otherwise), the source file, the model's name,
    and the seed its weights were drawn with or, where they were given (a file's path or, from Python, arrays),
    where they came from: the seed then made none of them."""
    plain = {k: mod.env.vars[k] for k in mod.unaliased if k in mod.env.vars}
    meta = {"archdsl.params": _jsonable({**plain, **mod.params, **mod.imported_params}),
            "archdsl.source": source_name(mod), "archdsl.model": name}
    if weights is None:
        meta["archdsl.seed"] = str(seed)
    else:
        meta["archdsl.weights"] = "arrays given" if isinstance(weights, Mapping) else utf8(Path(weights).name)
    return meta


def int_input_metadata(graph: Graph) -> dict:
    """archdsl.int_inputs: what the integer inputs hold (ids, labels, lengths), for `archdsl run MODEL.onnx`."""
    import json

    from ..ir.int_inputs import int_input_ranges
    ranges = int_input_ranges(graph)
    return {"archdsl.int_inputs": json.dumps(ranges, sort_keys=True)} if ranges else {}


def source_name(mod: Module) -> str:
    """The spec's file name for the model's metadata and doc strings (valid UTF-8 whatever the disk holds)."""
    return utf8(Path(mod.path).name)


def _jsonable(params: dict) -> dict:
    """Param values for the metadata. A value is walked for at most _METADATA_ITEMS items (a bounded.Meter)
    and recorded as a note past that: a list that shares itself ([[[0] * 1000] * 1000] * 1000) is cheap to
    make but has 10^9 leaves, and writing them hung the build."""
    import math

    from ..diagnostics import LimitError
    from ..types import Sym
    from .bounded import Meter, to_str

    def conv(v, meter: Meter, depth: int = 0):
        if isinstance(v, (list, tuple, dict)):
            meter.spend(len(v))
            if depth > _METADATA_DEPTH:  # a list that holds itself (the API's defines): RecursionError before
                raise LimitError(f"nested deeper than {_METADATA_DEPTH}")
        if isinstance(v, (list, tuple)):
            return [conv(x, meter, depth + 1) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x, meter, depth + 1) for k, x in v.items()}
        if isinstance(v, Sym) or isinstance(v, float) and not math.isfinite(v):
            return str(v)  # strict JSON has no inf or nan: "inf", "nan"
        if v is None or isinstance(v, (int, float, str, bool)):
            return v
        return to_str(v)  # an op, block or builtin by its name (its repr held addresses: builds differed)

    out = {}
    for k, v in params.items():
        try:
            out[k] = conv(v, Meter("", _METADATA_ITEMS))
        except LimitError as e:
            what = (f"nested deeper than {_METADATA_DEPTH}" if "nested" in e.message
                    else f"of more than {_METADATA_ITEMS:,} items")
            out[k] = f"<{type(v).__name__} {what}, not recorded>"
    return out
