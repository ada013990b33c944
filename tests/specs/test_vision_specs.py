"""The vision/generative specs: exact parameter counts (counted, never materialized), and each spec
compiled, fully ONNX-checked and run in onnxruntime at batch 2 (small variants of the big ones);
DCGAN, the DDPM UNet and the TCN also against a PyTorch reference with the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import runtime
from archdsl.lower import initial_weights

SPECS = Path(__file__).resolve().parents[2] / "specs"

# spec, -D defines, model, trainable params (published / torchvision / reference-code figures)
COUNTS = [
    ("perceptron", {}, None, 3),
    ("perceptron", {"features": 784}, None, 785),
    ("dcgan", {}, "generator", 3_576_704),
    ("dcgan", {}, "discriminator", 2_765_568),
    ("efficientnet", {"variant": "b0"}, None, 5_288_548),
    ("efficientnet", {"variant": "b1"}, None, 7_794_184),
    ("efficientnet", {"variant": "b2"}, None, 9_109_994),
    ("efficientnet", {"variant": "b3"}, None, 12_233_232),
    ("efficientnet", {"variant": "b4"}, None, 19_341_616),
    ("efficientnet", {"variant": "b5"}, None, 30_389_784),
    ("efficientnet", {"variant": "b6"}, None, 43_040_704),
    ("efficientnet", {"variant": "b7"}, None, 66_347_960),
    ("vit", {}, None, 86_567_656),                                                     # ViT-B/16
    ("vit", {"layers": 24, "heads": 16, "hidden": 1024, "mlp_dim": 4096}, None, 304_326_632),  # ViT-L/16
    ("ddpm_unet", {}, None, 35_746_307),
    ("tcn", {}, None, 66_510),
    ("hybrid", {}, None, 2_266_624),
]


def _id(case):
    spec, defines, model, _ = case
    return "-".join([spec] + [f"{k}={v}" for k, v in defines.items()] + ([model] if model else []))


@pytest.mark.parametrize("case", COUNTS, ids=[_id(c) for c in COUNTS])
def test_param_count(case):
    spec, defines, model, expected = case
    g = archdsl.check_file(SPECS / f"{spec}.arch", defines=defines, model=model)
    assert g.param_count() == expected


def test_efficientnet_trains_with_torchvisions_stochastic_depth_and_dropout():
    """Its train step had no stochastic depth (torchvision's 0.2, growing over the blocks), and the
    classifier's dropout could not be turned off by -D: no step compared exactly with torch."""
    from archdsl import driver
    from archdsl.autodiff import TrainConfig

    def random(**defines) -> bool:  # the step takes a seed: it draws masks
        ct = driver.compile_train_file(SPECS / "efficientnet.arch", TrainConfig(),
                                       defines={"resolution": 32, "classes": 10, **defines})
        return "seed" in [i.name for i in ct.step_model.graph.input]
    assert random() and random(dropout_p=0.0)  # the blocks' drop_path alone
    assert not random(dropout_p=0.0, stochastic_depth_prob=0.0)  # deterministic: comparable with torch


@pytest.mark.parametrize("variant,resolution", list(zip([f"b{i}" for i in range(8)],
                                                        [224, 240, 260, 300, 380, 456, 528, 600])))
def test_efficientnet_default_resolution_and_shapes(variant, resolution):
    g = archdsl.check_file(SPECS / "efficientnet.arch", defines={"variant": variant})
    assert [str(d) for d in g.inputs[0].type.shape] == ["B", "3", str(resolution), str(resolution)]
    assert [str(d) for d in g.outputs[0][1].type.shape] == ["B", "1000"]
    eps = {n.attrs["eps"] for n in g.nodes if n.op == "batchnorm"}
    assert eps == ({1e-3} if variant in ("b5", "b6", "b7") else {1e-5})   # as torchvision's norm_layer
    momentum = {n.attrs["momentum"] for n in g.nodes if n.op == "batchnorm"}
    assert momentum == ({0.01} if variant in ("b5", "b6", "b7") else {0.1})  # (it was 0.1 for every variant)


def test_efficientnet_names_are_torchvisions():
    g = archdsl.check_file(SPECS / "efficientnet.arch")
    shapes = {k: v.type.shape for k, v in g.params.items()}
    assert shapes["features.0.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.1.0.block.0.0.weight"] == (32, 1, 3, 3)          # depthwise, no expansion in stage 1
    assert shapes["features.1.0.block.1.fc1.weight"] == (8, 32, 1, 1)        # squeeze-excitation
    assert shapes["features.2.0.block.0.0.weight"] == (96, 16, 1, 1)         # expansion 6
    assert shapes["features.2.0.block.3.0.weight"] == (24, 96, 1, 1)         # projection
    assert shapes["features.8.0.weight"] == (1280, 320, 1, 1)
    assert shapes["classifier.1.weight"] == (1000, 1280)


def test_vit_names_are_torchvisions():
    g = archdsl.check_file(SPECS / "vit.arch", defines={"layers": 1})
    layer = "encoder.layers.encoder_layer_0."
    expected = ["conv_proj.weight", "conv_proj.bias", "class_token", "encoder.pos_embedding"] + \
        [layer + k for k in ("ln_1.weight", "ln_1.bias", "self_attention.in_proj_weight", "self_attention.in_proj_bias",
                             "self_attention.out_proj.weight", "self_attention.out_proj.bias",
                             "ln_2.weight", "ln_2.bias",
                             "mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias")] + \
        ["encoder.ln.weight", "encoder.ln.bias", "heads.head.weight", "heads.head.bias"]
    assert sorted(g.params) == sorted(expected)
    assert g.params["encoder.pos_embedding"].type.shape == (1, 197, 768)
    assert g.params["class_token"].type.shape == (1, 1, 768)


# ---------------------------------------------------------------- compiled and run

TINY_VIT = {"image": 32, "patch": 8, "layers": 2, "hidden": 32, "heads": 4, "mlp_dim": 64, "classes": 10}
SMALL_DDPM = {"ch": 32, "groups": 8, "resolution": 16, "ch_mult": [1, 2], "attn_resolutions": [8]}
SMALL_HYBRID = {"image": 32, "stem": [8, 16], "hidden": 32, "heads": 2, "layers": 2, "mlp_dim": 64, "classes": 10}

# spec, defines, model, {output: shape at batch 2}
RUNS = [
    ("perceptron", {}, None, {"y": (2, 1)}),
    ("dcgan", {}, "generator", {"image": (2, 3, 64, 64)}),
    ("dcgan", {}, "discriminator", {"p": (2, 1)}),
    ("efficientnet", {"variant": "b0", "resolution": 64, "classes": 10}, None, {"logits": (2, 10)}),
    ("vit", TINY_VIT, None, {"logits": (2, 10)}),
    ("ddpm_unet", SMALL_DDPM, None, {"noise": (2, 3, 16, 16)}),
    ("tcn", {"seq_len": 64}, None, {"logits": (2, 10)}),
    ("hybrid", SMALL_HYBRID, None, {"logits": (2, 10)}),
]


def compile_run(spec, defines, model, feeds=None, seed=0):
    m = archdsl.compile_file(SPECS / f"{spec}.arch", defines=defines, model=model, seed=seed)
    onnx.checker.check_model(m, full_check=True)
    sess = runtime.session(m, provider="cpu")
    feeds = feeds or runtime.random_feeds(sess, batch=2, high={"t": 1000})
    outs = sess.run(None, feeds)
    # the parameters as built (before -O2 folds BatchNorm into the convs), as a torch state_dict holds them
    weights = initial_weights(archdsl.check_file(SPECS / f"{spec}.arch", defines=defines, model=model), seed)
    return dict(zip([o.name for o in sess.get_outputs()], outs)), weights, feeds


@pytest.mark.parametrize("case", RUNS, ids=[_id(c[:3] + (0,)) for c in RUNS])
def test_spec_compiles_checks_and_runs(case):
    spec, defines, model, shapes = case
    outs, _, _ = compile_run(spec, defines, model)
    assert {k: v.shape for k, v in outs.items()} == shapes
    for v in outs.values():
        assert np.isfinite(v).all()


def test_perceptron_is_a_threshold_unit():
    outs, w, feeds = compile_run("perceptron", {}, None)
    expected = (feeds["x"] @ w["unit.weight"].T + w["unit.bias"] > 0).astype(np.float32)
    np.testing.assert_array_equal(outs["y"], expected)


def test_ddpm_unet_default_graph_shapes():
    g = archdsl.check_file(SPECS / "ddpm_unet.arch")
    assert [str(d) for d in g.outputs[0][1].type.shape] == ["B", "3", "32", "32"]
    assert [str(v.type) for v in g.inputs] == ["float32[B, 3, 32, 32]", "int64[B]"]
    assert sum(1 for k in g.params if k.endswith(".q.weight")) == 2 + 1 + 3      # 16x16 down, mid, 16x16 up


# ---------------------------------------------------------------- against PyTorch

def _load(module, weights):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return module.eval()


def _randomize_bn(weights):
    """Non-trivial running statistics, so BatchNorm is really checked."""
    rng = np.random.default_rng(1)
    for k in weights:
        if k.endswith("running_mean"):
            weights[k] = rng.standard_normal(weights[k].shape).astype(np.float32) * 0.1
        elif k.endswith("running_var"):
            weights[k] = rng.uniform(0.5, 1.5, weights[k].shape).astype(np.float32)
    return weights


def test_dcgan_matches_the_pytorch_tutorial_networks(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    gen = nn.Sequential(
        nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False), nn.BatchNorm2d(512), nn.ReLU(True),
        nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(True),
        nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh())
    disc = nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(256, 512, 4, 2, 1, bias=False), nn.BatchNorm2d(512), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(512, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    for name, main, out in (("generator", gen, "image"), ("discriminator", disc, "p")):
        ref = nn.Module()
        ref.main = main                      # the tutorial's modules hold their layers as self.main
        g = archdsl.check_file(SPECS / "dcgan.arch", model=name)
        weights = _randomize_bn(compile_run("dcgan", {}, name)[1])
        np.savez(tmp_path / f"{name}.npz", **weights)
        m = archdsl.compile_file(SPECS / "dcgan.arch", model=name, weights=str(tmp_path / f"{name}.npz"))
        sess = runtime.session(m, provider="cpu")
        feeds = runtime.random_feeds(sess, batch=2)
        ours = sess.run(None, feeds)[0]
        _load(ref, weights)
        assert g.param_count() == sum(p.numel() for p in ref.parameters())
        with torch.no_grad():
            expected = main(torch.from_numpy(next(iter(feeds.values())))).reshape(2, -1).numpy()
        np.testing.assert_allclose(ours.reshape(2, -1), expected, rtol=1e-4, atol=1e-5)
        assert ours.shape[1:] == {"image": (3, 64, 64), "p": (1,)}[out]


def test_efficientnet_b0_matches_a_pytorch_reference(tmp_path):
    torch = pytest.importorskip("torch")
    from . import vision_torch_refs as refs
    assert sum(p.numel() for p in refs.torch_efficientnet_b0(1000).parameters()) == 5_288_548
    ref = refs.torch_efficientnet_b0(10)
    defines = {"variant": "b0", "resolution": 64, "classes": 10}
    weights = _randomize_bn(initial_weights(archdsl.check_file(SPECS / "efficientnet.arch", defines=defines)))
    np.savez(tmp_path / "b0.npz", **weights)
    m = archdsl.compile_file(SPECS / "efficientnet.arch", defines=defines, weights=str(tmp_path / "b0.npz"))
    sess = runtime.session(m, provider="cpu")
    x = runtime.random_feeds(sess, batch=2)["x"]
    _load(ref, weights)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-5)


def test_ddpm_unet_matches_a_pytorch_reference():
    torch = pytest.importorskip("torch")
    from . import vision_torch_refs as refs
    ref = refs.torch_ddpm(32, [1, 2], 2, [8], 16, 8)
    assert archdsl.check_file(SPECS / "ddpm_unet.arch", defines=SMALL_DDPM).param_count() == \
        sum(p.numel() for p in ref.parameters())
    full = refs.torch_ddpm(128, [1, 2, 2, 2], 2, [16], 32, 32)   # counted only: the same layout at full size
    assert sum(p.numel() for p in full.parameters()) == 35_746_307
    outs, w, feeds = compile_run("ddpm_unet", SMALL_DDPM, None)
    _load(ref, w)
    with torch.no_grad():
        expected = ref(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["t"])).numpy()
    np.testing.assert_allclose(outs["noise"], expected, rtol=1e-4, atol=1e-5)


def test_tcn_matches_a_pytorch_reference_and_is_causal():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    outs, w, feeds = compile_run("tcn", {"seq_len": 64, "levels": 3}, None)

    def forward(x):
        for i in range(3):
            d, pad = 2 ** i, 6 * 2 ** i
            h = F.relu(F.conv1d(F.pad(x, (pad, 0)), _t(w, f"network.{i}.conv1.weight"),
                                _t(w, f"network.{i}.conv1.bias"), dilation=d))
            h = F.relu(F.conv1d(F.pad(h, (pad, 0)), _t(w, f"network.{i}.conv2.weight"),
                                _t(w, f"network.{i}.conv2.bias"), dilation=d))
            res = F.conv1d(x, _t(w, f"network.{i}.downsample.weight"), _t(w, f"network.{i}.downsample.bias")) \
                if f"network.{i}.downsample.weight" in w else x
            x = F.relu(h + res)
        return x

    x = torch.from_numpy(feeds["x"])
    with torch.no_grad():
        seq = forward(x)
        expected = F.linear(seq[:, :, -1], _t(w, "linear.weight"), _t(w, "linear.bias")).numpy()
        later = x.clone()
        later[:, :, 40:] += 1.0                     # the future does not reach earlier outputs
        assert torch.equal(forward(later)[:, :, :40], seq[:, :, :40])
    np.testing.assert_allclose(outs["logits"], expected, rtol=1e-4, atol=1e-5)


def _t(w, name):
    import torch
    return torch.from_numpy(w[name].copy())


@pytest.mark.parametrize("spec,defines", [("ddpm_unet", SMALL_DDPM), ("vit", TINY_VIT), ("dcgan", {})],
                         ids=["ddpm_unet", "vit", "dcgan"])
def test_oldest_opset_gives_the_same_outputs(spec, defines):
    """opset 17 takes the decompositions (GroupNorm without per-channel GroupNormalization, Gelu by Erf)."""
    model = "generator" if spec == "dcgan" else None
    outs = []
    for opset in (17, None):
        m = archdsl.compile_file(SPECS / f"{spec}.arch", defines=defines, model=model, opset=opset)
        onnx.checker.check_model(m, full_check=True)
        sess = runtime.session(m, provider="cpu")
        outs.append(sess.run(None, runtime.random_feeds(sess, batch=2, high={"t": 1000}))[0])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
