"""The hint beside a broadcast of two dims a stack of strides rounds differently (4*((H//2)//2) against H): it
names a size where they differ and says what to do; never for dims that differ at every size."""

from __future__ import annotations

import pytest

import archdsl


def test_an_autoencoder_over_a_symbolic_size_says_why_its_output_is_not_its_input():
    """Two stride-2 convs and two transposed ones give 4*((H//2)//2), which is H only for H a multiple of 4:
    the broadcast error was right but said nothing of why, or what to do."""
    src = ("model ae(x: float32[B, 3, H, W]) -> loss {\n"
           "    z = x -> conv2d(16, 4, stride=2, padding=1) -> relu -> conv2d(8, 4, stride=2, padding=1)\n"
           "    r = z -> conv_transpose2d(16, 4, stride=2, padding=1) -> relu -> "
           "conv_transpose2d(3, 4, stride=2, padding=1)\n"
           "    loss = mean((r - x) ** 2)\n}\n")
    for loss in ("mean((r - x) ** 2)", "mean((x - r) ** 2)"):  # either side first (x first lost the hint)
        with pytest.raises(archdsl.ArchError, match=r"differ at dim 2 .* and dim 3 .*4\*\(H//4\) and H differ at "
                                                    r"some sizes of H .* resize one side to the other .* or give H a "
                                                    r"number"):  # both dims named, the first one's advice
            archdsl.check_source(src.replace("mean((r - x) ** 2)", loss))
    archdsl.check_source(src.replace("[B, 3, H, W]", "[B, 3, 16, 24]"))
    for body in ("x + (x -> maxpool2d(2))", "x + (x -> maxpool2d(2) -> upsample(scale_factor=4))"):
        with pytest.raises(archdsl.ArchError, match="cannot broadcast") as e:  # never equal: no such advice
            archdsl.check_source(f"model m(x: float32[B, 4, H, W]) -> y {{\n    y = {body}\n}}\n")
        assert "at some sizes" not in e.value.message
    unet = ("model u(x: float32[B, 4, H, W]) -> y {\n    e = x -> maxpool2d(2)\n"  # a level down: both formulas
            "    d = e -> maxpool2d(2) -> conv_transpose2d(4, 2, stride=2)\n    y = concat([e, d], axis=1)\n}\n")
    with pytest.raises(archdsl.ArchError, match=r"2\*\(H//4\) and \(H//2\) differ at some sizes of H \(0 and 1 "
                                                r"at H=2: "):
        archdsl.check_source(unet)
    deep = ("model m(x: float32[B, 4, H, W]) -> y {\n    d = x" + " -> maxpool2d(2)" * 5 +  # a stride of 32 (review61)
            " -> upsample(scale_factor=32)\n    y = x + d\n}\n")
    with pytest.raises(archdsl.ArchError, match=r"32\*\(H//32\) and H differ at some sizes of H"):
        archdsl.check_source(deep)
