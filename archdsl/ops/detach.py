"""detach: the value, with no gradient through it (torch's x.detach(), JAX's stop_gradient).

What training models write for a straight-through estimator (VQ-VAE's z + detach(q - z)), a target network or
a stop-gradient branch (BYOL, SimSiam), a GAN's discriminator step on generated images. An Identity in ONNX; an
inference graph drops it (remove_noops), a train step keeps it as the place its gradient stops."""

from __future__ import annotations

from .registry import OpDef, register

__all__: list[str] = []


register(OpDef(
    name="detach", inputs=("x",), category="tensor", aliases=("stop_gradient",), elementwise=True,
    infer=lambda ins, a: [ins[0]], lower=lambda e, ins, outs, c: e.op("Identity", ins, outputs=outs),
    cost=lambda c: 0, grad=lambda b, c, ins, outs, gouts: [None],
    doc="x unchanged, but no gradient flows back through it (torch's x.detach(), stop_gradient): "
        "z + detach(q - z) is a straight-through estimator. Parameters that reach the loss only through it "
        "are left as they are by a train step, as torch leaves a parameter whose .grad is None.",
))
