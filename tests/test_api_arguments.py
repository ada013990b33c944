"""The Python API's arguments that only Python can give: objects no -D can write, a spec's text where a path
goes, a NUL byte in a weights path. Each was a raw exception from deep inside, or taken silently."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl

SRC = "param T = none\nmodel m(x: float32[B, T, 4]) -> y {\n    y = x -> linear(3) as fc\n}\n"


@pytest.mark.parametrize("value,kind", [(np.array([64, 64]), "ndarray"), (lambda: 1, "function"),
                                        (object(), "object"), ({1, 2}, "set")])
def test_a_define_no_dash_d_could_write_is_refused(value, kind):
    """A param = none took anything: an array as a dim was numpy's ValueError, a lambda went into the model's
    metadata as its repr."""
    with pytest.raises(archdsl.ArchError, match=rf"^defines\['T'\]: {kind} .* is no value a param takes"):
        archdsl.check_source(SRC, defines={"T": value})
    assert archdsl.check_source(SRC, defines={"T": np.int64(4)}).inputs[0].type.shape[1] == 4


def test_a_specs_text_given_as_its_path_says_which_function_takes_text():
    with pytest.raises(archdsl.ArchError, match="got a spec's text .*compile_source and check_source take the text"):
        archdsl.compile_file("model m(x: float32[B, 4]) -> y {\n    y = x\n}\n")


def test_a_nul_byte_in_a_weights_path_is_said():
    with pytest.raises(archdsl.ArchError, match="weights: the path holds a NUL byte"):
        archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n", weights="w\0.npz")
