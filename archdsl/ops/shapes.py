"""Shape arithmetic shared by the shape rules: broadcasting, axes, conv/pool windows."""

from __future__ import annotations

import re

from ..types import Dim, Sym, dim_add, dim_floordiv, dim_mul, dim_size, dim_symbols
from .registry import fail

__all__ = ["broadcast", "norm_axis", "norm_axes", "window_out", "expand", "prod", "same_dim", "torch_dim"]


def same_dim(a: Dim, b: Dim) -> bool:
    return a == b


def broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...], what: str = "operands") -> tuple[Dim, ...]:
    """numpy broadcasting over ints and symbols; different symbols are a mismatch."""
    out, differ = [], []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            differ.insert(0, (max(len(a), len(b)) - 1 - i, x, y))
    if differ:  # every dim that differs (H and W both, not W alone: porting3 hunt), the first one's hint
        said = " and ".join(f"dim {d} ({x} vs {y})" for d, x, y in differ)
        fail(f"cannot broadcast {what}: shapes [{', '.join(map(str, a))}] and [{', '.join(map(str, b))}] "
             f"differ at {said}" + parity_hint(*differ[0][1:]))
    return tuple(reversed(out))


def parity_hint(x, y) -> str:
    """(T+1)//2 against T//2: the even and the odd elements of a symbolic T (x[:, 0::2], x[:, 1::2]), which
    differ when T is odd; `0:-1:2` takes the even ones up to T//2, the same elements at every even T."""
    pair = {str(x), str(y)}
    for d in (x, y):
        m = re.fullmatch(r"\(\((.+)\+1\)//2\)", str(d))
        if m and f"({m[1]}//2)" in pair:
            return (f"; x[:, 0::2] of a symbolic {m[1]} is ({m[1]}+1)//2 long and x[:, 1::2] {m[1]}//2, which differ "
                    f"when it is odd: x[:, 0:-1:2] takes the even elements {m[1]}//2 long (the same at every even "
                    f"{m[1]})")
    return _rounding_hint(x, y)


def _rounding_hint(x, y) -> str:
    """H against a size computed from H by floor division (4*((H//2)//2) after two stride-2 convs and two
    transposed ones: an autoencoder; 2*(H//4) against H//2 a level deeper in a U-Net): equal at some sizes
    only (2*(H//4) is H//2 at H=5, not at H=6), which a symbolic H is not known to be; one where they differ
    is named."""
    if not isinstance(x, Sym) or not isinstance(y, Sym) or "//" not in str(x) + str(y):
        return ""
    names = {*dim_symbols(x), *dim_symbols(y)}
    if len(names) != 1:
        return ""
    name = names.pop()
    if ("//" in str(x), len(str(x))) > ("//" in str(y), len(str(y))):  # the formula said of the simpler one
        x, y = y, x
    # not equal even where H divides by everything a stack of strides rounds by (2**12: 32*(H//32) of a depth-5
    # U-Net; 720720 = lcm(1..16)): no hint
    if any(dim_size(y, {name: n}) != dim_size(x, {name: n}) for n in (720720 << 12, 720720 << 13)):
        return ""
    differ = next((n for n in range(1, 100) if dim_size(y, {name: n}) != dim_size(x, {name: n})), None)
    if differ is None:  # H//2 and floor(H*0.5): the same at odd sizes too
        return ""
    at = f"{dim_size(y, {name: differ})} and {dim_size(x, {name: differ})} at {name}={differ}"
    return (f"; {y} and {x} differ at some sizes of {name} ({at}: a strided layer rounds an odd size "
            f"up or down), which archdsl cannot rule out for a symbolic {name}: resize one side to the other "
            f"(`-> upsample(like=...)`), or give {name} a number (a fixed size in the input's shape, or "
            f"`param {name} = none` and -D {name}=...)")


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:  # the caret under the argument (`dim=3`), not the whole call (review118)
        name = what.rsplit(" ", 1)[-1]
        fail(f"{what} {axis} is out of range for a tensor of rank {rank}", name if name.isidentifier() else None)
    return axis % rank


def norm_axes(dims, rank: int, what: str = "dim") -> list[int]:
    """A list of axes, sorted, each once (torch refuses `sum(x, [3, -1])` on rank 4 too); none: all of them."""
    if dims is None:
        return list(range(rank))
    axes = [norm_axis(d, rank, what) for d in dims]
    for i, ax in enumerate(axes):
        if ax in axes[:i]:
            fail(f"{what} {ax} appears more than once in {list(dims)}")
    return sorted(axes)


def expand(v: tuple, n: int, what: str) -> tuple:
    """An attribute given once (`3`) or per spatial dim (`[3, 5]`)."""
    if len(v) == 1:
        return v * n
    if len(v) != n:
        fail(f"{what} has {len(v)} values but the input has {n} spatial dims", what)
    return tuple(v)


def torch_dim(name: str, x, dim: int) -> int:
    """The axis of an op torch runs on a 0-d tensor as on one of rank 1 (cumsum, cumprod, sort, scatter_add):
    -rank..rank-1, and 0 or -1 (axis 0) of a 0-d tensor."""
    if x.rank == 0:
        if dim not in (0, -1):
            fail(f"{name}: dim {dim} of a 0-d tensor: it takes 0 or -1, as torch")
        return 0
    return norm_axis(dim, x.rank, f"{name}: dim")


def window_out(size: Dim, k: int, s: int, pad: int, d: int = 1, ceil: bool = False) -> Dim:
    """Output length of a conv/pool window: floor((L + pad - d*(k-1) - 1) / s) + 1 (ceil for ceil_mode pools)."""
    eff = d * (k - 1) + 1
    if size == 0:  # x[:, :, 4:4]: onnxruntime's pools and convs fail on it; torch refuses an empty input too
        fail("the input's length is 0 (an empty slice?): a window needs at least one element")
    if isinstance(size, int):
        span = size + pad - eff
        if span + (s - 1 if ceil else 0) < 0:  # ceil_mode: a window past the end counts if it starts inside
            fail(f"window of {eff} (kernel {k}, dilation {d}) is larger than the padded input of {size + pad}"
                 + (f" by more than the stride less one ({s - 1}), which ceil_mode allows" if ceil and s > 1 else ""))
        q = -(-span // s) if ceil else span // s
        if ceil and q * s >= size + pad // 2:
            q -= 1
        return q + 1
    if ceil and s > 1:
        # ceil((L + pad - eff) / s) + 1, less the last window when it would start in the right padding (torch);
        # that can only happen when pad/2 + s > eff, and then the count is also ceil((L + pad/2) / s)
        whole = window_out(size, k, s, pad + s - 1, d)
        if pad // 2 + s <= eff:
            return whole
        return Sym.opaque(f"min({whole}, {dim_floordiv(dim_add(size, pad // 2 + s - 1), s)})")
    if s == 1:  # a stride-1 window never starts in the padding: ceil is floor
        return dim_add(size, pad - eff + 1)
    if pad - eff + s == 0:
        return dim_floordiv(size, s)
    # (2*H-1)//2 is H-1 (a strided conv after an upsample); (H-1)//2+1 is (H+1)//2, as a strided slice has it
    return dim_add(dim_floordiv(dim_add(size, pad - eff), s), 1)


def prod(dims) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out
