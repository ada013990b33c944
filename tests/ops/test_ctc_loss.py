"""ctc_loss (ops/ctc.py) against torch.nn.functional.ctc_loss: losses over random lengths (0 frames too),
repeats, blanks at any class, padding labels of any value, impossible alignments (inf, or 0 with
zero_infinity), every reduction; the gradient through
log_softmax against torch autograd; float16; the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import FEW, NEWEST, covers, grads_of, refused

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _case(rng, t, n, c, s, blank):
    """Logits [T, N, C], labels (never the blank; some repeating; padding past a target's length any value,
    -1 or 99 too, as torch takes), and lengths: inputs in 0..T, targets in 0..S (some too long for their
    frames: an impossible alignment)."""
    x = rng.standard_normal((t, n, c)).astype(np.float32) * 2
    labels = [k for k in range(c) if k != blank]
    y = rng.choice(labels, (n, s)).astype(np.int64)
    if s > 1:
        y[0, 1] = y[0, 0]
    il = rng.integers(0, t + 1, n).astype(np.int64)
    tl = rng.integers(0, s + 1, n).astype(np.int64)
    y[np.arange(s)[None, :] >= tl[:, None]] = rng.choice([-1, 99, blank])
    return x, y, il, tl


def _src(t, c, s, **attrs):
    args = "".join(f", {k}={str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in attrs.items())
    return (f"model m(x: float32[{t}, B, {c}], y: int64[B, {s}], il: int64[B], tl: int64[B]) -> loss {{\n"
            f"    loss = ctc_loss(log_softmax(x, axis=2), y, il, tl{args})\n}}\n")


def _torch(x, y, il, tl, **attrs):
    lp = torch.log_softmax(torch.from_numpy(x).double(), 2)
    return F.ctc_loss(lp, torch.from_numpy(y), torch.from_numpy(il), torch.from_numpy(tl), **attrs).numpy()


@covers("ctc_loss")
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@FEW
@given(t=st.integers(1, 7), n=st.integers(1, 3), c=st.integers(2, 5), s=st.integers(1, 4), data=st.data(),
       zero_inf=st.booleans(), seed=st.integers(0, 99), opset=st.sampled_from([17, NEWEST]))
def test_ctc_loss_matches_torch(reduction, t, n, c, s, data, zero_inf, seed, opset):
    blank = data.draw(st.integers(0, c - 1))
    x, y, il, tl = _case(np.random.default_rng(seed), t, n, c, s, blank)
    attrs = {"blank": blank, "reduction": reduction, "zero_infinity": zero_inf}
    model = archdsl.compile_source(_src(t, c, s, **attrs), opset=opset)
    got = runtime.session(model, provider="cpu", threads=1).run(None, {"x": x, "y": y, "il": il, "tl": tl})[0]
    want = _torch(x, y, il, tl, **attrs)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction, zero_inf", [("mean", False), ("sum", True), ("none", True)])
def test_ctc_loss_gradient_through_log_softmax_matches_torch(reduction, zero_inf):
    """To the logits, as training uses it (torch's own gradient to log_probs adds exp(log_probs), which the
    log_softmax cancels); an impossible alignment with zero_infinity contributes nothing, not NaN."""
    rng = np.random.default_rng(4)
    t, n, c, s = 6, 4, 5, 3
    x, y, il, tl = _case(rng, t, n, c, s, 0)
    il[:2], tl[:2] = (6, 2), (3, 3)  # the second: 3 labels in 2 frames, impossible
    src = _src(t, c, s, reduction=reduction, zero_infinity=zero_inf).replace("B", str(n))
    tx = torch.from_numpy(x).double().requires_grad_()
    loss = F.ctc_loss(torch.log_softmax(tx, 2), torch.from_numpy(y), torch.from_numpy(il), torch.from_numpy(tl),
                      reduction=reduction, zero_infinity=zero_inf)
    r = np.random.default_rng(0).standard_normal(tuple(loss.shape)).astype(np.float32)
    (loss * torch.from_numpy(r).double()).sum().backward()
    got = grads_of(src, {"x": x, "y": y, "il": il, "tl": tl}, r, ["x"])["x"]
    want = tx.grad.numpy()
    assert np.isfinite(got).all()
    if not zero_inf:  # torch's gradient of the infinite loss is NaN; archdsl's is 0, as with zero_infinity
        assert np.isnan(want[:2, 1]).all() and (want[2:, 1] == 0).all() and (got[:, 1] == 0).all()
        got, want = np.delete(got, 1, axis=1), np.delete(want, 1, axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ctc_loss_in_float16_sums_in_float32():
    x, y, il, tl = _case(np.random.default_rng(1), 8, 2, 4, 3, 0)
    src = _src(8, 4, 3).replace("float32[", "float16[")
    got = runtime.session(archdsl.compile_source(src), provider="cpu", threads=1).run(
        None, {"x": x.astype(np.float16), "y": y, "il": il, "tl": tl})[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), _torch(x.astype(np.float16).astype(np.float32), y, il, tl),
                               rtol=2e-3)


@pytest.mark.parametrize("call, match", [
    ("ctc_loss(s, y, il, tl)", r"the number of frames T must be a known number .* got T in \[T, 2, 5\]; fix it"),
    ("ctc_loss(x, f, il, tl)", r"targets must be an integer \[N, S\] tensor"),
    ("ctc_loss(x, il, il, tl)", r"targets must be an integer \[N, S\] tensor"),
    ("ctc_loss(x, y, f[:, 0], tl)", r"input_lengths must be an integer \[N\] tensor"),
    ("ctc_loss(x, y, il, tl, blank=5)", r"blank=5 is not a class of the 5"),
    ("ctc_loss(x, y[:1], il, tl)", r"the batch differs"),
    ("ctc_loss(x[0], y, il, tl)", r"log_probs must be \[T, N, C\]"),
    ("ctc_loss(b, yb, il, tl)", r"got N in \[N, 6, 5\]; log_probs is time first, \[T, N, C\] as torch's: after a "
                               r"batch_first layer, permute\(\[1, 0, 2\]\)"),
])
def test_refusals(call, match):
    refused("model m(x: float32[6, 2, 5], s: float32[T, 2, 5], y: int64[2, 3], f: float32[2, 3], il: int64[2], "
            f"tl: int64[2], b: float32[N, 6, 5], yb: int64[N, 3]) -> loss {{\n    loss = {call}\n}}\n", match)


def test_targets_padded_past_what_the_unrolled_recursion_takes_are_refused():
    """words: int64[B, 2147483647] made a 16 GiB constant while building: 'error: out of memory', no line."""
    src = ("model m(lp: float32[24, B, 9], t: int64[B, 2147483647], il: int64[B], tl: int64[B]) -> loss {\n"
           "    loss = ctc_loss(lp, t, il, tl)\n}\n")
    with pytest.raises(archdsl.ArchError, match="more than the 16777216 the unrolled recursion takes"):
        archdsl.check_source(src)
