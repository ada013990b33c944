"""What the evaluation-step limit charges for building values: a copy made in C is charged 1/16 of an item
walked in Python, so the idioms of long unrolled loops stay within the limit that stops runaway specs."""

from __future__ import annotations

import archdsl


def test_a_list_grown_by_plus_over_a_long_loop_stays_within_the_step_limit():
    """`ys = ys + [h]` is how an unrolled scan gathers its steps: its copies were charged as items walked, and a
    scan of 12,600 steps ran out of evaluation steps (ssm hunt)."""
    g = archdsl.check_source("model m(x: float32[B, 4]) -> y {\n    ys = []\n"
                             "    for t in range(20000) { ys = ys + [t] }\n    y = x * len(ys)\n}\n")
    assert len(g.nodes) == 1
