"""DESIGN.md's layering, checked: no import (at module level or inside a function) runs back up the stages.

types ◀── ops ◀── ir ◀── syntax / elaborate / passes / autodiff / lower ◀── driver ◀── cli; diagnostics,
interrupts, user_cache and shared_switch at the bottom; runtime (over types) used by the driver and the faces
only. The train step's lowering (training.export) is a stage beside lower; the training loop and its benchmark
are faces, like cli and bench."""

from __future__ import annotations

import ast
from pathlib import Path

import archdsl

ROOT = Path(archdsl.__file__).parent
BASE = {"diagnostics", "_version", "interrupts", "user_cache", "shared_switch"}
STAGES = {"types", "ops", "ir", "syntax", "elaborate", "passes", "autodiff", "lower", "summary", "files"}
FACES = {"cli", "bench", "training.loop", "training.options", "training.data", "training.schedule", "training.bench",
         "training.torch_ref", "training.metrics", "training.nonfinite", "__main__", "_launch"}

# what each unit may import besides itself and BASE
ALLOWED = {
    "diagnostics": set(), "_version": set(), "interrupts": set(), "user_cache": set(), "shared_switch": set(),
    "files": set(),
    "types": set(),
    "ops": {"types"},
    "ir": {"ops", "types"},
    "syntax": set(),
    "elaborate": {"syntax", "ir", "ops", "types"},
    "passes": {"ir", "ops", "types"},
    "autodiff": {"ir", "ops", "types"},
    "lower": {"ir", "ops", "types", "files"},
    "summary": {"ir", "ops", "types"},
    "training.export": {"autodiff", "lower", "ir", "ops", "types", "files"},
    "training.identity": set(),  # a train step's digest, for --resume: the driver makes it, the loop compares
    "training": {"training.export"},  # the package's __init__ re-exports the stage
    "runtime": {"types"},  # the dims a model file names: types reads the formulas it wrote
    "driver": STAGES | {"training", "training.export", "training.identity", "runtime"},
    "": {"driver"},  # archdsl/__init__.py: the public API
}
FACE_ALLOWED = STAGES | {"driver", "runtime", "training", "training.export", "training.identity"} | FACES


def _unit(parts: list[str]) -> str:
    """The layer a module (its path parts under archdsl/, no suffix) belongs to."""
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts:
        return ""
    if parts[0] == "training" and len(parts) > 1:
        return f"training.{parts[1]}"
    return parts[0]


def _imports(source: str, parts: list[str]) -> list[tuple[int, list[str]]]:
    """(line, target module parts under archdsl/) of every import of archdsl in the module at `parts`."""
    package = parts[:-1]  # the package a relative import starts from (for __init__ too: its own package)
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "archdsl":
                base = []
                node_module = node.module.split(".")[1:]
                out += [(node.lineno, node_module + [a.name]) for a in node.names]
                continue
            else:
                continue
            mod = node.module.split(".") if node.module else []
            out += [(node.lineno, base + mod + [a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "archdsl"]
    return out


def _target_unit(target: list[str]) -> str:
    """The unit an imported name lives in: `from ..ir import Graph` is ir; `from .. import driver` is driver."""
    if not target:
        return ""
    first = target[0]
    if (ROOT / first).is_dir() or (ROOT / f"{first}.py").is_file():
        if first == "training" and len(target) > 1 and (ROOT / "training" / f"{target[1]}.py").is_file():
            return f"training.{target[1]}"
        return first
    return ""  # a name from archdsl/__init__.py itself


def test_no_import_runs_back_up_the_layers():
    wrong = []
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        unit = _unit(parts)
        allowed = FACE_ALLOWED if unit in FACES else ALLOWED[unit]
        for line, target in _imports(path.read_text(), parts):
            to = _target_unit(target)
            if to == unit or to in BASE or to in allowed:
                continue
            wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {unit or 'archdsl'} imports {to or 'archdsl'}")
    assert not wrong, "imports against DESIGN.md's layering:\n" + "\n".join(wrong)


def test_the_check_resolves_every_form_of_import():
    """The walker must resolve relative imports, or the test above could pass on anything."""
    source = ("from ..ir import Graph\nfrom .. import driver\nfrom . import registry\nfrom .._version import "
              "__version__\nimport archdsl.passes\ndef f():\n    from archdsl.training import loop\n")
    got = [_target_unit(t) for _, t in _imports(source, ["ops", "probe"])]
    assert got == ["ir", "driver", "ops", "_version", "passes", "training.loop"]
    assert _unit(["ops", "probe"]) == "ops" and _unit(["training", "__init__"]) == "training"
    assert _unit(["__init__"]) == "" and _unit(["training", "loop"]) == "training.loop"


def test_the_package_runs_nothing_for_a_private_name():
    """getattr(archdsl, "__main__", None) imported archdsl.__main__, which ran the command line on the program's
    own argv (and exited)."""
    assert getattr(archdsl, "__main__", None) is None
    assert {"compile_source", "check_file"} <= set(dir(archdsl))
