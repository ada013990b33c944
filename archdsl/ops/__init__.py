"""The op registry. Every module in this package registers its ops on import."""

from __future__ import annotations

import importlib
import pkgutil

from ._common import reduce_op
from .registry import (
    REQUIRED,
    Attr,
    Init,
    OpCall,
    OpDef,
    ParamSpec,
    SharedValues,
    all_names,
    all_ops,
    call_attrs,
    coerce_attr,
    fail,
    get,
    give_numbers,
    lookup,
    register,
)

__all__ = ["REQUIRED", "Attr", "Init", "OpCall", "OpDef", "ParamSpec", "SharedValues", "all_names", "all_ops",
           "call_attrs", "coerce_attr", "fail", "get", "give_numbers", "lookup", "reduce_op", "register"]

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("registry", "shapes") and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")
