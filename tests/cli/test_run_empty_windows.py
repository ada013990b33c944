"""A conv's or pool's spatial dim that a run's sizes make 0 is refused at the op: the spec keeps a size of 0
symbolic (a batch of 0 runs), and onnxruntime failed inside the node with its own text, or, for a transposed
conv, computed a border of bias where torch refuses the input."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli import main


@pytest.mark.parametrize("op", ["conv2d(x, 4, 3, padding=1)", "conv_transpose2d(x, 4, 3)", "maxpool2d(x, 3, padding=1)",
                                "unfold(x, 3, padding=1)", "conv(x, parameter([4, 3, 3, 3]), padding=1)"])
def test_an_empty_spatial_dim_given_to_a_window_is_a_diagnostic_at_the_op(tmp_path, capsys, op):
    spec = tmp_path / "win.arch"
    spec.write_text(f"model m(x: float32[B, 3, H, W]) -> y {{\n    y = {op}\n}}\n")
    empty = tmp_path / "x.npy"
    np.save(empty, np.zeros((1, 3, 0, 5), np.float32))
    assert main(["run", str(spec), "--input", f"x={empty}", "--repeat", "1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    name = op.split("(")[0]
    assert (f"win.arch:2:9: error: {name} '{name}_0': its input float32[B, 3, H, W] has H = 0 on dim 2 at B=1, "
            "H=0, W=5: a window needs at least one element there") in err, err
    np.save(empty, np.zeros((0, 3, 4, 5), np.float32))  # a batch of 0 runs
    assert main(["run", str(spec), "--input", f"x={empty}", "--repeat", "1"]) == 0

