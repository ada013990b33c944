"""The crop the slice diagnostic advises where the length is known only at run time (Demucs'
skip[..., :d.shape[-1]]): take(t, positions(r, dim=2), axis=2) keeps t's first r.shape[2] positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import archdsl
from archdsl import runtime

_CROP = ("model m(s: float32[B, 3, T], d: float32[B, 3, U]) -> y {\n"
         "    y = d + take(s, positions(d, dim=2), axis=2)\n}\n")


def test_take_of_positions_crops_to_a_run_time_length():
    sess = runtime.session(archdsl.compile_source(_CROP))
    rng = np.random.default_rng(0)
    for t, u in ((9, 4), (9, 9), (203, 196)):
        s = rng.standard_normal((2, 3, t)).astype(np.float32)
        d = rng.standard_normal((2, 3, u)).astype(np.float32)
        y, = sess.run(None, {"s": s, "d": d})
        np.testing.assert_array_equal(y, d + s[:, :, :u])


def test_the_centre_crop_the_readme_and_the_slice_diagnostic_give_is_the_original_unets():
    """A centre crop at run-time sizes was said to need fixed sizes, and its slice's refusal gave the first-
    positions form only (porting32 hunt). The form they give now, word for word, at several sizes."""
    refused = ("model crop(x: float32[B, 4, T]) -> y {\n    h = x -> conv1d(4, 5) as conv\n"
               "    d = shape(x)[2] - shape(h)[2]\n    y = h + x[:, :, d // 2 : d // 2 + shape(h)[2]]\n}\n")
    try:
        archdsl.check_source(refused)
        raise AssertionError("the symbolic slice built")
    except archdsl.ArchError as e:
        assert "are take(t, positions(r, dim=2) + 2, axis=2), t the tensor sliced here and r one that is as " \
               "long on dim 2 as the part kept" in e.message
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    form = "take(skip, positions(d, dim=2) + (shape(skip)[2] - shape(d)[2]) // 2, axis=2)"
    assert form in readme
    sess = runtime.session(archdsl.compile_source(
        f"model m(skip: float32[B, 3, T, W], d: float32[B, 3, U, W]) -> y {{\n    y = d + {form}\n}}\n"))
    rng = np.random.default_rng(1)
    for t, u in ((9, 5), (10, 4), (7, 7)):
        skip, d = (rng.standard_normal((2, 3, n, 6)).astype(np.float32) for n in (t, u))
        lo = (t - u) // 2
        np.testing.assert_array_equal(sess.run(None, {"skip": skip, "d": d})[0], d + skip[:, :, lo:lo + u])
