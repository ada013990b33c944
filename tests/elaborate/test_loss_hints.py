"""Losses torch has and the language writes out (elaborate/values.py _TORCH_FUNCTIONS and elaborate/arguments.py
_TORCH_ARGS): the unknown name or argument says what to write, and what it says, written out, computes torch's
loss (torchvision's and MONAI's where torch has none)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl import runtime

from .harness import _each_said, _said

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_the_ranking_and_weighted_losses_the_hints_give_are_torchs():
    """pos_weight= and a cross_entropy weight= said only the signature; margin_ranking_loss, triplet_margin_loss,
    cosine_embedding_loss nothing or "did you mean 'sinusoidal_embedding'" (porting24 hunt: NCF, two towers)."""
    F = torch.nn.functional
    _each_said("a: float32[3, 5], b: float32[3, 5], i: int64[3]", [
        ("bce_with_logits(a, b, pos_weight=b)", "mean(pw * t * -logsigmoid(x) + (1.0 - t)"),
        ("cross_entropy(a, i, weight=b)", "sum(take(w, y))"),
        ("margin_ranking_loss(a, b, b)", "mean(clamp(-y * (a - b) + margin, min=0.0))"),
        ("triplet_margin_loss(a, b, b)", "norm(a - p + 1e-6, dim=-1) - norm(a - n + 1e-6, dim=-1) + 1.0"),
        ("cosine_embedding_loss(a, b, b)", "1.0 - c, clamp(c - margin, min=0.0)"),
        ("scatter_max(a, i, 0)", 'scatter_reduce(out, dim, index, src, "amax", include_self=false)'),
        ("reversed(a)", "xs[::-1]")])
    src = ("model m(x: float32[4, 3], t: float32[4, 3], pw: float32[3], a: float32[4, 6], p: float32[4, 6], "
           "n: float32[4, 6], y: float32[4]) -> (bce, rank, trip, cos) {\n"
           "    bce = mean(pw * t * -logsigmoid(x) + (1.0 - t) * -logsigmoid(-x))\n"
           "    rank = mean(clamp(-y * (a[:, 0] - p[:, 0]) + 0.5, min=0.0))\n"
           "    trip = mean(clamp(norm(a - p + 1e-6, dim=-1) - norm(a - n + 1e-6, dim=-1) + 1.0, min=0.0))\n"
           "    c = cosine_similarity(a, p, dim=-1)\n"
           "    cos = mean(where(gt(y, 0.0), 1.0 - c, clamp(c - 0.2, min=0.0)))\n}\n")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 3)), "t": rng.random((4, 3)), "pw": rng.random(3) * 3,
             "a": rng.standard_normal((4, 6)), "p": rng.standard_normal((4, 6)), "n": rng.standard_normal((4, 6)),
             "y": np.array([1.0, -1.0, 1.0, -1.0])}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    bce, rank, trip, cos = runtime.session(archdsl.compile_source(src)).run(None, feeds)
    tf = {k: torch.from_numpy(v) for k, v in feeds.items()}
    np.testing.assert_allclose(bce, F.binary_cross_entropy_with_logits(tf["x"], tf["t"], pos_weight=tf["pw"]),
                               rtol=1e-5)
    np.testing.assert_allclose(rank, F.margin_ranking_loss(tf["a"][:, 0], tf["p"][:, 0], tf["y"], margin=0.5),
                               rtol=1e-5)
    np.testing.assert_allclose(trip, F.triplet_margin_loss(tf["a"], tf["p"], tf["n"]), rtol=1e-5)  # its defaults
    np.testing.assert_allclose(cos, F.cosine_embedding_loss(tf["a"], tf["p"], tf["y"], margin=0.2), rtol=1e-5)


def test_the_class_weighted_cross_entropy_with_an_ignored_index_is_torchs():
    """The weight= hint's form with ignore_index: take(w, y) read a -100 label out of bounds (review103 hunt)."""
    assert 'k = take(w, clamp(y, min=0)) * cast(ne(y, i), "float32")' in \
        _said("a: float32[3, 5], i: int64[3], b: float32[5]", "cross_entropy(a, i, weight=b)")
    src = ('model m(x: float32[B, 3], y: int64[B], w: float32[3]) -> l {\n'
           '    k = take(w, clamp(y, min=0)) * cast(ne(y, -100), "float32")\n'
           '    l = sum(cross_entropy(x, y, reduction="none", ignore_index=-100) * k) / sum(k)\n}\n')
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y, w = np.array([0, -100, 2, 1, -100]), np.array([0.2, 1.0, 3.0], np.float32)
    got = runtime.session(archdsl.compile_source(src)).run(None, {"x": x, "y": y, "w": w})[0]
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w),
                                             ignore_index=-100)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_the_focal_and_dice_losses_said_compute_torchvisions_and_monais():
    """sigmoid_focal_loss said nothing and dice_loss "did you mean 'ctc_loss'" (porting28 hunt: RetinaNet, a
    segmentation net's Dice). Each form, run against torch written out as torchvision's and MONAI's compute it."""
    _each_said("x: float32[B, 3, 4, 4], y: int64[B, 4, 4]", [
        ("sigmoid_focal_loss(x, x)", "a * ce * (1.0 - p_t) ** 2.0 with p = sigmoid(x)"),
        ("DiceLoss(x, y)", "mean(1.0 - (2.0 * sum(p * o, dim=[2, 3]) + 1.0)")])
    src = ("model m(x: float32[B, 3, 4, 4], t: float32[B, 3, 4, 4], y: int64[B, 4, 4]) -> (focal, dice) {\n"
           "    p = sigmoid(x)\n    ce = bce_with_logits(x, t, reduction=\"none\")\n"
           "    p_t = p * t + (1.0 - p) * (1.0 - t)\n    a = 0.25 * t + 0.75 * (1.0 - t)\n"
           "    focal = mean(a * ce * (1.0 - p_t) ** 2.0)\n    q = softmax(x, axis=1)\n"
           "    o = permute(cast(one_hot(y, 3), \"float32\"), [0, 3, 1, 2])\n"
           "    dice = mean(1.0 - (2.0 * sum(q * o, dim=[2, 3]) + 1.0) / (sum(q, dim=[2, 3]) + sum(o, dim=[2, 3]) + "
           "1.0))\n}\n")
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((2, 3, 4, 4))).astype(np.float32)
    t = (rng.random((2, 3, 4, 4)) < 0.3).astype(np.float32)
    y = rng.integers(0, 3, (2, 4, 4))
    focal, dice = runtime.session(archdsl.compile_source(src)).run(None, {"x": x, "t": t, "y": y})
    tx, tt = torch.from_numpy(x).double(), torch.from_numpy(t).double()
    p = torch.sigmoid(tx)  # torchvision.ops.sigmoid_focal_loss, reduction="mean"
    ce = F.binary_cross_entropy_with_logits(tx, tt, reduction="none")
    p_t = p * tt + (1 - p) * (1 - tt)
    want = ((0.25 * tt + 0.75 * (1 - tt)) * ce * (1 - p_t) ** 2).mean()
    np.testing.assert_allclose(focal, want.item(), rtol=1e-5)
    q = torch.softmax(tx, 1)  # MONAI's DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1, smooth_dr=1)
    o = F.one_hot(torch.from_numpy(y), 3).permute(0, 3, 1, 2).double()
    inter, den = (q * o).sum((2, 3)), q.sum((2, 3)) + o.sum((2, 3))
    np.testing.assert_allclose(dice, (1 - (2 * inter + 1) / (den + 1)).mean().item(), rtol=1e-5)


def test_the_density_and_nll_forms_said_compute_torchs():
    """gaussian_nll_loss and poisson_nll_loss said nothing, torch.normal's sampling got the init hint of
    normal_, Normal(...).log_prob "did you mean 'log1p'", xlogy "did you mean 'log'" (porting29 hunt: an MDN,
    a VAE). Each form, run against torch."""
    _each_said("x: float32[B, 4]", [("gaussian_nll_loss(x, x, x)", "mean(0.5 * (log(v) + (t - mu) ** 2 / v))"),
                                    ("poisson_nll_loss(x, x)", "mean(exp(x) - t * x)"),
                                    ("normal(x, x)", "mean + std * randn_like(mean)"),
                                    ("Normal(x, x)", "for a Normal(mu, sigma)'s log_prob(t)"),
                                    ("log_prob(x)", "- log(sigma) - 0.9189385332046727"),
                                    ("xlogy(x, x)", "x * log(where(eq(x, 0.0), 1.0, y))")])
    src = ("model m(mu: float32[3, 4], t: float32[3, 4], var: float32[3, 4], x: float32[3, 4]) -> "
           "(g, p, lp, xl) {\n    v = clamp(var, min=1e-6)\n    g = mean(0.5 * (log(v) + (t - mu) ** 2 / v))\n"
           "    p = mean(exp(x) - t * x)\n    sigma = sqrt(var)\n"
           "    lp = -(t - mu) ** 2 / (2.0 * sigma ** 2) - log(sigma) - 0.9189385332046727\n"
           "    xl = x * log(where(eq(x, 0.0), 1.0, t))\n}\n")
    rng = np.random.default_rng(0)
    f = {"mu": rng.standard_normal((3, 4)), "t": rng.random((3, 4)) * 3, "var": rng.random((3, 4)) + 0.1,
         "x": np.where(rng.random((3, 4)) < 0.3, 0.0, rng.standard_normal((3, 4)))}  # x < 0 too (mutnew4: the
    # hint's x > 0 gave 0 there)
    f = {k: v.astype(np.float32) for k, v in f.items()}
    g, p, lp, xl = runtime.session(archdsl.compile_source(src)).run(None, f)
    tf = {k: torch.from_numpy(v) for k, v in f.items()}
    np.testing.assert_allclose(g, F.gaussian_nll_loss(tf["mu"], tf["t"], tf["var"]), rtol=1e-5)
    np.testing.assert_allclose(p, F.poisson_nll_loss(tf["x"], tf["t"]), rtol=1e-5)
    want = torch.distributions.Normal(tf["mu"], tf["var"].sqrt()).log_prob(tf["t"])
    np.testing.assert_allclose(lp, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xl, torch.xlogy(tf["x"], tf["t"]), rtol=1e-5, atol=1e-7)


def _top_level(text: str) -> tuple[list, int]:
    """(text split at ", " outside (), [] and strings, where the last top-level " (" begins)."""
    parts, depth, quoted, start, note = [], 0, False, 0, len(text)
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(" and depth == 0 and i and text[i - 1] == " ":
            note = i - 1
        if not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(", ", i):
            parts.append(text[start:i])
            start = i + 2
    return parts + [text[start:]], note


def _ported(e: str) -> str:
    """The hint's logits and class count C as this test's x and 3."""
    return re.sub(r"\bC\b", "3", e.replace("logits", "x"))


def _written(message: str) -> tuple[str, list]:
    """(the expression, its `name = ...` definitions in order) of a hint 'write E with a = ..., b = ... (note)'."""
    text = message.split("; write ", 1)[1]
    text = text[:_top_level(text)[1]]  # the closing note, in parentheses
    expr, _, defs = text.partition(" with ")
    return expr, [tuple(d.split(" = ", 1)) for d in _top_level(defs)[0]]


def test_the_focal_and_dice_losses_as_said_word_for_word_compute_torchvisions_and_monais():
    """Every definition in the hint is run as written (the earlier test ran its own copy of the form, so a hint
    that said a = 0.75 * t + 0.25 * (1.0 - t), a softmax over the last axis or another permute still passed)."""
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((2, 3, 4, 4))).astype(np.float32)
    t = (rng.random((2, 3, 4, 4)) < 0.3).astype(np.float32)
    labels = rng.integers(0, 3, (2, 4, 4))
    inputs = "x: float32[B, 3, 4, 4], t: float32[B, 3, 4, 4], y: int64[B, 4, 4]"
    tx, tt = torch.from_numpy(x).double(), torch.from_numpy(t).double()

    expr, defs = _written(_said(inputs, "sigmoid_focal_loss(x, t)"))
    body = "".join(f"    {n} = {e}\n" for n, e in defs) + f"    loss = mean({expr})\n"
    src = f"model m({inputs}) -> loss {{\n{body}}}\n"
    (focal,) = runtime.session(archdsl.compile_source(src)).run(None, {"x": x, "t": t, "y": labels})
    p = torch.sigmoid(tx)  # torchvision.ops.sigmoid_focal_loss(x, t, reduction="mean")
    ce = F.binary_cross_entropy_with_logits(tx, tt, reduction="none")
    p_t = p * tt + (1 - p) * (1 - tt)
    np.testing.assert_allclose(focal, ((0.25 * tt + 0.75 * (1 - tt)) * ce * (1 - p_t) ** 2).mean().item(),
                               rtol=1e-5)

    expr, defs = _written(_said(inputs, "dice_loss(x, y)"))
    body = "".join(f"    {n} = {_ported(e)}\n" for n, e in defs)
    src = f"model m({inputs}) -> loss {{\n{body}    loss = {expr}\n}}\n"
    (dice,) = runtime.session(archdsl.compile_source(src)).run(None, {"x": x, "t": t, "y": labels})
    q = torch.softmax(tx, 1)  # MONAI's DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1, smooth_dr=1)
    o = F.one_hot(torch.from_numpy(labels), 3).permute(0, 3, 1, 2).double()
    inter, den = (q * o).sum((2, 3)), q.sum((2, 3)) + o.sum((2, 3))
    np.testing.assert_allclose(dice, (1 - (2 * inter + 1) / (den + 1)).mean().item(), rtol=1e-5)


def test_the_distance_margin_and_complex_hints_run_as_torchs():
    """pairwise_distance, pdist ("did you mean 'cdist'"), hinge_embedding_loss ("did you mean 'embedding'"), the
    soft, multi and multilabel margin losses said nothing or a wrong near name; real/imag/conj/angle ("did you
    mean 'conv'") and a complex dtype no way out (porting30, porting31 hunts). Each form, word for word, against
    torch."""
    _each_said("x: float32[4, 6]", [
        ("pairwise_distance(x, x)", "norm(a - b + 1e-6, dim=-1)"),
        ("pdist(x)", "take(flatten(d, 0), tensor([i * n + j for i in range(n) for j in range(i + 1, n)]))"),
        ("hinge_embedding_loss(x, x)", "mean(where(gt(y, 0.0), x, clamp(1.0 - x, min=0.0)))"),
        ("soft_margin_loss(x, x)", "mean(softplus(-y * x))"),
        ("multilabel_soft_margin_loss(x, x)", "bce_with_logits(x, y)"),
        ("multi_margin_loss(x, x)", "mean((sum(clamp(1.0 - xy + x, min=0.0), dim=1) - 1.0) / C) with xy = "
                                    "gather(x, 1, unsqueeze(y, 1))"),
        ("multilabel_margin_loss(x, x)", "mean(sum(unsqueeze(m, 2) * unsqueeze(1.0 - m, 1) * clamp(1.0 - "
                                         "unsqueeze(x, 2) + unsqueeze(x, 1), min=0.0), dim=[1, 2]) / C)"),
        ("triplet_margin_with_distance_loss(x, x, x)", "mean(clamp(d(a, p) - d(a, n) + 1.0, min=0.0))"),
        ("conj(x)", "exp(a + ib) is exp(a) * cos(b) and exp(a) * sin(b)"), ("angle(x)", "atan2(im, re)")])
    with pytest.raises(archdsl.ArchError, match="'complex64'; there is no complex dtype: carry the real"):
        archdsl.check_source('model m(x: float32[4]) -> y {\n    y = cast(x, "complex64")\n}\n')
    src = ("model m(x: float32[4, 6], y: float32[4], a: float32[4, 6], b: float32[4, 6], z: float32[5, 3], "
           "k: int64[4], m: float32[4, 6], im: float32[4]) -> (pd, hinge, soft, mlsm, mm, mlm, pdi, ang, ex) {\n"
           "    pd = norm(a - b + 1e-6, dim=-1)\n"
           "    hinge = mean(where(gt(y, 0.0), a[:, 0], clamp(1.0 - a[:, 0], min=0.0)))\n"
           "    soft = mean(softplus(-y * a[:, 0]))\n    mlsm = bce_with_logits(x, m)\n"
           "    xy = gather(x, 1, unsqueeze(k, 1))\n"
           "    mm = mean((sum(clamp(1.0 - xy + x, min=0.0), dim=1) - 1.0) / 6.0)\n"
           "    mlm = mean(sum(unsqueeze(m, 2) * unsqueeze(1.0 - m, 1) * clamp(1.0 - unsqueeze(x, 2) + "
           "unsqueeze(x, 1), min=0.0), dim=[1, 2]) / 6.0)\n    d = cdist(z, z)\n"
           "    pdi = take(flatten(d, 0), tensor([i * 5 + j for i in range(5) for j in range(i + 1, 5)]))\n"
           "    ang = atan2(im, y)\n    ex = stack([exp(y) * cos(im), exp(y) * sin(im)], dim=-1)\n}\n")
    rng = np.random.default_rng(0)
    f = {"x": rng.standard_normal((4, 6)), "y": np.array([1.0, -1.0, 1.0, -1.0]), "a": rng.standard_normal((4, 6)),
         "b": rng.standard_normal((4, 6)), "z": rng.standard_normal((5, 3)), "m": (rng.random((4, 6)) < 0.4) * 1.0,
         "im": rng.standard_normal(4)}
    f = {n: v.astype(np.float32) for n, v in f.items()} | {"k": np.array([0, 3, 5, 2])}
    got = runtime.session(archdsl.compile_source(src)).run(None, f)
    t = {n: torch.from_numpy(v) for n, v in f.items()}
    listed = torch.full((4, 6), -1)  # multilabel_margin_loss's targets: class indices, ended by -1
    for i in range(4):
        on = np.flatnonzero(f["m"][i])
        listed[i, :len(on)] = torch.from_numpy(on)
    cplx = torch.complex(t["y"], t["im"])
    want = [F.pairwise_distance(t["a"], t["b"]), F.hinge_embedding_loss(t["a"][:, 0], t["y"]),
            F.soft_margin_loss(t["a"][:, 0], t["y"]), F.multilabel_soft_margin_loss(t["x"], t["m"]),
            F.multi_margin_loss(t["x"], t["k"]), F.multilabel_margin_loss(t["x"], listed), F.pdist(t["z"]),
            torch.angle(cplx), torch.view_as_real(torch.exp(cplx))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6)


def test_the_nll_hints_give_torchs_eps_word_for_word():
    """The eps of gaussian_nll_loss's clamp and of poisson_nll_loss's log_input=False form, as torch's defaults
    (mutnew4 hunt: either could change unseen)."""
    assert "v = clamp(var, min=1e-6) (torch's value at its default eps" in \
        _said("x: float32[B, 4]", "gaussian_nll_loss(x, x, x)")
    assert "log_input=False is mean(x - t * log(x + 1e-8))" in _said("x: float32[B, 4]", "poisson_nll_loss(x, x)")
