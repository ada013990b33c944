"""rand_like, randn_like and randint_like (torch's), and the counter-based hash every random number of a
model comes from.

onnxruntime 1.32 has no RandomNormalLike (or any random op) past opset 21, and their seed is an attribute
fixed when the model is built, so nothing here uses them. A number is a hash of (seed, step, stream, element
index), the stream fixed by the node's name: splitmix64's mixer in uint64 Mul/Add/BitShift/BitwiseXor from
opset 18, Widynski's Squares (Mul/Add/BitShift only) below it.
- a model that calls a random op takes an int64 scalar input `seed` (the same seed, the same numbers; feed a
  new one for new numbers), step 0; the input goes when the passes drop every call that reads it;
- a train step draws them, and its dropout masks, from its own seed and step inputs
  (autodiff/train_ops.py, train_mode.py), so a step is reproducible from its inputs and every step and element
  draws a different number.
The passes neither merge nor fold random calls (OpDef.random)."""

from __future__ import annotations

import zlib

import numpy as np

from ..types import DTYPES, DType, TensorType, numel
from ._common import i64 as _i64
from ._common import numel_tensor, reshape_like
from .registry import Attr, OpDef, fail, register

__all__ = ["KINDS", "SEED_INPUT", "bits24", "check_seed", "hashed_bits", "randint_bounds", "random_key",
           "random_values", "stream_id"]

SEED_INPUT = "seed"  # the model input a random call adds (unless given seed=)
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def stream_id(name: str) -> int:
    """Each random layer (dropout, randn_like) draws from its own stream, fixed by its name."""
    return zlib.crc32(name.encode())


def _u64(e, v):
    return e.const(np.array(v, dtype=np.uint64))


def splitmix(v: int) -> int:
    """splitmix64's finalizer, at build time."""
    v = (v ^ (v >> 30)) * _MIX1 % 2**64
    v = (v ^ (v >> 27)) * _MIX2 % 2**64
    return v ^ (v >> 31)


def random_key(stream: int) -> int:
    """A random layer's stream (a dropout's, a randn_like's) as the hash's key: mixed, so that two layers'
    numbers are not one sequence shifted (a key of stream * GOLDEN, dropout's until 2026-12, made stream A's
    element i stream B's element i + A - B: two of BERT-base's dropouts, whose crc32s are 4,975,877 apart, drew
    the same mask shifted over a batch of 32 x 512 x 768)."""
    return splitmix(stream)


def _mix(e, z, shift):
    return e.op("BitwiseXor", [z, e.op("BitShift", [z, _u64(e, shift)], direction="RIGHT")])


def _squares32(e, ctr: str, key: str) -> str:
    """Widynski's Squares (2020), 32 random bits from a counter and a key in uint64 Mul/Add and the 32-bit
    rotation ((x >> 32) + (x << 32): the halves share no bits): the hash below opset 18, which has no
    BitwiseXor (an Add in splitmix's place correlated neighbours at 0.38)."""
    x = y = e.op("Mul", [ctr, key])
    z = e.op("Add", [y, key])
    for add in (y, z, y):
        x = e.op("Add", [e.op("Mul", [x, x]), add])
        x = e.op("Add", [e.op("BitShift", [x, _u64(e, 32)], direction="RIGHT"),
                         e.op("BitShift", [x, _u64(e, 32)], direction="LEFT")])
    return e.op("BitShift", [e.op("Add", [e.op("Mul", [x, x]), z]), _u64(e, 32)], direction="RIGHT")


def hashed_bits(e, x: str, x_t: TensorType, seed: str, step: str, key: int) -> str:
    """64 random bits per element of x, flat (uint64), from (seed, step, key, index): splitmix64 of
    index * GOLDEN + seed * M1 + step * M2 + key; below opset 18, two Squares draws of the index's counters
    (2 * index, 2 * index + 1, each with the top bit of base = seed * M1 + step * M2 + key) under the odd key
    2 * base + 1."""
    n = numel_tensor(e, x, x_t)
    idx = e.op("Range", [_i64(e, 0), e.op("Squeeze", [n]), _i64(e, 1)])
    idx = e.op("Cast", [idx], to=13)  # uint64
    base = e.op("Add", [e.op("Add", [e.op("Mul", [e.op("Cast", [seed], to=13), _u64(e, _MIX1)]),
                                     e.op("Mul", [e.op("Cast", [step], to=13), _u64(e, _MIX2)])]), _u64(e, key)])
    if e.opset < 18:
        odd = e.op("Add", [e.op("BitShift", [base, _u64(e, 1)], direction="LEFT"), _u64(e, 1)])
        # the key's shift drops base's top bit: it goes to the counters' (which an index never reaches), or
        # seeds s and s - 2**63 drew the same numbers (opsets hunt)
        top = e.op("BitShift", [e.op("BitShift", [base, _u64(e, 63)], direction="RIGHT"), _u64(e, 63)],
                   direction="LEFT")
        two = e.op("Add", [e.op("Mul", [idx, _u64(e, 2)]), top])
        high = _squares32(e, two, odd)
        low = _squares32(e, e.op("Add", [two, _u64(e, 1)]), odd)
        return e.op("Add", [e.op("BitShift", [high, _u64(e, 32)], direction="LEFT"), low])
    z = e.op("Add", [e.op("Mul", [idx, _u64(e, _GOLDEN)]), base])
    z = e.op("Mul", [_mix(e, z, 30), _u64(e, _MIX1)])
    z = e.op("Mul", [_mix(e, z, 27), _u64(e, _MIX2)])
    return _mix(e, z, 31)


def bits24(e, z: str, shift: int) -> str:
    """24 of z's bits, from bit `shift` up, as a float32 whole number in [0, 2**24): the bits above shifted out
    to the left first (opset 17 has no BitwiseAnd)."""
    if shift < 40:
        z = e.op("BitShift", [z, _u64(e, 40 - shift)], direction="LEFT")
    return e.op("Cast", [e.op("BitShift", [z, _u64(e, 40)], direction="RIGHT")], to=1)


def random_values(e, x: str, x_t: TensorType, seed: str, step: str, stream: int, kind: str, dtype: DType,
                  outputs, low: int = 0, high: int = 1) -> None:
    """x's shape of numbers: uniform on [0, 1) from the top 24 bits (11 for float16, 8 for bfloat16: their
    spacing below 1, so that none rounds up to 1.0), or normal by Box-Muller from two 24-bit uniforms (the first
    in (0, 1], so its log is finite: |n| <= 5.77), computed in float32; or integers in [low, high) as
    (40 bits * (high - low)) >> 40 in uint64 (exact: the product stays below 2**64 for ranges up to 2**24; each
    value is drawn by floor or ceil of 2**40 / (high - low) of the patterns, 24 bits made one value in three of a
    range of 3 * 2**22 twice as likely as the others: vae hunt)."""
    z = hashed_bits(e, x, x_t, seed, step, random_key(stream))
    if kind == "integer":
        top = e.op("BitShift", [z, _u64(e, 24)], direction="RIGHT")
        q = e.op("BitShift", [e.op("Mul", [top, _u64(e, high - low)]), _u64(e, 40)], direction="RIGHT")
        v = e.op("Add", [e.op("Cast", [q], to=DType.int64.onnx), _i64(e, low)])
        if dtype is not DType.int64:
            v = e.op("Cast", [v], to=dtype.onnx)
        reshape_like(e, v, x, x_t, outputs)
        return
    scale = e.const(np.array(2.0**-24, np.float32))
    if kind == "uniform":
        bits = _UNIFORM_BITS.get(dtype, 24)
        v = bits24(e, z, 40)
        if bits < 24:
            v = e.op("Floor", [e.op("Mul", [v, e.const(np.array(2.0 ** (bits - 24), np.float32))])])
            scale = e.const(np.array(2.0**-bits, np.float32))
        v = e.op("Mul", [v, scale])
    else:
        u1 = e.op("Mul", [e.op("Add", [bits24(e, z, 40), e.const(np.array(1.0, np.float32))]), scale])
        u2 = e.op("Mul", [bits24(e, z, 16), scale])
        radius = e.op("Sqrt", [e.op("Mul", [e.op("Log", [u1]), e.const(np.array(-2.0, np.float32))])])
        v = e.op("Mul", [radius, e.op("Cos", [e.op("Mul", [u2, e.const(np.array(2 * np.pi, np.float32))])])])
    if dtype is not DType.float32:
        v = e.op("Cast", [v], to=dtype.onnx)
    reshape_like(e, v, x, x_t, outputs)


_UNIFORM_BITS = {DType.float16: 11, DType.bfloat16: 8}  # the bits of a number in [0.5, 1)
_FLOATS = tuple(d.label for d in DType if d.is_float)
KINDS = {"rand_like": "uniform", "randn_like": "normal", "randint_like": "integer"}


def check_seed(op: str, seed: TensorType) -> None:
    if seed.dtype is not DType.int64 or seed.rank:
        fail(f"{op}: seed must be an int64 scalar, got {seed.dtype}[{', '.join(map(str, seed.shape))}]")


def _infer(name):
    def infer(ins, a):
        x, seed = ins
        dt = DTYPES[a["dtype"]] if a["dtype"] else x.dtype
        if not dt.is_float:
            fail(f"{name}: random numbers are floats, and x is {x.dtype}: give dtype=\"float32\" (x gives only "
                 f"the shape)")
        check_seed(name, seed)
        return [TensorType(dt, x.shape)]
    return infer


def _lower(kind: str):
    """Inference: the model's seed, step 0."""
    def lower(e, ins, outs, c):
        low, high = randint_bounds(c.attrs) if kind == "integer" else (0, 1)
        random_values(e, ins[0], c.in_types[0], ins[1], _i64(e, 0), stream_id(c.name), kind, c.out_types[0].dtype,
                      outs, low, high)
    return lower


def randint_bounds(a: dict) -> tuple[int, int]:
    """torch's randint_like(x, high), (x, low, high) or (x, high=...)."""
    if a["low"] is None or a["high"] is None:
        return 0, a["high"] if a["low"] is None else a["low"]
    return a["low"], a["high"]


_EXACT_WHOLE = {DType.float16: 2**11, DType.bfloat16: 2**8, DType.float32: 2**24}  # every whole number up to


def _randint_infer(ins, a):
    x, seed = ins
    dt = DTYPES[a["dtype"]] if a["dtype"] else x.dtype
    if a["low"] is None and a["high"] is None:
        fail("randint_like: give high (randint_like(x, high) or randint_like(x, low, high))")
    low, high = randint_bounds(a)
    if not high > low:
        fail(f"randint_like: high must be greater than low, got low={low}, high={high}")
    if high - low > 2**24:
        fail(f"randint_like: at most 2**24 values apart (40 hashed bits per number keep them within 2**-16 of "
             f"uniform), got {high - low}")
    if dt is DType.bool:
        fits = 0 <= low and high <= 2
    elif dt.is_float:
        fits = max(abs(low), abs(high - 1)) <= _EXACT_WHOLE.get(dt, 2**53)
    else:
        fits = dt.limits()[0] <= low and high - 1 <= dt.limits()[1]
    if not fits:
        fail(f"randint_like: [{low}, {high}) does not fit {dt} exactly"
             + ("; give dtype=\"int64\"" if dt is not DType.int64 else ""))
    check_seed("randint_like", seed)
    return [TensorType(dt, x.shape)]


def _register(name: str, kind: str, attrs: tuple, infer, doc: str) -> None:
    """The three random ops: x for the shape, an optional seed tensor, the same lowering by kind, no gradient."""
    register(OpDef(
        name=name, inputs=("x", "seed?"), positions=("seed",), category="math", attrs=attrs, infer=infer,
        lower=_lower(kind), random=True, grad=lambda b, c, ins, outs, gouts: [None, None],  # x gives only the shape
        cost=lambda c: numel(c.out_types[0].shape), doc=doc))


_register(
    "randint_like", "integer",
    (Attr("low", "int?", None), Attr("high", "int?", None), Attr("dtype", "str?", None, choices=tuple(DTYPES))),
    _randint_infer,
    "Random whole numbers in [low, high) of x's shape (torch.randint_like: randint_like(x, high), "
    "(x, low, high) or (x, high=...); one number alone, low= included, is the high end; at most 2**24 values "
    "apart), x's dtype unless dtype= is given (a diffusion step's "
    "timesteps: randint_like(x[:, 0, 0, 0], 1000, dtype=\"int64\")). Seeded as rand_like: the model's "
    "`seed` input, or in a train step its seed and step.")

for _name, _what in (("rand_like", "uniform on [0, 1), multiples of 2**-24 (a float64 one too: drawn in float32)"),
                     ("randn_like", "standard normal (Box-Muller in float32: |n| <= 5.77)")):
    _register(
        _name, KINDS[_name], (Attr("dtype", "str?", None, choices=_FLOATS),), _infer(_name),
        f"Random numbers, {_what}, of x's shape (torch.{_name}), x's float dtype unless dtype= is given. "
        "The model takes an int64 scalar input `seed` (or give seed= a tensor of your own): the numbers are a "
        "hash of (seed, this call's name, element index), the same for the same seed, so feed a new seed for "
        "new numbers (`archdsl run` feeds one drawn from its --seed). In a train step they come from the step's "
        "seed and step inputs instead (a seed= given here too), as dropout's mask: new numbers every step. The "
        "reparameterization trick: z = mu + exp(0.5 * logvar) * randn_like(mu); gradients pass through the "
        "product, none to x.")
