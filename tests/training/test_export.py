"""training/export.py: the train step's state inputs and metadata as written (mutruntime hunt: each test failed
on a change the suite let by)."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from archdsl.cli import main
from archdsl.training import expose_initializers


def test_a_random_call_the_optimizer_drops_leaves_no_seed_input(tmp_path, capsys):
    """randn_like read by nothing: -O drops it and the step's seed with it; keeping 'seed' in the state inputs
    was 'internal: optimizing the train step removed the state input' (E04)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 8]) -> y {\n    n = randn_like(x)\n    y = x -> linear(2) as out\n}\n")
    assert main(["build", str(spec), "--train", "--loss", "mse", "-o", str(tmp_path / "s.onnx")]) == 0
    assert "seed" not in {i.name for i in onnx.load(str(tmp_path / "s.onnx")).graph.input}


def test_only_a_cross_entropy_step_records_its_labels_as_class_indices(tmp_path, capsys):
    """An mse step's float labels are no class indices below the output's size: archdsl.int_inputs recorded
    them as {low 0, high 2} (E05)."""
    spec = tmp_path / "m.arch"
    spec.write_text("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(2) as fc\n}\n")
    for loss, want in (("mse", None), ("cross_entropy", {"low": 0, "high": 2})):
        out = tmp_path / f"{loss}.onnx"
        assert main(["build", str(spec), "--train", "--loss", loss, "-o", str(out)]) == 0
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(meta.get("archdsl.int_inputs", "{}")).get("labels") == want


def test_exposing_an_initializer_that_is_an_input_already_adds_no_second():
    """E01: a second input of one name is a model onnxruntime refuses."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    g = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g",
                          [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [w])
    m = helper.make_model(g)
    expose_initializers(m, ["w"])
    assert [i.name for i in m.graph.input] == ["w"]
