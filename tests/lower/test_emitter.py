"""The emitter shares equal constants, and only equal ones; the model keeps the inputs the spec declares."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime
from archdsl.lower.emitter import Emitter


def test_constants_of_one_value_but_another_shape_or_dtype_stay_apart():
    """A scalar 0 and a [0] share their bytes: merged, a Slice got a scalar for its starts (bert with padding)."""
    e = Emitter(17)
    names = [e.const(np.array(0)), e.const(np.array([0])), e.const(np.array(0, np.int32)),
             e.const(np.array(0.0)), e.const(np.array([[0]]))]
    assert len(set(names)) == len(names) == len(e.initializers)
    assert e.const(np.array([0])) == names[1] and len(e.initializers) == len(names)  # an equal one is shared
    assert e.const(np.array([0]), shared=False) != names[1]


@pytest.mark.filterwarnings("ignore")
def test_a_declared_input_nothing_reads_stays_an_input():
    """A caller feeds what the signature says (a mask kept for a later version of the model)."""
    model = archdsl.compile_source("model m(x: float32[B, 4], mask: bool[B, 4]) -> y {\n    y = x -> relu\n}\n")
    assert [i.name for i in model.graph.input] == ["x", "mask"]
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    (y,) = runtime.session(model).run(None, {"x": x, "mask": np.ones((1, 4), bool)})
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("made, value", [('parameter([3], init="ones") as scale', [1.0, 1.0, 1.0]),
                                         ("tensor([1.0, 2.0])", [1.0, 2.0])])
def test_a_parameter_or_a_constant_that_is_an_output_is_kept(made, value, level):
    """Read by no node, it is still the model's: pruning unread parameters or constants dropped it (an internal
    KeyError)."""
    model = archdsl.compile_source(f"model m(x: float32[B, 4]) -> (y, c) {{\n    y = x -> linear(3) as fc\n"
                                   f"    c = {made}\n}}\n", opt_level=level)
    assert "scale" in {t.name for t in model.graph.initializer} or "parameter" not in made
    _, c = runtime.session(model).run(None, {"x": np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(c, value)
