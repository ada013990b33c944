"""Numerical equivalence against PyTorch: the same random weights in a plain-PyTorch module
(archdsl/bench/torch_models.py) and in the spec compiled with `weights=` give the same outputs in
onnxruntime as torch eager, elementwise within 1e-4 absolute + 1e-4 relative (|ort - torch| <= 1e-4 + 1e-4 |torch|).
Every parameter is set (norm scales, biases, BatchNorm statistics, class token all non-trivial), and the
file must name exactly the spec's parameters, so a missing or misnamed weight cannot hide behind the seed init."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import archdsl
from archdsl.bench.torch_models import build, export_weights, randomize_
from archdsl.runtime import session

SPECS = Path(__file__).resolve().parents[2] / "specs"
ATOL = RTOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The suite shares two cores with others: torch and onnxruntime each on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _save(weights: dict[str, np.ndarray], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file
        save_file(weights, str(path))
    else:
        np.savez(path, **weights)
    return path


@torch.no_grad()
def _calibrate_batchnorm(module, shape: tuple[int, ...], seed: int = 0) -> None:
    """Running statistics measured, layer by layer in eval mode, on a random batch of 8 inputs of `shape`, then
    perturbed per channel: activations keep their scale through a deep net (instead of fading into the biases
    or compounding into thousands), and eval-mode BatchNorm is still far from an identity."""
    g = torch.Generator().manual_seed(seed)

    def measure(bn, args):
        x = args[0]
        dims = [d for d in range(x.dim()) if d != 1]
        mean, var = x.mean(dims), x.var(dims).clamp(min=1e-2)   # no near-constant channel blown up by 1/sqrt(eps)
        bn.running_mean.copy_(mean + torch.randn(mean.shape, generator=g) * 0.1 * var.sqrt())
        bn.running_var.copy_(var * (torch.rand(var.shape, generator=g) + 0.5))

    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_pre_hook(measure) for m in bns]
    try:
        module.eval()(torch.from_numpy(_randn(8, *shape, seed=seed + 100)))
    finally:
        for h in hooks:
            h.remove()


def _equivalent(tmp_path: Path, spec: str, defines: dict, inputs: list[np.ndarray], *, suffix: str = ".npz",
                seed: int = 0, opt_level: int = 2, opset: int | None = None) -> list[np.ndarray]:
    """Build both sides with the same weights, run them, assert agreement; return the onnxruntime outputs."""
    torch.manual_seed(seed)                            # torch's own init draws from the global generator
    module = randomize_(build(spec, **defines), seed).eval()
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        _calibrate_batchnorm(module, inputs[0].shape[1:], seed)
    weights = export_weights(module)
    expected = set(archdsl.check_file(SPECS / f"{spec}.arch", defines=defines).params)
    assert set(weights) == expected, (sorted(set(weights) - expected)[:3], sorted(expected - set(weights))[:3])
    path = _save(weights, tmp_path / f"{spec}{suffix}")
    model = archdsl.compile_file(SPECS / f"{spec}.arch", defines=defines, weights=str(path), opt_level=opt_level,
                                 opset=opset)
    sess = session(model, provider="cpu", threads=1)
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})
    with torch.no_grad():
        ref = module(*(torch.from_numpy(x) for x in inputs))
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        r = r.numpy()
        assert g.shape == r.shape
        assert np.isfinite(r).all()
        if r.shape[0] > 1 and r.ndim > 1:              # the output depends on the input, not only on biases
            assert np.ptp(r, axis=0).max() > 1e-2
        np.testing.assert_allclose(g, r, atol=ATOL, rtol=RTOL)
    return got


def _randn(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _ids(high: int, batch: int, t: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (batch, t)).astype(np.int64)


def test_mlp(tmp_path):
    _equivalent(tmp_path, "mlp", {}, [_randn(3, 784)])


def test_mlp_safetensors(tmp_path):
    _equivalent(tmp_path, "mlp", {"hidden": 32}, [_randn(2, 784)], suffix=".safetensors")


def test_lenet5(tmp_path):
    _equivalent(tmp_path, "lenet5", {}, [_randn(2, 1, 32, 32)])


@pytest.mark.parametrize("opt_level", [0, 2])
def test_resnet18_batchnorm_eval(tmp_path, opt_level):
    """Eval-mode BatchNorm with random running statistics and affine parameters; -O2 folds it into the convs."""
    _equivalent(tmp_path, "resnet", {"depth": 18, "classes": 10, "resolution": 64}, [_randn(2, 3, 64, 64)],
                opt_level=opt_level)


def test_resnet50_bottleneck_low_resolution(tmp_path):
    _equivalent(tmp_path, "resnet", {"depth": 50, "classes": 10, "resolution": 64}, [_randn(2, 3, 64, 64)])


# the newest opset (fused LayerNormalization/Gelu/Attention where -O2 picks them), no passes, and opset 17's
# decompositions
LOWERINGS = pytest.mark.parametrize("opset,opt_level", [(None, 2), (None, 0), (17, 2)], ids=["O2", "O0", "opset17"])


@LOWERINGS
def test_gpt2_two_layers(tmp_path, opset, opt_level):
    d = {"n_layer": 2, "n_head": 2, "n_embd": 64, "vocab": 100, "n_positions": 32}
    _equivalent(tmp_path, "gpt2", d, [_ids(100, 2, 16)], opset=opset, opt_level=opt_level)


def test_gpt2_is_causal_on_both_sides(tmp_path):
    """Changing the last token changes only the last position's logits, in both implementations."""
    d = {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab": 50, "n_positions": 16}
    a = _ids(50, 1, 8)
    b = a.copy()
    b[0, -1] = (b[0, -1] + 1) % 50
    (ya,), (yb,) = _equivalent(tmp_path, "gpt2", d, [a]), _equivalent(tmp_path, "gpt2", d, [b])
    np.testing.assert_array_equal(ya[:, :-1], yb[:, :-1])
    assert not np.allclose(ya[:, -1], yb[:, -1])


@torch.no_grad()
def test_the_gelu_of_each_reference_is_its_models():
    """GPT-2's MLP uses the tanh approximation (as specs/gpt2.arch says), BERT's and ViT's the erf form: the
    references must too. The two differ by ~1e-4 per activation, which the outputs' tolerance above did not
    tell apart (mutbench hunt)."""
    import torch.nn.functional as F
    cases = {"gpt2": ({"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab": 50, "n_positions": 16}, "mlp.c_fc",
                      "mlp.c_proj", "tanh"),
             "bert": ({"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
                       "intermediate_size": 64, "vocab_size": 50}, "intermediate.dense", "output.dense",  # the
                      "none"),  # last "output.dense" of the layer: attention.output's comes first
             "vit": ({"image": 32, "patch": 8, "layers": 1, "hidden": 32, "heads": 4, "mlp_dim": 64,
                      "classes": 10}, "mlp.0", "mlp.3", "none")}
    for spec, (defines, before, after, form) in cases.items():
        module = randomize_(build(spec, **defines), 0).eval()
        seen = {}
        first, then = ([m for n, m in module.named_modules() if n.endswith(k)][-1] for k in (before, after))
        first.register_forward_hook(lambda m, args, out: seen.setdefault("h", out))
        then.register_forward_pre_hook(lambda m, args: seen.setdefault("g", args[0]))
        inputs = [torch.from_numpy(x) for x in _example(spec, defines)]
        module(*inputs)
        assert torch.equal(seen["g"], F.gelu(seen["h"], approximate=form)), spec
        assert not torch.allclose(seen["g"], F.gelu(seen["h"], approximate="none" if form == "tanh" else "tanh"),
                                  rtol=0, atol=1e-6), spec


def _example(spec: str, d: dict) -> list[np.ndarray]:
    if spec == "vit":
        return [_randn(1, 3, d["image"], d["image"])]
    ids = _ids(d.get("vocab", d.get("vocab_size")), 1, 8)
    return [ids] if spec == "gpt2" else [ids, np.zeros_like(ids), np.ones_like(ids)]


@LOWERINGS
def test_vit_two_layers(tmp_path, opset, opt_level):
    d = {"image": 32, "patch": 8, "layers": 2, "hidden": 32, "heads": 4, "mlp_dim": 64, "classes": 10}
    _equivalent(tmp_path, "vit", d, [_randn(2, 3, 32, 32)], opset=opset, opt_level=opt_level)


@LOWERINGS
def test_bert_small_with_padding(tmp_path, opset, opt_level):
    d = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
         "vocab_size": 100}
    mask = np.ones((2, 12), np.int64)
    mask[1, 7:] = 0                                   # the second sequence is padded
    _equivalent(tmp_path, "bert", d, [_ids(100, 2, 12), _ids(2, 2, 12, seed=3), mask], opset=opset,
                opt_level=opt_level)


def test_efficientnet_b0_low_resolution(tmp_path):
    _equivalent(tmp_path, "efficientnet", {"variant": "b0", "classes": 10, "resolution": 64},
                [_randn(2, 3, 64, 64)])


@pytest.mark.parametrize("key", ["resnet50", "efficientnet_b0", "vit_b16", "bert_base", "gpt2_small"])
def test_benchmark_modules_have_the_specs_parameters(key):
    """The full-size references of the benchmark name and shape every parameter as the spec does (on torch's
    meta device: no weights are materialized) and count the published totals."""
    from archdsl.bench.models import by_key
    m = by_key(key)
    g = archdsl.check_file(m.path, defines=m.defines)
    with torch.device("meta"):
        module = build(key)
    ours = {k: tuple(v.type.shape) for k, v in g.params.items()}
    theirs = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert theirs == ours
    assert sum(p.numel() for p in module.parameters()) == g.param_count()
