"""pad's fill value (value=): infinities as torch's F.pad takes them, and what a value that is no number says."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime


def test_pad_fills_with_infinity_as_torch():
    """torch's F.pad(x, p, value=float("-inf")), a log-space scan's identity, was refused as "must be finite"
    (ssm hunt); "-inf" is taken as masked_fill takes it."""
    torch = pytest.importorskip("torch")
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    for value, fill in (('float("-inf")', -np.inf), ('"-inf"', -np.inf), ('"inf"', np.inf)):
        model = archdsl.compile_source(f"model p(x: float32[B, T, 3]) -> y {{\n    y = pad(x, [0, 0, 1, 0], "
                                       f"value={value})\n}}\n")
        (y,) = runtime.session(model).run(None, {"x": x})
        np.testing.assert_array_equal(y, torch.nn.functional.pad(torch.from_numpy(x), (0, 0, 1, 0), value=fill))
    with pytest.raises(archdsl.ArchError, match="pad: value -inf does not fit the int64 tensor"):
        archdsl.check_source('model p(x: int64[B, 3]) -> y {\n    y = pad(x, [1, 0], value="-inf")\n}\n')


def test_a_tensor_fill_value_is_said_by_its_type_at_the_argument():
    """pad's value= of a tensor was said as a Python repr ('Tensor(value=Value(...))'), at the call (review62)."""
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source("model p(x: float32[B, 3]) -> y {\n    y = pad(x, [1, 1], value=x)\n}\n")
    assert e.value.message.endswith('got tensor float32[B, 3]') and e.value.span.col == 24, e.value
