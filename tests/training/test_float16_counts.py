"""float16 train steps over 65,536 values or more: the count a mean divides by is inf in float16, and every
gradient came out 0 with nothing said (mean, global_avgpool, cross_entropy with and without ignore_index,
bce_with_logits); the counts are taken in float32 now."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from archdsl import runtime
from archdsl.cli import main

_W = 'w = parameter([128, 128], init="zeros", dtype="float16") as p'


@pytest.mark.parametrize("body, inputs, grad", [
    (f"{_W}\n    loss = mean(x * w)", {}, lambda x: x.sum(0) / 65536),
    (f"{_W}\n    loss = mean(global_avgpool(reshape(x * w, [1, 1, 512, 128])))", {}, lambda x: x.sum(0) / 65536),
    (f"{_W}\n    loss = bce_with_logits(x * w, x * 0.0)", {}, lambda x: 0.5 * x.sum(0) / 65536),
    (f"{_W}\n    z = unsqueeze(x * w, 3)\n    loss = cross_entropy(concat([z, z * 0.0], -1), y)",
     {"y": np.zeros((4, 128, 128), np.int64)}, lambda x: -0.5 * x.sum(0) / 65536),
    (f"{_W}\n    z = unsqueeze(x * w, 3)\n    loss = cross_entropy(concat([z, z * 0.0], -1), y, ignore_index=-1)",
     {"y": np.zeros((4, 128, 128), np.int64)}, lambda x: -0.5 * x.sum(0) / 65536),
])
def test_a_float16_mean_over_65536_values_has_its_gradient(tmp_path, body, inputs, grad):
    spec = tmp_path / "m.arch"
    ins = "x: float16[4, 128, 128]" + (", y: int64[4, 128, 128]" if inputs else "")
    spec.write_text(f"model m({ins}) -> loss {{\n    {body}\n}}\n")
    out = tmp_path / "m.onnx"
    assert main(["build", str(spec), "--train", "--loss", "model", "--optimizer", "sgd", "--lr", "1", "-o",
                 str(out)]) == 0
    sess = runtime.session(out, "cpu")
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    x = np.random.default_rng(0).standard_normal((4, 128, 128)).astype(np.float16)
    feeds = {i.name: x if i.name == "x" else inputs[i.name] if i.name in inputs else init[i.name]
             for i in sess.get_inputs()}
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    g = -got["p.new"].astype(np.float64)
    want = grad(x.astype(np.float64))
    assert np.count_nonzero(g) > 0.99 * g.size
    np.testing.assert_allclose(g, want, rtol=2e-2, atol=1e-7)
