"""unfold and fold in a trained spec: one SGD step against torch autograd on the same graph
(harness.one_step_like_torch, F.unfold / F.fold from archdsl.training.torch_ref), over a symbolic batch at two
sizes. The spec is a small local (involution-like) layer: unfold's columns weighted per position by a
learned kernel, and a fold back to an image, so both gradient rules (each the other op) carry the loss."""

from __future__ import annotations

import pytest

from .harness import batches, compile_step, config, one_step_like_torch

pytest.importorskip("torch")

LOCAL = """
model local(x: float32[B, 2, 5, 6]) -> y {
    h = x -> conv2d(2, 1) as mix -> tanh                                   # [B, 2, 5, 6]
    u = unfold(h, [2, 3], padding=1, stride=[2, 1])                        # [B, 12, 3*6]
    w = h -> avgpool2d(1) -> unfold([2, 3], padding=1, stride=[2, 1])       # position-dependent weights
    f = fold(u * w, [5, 6], [2, 3], padding=1, stride=[2, 1])              # [B, 2, 5, 6], overlaps summed
    y = f -> flatten(1) -> linear(3) as head
}
"""


@pytest.mark.parametrize("batch", [2, 4])
def test_unfold_fold_train_like_torch(batch):
    ct, fwd = compile_step(None, config(loss="mse", opt="sgd", lr=0.1, momentum=0.9), text=LOCAL)
    assert {"unfold", "fold"} <= {n.op for n in fwd.nodes}
    one_step_like_torch(ct, fwd, batches(ct, 2, batch, 3, seed=5))


def test_unfold_gradient_over_symbolic_height_and_width_is_refused():
    """The forward runs at any H, W; its gradient (a fold onto H, W) needs them known, and says so."""
    import archdsl
    text = "model local(x: float32[B, 2, H, W]) -> y {\n    y = x -> conv2d(2, 1) as mix -> unfold(2) " \
           "-> mean(dim=[2]) -> linear(3) as head\n}\n"
    with pytest.raises(archdsl.ArchError, match=r"unfold: the gradient \(a fold onto the input's \[H, W\]\) needs "
                                                r"known height and width"):
        compile_step(None, config(loss="mse", opt="sgd"), text=text)
