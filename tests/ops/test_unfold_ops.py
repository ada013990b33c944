"""ops/unfold.py: unfold and fold, property-based against torch.nn.functional.unfold / fold (see core_harness.py
for what every run_op case checks) over kernel, dilation, padding and stride (one number or a pair), batched and
unbatched, a symbolic batch, opset 17 and the newest; float16 and bfloat16; symbolic height/width for unfold; the
diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import OPSET, SETTINGS, SYM, as_torch, close, covers, rand, refused, run_op

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def _geometry(draw):
    """kernel, dilation, padding, stride (pairs) and a height and width at which at least one block fits."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = tuple(draw(st.integers(max(1, d[i] * (k[i] - 1) + 1 - 2 * p[i]), d[i] * (k[i] - 1) + 1 - 2 * p[i] + 5))
               for i in range(2))
    return k, d, p, s, hw


def _arg(v: tuple, one: bool) -> str:
    """A pair written as one number where both are equal and `one` (torch's int form), else as a list."""
    return str(v[0]) if one and v[0] == v[1] else f"[{v[0]}, {v[1]}]"


def _call(k, d, p, s, short: bool) -> str:
    return f"{_arg(k, short)}, dilation={_arg(d, short)}, padding={_arg(p, short)}, stride={_arg(s, short)}"


def _blocks(size, k, d, p, s) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@covers("unfold")
@SETTINGS
@given(geo=_geometry(), n=st.integers(1, 2), c=st.integers(1, 3), batched=st.booleans(), short=st.booleans(),
       sym=SYM, opset=OPSET, seed=st.integers(0, 99))
def test_unfold_matches_torch(geo, n, c, batched, short, sym, opset, seed):
    """An exact copy: every element equal to torch's, in torch's channel-major row order."""
    k, d, p, s, hw = geo
    x = rand(*((n,) if batched else ()), c, *hw, seed=seed)
    y, _ = run_op(f"unfold(x, {_call(k, d, p, s, short)})", x=x, sym=sym and batched, opset=opset)
    np.testing.assert_array_equal(y, F.unfold(as_torch(x), k, dilation=d, padding=p, stride=s).numpy())


@covers("fold")
@SETTINGS
@given(geo=_geometry(), n=st.integers(1, 2), c=st.integers(1, 3), batched=st.booleans(), short=st.booleans(),
       sym=SYM, opset=OPSET, seed=st.integers(0, 99))
def test_fold_matches_torch(geo, n, c, batched, short, sym, opset, seed):
    """Overlapping blocks summed, the output exactly output_size, also where the last stride stops short of
    the edge (output_padding in the ConvTranspose)."""
    k, d, p, s, hw = geo
    n_blocks = _blocks(hw[0], k[0], d[0], p[0], s[0]) * _blocks(hw[1], k[1], d[1], p[1], s[1])
    x = rand(*((n,) if batched else ()), c * k[0] * k[1], n_blocks, seed=seed)
    y, _ = run_op(f"fold(x, {_arg(hw, short)}, {_call(k, d, p, s, short)})", x=x, sym=sym and batched, opset=opset)
    close(y, F.fold(as_torch(x, double=True), hw, k, dilation=d, padding=p, stride=s).numpy(), rtol=1e-6, atol=1e-6)


def test_fold_of_unfold_counts_the_blocks_per_position():
    """fold(unfold(x)) is x times the number of blocks covering each position (torch's documented identity),
    here with a stride that leaves the last row uncovered (zeros there) and reaches the last column."""
    x = rand(2, 3, 8, 7)
    y, _ = run_op("fold(unfold(x, 3, stride=2), [8, 7], 3, stride=2)", x=x)
    ones = torch.ones(1, 1, 8, 7)
    count = F.fold(F.unfold(ones, 3, stride=2), (8, 7), 3, stride=2).numpy()
    assert count[0, 0, -1].max() == 0 and count[0, 0, :-1, -1].min() > 0
    close(y, x * count, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [17, runtime.newest_opset()])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16bit_floats(dtype, opset):
    """float16 goes to Conv/ConvTranspose as it is, bfloat16 through float32 (no bfloat16 Conv in
    onnxruntime, none in ONNX below 22); unfold copies exactly, fold adds as torch's float16 kernel."""
    src = (f"model m(x: {dtype}[B, 2, 5, 5]) -> (y, z) {{\n    y = unfold(x, 2, padding=1, stride=2)\n"
           f"    z = fold(y, [5, 5], 2, padding=1, stride=2) + fold(unfold(x, 3), 5, 3)\n}}\n")
    model = archdsl.compile_source(src, opset=opset)
    ops_used = {n.op_type for n in model.graph.node}
    assert {"Conv", "ConvTranspose"} <= ops_used and (dtype == "float16") != ("Cast" in ops_used)
    if dtype == "bfloat16":
        return  # numpy has no bfloat16 to feed; the model passed the full check (compile_source) at this opset
    x = (rand(3, 2, 5, 5) * 4).astype(np.float16)
    y, z = runtime.session(model, "cpu").run(None, {"x": x})
    t = torch.from_numpy(x)
    ty = F.unfold(t, 2, padding=1, stride=2)
    assert y.dtype == np.float16 and z.dtype == np.float16
    np.testing.assert_array_equal(y, ty.numpy())
    want = (F.fold(ty.float(), 5, 2, padding=1, stride=2) + F.fold(F.unfold(t.float(), 3), 5, 3)).numpy()
    close(z.astype(np.float32), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("stride", [1, 2])
def test_unfold_over_symbolic_height_and_width(stride):
    """L is a formula of H and W (the conv output-size rule); the model runs at any size."""
    g = archdsl.check_source(f"model m(x: float32[B, 2, H, W]) -> y {{\n    y = unfold(x, 3, padding=1, "
                             f"stride={stride})\n}}\n")
    want = "float32[B, 18, H*W]" if stride == 1 else "float32[B, 18, ((H+1)//2)*((W+1)//2)]"
    assert str(g.outputs[0][1].type) == want
    model = archdsl.compile_source(f"model m(x: float32[B, 2, H, W]) -> y {{\n    y = unfold(x, 3, padding=1, "
                                   f"stride={stride})\n}}\n")
    sess = runtime.session(model, "cpu")
    for shape in [(1, 2, 5, 4), (2, 2, 6, 9), (0, 2, 5, 6)]:  # an empty batch too (a -1 in the Reshape failed)
        x = rand(*shape) if shape[0] else np.zeros(shape, np.float32)
        (y,) = sess.run(None, {"x": x})
        np.testing.assert_array_equal(y, F.unfold(torch.from_numpy(x), 3, padding=1, stride=stride).numpy())


def test_lowering_is_a_grouped_conv_with_a_constant_weight():
    """No parameter: the one-hot weight is a constant of the lowering, the conv grouped by channel."""
    g = archdsl.check_source("model m(x: float32[B, 4, 6, 6]) -> y {\n    y = unfold(x, [2, 3])\n}\n")
    assert not g.params
    model = archdsl.compile_source("model m(x: float32[B, 4, 6, 6]) -> y {\n    y = unfold(x, [2, 3])\n}\n",
                                   opt_level=0)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert {a.name: a.i for a in conv.attribute if a.name == "group"} == {"group": 4}


def test_unfold_fold_diagnostics():
    head = "model m(x: float32[B, 3, 5, 5], i: int64[B, 3, 5, 5], c: float32[B, C, 5, 5], v: float32[3, 5]," \
           " f: float32[B, 12, 16], s: float32[B, 12, L]) -> y {\n    y = "
    for call, match in [
        ("unfold(i, 2)", "unfold: input must be a float tensor, got int64"),
        ("unfold(v, 2)", r"unfold: expected a rank-4 input \[N, C, H, W\] \(or an unbatched \[C, H, W\]\), "
                         r"got \[3, 5\]"),
        ("unfold(c, 2)", "unfold: the channel dim must be a known size"),
        ("unfold(x, 4, dilation=2)", "unfold: the height block of 7 .kernel 4, dilation 2. is larger than the padded "
                                     "height of 5"),
        ("unfold(x, 0)", "unfold: kernel_size must be positive, got 0"),
        ("unfold(x, 2, stride=[1, 0])", r"unfold: stride must be positive, got \[1, 0\]"),
        ("unfold(x, [2, 2, 2])", "kernel_size has 3 values but the input has 2 spatial dims"),
        ("unfold(x, 2, padding=-1)", "must not be negative"),
        ("fold(f, [5, 5], [2, 5])", r"fold: the channel dim 12 of \[B, 12, 16\] must be a known multiple of "
                                    r"kh\*kw = 10"),
        ("fold(f, [6, 5], 2)", r"fold: output_size \[6, 5\] .* makes 5\*4 = 20 blocks, but the input "
                               r"\[B, 12, 16\] has 16"),
        ("fold(s, [5, 5], 2)", "has L .a symbolic block count cannot be checked"),
        ("fold(f, [0, 5], 2)", r"fold: output_size must be positive, got \[0, 5\]"),
        ("fold(x, [5, 5], 2)", r"fold: expected a rank-3 input \[N, C\*kh\*kw, L\]"),
        ("fold(cast(f, 'int32'), [5, 5], 2)", "fold: input must be a float tensor, got int32"),
    ]:
        refused(head + call + "\n}\n", match)
