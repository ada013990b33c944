"""Shared by the pass tests: build IR graphs op by op, run them in onnxruntime with non-trivial weights."""

from __future__ import annotations

import numpy as np

from archdsl import ops
from archdsl.ir import Graph, Value
from archdsl.lower import lower_graph
from archdsl.runtime import session
from archdsl.types import DType, TensorType

OPSET = 24  # ONNX Attention has an onnxruntime kernel here, so fuse_attention is exercised too


class Builder:
    """Adds nodes the way the elaborator does (parameters from the op's ParamSpecs, named `<layer>.<p>`)."""

    def __init__(self, name: str = "g"):
        self.g = Graph(name)
        self.k = 0

    def input(self, name: str, shape, dtype=DType.float32) -> Value:
        return self.g.add_input(name, TensorType(dtype, tuple(shape)))

    def const(self, arr) -> Value:
        return self.g.add_const(np.asarray(arr))

    def op(self, name: str, *inputs: Value, **attrs) -> Value:
        od = ops.get(name)
        given = {**od.defaults(), **attrs}
        a = {at.name: ops.coerce_attr(od, at, given[at.name]) for at in od.attrs if at.name in given}
        ins = list(inputs)
        self.k += 1
        layer = f"{name}{self.k}"
        if od.params is not None:
            for spec in od.params([v.type for v in ins], a):
                ins.append(self.g.add_param(f"{layer}.{spec.name}", spec, DType.float32))
        node = self.g.add_node(od.name, ins, a, layer)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def output(self, name: str, v: Value) -> None:
        self.g.set_output(name, v)


def random_weights(g: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Every parameter random (BatchNorm statistics too, variances positive), so a fold is really tested."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, v in g.params.items():
        shape = tuple(v.type.shape)
        if name.endswith("running_var"):
            out[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    return out


def run(g: Graph, feeds: dict, weights: dict | None, opset: int = OPSET) -> list[np.ndarray]:
    model = lower_graph(g, opset=opset, seed=0, weights=weights).model
    import onnx
    onnx.checker.check_model(model, full_check=True)
    return session(model, "cpu", 1).run(None, feeds)


def feeds_for(g: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([d if isinstance(d, int) else 2 for d in v.type.shape]).astype(np.float32)
            for v in g.inputs}


def assert_close(a: list, b: list, tol: float = 1e-4) -> None:
    """NaN equals nothing, itself included: a pass that turned a value into NaN on both sides must not pass
    (no random graph here produces a NaN at -O0)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        scale = max(1.0, float(np.nanmax(np.abs(x))) if x.size else 1.0)
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * scale, equal_nan=False)
