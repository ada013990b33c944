"""multihead_attention's attn_mask and kdim/vdim against torch.nn.MultiheadAttention(batch_first=True) with
the same weights loaded by name: bool (true = not allowed) and float (added) masks, [T, S] and [B*H, T, S],
with key_padding_mask and causal, rows that every mask leaves no key (ours: zeros before out_proj, torch's:
NaN on its inference path, zeros when it records gradients), separate q/k/v projection weights. Both
lowerings: the MatMul/Softmax decomposition and ONNX Attention where onnxruntime has its kernel."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import archdsl
from archdsl import runtime
from archdsl.diagnostics import ArchError
from archdsl.ops._kernels import runs_natively

torch = pytest.importorskip("torch")
# torch warns where a bool key_padding_mask meets a float attn_mask (ours combine them as its do)
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")

E = 8
# the decomposition, and ONNX Attention where onnxruntime has its kernel (opsets 23-24)
OPSETS = [17] + [o for o in (24,) if o <= runtime.newest_opset() and runs_natively("Attention", o)]


def _compile(src: str, opset: int):
    model = archdsl.compile_source(src, file="op.arch", opset=opset)
    onnx.checker.check_model(model, full_check=True)
    return model, {i.name: np.array(numpy_helper.to_array(i)) for i in model.graph.initializer}


def _torch_mha(w: dict, heads: int, bias: bool = True, kdim=None, vdim=None):
    m = torch.nn.MultiheadAttention(E, heads, bias=bias, batch_first=True, kdim=kdim, vdim=vdim)
    m.load_state_dict({k: torch.from_numpy(w[f"attn.{k}"]) for k in m.state_dict()})
    return m.eval()


def _mask(rng, kind: str, shape: tuple, dead_row: int) -> np.ndarray:
    """A random mask with query row `dead_row` allowed no key at all."""
    if kind == "bool":
        m = rng.random(shape) < 0.3
        m[..., dead_row, :] = True
        return m
    m = rng.standard_normal(shape).astype(np.float32)
    m[rng.random(shape) < 0.2] = -np.inf
    m[..., dead_row, :] = -np.inf
    return m


@pytest.mark.parametrize("opset", OPSETS)
@settings(max_examples=12, deadline=None)
@given(heads=st.sampled_from([1, 2, 4]), kind=st.sampled_from(["bool", "float"]), per_head=st.booleans(),
       padded=st.booleans(), causal=st.booleans(), cross=st.booleans(), sizes=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_attn_mask_and_kdim_vdim_match_torch(opset, heads, kind, per_head, padded, causal, cross, sizes, bias, seed):
    rng = np.random.default_rng(seed)
    b, t = 2, 4
    s = 5 if cross and not causal else t  # nn.MultiheadAttention's is_causal needs a square mask
    kdim, vdim = (6, 3) if cross and sizes else (None, None)
    ins = [f"q: float32[B, T, {E}]"]
    kw = [f"attn_mask=am, bias={'true' if bias else 'false'}"]
    if cross:
        ins += [f"k: float32[B, S, {kdim or E}]", f"v: float32[B, S, {vdim or E}]"]
        kw += ["key=k", "value=v"] + ([f"kdim={kdim}", f"vdim={vdim}"] if sizes else [])
    if padded:
        ins.append(f"kpm: bool[B, {'S' if cross else 'T'}]")
        kw.append("key_padding_mask=kpm")
    lead = f"{heads}*B, " if per_head else ""
    ins.append(f"am: {'bool' if kind == 'bool' else 'float32'}[{lead}T, {'S' if cross else 'T'}]")
    if causal:
        kw.append("causal=true")
    src = f"model m({', '.join(ins)}) -> y {{ y = q -> multihead_attention({E}, {heads}, {', '.join(kw)}) as attn }}"
    model, w = _compile(src, opset)
    q = rng.standard_normal((b, t, E)).astype(np.float32)
    feeds = {"q": q}
    if cross:
        feeds["k"] = rng.standard_normal((b, s, kdim or E)).astype(np.float32)
        feeds["v"] = rng.standard_normal((b, s, vdim or E)).astype(np.float32)
    kpm = np.zeros((b, s), bool)
    kpm[0, -2:] = True
    kpm[1, 0] = True
    if padded:
        feeds["kpm"] = kpm
    feeds["am"] = _mask(rng, kind, ((b * heads,) if per_head else ()) + (t, s), dead_row=1)
    (y,) = runtime.session(model, provider="cpu").run(None, feeds)

    m = _torch_mha(w, heads, bias, kdim, vdim)
    mask = torch.from_numpy(feeds["am"])
    if causal:  # ours joins causal to the mask given; torch takes the joined mask
        above = torch.ones(t, s, dtype=torch.bool).triu(1)
        mask = mask | above if kind == "bool" else mask.masked_fill(above, -np.inf)
    key = torch.from_numpy(feeds["k"] if cross else q)
    value = torch.from_numpy(feeds["v"] if cross else q)
    with torch.no_grad():
        ref, _ = m(torch.from_numpy(q), key, value, key_padding_mask=torch.from_numpy(kpm) if padded else None,
                   attn_mask=mask, need_weights=False)
    ref = ref.numpy()
    nan = np.isnan(ref)  # torch's inference fast path (where it takes it) makes the rows left no key NaN
    np.testing.assert_allclose(y[~nan], ref[~nan], rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # off that path (as where it records gradients): zeros before out_proj
        m.train()
        ref, _ = m(torch.from_numpy(q), key, value, key_padding_mask=torch.from_numpy(kpm) if padded else None,
                   attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
    out_bias = w["attn.out_proj.bias"] if bias else np.zeros(E, np.float32)
    np.testing.assert_allclose(y[:, 1], np.broadcast_to(out_bias, y[:, 1].shape), atol=1e-6)  # the dead row


@pytest.mark.parametrize("opset", OPSETS)
def test_kdim_vdim_without_masks_match_torch(opset):
    src = """model m(q: float32[B, T, 8], k: float32[B, S, 5], v: float32[B, S, 3]) -> y {
        y = q -> multihead_attention(8, 2, key=k, value=v, kdim=5, vdim=3) as attn
    }"""
    model, w = _compile(src, opset)
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 8), (2, 6, 5), (2, 6, 3)))
    (y,) = runtime.session(model, provider="cpu").run(None, {"q": q, "k": k, "v": v})
    m = _torch_mha(w, 2, kdim=5, vdim=3)
    with torch.no_grad():
        ref, _ = m(*(torch.from_numpy(a) for a in (q, k, v)), need_weights=False)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_kdim_vdim_parameters_are_torchs_by_name_and_init():
    g = archdsl.check_source("model m(x: float32[B, T, 12], k: float32[B, S, 7], v: float32[B, S, 5]) -> y { "
                             "y = x -> multihead_attention(12, 3, key=k, value=v, kdim=7, vdim=5) as attn }")
    shapes = {k: v.type.shape for k, v in g.params.items()}
    m = torch.nn.MultiheadAttention(12, 3, batch_first=True, kdim=7, vdim=5)
    assert list(shapes) == [f"attn.{k}" for k in m.state_dict()]
    assert shapes == {f"attn.{k}": tuple(v.shape) for k, v in m.state_dict().items()}
    # kdim = vdim = embed_dim is torch's one in_proj_weight
    g = archdsl.check_source("model m(x: float32[B, T, 12]) -> y { "
                             "y = x -> multihead_attention(12, 3, kdim=12, vdim=12) as attn }")
    assert "attn.in_proj_weight" in g.params and "attn.q_proj_weight" not in g.params


def test_a_lone_bool_mask_is_the_one_named_even_where_shapes_agree():
    """B = T = S = 4: a bool [4, 4] is a key_padding_mask [B, S] or an attn_mask [T, S] by shape alike; the
    call's keyword decides (torch's two conventions differ: per batch row against per query row)."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 4, E)).astype(np.float32)
    m4 = rng.random((4, 4)) < 0.4
    for name in ("key_padding_mask", "attn_mask"):
        model, w = _compile(f"model m(q: float32[4, 4, {E}], m: bool[4, 4]) -> y {{ "
                            f"y = q -> multihead_attention({E}, 2, {name}=m) as attn }}", OPSETS[-1])
        (y,) = runtime.session(model, provider="cpu").run(None, {"q": q, "m": m4})
        mha = _torch_mha(w, 2).train()
        with torch.no_grad():
            ref, _ = mha(*(torch.from_numpy(q),) * 3, need_weights=False, **{name: torch.from_numpy(m4)})
        np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_the_given_record_is_not_an_argument():
    g = archdsl.check_source("model m(x: float32[B, T, 8], m: bool[T, T]) -> y { "
                             "y = x -> multihead_attention(8, 2, attn_mask=m) as attn }")
    (node,) = [n for n in g.nodes if n.op == "multihead_attention"]
    assert node.attrs["given"] == ("attn_mask",)
    assert "given" not in archdsl.ops.get("multihead_attention").signature()
    with pytest.raises(ArchError, match="given"):
        archdsl.check_source("model m(x: float32[B, T, 8]) -> y { "
                             "y = x -> multihead_attention(8, 2, given=[\"key\"]) }")


@pytest.mark.parametrize("extra, call, words", [
    ("m: bool[T, 3]", "attn_mask=m", r"attn_mask must be \[T, T\] \(query length, key length\) or \[2\*B, T, T\]"),
    ("m: bool[B, T, T]", "attn_mask=m", r"or \[2\*B, T, T\] \(batch \* heads first"),
    ("m: int64[T, T]", "attn_mask=m", "attn_mask must be bool .* or float32 like the query"),
    ("m: float16[T, T]", "attn_mask=m", "attn_mask must be bool .* or float32"),
    ("k: float32[B, S, 5]", "key=k, value=k", r"key must be \[B, L, 8\] .*got \[B, S, 5\] \(kdim/vdim"),
    ("k: float32[B, S, 5]", "key=k, value=k, kdim=5", r"value must be \[B, L, 8\]"),
    ("k: float32[B, S, 5]", "kdim=5", "kdim=5 sets the key's and value's sizes apart from embed_dim 8; give key="),
    ("k: float32[B, S, 5]", "key=k, value=k, kdim=0", "kdim must be at least 1, got 0"),
])
def test_diagnostics(extra, call, words):
    with pytest.raises(ArchError, match=words):
        archdsl.check_source(f"model m(x: float32[B, T, 8], {extra}) -> y {{ "
                             f"y = x -> multihead_attention(8, 2, {call}) }}")


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("bias", ["true", "false"])
def test_separate_projections_leave_no_unread_constant(opset, bias):
    """kdim/vdim without a bias: the packed projection's split sizes were made and read by nothing, and
    onnxruntime warned 'Removing initializer' at every load."""
    src = (f"model m(q: float32[B, T, {E}], k: float32[B, S, 6], v: float32[B, S, 5]) -> y {{\n"
           f"    y = multihead_attention(q, key=k, value=v, embed_dim={E}, num_heads=2, kdim=6, vdim=5, "
           f"bias={bias}) as a\n}}\n")
    model, _ = _compile(src, opset)
    read = {i for n in model.graph.node for i in n.input}
    assert [t.name for t in model.graph.initializer if t.name not in read] == []


@pytest.mark.parametrize("b, t, s", [(2, 0, 4), (2, 3, 0), (2, 3, 4), (0, 0, 0)])
def test_a_per_head_mask_runs_at_an_empty_query_or_key_length(b, t, s):
    """A [B*H, T, S] mask became [B, H, T, S] by a Reshape to [-1, H, T, S]: a T or S of 0 read as "copy that
    dim", and the -1 over no elements, failed in onnxruntime where torch runs (review117). The decomposition's
    opset: ONNX Attention takes a model input's size to be at least 1 (ops/_kernels.py never_empty)."""
    opset = 17
    src = (f"model m(q: float32[B, T, {E}], k: float32[B, S, {E}], am: bool[2*B, T, S]) -> y {{\n"
           f"    y = q -> multihead_attention({E}, 2, key=k, value=k, attn_mask=am) as attn\n}}\n")
    model, w = _compile(src, opset)
    rng = np.random.default_rng(t + s)
    feeds = {"q": rng.standard_normal((b, t, E)).astype(np.float32),  # B from the query: a -1 failed at 0, 0, 0
             "k": rng.standard_normal((b, s, E)).astype(np.float32), "am": rng.random((2 * b, t, s)) < 0.3}
    y = runtime.session(model, "cpu").run(None, feeds)[0]
    with torch.no_grad():
        ref = _torch_mha(w, 2)(*(torch.from_numpy(feeds[n]) for n in "qkk"),
                               attn_mask=torch.from_numpy(feeds["am"]))[0].numpy()
    assert y.shape == ref.shape == (b, t, E)
    np.testing.assert_allclose(y, np.nan_to_num(ref), rtol=1e-5, atol=1e-6)  # no key: ours 0, torch's NaN
