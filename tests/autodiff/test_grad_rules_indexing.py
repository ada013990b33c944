"""Gradient rules of the rearranging and indexing ops (ops/rearrange.py, ops/indexing.py, ops/einsum.py,
ops/sorting.py, ops/scatter.py, ops/cumprod.py, ops/repeat_interleave.py) against central finite differences in
float64, as test_grad_rules.py does for the core ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .gradcheck import FAST, check_grad, dims, normal


@FAST
@given(lead=st.lists(dims, min_size=0, max_size=1), c=st.integers(1, 2), r=st.integers(1, 3), h=dims, w=dims,
       seed=st.integers(0, 99))
def test_pixel_shuffle_unshuffle(lead, c, r, h, w, seed):
    check_grad("pixel_shuffle", [normal(seed, *lead, c * r * r, h, w)], {"upscale_factor": r}, seed=seed, linear=True)
    check_grad("pixel_unshuffle", [normal(seed, *lead, c, h * r, w * r)], {"downscale_factor": r}, seed=seed,
               linear=True)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_flip(shape, data, seed):
    r = len(shape)
    axes = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique_by=lambda a: a % r))
    check_grad("flip", [normal(seed, *shape)], {"dims": axes}, seed=seed, linear=True)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), largest=st.booleans(), seed=st.integers(0, 99))
def test_topk(shape, data, largest, seed):
    """The values' gradient goes to the chosen positions (normal draws: no ties)."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    check_grad("topk", [normal(seed, *shape)], {"k": data.draw(st.integers(1, shape[d])), "dim": d,
                                                "largest": largest}, outputs=[0], seed=seed)


def _index_shape(data, shape, d: int) -> list[int]:
    """An index for gather or scatter_add along dim d of `shape`: 1-5 long there, at most x's sizes elsewhere."""
    return [data.draw(st.integers(1, 5)) if i == d % len(shape) else data.draw(st.integers(1, n))
            for i, n in enumerate(shape)]


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_gather(shape, data, seed):
    """Positions read several times (index drawn with repeats) get the sum of their gradients."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    ishape = _index_shape(data, shape, d)
    index = np.random.default_rng(seed).integers(0, shape[d], ishape)
    check_grad("gather", [normal(seed, *shape), index], {"dim": d}, seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=0, max_size=3), reps=st.lists(st.integers(0, 3), min_size=1, max_size=4),
       seed=st.integers(0, 99))
def test_tile(shape, reps, seed):
    check_grad("tile", [normal(seed, *shape)], {"dims": reps}, seed=seed)


@st.composite
def _einsum_case(draw):
    """An equation of 1-3 operands over the letters abcd, none repeated within an operand, an explicit output
    (any order) or the implicit one, and its arrays: some dims 1 where the letter is larger (broadcast)."""
    n = draw(st.integers(1, 3))
    terms = ["".join(draw(st.lists(st.sampled_from("abcd"), max_size=3, unique=True))) for _ in range(n)]
    used = sorted(set("".join(terms)))
    sizes = {c: draw(st.integers(1, 3)) for c in used}
    eq = ",".join(terms)
    if draw(st.booleans()):
        eq += "->" + "".join(draw(st.permutations(used))[:draw(st.integers(0, len(used)))])
    seed = draw(st.integers(0, 99))
    arrays = [normal(seed + k, *[1 if draw(st.integers(0, 4)) == 0 else sizes[c] for c in t])
              for k, t in enumerate(terms)]
    return eq, arrays, seed


@FAST
@given(case=_einsum_case())
def test_einsum(case):
    """Letters summed in one operand only (stretched back), in the output, broadcast from 1."""
    eq, arrays, seed = case
    check_grad("einsum", arrays, {"equation": eq}, seed=seed)


@pytest.mark.parametrize("eq, shapes", [
    ("...ij,...jk->...ik", [(2, 3, 2, 3), (3, 3, 2)]),
    ("...ij,jk", [(1, 2, 3), (3, 2)]),
    ("i...,...->i", [(2, 3, 1), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (1, 4, 2)]),
])
def test_einsum_ellipsis(eq, shapes):
    check_grad("einsum", [normal(i, *s) for i, s in enumerate(shapes)], {"equation": eq})


def test_einsum_diagonal():
    """A diagonal ('ii') has no gradient rule: refused with a reason; through the other operand it has one."""
    from archdsl.diagnostics import ArchError
    with pytest.raises(ArchError, match=r"no gradient for operand 0, whose subscripts repeat i \(a diagonal"):
        check_grad("einsum", [normal(0, 3, 3)], {"equation": "ii->i"})
    check_grad("einsum", [normal(0, 3, 3), normal(1, 3)], {"equation": "ii,i->i"}, wrt=[1])


@FAST
@given(shape=st.lists(dims, min_size=0, max_size=3), data=st.data(), desc=st.booleans(), seed=st.integers(0, 99))
def test_sort(shape, data, desc, seed):
    """The values' gradient goes back through the permutation (normal draws: no ties)."""
    r = max(len(shape), 1)
    check_grad("sort", [normal(seed, *shape)], {"dim": data.draw(st.integers(-r, r - 1)), "descending": desc},
               outputs=[0], seed=seed)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99))
def test_scatter_add(shape, data, seed):
    """Repeated indices (drawn with repeats); src larger than index gets zeros outside index's corner."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    ishape = _index_shape(data, shape, d)
    sshape = [m + data.draw(st.integers(0, 1)) for m in ishape]
    index = np.random.default_rng(seed).integers(0, shape[d], ishape)
    check_grad("scatter_add", [normal(seed, *shape), index, normal(seed + 1, *sshape)], {"dim": d}, seed=seed,
               linear=True)


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), n=st.integers(1, 5),
       alpha=st.sampled_from([1.0, -0.5, 2.0]), seed=st.integers(0, 99))
def test_index_add(shape, data, n, alpha, seed):
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    sshape = list(shape)
    sshape[d] = n
    index = np.random.default_rng(seed).integers(0, shape[d], n)
    check_grad("index_add", [normal(seed, *shape), index, normal(seed + 1, *sshape)], {"dim": d, "alpha": alpha},
               seed=seed, linear=True)


def _zeros_in(x: np.ndarray, seed: int, share: float) -> np.ndarray:
    return np.where(np.random.default_rng(seed + 7).random(x.shape) < share, 0.0, x)


@FAST
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data(),
       zeros=st.sampled_from([0.0, 0.3, 0.6]), seed=st.integers(0, 99))
def test_cumprod(shape, data, zeros, seed):
    """Exact zeros in x (none, some, most: several in one run along dim): the gradient at a zero is the
    product of the others, past the first zero it is 0, as torch's; no division anywhere."""
    r = len(shape)
    check_grad("cumprod", [_zeros_in(normal(seed, *shape), seed, zeros)], {"dim": data.draw(st.integers(-r, r - 1))},
               seed=seed)


@pytest.mark.parametrize("n", [9, 40])
def test_cumprod_long(n):
    """More scan steps than the drawn sizes reach (6 for 40), zeros among them."""
    x = _zeros_in(1 + 0.1 * normal(n, 2, n), n, 0.1)
    x[0, 3] = x[1, 0] = 0.0
    check_grad("cumprod", [x], {"dim": 1}, seed=n)


@FAST
@given(shape=st.lists(dims, min_size=0, max_size=3), data=st.data(), repeats=st.integers(0, 3),
       seed=st.integers(0, 99))
def test_repeat_interleave(shape, data, repeats, seed):
    r = len(shape)
    d = data.draw(st.sampled_from([None] + list(range(-r, r))))
    check_grad("repeat_interleave", [normal(seed, *shape)], {"repeats": repeats, "dim": d}, seed=seed, linear=True)


def test_cumprod_gradient_after_a_zero_of_factors_near_float32s_limit(tmp_path):
    """The backward scan's products after a 0 overflowed in float32 (x = [0, 3e30, 3e30, 3e30]: NaN where
    torch's gradient is 0); it runs in float64, as the forward."""
    import onnx
    torch = pytest.importorskip("torch")
    from archdsl import runtime
    from archdsl.cli import main
    spec = tmp_path / "c.arch"
    spec.write_text("model m(r: float32[1, 4]) -> loss {\n    x = parameter([1, 4]) as p\n"
                    "    loss = sum(cumprod(x, 1) * r)\n}\n")
    x = np.array([[0.0, 3e30, 3e30, 3e30]], np.float32)
    np.savez(tmp_path / "w.npz", p=x)
    assert main(["build", str(spec), "--train", "--loss", "model", "--optimizer", "sgd", "--lr", "1", "--weights",
                 str(tmp_path / "w.npz"), "-o", str(tmp_path / "c.onnx")]) == 0
    sess = runtime.session(tmp_path / "c.onnx", "cpu")
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "c.onnx")).graph.initializer}
    r = np.array([[-1.0, 0.5, 2.0, 0.25]], np.float32)
    feeds = {i.name: r if i.name == "r" else init[i.name] for i in sess.get_inputs()}
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    grad = x - outs["p.new"]
    xt = torch.tensor(x, requires_grad=True)
    (torch.cumprod(xt, 1) * torch.from_numpy(r)).sum().backward()
    np.testing.assert_array_equal(grad[:, 1:], xt.grad.numpy()[:, 1:])
    assert grad[0, 0] == xt.grad[0, 0].item() == np.inf


@FAST
@given(shape=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=st.integers(0, 99),
       reduce=st.sampled_from(["none", "sum", "mean", "amax", "amin"]), keep=st.booleans())
def test_scatter_and_scatter_reduce(shape, data, seed, reduce, keep):
    """scatter (reduce none) and scatter_reduce's sum, mean, amax and amin, with and without include_self;
    distinct values, so that no tie sits at a kink of amax/amin (x's and src's too: 0.37 * 14 - 3 and 0.41 * 5 +
    0.13 were both 2.18, where torch's amax shares the gradient with x even when include_self is false, which
    finite differences cannot see)."""
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    ishape = _index_shape(data, shape, d)
    sshape = [m + data.draw(st.integers(0, 1)) for m in ishape]
    rng = np.random.default_rng(seed)
    index = rng.integers(0, shape[d], ishape)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 3.0
    src = rng.permutation(int(np.prod(sshape))).reshape(sshape) * 0.41 + 0.135  # never one of x's hundredths
    if reduce == "none":  # distinct indices along d: of repeated ones torch's gradient (gather) goes to every
        # writer, where only the one that lands counts
        full = list(ishape)
        full[d] = shape[d]
        index = np.take(rng.random(full).argsort(axis=d), range(min(ishape[d], shape[d])), axis=d)
        check_grad("scatter", [x, index, src], {"dim": d}, seed=seed)
    else:
        check_grad("scatter_reduce", [x, index, src], {"dim": d, "reduce": reduce, "include_self": keep}, seed=seed)
