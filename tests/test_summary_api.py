"""archdsl.summary.summarize from Python: the graph and the dims it is given checked as `summary --dim`
checks them."""

from __future__ import annotations

from pathlib import Path

import pytest

import archdsl
from archdsl.diagnostics import ArchError
from archdsl.summary import summarize

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.parametrize("dims, said", [({"Z": 4}, "dims: the model has no symbolic dim 'Z' (its symbolic dims: B)"),
                                        ({"B": -4}, "dims: B takes a whole number of 0 or more, got -4"),
                                        ({"B": 4.5}, "dims: B takes a whole number of 0 or more, got 4.5"),
                                        ({"B": None}, "dims: B takes a whole number of 0 or more, got None")])
def test_summarize_from_python_checks_its_dims_as_dim_does(dims, said):
    """{"Z": 4} counted "at Z=4" a model without Z, {"B": -4} gave B=1's count labelled B=-4, 4.5 counted as 4
    (review116)."""
    g = archdsl.check_file(SPECS / "mlp.arch")
    with pytest.raises(ArchError) as e:
        summarize(g, dims)
    assert e.value.message == said
    with pytest.raises(ArchError, match="^summarize takes the IR graph of a spec"):
        summarize(archdsl.compile_file(SPECS / "mlp.arch"))
    assert summarize(g, {"B": 0})["flops"] == 0 and summarize(g, {"B": 2})["flops"] == 2 * summarize(g)["flops"]
