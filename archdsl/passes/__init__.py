"""IR -> IR optimization passes. Each pass is one module registering one named function
`fn(graph, ctx) -> bool`; `optimize` runs a level's passes to a fixpoint (see manager.py)."""

from __future__ import annotations

from .manager import (
                      DEFAULT_LEVEL,
                      TRAIN_LEVEL,
                      Pass,
                      PassContext,
                      PassError,
                      PassStat,
                      all_passes,
                      optimize,
                      passes_for,
                      register_pass,
)

# pipeline order = import order
from . import dead_code, fold_constants, cse, remove_noops, compose_layout  # noqa: F401  isort: skip
from . import narrow_rows  # noqa: F401  isort: skip
from . import fold_batchnorm, pretranspose_linear, fuse_gemm, fuse_attention  # noqa: F401  isort: skip
from . import expand_channel_scale  # noqa: F401  isort: skip
from .computed_constants import check_computed_constants
from .derived import DerivedSpec
from .report import format_report

__all__ = ["DEFAULT_LEVEL", "DerivedSpec", "Pass", "PassContext", "PassError", "PassStat", "TRAIN_LEVEL", "all_passes",
           "check_computed_constants", "format_report", "optimize", "passes_for", "register_pass"]
