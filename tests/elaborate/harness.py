"""What the elaboration tests share: a one-line model, a spec's output shape, files written for imports, the
message an unknown name gets."""

from __future__ import annotations

import pytest

import archdsl

_MODEL = "model m(x: float32[2, 4]) -> y { y = x }\n"


def out_shape(g) -> tuple:
    return tuple(g.outputs[0][1].type.shape)


def _files(tmp_path, **files):
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _said(inputs: str, expr: str) -> str:
    """The message of the unknown name in `y = expr` over the model's inputs."""
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check_source(f"model m({inputs}) -> y {{\n    y = {expr}\n}}\n")
    return e.value.message


def _each_said(inputs: str, cases: list) -> None:
    """Each expression's diagnostic over the model's inputs says its form, and suggests no other name."""
    for expr, said in cases:
        message = _said(inputs, expr)
        assert said in message and "did you mean" not in message, message
