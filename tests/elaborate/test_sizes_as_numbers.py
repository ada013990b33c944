"""A symbolic size beside a tensor (`sum(err) / shape(x)[0]`, a VAE's loss per example): read at run time from
the shape of a tensor that has it (an input, or a value computed so far), a product of sizes multiplied out;
it was refused ("'b' must be a tensor, got symbolic dim B"). Values at two sizes, at -O0 and -O2, one train
step against torch, and the refusal where no tensor has the size."""

from __future__ import annotations

import re

import numpy as np
import pytest

import archdsl
from archdsl import runtime

SRC = """
model m(x: float32[B, 3, L], y: float32[B, 3, L]) -> (per_example, per_element, strided, counts) {
    err = (x - y) ** 2
    per_example = sum(err) / shape(x)[0]
    per_element = sum(err) / (3 * shape(x)[0] * shape(x)[2])
    h = x -> conv1d(2, 3, stride=2, padding=1) as c                  # [B, 2, (L-1)//2+1]
    strided = sum(h, dim=[2]) / shape(h)[2]
    counts = cast(x[:, 0, 0], "int64") * 0 + shape(x)[2]
}
"""


@pytest.mark.parametrize("opt", [0, 2])
def test_sizes_read_at_run_time(opt):
    model = archdsl.compile_source(SRC, opt_level=opt)
    assert "dim_size" not in {n.op_type for n in model.graph.node}  # lowered to Shape / Squeeze / Cast
    sess = runtime.session(model)
    w = {t.name: t for t in model.graph.initializer}
    assert {"c.weight", "c.bias"} <= set(w)
    for b, n in ((2, 5), (3, 8)):
        rng = np.random.default_rng(b)
        x, y = (rng.standard_normal((b, 3, n)).astype(np.float32) for _ in range(2))
        per_example, per_element, strided, counts = sess.run(None, {"x": x, "y": y})
        e = ((x.astype(np.float64) - y) ** 2).sum()
        np.testing.assert_allclose(per_example, e / b, rtol=1e-5)
        np.testing.assert_allclose(per_element, e / (3 * b * n), rtol=1e-5)
        assert counts.dtype == np.int64 and counts.tolist() == [n] * b
        assert strided.shape == (b, 2)
    g = archdsl.check_source(SRC)
    assert sum(node.op == "dim_size" for node in g.nodes) == 5  # B; B and L; the conv's length; L


def test_the_strided_length_is_the_convs_output_length():
    model = archdsl.compile_source(SRC)
    x = np.random.default_rng(0).standard_normal((2, 3, 7)).astype(np.float32)
    strided = runtime.session(model).run(["strided"], {"x": x, "y": x})[0]
    torch = pytest.importorskip("torch")
    from onnx import numpy_helper
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    h = torch.nn.functional.conv1d(torch.from_numpy(x), w["c.weight"], w["c.bias"], stride=2, padding=1)
    np.testing.assert_allclose(strided, (h.sum(2) / h.shape[2]).numpy(), rtol=1e-5, atol=1e-6)


def test_a_loss_per_example_trains_like_torch():
    pytest.importorskip("torch")
    from ..training.harness import batches, compile_step, config, one_step_like_torch
    text = ("model vae(x: float32[B, 6], noise: float32[B, 2]) -> loss {\n"
            "    h = x -> linear(4) as enc\n"
            "    z = h[:, :2] + exp(h[:, 2:] / 2) * noise\n"
            "    r = z -> linear(6) as dec\n"
            "    kl = -0.5 * sum(1 + h[:, 2:] - h[:, :2] ** 2 - exp(h[:, 2:]))\n"
            "    loss = (sum((r - x) ** 2) + kl) / shape(x)[0]\n}\n")
    ct, fwd = compile_step(None, config(loss="model", opt="sgd", lr=0.05), text=text)
    assert "dim_size" in {n.op for n in fwd.nodes}
    one_step_like_torch(ct, fwd, batches(ct, 2, 3, 2, seed=1))


def test_a_size_no_tensor_has_is_computed_or_refused():
    """(L-1)//2 written by hand was refused (no tensor has it); it is computed from L (keypoints hunt). A bool
    tensor beside a size takes no number."""
    import numpy as np

    from archdsl import runtime
    src = "model m(x: float32[B, L]) -> y {\n    y = x / ((shape(x)[1] - 1) // 2) + x * (1 - L)\n}\n"
    x = np.arange(14, dtype=np.float32).reshape(2, 7)  # 1 - L is the formula (-L+1): a leading minus (review65)
    np.testing.assert_allclose(runtime.session(archdsl.compile_source(src)).run(None, {"x": x})[0], x / 3 - 6 * x)
    with pytest.raises(archdsl.ArchError, match=r"'b' must be a tensor, got symbolic dim B"):  # bool: no number
        archdsl.check_source("model m(x: bool[B, L]) -> y {\n    y = eq(x, shape(x)[0])\n}\n")


def test_a_product_of_sizes_without_a_number():
    """B*L (coefficient 1) was refused: the number's part of the product was taken for a missing source."""
    model = archdsl.compile_source("model m(x: float32[B, 3, L]) -> y {\n    y = sum(x) / (shape(x)[0] * "
                                   "shape(x)[2])\n}\n")
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(runtime.session(model).run(None, {"x": x})[0], x.sum() / 10, rtol=1e-5)


def test_sizes_at_fixed_sizes_and_in_a_block_called_again(tmp_path, capsys):
    """The size nodes took numbered names (mul_1), so at fixed sizes (run's and summary's check of the spec)
    the later numbered nodes shifted and were compared with others ('typed [B, 4] but comes out [2, 8]'), and
    a block called again after a tensor with the size 2*B appeared read it there and ran differently."""
    from archdsl.cli import main
    spec = tmp_path / "s.arch"
    spec.write_text("model m(x: float32[B, 4], y: float32[B, 8]) -> (a, p, q) {\n    a = x / (2 * shape(x)[0])\n"
                    "    p = x * 3.0\n    q = y * 3.0\n}\n")
    assert main(["summary", str(spec), "--dim", "B=2"]) == 0, capsys.readouterr().err
    assert main(["run", str(spec), "--batch", "2"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    src = ("block f(x) {\n    s = x / (2 * shape(x)[0])\n    return s -> linear(2)\n}\n"
           "model m(a: float32[B, 4]) -> (y1, y2, c) {\n    y1 = a -> f as enc\n    c = concat([a, a], dim=0)\n"
           "    y2 = a -> layer(\"enc\")\n}\n")
    model = archdsl.compile_source(src)
    a = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    y1, y2, _ = runtime.session(model).run(None, {"a": a})
    np.testing.assert_allclose(y1, y2, rtol=1e-6)


def test_products_with_a_formula_and_the_tensor_a_formula_is_read_from():
    """(L-3)//2+1 times B, or times 2, was refused as a whole; a formula was read from the first tensor that had
    it, a dead branch too, which the model then kept (and its parameters)."""
    src = ("model m(x: float32[B, 3, L]) -> (a, b) {\n    d = x -> conv1d(2, 3, stride=2) as unused_branch\n"
           "    h = x -> conv1d(4, 3, stride=2) as c\n    a = sum(h) / (shape(h)[0] * shape(h)[2])\n"
           "    b = sum(h) / (2 * shape(x)[2] * shape(h)[2])\n}\n")
    model = archdsl.compile_source(src)
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 1
    assert not any(t.name.startswith("unused_branch") for t in model.graph.initializer)
    x = np.random.default_rng(2).standard_normal((2, 3, 9)).astype(np.float32)
    a, b = runtime.session(model).run(None, {"x": x})
    n = (9 - 3) // 2 + 1
    np.testing.assert_allclose(a * (2 * n), b * (2 * 9 * n), rtol=1e-5)
    g = archdsl.check_source(src)
    assert all(node.inputs[0].producer is None or node.inputs[0].producer.name == "c"
               for node in g.nodes if node.op == "dim_size")


def test_a_negative_multiple_of_a_size_is_read_and_multiplied_out():
    """-T, T * -1 and -2 * T were refused ('(-T) is the length of no dim'), where 2 * T was read."""
    src = ("model m(x: float32[B, T]) -> (a, b, c) {\n    n = shape(x)[1]\n"
           "    a = x * -n\n    b = x * (n * -1)\n    c = x * (-2 * n)\n}\n")
    sess = runtime.session(archdsl.compile_source(src))
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    a, b, c = sess.run(None, {"x": x})
    np.testing.assert_allclose(a, -5 * x, rtol=1e-6)
    np.testing.assert_allclose(b, -5 * x, rtol=1e-6)
    np.testing.assert_allclose(c, -10 * x, rtol=1e-6)


def test_a_formula_no_tensor_has_is_computed_from_its_symbols():
    """xs / (W - 1) (an align_corners grid) and clamp(i + 1, max=W - 1) (a keypoint's neighbour) were refused:
    (W-1) is the length of no tensor's dim (keypoints hunt); it is W's size less 1, read at run time."""
    import numpy as np

    from archdsl import runtime
    src = ("model grid(hm: float32[B, K, H, W]) -> (nx, xr, half) {\n"
           "    nx = cast(positions(hm, dim=3), \"float32\") / (W - 1) * 2.0 - 1.0\n"
           "    xr = clamp(argmax(hm, dim=3) + 1, max=W - 1)\n    half = amax(hm) * ((H + 1) // 2 - 2 * K)\n}\n")
    hm = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    nx, xr, half = runtime.session(archdsl.compile_source(src)).run(None, {"hm": hm})
    np.testing.assert_allclose(nx, np.arange(7) / 6 * 2 - 1, rtol=1e-6)
    np.testing.assert_array_equal(xr, np.minimum(hm.argmax(3) + 1, 6))
    np.testing.assert_allclose(half, hm.max() * (3 - 6), rtol=1e-6)


def test_a_product_of_exact_divisions_is_computed_from_its_symbols():
    """After pixel_unshuffle(x, 2) the map is (H/2) x (W/2): H*W/4 beside a tensor (Glow's ActNorm log-det over
    a squeezed map) was refused as 'the length of no dim', though every factor is a dim (flows hunt)."""
    src = ("model m(x: float32[B, 1, H, W]) -> (hw, bh, s, d, sq) {\n    h = pixel_unshuffle(x, 2)\n"
           "    hw = h * (shape(h)[2] * shape(h)[3])\n    bh = h * (shape(h)[0] * shape(h)[2])\n"
           "    s = h * (shape(h)[2] + shape(h)[3])\n    d = h * (shape(h)[2] - 1)\n"
           "    sq = h * (shape(h)[2] * shape(h)[2])\n}\n")
    for opt in (0, 2):
        sess = runtime.session(archdsl.compile_source(src, opt_level=opt))
        for b, hh, ww in [(3, 6, 10), (1, 2, 2), (2, 8, 4)]:
            x = np.random.default_rng(hh).standard_normal((b, 1, hh, ww)).astype(np.float32)
            h = x.reshape(b, 1, hh // 2, 2, ww // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(b, 4, hh // 2, ww // 2)
            got = sess.run(None, {"x": x})
            want = [hh * ww // 4, b * hh // 2, hh // 2 + ww // 2, hh // 2 - 1, (hh // 2) ** 2]
            for g, k in zip(got, want):
                np.testing.assert_allclose(g, h * k, rtol=1e-6)
    mixed = "model m(x: float32[B, 1, H, W]) -> y {\n    u = pixel_unshuffle(x, 2)\n    y = u * (shape(u)[2] // 2)\n}\n"
    sess = runtime.session(archdsl.compile_source(mixed))  # ((H/2)//2): an exact division inside a floor (review80)
    for hh in (4, 6, 10):
        x = np.ones((1, 1, hh, 2), np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.full((1, 4, hh // 2, 1), hh // 4, np.float32))


def test_a_size_as_a_tensor_and_sqrt_or_max_of_a_size_advised():
    """RAFT's corr / sqrt(C) and PWC-Net's / max(W - 1, 1) over symbolic sizes were refused with 'expects a
    number' and no way out (superres hunt): tensor(C) is the size as a scalar read at run time."""
    src = ("model corr(f1: float32[B, C, W], f2: float32[B, C, W]) -> (y, z, n, m) {\n"
           "    y = matmul(transpose(f1, 1, 2), f2) / sqrt(tensor(C, dtype=\"float32\"))\n"
           "    z = f1 / maximum(tensor(W - 1, dtype=\"float32\"), 1.0)\n    n = tensor(B * C)\n"
           "    m = tensor(W // 2, dtype=\"int32\")\n}\n")
    for opt in (0, 2):
        sess = runtime.session(archdsl.compile_source(src, opt_level=opt))
        for b, c, w in [(2, 3, 5), (1, 4, 1)]:
            f1, f2 = np.random.default_rng(w).standard_normal((2, b, c, w)).astype(np.float32)
            y, z, n, m = sess.run(None, {"f1": f1, "f2": f2})
            np.testing.assert_allclose(y, f1.transpose(0, 2, 1) @ f2 / np.sqrt(c), rtol=1e-5)
            np.testing.assert_allclose(z, f1 / max(w - 1, 1), rtol=1e-6)
            assert (n.dtype, n.shape, int(n)) == (np.int64, (), b * c) and (m.dtype, int(m)) == (np.int32, w // 2)
    model = "model corr(f1: float32[B, C, W]) -> y {{\n    y = f1 / {}\n}}\n"
    for expr, advice in [("sqrt(C)", 'sqrt(tensor(C, dtype="float32"))'),
                         ("max(W - 1, 1)", 'maximum(tensor(W-1, dtype="float32"), 1.0)'),
                         ("min(C, W, 2)", 'tensor(C, dtype="float32"), and minimum(a, b) of tensors'),
                         ("float(W)", 'tensor(W, dtype="float32")')]:
        with pytest.raises(archdsl.ArchError, match="a size known only at run time; as a tensor it is read then: "
                           + re.escape(advice)):
            archdsl.check_source(model.format(expr))
    with pytest.raises(archdsl.ArchError, match="tensor\\(\\) of the size C: dtype is one of"):
        archdsl.check_source(model.format('tensor(C, dtype="bool")'))
    for expr in ("atan2(W, 2.0)", "sum([W, 1])"):  # no one-argument form to advise (review80 hunt)
        with pytest.raises(archdsl.ArchError, match="a size known only at run time$"):
            archdsl.check_source(model.format(expr))
    with pytest.raises(archdsl.ArchError, match="a size is a whole number already: W itself"):
        archdsl.check_source(model.format("int(W)"))
    checked = "model m(f1: float32[B, {}, W]) -> y {{\n    assert sqrt(shape(f1)[1]) > 1, \"C too small\"\n" \
              "    y = f1 * 2.0\n}}\n"
    archdsl.check_source(checked.format("C"))  # in an assert: checked at a run's sizes, as T <= 1024 is
    looped = "model m(x: float32[B, C, 4]) -> y {\n    y = x\n    for i in range(2) {\n" \
             "        v = sqrt(shape(x)[1])\n    }\n}\n"
    with pytest.raises(archdsl.ArchError) as e:  # in a loop: which pass, as for any error (review81 hunt)
        archdsl.check_source(looped)
    assert any("in pass 1 of 2 of this loop" in text for text, _ in e.value.notes)
    with pytest.raises(archdsl.ArchError, match="C too small"):
        archdsl.check_source(checked.format("1"))
