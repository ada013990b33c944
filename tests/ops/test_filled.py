"""ops/filled.py: zeros_like, ones_like, full_like against torch's, over dtypes, symbolic dims and both opsets;
no gradient reaches x (a train step against torch autograd); a value the dtype cannot hold is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .core_harness import OPSET, SETTINGS, SYM, covers, dim, rand, refused, run_op

torch = pytest.importorskip("torch")


@covers("zeros_like", "ones_like", "full_like")
@SETTINGS
@given(shape=st.lists(dim, min_size=0, max_size=3), sym=SYM, opset=OPSET,
       call=st.sampled_from(["zeros_like(x)", "ones_like(x)", "full_like(x, -2.5)", 'full_like(x, "inf")',
                             'ones_like(x, dtype="int64")', 'full_like(x, 7, dtype="int32")',
                             'zeros_like(x, dtype="bool")', 'ones_like(x, dtype="float16")',
                             'full_like(x, true, dtype="bool")', "full_like(x, false)"]))
def test_filled_matches_torch(shape, sym, opset, call):
    with np.errstate(invalid="ignore"):  # what x holds never shows: inf and nan included
        x = np.asarray(rand(*shape, seed=len(shape)) * np.inf, np.float32)
    y, _ = run_op(call, x=x, sym=sym and bool(shape), opset=opset)
    fn, _, rest = call.partition("(")
    args = rest.rstrip(")").split(", ")[1:]
    kw = {"dtype": getattr(torch, a.split("=")[1].strip('"')) for a in args if a.startswith("dtype")}
    value = [{"true": True, "false": False}.get(a) if a in ("true", "false") else float(a.strip('"'))
             for a in args if not a.startswith("dtype")]
    t = torch.from_numpy(x)
    want = getattr(torch, fn)(t, *value, **kw)
    assert y.dtype == want.numpy().dtype and y.shape == tuple(want.shape)
    np.testing.assert_array_equal(y, want.numpy())


def test_a_value_the_dtype_cannot_hold_is_refused():
    refused('model m(x: float32[2]) -> y { y = full_like(x, 0.5, dtype="int64") }', "does not fit the int64")
    refused('model m(x: float32[2]) -> y { y = full_like(x, "nan") }', 'value must be a number, true, false, "inf"')
    refused('model m(x: float32[2]) -> y { y = zeros_like(x, dtype="int65") }', "unknown dtype 'int65'")


def test_no_gradient_reaches_x_as_in_torch():
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    src = """model m(x: float32[B, 4]) -> y {
        h = x -> linear(4) as fc
        y = masked_fill(h * full_like(h, 0.5), h > 1.0, 2.0) + ones_like(h) - zeros_like(h) -> linear(2) as out
    }"""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=src)
    one_step_like_torch(ct, fwd, batches(ct, 1, 3, 2, seed=1))
