"""Nearest upsampling to a length known only at run time (like=, or size= over a symbolic input) reads torch's
source rows, floorf(dst * (float)(n / out)), computed in the graph; ONNX Resize divides by out / n instead
(14 rows to 2 read row 6 where torch reads 7)."""

from __future__ import annotations

import numpy as np
import pytest

import archdsl
from archdsl import runtime

torch = pytest.importorskip("torch")
F = torch.nn.functional

_LIKE = ('model m(x: float32[B, 2, H, W], s: float32[B, 1, P, Q]) -> y {{\n'
         '    y = upsample(x, like=s, mode="{mode}")\n}}\n')
_SIZE = 'model m(x: float32[B, 2, H, 3]) -> y {{\n    y = upsample(x, size=[{out}, 5], mode="{mode}")\n}}\n'


@pytest.mark.parametrize("opt", [0, 2])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_like_reads_torchs_rows_at_every_run_size(mode, opt):
    sess = runtime.session(archdsl.compile_source(_LIKE.format(mode=mode), opt_level=opt))
    rng = np.random.default_rng(0)
    wrong = []
    for n in range(1, 40):
        for out in [*range(1, 80, 3), 2 * n - 1, 2 * n, 2 * n + 1]:
            if out < 1:
                continue
            x = rng.standard_normal((1, 2, n, 3)).astype(np.float32)
            (y,) = sess.run(None, {"x": x, "s": np.zeros((1, 1, out, 7), np.float32)})
            ref = F.interpolate(torch.from_numpy(x), size=(out, 7), mode=mode).numpy()
            if not np.array_equal(y, ref):
                wrong.append((n, out))
    assert not wrong  # 14 -> 2, 46 -> 93 (nearest-exact) were among them through Resize


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_size_over_a_symbolic_length_reads_torchs_rows(mode):
    for out in (2, 7, 93):
        sess = runtime.session(archdsl.compile_source(_SIZE.format(out=out, mode=mode)))
        for n in (14, 23, 46, 5):
            x = np.arange(2 * n * 3, dtype=np.float32).reshape(1, 2, n, 3)
            (y,) = sess.run(None, {"x": x})
            np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), size=(out, 5), mode=mode).numpy())


def test_like_trains_like_torch_where_resize_read_other_rows():
    """The gradient scatters back to the rows the forward read (movement_grad runs the same lowering)."""
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    src = ("model m(x: float32[B, 2, H, 3], s: float32[B, 1, P, 3]) -> y {\n"
           "    y = x -> conv2d(2, 1) as c -> upsample(like=s, mode=\"nearest-exact\") -> flatten -> sum(dim=1, "
           "keepdim=true)\n}\n")
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=src)
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 2, seed=1, dims={"H": 46, "P": 93}))


@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("like", [False, True])
def test_nearest_exact_takes_torchs_fused_positions(rank, like):
    """torch's 1-D and 3-D nearest-exact kernels (and its 2-D one where the output's lengths add up past 128)
    compute floorf(max(fmaf(s, dst + 0.5, -0.5), 0) + 0.5): 2 rows to 41 put row 1 at output 20, where the
    plain floorf((dst + 0.5) * s) gives row 0."""
    sp, spl = {3: ("T", "U"), 4: ("H, W", "P, Q"), 5: ("D, H, W", "R, P, Q")}[rank]
    src = (f"model m(x: float32[B, 1, {sp}], s: float32[B, 1, {spl}]) -> y {{\n"
           f"    y = upsample(x, like=s, mode=\"nearest-exact\")\n}}\n")
    sess = runtime.session(archdsl.compile_source(src)) if like else None
    for n, out, side in [(2, 41, 3), (4, 82, 3), (6, 123, 3), (2, 141, 3), (2, 47, 90), (14, 2, 3)]:
        shape, oshape = (1, 1, n) + (2,) * (rank - 3), (out,) + (side,) * (rank - 3)
        x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
        if like:
            y = sess.run(None, {"x": x, "s": np.zeros((1, 1) + oshape, np.float32)})[0]
        else:
            fixed = ", ".join(map(str, shape[2:]))
            y = runtime.session(archdsl.compile_source(
                f"model m(x: float32[B, 1, {fixed}]) -> y {{\n"
                f"    y = upsample(x, size={list(oshape)}, mode=\"nearest-exact\")\n}}\n")).run(None, {"x": x})[0]
        ref = F.interpolate(torch.from_numpy(x), size=oshape, mode="nearest-exact").numpy()
        np.testing.assert_array_equal(y, ref, err_msg=str((n, out, side)))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 6), (1, 2, 4, 4, 5)])
def test_float64_nearest_at_known_sizes_runs_as_gathers(shape, mode):
    """onnxruntime has no float64 Resize: whole and 1/2**k scales (2, 3, 0.5), which map as Resize maps them,
    took it and failed at run time in float64 (29 of 36 cases), where REFERENCE says nearest at known sizes
    runs; they take torch's positions by Gather there, as other scales do."""
    dims = ", ".join(map(str, shape))
    x = np.random.default_rng(0).standard_normal(shape)
    for scale in (2, 3, 0.5, 1.5, 0.25, 4):
        src = f'model m(x: float64[{dims}]) -> y {{\n    y = upsample(x, scale_factor={scale}, mode="{mode}")\n}}\n'
        y = runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0]
        np.testing.assert_array_equal(y, F.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode).numpy())


@pytest.mark.parametrize("how", ["scale_factor=2.0", "size=[7]", "size=[3]", "scale_factor=2.5"])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("opset", [17, 28])
def test_a_nan_in_one_example_of_a_1d_linear_upsample_stays_in_it(how, align, opset):
    """onnxruntime's 1-D linear Resize interpolates N and C too, at scale 1, weighing the next row by 0: a NaN in
    example 1 made example 0's output NaN (specials hunt). It runs as a 2-D Resize over [N * C, 1, 1, L] now; its
    output is torch's, NaNs where torch's are."""
    x = np.arange(20, dtype=np.float32).reshape(2, 2, 5)
    x[1, 0, 3], x[0, 1, 2] = np.nan, np.inf
    src = (f"model m(x: float32[B, 2, L]) -> y {{\n    y = upsample(x, {how}, mode=\"linear\", "
           f"align_corners={str(align).lower()})\n}}\n")
    y = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"x": x})[0]
    kw = {"scale_factor": float(how.split("=")[1])} if how.startswith("scale") else {"size": eval(how.split("=")[1])}
    want = F.interpolate(torch.from_numpy(x), mode="linear", align_corners=align, **kw).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)  # NaN and inf where torch's are
    assert not np.isnan(y[0]).any()
