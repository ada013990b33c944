"""The benchmark's workload: five published architectures as archdsl specs and as plain PyTorch
modules (archdsl/bench/torch_models.py, state_dict keys equal to the specs' parameter names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..files import specs_dir

__all__ = ["CUDA_VARIANTS", "MODELS", "SPECS_DIR", "BenchModel", "example_inputs", "torch_module"]

SPECS_DIR = specs_dir()
SEQ = 128


@dataclass(frozen=True)
class BenchModel:
    key: str
    title: str
    spec: str
    defines: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)          # sizes of symbolic dims other than the batch
    int_high: dict = field(default_factory=dict)      # upper bound of random integer inputs (vocabularies)

    @property
    def path(self) -> Path:
        return SPECS_DIR / self.spec


MODELS = [
    BenchModel("resnet50", "ResNet-50", "resnet.arch", {"depth": 50}),
    BenchModel("efficientnet_b0", "EfficientNet-B0", "efficientnet.arch", {"variant": "b0"}),
    BenchModel("vit_b16", "ViT-B/16", "vit.arch", {}),
    BenchModel("bert_base", f"BERT-base (seq {SEQ})", "bert.arch", {"size": "base"}, {"T": SEQ},
               {"input_ids": 30522, "token_type_ids": 2, "attention_mask": 2}),
    BenchModel("gpt2_small", f"GPT-2 small (seq {SEQ})", "gpt2.arch", {"size": "small"}, {"T": SEQ},
               {"input_ids": 50257}),
]


# -O2 builds timed beside the default one on CUDA, where onnxruntime's CUDA provider differs from its CPU one;
# label -> (what it is, compile options)
CUDA_VARIANTS = {
    # MaxPool is version 22 from opset 22, and onnxruntime matches a kernel registered "from version N" to N
    # alone: its CUDA MaxPool is registered from 12, so at 22+ the node runs on the CPU (profiled on an H200,
    # onnxruntime-gpu 1.31, ResNet-50 at opset 26), with copies out of the GPU and back
    "O2@21": ("--opset 21", {"opset": 21}),
    # its Resize nodes pay off only in onnxruntime's blocked x86-64 CPU layout
    "O2-ecs": ("--disable-pass expand_channel_scale", {"disabled_passes": ("expand_channel_scale",)}),
}


def by_key(key: str) -> BenchModel:
    for m in MODELS:
        if m.key == key:
            return m
    raise KeyError(key)


def reference_module():
    """archdsl/bench/torch_models.py, or the module named by $ARCHDSL_TORCH_MODELS (your own references)."""
    import importlib
    import os
    return importlib.import_module(os.environ.get("ARCHDSL_TORCH_MODELS") or "archdsl.bench.torch_models")


def torch_module(m: BenchModel):
    """The plain-PyTorch reference (eval mode), or raise ImportError/LookupError when there is none."""
    tm = reference_module()
    for attr in ("build", "make", "get_model", "create"):
        fn = getattr(tm, attr, None)
        if callable(fn):
            try:
                mod = fn(m.key)
                return mod.eval()
            except (KeyError, ValueError, TypeError):
                pass
    for reg in ("MODELS", "REGISTRY", "FACTORIES"):
        table = getattr(tm, reg, None)
        if isinstance(table, dict) and m.key in table:
            return table[m.key]().eval()
    fn = getattr(tm, m.key, None)
    if callable(fn):
        return fn().eval()
    raise LookupError(f"the torch reference module {tm.__name__} has no model '{m.key}'")


def example_inputs(m: BenchModel, batch: int = 1) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, concrete shape, dtype) of the spec's inputs, in order, without building weights."""
    from .. import driver
    g = driver.check_file(m.path, defines=m.defines)
    out = []
    for v in g.inputs:
        shape = []
        for i, d in enumerate(v.type.shape):
            if isinstance(d, int):
                shape.append(d)
            else:
                shape.append(m.dims.get(str(d), batch if i == 0 else SEQ))
        out.append((v.name, tuple(shape), v.type.dtype.label))
    return out
