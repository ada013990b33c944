"""The node limit (Limits.nodes, lowered here to keep the graphs small). A loop is not refused ahead of its
limit by projecting its first passes (review39: a pyramid of stages, or a loop that returns early, fit
within the limit and were refused): it is refused where its nodes pass the limit."""

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


def test_a_loop_past_the_limit_is_refused_where_it_passes_it():
    with pytest.raises(LimitError, match="more than 100 nodes$") as e:
        archdsl.check_source(_model("    repeat 5000 {\n        h = h -> relu -> tanh\n    }"))
    assert "pass 51 of 5000" in str(e.value.notes)


@pytest.mark.parametrize("body", [
    "    for d in [50, 20, 10, 5] {\n        repeat d {\n            h = h -> relu\n        }\n    }",  # 85 in all
    "    h = first(h, 3)",  # a loop of a million passes that returns at the fourth
])
def test_loops_within_the_limit_build_whatever_their_first_passes_make(body):
    block = "block first(x, n) {\n    for i in range(1000000) {\n        if i == n {\n            return x\n" \
            "        }\n        x = x -> linear(4) -> relu\n    }\n}\n"
    archdsl.check_source(block + _model(body))
