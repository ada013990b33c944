"""Golden printed IR before and after each pass on small specs (`archdsl.ir.print_graph`).
Regenerate after an intended change with ARCHDSL_UPDATE_GOLDEN=1 and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archdsl import check_source
from archdsl.ir import check, print_graph
from archdsl.passes import PassContext, all_passes

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "dead_code": """
model m(x: float32[B, 8]) -> y {
    unused = x -> linear(4) as side -> relu
    y = x -> linear(2) as head
}""",
    "cse": """
model m(x: float32[B, 8]) -> y {
    a = x -> tanh
    b = x -> tanh
    y = a * 2.0 + b * 2.0
}""",
    "fold_constants": """
model m(x: float32[3, 5]) -> y {
    p = positions(x) -> cast("float32")
    y = x + p * 2.0
}""",
    "remove_noops": """
model m(x: float32[B, 4, 6]) -> y {
    y = x -> dropout(0.5) -> reshape([B, 4, 6]) -> permute([0, 1, 2])
    y = y * 1.0 - 0.0 -> relu
}""",
    "compose_layout": """
model m(x: float32[B, 4, 6, 8]) -> (y, z) {
    y = x -> permute([0, 2, 3, 1]) -> permute([0, 3, 1, 2]) -> relu
    z = x -> flatten(2) -> reshape([B, 24, 8]) -> reshape([B, 4, 48])
}""",
    "fold_batchnorm": """
model m(x: float32[B, 3, 8, 8]) -> y {
    y = x -> conv2d(4, 3, padding=1, bias=false) as conv -> batchnorm as bn -> relu
         -> global_avgpool -> flatten -> linear(5) as fc -> batchnorm as bn2
}""",
    "pretranspose_linear": """
model m(x: float32[B, T, 8]) -> y {
    y = x -> linear(4) as proj -> linear(2, bias=false) as out
}""",
    "fuse_gemm": """
model m(x: float32[B, 8]) -> y {
    w = parameter([8, 4], init="normal", std=0.1) as w
    b = parameter([4], init="zeros") as b
    y = x @ w + b -> relu
}""",
    "narrow_rows": """
model m(x: float32[B, T, 8]) -> y {
    h = x -> layernorm as ln -> multihead_attention(8, 2) as attn
    y = (x + h -> linear(4) as fc -> gelu)[:, 0]
}""",
    "expand_channel_scale": """
model m(x: float32[B, 3, 8, 8]) -> y {
    h = x -> conv2d(16, 3, padding=1) as conv -> silu
    s = h -> global_avgpool -> conv2d(4, 1) as fc1 -> relu -> conv2d(16, 1) as fc2 -> sigmoid
    y = h * s -> conv2d(8, 1) as proj
}""",
    "fuse_attention": """
model m(q: float32[B, 2, T, 8], k: float32[B, 2, T, 8], v: float32[B, 2, T, 8]) -> y {
    att = q @ k.T / sqrt(8) -> causal_mask -> softmax -> dropout(0.1)
    y = att @ v
}""",
}


def _golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("ARCHDSL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}; run with ARCHDSL_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_every_pass_has_a_golden_case():
    assert {p.name for p in all_passes()} <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_before_after(name):
    p = next(p for p in all_passes() if p.name == name)
    g = check_source(CASES[name], file="case.arch")
    before = print_graph(g)
    if name == "fuse_attention":  # the primitives' dropout goes first (remove_noops), as in the pipeline
        next(q for q in all_passes() if q.name == "remove_noops").fn(g, PassContext())
    assert p.fn(g, PassContext(opset=24))
    check(g)
    after = print_graph(g)
    assert after != before
    _golden(name, f"# before {name}\n{before}# after {name}\n{after}")
