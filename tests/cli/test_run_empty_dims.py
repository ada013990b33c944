"""A dim that a run's sizes make 0 where the op needs elements (a conv's or pool's spatial dims, argmax's dim) is
refused at the op with its own check's words: the spec keeps a size of 0 symbolic (a batch of 0 runs), and
onnxruntime failed inside the node with its own text, or computed what torch refuses (a transposed conv a border
of bias, amax -inf, mean 0)."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main


@pytest.mark.parametrize("op", ["conv2d(x, 4, 3, padding=1)", "conv_transpose2d(x, 4, 3)", "maxpool2d(x, 3, padding=1)",
                                "unfold(x, 3, padding=1)", "conv(x, parameter([4, 3, 3, 3]), padding=1)",
                                # review61: the empty checks of pools, resizes and reductions at a symbolic 0
                                "global_maxpool(x)", "adaptive_avgpool2d(x, 1)", "upsample(x, scale_factor=2)",
                                "argmax(x, dim=2)", "amax(x, dim=2)", "mean(x, dim=2)",
                                # review70: onnxruntime's LayerNormalization and edge/wrap Pad failed in the node
                                "group_norm(x, 3)", "instance_norm(x)", 'pad(x, [1, 1, 1, 1], mode="replicate")',
                                'pad(x, [1, 1, 1, 1], mode="circular")', 'pad(x, [0, 0, 1, 1], mode="reflect")'])
def test_an_empty_dim_where_the_op_needs_elements_is_a_diagnostic_at_the_op(tmp_path, capsys, op):
    spec = tmp_path / "win.arch"
    spec.write_text(f"model m(x: float32[B, 3, H, W]) -> y {{\n    y = {op}\n}}\n")
    empty = tmp_path / "x.npy"
    np.save(empty, np.zeros((1, 3, 0, 5), np.float32))
    assert main(["run", str(spec), "--input", f"x={empty}", "--repeat", "1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    name = op.split("(")[0]
    assert f"win.arch:2:9: error: {name}: " in err and "(H comes out 0 at B=1, H=0, W=5)" in err, err
    np.save(empty, np.zeros((0, 3, 4, 5), np.float32))  # a batch of 0 runs
    assert main(["run", str(spec), "--input", f"x={empty}", "--repeat", "1"]) == 0



def test_a_resize_of_an_empty_slice_is_refused():
    """onnxruntime gave an empty map where torch refuses ("Input and output sizes should be greater than 0")."""
    import archdsl
    with pytest.raises(archdsl.ArchError, match=r"upsample: \[B, 3, 0, 8\] is empty \(an empty slice\?\)"):
        archdsl.check_source("model m(x: float32[B, 3, 8, 8]) -> y {\n    y = upsample(x[:, :, 4:4], scale_factor=2)\n"
                             "}\n")


@pytest.mark.parametrize("body, said", [("amax(x[1:], dim=0)", "amax: dim 0 of [0, 3] is empty"),
                                        ("argmax(x[1:], dim=0)", "argmax: dim 0 of [0, 3] is empty"),
                                        ("topk(x, 2, dim=0)[0]", "topk: k=2 is larger than dim 0 of [0, 3] (0)"),
                                        ('norm(x, dim=0, p="inf")', "norm: dim 0 of [0, 3] is empty")])
def test_a_dim_a_batch_of_0_empties_is_checked_as_a_fixed_0(tmp_path, capsys, body, said):
    """x[1:] is typed (B-1), -1 at B=0 where it comes out empty: amax gave -inf and argmax onnxruntime's text;
    topk's k past a dim of 0, and the inf norm (ReduceMax of nothing), likewise (review62)."""
    spec = tmp_path / "b.arch"
    spec.write_text(f"model m(x: float32[B, 3]) -> y {{\n    y = {body}\n}}\n")
    empty = tmp_path / "x.npy"
    np.save(empty, np.zeros((0, 3), np.float32))
    assert main(["run", str(spec), "--input", f"x={empty}", "--repeat", "1"]) == 1
    assert said in " ".join(capsys.readouterr().err.split())


def test_a_circular_pad_of_a_map_with_an_empty_dim_it_does_not_pad_runs(tmp_path, capsys):
    """ONNX Pad's wrap mode failed in onnxruntime on any empty input ("Unexpected mode of 3"), an empty H beside
    a padded W and a batch of 0 too, where torch pads the empty map (review70)."""
    spec = tmp_path / "c.arch"
    spec.write_text('model m(x: float32[B, 3, H, W]) -> y {\n    y = pad(x, [1, 2], mode="circular")\n}\n')
    for shape in ((1, 3, 0, 5), (0, 3, 4, 5)):
        np.save(tmp_path / "x.npy", np.zeros(shape, np.float32))
        assert main(["run", str(spec), "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "1"]) == 0
        assert f"y: {[*shape[:3], 8]} float32  empty" in capsys.readouterr().out
