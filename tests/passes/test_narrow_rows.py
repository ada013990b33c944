"""narrow_rows: the positions an index reads are the only ones computed, and the outputs do not change."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl import check_source
from archdsl.ir import check, print_graph
from archdsl.passes import PassContext, all_passes, optimize
from archdsl.types import DType, dim_size

from .helpers import OPSET, assert_close, random_weights, run

CTX = PassContext(opset=OPSET)
PASS = next(p for p in all_passes() if p.name == "narrow_rows")

VIT = """
block encoder(x) {
    h = x -> layernorm as ln_1 -> multihead_attention(8, 2) as attn
    x = x + h
    return x + (x -> layernorm as ln_2 -> linear(16) as fc1 -> gelu -> linear(8) as fc2)
}
model m(x: float32[B, T, 8]) -> y {
    h = x -> encoder as e0 -> encoder as e1 -> layernorm as ln
    y = h[:, 0] -> linear(3) as head
}"""

BERT_POOLER = """
block heads(x) {
    b, t, c = x.shape
    return x -> reshape([b, t, 2, c // 2]) -> permute([0, 2, 1, 3])
}
model m(x: float32[B, T, 8], keep: float32[B, T]) -> y {
    b, t, c = x.shape
    mask = (1.0 - keep) * -10000.0 -> unsqueeze(1) -> unsqueeze(1)
    q = x -> linear(8) as q -> heads
    k = x -> linear(8) as k -> heads
    v = x -> linear(8) as v -> heads
    a = q @ k.T / 2.0 + mask -> softmax -> dropout(0.1)
    h = a @ v -> permute([0, 2, 1, 3]) -> reshape([b, t, c]) -> linear(8) as out
    h = x + h -> layernorm as ln
    y = h[:, 0] -> linear(8) as pooler -> tanh
}"""


def _feeds(g, t: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for v in g.inputs:
        shape = [dim_size(d, {"B": 2, "T": t}) for d in v.type.shape]
        out[v.name] = (rng.integers(0, 2, shape).astype(np.float32) if v.name == "keep"
                       else rng.random(shape) < 0.3 if v.type.dtype is DType.bool  # masks
                       else rng.standard_normal(shape).astype(np.float32))
    return out


def _same_outputs(src: str, level_pass=None, lengths=(1, 3, 6)):
    """The graph before and after (the pass alone, or -O2), and their outputs agreeing at several lengths."""
    g = check_source(src, file="case.arch")
    weights = random_weights(g)
    before = {t: run(g, _feeds(g, t), weights) for t in lengths}
    if level_pass is None:
        assert PASS.fn(g, CTX)
    else:
        optimize(g, level_pass, ctx=CTX, verify=True)
    check(g)
    for t in lengths:
        assert_close(before[t], run(g, _feeds(g, t), weights))
    return g


def _shapes(g, op: str) -> list[str]:
    return [str(n.outputs[0].type) for n in g.nodes if n.op == op]


def test_vit_readout_runs_the_last_block_on_the_class_token_only():
    g = _same_outputs(VIT)
    assert _shapes(g, "multihead_attention") == ["float32[B, T, 8]", "float32[B, 1, 8]"]
    assert _shapes(g, "linear")[-3:] == ["float32[B, 1, 16]", "float32[B, 1, 8]", "float32[B, 3]"]
    last = [n for n in g.nodes if n.op == "multihead_attention"][-1]
    q, k, v = last.inputs[:3]
    assert q.type.shape[1] == 1 and k is v and str(k.type) == "float32[B, T, 8]"  # cross form: all keys
    assert not PASS.fn(g, CTX)  # idempotent


def test_vit_readout_at_o2_with_the_rest_of_the_pipeline():
    g = _same_outputs(VIT, level_pass=2)
    assert "float32[B, 1, 16]" in _shapes(g, "matmul") + _shapes(g, "add")


def test_decomposed_attention_pooler_narrows_the_query_rows():
    """BERT's pooler alone: through the output projection, the heads' permutes and reshapes, softmax over
    the keys and the score matmul, down to the query projection; keys, values and the mask stay whole."""
    g = _same_outputs(BERT_POOLER)
    linears = {n.name: str(n.outputs[0].type) for n in g.nodes if n.op == "linear"}
    assert linears == {"q": "float32[B, 1, 8]", "k": "float32[B, T, 8]", "v": "float32[B, T, 8]",
                       "out": "float32[B, 1, 8]", "pooler": "float32[B, 8]"}
    assert _shapes(g, "softmax") == ["float32[B, 2, 1, T]"]


DEIT = VIT.replace("""    y = h[:, 0] -> linear(3) as head
}""", """    y = (h[:, 0] -> linear(3) as head) + (h[:, 1] -> linear(3) as head_dist)
}""")


def test_deit_two_tokens_run_the_last_block_on_both_only():
    """Uses of several positions of one axis narrow to the span that covers them; each then takes its own."""
    g = _same_outputs(DEIT, lengths=(2, 3, 6))
    assert _shapes(g, "multihead_attention") == ["float32[B, T, 8]", "float32[B, 2, 8]"]
    assert _shapes(g, "linear")[-4:] == ["float32[B, 2, 16]", "float32[B, 2, 8]", "float32[B, 3]", "float32[B, 3]"]
    assert not PASS.fn(g, CTX)  # idempotent: the cover is now the whole axis


@pytest.mark.parametrize("reads, kept", [
    ("h[:, 1] + h[:, 3]", "float32[B, 3, 4]"),  # positions 1..3 cover both
    ("h[:, 2:4] + h[:, 3:5]", "float32[B, 3, 4]"),
    ("h[:, 1] + h[:, 1:3][:, 0]", "float32[B, 2, 4]"),
    ("h[:, 0] + h[:, 1] * 2.0", "float32[B, 2, 4]"),  # on a symbolic axis too (T below 2 fails either way)
    ("(h -> relu)[:, 0] + h[:, 2]", "float32[B, 3, 4]"),  # a narrowed node reads its positions of the cover
    ("h[:, 0] + h[:, 5]", None),  # the cover is the whole axis: nothing to save
    ("h[:, 0] + h[:, -1]", None),  # counted from the end of a symbolic axis
    ("h[:, 1] * h[:, -2]", None),  # the same with a start past 0 (the cover once took the -2 as a start)
    ("concat([h[:, 0], h[:, :, 1]], axis=1)", None),  # two axes
])
def test_the_cover_of_several_reads(reads, kept):
    src = f"""
model m(x: float32[B, {"T" if ", -" in reads or "* 2.0" in reads else 6}, 4]) -> y {{
    h = x -> linear(4) as fc -> relu
    y = {reads}
}}"""
    if kept is None:
        g = check_source(src, file="case.arch")
        assert not PASS.fn(g, CTX)
        return
    g = _same_outputs(src, lengths=(2, 3, 6) if "* 2.0" in reads else (6,))
    assert _shapes(g, "linear") == [kept]


@pytest.mark.parametrize("index, kept", [("-1", "float32[B, 1, 16]"), ("2", "float32[B, 1, 16]"),
                                         ("1:", "float32[B, (T-1), 16]")])
def test_ints_and_slices_of_a_symbolic_axis(index, kept):
    src = f"""
model m(x: float32[B, T, 8]) -> y {{
    y = (x -> linear(16) as fc -> gelu)[:, {index}] * 2.0
}}"""
    lengths = (3, 6) if index == "2" else (1, 3, 6) if index == "-1" else (2, 5)
    g = _same_outputs(src, lengths=lengths)
    assert _shapes(g, "linear") == [kept]
    cut = [n for n in g.nodes if n.name.endswith(".rows")]  # the narrowing, now before the linear
    assert cut and str(cut[-1].outputs[0].type) == kept.replace("16]", "8]")


@pytest.mark.parametrize("index", [":-1", "1:-1", "-2:", "-3:-1"])
def test_slices_from_the_end_of_a_symbolic_axis_stay_whole_and_agree(index):
    """Bounds from the end of a symbolic T (T-1 long, or 2 long assuming T >= 2): -O2 gives the -O0 outputs;
    narrow_rows leaves them alone (a slice typed 2 long is shorter when T is, as x[:, 0:4] is)."""
    g = _same_outputs(f"""
model m(x: float32[B, T, 8]) -> y {{
    y = (x -> linear(16) as fc -> gelu)[:, {index}] * 2.0
}}""", level_pass=2, lengths=(3, 6))
    assert not [n for n in g.nodes if n.name.endswith(".rows")]


def test_a_static_slice_through_attention():
    g = _same_outputs("""
model m(x: float32[B, 6, 8]) -> y {
    y = (x -> multihead_attention(8, 2) as a -> gelu)[:, 1:4]
}""", lengths=(6,))
    assert _shapes(g, "multihead_attention") == ["float32[B, 3, 8]"]


def test_a_static_axis_from_the_end():
    g = _same_outputs("""
model m(x: float32[2, 5, 8]) -> y {
    y = (x -> layernorm as ln -> linear(4) as fc)[:, -2]
}""", lengths=(5,))
    assert _shapes(g, "linear") == ["float32[2, 1, 4]"]
    assert _shapes(g, "getitem") == ["float32[2, 1, 8]"]


@pytest.mark.parametrize("src", [
    # causal attention: a middle query's position decides which keys it sees
    """model m(x: float32[B, T, 8]) -> y { y = (x -> multihead_attention(8, 2, causal=true) as a)[:, 1] }""",
    """model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4]) -> y {
       y = sdpa(q, k, k, causal=true)[:, :, 1] }""",
    # the last row of a causal attention whose keys are not its queries
    """model m(q: float32[B, 2, T, 4], k: float32[B, 2, S, 4]) -> y {
       y = sdpa(q, k, k, causal=true)[:, :, -1] }""",
    # causal_mask is bottom-right aligned: the first row of scores is masked differently when alone
    """model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4]) -> y {
       y = (q @ k.T -> causal_mask)[:, :, 0] }""",
    # the whole value is an output too
    """model m(x: float32[B, T, 8]) -> (y, h) { h = x -> linear(8) as fc
       y = h[:, 0] }""",
    # the index picks features, which a linear mixes
    """model m(x: float32[B, T, 8]) -> y { y = (x -> linear(8) as fc)[:, :, 0] }""",
    # softmax along the indexed axis
    """model m(x: float32[B, T, 8]) -> y { y = (x -> softmax(axis=1))[:, 0] }""",
    # layernorm over the indexed axis
    """model m(x: float32[B, 4, 8]) -> y { y = (x -> layernorm(normalized_shape=[4, 8]) as ln)[:, 0] }""",
    # a convolution mixes neighbouring positions
    """model m(x: float32[B, 3, 8, 8]) -> y { y = (x -> conv2d(4, 3, padding=1) as c)[:, :, 0] }""",
    # the whole axis: nothing to save
    """model m(x: float32[B, 1, 8]) -> y { y = (x -> linear(8) as fc)[:, 0] }""",
    # a slice with a stop on a symbolic axis: typed 4 long, but shorter where T < 4 (Slice clamps)
    """model m(x: float32[B, T, 8]) -> y { b, t, c = x.shape
       y = (x -> linear(8) as fc -> reshape([b, t, 2, 4]) -> softmax)[:, 0:4] }""",
    """model m(q: float32[B, 2, T, 4], k: float32[B, 2, 6, 4]) -> y { y = sdpa(q, k, k, causal=true)[:, :, 0:4] }""",
    # attention's query rows that can be empty at run time (onnxruntime's Attention refuses none)
    """model m(x: float32[B, T, 8]) -> y { y = (x -> multihead_attention(8, 2) as a)[:, 1:] }""",
    """model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4]) -> y { y = sdpa(q, k, k)[:, :, 3:] }""",
    # no positions at all
    """model m(x: float32[B, 5, 8]) -> y { y = (x -> linear(8) as fc)[:, 2:2] }""",
    # a step
    """model m(x: float32[B, 6, 8]) -> y { y = (x -> linear(8) as fc)[:, ::2] }""",
])
def test_leaves_alone(src):
    g = check_source(src, file="case.arch")
    before = print_graph(g)
    assert not PASS.fn(g, CTX)
    assert print_graph(g) == before


GPT_HEAD = """
model m(x: float32[B, T, 8]) -> y {
    b, t, c = x.shape
    h = x -> layernorm as ln_1
    q = h -> linear(8) as q -> reshape([b, t, 2, 4]) -> permute([0, 2, 1, 3])
    k = h -> linear(8) as k -> reshape([b, t, 2, 4]) -> permute([0, 2, 1, 3])
    a = q @ k.T / 2.0 -> causal_mask -> softmax
    h = x + (a @ k -> permute([0, 2, 1, 3]) -> reshape([b, t, c]) -> linear(8) as proj)
    y = h[:, -1] -> linear(5) as head
}"""


def test_next_token_head_through_a_causal_mask():
    """`h[:, -1]` of a GPT block: the last row of the scores keeps its (bottom-right aligned) mask."""
    g = _same_outputs(GPT_HEAD)
    assert _shapes(g, "causal_mask") == ["float32[B, 2, 1, T]"]
    assert _shapes(g, "linear") == ["float32[B, 1, 8]", "float32[B, T, 8]", "float32[B, 1, 8]", "float32[B, 5]"]


@pytest.mark.parametrize("length, index, causal", [("T", "0", "true"), ("5", "0:2", "true"), ("T", "-1", "false"),
                                                   ("5", "4", "false")])
def test_causal_attention_first_rows_and_last_row(length, index, causal):
    """Top-left aligned: the first rows keep the mask; the last row of a square one sees every key."""
    g = _same_outputs(f"""
model m(x: float32[B, {length}, 8]) -> y {{
    y = (x -> multihead_attention(8, 2, causal=true) as a)[:, {index}] -> linear(3) as head
}}""", lengths=(2, 5))
    (att,) = [n for n in g.nodes if n.op == "multihead_attention"]
    assert att.attrs["causal"] is (causal == "true") and len(att.inputs) == 7  # q, k, v and 4 parameters
    assert att.inputs[0].type.shape[1] == (2 if index == "0:2" else 1)


@pytest.mark.parametrize("mask", ["bool[T, T]", "float32[T, T]", "bool[2*B, T, T]", "float32[2*B, T, T]"])
@pytest.mark.parametrize("index, level", [("0", None), ("-1", None), ("0", 2), ("-1", 2)])
def test_attention_query_rows_take_their_attn_mask_rows(mask, index, level):
    """multihead_attention's attn_mask has a row per query (dim -2): the narrowed query reads only its own,
    in the cross-attention form, beside the whole padding mask; -O2 (narrow_rows with the rest) and the
    unoptimized graph agree."""
    g = _same_outputs(f"""
model m(x: float32[B, T, 8], pad: bool[B, T], am: {mask}) -> y {{
    h = x -> multihead_attention(8, 2, key_padding_mask=pad, attn_mask=am) as attn
    y = h[:, {index}] -> linear(3) as head
}}""", level_pass=level, lengths=(2, 5))
    (att,) = [n for n in g.nodes if n.op == "multihead_attention"]
    assert att.attrs["given"] == ("key", "value", "key_padding_mask", "attn_mask")
    assert str(att.inputs[0].type) == "float32[B, 1, 8]" and str(att.inputs[1].type) == "float32[B, T, 8]"
    assert [str(d) for d in att.inputs[3].type.shape] == ["B", "T"]
    assert [str(d) for d in att.inputs[4].type.shape][-2:] == ["1", "T"]


@pytest.mark.parametrize("index", ["0", "-1", "2"])
def test_sdpa_query_rows_with_a_mask_over_queries(index):
    g = _same_outputs(f"""
model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4], bias: float32[T, T]) -> y {{
    y = sdpa(q, k, k, mask=bias)[:, :, {index}] -> relu
}}""", lengths=(3, 6))
    (att,) = [n for n in g.nodes if n.op == "scaled_dot_product_attention"]
    assert att.inputs[0].type.shape[2] == 1 and str(att.inputs[1].type) == "float32[B, 2, T, 4]"
    assert [str(d) for d in att.inputs[3].type.shape] == ["1", "T"]  # the mask's rows too


def test_sdpa_last_row_of_causal_attention_drops_the_mask():
    g = _same_outputs("""
model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4]) -> y {
    y = sdpa(q, k, k, causal=true)[:, :, -1]
}""")
    (att,) = [n for n in g.nodes if n.op == "scaled_dot_product_attention"]
    assert att.attrs["causal"] is False and str(att.outputs[0].type) == "float32[B, 2, 1, 4]"


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_a_train_steps_forward_keeps_active_dropout_whole(p):
    """Before autodiff, on a forward graph in training mode: a dropout (or attention dropout) that draws a
    mask is not narrowed, or it would draw other numbers; one that draws none is. Inference narrows both."""
    assert PASS.in_train_steps
    src = f"""
model m(x: float32[B, T, 8]) -> y {{
    h = x -> multihead_attention(8, 2, dropout={p}) as attn -> dropout({p}) -> linear(8) as fc
    y = h[:, 0]
}}"""
    for inference in (True, False):
        g = check_source(src, file="case.arch")
        assert optimize(g, 2, ctx=PassContext(opset=OPSET, inference=inference, train_forward=True))[0].changed
        rows = {n.op: str(n.outputs[0].type) for n in g.nodes}
        assert rows["linear"] == "float32[B, 1, 8]"
        narrowed = inference or p == 0.0
        assert rows["dropout"] == ("float32[B, 1, 8]" if narrowed else "float32[B, T, 8]")
        assert rows["multihead_attention"] == ("float32[B, 1, 8]" if narrowed else "float32[B, T, 8]")


@pytest.mark.parametrize("step", ["rows", "rows_end", "cls_attention", "two_rows"])
def test_the_random_graphs_give_it_work(step):
    """The property tests (test_properties.py) reach this pass through these generator steps."""
    from .random_graphs import build
    g = build([step], False).g
    assert PASS.fn(g, CTX)
    check(g)


def test_decomposed_attention_pooler_at_o2():
    """With the rest of the pipeline: fuse_attention then sees a one-row query."""
    _same_outputs(BERT_POOLER, level_pass=2)


@pytest.mark.parametrize("index", ["[:, :, 1:]", "[1:]"])
def test_decomposed_attention_on_rows_that_can_be_empty_at_o2(index):
    """narrow_rows moves `[:, :, 1:]` onto q, then fuse_attention fuses: the query (or batch) can be empty
    at run time, which onnxruntime's Attention kernel refuses, so the fused node is decomposed (found by a
    fuzzer at opset 24)."""
    import archdsl
    from archdsl.runtime import session
    src = f"model m(q: float32[B, 2, T, 4], k: float32[B, 2, T, 4]) -> y {{ y = (softmax(q @ k.T) @ k){index} }}"
    o0 = session(archdsl.compile_source(src, opt_level=0, opset=OPSET))
    o2 = session(archdsl.compile_source(src, opt_level=2, opset=OPSET))
    rng = np.random.default_rng(0)
    for b, t in ((1, 1), (2, 1), (1, 3)):
        feeds = {n: rng.standard_normal((b, 2, t, 4)).astype(np.float32) for n in "qk"}
        assert_close(o0.run(None, feeds), o2.run(None, feeds))


def test_many_narrowed_nodes_reading_one_value():
    """`h = h + x` many times, then h[:, 0]: every add is narrowed and x's use list stays exact (erasing the
    replaced adds one at a time was quadratic in their number)."""
    g = check_source("""
model m(x: float32[B, T, 4]) -> y {
    h = x
    repeat 50 as i { h = h + x }
    y = h[:, 0]
}""", file="case.arch")
    (x,) = g.inputs
    weights = random_weights(g)
    before = run(g, _feeds(g, 3), weights)
    assert PASS.fn(g, CTX)
    check(g)
    assert_close(before, run(g, _feeds(g, 3), weights))
    assert _shapes(g, "add") == ["float32[B, 1, 4]"] * 50
    assert sorted(id(n) for n in x.uses) == sorted(id(n) for n in g.nodes for v in n.inputs if v is x)


def test_leaves_alone_a_layernorm_without_weights_over_the_indexed_axis():
    """Its shape rule takes any length, so no weight gives the normalized length away: narrowing the columns
    would normalize over 2 elements (mutpasses2 hunt, N6: a mutant that did so passed the suite)."""
    g = check_source("model m(x: float32[B, T, 8]) -> y { y = (x -> layernorm(elementwise_affine=false))[:, :, 0:2] }",
                     file="case.arch")
    before = print_graph(g)
    assert not PASS.fn(g, CTX)
    assert print_graph(g) == before


def test_a_batch_axis_of_a_matmul_narrows_both_operands():
    """(a @ b)[1:2] over a batch axis both operands have (mutpasses2 hunt, N19: a mutant left it whole)."""
    g = check_source("model m(a: float32[4, 3, 5], b: float32[4, 5, 6]) -> y { y = (a @ b)[1:2] }", file="case.arch")
    assert PASS.fn(g, CTX)
    (mm,) = [n for n in g.nodes if n.op == "matmul"]
    assert [str(v.type) for v in mm.inputs] == ["float32[1, 3, 5]", "float32[1, 5, 6]"]
