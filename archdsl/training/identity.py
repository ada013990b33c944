"""What made a checkpoint, so that `--resume` continues the same train step: one whose parameters merely have
the same names and shapes (another --model, another -D value, an edited spec) was resumed without a word."""

from __future__ import annotations

import hashlib
import json

import onnx

from ..diagnostics import ArchError

STEP_KEY = "__step__"
_PATTERNS = ("freeze", "no_decay")  # compared by what they select (the step itself), not as written


def step_identity(model: onnx.ModelProto, state_inputs) -> dict:
    """A digest of the step's computation (its nodes' ops, wiring and attributes, its constants, its inputs and
    outputs; not node names, which hold the spec's line numbers, nor the state's starting values), with the
    model's name and param values to say what differs."""
    h = hashlib.sha256()
    for n in model.graph.node:
        bare = onnx.NodeProto()
        bare.CopyFrom(n)
        bare.ClearField("name")
        bare.ClearField("doc_string")
        h.update(bare.SerializeToString(deterministic=True))
    state = set(state_inputs)
    for t in model.graph.initializer:
        if t.name not in state:
            h.update(t.SerializeToString(deterministic=True))
    for v in (*model.graph.input, *model.graph.output):
        h.update(v.SerializeToString(deterministic=True))
    meta = {p.key: p.value for p in model.metadata_props}
    return {"sha256": h.hexdigest(), "model": meta.get("archdsl.model"),
            "params": json.loads(meta.get("archdsl.params", "{}"))}


def fingerprint(cfg: dict, patterns: bool = True) -> dict:
    """The train settings that must not change between a checkpoint and its resumption (lr and epochs may)."""
    return {k: v for k, v in cfg.items() if k != "lr" and (patterns or k not in _PATTERNS)}


def check_resume(path, saved_cfg: dict, saved_step: dict | None, cfg: dict, step: dict) -> None:
    """Refuse a checkpoint another train step wrote. A checkpoint from before the step's digest was kept is
    compared by its settings alone (its freeze/no_decay patterns as written)."""
    now, then = fingerprint(cfg, saved_step is None), fingerprint(saved_cfg, saved_step is None)
    if saved_cfg and then != now:
        diff = sorted(k for k in now.keys() | then.keys() if then.get(k) != now.get(k))  # a key one side
        # leaves out (label_smoothing at 0) differs too; state_inputs is the step's own bookkeeping
        shown = [f"{k} {_setting(then.get(k))} there, {_setting(now.get(k))} here" for k in diff
                 if k != "state_inputs"] or ["the model's parameters"]
        raise ArchError(f"--resume: {path} was made with other settings ({'; '.join(shown)}); resume with the "
                        "same loss, optimizer and model")
    if saved_step is None or (saved_step.get("sha256"), saved_step.get("model")) == (step["sha256"], step["model"]):
        return  # two models of one file alike in every node are still two models
    shown = [f"model {_setting(saved_step.get('model'))} there, {_setting(step['model'])} here"
             if saved_step.get("model") != step["model"] else ""]
    old, new = saved_step.get("params") or {}, step["params"]
    shown += [f"-D {k}={_setting(old.get(k))} there, {_setting(new.get(k))} here"
              for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    shown += [f"{k} {_setting(saved_cfg.get(k))} there, {_setting(cfg.get(k))} here" for k in _PATTERNS
              if saved_cfg.get(k) != cfg.get(k)]
    said = "; ".join(s for s in shown if s) or "the spec computes otherwise since"
    raise ArchError(f"--resume: {path} was made by another train step ({said}); resume with the same spec, "
                    "--model, -D values and training settings")


def _setting(v) -> str:
    return "not given" if v is None else json.dumps(v)
