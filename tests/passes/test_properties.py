"""Property tests: on random valid graphs every pass keeps the outputs (onnxruntime, random weights
including BatchNorm statistics), keeps the graph valid for the checker, and is idempotent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

from archdsl.ir import check
from archdsl.passes import PassContext, all_passes, optimize
from archdsl.passes.remove_noops import _identity_of

from .helpers import OPSET, assert_close, feeds_for, random_weights, run
from .random_graphs import build, recipes

CTX = PassContext(opset=OPSET)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", [p.name for p in all_passes()])
@SETTINGS
@given(recipe=recipes)
def test_pass_keeps_outputs_and_is_idempotent(name, recipe):
    p = next(p for p in all_passes() if p.name == name)
    g = build(*recipe).g
    weights, feeds = random_weights(g), feeds_for(g)
    before = run(g, feeds, weights)
    p.fn(g, CTX)
    check(g)
    assert_close(before, run(g, feeds, weights))
    assert not p.fn(g, CTX), f"{name} changed the graph on a second run"


@SETTINGS
@given(recipe=recipes)
@example(recipe=(["linear3d"], False))  # the linear is gone (matmul + add): bound by the linears before
def test_pipeline_keeps_outputs_and_reaches_a_fixpoint(recipe):
    g = build(*recipe).g
    weights, feeds = random_weights(g), feeds_for(g)
    before = run(g, feeds, weights)
    n0, linears = len(g.nodes), sum(n.op == "linear" for n in g.nodes)
    optimize(g, 2, ctx=CTX, verify=True)
    cuts = sum(n.name.endswith(".rows") for n in g.nodes)  # narrow_rows: where a narrowed chain starts
    expands = sum(n.op == "upsample" for n in g.nodes)  # expand_channel_scale: a gate's Resize
    assert len(g.nodes) - cuts - expands <= n0 + linears  # and pretranspose_linear: linear -> matmul + add
    assert_close(before, run(g, feeds, weights))
    assert not any(s.changed for s in optimize(g, 2, ctx=CTX))


def _const_all(v, value: float) -> bool:
    return v.kind == "const" and v.data.size > 0 and bool(np.all(v.data == value))


def _plainly_identity(n) -> bool:
    """What the generator plants as a no-op, recognized independently of remove_noops: x * 1, 1 * x, x / 1,
    x - 0 (not x + 0.0: -0.0 + 0.0 is +0.0), layout ops that change nothing, a cast or expand to the same type."""
    out, x = n.outputs[0].type if n.outputs else None, n.inputs[0] if n.inputs else None
    if n.op in ("mul", "div", "sub") and len(n.inputs) == 2:
        one = 0.0 if n.op == "sub" else 1.0
        if _const_all(n.inputs[1], one) and n.inputs[0].type == out:
            return True
        return n.op == "mul" and _const_all(n.inputs[0], 1.0) and n.inputs[1].type == out
    if n.op == "permute":
        return list(d % x.type.rank for d in n.attrs["dims"]) == list(range(x.type.rank))
    if n.op == "transpose":
        return n.attrs["dim0"] % x.type.rank == n.attrs["dim1"] % x.type.rank
    if n.op in ("reshape", "cast", "expand"):
        return x.type == out
    return False


@SETTINGS
@given(recipe=recipes)
@example(recipe=(["conv_bn", "branch", "bn"], False))  # the second BN reads a conv output used twice
def test_o2_removes_every_planted_noop(recipe):
    """What the generator plants (dropout, x*1, x+0, cancelling layouts, BatchNorm after conv) is gone."""
    g = build(*recipe).g
    optimize(g, 2, ctx=CTX)
    ops = [n.op for n in g.nodes]
    assert "dropout" not in ops
    outputs = {id(v) for _, v in g.outputs}
    assert not any(n.op == "batchnorm" and n.inputs[0].producer is not None
                   and n.inputs[0].producer.op in ("conv2d", "linear", "conv_transpose2d")
                   and len(n.inputs[0].uses) == 1 and id(n.inputs[0]) not in outputs  # else it cannot fold
                   for n in g.nodes)
    assert not any(_identity_of(n, CTX) is not None for n in g.nodes)
    assert not any(_plainly_identity(n) for n in g.nodes)  # the same, judged without the pass's own predicate
    consts = {id(c) for c in g.consts}
    assert not any(all(id(v) in consts for v in n.inputs) for n in g.nodes), "a constant subgraph was left"
