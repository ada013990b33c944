"""Weights a user gives (a file's arrays, or a dict's: numpy arrays or torch tensors), checked against the
model's parameters as torch's strict load_state_dict checks a state_dict."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..diagnostics import ArchError, did_you_mean, quoted
from ..ir import Graph
from .weights import narrow_float, raw_bytes, resident, whole_numbers

__all__ = ["checked_weights", "dict_arrays", "torch_array"]


def dict_arrays(w: Mapping) -> dict:
    """A dict of weights (a state_dict: torch tensors on the CPU too) as numpy arrays."""
    _not_a_checkpoint(w)
    return {k: torch_array(k, v) if hasattr(v, "detach") else _array(k, v) for k, v in w.items()}


def _not_a_checkpoint(w: Mapping) -> None:
    """A training checkpoint ({"model": state_dict, "optimizer": {...}, "epoch": 3}) is told which of its dicts
    to pass: the one a checkpoint names so, else the one that holds arrays (not the first dict found)."""
    nested = [k for k, v in w.items() if isinstance(v, Mapping)]
    if not nested:
        return
    arrays = [k for k in nested if w[k] and all(hasattr(a, "shape") for a in w[k].values())]
    best = next((k for k in nested if k in ("state_dict", "model_state_dict", "model", "module", "net")), None) \
        or (arrays[0] if len(arrays) == 1 else None)
    said = ", ".join(map(repr, nested))
    raise ArchError(f"weights holds {'a dict' if len(nested) == 1 else 'dicts'}, not only arrays ({said}): a "
                    "training checkpoint? "
                    + (f"pass its state_dict, weights=checkpoint[{best!r}]" if best else
                       "pass the dict of parameter arrays it holds"))


def _array(name: str, v):
    try:
        return np.asarray(v)
    except ValueError:  # numpy's "inhomogeneous shape"
        raise ArchError(f"weights: '{name}' is a ragged nested list, not an array of one shape") from None


def torch_array(name: str, t):
    """A torch tensor's values: bfloat16 (numpy has no such type) as float32, which holds each value exactly."""
    if getattr(t, "is_meta", False):  # a model built on torch's meta device has shapes and no values
        raise ArchError(f"weights: '{name}' is a torch tensor on the meta device, which holds no values; "
                        "materialize the model first (to_empty() and an init, or load_state_dict)")
    if getattr(t, "layout", None) is not None and str(t.layout) != "torch.strided":
        t = t.to_dense()  # a sparse tensor: its values, zeros filled in
    try:
        t = t.detach().cpu()
        if hasattr(t, "resolve_conj"):  # a lazy conjugate or negation (x.conj().imag) that numpy() refuses
            t = t.resolve_conj().resolve_neg()
        try:
            return np.asarray(t)
        except TypeError:
            if t.is_floating_point():
                return np.asarray(t.float())
            dtype = str(t.dtype).removeprefix("torch.")
            raise ArchError(f"weights: '{name}' is a torch {dtype} tensor, which has no numpy type") from None
    except RuntimeError as e:  # a nested tensor, a quantized one...: torch's own word, as a diagnostic
        said = str(e).replace(" Please file an issue.", "")  # torch's own request, read as archdsl's
        raise ArchError(f"weights: '{name}': torch cannot give its values as an array: {said}") from None


def checked_weights(weights: dict | None, graph: Graph, source=None) -> dict | None:
    """A weights file names exactly the model's parameters and buffers, as torch's strict load_state_dict:
    a missing one would quietly keep its random init (a stale or misspelled file, a model that is mostly
    random), an extra one is a sign of another model. Only numbers load. The buffers torch modules keep
    beside their parameters that the model has no use for (`_torch_buffer`) are taken and dropped: the weights
    are returned without them. `source` (the file) names it in the messages."""
    if weights is None:
        return None
    what = f"weights file {source}" if source else "weights"
    if "__epoch__" in weights and "__epoch__" not in graph.params:  # what save_checkpoint writes
        raise ArchError(f"{what} is a checkpoint of `archdsl train` (the whole training state); the trained "
                        "weights are in the file its -o wrote, and `archdsl train --resume` continues from it")
    weights = {n: a for n, a in weights.items() if not _torch_buffer(n, a, graph.params)}
    unknown = sorted(set(weights) - set(graph.params))
    missing = [n for n in graph.params if n not in weights]
    if unknown:  # a suggestion only among the names on the other side: fc3.weight is not fc2.weight's typo
        label = _unlabelled(unknown, missing, weights, graph)  # said instead of renaming the file's keys
        prefixed = _prefixed(unknown, missing, weights, graph)
        hint = (prefixed or _none_shared(weights, unknown, missing, graph)
                or ("" if label else did_you_mean(unknown[0], missing)) or _tied(unknown, weights))
        if missing and not prefixed and not label:  # torch's strict load says both (newuser6 hunt)
            hint += _lacking_too(unknown, missing, weights, graph, renamed=f"'{missing[0]}'" in hint)
        stats = _running_stats(unknown, graph)
        if not missing and not hint and not stats:  # a VAE's weights for its decoder alone: every name of the
            # model is there
            hint = (f"; it holds all {len(graph.params)} of the model's parameters and buffers besides (another "
                    "model's, as an encoder's beside the decoder built here): keep only the model's names in it "
                    "(`archdsl.check_file(spec).params` holds them), as torch's load_state_dict(strict=False) "
                    "would take it")
        raise ArchError(f"{what} has {len(unknown)} name{'s' if len(unknown) > 1 else ''} the model does not: "
                        f"{quoted(unknown)}{hint}{label}{stats}")
    if missing:
        raise ArchError(f"{what} lacks {len(missing)} of the model's {len(graph.params)} parameters and "
                        f"buffers: {quoted(missing)}; to start those from their initialization (new adapters, a "
                        "new head: torch's load_state_dict(strict=False)), add them to the file: "
                        "{**archdsl.lower.initial_weights(archdsl.check_file(spec), seed), **yours}, the values "
                        "a build with that --seed gives them")
    for name, arr in weights.items():  # every one, also those the passes will drop (an unused layer's)
        v = graph.params[name]
        dtype = np.asarray(arr).dtype  # first: a string's shape is [] and said nothing of what was wrong
        if dtype.kind not in "biuf":
            if not narrow_float(dtype):
                kind = {"c": "complex numbers", "U": "strings", "S": "strings"}.get(
                    dtype.kind, raw_bytes(dtype) or f"{dtype} values")
                raise ArchError(f"{what}: '{name}' holds {kind}; a parameter takes real numbers (int, uint, float)")
            weights = {**weights, name: resident(np.asarray(arr)).astype(np.float32)}  # then to the parameter's
        if all(isinstance(d, int) for d in v.type.shape) and tuple(np.shape(arr)) != tuple(v.type.shape):
            raise ArchError(f"weights: '{name}' has shape {list(np.shape(arr))}{' in the file' if source else ''}, "
                            f"the model needs {list(v.type.shape)}", v.span)
    return weights


def _none_shared(weights: dict, unknown: list[str], missing: list[str], graph: Graph) -> str:
    """A file that names none of the model's parameters is another model's or not weights at all: a guess at
    one name ('embed.weight': did you mean 'mid.bn1.weight'?) pointed the wrong way. Unless each of its names
    is close to one of the model's: a misspelt file ('fc.wieght') is told 'did you mean'."""
    if len(unknown) < len(weights) or all(did_you_mean(u, missing) for u in unknown[:20]):
        return ""
    names = f"{len(weights)} names" if len(weights) > 1 else "1 name"
    return f"; none of its {names} is one of the model's {len(graph.params)} (another model's weights, or not " \
           "weights at all?)"


def _lacking_too(unknown: list[str], missing: list[str], weights: dict, graph: Graph, renamed: bool = False) -> str:
    """The model's names the file lacks beside the names it has too many of: only the extra ones were said, and
    deleting them met a second error. One of each of one shape: the same weight under another name (safetensors'
    save_model keeps one name of a tied pair: lm_head.weight for transformer.wte.weight), unless a did-you-mean
    named it already (`renamed`: a typo, review77)."""
    said = f"; it lacks {len(missing)} of the model's names too: {quoted(missing)}"
    if not renamed and len(unknown) == 1 == len(missing) and \
            tuple(np.shape(weights[unknown[0]])) == tuple(graph.params[missing[0]].type.shape):
        said += (f" (of '{unknown[0]}''s shape: the same weight under another name? safetensors' save_model keeps "
                 f"one name of tied weights: rename it '{missing[0]}')")
    return said


def _torch_buffer(name: str, value, params) -> bool:
    """A buffer a torch module keeps in its state_dict that the model computes itself or has no use for, by
    its name and its form (a learned tensor under such a name is no buffer: it is refused as torch's strict
    load refuses it): a BatchNorm's num_batches_tracked (a count, in every torch state_dict), the causal mask
    `attn.bias` ([1, 1, n, n] of 0 and 1) and `attn.masked_bias` (a number) of Hugging Face's GPT-2
    checkpoints, Swin's relative_position_index (integers), BERT's embeddings.position_ids (0, 1, ..., n-1:
    saved by transformers up to 4.30, and non-persistent after). An integer buffer may come as whole-number
    floats: a state_dict passed through `.float()`, which torch's load_state_dict takes (porting26 hunt)."""
    if name in params:
        return False
    head, _, leaf = name.rpartition(".")
    shape = np.shape(value)
    if leaf == "num_batches_tracked":
        return head + ".running_mean" in params and math.prod(shape) == 1 and whole_numbers(value)
    if leaf == "relative_position_index":
        return head + ".relative_position_bias_table" in params and whole_numbers(value)
    if leaf == "position_ids":  # one id per row of the table (torch's strict load refuses another length)
        table = params.get(head + ".position_embeddings.weight")
        rows = getattr(getattr(table, "type", None), "shape", (None,))[0]
        return table is not None and whole_numbers(value) and len(shape) in (1, 2) and math.prod(shape[:-1]) == 1 \
            and rows in (None, shape[-1]) and bool(np.array_equal(resident(np.asarray(value)).reshape(-1),
                                                                  np.arange(shape[-1])))
    if head.rpartition(".")[2] != "attn" or head + ".c_attn.weight" not in params:
        return False
    if leaf == "masked_bias":
        return math.prod(shape) == 1
    if leaf != "bias" or len(shape) != 4 or shape[:2] != (1, 1) or shape[2] != shape[3]:
        return False
    return bool(np.array_equal(resident(np.asarray(value))[0, 0] != 0, np.tri(shape[2], dtype=bool)))


def _prefixed(unknown: list[str], missing: list[str], weights: dict, graph: Graph) -> str:
    """The missing parameters are the file's names behind one prefix: torch's DataParallel/DDP ('module.'), a
    wrapper module ('model.', Hugging Face's 'transformer.'), torch.compile ('_orig_mod.'), or one net of a
    checkpoint that holds several (a GAN's 'netG.' beside 'netD.'). The suggestion among the missing names
    was a guess ('module.fc1.weight': did you mean 'fc1.bias'?)."""
    if not missing:
        return ""
    params = graph.params
    behind: dict[str, dict[str, str]] = {}  # prefix (module., model.decoder., ...) -> {name behind it: name}
    for u in unknown:  # one pass: a file of 10,000 names took 20 s scanned once per prefix
        parts = u.split(".")
        for i in range(1, min(4, len(parts))):
            prefix = ".".join(parts[:i]) + "."
            behind.setdefault(prefix, {})[u[len(prefix):]] = u
    for prefix, names in behind.items():
        if len(names) < len(missing) or not all(m in names for m in missing):
            continue
        if all(b in params or _torch_buffer(b, weights[u], params) for b, u in names.items()):
            strip = f"k.removeprefix('{prefix}'): v for k, v in state_dict.items()"
            if len(names) == len(unknown):
                return (f"; each is a parameter's name behind '{prefix}' (a wrapper's, as torch's DataParallel "
                        f"'module.'): strip it, {{{strip}}}")
            count = sum(b in params for b in names)
            return (f"; the model's {count} parameters and buffers are its names behind '{prefix}': keep those "
                    f"and strip it, {{{strip} if k.startswith('{prefix}')}}")
    return _wrapped(unknown, missing, weights, params)


def _wrapped(unknown: list[str], missing: list[str], weights: dict, params) -> str:
    """Every name of the file behind one first part (DataParallel's 'module.') that explains some of them, and
    another difference behind it (a submodule the spec names otherwise: 'module.encoder.layers.0...' for
    'layers.0...'): both said, where the nearest-name guess suggested one name of 29 (newuser3 hunt)."""
    heads = {u.partition(".")[0] for u in unknown}
    if len(heads) != 1 or not all("." in u for u in unknown):
        return ""
    prefix = heads.pop() + "."
    behind = {u[len(prefix):] for u in unknown}
    left = [b for b in behind if b not in params and not _torch_buffer(b, weights[prefix + b], params)]
    still = [m for m in missing if m not in behind]  # what stripping the prefix does not give the model
    if not still or len(still) == len(missing):
        return ""
    pair = next(((b, m) for b in sorted(left) for m in still if b.endswith("." + m)), None)
    also = f": '{pair[0]}' is the model's '{pair[1]}' behind '{pair[0][:-len(pair[1])]}'" if pair else ""
    return (f"; every name starts with '{prefix}' (a wrapper's, as torch's DataParallel): strip it; then "
            f"{len(still)} of the model's names {'is' if len(still) == 1 else 'are'} still missing{also}")


def _tied(unknown: list[str], weights: dict) -> str:
    """An extra name holding exactly the values of a name the model reads: torch's state_dict lists a tied
    weight under both modules (head.weight is embed.weight), where a spec reads it once, through ref()."""
    twins: dict[str, list[str]] = {}  # a name the model reads -> the unknown names holding its values
    for name in unknown:
        a = resident(np.asarray(weights[name]))  # read from a mapped file, not through it (SIGBUS if cut short)
        if a.size < 2 or (a == a.flat[0]).all():  # zeros (a fresh bias) equal many things by chance
            continue
        twin = next((k for k, b in weights.items() if k != name and k not in unknown and np.shape(b) == a.shape
                     and np.array_equal(resident(np.asarray(b)), a)), None)
        if twin is not None:
            twins.setdefault(twin, []).append(name)
    if not twins:
        return ""
    twin, names = next(iter(twins.items()))  # one weight at a time: the message stays short
    if len(names) == 1:
        return (f"; '{names[0]}' holds the same values as '{twin}': a weight torch ties, listed under both names, "
                f"which the model reads once (ref(\"{twin}\")); leave '{names[0]}' out")
    return (f"; {quoted(names)} hold the same values as '{twin}': a weight torch ties, listed under each of "
            f"these names, which the model reads once (ref(\"{twin}\")); leave them out")


def _running_stats(unknown: list[str], graph: Graph) -> str:
    """torch's InstanceNorm(track_running_stats=True) keeps statistics an instance_norm has no use for (it
    normalizes by each example's own, in training and inference alike)."""
    layers = {n.name for n in graph.nodes if n.op == "instance_norm"}
    stats = [u for u in unknown if u.rpartition(".")[2] in ("running_mean", "running_var", "num_batches_tracked")
             and u.rpartition(".")[0] in layers]
    if not stats:
        return ""
    return (f"; {stats[-1].rpartition('.')[0]} is an instance_norm, which normalizes by each example's own "
            "statistics (torch's default, track_running_stats=False) and keeps none; these come from "
            "track_running_stats=True, whose eval mode would use them instead: leave them out of the file if each "
            "example's own statistics are what you want")


def _unlabelled(unknown: list[str], missing: list[str], weights: dict, graph: Graph) -> str:
    """Where every name of the file's under one part (torch's self_attn) is a model's name under another that is
    an unlabelled layer's automatic one (multihead_attention_0: an op's name and a number), shapes alike: label
    that layer as the file names it (newuser4 hunt: only renaming the file's keys was said; review69: a
    pairing by name alone chose another layer, and a user's label enc_1 was called automatic)."""
    have = unknown[0].split(".")
    for name in missing:
        want = name.split(".")
        inside = _inside_a_block(have, want, unknown, weights, graph)
        if inside:
            return inside
        differ = [i for i, (a, b) in enumerate(zip(have, want)) if a != b] if len(want) == len(have) else []
        if len(differ) != 1:
            continue
        i = differ[0]
        if _automatic(want[i]) is None:  # a label the user wrote (enc_1), not an op's name
            continue
        if _moved_alike(".".join(have[:i + 1]) + ".", ".".join(want[:i + 1]) + ".", unknown, weights, graph):
            return (f"; the file lacks {len(missing)} of the model's names beside them: '{want[i]}' is an unlabelled "
                    f"layer's automatic name, and labelling that layer `as {have[i]}` in the spec gives it the file's")
    return ""


def _moved_alike(prefix: str, mine: str, unknown: list[str], weights: dict, graph: Graph) -> bool:
    """Whether each of the file's names under `prefix` is a model's name under `mine` instead, of its shape."""
    for n in unknown:
        if n.startswith(prefix):
            target = graph.params.get(mine + n[len(prefix):])
            if target is None or tuple(np.shape(weights[n])) != tuple(target.type.shape):
                return False
    return True


def _automatic(part: str) -> str | None:
    """The op of an unlabelled layer's automatic name (conv1d_0: conv1d), None for a label the user wrote."""
    import re

    from ..ops import lookup
    auto = re.fullmatch(r"([a-z][a-z0-9_]*)_\d+", part)
    return auto[1] if auto is not None and lookup(auto[1]) is not None else None


def _inside_a_block(have: list[str], want: list[str], unknown: list[str], weights: dict, graph: Graph) -> str:
    """The file's filter_conv.weight where the model has filter_conv.conv1d_0.weight: one layer inside a block
    called `as filter_conv`, where torch's module (WaveNet's CausalConv1d: a pad, then its conv) holds the weights
    itself. "Did you mean" only said to rename the file's keys (porting6 hunt)."""
    if len(want) != len(have) + 1:
        return ""
    i = next((j for j in range(len(have)) if want[j] != have[j]), len(have))
    op = _automatic(want[i]) if 0 < i and want[i + 1:] == have[i:] else None
    if op is None:
        return ""
    if not _moved_alike(".".join(have[:i]) + ".", ".".join(want[:i + 1]) + ".", unknown, weights, graph):
        return ""
    return (f"; '{want[i]}' is the automatic name of the unlabelled {op} inside the block named "
            f"'{'.'.join(have[:i])}', "
            f"where the file's module holds its weights itself: label that {op} `as \"{{name}}\"` with the block's "
            f"name passed in as a parameter, and call the block without `as`")
