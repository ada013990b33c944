"""What the elaboration tests share: a one-line model, a spec's output shape, files written for imports."""

from __future__ import annotations

_MODEL = "model m(x: float32[2, 4]) -> y { y = x }\n"


def out_shape(g) -> tuple:
    return tuple(g.outputs[0][1].type.shape)


def _files(tmp_path, **files):
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
