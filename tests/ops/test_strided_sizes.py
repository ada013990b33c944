"""Sizes after strided layers over symbolic dims: shapes equal at every size are one dim, so these models,
which torch runs at any size, build and match it (they were refused as 'shapes differ')."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

torch = pytest.importorskip("torch")
F = torch.nn.functional

RESIDUAL = """model p(x: float32[B, 4, H, W]) -> y {
    h = x -> conv2d(4, 3, stride=2, padding=1) as down
    r = h -> pad([1, 1, 1, 1], mode="reflect") -> conv2d(4, 3) as c
    y = h + r
}
"""
SUBSAMPLED = """model p(x: float32[B, 4, H, W]) -> y {
    y = (x -> conv2d(4, 3, stride=2, padding=1) as c) + x[:, :, ::2, ::2]
}
"""


def _run(src: str, x: np.ndarray) -> tuple[np.ndarray, dict]:
    model = archdsl.compile_source(src)
    w = {i.name: np.frombuffer(i.raw_data, np.float32).reshape(i.dims) for i in model.graph.initializer
         if i.name.endswith(("weight", "bias"))}
    return runtime.session(model).run(None, {"x": x})[0], {k: torch.from_numpy(v.copy()) for k, v in w.items()}


@pytest.mark.parametrize("hw", [(7, 10), (8, 5), (3, 4)])
def test_a_reflect_padded_residual_after_a_strided_conv(hw):
    """CycleGAN's and pix2pixHD's residual block, written with an explicit pad: ((H+1)//2+2)-2 is (H+1)//2."""
    x = np.random.default_rng(hw[0]).standard_normal((2, 4, *hw)).astype(np.float32)
    y, w = _run(RESIDUAL, x)
    h = F.conv2d(torch.from_numpy(x), w["down.weight"], w["down.bias"], stride=2, padding=1)
    want = h + F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), w["c.weight"], w["c.bias"])
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw", [(7, 10), (8, 5), (1, 2)])
def test_a_strided_slice_beside_a_strided_conv(hw):
    """(H-1)//2+1 (the conv) and (H+1)//2 (x[:, :, ::2]) are one length: a mask subsampled beside a conv."""
    x = np.random.default_rng(hw[1]).standard_normal((1, 4, *hw)).astype(np.float32)
    y, w = _run(SUBSAMPLED, x)
    t = torch.from_numpy(x)
    want = F.conv2d(t, w["c.weight"], w["c.bias"], stride=2, padding=1) + t[:, :, ::2, ::2]
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("scale, hw", [(0.58, (50, 7)), (1.2, (16, 10)), (2.1, (30, 11)), (0.7, (90, 5)),
                                       (1.3, (90, 12))])
def test_upsample_at_a_fractional_scale_is_torchs(mode, scale, hw):
    """onnxruntime sized 0.58 on 50 as 29 (float32(0.58) * 50 truncated; torch floors the double product, 28),
    which the declared shape did not match, and its nearest Resize divides by the float32 scale where torch
    multiplies by (float)(1 / scale): at 1.2 output 18 of 16 * 1.2 read row 14, torch's 15."""
    if mode == "nearest" and any(int(n * scale) == 2 * n for n in hw):
        pytest.skip("2-D nearest where a size doubles stays ONNX Resize (REFERENCE)")
    src = (f"model m(x: float32[1, 2, {hw[0]}, {hw[1]}]) -> y {{\n"
           f"    y = x -> upsample(scale_factor={scale!r}, mode=\"{mode}\")\n}}\n")
    x = np.random.default_rng(hw[0]).standard_normal((1, 2, *hw)).astype(np.float32)
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    want = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode).numpy()
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_nearest_upsample_at_a_fractional_scale_in_1d_and_3d():
    for shape in ((1, 1, 16), (1, 1, 3, 16, 7)):
        dims = ", ".join(map(str, shape))
        src = f"model m(x: float32[{dims}]) -> y {{\n    y = x -> upsample(scale_factor=1.2)\n}}\n"
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
        np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), scale_factor=1.2).numpy())


@pytest.mark.parametrize("scale, shape, mode", [  # a symbolic axis at an inexact scale: float32 (REFERENCE)
    ([2, 1.2], (16, 16), "nearest"), ([2, 1.2], (16, 16), "bilinear"), ([1.5, 1.2], ("H", 16), "nearest-exact"),
    (0.58, ("H", 50), "bilinear"), ([2.0, 0.58], ("H", 50), "nearest"), ([2.0, 0.58], ("H", 50), "bilinear")])
def test_upsample_axis_by_axis(scale, shape, mode):
    """A known axis took onnxruntime's float32 length and positions as soon as another axis was symbolic
    (0.58 on 50 gave 29 columns), and a 2.0 axis sent the 1.2 one back to Resize's positions (a row off)."""
    dims = ", ".join(map(str, shape))
    src = (f"model m(x: float32[1, 2, {dims}]) -> y {{\n"
           f"    y = x -> upsample(scale_factor={scale!r}, mode=\"{mode}\")\n}}\n")
    x = np.random.default_rng(0).standard_normal((1, 2, 8 if shape[0] == "H" else shape[0], shape[1]))
    x = x.astype(np.float32)
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    sf = tuple(scale) if isinstance(scale, list) else scale
    want = F.interpolate(torch.from_numpy(x), scale_factor=sf, mode=mode).numpy()
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale, hw", [([1.2, 1.0], (3, 126)), ([1.2, 1.0], (3, 125)), (2.1, (9, 9)),
                                       (2.1, (100, 9)), (2.1, (16, 3)), ([1.25, 2.0], (3, 64)), (1.2, (4, 4))])
def test_2d_nearest_copies_and_halves_only_small_outputs_as_torch(scale, hw):
    """torch's 2-D nearest kernel copies a kept length and halves a doubled one while the output's lengths add
    up to 128 or less, and resamples them past that: a kept length was always copied (3 x 126 at 1.2 read rows
    0, 1, 2 for torch's 0, 0, 1), and a length doubled at 2.1 always went to Resize."""
    x = np.arange(np.prod(hw), dtype=np.float32).reshape(1, 1, *hw)
    src = (f"model m(x: float32[1, 1, {hw[0]}, {hw[1]}]) -> y {{\n"
           f"    y = x -> upsample(scale_factor={scale!r})\n}}\n")
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    sf = tuple(scale) if isinstance(scale, list) else scale
    np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), scale_factor=sf).numpy())


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("n, out", [(14, 2), (14, 4), (20, 12), (21, 48), (14, 23), (9, 18), (7, 7)])
def test_nearest_upsample_to_a_size_reads_torchs_rows(mode, n, out):
    """size= went to Resize, which divides by out / n where torch multiplies by (float)(n / out): 14 to 2 read
    rows 0 and 6, torch's 0 and 7."""
    x = np.arange(3 * n, dtype=np.float32).reshape(1, 1, 3, n)
    src = (f"model m(x: float32[1, 1, 3, {n}]) -> y {{\n"
           f"    y = x -> upsample(size=[5, {out}], mode=\"{mode}\")\n}}\n")
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), size=(5, out), mode=mode).numpy())


def test_a_known_axis_beside_a_symbolic_one_in_2d_nearest():
    """A symbolic axis sent every axis of a 2-D nearest upsample to Resize: 16 to 19 columns read 14 last."""
    src = "model m(x: float32[1, 1, H, 16]) -> y {\n    y = x -> upsample(scale_factor=[2.0, 1.2])\n}\n"
    x = np.tile(np.arange(16, dtype=np.float32), (4, 1))[None, None]
    y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), scale_factor=(2.0, 1.2)).numpy())


@pytest.mark.parametrize("t", [1, 5, 6, 9])
def test_an_even_odd_split_joined_back_is_its_input_long(t):
    """A lifting-scheme step (Haar wavelet, polyphase de-interleave): x[..., 0::2] and x[..., 1::2] are
    (T+1)//2 and T//2 long, and joined back T long again, which the checker refused as a different size."""
    src = """model p(x: float32[B, 2, T]) -> y {
    even = x[:, :, 0::2]
    odd = x[:, :, 1::2]
    y = concat([even, odd * 2.0], axis=2) + x
}
"""
    x = np.random.default_rng(t).standard_normal((3, 2, t)).astype(np.float32)
    y, _ = _run(src, x)
    even, odd = x[:, :, 0::2], x[:, :, 1::2]
    np.testing.assert_allclose(y, np.concatenate([even, odd * 2], axis=2) + x, rtol=1e-6)
