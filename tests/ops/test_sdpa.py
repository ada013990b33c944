"""scaled_dot_product_attention against a numpy reference at every opset its lowering differs by: the
decomposition (17, and the newest where onnxruntime has no Attention kernel: 28 on onnxruntime 1.32) and ONNX
Attention (where it has one: 23-24), with every mask shape that broadcasts to the scores, and masks that
leave a query no key (zeros at every opset)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl import runtime
from archdsl.ops._kernels import runs_natively

from .core_harness import NEWEST, SETTINGS

OPSETS = sorted({17, NEWEST} | {o for o in (23, 24) if o <= NEWEST and runs_natively("Attention", o)})
# mask dims as written in the spec: batch B, heads 2, query length T, key length S
MASKS = [None, "causal", ("B", 1, 1, "S"), (1, 1, "T", "S"), ("B", 2, "T", "S"), ("T", "S"), ("S",), (1, "S")]


def _reference(q, k, v, mask, causal):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    elif mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    dead = np.isneginf(s).all(-1, keepdims=True)  # no key to attend to: zeros (torch's F.sdpa), not NaN
    s = np.where(dead, 0.0, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.where(dead, 0.0, (p / p.sum(-1, keepdims=True)) @ v)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("mask", MASKS, ids=str)
@settings(SETTINGS, max_examples=4)
@given(boolean=st.booleans(), t=st.integers(1, 5), s=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_sdpa_matches_numpy_at_every_lowering(opset, mask, boolean, t, s, seed):
    causal = mask == "causal"
    s = t if causal else s
    dims = {"B": 3, "T": t, "S": s}
    ins = ["q: float32[B, 2, T, 8]", "k: float32[B, 2, S, 8]", "v: float32[B, 2, S, 8]"]
    arg = ", causal=true" if causal else ""
    rng = np.random.default_rng(seed)
    feeds = {n: rng.standard_normal((3, 2, dims[d], 8)).astype(np.float32) for n, d in zip("qkv", "TSS")}
    m = None
    if mask is not None and not causal:
        shape = tuple(dims.get(d, d) for d in mask)
        ins.append(f"m: {'bool' if boolean else 'float32'}[{', '.join(str(d) for d in mask)}]")
        if boolean:
            m = rng.random(shape) < 0.7
            m[..., 0] = True
        else:
            m = rng.standard_normal(shape).astype(np.float32)
        if seed % 2:  # one mask row with no key left: the queries it reaches get zeros
            m[(0,) * (m.ndim - 1)] = False if boolean else -np.inf
        feeds["m"] = m
        arg = ", mask=m"
    src = f"model a({', '.join(ins)}) -> y {{ y = sdpa(q, k, v{arg}) }}"
    model = archdsl.compile_source(src, opset=opset)
    fused = any(n.op_type == "Attention" for n in model.graph.node)
    assert fused == (opset >= 23 and runs_natively("Attention", opset)), f"opset {opset}: Attention = {fused}"
    (y,) = runtime.session(model).run(None, feeds)
    np.testing.assert_allclose(y, _reference(feeds["q"], feeds["k"], feeds["v"], m, causal), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("t, s", [(3, 5), (5, 3)])
def test_a_causal_mask_of_fixed_unequal_lengths_is_top_left_aligned(opset, t, s):
    """torch's is_causal: query i sees keys 0..i whatever the key length (bottom-right alignment, a KV cache's,
    is another mask); the symbolic case above takes T = S."""
    src = (f"model a(q: float32[1, 2, {t}, 8], k: float32[1, 2, {s}, 8]) -> y {{\n"
           "    y = sdpa(q, k, k, causal=true)\n}\n")
    rng = np.random.default_rng(t)
    q, k = (rng.standard_normal((1, 2, n, 8)).astype(np.float32) for n in (t, s))
    (y,) = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"q": q, "k": k})
    np.testing.assert_allclose(y, _reference(q, k, k, None, True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("layer", ["sdpa", "mha"])
def test_a_query_that_can_be_empty_is_decomposed(opset, layer):
    """x[:, 1:] of a one-long sequence has no rows: onnxruntime's Attention kernel refuses an empty query
    ("q_sequence_length > 0"), so a query whose length is a formula is never lowered to it."""
    if layer == "sdpa":
        src = ("model a(q: float32[B, 2, T, 8], k: float32[B, 2, S, 8]) -> y {\n"
               "    y = sdpa(q[:, :, 1:], k, k)\n}")
    else:
        src = ("model a(q: float32[B, T, 8], k: float32[B, S, 8]) -> y {\n"
               "    y = multihead_attention(q[:, 1:], key=k, value=k, embed_dim=8, num_heads=2) as att\n}")
    model = archdsl.compile_source(src, opset=opset)
    assert not any(n.op_type == "Attention" for n in model.graph.node)
    rng = np.random.default_rng(0)
    sess = runtime.session(model)
    for t in (1, 3):
        shape = (2, 2, t, 8) if layer == "sdpa" else (2, t, 8)
        q = rng.standard_normal(shape).astype(np.float32)
        k = rng.standard_normal(shape[:-2] + (4, 8)).astype(np.float32)
        (y,) = sess.run(None, {"q": q, "k": k})
        assert y.shape == shape[:-2] + (t - 1, 8)
        if layer == "sdpa":
            np.testing.assert_allclose(y, _reference(q[:, :, 1:], k, k, None, False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", OPSETS)
def test_a_mask_at_the_lowest_value_is_an_ordinary_number_at_every_opset(opset):
    """Hugging Face's padding mask is (1 - m) * finfo.min: a sequence all padding has every float32 score
    rounded to the lowest value, whose softmax is even, the mean of v (torch). onnxruntime's Attention kernel
    (opsets 23-24) gave that query zeros, as for -inf, so BERT's -O2 build there differed from -O0 by 0.74
    (valueinfo hunt)."""
    src = "model a(q: float32[B, 2, T, 8], m: float32[B, 1, 1, T]) -> y {\n    y = sdpa(q, q, q, mask=m)\n}"
    rng = np.random.default_rng(opset)
    q = rng.standard_normal((2, 2, 3, 8)).astype(np.float32)
    m = np.zeros((2, 1, 1, 3), np.float32)
    m[1] = np.finfo(np.float32).min
    m[0, ..., 2] = -np.inf  # -inf is still what it is
    (y,) = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"q": q, "m": m})
    np.testing.assert_allclose(y[1], q[1].mean(axis=-2, keepdims=True).repeat(3, -2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, _reference(q, q, q, m, False), rtol=1e-4, atol=1e-5)



@pytest.mark.parametrize("opset", OPSETS)
def test_multihead_attentions_float_mask_at_the_lowest_value_too(opset):
    """multihead_attention's own Attention kernel path took a float attn_mask as given: a query whose mask
    row is all float32's lowest got zeros at opsets 23-24, 0.32 off torch (review51, kernels hunt)."""
    src = ("model a(x: float32[B, T, 8], m: float32[T, T]) -> y {\n"
           "    y = multihead_attention(x, 8, num_heads=2, attn_mask=m) as attn\n}")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    m = np.zeros((4, 4), np.float32)
    m[1] = np.finfo(np.float32).min
    weights = {"attn.in_proj_weight": rng.standard_normal((24, 8)).astype(np.float32) * 0.3,
               "attn.in_proj_bias": np.zeros(24, np.float32), "attn.out_proj.weight": np.eye(8, dtype=np.float32),
               "attn.out_proj.bias": np.zeros(8, np.float32)}
    (y,) = runtime.session(archdsl.compile_source(src, opset=opset, weights=weights)).run(None, {"x": x, "m": m})
    v = x @ weights["attn.in_proj_weight"][16:].T  # the values, all heads side by side
    np.testing.assert_allclose(y[:, 1], v.mean(axis=1), rtol=1e-5, atol=1e-6)  # query 1: the mean of v


@pytest.mark.parametrize("opset", OPSETS)
def test_float16_attention_is_computed_as_the_decomposition_is(opset):
    """onnxruntime's Attention kernel adds a float16 mask to float16 scores (an ALiBi-like bias offset by
    -1024 was 0.29 off torch's half) and overflows past 65504 (NaN): float16 is decomposed at every opset,
    where onnxruntime computes it in float32 (kernels hunt)."""
    src = ("model a(q: float16[B, 2, T, 8], k: float16[B, 2, S, 8], m: float16[1, 1, 1, S]) -> y {\n"
           "    y = sdpa(q, k, k, mask=m)\n}")
    model = archdsl.compile_source(src, opset=opset)
    assert not any(n.op_type == "Attention" for n in model.graph.node)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 4, 8)).astype(np.float16)
    k = rng.standard_normal((1, 2, 8, 8)).astype(np.float16)
    m = (-1024 - 0.5 * np.arange(8)).astype(np.float16).reshape(1, 1, 1, 8)
    (y,) = runtime.session(model).run(None, {"q": q, "k": k, "m": m})
    want = _reference(*(a.astype(np.float64) for a in (q, k, k, m)), False)
    np.testing.assert_allclose(y.astype(np.float64), want, atol=2e-3)
    big = np.float16(300)  # a float16 scalar: numpy 1.x made q * 300 float32
    (y,) = runtime.session(model).run(None, {"q": q * big, "k": k * big, "m": m * np.float16(0)})  # scores past 65504
    assert np.isfinite(y).all()
    q32 = q.astype(np.float64)  # a negative scale, as torch takes it (sqrt of it was a math domain error: review52)
    src = "model a(q: float16[B, 2, T, 8]) -> y {\n    y = sdpa(q, q, q, scale=-0.5)\n}"
    (y,) = runtime.session(archdsl.compile_source(src, opset=opset)).run(None, {"q": q})
    s = q32 @ np.swapaxes(q32, -1, -2) * -0.5
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(y.astype(np.float64), (p / p.sum(-1, keepdims=True)) @ q32, atol=4e-3)
    if opset == NEWEST:  # as written, each op in float16 (onnxruntime's CPU computes float16 in float32): q k^T
        from onnx.reference import ReferenceEvaluator  # past 65504 where the scaled scores are not (reference hunt)
        feeds = {"q": q * 120, "k": k * 120, "m": m * 0}
        (ref,) = ReferenceEvaluator(model).run(None, feeds)
        assert np.isfinite(ref).all()
        np.testing.assert_allclose(ref.astype(np.float32), runtime.session(model).run(None, feeds)[0], atol=2e-2)
        hf = np.full((1, 1, 1, 8), np.finfo(np.float16).min, np.float16)  # HF's (1 - m) * finfo.min of an
        # all-padding sequence: added in float32, where float16's spacing of 32 near it rounded the scores away
        feeds = {"q": q * 4, "k": k * 4, "m": hf}  # (gradcheck2)
        (ref,) = ReferenceEvaluator(model).run(None, feeds)
        want = _reference(*(a.astype(np.float64) for a in (feeds["q"], k * 4, k * 4, hf)), False)
        np.testing.assert_allclose(ref.astype(np.float64), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("opset", OPSETS)
def test_float16_multihead_attention_is_the_decomposition_too(opset):
    """multihead_attention's own kernel path took float16 at opsets 23-24: an attn_mask offset by -1024 was
    1.03 off torch there (review52)."""
    src = ("model a(x: float16[B, T, 8], m: float16[T, T]) -> y {\n"
           "    y = multihead_attention(x, 8, num_heads=2, attn_mask=m) as attn\n}")
    model = archdsl.compile_source(src, opset=opset)
    assert not any(n.op_type == "Attention" for n in model.graph.node)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 8)).astype(np.float16)
    m = (-1024 - 0.5 * np.arange(4)).astype(np.float16) * np.ones((4, 1), np.float16)
    (y,) = runtime.session(model).run(None, {"x": x, "m": m})
    w = {i.name: onnx.numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    q, k, v = np.split(x.astype(np.float64) @ w["attn.in_proj_weight"].T + w["attn.in_proj_bias"], 3, axis=-1)
    heads = lambda t: t.reshape(2, 4, 2, 4).transpose(0, 2, 1, 3)  # noqa: E731
    ctx = _reference(heads(q), heads(k), heads(v), m.astype(np.float64), False).transpose(0, 2, 1, 3).reshape(2, 4, 8)
    want = ctx @ w["attn.out_proj.weight"].T + w["attn.out_proj.bias"]
    np.testing.assert_allclose(y.astype(np.float64), want, atol=1e-2)
    if opset == NEWEST:  # a row all at float16's lowest, as written (each op in float16): added in float32
        from onnx.reference import ReferenceEvaluator
        feeds = {"x": (4 * x).astype(np.float16), "m": np.zeros((4, 4), np.float16)}
        feeds["m"][1] = np.finfo(np.float16).min
        (ref,) = ReferenceEvaluator(model).run(None, feeds)
        np.testing.assert_allclose(ref.astype(np.float32), runtime.session(model).run(None, feeds)[0], atol=1e-2)


@pytest.mark.parametrize("opset", [o for o in OPSETS if o >= 23 and runs_natively("Attention", o)])
def test_an_input_length_still_gets_the_kernel(opset):
    model = archdsl.compile_source("model a(q: float32[B, 2, T, 8]) -> y { y = sdpa(q, q, q) }", opset=opset)
    assert any(n.op_type == "Attention" for n in model.graph.node)


@pytest.mark.parametrize("opset", OPSETS)
def test_a_kv_caches_keys_get_the_kernel_and_match_at_the_first_step(opset):
    """A cache's keys, concat([past, new]) of length P+S, were taken as possibly empty (a formula) and never ran on
    the kernel (kvcache hunt); a sum with no negative part is at least its S. Right at P = 0 and after."""
    src = ("model a(q: float32[B, 2, S, 8], past: float32[B, 2, P, 8]) -> y {\n    k = concat([past, q], axis=2)\n"
           "    y = sdpa(q, k, k, mask=positions(k, dim=-2) <= unsqueeze(positions(q, dim=-2), 1) + P)\n}")
    model = archdsl.compile_source(src, opset=opset)
    fused = any(n.op_type == "Attention" for n in model.graph.node)
    assert fused == (opset >= 23 and runs_natively("Attention", opset))
    rng, sess = np.random.default_rng(0), runtime.session(model)
    for p, s in ((0, 3), (4, 1), (2, 2)):
        q, past = (rng.standard_normal((2, 2, n, 8)).astype(np.float32) for n in (s, p))
        k = np.concatenate([past, q], axis=2)
        keep = np.arange(p + s)[None, :] <= np.arange(s)[:, None] + p
        np.testing.assert_allclose(sess.run(None, {"q": q, "past": past})[0], _reference(q, k, k, keep, False),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention_is_torchs(opset, causal):
    """enable_gqa: 6 query heads over 2 key/value heads, each kv head serving 3 consecutive query heads
    (torch's repeat_interleave), at every lowering, symbolic batch and length."""
    torch = pytest.importorskip("torch")
    src = f"""model m(q: float32[B, 6, T, 4], k: float32[B, 2, T, 4], v: float32[B, 2, T, 5]) -> y {{
    y = scaled_dot_product_attention(q, k, v, causal={'true' if causal else 'false'}, enable_gqa=true)
}}"""
    model = archdsl.compile_source(src, opset=opset)
    rng = np.random.default_rng(opset)
    feeds = {"q": rng.standard_normal((2, 6, 5, 4)), "k": rng.standard_normal((2, 2, 5, 4)),
             "v": rng.standard_normal((2, 2, 5, 5))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    y = runtime.session(model, "cpu").run(None, feeds)[0]
    ref = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(feeds[n]) for n in "qkv"),
                                                           is_causal=causal, enable_gqa=True)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("s", [0, 2])
def test_grouped_query_attention_runs_at_an_empty_key_length(s):
    """The kv heads were repeated by a Reshape read from their shape: an S of 0 meant "copy dim 2" (the group
    dim) and onnxruntime failed where torch gives the query's shape (an empty cache; review117)."""
    torch = pytest.importorskip("torch")
    model = archdsl.compile_source("model m(q: float32[B, 4, T, 8], k: float32[B, 2, S, 8]) -> y {\n"
                                   "    y = sdpa(q, k, k, enable_gqa=true)\n}\n")
    rng = np.random.default_rng(s)
    q, k = rng.standard_normal((2, 4, 3, 8)).astype(np.float32), rng.standard_normal((2, 2, s, 8)).astype(np.float32)
    y = runtime.session(model, "cpu").run(None, {"q": q, "k": k})[0]
    tq, tk = torch.from_numpy(q), torch.from_numpy(k)
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tk, enable_gqa=True).numpy()
    assert y.shape == ref.shape == (2, 4, 3, 8)
    np.testing.assert_allclose(y, np.nan_to_num(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("q, k, words", [
    ("float32[2, 6, 5, 4]", "float32[2, 4, 5, 4]", "enable_gqa needs the query's heads (dim -3 of [2, 6, 5, 4]) to "
                                                   "be a multiple of key's and value's"),
    ("float32[2, 6, 5, 4]", "float32[2, H, 5, 4]", "all known sizes"),
])
def test_grouped_query_attention_needs_heads_that_divide(q, k, words):
    with pytest.raises(archdsl.ArchError, match=re.escape(words)):
        archdsl.check_source(f"model m(q: {q}, k: {k}) -> y {{\n    y = sdpa(q, k, k, enable_gqa=true)\n}}\n")
    with pytest.raises(archdsl.ArchError, match=re.escape("(fewer key/value heads: enable_gqa=true)")):
        archdsl.check_source(f"model m(q: {q}, k: {k}) -> y {{\n    y = sdpa(q, k, k)\n}}\n")


@pytest.mark.parametrize("mask", ["mk: bool[]", "mk: float32[]", "0.5", "0"])
def test_a_scalar_mask_is_refused(mask):
    """A 0-d mask built a ReduceMax over axis -1 of a scalar, a model neither the ONNX checker nor onnxruntime
    loads (torch raises too)."""
    inputs = f", {mask}" if ":" in mask else ""
    call = "mk" if ":" in mask else mask
    src = f"model m(q: float32[B, 2, T, 4]{inputs}) -> a {{\n    a = sdpa(q, q, q, mask={call})\n}}\n"
    with pytest.raises(archdsl.ArchError, match=re.escape("mask must have at least the key dim, [..., T, T] or [T]")):
        archdsl.check_source(src)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("q_t, k_t, extra", [
    ("[1, 2, 4, 8]", "[B, 2, N, 8]", ""),                      # Perceiver's latent queries, shared by the batch
    ("[B, 2, 4, 8]", "[1, 2, N, 8]", ""),                      # keys and values shared by the batch
    ("[B, 1, 4, 8]", "[B, 3, 4, 8]", ", causal=true"),         # one query head against three
    ("[1, 4, 4, 8]", "[B, 2, N, 8]", ", enable_gqa=true"),
])
def test_leading_dims_of_one_broadcast_as_torchs(opset, q_t, k_t, extra):
    """A query [1, H, M, D] against keys [B, H, N, D] was refused ('must have the same leading dims') where
    torch broadcasts it, and the same attention written out built (mixers hunt). Values and gradients of all
    three inputs (summed back over the broadcast dims) against torch."""
    torch = pytest.importorskip("torch")
    from .core_harness import grads_of
    src = (f"model m(q: float32{q_t}, k: float32{k_t}, v: float32{k_t}) -> y {{\n"
           f"    y = scaled_dot_product_attention(q, k, v{extra})\n}}\n")
    rng = np.random.default_rng(opset)
    sizes = {"B": 3, "N": 5}
    feeds = {n: rng.standard_normal([sizes.get(d, None) or int(d) for d in t.strip("[]").split(", ")])
             .astype(np.float32) for n, t in (("q", q_t), ("k", k_t), ("v", k_t))}
    tq = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in feeds.items()}
    ref = torch.nn.functional.scaled_dot_product_attention(tq["q"], tq["k"], tq["v"], is_causal="causal" in extra,
                                                           enable_gqa="gqa" in extra)
    for opt in (0, 2):
        y = runtime.session(archdsl.compile_source(src, opset=opset, opt_level=opt), "cpu").run(None, feeds)[0]
        np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    r = rng.standard_normal(ref.shape).astype(np.float32)
    (ref * torch.from_numpy(r).double()).sum().backward()
    got = grads_of(src.replace("B", "3").replace("N", "5"), feeds, r, ["q", "k", "v"])  # r has fixed sizes
    for n in "qkv":
        np.testing.assert_allclose(got[n], tq[n].grad.numpy(), rtol=1e-4, atol=1e-5)
