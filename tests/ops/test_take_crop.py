"""The crop the slice diagnostic advises where the length is known only at run time (Demucs'
skip[..., :d.shape[-1]]): take(t, positions(r, dim=2), axis=2) keeps t's first r.shape[2] positions."""

from __future__ import annotations

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
