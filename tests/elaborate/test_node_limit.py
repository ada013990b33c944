"""The node limit (Limits.nodes, lowered here to keep the graphs small): a loop that cannot fit is refused
after its second pass, not when its last node passes the limit (600,000 relus took 25 s to say so)."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.diagnostics import LimitError
from archdsl.elaborate.scalars import Limits


def _model(body: str) -> str:
    return f"model m(x: float32[B, 4]) -> y {{\n    h = x\n{body}\n    y = h\n}}\n"


@pytest.fixture(autouse=True)
def small_limit(monkeypatch):
    monkeypatch.setattr(Limits, "nodes", 100)


@pytest.mark.parametrize("loop", ["for i in range(5000) {", "repeat 5000 {"])
def test_a_loop_that_cannot_fit_is_refused_after_two_passes(loop):
    with pytest.raises(LimitError, match="more than 100 nodes: this loop of 5,000 passes makes 2 or more a pass") as e:
        archdsl.check_source(_model(f"    {loop}\n        h = h -> relu -> tanh\n    }}"))
    assert "in pass 2 of 5000" in str(e.value.notes)


def test_a_loop_whose_later_passes_make_fewer_nodes_is_left_to_run():
    """Only the fewer of the first two passes is projected: a first pass that builds more does not condemn."""
    chain = "h = h" + " -> relu" * 30
    archdsl.check_source(_model(f"    for i in range(60) {{\n        if i == 0 {{\n            {chain}\n        }}\n"
                                "        h = h -> tanh\n    }"))
    with pytest.raises(LimitError, match="more than 100 nodes$"):  # later passes that grow meet the limit itself
        archdsl.check_source(_model(f"    for i in range(60) {{\n        if i > 50 {{\n            {chain}\n"
                                    "        }\n        h = h -> tanh\n    }"))
