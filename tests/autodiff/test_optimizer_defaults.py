"""The optimizers' defaults are torch.optim's: the step tests hand archdsl's own betas, eps and decay to torch,
so a wrong default would be copied to both sides there (a mutation audit found eps 1e-6 and betas
(0.9, 0.99) passing)."""

from __future__ import annotations

import pytest

from archdsl.autodiff import OptimConfig


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_defaults_are_torchs(name):
    torch = pytest.importorskip("torch")
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    d = cls([torch.nn.Parameter(torch.zeros(1))], lr=1e-3).defaults
    cfg = OptimConfig(name)
    assert cfg.decay == d["weight_decay"]
    if name == "sgd":
        assert cfg.momentum == d["momentum"] and cfg.nesterov == d["nesterov"]
    else:
        assert tuple(cfg.betas) == tuple(d["betas"]) and cfg.eps == d["eps"]
