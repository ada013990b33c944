"""Dims: sizing symbolic dims and the formulas shape rules write (archdsl/types.py)."""

from __future__ import annotations

import pytest

from archdsl.ops.shapes import window_out
from archdsl.types import Sym, dim_add, dim_floordiv, dim_mul, dim_size


def test_plain_symbols_and_monomials_take_their_sizes():
    h = Sym.of("H")
    assert dim_size(7, {}) == 7
    assert dim_size(h, {"H": 5}) == 5
    assert dim_size(dim_mul(h, 3), {"H": 5}) == 15
    assert dim_size(dim_mul(h, Sym.of("W")), {"H": 5, "W": 2}) == 10
    assert dim_size(h, {}) is None and dim_size(dim_mul(h, Sym.of("W")), {"H": 5}) is None


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 2, False), (3, 1, 0, False), (2, 2, 0, True), (3, 3, 2, True),
                                        (3, 2, 2, True)])
def test_the_formulas_of_shape_rules_evaluate_like_their_integer_form(k, s, p, ceil):
    """A conv/pool on a symbolic dim writes a formula ((H-1)//2+1, min(...)); sized, it is the integer rule."""
    for size in range(k, 20):
        assert dim_size(window_out(Sym.of("H"), k, s, p, 1, ceil), {"H": size}) == window_out(size, k, s, p, 1, ceil)


def test_formula_arithmetic_and_what_it_does_not_evaluate():
    h = Sym.of("H")
    assert dim_size(dim_add(h, -2), {"H": 9}) == 7
    assert dim_size(dim_floordiv(dim_add(h, 3), 4), {"H": 9}) == 3
    assert dim_size(Sym.opaque("floor(H*1.5)"), {"H": 3}) == 4
    assert dim_size(Sym.opaque("H//0"), {"H": 3}) is None  # no ZeroDivisionError
    assert dim_size(Sym.opaque("__import__('os').getcwd()"), {}) is None  # parsed, never run
    assert dim_size(Sym.opaque("(" * 300 + "H" + ")" * 300), {"H": 1}) is None  # past the parser: no crash
    assert dim_size(Sym.opaque("class+1"), {"class": 1}) is None  # a symbol Python reads as a keyword
    w = Sym.of("W")
    assert dim_size(dim_floordiv(dim_mul(h, 4), dim_mul(w, 2)), {"H": 6, "W": 3}) == 4  # not (4*6//2)*3


@pytest.mark.parametrize("scale", [1 / 3, 1.2345678, 2.5])
def test_an_upsampled_symbolic_dim_sizes_like_the_integer_rule(scale):
    """The formula kept 6 digits of the scale (floor(H*0.333333) is 0 at H=3, the rule gives 1)."""
    import archdsl
    src = f"model m(x: float32[1, 1, H]) -> y {{\n    y = x -> upsample(scale_factor={scale!r})\n}}\n"
    sym = archdsl.check_source(src).outputs[0][1].type.shape[-1]
    for size in (3, 6, 81, 100):
        fixed = archdsl.check_source(src.replace("H]", f"{size}]")).outputs[0][1].type.shape[-1]
        assert dim_size(sym, {"H": size}) == fixed
