"""Optimizers as IR update rules, with torch.optim's formulas: SGD (momentum, Nesterov, weight decay),
Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay).

State tensors start at zero, and step 1 matches torch: its SGD momentum buffer starts as the first gradient,
which momentum * 0 + g is without dampening; with dampening the update takes g itself at step 1 (a Where on
`step`), as torch does, and (1 - dampening) * g after."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..diagnostics import ArchError
from ..ir import Value
from .builder import GradBuilder

__all__ = ["OPTIMIZERS", "OptimConfig", "StateSlot", "as_float32", "check_kinds", "plain_numbers", "update"]

OPTIMIZERS = ("sgd", "adam", "adamw")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim's defaults


def plain_numbers(cfg) -> None:
    """numpy's scalars in a config's fields as the Python numbers they stand for (np.float32(0.1) for lr went
    into the metadata's JSON, which refused it), an array of betas as a tuple."""
    import dataclasses

    def plain(v):
        if type(v).__module__ == "numpy" and getattr(v, "shape", None) != ():
            return tuple(plain(x) for x in v.tolist())
        if type(v).__module__ == "numpy":
            item = v.item()  # a longdouble's item() is itself: a float; anything else is left to be refused
            return float(item) if type(item).__module__ == "numpy" and np.issubdtype(type(item), np.floating) \
                else item
        return type(v)(plain(x) for x in v) if type(v) in (tuple, list) else v
    for f in dataclasses.fields(cfg):
        object.__setattr__(cfg, f.name, plain(getattr(cfg, f.name)))


def as_float32(what: str, v, refuse: bool = True) -> float:
    """A setting the step holds as a float32 constant, as a float; refused where float32 makes a positive one
    inf (--weight-decay 1e300 trained to NaN; a negative one is left to the caller's sign check) and inf where
    float64 cannot hold it (10**400 from Python was an OverflowError), for the finiteness checks to refuse."""
    try:
        f = float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf
    with np.errstate(over="ignore"):
        if refuse and math.isfinite(f) and f > 0 and math.isinf(np.float32(f)):
            raise ArchError(f"{what} {f:g} is inf in float32, where the step computes with it")
    return f


def check_kinds(cfg, kinds: dict) -> None:
    """The API's config fields have the kind they are used as (lr="0.1" was a TypeError deep in a check):
    name -> (str, bool, int or float, whether None is taken)."""
    for name, (want, optional) in kinds.items():
        v = getattr(cfg, name)
        if v is None and optional:
            continue
        if isinstance(v, want) if want in (str, bool) else not isinstance(v, bool) and isinstance(
                v, int if want is int else (int, float)):  # a Fraction went on into the metadata's JSON
            continue
        what = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[want]
        raise ArchError(f"{name} takes {what}{' or None' if optional else ''}, got {v!r}")


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float | None = None  # None: the optimizer's torch default (0, or 0.01 for adamw)
    betas: tuple[float, float] = ADAM_BETAS
    eps: float = ADAM_EPS
    dampening: float = 0.0  # sgd: the momentum buffer takes (1 - dampening) of each gradient after the first
    amsgrad: bool = False  # adam/adamw: divide by the largest second moment so far (torch's amsgrad=True)

    def __post_init__(self) -> None:
        plain_numbers(self)

    @property
    def moments(self) -> int:
        """State tensors the update keeps per parameter, each the parameter's size."""
        return (2 + self.amsgrad) if self.name in ("adam", "adamw") else int(bool(self.momentum))

    @property
    def decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.name == "adamw" else 0.0

    def validate(self) -> None:
        check_kinds(self, {"name": (str, False), "momentum": (float, False), "weight_decay": (float, True),
                           "eps": (float, False), "dampening": (float, False), "nesterov": (bool, False),
                           "amsgrad": (bool, False)})
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2 or \
                not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.betas):
            raise ArchError(f"betas takes two numbers, got {self.betas!r}")
        if self.name not in OPTIMIZERS:
            raise ArchError(f"unknown optimizer '{self.name}' (one of {', '.join(OPTIMIZERS)})")
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ArchError("nesterov needs the sgd optimizer with a momentum > 0")
        if self.momentum and self.name != "sgd":
            raise ArchError(f"momentum is an sgd setting; {self.name} uses betas")
        if self.dampening and (self.name != "sgd" or not 0.0 < self.dampening <= 1.0):
            raise ArchError(f"dampening must be in [0, 1] (0, the default, damps nothing), got {self.dampening}"
                            if self.name == "sgd" else
                            f"dampening is an sgd setting; {self.name} uses betas")
        if self.dampening and not self.momentum:  # torch takes it and does nothing with it
            raise ArchError("dampening damps the momentum buffer: it needs a momentum > 0")
        if self.dampening and self.nesterov:
            raise ArchError("nesterov needs zero dampening (as torch.optim.SGD)")
        if self.amsgrad and self.name == "sgd":
            raise ArchError("amsgrad is an adam/adamw setting")
        if self.name == "sgd" and (tuple(self.betas) != ADAM_BETAS or self.eps != ADAM_EPS):
            raise ArchError("betas and eps are adam/adamw settings; sgd uses momentum")
        for what, v in (("momentum", self.momentum), ("weight decay", self.decay), ("eps", self.eps)):
            v = as_float32(what, v)
            if not math.isfinite(v) or v < 0:  # nan passes every comparison; eps 0 too, as torch.optim.Adam
                raise ArchError(f"{what} must be >= 0 and finite, got {v:g}")  # (a zero gradient is 0/0 then)
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ArchError(f"betas must be in [0, 1), got {list(self.betas)}")

    def state_names(self) -> tuple[str, ...]:
        """Per-parameter state, named as in torch.optim's state_dict."""
        if self.name == "sgd":
            return ("momentum_buffer",) if self.momentum else ()
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())


@dataclass
class StateSlot:
    """One optimizer state tensor: the value read this step and the one written for the next."""

    name: str
    old: Value
    new: Value | None = None


_STEP_FLOOR = 1e-30


def update(b: GradBuilder, cfg: OptimConfig, p: Value, g: Value, state: list[StateSlot], lr: Value,
           t: Value, cache: dict, decay: bool = True) -> Value:
    """The parameter after one step; fills each slot's `new`. `t` is the 1-based step as a float scalar;
    `cache` keeps the scalars every parameter of p's dtype shares (bias corrections) computed once.
    decay=False: no weight decay for this parameter (a torch param group with weight_decay 0)."""
    c = lambda v: b.const(v, like=p)
    wd = cfg.decay if decay else 0.0
    if cfg.name == "sgd":
        if wd:
            g = b.op("add", g, b.op("mul", p, c(wd)))
        if cfg.momentum and cfg.dampening:  # torch's first step takes the gradient itself as the buffer
            damped = b.op("add", b.op("mul", state[0].old, c(cfg.momentum)), b.op("mul", g, c(1.0 - cfg.dampening)))
            buf = b.op("where", b.op("eq", t, b.const(1.0, dtype=np.float64)), g, damped)
            state[0].new = buf
            g = buf
        elif cfg.momentum:
            buf = b.op("add", b.op("mul", state[0].old, c(cfg.momentum)), g)
            state[0].new = buf
            g = b.op("add", g, b.op("mul", buf, c(cfg.momentum))) if cfg.nesterov else buf
        return b.op("sub", p, b.op("mul", g, lr))
    b1, b2 = cfg.betas
    if "k" not in cache:  # the scalars every parameter shares, computed once per step
        # in float64, as torch's bias corrections (Python floats): in float32, 0.999 is 0.99900001 and
        # 1 - 0.999 ** t 1.3e-5 small at t = 1, every Adam step 6.4e-6 short
        d = lambda v: b.const(v, dtype=np.float64)  # noqa: E731
        t64, lr64 = b.op("cast", t, dtype="float64"), b.op("cast", cache.get("lr32", lr), dtype="float64")
        bc1 = b.op("sub", d(1.0), b.op("pow", d(b1), t64))
        bc2 = b.op("sub", d(1.0), b.op("pow", d(b2), t64))
        # p - step_size * m / (sqrt(v) / sqrt(bc2) + eps)  ==  p - m / (sqrt(v) * k + eps / step_size).
        # At lr = 0 (--lr 0, a warm-up's first step) torch leaves every parameter as it is. k would be inf
        # there, and a parameter whose v is 0 NaN (0 * inf): k's step size is at least 1e-30 (k <= 3.2e31;
        # exact for any lr above ~1e-30, where adding 1e-30 moved a zero parameter by 1e-31: review57), while
        # eps / step_size, not floored, is inf, so that m / denom is exactly 0 and the parameter stays.
        step_size = b.op("div", lr64, bc1)
        k = b.op("reciprocal", b.op("mul", b.op("sqrt", bc2), b.op("maximum", step_size, d(_STEP_FLOOR))))
        cache["k"] = b.op("cast", k, dtype=_work(p))
        cache["eps"] = b.op("cast", b.op("div", d(cfg.eps), step_size), dtype=_work(p))
    wide = _work(p) != p.type.dtype.label
    if cfg.name == "adamw" and wd:
        if "decay" not in cache:  # 16-bit: in float32 (1 - lr * wd in float16 steps by 4.9e-4: twice the decay)
            lr_d = cache.get("lr32", lr)
            cache["decay"] = b.op("sub", b.const(1.0, like=lr_d), b.op("mul", lr_d, b.const(wd, like=lr_d)))
        if not wide:
            p = b.op("mul", p, cache["decay"])
    elif wd:
        g = b.op("add", g, b.op("mul", p, c(wd)))
    old = [s.old for s in state]
    if wide:  # the moments in float32 too, stored in the parameter's dtype: computed in float16, onnxruntime's CPU
        # kept v unrounded for the step and wrote its float16 rounding, 0 where (1 - b2) g**2 underflows, for the
        # next (review108 hunt): the step then depended on the runtime's float16 arithmetic
        g, *old = (b.op("cast", t, dtype="float32") for t in (g, *old))
        c = lambda v: b.const(v, dtype=np.float32)  # noqa: E731
    m = b.op("add", b.op("mul", old[0], c(b1)), b.op("mul", g, c(1.0 - b1)))
    # (1 - b2) g first, then g: torch's addcmul order; g * g overflowed float32 past |g| ~1.8e19, where torch's
    # v stays finite, and an inf v froze that element for good (specials2 hunt)
    v = b.op("add", b.op("mul", old[1], c(b2)), b.op("mul", b.op("mul", g, c(1.0 - b2)), g))
    news = [m, v]
    if cfg.amsgrad:  # the largest v so far (kept as torch keeps it, the max of the raw second moments)
        v = b.op("maximum", old[2], v)
        news.append(v)
    for slot, new in zip(state, news):
        slot.new = b.op("cast", new, dtype=p.type.dtype.label) if wide else new
    if wide:  # k is ~1/lr: past float16's 65504 below lr ~4.8e-5 at step 1 (bias
        # corrections), ~1.5e-5 later (a step of 0 or NaN where the runtime computes as written), so the step
        # is computed in float32, as torch's addcdiv is
        denom = b.op("add", b.op("mul", b.op("sqrt", v), cache["k"]), cache["eps"])
        p32 = b.op("cast", p, dtype="float32")
        if cfg.name == "adamw" and wd:
            p32 = b.op("mul", p32, cache["decay"])
        return b.op("cast", b.op("sub", p32, b.op("div", m, denom)), dtype=p.type.dtype.label)
    denom = b.op("add", b.op("mul", b.op("sqrt", v), cache["k"]), cache["eps"])
    return b.op("sub", p, b.op("div", m, denom))


def _work(p: Value) -> str:
    """The dtype Adam's step is computed in: float32 for a 16-bit parameter, else the parameter's own."""
    return "float32" if p.type.dtype.is_16bit else p.type.dtype.label
