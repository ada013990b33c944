"""Which fused ONNX ops onnxruntime's CPU runs as one kernel, probed at build time (ops/_kernels.py): the tests
of the ops that use the probe computed their expectations with it, so a probe that always said no (or yes)
passed them. Here the answer for the onnxruntime in use is written down (measured, onnxruntime 1.32 CPU)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

import archdsl
from archdsl import runtime
from archdsl.ops._kernels import runs_natively

pytestmark = pytest.mark.skipif(not ort.__version__.startswith("1.32."),
                                reason=f"the table is onnxruntime 1.32's, this is {ort.__version__}")


def test_attention_runs_natively_at_23_and_24_only():
    assert {o: runs_natively("Attention", o) for o in range(17, runtime.newest_opset() + 1)} == \
        {o: o in (23, 24) for o in range(17, runtime.newest_opset() + 1)}


@pytest.mark.parametrize("opset,fused", [(22, False), (23, True), (24, True), (25, False), (None, False)])
def test_sdpa_is_one_attention_node_where_the_kernel_is(opset, fused):
    src = ("model m(q: float32[B, 2, 8, 4], k: float32[B, 2, 8, 4], v: float32[B, 2, 8, 4]) -> y {\n"
           "    y = scaled_dot_product_attention(q, k, v, causal=true)\n}\n")
    ops = [n.op_type for n in archdsl.compile_source(src, opset=opset).graph.node]
    assert ("Attention" in ops) == fused
