"""Dims: sizing symbolic dims and the formulas shape rules write (archdsl/types.py)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from archdsl.ops.shapes import window_out
from archdsl.types import Sym, dim_add, dim_exact_div, dim_floordiv, dim_mul, dim_size, dim_symbols


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


@pytest.mark.parametrize("scale", [1 / 3, 1.2345678, 2.5, 0.5])
def test_an_upsampled_symbolic_dim_sizes_like_the_integer_rule(scale):
    """The formula kept 6 digits of the scale (floor(H*0.333333) is 0 at H=3, the rule gives 1)."""
    import archdsl
    src = f"model m(x: float32[1, 1, H]) -> y {{\n    y = x -> upsample(scale_factor={scale!r})\n}}\n"
    sym = archdsl.check_source(src).outputs[0][1].type.shape[-1]
    for size in (3, 6, 81, 100):
        fixed = archdsl.check_source(src.replace("H]", f"{size}]")).outputs[0][1].type.shape[-1]
        assert dim_size(sym, {"H": size}) == fixed


def test_a_halving_upsample_is_the_floor_division_a_stride_2_pool_gives():
    """floor(H*0.5) and H//2 are equal at every H: a stride-2 pool beside a 0.5x upsample was refused, with a
    hint that they differ at odd sizes."""
    import archdsl
    from archdsl.ops.shapes import _rounding_hint
    g = archdsl.check_source("model m(x: float32[B, 1, H]) -> y {\n"
                             "    y = maxpool1d(x, 2) + upsample(x, scale_factor=0.5)\n}\n")
    assert str(g.outputs[0][1].type.shape[-1]) == "(H//2)"
    assert _rounding_hint(Sym.opaque("floor(H*0.5)"), dim_floordiv(Sym.of("H"), 2)) == ""


def test_sums_of_dims_cancel_and_have_one_form():
    """A reflect pad then a valid conv ((H+2)-2), a crop back, or sums written in two orders are the same dim,
    so a residual over a symbolic H broadcasts (it was refused: [B, 4, H, W] and [B, 4, ((H+2)-2), ...])."""
    h, w = Sym.of("H"), Sym.of("W")
    assert dim_add(dim_add(h, 2), -2) == h
    assert window_out(dim_add(h, 2), 3, 1, 0) == h
    assert dim_add(dim_add(h, w), 1) == dim_add(dim_add(w, 1), h)
    assert dim_add(dim_mul(dim_add(h, 1), 2), -2) == dim_mul(h, 2)
    assert dim_add(dim_add(h, 3), dim_mul(h, -1)) == 3
    assert dim_add(dim_add(h, -1), 1) == h and dim_add(h, dim_add(h, 1)) == dim_add(dim_mul(h, 2), 1)
    t = dim_add(dim_floordiv(dim_add(h, -1), 2), 1)  # (H-1)//2+1: a floor division stays a formula
    assert dim_size(dim_add(t, -1), {"H": 9}) == 4


def test_sums_with_a_floor_division_cancel_and_have_one_form():
    """A constant beside a floor division goes into it: (H-1)//2+1 (a strided conv) is (H+1)//2 (a strided
    slice), and ((H+1)//2+2)-2 (a pad of 1 then an unpadded 3x3 conv after a strided one: CycleGAN's residual
    blocks) is (H+1)//2 again; both were refused as different dims."""
    h = Sym.of("H")
    conv = window_out(h, 3, 2, 2)
    assert conv == dim_floordiv(dim_add(h, 1), 2) and str(conv) == "((H+1)//2)"
    assert window_out(dim_add(conv, 2), 3, 1, 0) == conv
    assert dim_add(dim_add(conv, -1), -1) == dim_add(conv, -2) == dim_floordiv(dim_add(h, -3), 2)
    assert dim_add(dim_mul(conv, 2), 2) == dim_mul(dim_floordiv(dim_add(h, 3), 2), 2)
    assert dim_add(dim_floordiv(h, 2), 3) == dim_floordiv(dim_add(h, 6), 2)
    assert str(dim_mul(conv, window_out(Sym.of("W"), 3, 2, 2))) == "((H+1)//2)*((W+1)//2)"  # a map stays a product


def test_the_floor_parts_of_a_dim_sum_back_to_it():
    """(T+1)//2 + T//2 is T (Hermite's identity): an even/odd split joined back was refused as not T long."""
    t = Sym.of("T")
    even, odd = dim_floordiv(dim_add(t, 1), 2), dim_floordiv(t, 2)
    assert dim_add(even, odd) == t and dim_add(odd, even) == t
    thirds = [dim_floordiv(dim_add(t, j), 3) for j in (2, 0, 1)]
    assert dim_add(dim_add(thirds[0], thirds[1]), thirds[2]) == t
    assert dim_add(thirds[0], thirds[1]) != t  # two of the three parts are not T
    assert dim_add(dim_add(even, odd), even) == dim_add(t, even)
    shifted = [dim_floordiv(dim_add(dim_mul(t, 2), j), 2) for j in (3, 4)]  # (2T+3)//2 + (2T+4)//2 is 2T+3
    assert dim_add(shifted[0], shifted[1]) == dim_add(dim_mul(t, 2), 3)
    assert dim_add(dim_floordiv(dim_add(t, 2), 2), dim_floordiv(dim_add(t, -1), 2)) == t  # any offsets
    assert dim_add(dim_mul(even, 2), odd) == dim_add(t, even)  # one whole run of two copies of a residue
    minus = [dim_mul(even, -1), dim_mul(odd, -1)]  # T - x[0::2]'s length - x[1::2]'s: 0, and T - (T+1)//2 is T//2
    assert dim_add(dim_add(t, minus[0]), minus[1]) == 0 and dim_add(t, minus[0]) == odd
    assert str(dim_add(5, dim_mul(dim_floordiv(t, 1000), -1))).count("//") == 1  # not 999 parts (T+r)//1000
    n = dim_mul(odd, 3)  # a numerator that is itself a floor part's multiple: two groups' changes add up
    halves = [dim_floordiv(dim_add(n, j), 2) for j in (0, 1, 0, 1)]
    assert dim_add(dim_add(dim_add(halves[0], halves[1]), halves[2]), halves[3]) == dim_mul(n, 2)


@given(st.integers(2, 4), st.lists(st.tuples(st.integers(-6, 6), st.sampled_from([-2, -1, 1, 2, 3])), min_size=1,
                                   max_size=8), st.randoms())
def test_sums_of_floor_parts_have_one_form_whatever_their_order(k, parts, rnd):
    """(T+2)//2 + (T-1)//2 is T as (T+1)//2 + T//2 is; the parts' order (and subtracted parts) decided whether
    a sum folded."""
    t = Sym.of("T")

    def total(order):
        d = 0
        for a, c in order:
            d = dim_add(d, dim_mul(dim_floordiv(dim_add(t, a), k), c))
        return d
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    assert total(parts) == total(shuffled)
    assert [dim_size(total(parts), {"T": v}) for v in (0, 1, 7, 12)] == \
        [sum(c * ((v + a) // k) for a, c in parts) for v in (0, 1, 7, 12)]


@given(st.integers(2, 5), st.integers(-6, 6), st.integers(0, 4), st.lists(st.integers(0, 40), min_size=3, max_size=3))
def test_sums_of_floor_parts_size_as_the_integer_sums(k, a, drop, sizes):
    """k floor parts (T+a+j)//k summed, all of them or all but one, size as the integers do."""
    t = Sym.of("T")
    total = 0
    for j in range(k):
        if j != drop:
            total = dim_add(total, dim_floordiv(dim_add(t, a + j), k))
    want = [sum((v + a + j) // k for j in range(k) if j != drop) for v in sizes]
    assert [dim_size(total, {"T": v}) for v in sizes] == want


@given(st.lists(st.tuples(st.sampled_from(["add", "floordiv", "mul"]), st.integers(-4, 4)), min_size=1, max_size=7),
       st.lists(st.integers(-20, 40), min_size=3, max_size=3))
def test_floor_divisions_with_constants_size_as_the_integer_rule(steps, sizes):
    """Sums, multiples and floor divisions of H, built in any order, size to Python's integer arithmetic."""
    d, values = Sym.of("H"), list(sizes)
    for op, k in steps:
        if op == "add":
            d, values = dim_add(d, k), [v + k for v in values]
        elif op == "floordiv" and k > 0:
            d, values = dim_floordiv(d, k), [v // k for v in values]
        elif op == "mul" and k > 0:
            d, values = dim_mul(d, k), [v * k for v in values]
    assert [dim_size(d, {"H": v}) for v in sizes] == values


@given(st.lists(st.tuples(st.sampled_from(["H", "W", 2, -3, 5]), st.integers(-2, 2)), min_size=1, max_size=6),
       st.integers(1, 9), st.integers(1, 9))
def test_dim_sums_size_as_the_integer_sums(parts, hv, wv):
    """Any sum of symbols, multiples and constants sizes to the integer sum, whatever order it was built in."""
    total, want = 0, 0
    for what, k in parts:
        d = dim_mul(Sym.of(what) if isinstance(what, str) else what, k) if k else 0
        total = dim_add(total, d)
        want += (hv if what == "H" else wv if what == "W" else what) * k
    assert dim_size(total, {"H": hv, "W": wv}) == want


def test_an_exact_division_multiplies_back():
    """pixel_unshuffle's H/2 (its reshape fails unless H is even): twice it is H, its size is H's half, and an
    odd H has no size; a floor division (a pool's H//2) does not multiply back."""
    h = Sym.of("H")
    half = dim_exact_div(h, 2)
    assert str(half) == "(H/2)" and dim_mul(half, 2) == h
    assert dim_exact_div(dim_mul(h, 4), 2) == dim_mul(h, 2)
    assert dim_size(half, {"H": 6}) == 3 and dim_size(half, {"H": 7}) is None
    assert dim_size(dim_add(half, 1), {"H": 10}) == 6 and dim_mul(dim_add(half, 1), 2) == dim_add(h, 2)
    assert dim_mul(dim_floordiv(h, 2), 2) != h


def test_an_exact_division_cancels_a_fraction_atom_as_written():
    """16*((W//2)/2)*(H//2)*B over 32*((W//2)/2)*B (a pooled map split in two, counted): the dividend's terms
    expand ((W//2)/2) into (W//2) over 2, where the divisor's factor was not found, and the quotient stayed a
    floor division no size equals (porting10). Cancelled as written it is (H//2)/2."""
    b, h2, w2 = Sym.of("B"), dim_floordiv(Sym.of("H"), 2), dim_floordiv(Sym.of("W"), 2)
    wq = dim_exact_div(w2, 2)
    total = dim_mul(dim_mul(dim_mul(wq, h2), b), 16)
    q = dim_exact_div(total, dim_mul(dim_mul(wq, b), 32))
    assert q == dim_exact_div(h2, 2) and str(q) == "((H//2)/2)"
    assert dim_size(q, {"H": 9, "W": 4, "B": 1}) == 2
    assert dim_exact_div(total, dim_mul(wq, b)) == dim_mul(h2, 16)  # and by a divisor of coefficient 1
    assert "//" in str(dim_exact_div(total, dim_mul(Sym.of("T"), 2)))  # no such factor: a floor, as before
    assert str(dim_exact_div(24, b)) == "(24//(B))"  # a number over a symbol: a floor too (it was a crash)


_ATOMS = st.sampled_from(["H", "W", 1, 2, 3, -1])


@st.composite
def _expr(draw, depth=3):
    """A random expression tree of + and * over symbols and numbers, with exact halvings of even parts."""
    if depth == 0 or draw(st.booleans()):
        a = draw(_ATOMS)
        return Sym.of(a) if isinstance(a, str) else a
    op = draw(st.sampled_from(["add", "mul", "half"]))
    x = draw(_expr(depth - 1))
    if op == "half":
        return dim_exact_div(dim_mul(x, 2), 2)
    y = draw(_expr(depth - 1))
    return dim_add(x, y) if op == "add" else dim_mul(x, y)


@given(_expr(), _expr(), _expr())
def test_equal_sums_are_equal_dims_whatever_their_grouping(a, b, c):
    """(a + b) + c and a + (c + b), a * (b + c) and a*b + a*c, 2*(x/2) and x: one dim each, as their sizes are
    (two different dims never compare equal: the sizes at a few points agree whenever the dims do)."""
    assert dim_add(dim_add(a, b), c) == dim_add(a, dim_add(c, b))
    assert dim_mul(a, dim_add(b, c)) == dim_add(dim_mul(b, a), dim_mul(a, c))
    if not isinstance(a, int) or a % 2 == 0:  # a number's exact halving needs an even one
        assert dim_mul(dim_exact_div(a, 2), 2) == a
    x, y = dim_add(a, b), dim_add(b, c)
    if x == y:
        for h, w in ((2, 3), (5, 7), (4, 1)):
            assert dim_size(x, {"H": h, "W": w}) == dim_size(y, {"H": h, "W": w})
    assert dim_add(a, dim_mul(a, -1)) == 0


@given(_expr(), st.sampled_from(["B", "H", "W"]), st.integers(1, 6))
@example(0, "B", 1)  # no elements: 0 / B is 0 (was a formula 0//(B))
def test_a_multiple_of_a_monomial_divides_back_exactly(a, sym, coef):
    """A reshape's -1 divides the element count by the known part, a monomial such as 4*B: (a * 4*B) / (4*B)
    is a again, and sizes as the integer division does."""
    m = Sym((sym,), coef)
    q = dim_exact_div(dim_mul(a, m), m)
    assert q == a
    for h, w, b in ((2, 3, 4), (5, 7, 1)):
        sizes = {"H": h, "W": w, "B": b}
        assert dim_size(q, sizes) == dim_size(a, sizes)


def test_dim_symbols_names_the_input_sizes_of_a_dim_not_its_functions():
    h, w = Sym.of("H"), Sym.of("W")
    assert dim_symbols(7) == []
    assert dim_symbols(dim_mul(dim_floordiv(h, 8), dim_floordiv(w, 8))) == ["H", "W"]
    assert dim_symbols(dim_mul(h, w)) == ["H", "W"]
    assert dim_symbols(Sym.opaque("min(T, 5)+floor(S*1.5)")) == ["T", "S"]


@given(_expr(), st.integers(1, 5), st.integers(-9, 9))
def test_a_floor_division_of_a_multiple_plus_a_constant_is_exact(a, k, c):
    """(k*P + c)//k is P + c//k for an integer-valued P (a strided conv after a x2 upsample: (2*H-1)//2+1 is
    H): it was left a formula, so a residual onto the input was refused as a shape mismatch. Checked at sizes."""
    q = dim_floordiv(dim_add(dim_mul(a, k), c), k)
    for h, w in ((2, 3), (5, 7), (4, 1), (9, 2)):
        sizes = {"H": h, "W": w}
        assert dim_size(q, sizes) == (k * dim_size(a, sizes) + c) // k
    if isinstance(a, Sym) and "/" not in str(a):
        assert q == dim_add(a, c // k)  # the same dim, not a formula that happens to agree


@given(_expr(), st.integers(1, 4), st.integers(1, 4), st.integers(-5, 5))
def test_a_floor_division_of_a_floor_division_is_one(a, m, n, c):
    """(H//2)//2 prints as H//4 (a U-Net's bottleneck was ((H//2)//2)//2): floor(floor(x/m)/n) = floor(x/(m*n))."""
    inner = dim_floordiv(dim_add(a, c), m)
    q = dim_floordiv(inner, n)
    for h, w in ((2, 3), (5, 7), (4, 1), (9, 2), (0, 0)):
        sizes = {"H": h, "W": w}
        assert dim_size(q, sizes) == (dim_size(a, sizes) + c) // m // n
    if isinstance(inner, Sym) and str(inner).count("//") == 1 and inner.coef == 1:
        assert str(q).count("//") == 1


def test_a_misspelt_dtype_suggests_every_equally_close_one():
    """float6 is as near float16 as float64: one was named, the one sorting last."""
    from archdsl.types import unknown_dtype
    assert unknown_dtype("float6").startswith("unknown dtype 'float6'; did you mean 'float16' or 'float64'? (one of")


def test_did_you_mean_lists_ties_in_difflibs_scoring():
    """Ties: all of them up to four (fc5 of fc1..fc4 showed three as if complete), none past that; the score
    is get_close_matches' (candidate first: ratio() is not symmetric, and glg dropped log)."""
    from archdsl.diagnostics import did_you_mean
    assert did_you_mean("fc5", ["fc1", "fc2", "fc3", "fc4"]) == "; did you mean 'fc1', 'fc2', 'fc3' or 'fc4'?"
    assert did_you_mean("fc6", ["fc1", "fc2", "fc3", "fc4", "fc5"]) == ""
    assert did_you_mean("glg", ["log", "glu"]) == "; did you mean 'glu' or 'log'?"
    assert did_you_mean("relu", ["Relu", "relu6"], "lib.") == "; did you mean 'lib.Relu'?"


def test_a_monomial_over_one_whose_coefficient_does_not_divide_stays_a_floor_division():
    """3*T*H // (2*T) is floor(3*H/2), not H: at T=1, H=3 it is 4 (9 // 2), as Python's."""
    t, h = Sym.of("T"), Sym.of("H")
    q = dim_floordiv(dim_mul(dim_mul(t, h), 3), dim_mul(t, 2))
    assert q != h and dim_size(q, {"T": 1, "H": 3}) == 4 and dim_size(q, {"T": 2, "H": 5}) == 7
    assert dim_floordiv(dim_mul(dim_mul(t, h), 4), dim_mul(t, 2)) == dim_mul(h, 2)  # a whole quotient simplifies
