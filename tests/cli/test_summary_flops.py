"""`archdsl summary`'s FLOPs per layer against counts made by hand, by the README's convention: 2 x the
multiply-accumulates of a matrix product or convolution (as papers cite them), a count per element for the
elementwise work of pools, norms and activations. Only linear, gemm, einsum and embedding were counted by hand;
a conv that forgot its groups or a matmul its inner dim went unseen."""

from __future__ import annotations

import pytest

from archdsl.cli import main


def _flops(summary_json, inputs: str, body: str, dims=()) -> dict[str, int]:
    rep = summary_json(f"model m({inputs}) -> y {{\n{body}\n}}\n", *[a for d in dims for a in ("--dim", d)])
    return {r["name"]: r["flops"] for r in rep["layers"]}


E, T, S, H, D = 16, 6, 9, 4, 8  # embed, target length, source length, heads, head dim


@pytest.mark.parametrize("inputs,body,name,want", [
    # out 16 x 10 x 12, each from in/groups = 2 channels of a 3x3 window
    ("x: float32[B, 8, 10, 12]", "    y = x -> conv2d(16, 3, padding=1, groups=4) as c", "c", 2 * 16 * 120 * 2 * 9),
    ("x: float32[B, 8, 10, 12]", "    y = x -> conv2d(8, 3, padding=1, groups=8) as c", "c", 2 * 8 * 120 * 1 * 9),
    ("x: float32[B, 8, 10, 12]", "    y = x -> conv2d(4, (1, 3)) as c", "c", 2 * 4 * 10 * 10 * 8 * 3),
    # each of the 8 x 5 x 5 inputs scatters into 6 x 2 x 2 outputs
    ("x: float32[B, 8, 5, 5]", "    y = x -> conv_transpose2d(6, 2, stride=2) as c", "c", 2 * 8 * 25 * 6 * 4),
    # in 4 groups: each input scatters into the 2 output channels of its group
    ("x: float32[B, 8, 5, 5]", "    y = x -> conv_transpose2d(8, 2, stride=2, groups=4) as c", "c",
     2 * 8 * 25 * 2 * 4),
    ("x: float32[B, 5, 7], w: float32[7, 3]", "    y = x @ w", "matmul_0", 2 * 5 * 3 * 7),
    ("x: float32[B, 2, 5, 7], w: float32[2, 7, 3]", "    y = matmul(x, w) as mm", "mm", 2 * 2 * 5 * 3 * 7),
    ("x: float32[B, 3, 8, 8]", "    y = x -> maxpool2d(2) as p", "p", 3 * 4 * 4 * 4),
    ("x: float32[B, 3, 8, 8]", "    y = x -> avgpool2d(3, stride=1) as p", "p", 3 * 6 * 6 * 9),
    ("x: float32[B, 3, 8, 8]", "    y = x -> global_avgpool as p", "p", 3 * 64),  # each input once
    ("x: float32[B, 3, 8, 8]", "    y = x -> adaptive_avgpool2d(2) as p", "p", 3 * 64),
    # q, k, v and output projections (4 of 2 E^2 per position), the scores and weighted sum (2 T T E each),
    # and each head's scores scaled and softmaxed (6 per score, as the same attention written out counts)
    (f"x: float32[B, {T}, {E}]", f"    y = x -> multihead_attention({E}, 2) as a", "a",
     4 * 2 * E * E * T + 2 * 2 * T * T * E + 6 * 2 * T * T),
    # cross-attention: k and v projected over the S source positions
    (f"x: float32[B, {T}, {E}], m: float32[B, {S}, {E}]",
     f"    y = multihead_attention(x, {E}, 2, key=m, value=m) as a", "a",
     2 * 2 * E * E * T + 2 * 2 * E * E * S + 2 * 2 * T * S * E + 6 * 2 * T * S),
    # keys and values of another width (kdim, vdim = 40) are projected from that width
    (f"x: float32[B, {T}, {E}], m: float32[B, {S}, 40]",
     f"    y = multihead_attention(x, {E}, 2, key=m, value=m, kdim=40, vdim=40) as a", "a",
     2 * 2 * E * E * T + 2 * 2 * E * 40 * S + 2 * 2 * T * S * E + 6 * 2 * T * S),
    # a key padding mask adds to every score: 7 per score
    (f"x: float32[B, {T}, {E}], pad: bool[B, {T}]",
     f"    y = multihead_attention(x, {E}, 2, key_padding_mask=pad) as a", "a",
     4 * 2 * E * E * T + 2 * 2 * T * T * E + 7 * 2 * T * T),
    (f"q: float32[B, {H}, {T}, {D}], k: float32[B, {H}, {S}, {D}], v: float32[B, {H}, {S}, {D}]",
     "    y = scaled_dot_product_attention(q, k, v) as a", "a",
     2 * H * T * S * D + 2 * H * T * S * D + 6 * H * T * S),
    # per step: 4 gates of h from (input + h) by 2 x MACs, and 8 elementwise per gate unit
    ("x: float32[B, 5, 3]", "    y = x -> lstm(4) as r", "r", 5 * (2 * 4 * 4 * (3 + 4) + 8 * 4 * 4)),
    ("x: float32[B, 5, 3]", "    y = x -> lstm(4, bidirectional=true) as r", "r",
     2 * 5 * (2 * 4 * 4 * (3 + 4) + 8 * 4 * 4)),
    ("x: float32[B, 5, 3]", "    y = x -> gru(4, num_layers=2) as r", "r",
     5 * (2 * 3 * 4 * (3 + 4) + 8 * 3 * 4) + 5 * (2 * 3 * 4 * (4 + 4) + 8 * 3 * 4)),
    ("x: float32[B, 3, 8, 8]", "    y = x -> batchnorm as bn", "bn", 2 * 3 * 64),
    ("x: float32[B, 3, 8, 8]", "    y = x -> gelu as g", "g", 8 * 3 * 64),
    ("x: float32[B, 6, 16]", "    y = x -> layernorm as ln", "ln", 5 * 6 * 16),  # mean, var, scale, shift
])
def test_flops_per_layer_are_the_hand_count(summary_json, inputs, body, name, want):
    assert _flops(summary_json, inputs, body)[name] == want


@pytest.mark.parametrize("mask", ["", ", causal=true", ", mask=am"])
def test_an_attention_counts_as_the_same_attention_written_out(summary_json, mask):
    """scaled_dot_product_attention counted its two products only: 9% less than its ops written out here."""
    inputs = "q: float32[B, 2, 5, 4], k: float32[B, 2, 7, 4], v: float32[B, 2, 7, 4], am: float32[5, 7]"
    fused = _flops(summary_json, inputs, f"    y = scaled_dot_product_attention(q, k, v{mask}) as a")["a"]
    scores = "q @ transpose(k, -2, -1) * 0.5"
    scores = f"causal_mask({scores})" if "causal" in mask else f"{scores} + am" if "am" in mask else scores
    written = _flops(summary_json, inputs, f"    y = softmax({scores}, axis=-1) @ v")
    assert fused == sum(written.values())


@pytest.mark.parametrize("dim, said", [("B", "batch 1"), ("batch", "batch 1"), ("N", "batch 1 (N=1)")])
def test_the_batch_dim_is_named_batch_in_the_flops_label(summary_json, dim, said):
    """B and batch are the batch: the label names no size for them; another symbol is named."""
    assert summary_json(f"model m(x: float32[{dim}, 4]) -> y {{\n    y = x -> linear(8)\n}}\n")["flops_at"] == said


def test_flops_scale_with_a_sized_symbolic_dim(summary_json):
    got = _flops(summary_json, "x: float32[B, T, 7], w: float32[7, 3]", "    y = x @ w", dims=("T=10",))
    assert got["matmul_0"] == 2 * 10 * 3 * 7


def test_sizes_a_layer_cannot_have_are_said_to_be_no_real_input(summary_json, capsys):
    """H=1 for a 3x3 conv: the count takes the conv's (H-2) as 1, a size no input gives; the footer said the
    figure was at H=1, W=1, where the build itself refuses the model."""
    spec = "model m(x: float32[B, 3, H, W]) -> y {\n    y = x -> conv2d(8, 3) as conv\n}\n"
    assert summary_json(spec)["flops_unfit"] == ["conv"]
    assert summary_json(spec, "--dim", "H=5", "--dim", "W=5")["flops_unfit"] == []


def test_the_footer_says_when_the_sizes_fit_no_input(tmp_path, capsys):
    spec = tmp_path / "c3.arch"
    spec.write_text("model m(x: float32[B, 3, H, W]) -> y {\n    y = x -> conv2d(8, 3) as conv\n}\n")
    assert main(["summary", str(spec)]) == 0
    assert "not a size the model runs at: 'conv' has no whole positive output size there" in capsys.readouterr().out
    assert main(["summary", str(spec), "--dim", "H=3", "--dim", "W=4"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs at batch 1, H=3, W=4: " in out and "not a size" not in out


def test_the_footer_names_a_dim_of_the_layer_that_does_not_fit(tmp_path, capsys):
    """A sequence input beside an image: the footer told the user to size T, which the conv does not read."""
    spec = tmp_path / "two.arch"
    spec.write_text("model m(x: float32[B, T, 8], im: float32[B, 3, H, W]) -> (y, z) {\n"
                    "    y = x -> linear(16) as fc\n    z = im -> conv2d(4, 3) as c\n}\n")
    assert main(["summary", str(spec)]) == 0
    assert "'c' has no whole positive output size there, counted as 1; --dim H=N gives" in capsys.readouterr().out
    assert main(["summary", str(spec), "--dim", "H=5"]) == 0
    assert "--dim W=N gives" in capsys.readouterr().out
    for body, dim in (("z = im -> conv2d(4, (1, 3)) as c", "W"), ("z = im[2:] -> conv2d(4, 1) as c", "B")):
        spec.write_text(f"model m(im: float32[B, 3, H, W]) -> z {{\n    {body}\n}}\n")  # a 1x3 kernel: W-2;
        assert main(["summary", str(spec)]) == 0                                       # x[2:]: B-2
        assert f"counted as 1; --dim {dim}=N gives" in capsys.readouterr().out, body


def test_a_leading_dim_other_than_b_is_named_as_the_one_counted_as_a_batch(tmp_path, capsys):
    """[T, B, F] (an RNN's time-major input): the footer said "batch 1, B=1", T's 1 unsaid."""
    spec = tmp_path / "tb.arch"
    spec.write_text("model m(x: float32[T, B, 4]) -> y {\n    y = x -> linear(8)\n}\n")
    assert main(["summary", str(spec)]) == 0
    assert "FLOPs at batch 1 (T=1), B=1 (--dim B=N sizes it): 64" in capsys.readouterr().out
