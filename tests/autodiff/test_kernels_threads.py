"""Gradient kernels that scatter-add (autodiff/kernels.py) give exact sums with several threads."""

from __future__ import annotations

import numpy as np

from archdsl.types import TensorType


def test_embedding_gradient_sums_repeated_ids_with_several_threads():
    """Many rows hitting few ids, run with 4 threads: every repeated id's rows are summed (onnxruntime's
    ScatterND add, used before, lost updates here)."""
    import onnxruntime as ort

    from archdsl.types import DType as D

    from .gradcheck import _build
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 8, (64, 64)).astype(np.int64)
    r = rng.standard_normal((64, 64, 256))
    types = [TensorType(D.int64, ids.shape), TensorType(D.float32, (8, 256))]
    model, _ = _build("embedding", types, {}, D.float32, [r], [1], 21)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 4
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    want = np.zeros((8, 256))
    np.add.at(want, ids.reshape(-1), r.reshape(-1, 256))
    for _ in range(5):
        grad = sess.run(None, {"in0": ids, "in1": np.zeros((8, 256), np.float32)})[1]
        np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-3)
