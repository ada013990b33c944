"""expand to symbolic sizes: read at run time from like= or from a model input (or an earlier value that an
output depends on), and refused, by `check` as by `build`, where no kept value has the size."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import runtime

from .core_harness import close, rand


def test_expand_reads_symbolic_dims_from_like():
    """expand(cls, [B, 1, 4], like=x): the runtime batch of x, at two batch sizes."""
    cls = rand(1, 1, 4)
    text = "model m(cls: float32[1, 1, 4], x: float32[B, T, 4]) -> y {\n    y = expand(cls, [B, 1, 4], like=x)\n}\n"
    m = archdsl.compile_source(text, opt_level=0)
    onnx.checker.check_model(m, full_check=True)
    for batch in (1, 3):
        (y,) = runtime.session(m, "cpu", 1).run(None, {"cls": cls, "x": rand(batch, 5, 4)})
        close(y, np.broadcast_to(cls, (batch, 1, 4)))


def test_expand_to_a_symbolic_dim_reads_it_from_like_or_a_model_input():
    """Without like= the lowering had only broadcast 1 (the checker declared [T, 8], onnxruntime gave [1, 8]),
    then it was refused; `expand(cls, [B, 1, D])` is torch's cls_token.expand(B, -1, -1), B the model's own
    input size, so it is read from the input as reshape reads it."""
    src = "model m(x: float32[1, 8], z: float32[T]) -> y {\n    y = expand(x, [T, 8]%s)\n}\n"
    with pytest.raises(archdsl.ArchError, match=re.escape("the like= tensor [1, 8] has no dim T")):
        archdsl.check_source(src % ", like=x")
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(1, 8), "z": np.zeros(3, np.float32)}
    for like in (", like=z", ""):
        (y,) = runtime.session(archdsl.compile_source(src % like)).run(None, feeds)
        np.testing.assert_array_equal(y, np.broadcast_to(feeds["x"], (3, 8)))
    tokens = ("model m(x: float32[B, T, 4]) -> y {\n    cls = parameter([1, 1, 4]) as cls\n"
              "    y = concat([expand(cls, [B, 1, 4]), x], axis=1)\n}\n")
    sess = runtime.session(archdsl.compile_source(tokens))
    for batch in (1, 3):
        (y,) = sess.run(None, {"x": np.ones((batch, 5, 4), np.float32)})
        assert y.shape == (batch, 6, 4)
    twice = "model m(x: float32[B, 4]) -> y {\n    y = expand(parameter([1, 4]) as c, [2 * B, 4])\n}\n"
    dead = ("model m(x: float32[B, 4]) -> y {\n    u = concat([x, x], axis=0)\n"  # u, dead, is gone when
            "    y = expand(parameter([1, 4]) as c, [2 * B, 4])\n}\n")  # the expand is lowered (review53)
    for src, line in ((twice, 2), (dead, 3)):
        for make in (archdsl.check_source, archdsl.compile_source):  # no value has 2*B: `check` says it too
            with pytest.raises(archdsl.ArchError, match="the size 2\\*B is not the size of any dim of a model "
                                                        "input") as e:  # (review51)
                make(src)
            assert e.value.span is not None and e.value.span.line == line
