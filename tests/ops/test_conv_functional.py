"""conv(x, weight, bias=) and conv_transpose(x, weight, bias=): convolutions of a weight computed in the spec
(torch.nn.functional.conv1d/2d/3d, conv_transpose1d/2d/3d), property-based against torch over ranks, groups,
strides, dilations, paddings (and padding modes, output paddings) with the weight and bias fed as inputs; a
weight-normalized conv against torch's weight_norm (parameter names, outputs, a train step), a
weight-normalized upsampling conv_transpose in a train step; the diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import archdsl
from archdsl import runtime

from .core_harness import OPSET, SETTINGS, SYM, close, covers, rand, refused
from .test_core_layers import padding_mode_case

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_conv(x, w, b, c):
    """nn.ConvNd's forward for these attributes in float64 (a padding mode is F.pad, then an unpadded conv)."""
    nd = c["nd"]
    t = lambda a: None if a is None else torch.from_numpy(a).double()  # noqa: E731
    xt = t(x)
    flat = [p for pair in reversed(c["pads"]) for p in pair]
    xt = F.pad(xt, flat, mode=c["mode"] if c["mode"] != "zeros" else "constant")
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(xt, t(w), t(b), stride=c["stride"], dilation=c["dil"], groups=c["groups"]).numpy()


@covers("conv")
@settings(SETTINGS, max_examples=30)
@given(c=padding_mode_case(), sym=SYM, opset=OPSET)
def test_functional_conv_matches_torch(c, sym, opset):
    x = rand(c["batch"], c["cin"], *c["size"])
    w = rand(c["cout"], c["cin"] // c["groups"], *c["k"], seed=1)
    b = rand(c["cout"], seed=2) if c["bias"] else None
    pad = {"int": str(c["p"]), "list": str(c["p"]), "same": '"same"', "valid": '"valid"'}[c["padding"]]
    y = _run("conv", f"stride={c['stride']}, padding={pad}, dilation={c['dil']}, groups={c['groups']}, "
                     f"padding_mode=\"{c['mode']}\"", x, w, b, sym, opset)
    close(y, _torch_conv(x, w, b, c))


@pytest.mark.parametrize("k, dil", [(2, 1), (4, 1), (2, 3)])
def test_same_padding_of_an_odd_total_puts_the_extra_at_the_end_as_torch(k, dil):
    """An even kernel (or a dilation) pads one more on the right/bottom; the random cases draw it seldom."""
    x, w = rand(1, 2, 7, 6), rand(3, 2, k, k, seed=1)
    y = _run("conv", f'padding="same", dilation={dil}', x, w, None, False, 17)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=dil)
    close(y, want.numpy())


def _run(op: str, attrs: str, x, w, b, sym: bool, opset: int):
    """`y = op(x, w, bias=b, attrs)` over inputs x, w (and b), x's batch and spatial dims symbolic with sym."""
    spatial = [f"S{i}" for i in range(x.ndim - 2)] if sym else [str(s) for s in x.shape[2:]]
    xt = f"float32[{'B' if sym else x.shape[0]}, {x.shape[1]}, {', '.join(spatial)}]"
    inputs = f"x: {xt}, w: float32{list(w.shape)}" + (f", b: float32[{b.shape[0]}]" if b is not None else "")
    call = f"{op}(x, w{', bias=b' if b is not None else ''}, {attrs})"
    model = archdsl.compile_source(f"model m({inputs}) -> y {{\n    y = {call}\n}}\n", opset=opset)
    feeds = {"x": x, "w": w, **({"b": b} if b is not None else {})}
    return runtime.session(model, "cpu").run(None, feeds)[0]


@st.composite
def transpose_case(draw):
    nd, g = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    p = [draw(st.integers(0, (ki - 1) * di)) for ki, di in zip(k, d)]
    op = [draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d)]  # torch: below stride or dilation
    size = [draw(st.integers(1, 4)) for _ in range(nd)]
    assume(all((n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1 > 0  # a positive output length
               for n, si, pi, di, ki, oi in zip(size, s, p, d, k, op)))
    return dict(nd=nd, groups=g, cin=g * draw(st.integers(1, 2)), cout=g * draw(st.integers(1, 2)), k=k, s=s,
                d=d, p=p, op=op, size=size, batch=draw(st.integers(1, 2)), bias=draw(st.booleans()))


@covers("conv_transpose")
@settings(SETTINGS, max_examples=30)
@given(c=transpose_case(), sym=SYM, opset=OPSET)
def test_functional_conv_transpose_matches_torch(c, sym, opset):
    nd = c["nd"]
    x = rand(c["batch"], c["cin"], *c["size"])
    w = rand(c["cin"], c["cout"] // c["groups"], *c["k"], seed=1)
    b = rand(c["cout"], seed=2) if c["bias"] else None
    y = _run("conv_transpose", f"stride={c['s']}, padding={c['p']}, output_padding={c['op']}, "
                               f"groups={c['groups']}, dilation={c['d']}", x, w, b, sym, opset)
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    t = lambda a: None if a is None else torch.from_numpy(a).double()  # noqa: E731
    close(y, fn(t(x), t(w), t(b), stride=c["s"], padding=c["p"], output_padding=c["op"], groups=c["groups"],
                dilation=c["d"]).numpy())


WEIGHT_NORM = """
block wn_conv1d(x, out_channels, k, dilation) {
    v = parameter([out_channels, shape(x)[1], k], init="normal", std=0.1) as weight_v
    g = parameter([out_channels, 1, 1], init="ones") as weight_g
    b = parameter([out_channels]) as bias
    w = g * v / sqrt(sum(v * v, dim=[1, 2], keepdim=true))     # torch's weight_norm, dim 0
    return conv(x, w, bias=b, dilation=dilation, padding=(k - 1) * dilation // 2)
}

model tcn(x: float32[B, 3, T]) -> y {
    h = wn_conv1d(x, 8, 3, 1) as conv1 -> relu
    h = wn_conv1d(h, 8, 3, 2) as conv2 -> relu
    y = h -> mean(dim=[2]) -> linear(4) as head
}
"""


class _TorchTCN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        wn = torch.nn.utils.weight_norm  # the state_dict names weight_g / weight_v
        self.conv1 = wn(torch.nn.Conv1d(3, 8, 3, padding=1))
        self.conv2 = wn(torch.nn.Conv1d(8, 8, 3, padding=2, dilation=2))
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.mean(2))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.nn.utils.weight_norm: deprecated, not gone
def test_a_weight_normalized_conv_is_torchs_weight_norm(tmp_path):
    """The parameters named as torch's weight_norm names them; torch's values loaded by name give its outputs
    at two lengths."""
    ref = _TorchTCN().double().eval()
    g = archdsl.check_source(WEIGHT_NORM)
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert {k: v.type.shape for k, v in g.params.items()} == {k: v.shape for k, v in state.items()}
    np.savez(tmp_path / "w.npz", **{k: v.astype(np.float32) for k, v in state.items()})
    model = archdsl.compile_source(WEIGHT_NORM, weights=str(tmp_path / "w.npz"))
    sess = runtime.session(model, "cpu")
    for t in (5, 12):
        x = rand(2, 3, t, seed=t)
        (y,) = sess.run(None, {"x": x})
        with torch.no_grad():
            close(y, ref(torch.from_numpy(x).double()).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [2, 3])
def test_a_weight_normalized_conv_trains_like_torch(batch):
    """The gradient reaches weight_g and weight_v through the computed weight: one Adam step against torch
    autograd on the same graph."""
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    ct, fwd = compile_step(None, config(loss="cross_entropy", opt="adam", lr=0.01), text=WEIGHT_NORM)
    assert "conv" in {n.op for n in fwd.nodes}
    one_step_like_torch(ct, fwd, batches(ct, 2, batch, 4, seed=3, dims={"T": 9}))


UPSAMPLER = """
block wn_up(x, out_channels, k, stride) {
    v = parameter([shape(x)[1], out_channels, k], init="normal", std=0.1) as weight_v
    g = parameter([shape(x)[1], 1, 1], init="ones") as weight_g
    w = g * v / sqrt(sum(v * v, dim=[1, 2], keepdim=true))
    return conv_transpose(x, w, bias=parameter([out_channels]) as bias, stride=stride, padding=(k - stride) // 2)
}

model vocoder(x: float32[B, 4, 5]) -> y {
    h = wn_up(x, 6, 4, 2) as "ups.0" -> leaky_relu(0.1)
    h = wn_up(h, 3, 6, 3) as "ups.1" -> leaky_relu(0.1)
    y = h -> conv1d(1, 3, padding=1) as post -> tanh
}
"""


def test_a_weight_normalized_upsampler_trains_like_torch():
    """conv_transpose of a weight-normalized weight (HiFi-GAN's upsampling): one SGD step with momentum
    against torch autograd on the same graph."""
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.05, momentum=0.9), text=UPSAMPLER)
    assert "conv_transpose" in {n.op for n in fwd.nodes}
    assert {"ups.0.weight_v", "ups.0.weight_g", "ups.0.bias"} <= set(fwd.params)
    one_step_like_torch(ct, fwd, batches(ct, 2, 2, 4, seed=4))


def test_functional_conv_diagnostics():
    src = "model m(x: {x}, w: {w}{more}) -> y {{\n    y = conv(x, w{rest})\n}}\n"
    ok = dict(x="float32[B, 4, 8, 8]", w="float32[6, 4, 3, 3]", more="", rest="")
    refused(src.format(**{**ok, "w": "float32[6, 4]"}), r"conv: weight must be \[out_channels, in_channels/groups, "
                                                        r"\*kernel\] .* got \[6, 4\]")
    refused(src.format(**{**ok, "w": "float32[6, 4, K, 3]"}), r"the weight's shape must be known sizes, got "
                                                              r"\[6, 4, K, 3\]")
    refused(src.format(**{**ok, "w": "float16[6, 4, 3, 3]"}), r"dtypes differ \(input float32, weight float16\)")
    refused(src.format(**{**ok, "w": "int64[6, 4, 3, 3]"}), r"weight must be a float tensor")
    refused(src.format(**{**ok, "w": "float32[6, 2, 3, 3]", "rest": ", groups=4"}),
            r"groups=4 must divide the weight's out_channels 6")
    refused(src.format(**{**ok, "w": "float32[6, 4, 3]"}), r"a weight \[6, 4, 3\] convolves a rank-3 input "
                                                           r"\[N, C, spatial\], got \[B, 4, 8, 8\]")
    refused(src.format(**{**ok, "w": "float32[6, 3, 3, 3]"}), r"conv: a weight \[6, 3, 3, 3\] takes 3 input channels, "
                                                              r"got 4 \(input \[B, 4, 8, 8\]\)")
    refused(src.format(**{**ok, "w": "float32[6, 1, 3, 3]", "rest": ", groups=2"}),
            r"conv: a weight \[6, 1, 3, 3\] in 2 groups takes 2 input channels, got 4")
    refused(src.format(**{**ok, "more": ", b: float32[4]", "rest": ", bias=b"}),
            r"bias must be float32\[6\] \(one per output channel\), got float32\[4\]")
    refused(src.format(**{**ok, "rest": ", stride=0"}), r"conv: stride must be positive, got 0")
    refused(src.format(**{**ok, "rest": ", dilation=[1, 0]"}), r"conv: dilation must be positive, got \[1, 0\]")
    refused(src.format(**{**ok, "rest": ", padding_mode=\"mirror\""}), r"conv: argument 'padding_mode' must be one "
                                                                      r"of \"zeros\", \"reflect\"")
    refused(src.format(**{**ok, "rest": ", padding=8, padding_mode=\"reflect\""}), r"^conv: reflect padding")
    refused("model m(x: float32[B, 4, 8, 8]) -> y {\n    y = conv(x, 3)\n}\n", r"rank 3 to 5\), got a number")
    refused(src.format(**{**ok, "x": "float32[B, 4, 2, 2]"}), r"window of 3 \(kernel 3, dilation 1\) is larger than "
                                                              r"the padded input of 2")


def test_functional_conv_transpose_diagnostics():
    src = "model m(x: {x}, w: {w}{more}) -> y {{\n    y = conv_transpose(x, w{rest})\n}}\n"
    ok = dict(x="float32[B, 4, 8]", w="float32[4, 3, 2]", more="", rest="")
    refused(src.format(**{**ok, "w": "float32[4, 3]"}), r"conv_transpose: weight must be \[in_channels, "
                                                        r"out_channels/groups, \*kernel\]")
    refused(src.format(**{**ok, "w": "float32[6, 3, 2]", "rest": ", groups=4"}),
            r"groups=4 must divide the weight's in_channels 6")
    refused(src.format(**{**ok, "more": ", b: float32[4]", "rest": ", bias=b, groups=2"}),
            r"bias must be float32\[6\] \(one per output channel\), got float32\[4\]")
    refused(src.format(**{**ok, "w": "float32[5, 3, 2]"}), r"conv_transpose: a weight \[5, 3, 2\] takes 5 input "
                                                           r"channels, got 4")
    refused(src.format(**{**ok, "rest": ", stride=2, output_padding=2"}), r"output_padding \[2\] must be smaller")
    refused(src.format(**{**ok, "rest": ", stride=0"}), r"conv_transpose: stride must be positive, got 0")


def test_conv_transpose3d_layer_params_and_init_are_torchs():
    """The layer form in 3-D (the other tests reach it through the functional conv_transpose): weight layout
    [in, out/groups, *k], torch's parameter count and init bound, and its output."""
    src = ("model m(x: float32[B, 4, 3, 4, 5]) -> y { y = x -> conv_transpose3d(6, (2, 3, 1), stride=(2, 1, 2), "
           "padding=(0, 1, 0), groups=2) as up }")
    g = archdsl.check_source(src)
    assert g.params["up.weight"].type.shape == (4, 3, 2, 3, 1)
    m = torch.nn.ConvTranspose3d(4, 6, (2, 3, 1), stride=(2, 1, 2), padding=(0, 1, 0), groups=2)
    assert g.param_count() == sum(p.numel() for p in m.parameters())
    x = rand(2, 4, 3, 4, 5)
    model = archdsl.compile_source(src)
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    (y,) = runtime.session(model).run(None, {"x": x})
    bound = 1 / math.sqrt(3 * 2 * 3 * 1)  # torch: fan_in from weight dim 1 times the kernel
    assert np.abs(w["up.weight"]).max() <= bound and np.abs(w["up.weight"]).max() > 0.8 * bound
    assert np.abs(w["up.bias"]).max() <= bound
    ref = torch.nn.functional.conv_transpose3d(*map(torch.from_numpy, (x, w["up.weight"], w["up.bias"])),
                                               stride=(2, 1, 2), padding=(0, 1, 0), groups=2)
    assert y.shape == tuple(ref.shape)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
