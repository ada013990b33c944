"""The train step as one IR graph: forward in training mode, loss, gradients, optimizer update.

Inputs: the model's inputs, `labels` (unless the spec computes its own loss), `apply` (gradient
accumulation only), then state: every trainable parameter, every buffer, the optimizer state, (when
accumulating: each parameter's gradient sum `<param>.grad_sum` and the micro-batch counter `micro`), `lr`,
`step` (and `seed` when dropout is active). Outputs: `loss`, then the new value of each state input (named
`<input>.new`), then the model's own outputs. `state` maps each state output to its input.

Accumulation over N micro-batches is torch's loop of `(loss / N).backward()` with an optimizer step every N:
each step adds its gradient / N to the sums; where `apply` is true the optimizer runs on the sums (clipped,
if asked, as clip_grad_value_ then clip_grad_norm_ before opt.step()) and they restart at zero; elsewhere
parameters, optimizer state and `step` pass through (Where), so one model serves both kinds of batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..diagnostics import ArchError, did_you_mean
from ..ir import Graph, Value, check
from ..ops import Init, ParamSpec
from ..ops.losses import squashed_logits, squashing
from ..types import DType, TensorType, dim_size, is_symbol
from .builder import GradBuilder
from .engine import gradients, prune_dead
from .losses import image_classes, labels_type, make_loss
from .optimizers import OptimConfig, StateSlot, as_float32, check_kinds, plain_numbers, update
from .train_mode import TrainInputs, drop_seed_input, to_training

__all__ = ["NEW", "TrainConfig", "TrainStep", "build_train_step", "resolved"]

NEW = ".new"


@dataclass(frozen=True)
class TrainConfig:
    # cross_entropy, mse, bce_with_logits on an output and `labels`; "model": the model's own scalar output
    # (named loss, or --output-name); None: "model" when the model has an output named loss, else cross_entropy
    loss: str | None = None
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    lr: float = 1e-3
    label_smoothing: float = 0.0
    ignore_index: int | None = None  # cross_entropy: labels equal to it count for nothing (torch's ignore_index)
    clip_grad_norm: float | None = None  # scale the gradients to at most this global 2-norm (torch's clip_grad_norm_)
    clip_grad_value: float | None = None  # clamp every gradient element to [-v, v] (torch's clip_grad_value_)
    output: str | None = None  # the model output the loss reads (default: the first)
    freeze: tuple[str, ...] = ()  # parameters left as they are: names, prefixes (layer1) or patterns (*.bias)
    accumulate: int = 1  # micro-batches whose gradients (each / accumulate) sum to one update
    no_decay: tuple[str, ...] = ()  # parameters without weight decay (patterns as freeze: biases, norms)

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("freeze", "no_decay"):  # freeze="fc" is one pattern, not the letters f and c
            value = getattr(self, name)
            if value is None or isinstance(value, str):
                object.__setattr__(self, name, () if value is None else (value,))
            else:  # any iterable of them (dict keys too), kept as a tuple; freeze=3 was a bare TypeError (review116)
                try:
                    patterns = tuple(value)
                except TypeError:
                    patterns = None
                if patterns is None or not all(isinstance(p, str) for p in patterns):
                    shown = value if patterns is None else list(patterns)
                    raise ArchError(f"{name} takes a pattern or a list of patterns (strings), got {shown!r}")
                object.__setattr__(self, name, patterns)

    def validate(self) -> None:
        """Settings that no model makes right: checked before any compile (the CLI: a usage error)."""
        if not isinstance(self.optimizer, OptimConfig):  # optimizer="adam" from Python: an AttributeError
            raise ArchError(f"optimizer takes an OptimConfig (OptimConfig(\"adam\")), got {self.optimizer!r}")
        check_kinds(self, {"lr": (float, False), "label_smoothing": (float, False), "clip_grad_norm": (float, True),
                           "clip_grad_value": (float, True), "accumulate": (int, False),
                           "ignore_index": (int, True), "loss": (str, True), "output": (str, True)})
        self.optimizer.validate()
        for what in ("loss", "output"):  # "" was taken as the default (the CLI's --loss "" is refused; review116)
            if getattr(self, what) == "":
                raise ArchError(f"{what} takes a name or None (the default), got ''")
        lr = as_float32("the learning rate", self.lr)  # 10**400 from Python is inf
        if not 0 <= lr < float("inf"):  # 0, as torch's optimizers take it: the state and BatchNorm's
            raise ArchError(f"the learning rate must be 0 or more and finite, got {lr}")  # statistics move
        lr32 = float(np.float32(lr))  # the step's lr input is float32
        if not (0 < lr32 or lr == 0):
            raise ArchError(f"the learning rate {self.lr} is {lr32} in float32, the step's lr input; it must be "
                            "positive and finite there")
        if self.loss == "model":  # said before the generic refusals below: the spec's loss may be a cross_entropy
            _no_loss_settings(self, "with --loss model the spec computes its own")
        if self.label_smoothing and self.loss not in ("cross_entropy", None):
            raise ArchError("label smoothing applies to the cross_entropy loss only")
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ArchError(f"label smoothing must be in [0, 1], got {self.label_smoothing}")
        for what, v in (("norm", self.clip_grad_norm), ("value", self.clip_grad_value)):
            if v is None:
                continue  # a norm past float32's largest clips nothing, as torch's (the step holds float32's)
            v = as_float32(f"the gradient {what} to clip to", v, refuse=what == "value")
            if not 0 < v < float("inf"):
                raise ArchError(f"the gradient {what} to clip to must be positive and finite, got {v}")
        if self.ignore_index is not None and self.loss not in ("cross_entropy", None):
            raise ArchError("an ignored label index applies to the cross_entropy loss only")
        if self.ignore_index is not None and not -2**63 <= self.ignore_index < 2**63:
            raise ArchError(f"the ignored label index must fit in int64, got {self.ignore_index}")
        if self.no_decay and not self.optimizer.decay:
            raise ArchError(f"--no-decay leaves out weight decay, but {self.optimizer.name} has none here "
                            "(give --weight-decay)")
        if not 1 <= self.accumulate <= 2**31:
            raise ArchError(f"gradient accumulation takes 1 to {2**31} micro-batches per update, got {self.accumulate}")

    def describe(self) -> dict:
        o = self.optimizer
        d = {"loss": self.loss, "optimizer": o.name, "lr": self.lr, "weight_decay": o.decay}
        if self.label_smoothing:
            d["label_smoothing"] = self.label_smoothing
        if self.ignore_index is not None:
            d["ignore_index"] = self.ignore_index
        if self.clip_grad_norm is not None:
            d["clip_grad_norm"] = self.clip_grad_norm
        if self.clip_grad_value is not None:
            d["clip_grad_value"] = self.clip_grad_value
        if self.freeze:
            d["freeze"] = list(self.freeze)
        if self.accumulate > 1:
            d["accumulate"] = self.accumulate
        if self.no_decay:
            d["no_decay"] = list(self.no_decay)
        if o.name == "sgd":
            d.update(momentum=o.momentum, nesterov=o.nesterov)
            if o.dampening:
                d["dampening"] = o.dampening
        else:
            d.update(betas=list(o.betas), eps=o.eps)
            if o.amsgrad:
                d["amsgrad"] = True
        return d


@dataclass
class TrainStep:
    graph: Graph
    data_inputs: list[str]
    state_inputs: list[str]
    state: dict[str, str]  # state output -> the input it replaces
    output: str  # the model output the loss reads
    params: list[str]  # trainable parameters
    buffers: list[str]
    config: TrainConfig
    bn_dims: tuple = ()  # each BatchNorm input's dims but its channels (symbols where the model has them)
    undecayed: tuple[str, ...] = ()  # the trainable parameters --no-decay took out of weight decay
    batch: tuple[str, ...] = ()  # the data inputs' symbolic first dims: 1 at one example

    @property
    def stateless(self) -> bool:
        """sgd without momentum and no accumulation: the step keeps no state beside the weights."""
        c = self.config
        return c.optimizer.name == "sgd" and not c.optimizer.momentum and c.accumulate == 1

    @property
    def labelled(self) -> bool:
        """Whether the step takes `labels` (a loss of --loss), not a loss the model computes itself."""
        return self.config.loss != "model"

    @property
    def min_batch(self) -> int:
        """2 when a batch of one example may leave some BatchNorm one value per channel, sizes unknown."""
        return self.min_batch_at({})

    def min_batch_at(self, sizes: dict[str, int]) -> int:
        """min_batch once the symbolic dims have sizes (the training data's, the batch's at one example): a
        BatchNorm over [B, C, H, W] needs two examples only where H * W is 1, one over [2*B, C] (SimCLR's two
        views) or [B*T, C] (flattened tokens) never; a dim it cannot work out may be 1."""
        one = {**dict.fromkeys(self.batch, 1), **sizes}
        return 2 if any(_may_be_one(dims, one) for dims in self.bn_dims) else 1


_STATE_WHAT = {"seed": "what dropout and random calls draw from", "step": "the step count",
               "lr": "the learning rate", "micro": "the micro-batch count",
               "labels": "the targets the loss compares with", "apply": "true on the micro-batch that updates"}


def _refuse_reserved_params(g: Graph, names: set[str]) -> None:
    """A parameter named as one of the step's own inputs became that input too (labels: float weights read as
    int64 targets, an invalid model) or met the step's state of that name (seed: a wrong-shaped weight)."""
    for name in sorted(names & set(g.params)):
        raise ArchError(f"parameter '{name}' has the name of an input of the train step ({_STATE_WHAT[name]}); "
                        "name it apart with 'as'", g.params[name].span)


def _scalar_input(g: Graph, name: str, dtype: DType, init: Init) -> Value:
    clash = next((v for v in g.inputs if v.name == name), None)
    if clash is not None:  # a declared `seed` read as data too
        raise ArchError(f"a model input is named '{name}', which the train step takes as its own {dtype} scalar "
                        f"state ({_STATE_WHAT.get(name, name)}); rename the input", clash.span)
    return g.add_param(name, ParamSpec(name, (), init, trainable=False), dtype)


def _largest(dtype: DType) -> float:
    import ml_dtypes  # numpy's finfo does not know bfloat16
    return float(ml_dtypes.finfo(dtype.np).max)


def _clipped(ob: GradBuilder, grads: list, max_norm: float) -> list:
    """torch.nn.utils.clip_grad_norm_: every gradient times min(1, max_norm / (||all gradients||_2 + 1e-6)),
    the norm over all of them together, summed in float32 (float64 when a parameter is)."""
    live = [g for g in grads if g is not None]
    wide = "float64" if any(g.type.dtype is DType.float64 for g in live) else "float32"
    squares = [ob.op("sum", ob.op("mul", g32, g32)) for g32 in
               (g if g.type.dtype.label == wide else ob.op("cast", g, dtype=wide) for g in live)]
    total = squares[0]
    for s in squares[1:]:
        total = ob.op("add", total, s)
    norm = ob.op("sqrt", total)
    top = ob.const(min(max_norm, float(np.finfo(norm.type.dtype.numpy).max)), like=norm)  # 1e300: none clipped
    coef = ob.op("minimum", ob.op("div", top, ob.op("add", norm, ob.const(1e-6, like=norm))), ob.const(1.0, like=norm))
    by_dtype: dict = {}
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        label = g.type.dtype.label
        if label not in by_dtype:
            by_dtype[label] = coef if label == wide else ob.op("cast", coef, dtype=label)
        out.append(ob.op("mul", g, by_dtype[label]))
    return out


def _accumulated(graph: Graph, ob: GradBuilder, params: list, grads: list, n: int) -> tuple[list, list]:
    """Each gradient / n added to its running sum (a state input `<param>.grad_sum`, zeros at the start):
    the sums are what the update reads, and (name, sum) what the step writes back."""
    totals, sums = [], []
    for p, g in zip(params, grads):
        if g is None:
            totals.append(None)
            continue
        name = f"{p.name}.grad_sum"
        if name in graph.params:
            raise ArchError(f"the train step's gradient sum '{name}' has the name of a model parameter; name it "
                            "apart with 'as'", graph.params[name].span)
        acc = graph.add_param(name, ParamSpec(name, tuple(p.type.shape), Init("zeros"), trainable=False),
                              p.type.dtype)
        total = ob.op("add", acc, ob.op("mul", g, ob.const(1.0 / n, like=g)))
        totals.append(total)
        sums.append((name, total))
    return totals, sums


def resolved(cfg: TrainConfig, outputs) -> TrainConfig:
    """The loss a config without one trains: the model's output named loss where it has one (a loss the spec
    computes), else cross_entropy; a spec loss takes no settings that belong to a loss of --loss."""
    import dataclasses
    loss = cfg.loss or ("model" if "loss" in outputs else "cross_entropy")
    if loss == "model":
        _no_loss_settings(cfg, f"the model computes its own loss (its output '{cfg.output or 'loss'}')")
    return dataclasses.replace(cfg, loss=loss)


def _warn_untrained(graph: Graph, out_name: str, ungraded: list[Value], spec_loss: bool) -> None:
    """Parameters that feed only outputs the loss does not read (a second head) stay as initialized, as in
    torch: said once, at the first of them (one that feeds nothing has its own warning). So are ones the loss
    reaches only through detach (a GAN's discriminator step over detach(gen(z)), where torch's optimizer would
    hold the discriminator's alone)."""
    fed: dict[int, list[str]] = {}  # a value's id -> the other outputs it feeds
    for name, v in graph.outputs:
        if name != out_name:
            for i in _ancestors(v):
                fed.setdefault(i, []).append(name)
    upstream = _ancestors(dict(graph.outputs)[out_name])
    stopped = [p for p in ungraded if id(p) in upstream]  # what also feeds an output the loss reads is stopped
    left = [p for p in ungraded if id(p) in fed and id(p) not in upstream]  # (vqvae hunt: it said "feeds
    # output 'recon'" of a VQ-VAE's encoder past an argmin, the loss reading recon)
    if stopped:
        held = {id(p) for p in stopped}
        one = len(stopped) == 1  # one parameter's own name freezes it (review57: "with each of their names")
        prefix = _prefix(stopped, [p for p in graph.trainable() if id(p) not in held]) or (stopped[0].name if one
                                                                                            else "")
        them, its = ("it", "its") if one else ("them", "their")
        graph.warnings.append((f"{_listed(stopped)} reach{'es' if one else ''} the loss (on "
                               f"'{out_name}') only through detach (or integer and comparison ops): no gradient, so "
                               f"the step leaves {them} as {'it is' if one else 'they are'}, carrying {its} optimizer "
                               f"state unchanged; {f'--freeze {prefix} ' if prefix else '--freeze with each of '}"
                               f"{'' if prefix else 'their names '}leaves {them} out of the update's state",
                               stopped[0].span))
    if left:
        outs = list(dict.fromkeys(o for p in left for o in fed[id(p)]))
        one = len(left) == 1
        graph.warnings.append((f"{_listed(left)} get{'s' if one else ''} no gradient from the loss (on '{out_name}'); "
                               f"{'it feeds' if one else 'they feed'} output{'s' if len(outs) > 1 else ''} "
                               f"{', '.join(repr(o) for o in outs)}, and the train step leaves "
                               f"{'it' if one else 'them'} as initialized, as torch does"
                               + ("" if spec_loss else "; a loss the spec computes (an output named loss) can train "
                                  "every output"), left[0].span))


def _listed(params: list[Value]) -> str:
    return ", ".join(f"'{p.name}'" for p in params[:4]) + (f" and {len(params) - 4} more" if len(params) > 4 else "")


def _prefix(params: list[Value], others: list[Value]) -> str:
    """The layer prefix `params` share and no other parameter has (G of G.fc1.weight and G.fc2.bias), or ""."""
    parts = [p.name.split(".")[:-1] for p in params]
    n = 0
    while all(len(q) > n and q[n] == parts[0][n] for q in parts):
        n += 1
    prefix = ".".join(parts[0][:n])
    return prefix if prefix and not any(o.name == prefix or o.name.startswith(prefix + ".") for o in others) else ""


def _ancestors(v: Value) -> set[int]:
    seen, todo = set(), [v]
    while todo:
        u = todo.pop()
        if id(u) not in seen:
            seen.add(id(u))
            todo.extend(u.producer.inputs if u.producer is not None else ())
    return seen


def _no_loss_settings(cfg: TrainConfig, why: str) -> None:
    """Label smoothing and ignore_index are settings of a loss archdsl adds; a spec's own loss takes them in
    its cross_entropy(...) call."""
    for flag, given in (("label smoothing", cfg.label_smoothing), ("an ignored label index",
                                                                   cfg.ignore_index is not None)):
        if given:
            raise ArchError(f"{flag} applies to the cross_entropy loss archdsl adds (--loss cross_entropy); {why}: "
                            "give it to the spec's cross_entropy(...)")


def build_train_step(graph: Graph, cfg: TrainConfig) -> TrainStep:
    """Turn a checked forward graph into the train step (in place) and check the result."""
    cfg.validate()
    outputs = dict(graph.outputs)
    defaulted = cfg.loss is None
    cfg = resolved(cfg, outputs)
    labelled = cfg.loss != "model"
    out_name = cfg.output or (graph.outputs[0][0] if labelled else "loss")
    if out_name not in outputs:
        names = list(outputs)  # 4000 outputs made a 27 KB line: the first few, and the count
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise ArchError(f"model {graph.name} has no output '{out_name}' (outputs: {shown})"
                        + ("" if labelled else "; --loss model minimizes the model's output named loss, or the "
                           "one --output-name names"), graph.span)
    if "loss" in outputs and labelled:
        raise ArchError(f"a model output is named 'loss', which the train step outputs as the loss it minimizes: "
                        f"leave out --loss {cfg.loss} to train on the model's own loss, or rename the output",
                        outputs["loss"].span)
    drop_seed_input(graph)  # rand_like's `seed`: the step's own seed state (and its step) replace it
    data_inputs = [v.name for v in graph.inputs]
    _refuse_reserved_params(graph, {"lr", "step", "seed"} | ({"micro", "apply"} if cfg.accumulate > 1 else set())
                            | ({"labels"} if labelled else set()))
    if "labels" in data_inputs and labelled:
        raise ArchError(f"a model input is named 'labels'; the train step of --loss {cfg.loss} feeds the targets "
                        "under that name (rename the input, or compute the loss in the spec: an output named loss, "
                        "e.g. cross_entropy(logits, labels))", next(v.span for v in graph.inputs if v.name == "labels"))
    if not labelled:
        t = outputs[out_name].type
        if t.rank or not t.dtype.is_float:
            raise ArchError(f"the loss must be a float scalar to minimize; output '{out_name}' is {t}"
                            + (" (reduce it: mean(...))" if t.dtype.is_float else ""), outputs[out_name].span)
        if out_name != "loss" and "loss" in outputs:
            raise ArchError(f"the train step outputs the loss it minimizes (output '{out_name}') as 'loss', which "
                            "would hide the model's own output named loss; rename one of them", outputs["loss"].span)
    frozen = _freeze(graph, cfg.freeze) if cfg.freeze else set()
    undecayed = _undecayed(graph, cfg, frozen) if cfg.no_decay else set()
    params = [v for v in graph.trainable()]
    buffers = [v for v in graph.buffers()]
    if not params:
        raise ArchError(f"model {graph.name} has no trainable parameters"
                        + (" (--freeze left none)" if cfg.freeze else ""), graph.span)

    lr = _scalar_input(graph, "lr", DType.float32, Init("constant", cfg.lr))
    step = _scalar_input(graph, "step", DType.int64, Init("zeros"))
    # dropout draws anew per micro-batch: `step` stands still while gradients accumulate
    micro = _scalar_input(graph, "micro", DType.int64, Init("zeros")) if cfg.accumulate > 1 else None
    extra = TrainInputs(lambda: _scalar_input(graph, "seed", DType.int64, Init("zeros")), micro or step)
    bn_dims = tuple(tuple(n.inputs[0].type.shape[:1] + n.inputs[0].type.shape[2:]) for n in graph.nodes
                    if n.op == "batchnorm")
    # a segmentation map [N, C, H, W] under cross_entropy, read before the convs become their training forms
    image = image_classes(cfg.loss, dict(graph.outputs)[out_name], out_name, defaulted) if labelled else None
    buffer_updates = to_training(graph, extra)
    check(graph)  # the training forms are shape-checked like the rest

    pred = dict(graph.outputs)[out_name]
    if labelled:
        try:
            lt = labels_type(cfg.loss, pred.type, out_name)
        except ArchError as e:  # at the output's definition; a default loss says it was one
            hint = ("; cross_entropy is the default loss: --loss names another (mse, bce_with_logits), or the "
                    "spec computes its own (an output named loss)") if defaulted else ""
            if not pred.type.rank and pred.type.dtype.is_float:  # --output-name total: the spec's own loss, whose
                hint += f"; if '{out_name}' is the loss itself, --loss model trains on it"  # flag went unsaid
            if cfg.loss == "cross_entropy" and squashing("bce_with_logits", pred) is not None:  # DCGAN's D
                hint = (f"; output '{out_name}' ends in a sigmoid, which bce_with_logits applies itself: end the "
                        "model at the sigmoid's input for it") + hint
            raise ArchError(e.message + hint, e.span or pred.span, e.notes) from None
        if image:
            graph.warnings.append((image, pred.span))
        if (squash := squashing(cfg.loss, pred)) is not None:  # `y = ... -> softmax` under --loss cross_entropy
            graph.warnings.append((f"output '{out_name}': --loss {squashed_logits(cfg.loss)}; end it at the "
                                   f"logits (for probabilities as well, a second output {squash.op}(logits), and "
                                   "--output-name naming the logits)", squash.span))
        labels = graph.add_input("labels", lt)
        b = GradBuilder(graph, None, tag="loss")
        loss = make_loss(b, cfg.loss, pred, labels, cfg.label_smoothing, cfg.ignore_index)
    else:
        loss = pred
    grads = gradients(graph, loss, params)
    if all(g is None for g in grads):  # torch: "element 0 of tensors does not require grad"
        raise ArchError(f"the loss does not depend on any trainable parameter: no gradient reaches output "
                        f"'{out_name}' (eq, comparisons, casts to integers and detach pass none, as in torch)",
                        pred.span)

    _warn_untrained(graph, out_name, [p for p, g in zip(params, grads) if g is None], not labelled)
    ob = GradBuilder(graph, None, tag="optim")
    sums: list = []
    if cfg.accumulate > 1:
        if "apply" in data_inputs:
            raise ArchError("a model input is named 'apply', which gradient accumulation's step feeds (true on "
                            "the micro-batch that updates); rename the input",
                            next((v.span for v in graph.inputs if v.name == "apply"), None))
        apply = graph.add_input("apply", TensorType(DType.bool, ()))
        grads, sums = _accumulated(graph, ob, params, grads, cfg.accumulate)
    if cfg.clip_grad_value is not None:  # first, as a torch loop that calls both usually does
        for p, g in zip(params, grads):  # torch's clip_grad_value_ refuses it too
            top = _largest(g.type.dtype) if g is not None and g.type.dtype.is_float else None
            if top is not None and cfg.clip_grad_value > top:
                raise ArchError(f"the gradient value to clip to, {cfg.clip_grad_value:g}, does not fit "
                                f"{g.type.dtype} (largest {top:g}), the dtype of '{p.name}'")
        grads = [None if g is None else ob.op("clamp", g, min=-cfg.clip_grad_value, max=cfg.clip_grad_value)
                 for g in grads]
    if cfg.clip_grad_norm is not None:
        grads = _clipped(ob, grads, cfg.clip_grad_norm)
    one = ob.const(1, dtype=DType.int64.np)
    next_step = ob.op("add", step, one)
    caches: dict = {}  # per dtype: the step's shared scalars (t, lr, bias corrections) in each parameter dtype
    new_outputs: list[tuple[str, Value]] = []
    state_slots: list[StateSlot] = []
    for p, g in zip(params, grads):
        if g is None:  # the loss does not depend on p: torch leaves it (and its state) untouched
            new_outputs.append((p.name + NEW, p))
            for s in cfg.optimizer.state_names():
                slot = StateSlot(f"{p.name}.{s}", _state(graph, p, s))
                slot.new = slot.old
                state_slots.append(slot)
            continue
        slots = [StateSlot(f"{p.name}.{s}", _state(graph, p, s)) for s in cfg.optimizer.state_names()]
        cache = caches.setdefault(p.type.dtype, {})
        if "t" not in cache:
            cache["t"] = ob.op("cast", next_step, dtype="float64")  # Adam's bias corrections are float64
            cache["lr"] = lr if p.type.dtype is DType.float32 else ob.op("cast", lr, dtype=p.type.dtype.label)
            if p.type.dtype.is_16bit:  # Adam's 16-bit step is computed in float32, from the lr as fed
                cache["lr32"] = lr
        new_outputs.append((p.name + NEW, update(ob, cfg.optimizer, p, g, slots, cache["lr"], cache["t"], cache,
                                                 decay=p.name not in undecayed)))
        state_slots += slots
    if cfg.accumulate > 1:  # the update where `apply` is true; elsewhere everything it touches passes through
        olds = [graph.params[k[:-len(NEW)]] for k, _ in new_outputs]
        new_outputs = [(k, v if v is old else ob.op("where", apply, v, old)) for (k, v), old in zip(new_outputs, olds)]
        for s in state_slots:
            s.new = s.old if s.new is s.old else ob.op("where", apply, s.new, s.old)
        next_step = ob.op("where", apply, next_step, step)
    for v in buffers:
        new_outputs.append((v.name + NEW, buffer_updates.get(v.name, v)))
    for s in state_slots:
        new_outputs.append((s.name + NEW, s.new))
    for name, total in sums:
        new_outputs.append((name + NEW, ob.op("where", apply, ob.zeros_like(total), total)))
    if micro is not None:
        new_outputs.append(("micro" + NEW, ob.op("add", micro, one)))
    new_outputs.append(("step" + NEW, next_step))

    state_inputs = [v.name for v in params + buffers] + [s.name for s in state_slots] + [n for n, _ in sums] + \
        (["micro"] if micro is not None else []) + ["lr", "step"]
    if extra._seed is not None:
        state_inputs.append("seed")
    model_outs = [(k, v) for k, v in graph.outputs if k not in ("loss",)]
    graph.outputs = [("loss", loss)] + new_outputs + model_outs
    taken = set(data_inputs) | set(state_inputs) | ({"labels"} if labelled else set()) | \
        ({"apply"} if cfg.accumulate > 1 else set())
    clash = [k for k, _ in graph.outputs if k in taken]
    if clash:
        out = dict(model_outs).get(clash[0])  # where the model's output is made (an input passed through: its
        made = (out.producer or out) if out is not None else graph.params.get(clash[0]) or next(  # declaration),
            (v for v in graph.inputs if v.name == clash[0]), None)  # the param, or the input (an input named loss)
        raise ArchError(f"the train step's output '{clash[0]}' would have the name of an input; rename the "
                        "model output, input or parameter", made.span if made is not None else None)
    prune_dead(graph)
    check(graph)
    return TrainStep(graph, data_inputs, state_inputs, {k: k[: -len(NEW)] for k, _ in new_outputs}, out_name,
                     [v.name for v in params], [v.name for v in buffers], cfg, bn_dims, tuple(sorted(undecayed)),
                     tuple(sorted({str(v.type.shape[0]) for v in graph.inputs if v.name in data_inputs and v.type.rank
                                   and is_symbol(v.type.shape[0])})))


def state_bytes(graph: Graph, cfg: TrainConfig) -> tuple[int, int]:
    """(bytes of the parameters and buffers, bytes of the state the step adds: each trained parameter's
    optimizer moments, and its gradient sum with accumulate > 1; --freeze's parameters get none)."""
    per = cfg.optimizer.moments + (cfg.accumulate > 1)
    size = graph.param_bytes()
    trained = [v.name for v in graph.trainable() if not any(_hit(v.name, p) for p in cfg.freeze)]
    return sum(size.values()), per * sum(size[n] for n in trained)


def _hit(name: str, pat: str) -> bool:
    """A pattern is a name, a prefix up to a dot (`layer1` names layer1.0.conv1.weight) or an fnmatch pattern
    (`*.bias`), which names a layer's parameters as a prefix does (`*.base_layer`, `layers.*.attn.q_proj`: they
    matched nothing, lora hunt)."""
    import fnmatch
    return name == pat or name.startswith(pat + ".") or fnmatch.fnmatchcase(name, pat) or \
        any(c in pat for c in "*?[") and fnmatch.fnmatchcase(name, pat + ".*")


def _matched(graph: Graph, patterns: tuple[str, ...], flag: str, frozen: frozenset = frozenset()) -> list[Value]:
    """The trainable parameters the patterns name; one that names none is an error (a typo would do nothing),
    unless it names parameters --freeze made buffers (`frozen`): no decay is what they get."""
    trainable = graph.trainable()
    for pat in patterns:
        if not any(_hit(v.name, pat) for v in trainable) and not any(_hit(n, pat) for n in frozen):
            parent, _, leaf = pat.rpartition(".")  # torch's q_proj.weight, now q_proj.base_layer.weight (LoRA)
            inner = [v.name for v in trainable if parent and not any(c in pat for c in "*?[")
                     and v.name.startswith(parent + ".") and v.name.endswith("." + leaf)]
            near = (f"; did you mean {' or '.join(repr(n) for n in inner[:2])} (inside {parent})?" if inner
                    else did_you_mean(pat, _near(pat, [v.name for v in trainable])))
            raise ArchError(f"{flag} {pat}: no trainable parameter of {graph.name} matches"
                            f"{near} (a name, a prefix "
                            f"such as 'layer1', or a pattern such as '*.bias')")
    return [v for v in trainable if any(_hit(v.name, pat) for pat in patterns)]


def _near(pat: str, names: list[str]) -> list[str]:
    """What a pattern that matches nothing is compared with: the parameter names, or, where it reads as a prefix
    (its last part is no parameter's last part: `transformer.decoder.layer`, not `fc.wieght`), the prefixes
    of those names (`transformer.decoder.layers`), which is what such a pattern was meant to be."""
    leaves = {n.rpartition(".")[2] for n in names}
    if any(c in pat for c in "*?[") or pat.rpartition(".")[2] in leaves or \
            did_you_mean(pat.rpartition(".")[2], leaves):
        return names
    return sorted({n[:i] for n in names for i, c in enumerate(n) if c == "."})


def _freeze(graph: Graph, patterns: tuple[str, ...]) -> frozenset:
    """The parameters a pattern names become buffers of the step (torch's requires_grad_(False)): no gradient,
    no optimizer state, no weight decay; passed through unchanged."""
    import dataclasses
    names = set()
    for v in _matched(graph, patterns, "--freeze"):
        v.kind = "buffer"
        v.spec = dataclasses.replace(v.spec, trainable=False)
        names.add(v.name)
    return frozenset(names)


def _undecayed(graph: Graph, cfg: TrainConfig, frozen: frozenset) -> set[str]:
    """--no-decay: the parameters trained without weight decay (torch: a param group with weight_decay 0,
    the usual treatment of biases and norm weights)."""
    return {v.name for v in _matched(graph, cfg.no_decay, "--no-decay", frozen)}


def _may_be_one(dims: tuple, sizes: dict[str, int]) -> bool:
    """Whether a BatchNorm over these dims (all but the channels) would, on a batch of one example, normalize
    one value per channel: its batch statistics are undefined, and torch raises. A dim is sized from `sizes`
    (the batch's symbol at 1; `H`, `2*H`, `(H-3)//2+1`); one with an unsized symbol may be 1."""
    total = 1
    for d in dims:
        n = dim_size(d, sizes)
        if n is None:
            return True
        total *= n
    return total < 2


def _state(g: Graph, p: Value, what: str) -> Value:
    name = f"{p.name}.{what}"
    if name in g.params:
        raise ArchError(f"optimizer state '{name}' has the name of a model parameter; name it apart with 'as'",
                        g.params[name].span)
    return g.add_param(name, ParamSpec(name, tuple(p.type.shape), Init("zeros"), trainable=False), p.type.dtype)
