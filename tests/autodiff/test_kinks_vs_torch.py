"""Gradients exactly on the kinks, where finite differences say nothing and torch's choice is the spec:
clamp passes the gradient at its bounds, hardtanh/relu6/hardsigmoid do not, hardswish is 0 at -3 and 1 at
3, elu is alpha at 0, softplus switches to 1 only strictly above its threshold, leaky_relu takes its slope
at 0, abs and pow (x ** e at a zero base) their torch values at 0, and minimum/maximum split a tie in half
(summed back over broadcast dims). Our gradient graph (float32, onnxruntime) against torch
autograd in float32, for the objective sum(op(x) * r)."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.types import DType, TensorType

from .gradcheck import OPSET32, _build, run_model

torch = pytest.importorskip("torch")
F = torch.nn.functional

POINTS = np.array([-7.0, -6.0, -3.0, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 4.0, 6.0, 6.5, 19.0, 20.0,
                   21.0], np.float32)

_CASES = {  # (op, attrs, torch)
    "clamp": ("clamp", {"min": -1.0, "max": 3.0}, lambda x: torch.clamp(x, -1.0, 3.0)),
    "clamp-min": ("clamp", {"min": 0.0}, lambda x: torch.clamp(x, min=0.0)),
    "clamp-max": ("clamp", {"max": 6.0}, lambda x: torch.clamp(x, max=6.0)),
    "clamp-equal": ("clamp", {"min": 3.0, "max": 3.0}, lambda x: torch.clamp(x, 3.0, 3.0)),
    "hardtanh": ("hardtanh", {}, F.hardtanh),
    "hardtanh-3": ("hardtanh", {"min_val": -3.0, "max_val": 2.5}, lambda x: F.hardtanh(x, -3.0, 2.5)),
    "relu6": ("relu6", {}, F.relu6),
    "hardsigmoid": ("hardsigmoid", {}, F.hardsigmoid),
    "hardswish": ("hardswish", {}, F.hardswish),
    "elu": ("elu", {}, F.elu),
    "elu-alpha": ("elu", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
    "selu": ("selu", {}, F.selu),
    "celu": ("celu", {"alpha": 2.0}, lambda x: F.celu(x, 2.0)),
    "softplus": ("softplus", {}, F.softplus),
    "softplus-low": ("softplus", {"beta": 2.0, "threshold": 3.0}, lambda x: F.softplus(x, 2.0, 3.0)),
    "softplus-one": ("softplus", {"threshold": 1.0}, lambda x: F.softplus(x, 1.0, 1.0)),
    "mish": ("mish", {}, F.mish),
    "leaky_relu": ("leaky_relu", {}, F.leaky_relu),
    "leaky_relu-0.2": ("leaky_relu", {"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    "abs": ("abs", {}, torch.abs),  # 0 at 0 (an L1 loss on exact ties)
}


def _ours(op, arrays, attrs, r):
    """The gradients of the float arrays (integer ones are indices)."""
    types = [TensorType(DType.float32 if a.dtype.kind == "f" else DType.int64, a.shape) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    model, none = _build(op, types, attrs, DType.float32, [r], wrt, OPSET32)
    _loss, *grads = run_model(model, {f"in{i}": a for i, a in enumerate(arrays)})
    return [np.zeros_like(arrays[i]) if n else g for i, g, n in zip(wrt, grads, none)]


def _theirs(fn, arrays, r):
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    (fn(*ts) * torch.from_numpy(r)).sum().backward()
    return [t.grad.numpy() for t in ts if t.requires_grad]


def _same(ours, theirs):
    """Where the gradient stops exactly; its values to float32 rounding (mish's tail, ~1e-8, cancels, and
    onnxruntime's Sigmoid flushes sigmoid(-20) = 2e-9 to 0)."""
    for a, b in zip(ours, theirs):
        clear = (b == 0) | (np.abs(b) > 1e-6)
        np.testing.assert_array_equal((a == 0)[clear], (b == 0)[clear])
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=3e-7)


@pytest.mark.parametrize("case", sorted(_CASES))
def test_activation_gradients_on_the_kinks_are_torchs(case):
    op, attrs, fn = _CASES[case]
    x = np.concatenate([POINTS, -POINTS])
    r = np.random.default_rng(0).uniform(0.5, 2.0, x.shape).astype(np.float32)  # nonzero everywhere
    _same(_ours(op, [x], attrs, r), _theirs(fn, [x], r))


def test_prelu_takes_its_slope_at_zero_as_torch():
    """torch's backward is x > 0 ? g : w * g: an exact 0 (a padded or relu'd input) gets the slope."""
    x = np.concatenate([POINTS, -POINTS, np.zeros(3, np.float32)])
    w = np.array([0.25], np.float32)
    r = np.random.default_rng(1).uniform(0.5, 2.0, x.shape).astype(np.float32)
    _same(_ours("prelu", [x, w], {"num_parameters": 1}, r), _theirs(F.prelu, [x, w], r))


@pytest.mark.parametrize("p, eps", [(2.0, 0.5), (0.5, 1e-12), (1.0, 3.5)])
def test_normalize_at_a_norm_of_eps_and_at_zeros_below_p_1_is_torchs(p, eps):
    """Row 0's norm equals eps (0.5 and 3.5, exact in float32): torch's clamp_min passes the gradient at the tie.
    At p < 1, |x|^(p-1) is infinite at an exact 0; torch's gradient there is finite (the gradnan hunt)."""
    x = np.array([[0.5, 0.0, 0.0], [1.0, -2.0, 0.5], [0.0, 1.0, -2.0], [3.5, 0.0, 0.0]], np.float32)
    r = np.array([[1.0, 2.0, -1.0], [0.5, 1.0, 2.0], [1.0, 2.0, -1.0], [-1.0, 0.5, 2.0]], np.float32)
    _same(_ours("normalize", [x], {"p": p, "dim": 1, "eps": eps}, r),
          _theirs(lambda t: F.normalize(t, p=p, dim=1, eps=eps), [x], r))


def test_scatter_reduce_mean_without_self_counts_only_the_sources():
    """include_self=false: a position's mean is over its sources alone (two sources: each gets half)."""
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    idx, src = np.array([0, 0, 2]), np.array([10.0, 20.0, 30.0], np.float32)
    r = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    for include in (False, True):
        _same(_ours("scatter_reduce", [x, idx, src], {"dim": 0, "reduce": "mean", "include_self": include}, r),
              _theirs(lambda a, i, s: torch.scatter_reduce(a, 0, i, s, "mean", include_self=include), [x, idx, src], r))


@pytest.mark.parametrize("e", [2.0, 3.0, 1.0, 0.5, 0.0, -1.0])
def test_pow_gradients_at_a_zero_base_are_torchs(e):
    """d/dx x**e at x = 0 is e * 0**(e-1): 0 for e > 1, 1 for e = 1, inf for e < 1 (as torch says); y / x
    would make it NaN. The exponent's gradient, x**e * log(x), is 0 there where torch masks it."""
    x = np.concatenate([POINTS, -POINTS, np.zeros(2, np.float32)])
    ex = np.full(x.shape, e, np.float32)
    r = np.random.default_rng(3).uniform(0.5, 2.0, x.shape).astype(np.float32)
    ours, theirs = _ours("pow", [x, ex], {}, r), _theirs(torch.pow, [x, ex], r)
    fine = np.isfinite(theirs[0])
    np.testing.assert_array_equal(np.isfinite(ours[0]), fine)  # NaN for a negative base, inf at 0 where e < 1
    np.testing.assert_allclose(ours[0][fine], theirs[0][fine], rtol=2e-6, atol=3e-7)
    at_zero = x == 0
    np.testing.assert_array_equal(ours[1][at_zero], theirs[1][at_zero])


def test_the_kink_points_are_where_torch_says():
    """Guard against the cases above passing for the wrong reason: torch's own choices at the kinks."""
    x = torch.tensor([-3.0, 0.0, 3.0, 6.0], requires_grad=True)
    for fn, want in ((lambda v: torch.clamp(v, 0.0, 6.0), [0, 1, 1, 1]), (F.relu6, [0, 0, 1, 0]),
                     (F.hardsigmoid, [0, 1 / 6, 0, 0]), (F.hardswish, [0, 0.5, 1, 1])):
        x.grad = None
        fn(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("op", ["minimum", "maximum"])
@pytest.mark.parametrize("shapes", [((6,), (6,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((3,), ())])
def test_minimum_maximum_split_ties_like_torch(op, shapes):
    rng = np.random.default_rng(1)
    a = (np.arange(np.prod(shapes[0])) % 3 - 1).reshape(shapes[0]).astype(np.float32)  # ties and both winners
    b = (np.arange(np.prod(shapes[1])) * 2 % 3 - 1).reshape(shapes[1]).astype(np.float32)
    out = np.broadcast_shapes(a.shape, b.shape)
    r = rng.uniform(0.5, 2.0, out).astype(np.float32)
    assert (np.broadcast_to(a, out) == np.broadcast_to(b, out)).any()
    _same(_ours(op, [a, b], {}, r), _theirs(getattr(torch, op), [a, b], r))


@pytest.mark.parametrize("op", ["amin", "amax"])
@pytest.mark.parametrize("dim, keep", [((1,), False), ((0, 1), True), (None, False)])
def test_amin_amax_share_ties_like_torch(op, dim, keep):
    """Tied minima (maxima) share the gradient equally, as torch.amin/amax do (torch.min/max give it to one)."""
    x = np.array([[1.0, -2.0, -2.0, 3.0], [3.0, 3.0, 0.5, -2.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    out = getattr(torch, op)(torch.from_numpy(x), dim=dim if dim is not None else (0, 1), keepdim=keep)
    r = np.random.default_rng(2).uniform(0.5, 2.0, tuple(out.shape)).astype(np.float32)
    fn = (lambda t: getattr(torch, op)(t, dim=dim, keepdim=keep)) if dim is not None else getattr(torch, op)
    _same(_ours(op, [x], {"dim": dim, "keepdim": keep}, r), _theirs(fn, [x], r))


@pytest.mark.parametrize("case", sorted(_CASES) + ["relu"])
def test_activation_gradients_at_nan_and_infinities_are_torchs_on_a_whole_vector(case):
    """At NaN torch's CPU backward kernels answer by path: the vectorized one (every element of a tensor but a
    tail under 16) gives 0 for hardtanh/relu6 and NaN for hardswish and the elu family, the scalar tail g. A
    tensor of 1024 here, the values at its start: torch's vectorized answers (hardswish gave 0; relu, whose rule
    is the same on both paths, gave 0 where torch passes g: review73 hunt). abs keeps NaN at NaN, where torch's
    sign(NaN) makes it 0."""
    op, attrs, fn = _CASES[case] if case != "relu" else ("relu", {}, torch.relu)
    x = np.ones(1024, np.float32)
    x[:4] = [np.nan, np.inf, -np.inf, -1.0]
    r = np.full(x.shape, 1.5, np.float32)
    (ours,), (theirs,) = _ours(op, [x], attrs, r), _theirs(fn, [x], r)
    if op == "abs":
        ours, theirs = ours[1:], theirs[1:]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)  # NaN where both are NaN
