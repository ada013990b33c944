"""torch's and numpy's names for one argument: an op that takes `axis` takes `dim=` for it and the other way
round, and `keepdim=` / `keepdims=` likewise, and sdpa F.scaled_dot_product_attention's `attn_mask=` and
`is_causal=`; both at once is an error naming both."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import ArchTypeError


def _nodes(stmts: str, inputs: str = "x: float32[2, 6, 4]"):
    g = archdsl.check_source(f"model m({inputs}) -> y {{\n{stmts}\n}}\n")
    return g, [(n.op, dict(n.attrs)) for n in g.nodes if not n.op.startswith("const")]


@pytest.mark.parametrize("synonym, own", [
    ("y = softmax(x, dim=1)", "y = softmax(x, axis=1)"),
    ("y = log_softmax(x, dim=1)", "y = log_softmax(x, axis=1)"),
    ("y = concat([x, x], dim=2)", "y = concat([x, x], axis=2)"),
    ("y = cat([x, x], dim=0)", "y = cat([x, x], axis=0)"),
    ("a, b = split(x, 3, dim=1)\n y = a", "a, b = split(x, 3, axis=1)\n y = a"),
    ("y = take(x, 1, dim=2)", "y = take(x, 1, axis=2)"),
    ("y = sum(x, axis=1)", "y = sum(x, dim=1)"),
    ("y = mean(x, axis=[1, 2], keepdims=true)", "y = mean(x, dim=[1, 2], keepdim=true)"),
    ("y = stack([x, x], axis=1)", "y = stack([x, x], dim=1)"),
    ("y = amax(x, axis=2, keepdims=true)", "y = amax(x, dim=2, keepdim=true)"),
    ("y = global_avgpool(x, keepdim=false)", "y = global_avgpool(x, keepdims=false)"),
    ("y = sdpa(x, x, x, is_causal=true)", "y = sdpa(x, x, x, causal=true)"),
    ("y = scaled_dot_product_attention(x, x, x, attn_mask=eq(x[0, :, :1], x[0, :, :1].T))",
     "y = scaled_dot_product_attention(x, x, x, mask=eq(x[0, :, :1], x[0, :, :1].T))"),
    ("y = multihead_attention(x, embed_dim=4, num_heads=2, is_causal=true) as a",
     "y = multihead_attention(x, embed_dim=4, num_heads=2, causal=true) as a"),
])
def test_the_synonym_is_the_same_argument(synonym, own):
    g1, n1 = _nodes(synonym)
    g2, n2 = _nodes(own)
    assert n1 == n2
    assert g1.outputs[0][1].type == g2.outputs[0][1].type


def test_cross_entropy_takes_dim_for_its_class_axis():
    inputs = "x: float32[2, 5, 3], t: int64[2, 3]"
    _, n1 = _nodes("y = cross_entropy(x, t, dim=1)", inputs)
    _, n2 = _nodes("y = cross_entropy(x, t, axis=1)", inputs)
    assert n1 == n2 and n1[-1][1]["axis"] == 1


@pytest.mark.parametrize("call, words", [
    ("softmax(x, dim=-1, axis=-1)", "softmax(): 'dim' and 'axis' are one argument"),
    ("sum(x, axis=1, dim=1)", "sum(): 'axis' and 'dim' are one argument"),
    ("mean(x, 1, keepdim=true, keepdims=true)", "mean(): 'keepdims' and 'keepdim' are one argument (two names for "
     "it, numpy's and archdsl's)"),
    ("scaled_dot_product_attention(x, x, x, attn_mask=x, mask=x)",
     "scaled_dot_product_attention(): 'attn_mask' and 'mask' are one argument (two names for it, torch's and "
     "archdsl's)"),
    ("softmax(x, 1, dim=1)", "softmax(): argument 'axis' given twice (positionally and as dim=)"),
])
def test_both_names_at_once_is_an_error_naming_both(call, words):
    with pytest.raises(ArchTypeError, match=r"^<string>:\d+:\d+: " + words.replace("(", r"\(").replace(")", r"\)")):
        _nodes(f"y = {call}")


def test_ord_is_a_synonym_for_norm_alone():
    """numpy's `ord` names norm's p; on another op with a p (dropout's rate) it is no argument."""
    with pytest.raises(ArchTypeError, match="dropout\\(\\) has no argument 'ord'"):
        _nodes("y = dropout(x, ord=0.5)")


def test_a_dim_that_is_not_an_axis_takes_no_synonym():
    """sinusoidal_embedding's `dim` is the embedding width: axis= is no name for it."""
    with pytest.raises(ArchTypeError, match="has no argument 'axis'"):
        _nodes("y = sinusoidal_embedding(t, axis=8)", "t: float32[2]")
