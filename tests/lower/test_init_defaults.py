"""The initial weights are torch's defaults, layer by layer: bounds from the right fan-in (groups, kernel,
a transposed conv's weight layout), norms at ones and zeros, embeddings N(0, 1), attention's xavier over
[3E, E], recurrent layers at 1/sqrt(hidden). A mutation audit found each of these changeable without a test
failing (the torch comparisons load archdsl's own weights into torch, so they cannot see the init)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import archdsl
from archdsl.lower import initial_weights


def _w(src: str, seed: int = 0) -> dict[str, np.ndarray]:
    return initial_weights(archdsl.check_source(src), seed=seed)


def _reaches(arr: np.ndarray, bound: float, low: float = 0.97) -> bool:
    """Uniform(-bound, bound): inside it, and (thousands of draws) close to its edge."""
    top = float(np.abs(arr).max())
    return low * bound < top <= bound


def test_linear_weight_and_bias_bounds_are_one_over_sqrt_fan_in():
    w = _w("model m(x: float32[B, 400]) -> y { y = x -> linear(3000) as fc }")
    assert _reaches(w["fc.weight"], 1 / math.sqrt(400)) and _reaches(w["fc.bias"], 1 / math.sqrt(400))


def test_grouped_conv_bounds_count_the_group_and_the_kernel():
    w = _w("model m(x: float32[B, 8, 16, 16]) -> y { y = x -> conv2d(64, 3, groups=4) as c }")
    assert _reaches(w["c.weight"], 1 / math.sqrt(8 // 4 * 9), 0.95)
    w = _w("model m(x: float32[B, 8, 16]) -> y { y = x -> conv_transpose1d(64, 3, groups=4) as c }")
    assert _reaches(w["c.weight"], 1 / math.sqrt(64 // 4 * 3), 0.95)  # torch: fan-in from weight dim 1


def test_norms_start_as_the_identity():
    w = _w("model m(x: float32[B, 8, 4, 4]) -> y {\n    a = x -> batchnorm() as bn\n"
           "    b = a -> group_norm(2) as gn\n    y = b -> layernorm() as ln\n}")
    assert len(w) == 8
    for k, v in w.items():
        assert np.all(v == (1.0 if k.endswith(("weight", "running_var")) else 0.0)), k


def test_embeddings_are_standard_normal():
    e = _w("model m(ids: int64[B, T]) -> y { y = ids -> embedding(1000, 500) as emb }")["emb.weight"].ravel()
    assert abs(e.std() - 1) < 0.01 and abs(e.mean()) < 0.01 and np.abs(e).max() > 3.5


def test_attention_projections_are_xavier_over_the_stacked_weight():
    e = 64
    w = _w(f"model m(x: float32[B, T, {e}]) -> y {{ y = multihead_attention(x, embed_dim={e}, num_heads=4) as att }}")
    assert _reaches(w["att.in_proj_weight"], math.sqrt(6 / (e + 3 * e)))
    assert np.all(w["att.out_proj.bias"] == 0) and np.all(w["att.in_proj_bias"] == 0)


def test_recurrent_weights_are_bounded_by_the_hidden_size():
    for op in ("lstm", "gru"):
        w = _w(f"model m(x: float32[B, T, 100]) -> y {{ y = x -> {op}(16) as rnn }}")
        assert w and all(_reaches(v, 1 / math.sqrt(16), 0.95) for v in w.values()), op


def test_parameters_of_one_shape_get_their_own_values():
    w = _w("model m(x: float32[B, 64]) -> y { y = x -> linear(64) as a -> linear(64) as b }")
    assert not np.array_equal(w["a.weight"], w["b.weight"])


def test_a_normal_parameter_does_not_repeat_itself():
    """Box-Muller gives two numbers per pair of uniforms: one half of the block is not a copy of the other."""
    w = _w('model m(x: float32[B, 4]) -> y {\n    w = parameter([1000], init="normal", std=1.0) as w\n'
           '    y = x @ w[0:4]\n}')["w"]
    assert abs(np.corrcoef(w[:500], w[500:])[0, 1]) < 0.2 and np.unique(w).size == w.size


def test_a_uniform_parameter_fills_its_own_range():
    w = _w('model m(x: float32[B, 4]) -> y {\n    w = parameter([4, 100000], init="uniform", low=1.0, high=3.0) as w\n'
           '    y = x @ w\n}')["w"]
    assert 1.0 <= w.min() < 1.001 and 2.999 < w.max() < 3.0


def test_seeds_that_differ_only_in_their_high_bits_give_other_weights():
    """--seed takes 0 .. 2**32 - 1 whole (cli/args.py): seeds 2**16 and 2**31 are not seed 0."""
    g = archdsl.check_source("model m(x: float32[B, 8]) -> y { y = x -> linear(8) as fc }")
    w = [initial_weights(g, seed=s)["fc.weight"] for s in (0, 1 << 16, 1 << 31, 2**32 - 1)]
    assert all(not np.array_equal(a, b) for i, a in enumerate(w) for b in w[i + 1:])


def test_a_constant_init_starts_at_its_value():
    """parameter(init="constant", value=v) and prelu's init (torch's 0.25) start at that value, not at zero."""
    w = _initial('model m(x: float32[B, 4, 2, 2]) -> y {\n    c = parameter([3], init="constant", value=0.75) as c\n'
           '    y = (x -> prelu(4) as act) * sum(c)\n}')
    assert np.all(w["c"] == np.float32(0.75)) and np.all(w["act.weight"] == np.float32(0.25))


def test_a_normal_draw_is_finite_where_a_uniform_is_zero():
    """Box-Muller takes log(1 - u), u in [0, 1): finite, |z| <= 5.64 (weights.py _normal). The name w287
    at seed 0 draws a uniform of exactly 0 at position 9147 of its first block; log(u) there was -inf, the
    weight inf."""
    w = _initial('model m(x: float32[B, 4]) -> y {\n    w = parameter([65536], init="normal", std=1.0) as w287\n'
           '    y = x * w[0:4]\n}')["w287"]
    assert np.isfinite(w).all() and np.abs(w).max() <= 5.65


def test_a_tiny_std_scales_the_draw_instead_of_underflowing():
    """std multiplies the radius after its sqrt (weights.py _normal): folded inside as std * std, 1e-30 would
    underflow float32 to 0 and every weight would be 0."""
    w = _initial('model m(x: float32[B, 4]) -> y {\n    w = parameter([4096], init="normal", std=1e-30) as w\n'
                 '    y = x * w[0:4]\n}')["w"].astype(np.float64)
    assert np.count_nonzero(w) == w.size and abs(w.std() / 1e-30 - 1) < 0.05


def _initial(src: str, seed: int = 0) -> dict[str, np.ndarray]:
    return initial_weights(archdsl.check_source(src), seed=seed)


def test_initial_weights_takes_the_seeds_a_build_takes():
    """-1 gave seed 4294967295's weights and 2**32 + 5 seed 5's, where a build refuses both; a ModelProto was an
    AttributeError (review116)."""
    g = archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n")
    for seed in (-1, 2**32 + 5, "1", True):
        with pytest.raises(archdsl.ArchError, match=r"^seed must be an integer in 0\.\.4294967295"):
            initial_weights(g, seed=seed)
    with pytest.raises(archdsl.ArchError, match="^initial_weights takes the IR graph of a spec"):
        initial_weights(archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2)\n}\n"))
    assert np.array_equal(initial_weights(g, seed=np.int64(2**32 - 1))["linear_0.weight"],
                          initial_weights(g, seed=2**32 - 1)["linear_0.weight"])


def test_a_large_trunc_normal_std_draws_without_a_numpy_warning():
    """std up to float32's largest / 2: the scaled radius overflows for the draws past 2 std, which are redrawn;
    numpy said 'overflow encountered in multiply' (review119)."""
    import warnings
    g = archdsl.check_source('model m(x: float32[B, 4]) -> y {\n    w = parameter([256, 256], init="trunc_normal", '
                             'std=1e38) as w\n    y = x * w[0, 0:4]\n}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = initial_weights(g)["w"]
    assert np.isfinite(w).all() and np.abs(w).max() <= np.float32(2e38)
