"""The value_info archdsl writes for every intermediate (symbolic dims named) is what lets onnxruntime fuse
Add + LayerNormalization into SkipLayerNormalization on BERT (README): checked on onnxruntime's own optimized
graph, with and without the value_info."""

from __future__ import annotations

from pathlib import Path

import archdsl

from ..ort_graph import ort_ops as _fused

BERT = Path(__file__).resolve().parents[2] / "specs" / "bert.arch"
SMALL = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
         "vocab_size": 100}


def test_value_info_lets_onnxruntime_fuse_skip_layer_norm():
    model = archdsl.compile_file(BERT, defines=SMALL)
    infos = {v.name: v for v in model.graph.value_info}
    assert infos and any(d.dim_param == "T" for v in infos.values() for d in v.type.tensor_type.shape.dim)
    with_info = _fused(model).count("SkipLayerNormalization")
    del model.graph.value_info[:]
    assert with_info >= 4 > _fused(model).count("SkipLayerNormalization")  # two per layer
