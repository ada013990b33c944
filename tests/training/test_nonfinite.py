"""training/nonfinite.py: what a checkpoint's state may hold, which parameter a NaN gradient is blamed on, how
the examples of a batch are named (mutruntime hunt: each test failed on a change the suite let by)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from archdsl import ArchError
from archdsl.training import nonfinite


def _trainer(optimizer_slots=(), **state):
    params = [k for k in state if not k.startswith("buf") and "." not in k]
    info = SimpleNamespace(state_inputs=list(state), params=params,
                           config=SimpleNamespace(optimizer=SimpleNamespace(state_names=lambda: optimizer_slots)))
    return SimpleNamespace(info=info, get=lambda n: np.asarray(state[n], np.float32))


def test_an_inf_in_optimizer_state_is_refused_as_in_a_parameter():
    """A buffer may hold -inf (an additive mask), Adam's exp_avg may not: it was read as a buffer (N01)."""
    ok = _trainer(("exp_avg",), w=[1.0], **{"w.exp_avg": [0.0], "buf": [-np.inf]})
    nonfinite.check_finite_state(ok, "w.ckpt.npz")
    bad = _trainer(("exp_avg",), w=[1.0], **{"w.exp_avg": [np.inf], "buf": [0.0]})
    with pytest.raises(ArchError, match=r"'w.exp_avg'.* is inf: training starts from finite values only"):
        nonfinite.check_finite_state(bad, "w.ckpt.npz")


def test_the_nan_gradient_check_names_the_first_nan_parameter_among_modest_values():
    """Modest is under 1e6 (N02: 1e3 called weights of 5000 diverged); the first NaN parameter is named (N05: the
    last); weights past it are a divergence (N06 named a NaN gradient beside weights of 1e8)."""
    assert nonfinite._nan_gradient(_trainer(a=[1.0, 5e3], b=[np.nan], c=[np.nan, 1.0])) == "b"
    assert nonfinite._nan_gradient(_trainer(a=[1.0, 1e8], b=[np.nan])) is None


def test_a_batch_of_six_examples_names_five_and_one_more():
    """N04: six examples named five and dropped the sixth unsaid."""
    assert nonfinite.examples(range(6)) == "a batch of examples 0, 1, 2, 3, 4 and 1 more"
    assert nonfinite.examples(range(5)) == "a batch of examples 0, 1, 2, 3, 4"
    assert nonfinite.examples([7]) == "example 7"
