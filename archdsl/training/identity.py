"""What made a checkpoint, so that `--resume` continues the same train step: one whose parameters merely have
the same names and shapes (another --model, another -D value, an edited spec) was resumed without a word."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..diagnostics import ArchError

STEP_KEY = "__step__"
SCHEME = 2  # how the digest is made; a checkpoint of another (or none) is compared by its settings alone
_PATTERNS = ("freeze", "no_decay")  # compared by what they select (the step itself), not as written


def graph_digest(g) -> str:
    """The elaborated graph as the spec, -D values and model make it, before any pass (so the same whatever
    the opset, -O level or onnxruntime): inputs, parameters, constants, each node's op, wiring, attributes and
    output types. Not node names and spans, which move with the spec's lines."""
    h = hashlib.sha256()
    refs: dict[int, int] = {}

    def put(*parts) -> None:
        for p in parts:
            h.update(p if isinstance(p, bytes) else repr(p).encode())
            h.update(b"\0")

    for v in (*g.inputs, *g.params.values(), *g.consts):
        refs[id(v)] = len(refs)
        put(v.kind, v.name if v.kind != "const" else "", str(v.type))
        if v.kind == "const":
            put(np.ascontiguousarray(v.data).tobytes())
    for n in g.nodes:
        put(n.op, [refs.get(id(x)) for x in n.inputs], sorted((k, _plain(a)) for k, a in n.attrs.items()),
            [str(o.type) for o in n.outputs])
        for o in n.outputs:
            refs[id(o)] = len(refs)
    put([(k, refs.get(id(v))) for k, v in g.outputs])
    return h.hexdigest()


def _plain(a):
    return a.tobytes() if isinstance(a, np.ndarray) else a


def step_identity(ct) -> dict:
    """What a checkpoint keeps of the train step that made it: the graph's digest with the parameters
    --no-decay took out (the rest of the step's settings are its config), the model's name and param values."""
    h = hashlib.sha256(ct.digest.encode())
    h.update(json.dumps(list(ct.info.undecayed)).encode())
    meta = {p.key: p.value for p in ct.step_model.metadata_props}
    return {"scheme": SCHEME, "sha256": h.hexdigest(), "model": meta.get("archdsl.model"),
            "params": json.loads(meta.get("archdsl.params", "{}")), "undecayed": list(ct.info.undecayed)}


def fingerprint(cfg: dict, patterns: bool = True) -> dict:
    """The train settings that must not change between a checkpoint and its resumption (lr and epochs may)."""
    return {k: v for k, v in cfg.items() if k != "lr" and (patterns or k not in _PATTERNS)}


def check_resume(path, saved_cfg: dict, saved_step: dict | None, cfg: dict, step: dict) -> None:
    """Refuse a checkpoint another train step wrote. A checkpoint from before the step's digest was kept, or
    of another digest's scheme, is compared by its settings alone (its freeze/no_decay patterns as written)."""
    if saved_step is not None and saved_step.get("scheme") != SCHEME:  # an archdsl before this digest's
        saved_step = None
    now, then = fingerprint(cfg, saved_step is None), fingerprint(saved_cfg, saved_step is None)
    if saved_cfg and then != now:
        diff = sorted(k for k in now.keys() | then.keys() if then.get(k) != now.get(k))  # a key one side
        # leaves out (label_smoothing at 0) differs too; state_inputs is the step's own bookkeeping
        moved = _frozen_otherwise(then, now) if set(diff) <= {"params", "buffers", "state_inputs"} else None
        if moved:  # another --freeze, -D value, or a spec that made a parameter trainable=false (or true) since
            defines = _params_changed(saved_step, step)
            why = "the same --freeze" if saved_cfg.get("freeze") != cfg.get("freeze") else \
                f"the same spec and -D values ({'; '.join(defines)})" if defines else \
                "the same spec (which of its parameters are trainable changed)"
            raise ArchError(f"--resume: {path} was made by a run that trained other parameters ({moved}); resume "
                            f"with {why}")
        shown = [f"{k} {_setting(then.get(k))} there, {_setting(now.get(k))} here" for k in diff
                 if k != "state_inputs"] or ["the model's parameters"]
        raise ArchError(f"--resume: {path} was made with other settings ({'; '.join(shown)}); resume with the "
                        "same loss, optimizer and model")
    if saved_step is None or (saved_step.get("sha256"), saved_step.get("model")) == (step["sha256"], step["model"]):
        return  # two models of one file alike in every node are still two models
    shown = [f"model {_setting(saved_step.get('model'))} there, {_setting(step['model'])} here"
             if saved_step.get("model") != step["model"] else ""]
    shown += _params_changed(saved_step, step)
    same = {"freeze": all(set(saved_cfg.get(k) or []) == set(cfg.get(k) or []) for k in ("params", "buffers")),
            "no_decay": isinstance(got := saved_step.get("undecayed"), list) and all(isinstance(n, str) for n in got)
            and set(got) == set(step["undecayed"])}
    shown += [f"{k} {_setting(saved_cfg.get(k))} there, {_setting(cfg.get(k))} here" for k in _PATTERNS
              if saved_cfg.get(k) != cfg.get(k) and not same[k]]  # written otherwise, selecting the same
    # parameters: not the difference (lora hunt, review64; a checkpoint from before "undecayed" was kept says it)
    said = "; ".join(s for s in shown if s) or "the spec computes otherwise since"
    raise ArchError(f"--resume: {path} was made by another train step ({said}); resume with the same spec, "
                    "--model, -D values and training settings")


def _params_changed(saved_step: dict | None, step: dict) -> list[str]:
    """The file params whose values differ between the checkpoint's step and this one, as -D would set them
    (or as the spec gained or lost them; a shadowed imported one, PATH:NAME, which no -D sets, by its file);
    none where the checkpoint keeps no step."""
    if saved_step is None:
        return []
    old, new = saved_step.get("params") or {}, step["params"]
    return [_param_change(k, old, new) for k in sorted(old.keys() | new.keys())
            if k not in old or k not in new or old[k] != new[k]]


def _param_change(k: str, old: dict, new: dict) -> str:
    if k not in old:
        return f"param {k} new in the spec (= {_setting(new[k])})"
    if k not in new:
        return f"param {k} no longer in the spec"
    path, _, name = k.rpartition(":")
    said = f"param {name} of {path} {_setting(old[k])}" if path else f"-D {k}={_setting(old[k])}"
    return f"{said} there, {_setting(new[k])} here"


def _frozen_otherwise(then: dict, now: dict) -> str | None:
    """"fc2.weight, fc2.bias trained there, frozen here" where the same parameters and buffers are only
    split otherwise between trained and frozen (another --freeze); None where the names themselves differ."""
    old, new = set(then.get("params") or []), set(now.get("params") or [])
    if old | set(then.get("buffers") or []) != new | set(now.get("buffers") or []):
        return None
    said = [f"{', '.join(sorted(a - b))} trained {where}, frozen {other}" for a, b, where, other in
            ((old, new, "there", "here"), (new, old, "here", "there")) if a - b]
    return "; ".join(said) or None


def _setting(v) -> str:
    return "not given" if v is None else json.dumps(v)
