"""training/torch_ref.py maps every op to torch: the coverage, and the ops a spec trains with that had no
reference (transposed convs, group/RMS norm, pad modes, sdpa, gemm, take) against torch autograd."""

from __future__ import annotations

import pytest

from archdsl import ops

from .harness import batches, compile_step, config, one_step_like_torch

torch_ref = pytest.importorskip("archdsl.training.torch_ref")

INLINE = {"reshape", "expand", "split", "cast"}  # TorchGraph.forward handles these itself (symbolic sizes)


def test_every_op_has_a_torch_reference():
    missing = sorted(o.name for o in ops.all_ops() if o.category != "internal"
                     and o.name not in torch_ref._OPS and o.name not in INLINE)
    assert not missing, f"no torch reference in training/torch_ref.py for {missing}"


UPSAMPLER = """
model upsampler(x: float32[B, 4, 5, 3]) -> y {
    h = x -> conv_transpose2d(6, 3, stride=2, padding=1, output_padding=1) as up -> group_norm(3) as gn
          -> pad([1, 2, 2, 1], mode="reflect") -> pad([1, 0, 0, 1], mode="circular") -> pad([0, 1], mode="replicate")
    s = x -> flatten(2) -> conv_transpose1d(4, 3, stride=2, groups=2) as up1d      # [B, 4, 31]
    y = concat([h -> flatten(1), s -> flatten(1)], axis=1) -> linear(3) as fc
}
"""

ATTEND = """
model attend(x: float32[B, 5, 6], ids: int64[B, 2]) -> y {
    t = x -> rms_norm as rms
    q = t -> linear(8) as q -> reshape([B, 5, 2, 4]) -> permute([0, 2, 1, 3])
    k = t -> linear(4) as k -> reshape([B, 5, 1, 4]) -> permute([0, 2, 1, 3])
    v = t -> linear(4) as v -> reshape([B, 5, 1, 4]) -> permute([0, 2, 1, 3])
    a = scaled_dot_product_attention(q, k, v, causal=true, enable_gqa=true) -> sum(dim=[1, 2])   # [B, 4]
    e = take(parameter([7, 4], init="normal") as table, ids) -> sum(dim=[1])                     # [B, 4]
    y = gemm(a + e, parameter([4, 3], init="normal") as w, c=parameter([3], init="normal") as bias)
}
"""

MATH = """
model polar(x: float32[B, 6]) -> y {
    h = x -> linear(6) as a
    t = tanh(h) * 0.9
    r = atan2(h[:, :3], h[:, 3:]) + logaddexp(h[:, :3], 0.5 * h[:, 3:]) + fmod(h[:, :3], 0.7) * 0.1
    s = log1p(abs(h)) + expm1(t) + asinh(h) + atan(h) + sinh(t) + cosh(t) + tan(t) + asin(t) + acos(t) + atanh(t)
    u = acosh(abs(h) + 1.5) + log2(abs(h) + 0.5) + log10(abs(h) + 0.5) + frac(h * 3) + trunc(h * 3)
    v = nan_to_num(log(h)) + where(isfinite(log(h)), 1.0, 0.0) + where(isnan(log(h)), 1.0, 0.0)
    v = v + where(isinf(h / 0.0), 1.0, 0.0)
    y = concat([r, s, u, v], axis=1) -> linear(2) as out
}
"""

STN = """
model stn(x: float32[B, 2, 8, 8]) -> y {
    theta = x -> flatten -> linear(6) as loc -> reshape([B, 2, 3])
    a = grid_sample(x, affine_grid(theta, [B, 2, 6, 6]), padding_mode="border")
    b = grid_sample(x, affine_grid(theta, [B, 2, 5, 7], align_corners=true), mode="nearest",
                    padding_mode="reflection", align_corners=true)
    c = grid_sample(x, tanh(x[:, :, :4, :] -> reshape([B, 4, 8, 2])) * 1.2)
    y = concat([a -> flatten, b -> flatten, c -> flatten], axis=1) -> linear(3) as fc
}
"""


WARP = """
model warp(x: float32[B, 2, H, W]) -> y {
    flow = x -> conv2d(2, 3, padding=1) as flow -> tanh
    grid = permute(flow, [0, 2, 3, 1]) * 0.5 + permute(x, [0, 2, 3, 1]) * 0.1
    y = grid_sample(x, grid, padding_mode="border", align_corners=true) -> conv2d(3, 3, padding=1) as c
    y = y -> global_avgpool -> flatten -> linear(2) as fc
}
"""


@pytest.mark.parametrize("hw", [(6, 5), (9, 12)])
def test_a_warp_at_run_time_sizes_trains_like_torch(hw):
    """grid_sample's gradient over an image of symbolic H, W: one compiled step at two frame sizes."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=WARP)
    one_step_like_torch(ct, fwd, batches(ct, 1, 3, 2, seed=4, dims={"H": hw[0], "W": hw[1]}))


@pytest.mark.parametrize("text", [UPSAMPLER, ATTEND, MATH, STN], ids=["upsampler", "attend", "math", "stn"])
def test_ops_train_like_torch(text):
    """One SGD-momentum step of each spec on onnxruntime against torch autograd over torch_ref's functions."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=text)
    one_step_like_torch(ct, fwd, batches(ct, 1, 3, 7, seed=2))



EYE_STEP = """
model m(x: float32[B, 3, 3]) -> y {
    y = heaviside(x @ eye(3), value_at_zero=0.5) + causal_mask(x, value=-1.0)
}
"""


@pytest.mark.parametrize("stem", ["gpt2", "llama", "vit", "swin", "lstm", "bert", "eye_step"])
def test_reference_keeps_every_tensor_on_its_device(stem):
    """The training bench runs the reference on CUDA (`--provider cuda`); a tensor made on the CPU beside it (a
    causal mask) failed there. The meta device finds such mismatches on a CPU-only machine: the same device
    checks, no data."""
    from archdsl import driver, runtime
    from archdsl.lower import initial_weights

    from ..passes.test_specs import DIMS, SMALL, SPECS
    mod = (driver.load(text=EYE_STEP, file="eye_step.arch") if stem == "eye_step"
           else driver.load(next(p for p in SPECS if p.stem == stem), defines=SMALL.get(stem)))
    for name in driver.select_models(mod, None):
        g = driver.elaborate_model(mod, name)
        sess = runtime.session(driver.build(mod, name, driver.CompileOptions(opt_level=0)).model, "cpu")
        feeds = runtime.random_feeds(sess, 2, DIMS, seed=3)
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        got = torch_ref.TorchGraph(g, initial_weights(g), "meta").forward(feeds)
        assert {k: tuple(v.shape) for k, v in got.items()} == {k: v.shape for k, v in want.items()}
        assert {v.device.type for v in got.values()} == {"meta"}
