"""chunk and unbind (ops/split_ops.py), property-based against torch.chunk / torch.unbind (see core_harness.py
for what every run_op case checks): how many pieces and their sizes (fewer chunks than asked where torch
gives fewer), a symbolic size that chunks divides, tuple unpacking, the diagnostics; and split's sizes over a
symbolic dim, refused with the slices that cut it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import numpy_helper

import archdsl
from archdsl import runtime

from .core_harness import NEWEST, OPSET, SETTINGS, SYM, close, covers, rand, refused, run_op

torch = pytest.importorskip("torch")


def _all(src: str, feeds: dict, opset: int = NEWEST) -> list[np.ndarray]:
    model = archdsl.compile_source(src, opset=opset)
    return runtime.session(model, provider="cpu", threads=1).run(None, feeds)


def _every_piece(shape, n: int, call: str) -> str:
    """A model whose outputs are the n pieces, unpacked by name (one piece: indexed, the language has no
    one-name unpacking)."""
    names = [f"p{i}" for i in range(n)]
    return (f"model m(x: float32[{', '.join(map(str, shape))}]) -> ({', '.join(names)}) {{\n"
            f"    {', '.join(names)} = {f'({call})[0]' if n == 1 else call}\n}}\n")


def _pieces_are_torchs(x, ref, one: str, every: str, data, sym, opset) -> None:
    """One piece of `one` picked by index (over a symbolic batch when sym), then every piece of `every` at once:
    as many outputs as torch gives, each equal to torch's."""
    j = data.draw(st.integers(0, len(ref) - 1))
    y, _ = run_op(f"{one}[{j}]", x=x, sym=sym, opset=opset)
    np.testing.assert_array_equal(y, ref[j].numpy())
    for got, want in zip(_all(_every_piece(x.shape, len(ref), every), {"x": x}, opset), ref, strict=True):
        np.testing.assert_array_equal(got, want.numpy())


@covers("chunk")
@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), chunks=st.integers(1, 8), data=st.data(),
       sym=SYM, opset=OPSET)
def test_chunk_matches_torch(shape, chunks, data, sym, opset):
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    if sym and d % r == 0:
        sym = False  # chunking the symbolic dim itself is refused (test_chunk_diagnostics)
    x = rand(*shape, seed=chunks)
    _pieces_are_torchs(x, torch.chunk(torch.from_numpy(x), chunks, d), f"chunk(x, {chunks}, dim={d})",
                       f"chunk(x, {chunks}, {d})", data, sym, opset)


@pytest.mark.parametrize("n, chunks, sizes", [(5, 4, [2, 2, 1]), (6, 4, [2, 2, 2]), (4, 4, [1, 1, 1, 1]),
                                              (3, 5, [1, 1, 1]), (7, 1, [7]), (0, 3, [0, 0, 0])])
def test_chunk_sizes_are_torchs(n, chunks, sizes):
    """ceil(n / chunks) each, the last smaller, fewer pieces than asked where torch gives fewer; a dim of 0
    gives `chunks` empty pieces, as torch.chunk does."""
    assert [t.shape[0] for t in torch.chunk(torch.zeros(n), chunks)] == sizes
    arg = "x" if n else "x[:, :0]"  # a model input has no dim of 0
    names = [f"p{i}" for i in range(len(sizes))]
    src = (f"model m(x: float32[2, {max(n, 1)}]) -> ({', '.join(names)}) {{\n"
           f"    {', '.join(names)} = chunk({arg}, {chunks}, dim=1){'[0]' if len(sizes) == 1 else ''}\n}}\n")
    g = archdsl.check_source(src)
    node = next(n for n in g.nodes if n.op == "chunk")
    assert [o.type.shape[1] for o in node.outputs] == sizes
    x = rand(2, max(n, 1))
    for got, want in zip(_all(src, {"x": x}), torch.chunk(torch.from_numpy(x[:, :n]), chunks, 1), strict=True):
        np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize("opset", [17, NEWEST])
def test_chunk_qkv_unpacks_into_three(opset):
    src = """model m(x: float32[B, T, 12]) -> y {
        q, k, v = x -> linear(24) as qkv -> chunk(3, dim=-1)
        y = softmax(q @ k.T) @ v
    }"""
    x = rand(2, 5, 12)
    model = archdsl.compile_source(src, opset=opset, opt_level=0)
    w = {i.name: np.array(numpy_helper.to_array(i)) for i in model.graph.initializer}
    (y,) = runtime.session(model, provider="cpu", threads=1).run(None, {"x": x})
    h = torch.from_numpy(x) @ torch.from_numpy(w["qkv.weight"]).T + torch.from_numpy(w["qkv.bias"])
    q, k, v = h.chunk(3, dim=-1)
    np.testing.assert_allclose(y, (torch.softmax(q @ k.transpose(-2, -1), -1) @ v).numpy(), rtol=1e-5, atol=1e-5)


_SYMBOLIC_CHUNK = """model m(x: float32[B, T]) -> (a, b) {
    a, b = chunk(concat([x, 2 * x], axis=1), 2, dim=1)
}"""


@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("t", [1, 3, 0])
def test_chunk_of_a_symbolic_multiple(opset, t):
    """2*T into 2 is T and T whatever T is (T = 0: two empty pieces, as torch.chunk gives)."""
    src = _SYMBOLIC_CHUNK
    x = rand(3, t)
    a, b_ = _all(src, {"x": x}, opset)
    ref = torch.chunk(torch.cat([torch.from_numpy(x), 2 * torch.from_numpy(x)], 1), 2, 1)
    assert len(ref) == 2
    np.testing.assert_array_equal(a, ref[0].numpy())
    np.testing.assert_array_equal(b_, ref[1].numpy())


@pytest.mark.parametrize("opset", [17, 18, NEWEST])
def test_symbolic_chunk_says_how_many_pieces(opset):
    """Split from opset 18 wants either its `split` input or `num_outputs` ("but not both"); sizes only known at
    run time can only be the count. Before 18 the count is implied by the outputs, and the attribute does not
    exist. (onnxruntime and onnx's checker take either, so only the node shows it.)"""
    (node,) = [n for n in archdsl.compile_source(_SYMBOLIC_CHUNK, opset=opset).graph.node if n.op_type == "Split"]
    attrs = {a.name: a for a in node.attribute}
    assert len(node.input) == 1
    if opset >= 18:
        assert attrs["num_outputs"].i == 2
    else:
        assert "num_outputs" not in attrs


def test_one_chunk_and_one_slice_are_still_tuples():
    """torch.chunk(x, 1) and torch.unbind of a dim of 1 are tuples of one: so are ours."""
    x = rand(1, 3)
    for call, want in (("chunk(x, 1)", x), ("unbind(x, 0)", x[0])):
        refused(f"model m(x: float32[1, 3]) -> y {{ y = {call} }}", "must be a tensor, got tuple of 1")
        (y,) = _all(f"model m(x: float32[1, 3]) -> y {{ y = {call}[0] }}", {"x": x})
        np.testing.assert_array_equal(y, want)


def test_chunk_diagnostics():
    for text, words in (("chunk(x, 2, dim=1)[0]", r"dim 1 of \[B, T\] is the symbolic size T.*known size"),
                        ("chunk(x, 0)[0]", "chunks must be 1 to 65536, got 0"),
                        ("chunk(sum(x), 2)[0]", "at least 1 dim, got a 0-d tensor"),
                        ("chunk(x, 2, dim=2)[0]", "dim 2 is out of range for a tensor of rank 2"),
                        ("chunk(concat([x, x, x], axis=1), 2, dim=1)[0]",
                         "known size or one 2 divides at every size \\(2\\*T, 2\\*T\\+2\\)")):
        refused(f"model m(x: float32[B, T]) -> y {{ y = {text} }}", words)
    # 4 into 3 is 2 and 2 (torch's rule): three names are one too many
    refused("model m(x: float32[4, 5]) -> (a, b, c) { a, b, c = chunk(x, 3) }", r"a tuple of 2 values into 3 names")
    refused("model m(x: float32[4, 5]) -> y { y = chunk(x[:, :0], 1000000, dim=1)[0] }", "chunks must be 1 to 65536")
    refused("model m(x: float32[70000, 1]) -> y { y = unbind(x)[0] }", "would give 70000 tensors, more than 65536")


@covers("unbind")
@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), sym=SYM, opset=OPSET)
def test_unbind_matches_torch(shape, data, sym, opset):
    r = len(shape)
    d = data.draw(st.integers(-r, r - 1))
    if sym and d % r == 0:
        sym = False
    x = rand(*shape, seed=r)
    _pieces_are_torchs(x, torch.unbind(torch.from_numpy(x), d), f"unbind(x, {d})", f"x -> unbind(dim={d})",
                       data, sym, opset)


def test_unbind_of_other_dtypes():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    a, b_, c = _all("model m(x: int64[2, 3]) -> (a, b, c) { a, b, c = unbind(x, dim=-1) }", {"x": x})
    for got, want in zip((a, b_, c), torch.unbind(torch.from_numpy(x), -1)):
        np.testing.assert_array_equal(got, want.numpy())


def test_unbind_diagnostics():
    for text, words in (("unbind(x, 1)[0]", r"dim 1 of \[B, T\] is the symbolic size T.*known size"),
                        ("unbind(sum(x))[0]", "at least 1 dim, got a 0-d tensor"),
                        ("unbind(x[:, :0], 1)[0]", "is 0; torch gives an empty tuple"),
                        ("unbind(x, -3)[0]", "dim -3 is out of range")):
        refused(f"model m(x: float32[B, T]) -> y {{ y = {text} }}", words)


def test_sizes_over_a_symbolic_dim_are_refused_and_the_slices_said_run_at_any_size():
    """split(x, [3, 5], axis=-1) of a [B, 8, T] built a model onnxruntime ran at T = 8 only, with no word; chunk
    pointed to that split (porting27 hunt). Both say the slices, which run at every T."""
    refused("model m(x: float32[B, 8, T]) -> (a, b) {\n    a, b = split(x, [3, 5], axis=-1)\n}\n",
            r"^split: sizes \[3, 5\] over dim -1 of \[B, 8, T\], the symbolic size T, fix it at 8: .* slice "
            r"\(x\[:, :, :3\] and x\[:, :, 3:\]\)$")
    refused("model m(x: float32[B, T, 4]) -> (a, b) {\n    a, b = chunk(x, 2, dim=1)\n}\n",
            r"slices cut a symbolic dim into parts of given sizes \(x\[:, :3\] and x\[:, 3:\]\)$")
    sess = runtime.session(archdsl.compile_source("model m(x: float32[B, 8, T]) -> (a, b) {\n    a = x[:, :, :3]\n"
                                                  "    b = x[:, :, 3:]\n}\n"))
    for t in (8, 10):
        x = rand(2, 8, t)
        a, b = sess.run(None, {"x": x})
        close(a, x[:, :, :3])
        close(b, x[:, :, 3:])


def test_one_chunk_of_any_symbolic_size_is_the_whole_dim():
    """chunk(x, 1, dim=1) of a [B, T + 1] was refused as "a multiple of 1"; 2*T + 2 into 2 was told it must be
    "a multiple of 2" (mutnew3 hunt). One chunk is the tensor itself, as torch.chunk's (x,)."""
    src = "model m(t: float32[B, T], x: float32[B, T + 1]) -> a {\n    a = chunk(x, 1, dim=1)[0]\n}\n"
    sess = runtime.session(archdsl.compile_source(src))
    for n in (1, 4):
        x = rand(2, n)
        close(sess.run(None, {"t": rand(2, n - 1), "x": x})[0], x)
    refused("model m(t: float32[T], x: float32[B, 2 * T + 1]) -> a {\n    a = chunk(x, 2, dim=1)[0]\n}\n",
            r"must be a known size or one 2 divides at every size \(2\*T, 2\*T\+2\)")


@pytest.mark.parametrize("made, ref", [
    ("maxpool1d(x, 2, ceil_mode=true)", lambda t: torch.nn.functional.max_pool1d(t, 2, ceil_mode=True)),
    ("pad(x, [1, 0])", lambda t: torch.nn.functional.pad(t, (1, 0))),
    ("x[:, :, 2:]", lambda t: t[:, :, 2:])])
def test_chunks_of_a_size_two_divides_at_every_size_are_torchs(made, ref):
    """2*((T+1)//2), 2*T+2 and 2*T-4 into 2 were refused as not '2 times a size', where torch.chunk gives two
    equal halves at every T (review117)."""
    src = (f"model m(x: float32[B, 4, T]) -> y {{\n    h = {made}\n"
           "    a, b = chunk(concat([h, h * 2.0], 2), 2, dim=2)\n    y = a + 3.0 * b\n}\n")
    for level in (0, 2):
        sess = runtime.session(archdsl.compile_source(src, opt_level=level))
        for t in (2, 3, 8):
            x = rand(2, 4, t)
            h = ref(torch.from_numpy(x))
            a, b = torch.chunk(torch.cat([h, h * 2], 2), 2, dim=2)
            close(sess.run(None, {"x": x})[0], (a + 3 * b).numpy())


def test_a_chunk_refusal_names_the_dims_own_size():
    """The refusal's example is the dim's own size, not a T the spec may not have (mutnew4 hunt)."""
    refused("model m(x: float32[B, S], p: float32[B, 3*S]) -> y {\n    a, b = chunk(p, 2, dim=1)\n    y = a\n}\n",
            r"one 2 divides at every size \(2\*S, 2\*S\+2\)")
