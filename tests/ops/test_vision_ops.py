"""The vision/generative ops, run in onnxruntime against torch (or a numpy reference) on tiny shapes:
conv_transpose, group_norm, upsample, multihead_attention, heaviside, pad
(sinusoidal_embedding: test_sinusoidal.py)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError
from archdsl.ops._kernels import runs_natively

torch = pytest.importorskip("torch")
F = torch.nn.functional


def run(src: str, feeds: dict, opset: int | None = None, override: dict | None = None):
    """Compile, fully check (ONNX shape inference must agree with ours), run; outputs and the weights.
    `override` replaces parameters by name before running."""
    model = archdsl.compile_source(src, file="op.arch", opset=opset)
    for init in model.graph.initializer:
        if override and init.name in override:
            init.CopyFrom(numpy_helper.from_array(override[init.name], init.name))
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    ours = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    for vi in inferred.graph.output:
        assert [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim] == ours[vi.name]
    sess = runtime.session(model, provider="cpu")
    outs = sess.run(None, feeds)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return outs, weights


def t(a):
    return torch.from_numpy(np.array(a, copy=True))  # a copy: onnxruntime outputs may be read-only


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- conv_transpose

@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 2]), bias=st.booleans(), op_seed=st.integers(0, 10))
@example(k=3, stride=1, padding=0, dilation=2, groups=1, bias=True, op_seed=1)   # output_padding >= stride:
@example(k=3, stride=1, padding=2, dilation=2, groups=2, bias=False, op_seed=1)  # onnxruntime's ConvTranspose refuses
def test_conv_transpose2d_matches_torch(k, stride, padding, dilation, groups, bias, op_seed):
    out_pad = op_seed % max(stride, dilation)  # must be below stride or dilation
    if (5 - 1) * stride - 2 * padding + dilation * (k - 1) + out_pad + 1 <= 0:
        return
    src = f"""model m(x: float32[B, 4, 5, 6]) -> y {{
        y = x -> conv_transpose2d(6, {k}, stride={stride}, padding={padding}, output_padding={out_pad},
                                  groups={groups}, bias={'true' if bias else 'false'}, dilation={dilation}) as up
    }}"""
    x = rand(2, 4, 5, 6)
    (y,), w = run(src, {"x": x})
    ref = F.conv_transpose2d(t(x), t(w["up.weight"]), t(w["up.bias"]) if bias else None, stride=stride,
                             padding=padding, output_padding=out_pad, groups=groups, dilation=dilation)
    assert y.shape == tuple(ref.shape)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_transpose1d_params_and_init_bounds():
    src = "model m(x: float32[B, 3, T]) -> y { y = x -> conv_transpose1d(8, 4, stride=2, padding=1) as up }"
    g = archdsl.check_source(src)
    assert g.params["up.weight"].type.shape == (3, 8, 4)           # torch layout [in, out/groups, k]
    assert g.outputs[0][1].type.shape[1] == 8
    m = torch.nn.ConvTranspose1d(3, 8, 4, stride=2, padding=1)
    assert g.param_count() == sum(p.numel() for p in m.parameters())
    x = rand(2, 3, 7)
    (y,), w = run(src, {"x": x})
    bound = 1 / math.sqrt(8 * 4)                                    # torch: fan_in from weight dim 1
    assert np.abs(w["up.weight"]).max() <= bound
    ref = F.conv_transpose1d(t(x), t(w["up.weight"]), t(w["up.bias"]), stride=2, padding=1)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_transpose_rejects_bad_output_padding():
    with pytest.raises(ArchError, match="output_padding"):
        archdsl.check_source("model m(x: float32[B, 3, 8, 8]) -> y { "
                             "y = x -> conv_transpose2d(4, 3, output_padding=1) }")


# ---------------------------------------------------------------- group_norm

@pytest.mark.parametrize("opset", [17, 21, None])
@settings(max_examples=5, deadline=None)
@given(groups=st.sampled_from([1, 2, 3, 6]), affine=st.booleans(), rank=st.sampled_from([3, 4]))
def test_group_norm_matches_torch(opset, groups, affine, rank):
    shape = [2, 6, 5, 4][:rank]
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    src = f"""model m(x: float32[{dims}]) -> y {{
        y = x -> group_norm({groups}, eps=1e-6, affine={'true' if affine else 'false'}) as gn
    }}"""
    x = rand(*shape) * 3 + 1
    affine_params = {"gn.weight": rand(6, seed=1), "gn.bias": rand(6, seed=2)} if affine else {}
    (y,), _ = run(src, {"x": x}, opset=opset, override=affine_params)
    gw, gb = (t(affine_params["gn.weight"]), t(affine_params["gn.bias"])) if affine else (None, None)
    ref = F.group_norm(t(x), groups, gw, gb, eps=1e-6)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [17, None])
@pytest.mark.parametrize("dtype, tol", [("float32", 3e-3), ("float64", 1e-10), ("float16", 2e-3)])
@pytest.mark.parametrize("mean, std", [(1e4, 1.0), (300.0, 0.1), (5.0, 0.01)])
def test_group_norm_keeps_its_precision_where_the_mean_is_large(dtype, tol, mean, std, opset):
    """ONNX GroupNormalization (opset 21+), as onnxruntime expands it, takes the variance as E[x^2] - E[x]^2:
    at the default opset a group of mean 1e4 and std 1 gave NaN, mean 5 and std 0.01 an error of 0.06.
    Against torch in float64 on the same (rounded) input; float16 against torch's own float16 error."""
    x = (np.random.default_rng(0).standard_normal((2, 8, 4, 4)) * std + mean).astype(dtype)
    (y,), _ = run(f"model m(x: {dtype}[B, 8, 4, 4]) -> y {{ y = x -> group_norm(4) }}", {"x": x}, opset=opset)
    ref = F.group_norm(torch.from_numpy(x.astype(np.float64)), 4).numpy()
    if dtype == "float16":
        tol = max(tol, 1.5 * float(np.abs(F.group_norm(torch.from_numpy(x), 4).double().numpy() - ref).max()))
    assert float(np.abs(y.astype(np.float64) - ref).max()) < tol


def test_group_norm_rejects_indivisible_groups():
    with pytest.raises(ArchError, match="num_groups=4 must divide the 6 channels"):
        archdsl.check_source("model m(x: float32[B, 6, 4, 4]) -> y { y = x -> group_norm(4) }")


# ---------------------------------------------------------------- upsample

@settings(max_examples=10, deadline=None)
@given(mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bicubic"]),
       scale=st.sampled_from([2, 3, 1.5, [2, 3], 1.2, 0.5, 0.7]), align=st.booleans(), by_size=st.booleans())
@example(mode="bicubic", scale=1.2, align=False, by_size=False)
@example(mode="bicubic", scale=0.7, align=True, by_size=False)
def test_upsample2d_matches_torch(mode, scale, align, by_size):
    """Every scale changes both sizes (5 x 6): where one stays (1.2 on 4), torch's CPU nearest and bilinear
    kernels copy that dim and ONNX Resize interpolates (test_a_scale_that_keeps_a_size_interpolates)."""
    align = align and mode in ("bilinear", "bicubic")
    x = rand(2, 3, 5, 6)
    if by_size:
        arg, kw = "size=[7, 9]", {"size": (7, 9)}
    else:
        arg = f"{scale}" if not isinstance(scale, list) else f"[{scale[0]}, {scale[1]}]"
        kw = {"scale_factor": tuple(scale) if isinstance(scale, list) else scale}
    src = f"""model m(x: float32[B, 3, 5, 6]) -> y {{
        y = x -> upsample({arg}, mode="{mode}", align_corners={'true' if align else 'false'})
    }}"""
    (y,), _ = run(src, {"x": x})
    ref = F.interpolate(t(x), mode=mode, align_corners=align if mode in ("bilinear", "bicubic") else None, **kw)
    assert y.shape == tuple(ref.shape)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode, shape", [("linear", (2, 3, 4)), ("bilinear", (2, 3, 4, 6)),
                                         ("trilinear", (2, 3, 4, 6, 4))])
@pytest.mark.parametrize("how", ["size", "scale"])
def test_a_linear_upsample_to_one_position_reads_the_centre_as_torch(mode, shape, how):
    """torch maps an output of length 1 to the input's centre ((0 + 0.5) * scale - 0.5): ONNX's half_pixel, not
    pytorch_half_pixel (which maps it to 0)."""
    n = len(shape) - 2
    x = rand(*shape)
    ones = ", ".join(["1"] * n)
    arg, kw = (f"size=[{ones}]", {"size": (1,) * n}) if how == "size" else ("0.25", {"scale_factor": 0.25})
    src = (f"model m(x: float32[B, {', '.join(map(str, shape[1:]))}]) -> y {{\n"
           f"    y = upsample(x, {arg}, mode=\"{mode}\")\n}}\n")
    (y,), _ = run(src, {"x": x})
    ref = F.interpolate(t(x), mode=mode, **kw).numpy()
    assert y.shape == ref.shape and 1 in y.shape[2:]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_a_scale_that_keeps_a_size_interpolates():
    """scale_factor=1.2 on a width of 4 keeps 4 columns; ONNX Resize (and so torch.onnx.export's graph) still
    maps them through the scale, where torch's CPU bilinear kernel copies them: we follow ONNX (REFERENCE)."""
    x = rand(1, 1, 5, 4)
    (y,), _ = run('model m(x: float32[B, 1, 5, 4]) -> y { y = x -> upsample(1.2, mode="bilinear") }', {"x": x})
    src = lambda n, out: np.maximum((np.arange(out) + 0.5) / 1.2 - 0.5, 0)
    rows = np.stack([np.interp(src(5, 6), np.arange(5), x[0, 0, :, j]) for j in range(4)], 1)
    ref = np.stack([np.interp(src(4, 4), np.arange(4), r) for r in rows])
    np.testing.assert_allclose(y[0, 0], ref, rtol=1e-5, atol=1e-5)
    assert np.abs(y[0, 0] - F.interpolate(t(x), scale_factor=1.2, mode="bilinear").numpy()[0, 0]).max() > 0.1


@pytest.mark.parametrize("shape, scale, mode, same", [
    # no size changes (onnxruntime copies): torch copies in the linear modes and 2-D nearest, resamples otherwise;
    # the nearest modes at known sizes take torch's own positions (one Gather per axis), kept sizes included
    ((4,), 1.2, "nearest", True), ((4,), 1.2, "linear", True), ((4, 4), 1.2, "nearest", True),
    ((4, 4), 1.2, "nearest-exact", True), ((4, 4), 1.2, "bilinear", True), ((4, 4), 1.2, "bicubic", False),
    ((4, 4, 4), 1.2, "nearest", True), ((4, 4, 4), 1.2, "trilinear", True),
    # another size changes (the kept one mapped through the scale): torch copies it in linear (and 2-D nearest,
    # which follows torch at known sizes)
    ((4, 3), [1.2, 2.0], "nearest", True), ((4, 3), [1.2, 2.0], "nearest-exact", True),
    ((4, 3), [1.2, 2.0], "bilinear", False), ((4, 3), [1.2, 2.0], "bicubic", True),
    ((4, 4, 3), [1.2, 1.2, 2.0], "nearest", True), ((4, 4, 3), [1.2, 1.2, 2.0], "trilinear", False),
])
def test_where_a_kept_size_differs_from_torch(shape, scale, mode, same):
    """REFERENCE's list of where a scale that keeps a size (1.2 on 4) gives torch's result and where not."""
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(1, 1, *shape)
    dims = ", ".join(map(str, shape))
    (y,), _ = run(f'model m(x: float32[1, 1, {dims}]) -> y {{ y = x -> upsample({scale}, mode="{mode}") }}', {"x": x})
    ref = F.interpolate(t(x), scale_factor=tuple(scale) if isinstance(scale, list) else scale, mode=mode).numpy()
    assert y.shape == ref.shape
    assert np.allclose(y, ref, atol=1e-4) == same


def test_upsample_linear_1d_and_symbolic_dims():
    src = 'model m(x: float32[B, 2, T]) -> y { y = x -> upsample(2, mode="linear") }'
    g = archdsl.check_source(src)
    assert str(g.outputs[0][1].type.shape[2]) == "2*T"
    x = rand(2, 2, 6)
    (y,), _ = run(src, {"x": x})
    np.testing.assert_allclose(y, F.interpolate(t(x), scale_factor=2, mode="linear").numpy(), rtol=1e-5, atol=1e-6)


def test_upsample_diagnostics():
    with pytest.raises(ArchError, match="needs a rank-4 input"):
        archdsl.check_source('model m(x: float32[B, 2, 8]) -> y { y = x -> upsample(2, mode="bilinear") }')
    with pytest.raises(ArchError, match="exactly one of scale_factor, size and like"):
        archdsl.check_source("model m(x: float32[B, 2, 8, 8]) -> y { y = x -> upsample() }")
    with pytest.raises(ArchError, match="give one of scale_factor, size and like"):
        archdsl.check_source("model m(x: float32[B, 2, 8, 8]) -> y { y = x -> upsample(2, like=x) }")
    with pytest.raises(ArchError, match=r"like= takes its spatial sizes from a tensor of x's rank 4, got \[B, 2, 8\]"):
        archdsl.check_source("model m(x: float32[B, 2, 8, 8], s: float32[B, 2, 8]) -> y { y = upsample(x, like=s) }")


UNET = """
model unet(x: float32[B, 3, H, W]) -> y {
    s = x -> conv2d(4, 3, padding=1) as inc -> relu
    d = s -> conv2d(8, 3, stride=2, padding=1) as down -> relu
    u = d -> upsample(like=s, mode="MODE") -> conv2d(4, 3, padding=1) as up
    y = concat([u, s], axis=1) -> conv2d(2, 1) as head
}
"""


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_like_a_skip_connection_takes_any_size(mode):
    """upsample(like=skip) is F.interpolate(x, size=skip.shape[2:]): a U-Net over symbolic H and W joins its
    skip connections at odd sizes too (2*((H-1)//2+1) is not H, so a scale of 2 could not), as torch's."""
    g = archdsl.check_source(UNET.replace("MODE", mode))
    assert [str(d) for d in g.outputs[0][1].type.shape] == ["B", "2", "H", "W"]
    for hw in ((8, 8), (7, 9), (5, 12)):
        x = rand(2, 3, *hw)
        (y,), w = run(UNET.replace("MODE", mode), {"x": x})
        tw = {k: t(v) for k, v in w.items()}
        s = F.relu(F.conv2d(t(x), tw["inc.weight"], tw["inc.bias"], padding=1))
        d = F.relu(F.conv2d(s, tw["down.weight"], tw["down.bias"], stride=2, padding=1))
        u = F.interpolate(d, size=s.shape[2:], mode=mode, align_corners=False if mode == "bilinear" else None)
        u = F.conv2d(u, tw["up.weight"], tw["up.bias"], padding=1)
        ref = F.conv2d(torch.cat([u, s], 1), tw["head.weight"], tw["head.bias"])
        np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_a_unet_over_symbolic_sizes_trains_like_torch():
    """The same U-Net's train step (nearest upsampling's gradient scatters back through like's sizes; the
    strided conv's input gradient cuts to the run-time size): one SGD step against torch at two odd sizes."""
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=UNET.replace("MODE", "nearest"))
    for hw in ((7, 9), (6, 5)):
        one_step_like_torch(ct, fwd, batches(ct, 1, 2, 2, seed=1, dims={"H": hw[0], "W": hw[1]}))


@pytest.mark.parametrize("align", [False, True])
def test_bicubic_trains_like_torch(align):
    """bicubic's gradient is W^T g along each dim, W torch's Keys weights (a = -0.75, neighbours outside the
    image replicated from the edge): one SGD step against torch autograd."""
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    src = f"""model m(x: float32[B, 2, 5, 6]) -> y {{
        y = x -> conv2d(3, 3, padding=1) as c
              -> upsample([1.5, 0.7], mode="bicubic", align_corners={str(align).lower()})
              -> flatten -> linear(2) as fc
    }}"""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=src)
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 2, seed=3))


# ---------------------------------------------------------------- multihead_attention

def _torch_mha(w, prefix, e, h, bias=True):
    m = torch.nn.MultiheadAttention(e, h, bias=bias, batch_first=True)
    state = {k: t(w[f"{prefix}.{k}"]) for k in m.state_dict()}
    m.load_state_dict(state)
    return m.eval()


# the decomposition, and ONNX Attention where onnxruntime has its kernel (opsets 23-24)
_MHA_OPSETS = [None] + [o for o in (24,) if o <= runtime.newest_opset() and runs_natively("Attention", o)]


@pytest.mark.parametrize("opset", _MHA_OPSETS)
@settings(max_examples=10, deadline=None)
@given(heads=st.sampled_from([1, 2, 4]), causal=st.booleans(), bias=st.booleans(), masked=st.booleans(),
       cross=st.booleans())
def test_multihead_attention_matches_torch(opset, heads, causal, bias, masked, cross):
    e, tq, s = 8, 5, (7 if cross else 5)
    if causal and cross:
        s = tq  # torch's is_causal needs a square mask through nn.MultiheadAttention
    ins = ["q: float32[B, T, 8]"] + (["kv: float32[B, S, 8]"] if cross else []) + \
          ([f"kpm: bool[B, {'S' if cross else 'T'}]"] if masked else [])
    kw = (", key=kv, value=kv" if cross else "") + (", key_padding_mask=kpm" if masked else "")
    src = f"""model m({', '.join(ins)}) -> y {{
        y = q -> multihead_attention(8, {heads}, bias={'true' if bias else 'false'},
                                     causal={'true' if causal else 'false'}{kw}) as attn
    }}"""
    q, kv = rand(2, tq, e), rand(2, s, e, seed=1)
    kpm = np.zeros((2, s), dtype=bool)
    kpm[0, -2:] = True
    kpm[1, 1] = True
    feeds = {"q": q} | ({"kv": kv} if cross else {}) | ({"kpm": kpm} if masked else {})
    (y,), w = run(src, feeds, opset=opset)
    m = _torch_mha(w, "attn", e, heads, bias)
    key = t(kv) if cross else t(q)
    mask = torch.triu(torch.ones(tq, s, dtype=torch.bool), 1) if causal else None
    with torch.no_grad():
        ref, _ = m(t(q), key, key, key_padding_mask=t(kpm) if masked else None, attn_mask=mask, need_weights=False)
    assert y.shape == (2, tq, e)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(len(_MHA_OPSETS) < 2, reason="this onnxruntime has no Attention kernel")
def test_multihead_attention_is_one_attention_node_where_onnxruntime_has_the_kernel():
    src = "model m(x: float32[B, T, 8], k: bool[B, T]) -> y {{ y = x -> multihead_attention(8, 2{}) }}"
    ops = {c: [n.op_type for n in archdsl.compile_source(src.format(c), opset=24).graph.node]
           for c in (", key_padding_mask=k", ", causal=true", ", causal=true, key_padding_mask=k")}
    assert [o.count("Attention") for o in ops.values()] == [1, 1, 0]  # causal and padding: the decomposition
    assert "Softmax" not in ops[", causal=true"]


def test_multihead_attention_param_layout_is_torchs():
    g = archdsl.check_source("model m(x: float32[B, T, 12]) -> y { "
                             "y = x -> multihead_attention(12, 3) as self_attention }")
    shapes = {k: v.type.shape for k, v in g.params.items()}
    m = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    assert shapes == {f"self_attention.{k}": tuple(v.shape) for k, v in m.state_dict().items()}


def test_multihead_attention_symbolic_causal_runs_at_two_lengths():
    src = "model m(x: float32[B, T, 8]) -> y { y = x -> multihead_attention(8, 2, causal=true) as attn }"
    model = archdsl.compile_source(src)
    sess = runtime.session(model, provider="cpu")
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    m = _torch_mha(w, "attn", 8, 2)
    for n in (3, 6):
        x = rand(1, n, 8)
        with torch.no_grad():
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
            ref, _ = m(t(x), t(x), t(x), attn_mask=mask, need_weights=False)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref.numpy(), rtol=1e-4, atol=1e-5)


def test_multihead_attention_diagnostics():
    with pytest.raises(ArchError, match="divisible by num_heads"):
        archdsl.check_source("model m(x: float32[B, T, 10]) -> y { y = x -> multihead_attention(10, 3) }")
    with pytest.raises(ArchError, match=r"must be \[B, L, 16\]"):
        archdsl.check_source("model m(x: float32[B, T, 8]) -> y { y = x -> multihead_attention(16, 2) }")
    with pytest.raises(ArchError, match="key_padding_mask must be bool"):
        archdsl.check_source("model m(x: float32[B, T, 8], k: float32[B, T]) -> y "
                             "{ y = x -> multihead_attention(8, 2, key_padding_mask=k) }")
    with pytest.raises(ArchError, match="both key= and value="):
        archdsl.check_source("model m(x: float32[B, T, 8], k: float32[B, S, 8]) -> y "
                             "{ y = x -> multihead_attention(8, 2, key=k) }")


# ---------------------------------------------------------------- heaviside and pad

@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_heaviside_matches_torch(v0):
    x = np.array([[-2.0, -0.0, 0.0, 1e-7, 3.0]], dtype=np.float32)
    (y,), _ = run(f"model m(x: float32[B, 5]) -> y {{ y = x -> heaviside(value_at_zero={v0}) }}", {"x": x})
    np.testing.assert_array_equal(y, torch.heaviside(t(x), torch.tensor(v0)).numpy())


@settings(max_examples=10, deadline=None)
@given(pads=st.lists(st.integers(0, 3), min_size=4, max_size=4), short=st.booleans(),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       opset=st.sampled_from([17, runtime.newest_opset()]))
def test_pad_matches_torch(pads, short, mode, opset):
    """Circular is a Slice/Concat per padded dim at every opset (ONNX Pad's "wrap", from opset 19, fails in
    onnxruntime on an empty input)."""
    if short and mode == "constant":  # torch takes a pair for the last dim only in constant mode on 4-D input
        pads = pads[:2]
    x = rand(2, 3, 4, 5)
    value = ", value=1.5" if mode == "constant" else ""  # the other modes refuse one, as torch
    src = f"""model m(x: float32[B, 3, 4, 5]) -> y {{
        y = x -> pad({pads}, mode="{mode}"{value})
    }}"""
    (y,), _ = run(src, {"x": x}, opset=opset)
    ref = F.pad(t(x), pads, mode=mode, value=1.5) if mode == "constant" else F.pad(t(x), pads, mode=mode)
    np.testing.assert_array_equal(y, ref.numpy())


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
@pytest.mark.parametrize("pads", [[-1, 2, 0, 0], [1, -2, -1, 1], [-2, -3, 1, -2], [0, 0, -4, 0],
                                  [-3, 4, 0, 0], [0, 0, -1, 4], [-5, 5, 2, -3]])
def test_a_negative_pad_crops_as_torchs_with_its_gradient(mode, pads):
    """F.pad's negative amounts crop that side (it was "must not be negative"); the gradient, the generic
    movement rule, puts g back where the kept elements were. A reflection past what the crop leaves reads
    elements the crop drops ((-3, 4) of 6 reads x[1]), as torch's (it was refused)."""
    from .core_harness import grads_of
    x = rand(2, 3, 5, 6)
    src = f'model m(x: float32[2, 3, 5, 6]) -> y {{\n    y = pad(x, {pads}, mode="{mode}")\n}}\n'
    (y,), _ = run(src, {"x": x})
    tx = t(x).double().requires_grad_()
    ref = F.pad(tx, pads, mode=mode)
    np.testing.assert_array_equal(y, ref.detach().numpy().astype(np.float32))
    r = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    (ref * t(r).double()).sum().backward()
    np.testing.assert_allclose(grads_of(src, {"x": x}, r, ["x"])["x"], tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", [0, 2])
def test_a_reflect_crop_over_a_symbolic_length_is_torchs(level):
    """Over a length known only at run time nothing is checked at build time: the reflection still reads the
    uncropped dim, as torch's, at every length torch takes (onnxruntime's one Pad cropped first and failed)."""
    src = 'model m(x: float32[B, 2, T]) -> y {\n    y = pad(x, [-3, 4], mode="reflect")\n}\n'
    sess = runtime.session(archdsl.compile_source(src, opt_level=level), "cpu", 1)
    for n in (5, 6, 9):
        x = rand(2, 2, n)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], F.pad(t(x), [-3, 4], mode="reflect").numpy())


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_a_crop_beside_a_pad_is_taken_and_refused_where_torchs_is(mode):
    """Every pair of amounts from -5 to 3 on a dim of 3: built where torch computes it, with torch's numbers, and
    refused where torch refuses. A crop past the dim beside a pad is torch's ((-4, 2) of 3 reflects to 2
    elements); the static check had asked that the crop leave one (review91)."""
    import itertools

    from archdsl import runtime
    x = rand(1, 2, 3)
    for lo, hi in itertools.product(range(-5, 4), repeat=2):
        if lo >= 0 and hi >= 0:
            continue
        src = f'model m(x: float32[1, 2, 3]) -> y {{\n    y = pad(x, [{lo}, {hi}], mode="{mode}")\n}}\n'
        try:
            want = F.pad(t(x), [lo, hi], mode=mode).numpy()
        except RuntimeError:
            with pytest.raises(ArchError):
                archdsl.check_source(src)
            continue
        got = runtime.session(archdsl.compile_source(src), "cpu", 1).run(None, {"x": x})[0]
        np.testing.assert_array_equal(got, want, err_msg=f"{lo}, {hi}")


def test_a_crop_past_the_size_or_in_circular_mode_is_refused():
    src = 'model m(x: float32[B, 3, 5]) -> y {{\n    y = pad(x, {p}, mode="{m}")\n}}\n'
    for p, m, match in (([-3, -3], "constant", r"pad: \(-3, -3\) on dim 2 crops more than its size 5"),
                        ([-5, 0], "reflect", r"pad: \(-5, 0\) on dim 2 of size 5 leaves 0 elements; reflect "
                                             r"padding needs at least 1, as torch's \(input \[B, 3, 5\]\)"),
                        ([-7, 1], "replicate", r"\(-7, 1\) on dim 2 of size 5 leaves -1 elements"),
                        ([-1, 5], "reflect", r"pad: reflect padding \(-1, 5\) on dim 2 must be smaller than its "
                                             r"size 5 \(input \[B, 3, 5\]\)"),  # torch's rule, crop or not
                        ([-1, 2], "circular", r"a negative amount crops, which circular mode does not take")):
        with pytest.raises(ArchError, match=match):
            archdsl.check_source(src.format(p=p, m=m))


@pytest.mark.parametrize("pad, mode, words", [
    ([0, 0, 4, 1], "reflect",
     r"pad: reflect padding \(4, 1\) on dim 2 must be smaller than its size 4 \(input \[B, 3, 4, 5\]\)"),
    ([6, 0], "circular", r"pad: circular padding \(6, 0\) on dim 3 must be at most its size 5"),
])
def test_pad_refuses_what_torch_does(pad, mode, words):
    with pytest.raises(ArchError, match=words):
        archdsl.check_source(f'model m(x: float32[B, 3, 4, 5]) -> y {{ y = x -> pad({pad}, mode="{mode}") }}')
    archdsl.check_source(f'model m(x: float32[B, 3, 9, 9]) -> y {{ y = x -> pad({pad}, mode="{mode}") }}')


@pytest.mark.parametrize("opset", [17, runtime.newest_opset()])
def test_circular_pad_over_a_symbolic_length(opset):
    x = rand(2, 3, 4)
    (y,), _ = run('model m(x: float32[B, 3, T]) -> y { y = x -> pad([3, 2], mode="circular") }', {"x": x}, opset=opset)
    np.testing.assert_array_equal(y, F.pad(t(x), [3, 2], mode="circular").numpy())


def test_a_pad_fill_is_left_out_at_zero_and_never_shared():
    """Every Pad read one shared fill constant, which onnxruntime's QOperator quantizer removed after rewriting
    the first Pad (the model then named an unknown initializer): 0 is Pad's default, left out; any other fill,
    -0.0 included, is each Pad's own."""
    src = "model m(x: float32[B, 1, 16]) -> y {{ y = x -> pad([2, 0]{v}) -> pad([1, 1]{v}) }}"
    pads = [n for n in archdsl.compile_source(src.format(v="")).graph.node if n.op_type == "Pad"]
    assert len(pads) == 2 and all(len(n.input) == 2 for n in pads)
    for v in (", value=-0.0", ", value=0.5"):  # a fill of its own: the quantizer removed a shared one
        pads = [n for n in archdsl.compile_source(src.format(v=v)).graph.node if n.op_type == "Pad"]
        assert all(len(n.input) == 3 for n in pads) and pads[0].input[2] != pads[1].input[2]
    (y,), _ = run(src.format(v=""), {"x": np.ones((2, 1, 16), np.float32)})
    assert y.shape == (2, 1, 20) and y[..., :3].sum() == 0 and y[..., 3:19].min() == 1


def test_pad_keeps_symbolic_length():
    g = archdsl.check_source("model m(x: float32[B, 4, T]) -> y { y = x -> pad([2, 0]) }")
    assert str(g.outputs[0][1].type.shape[2]) == "(T+2)"


@pytest.mark.parametrize("hw", [(8, 8), (5, 11)])
def test_a_padded_valid_conv_keeps_a_symbolic_size_for_the_residual(hw):
    """CycleGAN's residual block over [B, C, H, W]: reflect pad 1, a 3x3 conv without padding, instance norm,
    added to the input; the shape rule sees H + 2 - 2 = H (the sum was refused as [B, 4, ((H+2)-2), ...]).
    Against torch at two sizes."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    text = """
model resblock(x: float32[B, 4, H, W]) -> y {
    h = x -> pad([1, 1, 1, 1], mode="reflect") -> conv2d(4, 3) as c1 -> instance_norm -> relu
    y = x + (h -> pad([1, 1, 1, 1], mode="reflect") -> conv2d(4, 3) as c2 -> instance_norm)
}
"""
    g = archdsl.check_source(text)
    assert [str(d) for d in g.outputs[0][1].type.shape] == ["B", "4", "H", "W"]
    model = archdsl.compile_source(text)
    w = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    x = np.random.default_rng(0).standard_normal((2, 4, *hw)).astype(np.float32)
    y = runtime.session(model, "cpu").run(None, {"x": x})[0]

    def conv(t, n):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="reflect"), torch.from_numpy(w[f"{n}.weight"]),
                        torch.from_numpy(w[f"{n}.bias"]))
    t = torch.from_numpy(x)
    want = t + F.instance_norm(conv(F.relu(F.instance_norm(conv(t, "c1"))), "c2"))
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("body", [
    "y = x + (x -> upsample(scale_factor=2) -> conv2d(4, 3, stride=2, padding=1) as c)",
    "y = x + (x -> upsample(scale_factor=2) -> avgpool2d(3, stride=2, padding=1))",
    "y = x + concat([x, x], axis=3)[:, :, :, 0::2]",
])
def test_sizes_equal_after_a_floor_division_that_leaves_a_remainder_are_equal(body):
    """((2*H-1)//2+1) is H for every H, and so is (2*W+1)//2: the simplifier only divided coefficients that
    divide exactly, so these residuals were refused as a shape mismatch (torch runs them)."""
    src = f"model m(x: float32[B, 4, H, W]) -> y {{\n    {body}\n}}\n"
    g = archdsl.check_source(src)
    assert str(g.outputs[0][1].type) == "float32[B, 4, H, W]"
    sess = runtime.session(archdsl.compile_source(src))
    for h, w in ((5, 3), (4, 7), (1, 2)):
        x = np.random.default_rng(h).standard_normal((1, 4, h, w)).astype(np.float32)
        assert sess.run(None, {"x": x})[0].shape == (1, 4, h, w)


@pytest.mark.parametrize("call", ["scaled_dot_product_attention(q, k, v, causal=true)",
                                  "multihead_attention(q, key=k, value=v, embed_dim=4, num_heads=2) as mha"])
def test_float64_attention_keeps_float64_precision_where_onnx_attention_runs(call):
    """onnxruntime's Attention kernel (opset 23-24) is float32-exact on float64 (2.6e-8 off torch): float64
    takes the MatMul/Softmax decomposition there (1e-15), as at other opsets."""
    opset = next((o for o in (24, 23) if runs_natively("Attention", o)), None)
    if opset is None:
        pytest.skip("this onnxruntime has no Attention kernel")
    r = np.random.default_rng(0)
    shape = [2, 2, 5, 4] if "scaled" in call else [2, 5, 4]
    q, k, v = (r.standard_normal(shape) for _ in range(3))
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    src = f"model m(q: float64[{dims}], k: float64[{dims}], v: float64[{dims}]) -> y {{\n    y = {call}\n}}\n"
    model = archdsl.compile_source(src, opset=opset)
    assert "Attention" not in {n.op_type for n in model.graph.node}
    (y,) = runtime.session(model, "cpu").run(None, {"q": q, "k": k, "v": v})
    if "scaled" in call:
        ref = F.scaled_dot_product_attention(t(q), t(k), t(v), is_causal=True).numpy()
        assert np.abs(y - ref).max() < 1e-13
    else:  # against the build at opset 22 (no Attention op there), the same weights
        (ref,) = runtime.session(archdsl.compile_source(src, opset=22), "cpu").run(None, {"q": q, "k": k, "v": v})
        assert np.abs(y - ref).max() < 1e-13
