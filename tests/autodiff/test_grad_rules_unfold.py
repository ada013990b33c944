"""Gradient rules of unfold and fold (ops/unfold.py) against central finite differences, as
test_grad_rules.py does for the core ops: unfold's gradient is fold onto the input's size (a position several
blocks copy gets their sum), fold's is unfold. Both ops are linear, so the differences are exact at step 1."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from .gradcheck import FAST, check_grad, normal


@st.composite
def _geometry(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = tuple(draw(st.integers(max(1, d[i] * (k[i] - 1) + 1 - 2 * p[i]), d[i] * (k[i] - 1) + 4)) for i in range(2))
    return {"kernel_size": k, "dilation": d, "padding": p, "stride": s}, hw


def _blocks(hw, a) -> int:
    k, d, p, s = (a[n] for n in ("kernel_size", "dilation", "padding", "stride"))
    return ((hw[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1) * ((hw[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1)
                                                                      // s[1] + 1)


@FAST
@given(geo=_geometry(), lead=st.sampled_from([(), (1,), (2,)]), c=st.integers(1, 2), seed=st.integers(0, 99))
def test_unfold(geo, lead, c, seed):
    a, hw = geo
    check_grad("unfold", [normal(seed, *lead, c, *hw)], a, seed=seed, linear=True)


@FAST
@given(geo=_geometry(), lead=st.sampled_from([(), (1,), (2,)]), c=st.integers(1, 2), seed=st.integers(0, 99))
def test_fold(geo, lead, c, seed):
    a, hw = geo
    k = a["kernel_size"]
    check_grad("fold", [normal(seed, *lead, c * k[0] * k[1], _blocks(hw, a))], {"output_size": hw, **a}, seed=seed,
               linear=True)


def test_a_symbolic_height_says_how_to_give_it_a_number():
    """The message said "(-D, or fixed sizes in the input's shape)", and `-D H=8` then failed: H of the
    model's input is no param. It names the sizes and a param, which -D sets (`param H = none`)."""
    import pytest

    from archdsl import driver
    from archdsl.autodiff import TrainConfig
    from archdsl.diagnostics import ArchError
    src = ("model u(x: float32[B, 2, H, W]) -> loss {\n    cols = x -> conv2d(2, 1) as c -> unfold(3, padding=1)\n"
           "    loss = mean(cols ** 2)\n}\n")
    with pytest.raises(ArchError, match=r"unfold: the gradient .* needs known height and width; give H and W "
                                        r"numbers: fixed sizes in the model input's shape, or params \(-D sets them\)"):
        driver.build_train(driver.load(text=src), None, driver.CompileOptions(), TrainConfig(loss="model"))
    sized = "param H = none\nparam W = none\n" + src
    driver.build_train(driver.load(text=sized, defines=["H=8", "W=8"]), None, driver.CompileOptions(),
                       TrainConfig(loss="model"))
