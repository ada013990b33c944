"""The vision layers (ops/rearrange.py, ops/adaptive_pool.py, ops/instance_norm.py) in a train step against
torch: one SGD step on onnxruntime against torch autograd on the same graph (torch_ref maps each op to its torch
function), in float64, with the harness's bounds (loss within 1e-5, every update within 1e-4 relative). The
convs before an instance_norm have no bias: its gradient is zero (the norm takes the mean out), and an update
of rounding noise has no relative error to check."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import batches, compile_step, config, one_step_like_torch, ort_steps

pytest.importorskip("torch")

SUBPIXEL = """
model subpixel(x: float32[B, 3, 7, 5]) -> y {
    h = x -> conv2d(8, 3, padding=1, bias=false) as c1 -> instance_norm(affine=true) as n1 -> relu
    h = h -> pixel_shuffle(2) -> flip([-1, 2])                       # [B, 2, 14, 10]
    h = h -> conv2d(4, 3, padding=1) as c2 -> pixel_unshuffle(2)     # [B, 16, 7, 5]
    a = h -> adaptive_avgpool2d([3, 2]) -> flatten                   # overlapping windows
    m = h -> adaptive_maxpool2d([2, none]) -> adaptive_maxpool2d([1, 5]) -> flatten
    s = h -> flatten(2) -> adaptive_avgpool1d(4) -> instance_norm -> adaptive_maxpool1d(3) -> flatten
    y = concat([a, m, s], axis=1) -> linear(3) as head
}
"""

GLOBAL = """
model anysize(x: float32[B, 3, H, W]) -> y {
    h = x -> conv2d(8, 3, padding=1, bias=false) as c1 -> instance_norm(affine=true) as n1 -> relu -> pixel_shuffle(2)
    h = roll(h, [3, -2], [2, 3]) -> conv2d(4, 3, padding=1) as c2    # a cyclic shift, wrapped at run time
    y = concat([h -> adaptive_avgpool2d(1), h -> adaptive_maxpool2d([1, 1]) -> flip([1])], axis=1)
          -> flatten -> linear(3) as head
}
"""


def test_vision_layers_train_like_torch():
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=SUBPIXEL)
    one_step_like_torch(ct, fwd, batches(ct, 1, 3, 3, seed=5))


@pytest.mark.parametrize("hw", [(4, 5), (7, 3)])
def test_vision_layers_over_symbolic_sizes_train_like_torch(hw):
    """pixel_shuffle, instance_norm, flip, roll and the global adaptive pools over a symbolic H and W: one
    compiled step at two sizes."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=GLOBAL)
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 3, seed=6, dims={"H": hw[0], "W": hw[1]}))


VOLUME = """
model volume(x: float32[B, 2, 5, 6, 7]) -> y {
    h = x -> conv3d(4, 3, padding=1) as c1 -> relu
    a = h -> adaptive_avgpool3d([2, 3, 4]) -> flatten                # the depth cut: moved last and back
    m = h -> adaptive_maxpool3d([3, none, 1]) -> flatten
    y = concat([a, m], axis=1) -> linear(3) as head
}
"""


def test_3d_adaptive_pools_train_like_torch():
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=VOLUME)
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 3, seed=8))


@pytest.mark.parametrize("out", ["[3, 5, 2]", "[2, none, 7]", "4", "[6, 1, 2]"])
def test_3d_adaptive_max_pools_over_uneven_windows_train_like_torch(out):
    """Windows that overlap, differ in length (a -inf slot pads the shorter) or outnumber the inputs."""
    src = ("model m(x: float32[B, 2, 5, 7, 4]) -> y {\n    h = x -> conv3d(3, 1) as c\n"
           f"    y = h -> adaptive_maxpool3d({out}) -> flatten -> linear(2) as fc\n}}\n")
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=src)
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 2, seed=9))


@pytest.mark.parametrize("x, want", [
    ([-np.inf] * 5, [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 2 + 1 / 3, 1 / 2]),  # every element ties: shares
    ([-np.inf, -np.inf, 0.0, -np.inf, -np.inf], [1 / 2, 1 / 2, 1.0, 1 / 2, 1 / 2]),
    ([0.0, 2.0, 1.0, 2.0, 0.0], [0.0, 1.5, 0.0, 1.5, 0.0]),
])
def test_an_adaptive_max_pools_windows_share_their_gradient_among_tied_maxima(x, want):
    """Windows [0, 2), [1, 4), [3, 5) of 5 into 3: each output's gradient 1, shared among its window's
    maxima. A shorter window padded by a -inf slot lost the slot's share where the window was all -inf."""
    src = ("model m(x: float64[1, 1, 5]) -> loss {\n"
           "    h = x + parameter([1, 1, 5], init=\"zeros\", dtype=\"float64\") as p\n"
           "    loss = sum(adaptive_maxpool1d(h, 3))\n}\n")
    ct, _ = compile_step(None, config(loss="model", opt="sgd", lr=1.0), text=src)
    _, params = ort_steps(ct, [{"x": np.array(x).reshape(1, 1, 5)}])
    np.testing.assert_allclose(-params[0]["p"].ravel(), want, rtol=1e-12)


def test_an_adaptive_max_pools_gradient_grows_with_its_dims_not_its_windows():
    """Its gradient sliced every window of every dim, nested: 13^3 windows made a step of 49,228 nodes."""
    src = ("model m(x: float32[B, 4, 32, 32, 32]) -> y {\n"
           "    y = x -> conv3d(4, 1) as c -> adaptive_maxpool3d(13) -> flatten -> linear(3) as fc\n}\n")
    ct, _ = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=src)
    assert len(ct.step_model.graph.node) < 400


DOWN_UP = """
model down_up(x: float32[B, 4, H, W]) -> y {
    h = x -> conv2d(4, 3, stride=2, padding=1) as down -> relu       # [B, 4, (H-1)//2+1, (W-1)//2+1]
    y = h -> conv_transpose2d(4, 3, stride=2, padding=1, output_padding=1) as up
}
"""


@pytest.mark.parametrize("hw", [(7, 6), (4, 9)])
def test_transposed_conv_after_a_strided_conv_over_symbolic_sizes_trains_like_torch(hw):
    """The transposed conv's input length is a formula ((H-1)//2+1); its input gradient, a conv of the output's
    gradient, has that length (output_padding < stride), which the dim algebra cannot show: it was refused
    ("output_padding >= stride needs known lengths", a CycleGAN generator at symbolic sizes)."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1), text=DOWN_UP)
    out = {f"2*(({d}+1)//2)": 2 * ((n - 1) // 2 + 1) for d, n in zip("HW", hw)}  # the labels' dims
    one_step_like_torch(ct, fwd, batches(ct, 1, 2, 3, seed=7, dims={"H": hw[0], "W": hw[1], **out}))


PADDING_MODES = """
model padded(x: float32[B, 3, 12, 12]) -> y {
    h = x -> conv2d(16, 3, padding=1, padding_mode="reflect") as c1 -> relu                  # few channels: Conv
    h = h -> conv2d(16, 3, padding=1, padding_mode="reflect", bias=false) as c2 -> relu      # Winograd GEMMs
    h = h -> conv2d(8, [2, 3], stride=2, padding=[1, 2], padding_mode="circular") as c3      # im2col GEMM
    h = h -> conv2d(4, 3, padding="same", groups=2, padding_mode="replicate") as c4 -> tanh  # grouped: Conv
    y = h -> adaptive_avgpool2d(2) -> flatten -> linear(3) as head
}
"""


def test_conv_padding_modes_train_like_torch():
    """reflect/circular/replicate convs (torch's padding_mode) in each train form: the Conv with its gradient
    rule (the pad's rule composed with the conv's) and the Winograd and im2col GEMM forms on the padded input;
    one SGD step against torch autograd on nn.ConvNd's forward (F.pad in the mode, then the conv)."""
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=PADDING_MODES)
    one_step_like_torch(ct, fwd, batches(ct, 1, 3, 3, seed=7))


@pytest.mark.parametrize("pool", ["maxpool1d(x, 2, stride=2, padding=1, ceil_mode=true)",
                                  "avgpool1d(x, 2, stride=2, padding=1, ceil_mode=true)"])
def test_a_ceil_mode_pool_trains_at_opsets_before_22(tmp_path, pool):
    """ceil_mode leaves out a last window starting in the right padding (torch; ONNX pools from version 22):
    ONNX's shape inference before 22 counts it, so a train step declaring torch's length failed to load at
    --opset 17-21 ('Dimension mismatch ... 2 and 3'). It loads, checks and gives opset 22's loss."""
    import onnx
    import onnxruntime as ort

    from archdsl.cli import main
    spec = tmp_path / "p.arch"
    spec.write_text(f"model m(x: float32[B, 1, 5]) -> y {{\n    y = {pool} -> flatten -> linear(3) as fc\n}}\n")
    feeds = {"x": np.arange(20, dtype=np.float32).reshape(4, 1, 5), "labels": np.array([0, 1, 2, 0])}
    losses = []
    for opset in (17, 21, 22):
        out = tmp_path / f"p{opset}.train.onnx"
        assert main(["build", str(spec), "--train", "--loss", "cross_entropy", "--opset", str(opset),
                     "-o", str(out)]) == 0
        onnx.checker.check_model(onnx.load(str(out)), full_check=True)
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        losses.append(float(sess.run(["loss"], feeds)[0]))
    assert losses[0] == pytest.approx(losses[2]) and losses[1] == pytest.approx(losses[2])


def test_a_ceil_mode_pool_over_a_symbolic_length_needs_no_cut():
    """Shape inference sizes no symbolic axis, and the kernels (onnxruntime's, onnx's reference evaluator)
    give torch's length at every version: a symbolic ceil_mode pool at opsets 17-21 is one node, not a Shape,
    Add, Div and Slice around it, and matches torch at lengths where the pre-22 formula counts one more."""
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    import archdsl
    from archdsl import runtime
    src = "model m(x: float32[B, 2, L]) -> y {\n    y = maxpool1d(x, 2, stride=2, padding=1, ceil_mode=true)\n}\n"
    for opset in (17, 21):
        model = archdsl.compile_source(src, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        assert [n.op_type for n in model.graph.node] == ["MaxPool"]
        for length in (5, 7, 8):  # 5: the pre-22 formula gives 4 windows, torch 3
            x = np.random.default_rng(length).standard_normal((1, 2, length)).astype(np.float32)
            want = torch.nn.functional.max_pool1d(torch.from_numpy(x), 2, 2, 1, ceil_mode=True).numpy()
            np.testing.assert_array_equal(runtime.session(model).run(None, {"x": x})[0], want)
            np.testing.assert_array_equal(ReferenceEvaluator(model).run(None, {"x": x})[0], want)
    sym = ("model m(x: float32[B, 1, L]) -> y {\n    y = maxpool1d(x, 2, stride=2, padding=1, ceil_mode=true) "
           "-> sum(dim=2) -> linear(3) as fc\n}\n")
    from archdsl import driver
    from archdsl.autodiff import OptimConfig, TrainConfig
    cfg = TrainConfig(loss="cross_entropy", optimizer=OptimConfig("sgd"), lr=0.1)
    for opset in (17, 21):  # the train step loads and runs
        ct = driver.build_train(driver.load(text=sym), None, driver.CompileOptions(opt_level=2, opset=opset), cfg)
        sess = runtime.session(ct.step_model)
        feeds = runtime.random_feeds(sess, 2, {"L": 5}, seed=0)
        assert np.isfinite(sess.run(None, feeds)[0]).all()


@pytest.mark.parametrize("norm, groups", [("group_norm(2)", 2), ("instance_norm(affine=true)", 4)])
def test_group_statistics_gradients_as_accurate_as_torchs(norm, groups, tmp_path):
    """The forward sums in double (LayerNormalization) and the gradient took its mean in float32: at a mean of
    3000 with spread 0.01 the weight's gradient was 9x torch float32's error."""
    import onnx
    import torch

    from archdsl import runtime
    from archdsl.cli import main
    spec = tmp_path / "g.arch"
    spec.write_text("model m(x: float32[B, 4, 16, 16], t: float32[B, 4, 16, 16]) -> loss {\n"
                    f"    y = x -> {norm} as gn\n    loss = mean((y - t) * (y - t))\n}}\n")
    assert main(["build", str(spec), "--train", "--optimizer", "sgd", "--lr", "1", "-o", str(tmp_path / "g.onnx")]) == 0
    sess = runtime.session(tmp_path / "g.onnx", "cpu")
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "g.onnx")).graph.initializer}
    rng = np.random.default_rng(0)
    for x in (np.full((2, 4, 16, 16), 3.3, np.float32), (3000.3 + 0.01 * rng.standard_normal((2, 4, 16, 16))),
              (100 + rng.standard_normal((2, 4, 16, 16)))):
        x, t = x.astype(np.float32), rng.standard_normal(x.shape).astype(np.float32)
        feeds = {i.name: x if i.name == "x" else t if i.name == "t" else init[i.name] for i in sess.get_inputs()}
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        grads = {}
        for dt in (torch.float32, torch.float64):
            w = torch.ones(4, dtype=dt, requires_grad=True)
            y = torch.nn.functional.group_norm(torch.from_numpy(x).to(dt), groups, w, torch.zeros(4, dtype=dt))
            ((y - torch.from_numpy(t).to(dt)) ** 2).mean().backward()
            grads[dt] = w.grad.numpy().astype(np.float64)
        err = np.abs((1 - outs["gn.weight.new"]) - grads[torch.float64]).max()
        assert err <= max(np.abs(grads[torch.float32] - grads[torch.float64]).max(), 1e-6), (x.flat[0], err)
