"""ONNX's own shape inference against archdsl's inferred shapes, value by value. The lowering writes our
shapes into `value_info`; they are dropped first, or ONNX would only echo them back."""

from __future__ import annotations

import onnx

from archdsl.ir import Graph
from archdsl.lower import LowerResult


def onnx_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """name -> dims ONNX infers on its own: an int, a dim_param string, or None when unknown."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, strict_mode=True, data_prop=True)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in t.shape.dim]
    return out


def assert_shapes_agree(g: Graph, res: LowerResult) -> int:
    """Every value a node of `g` computes: ONNX infers the same rank, every dim we know as a number ONNX
    knows as the same number, and ONNX knows no number where we hold a symbol. Returns how many int dims
    were compared."""
    shapes = onnx_shapes(res.model)
    compared = 0
    for node in g.nodes:
        for v in node.outputs:
            name = res.names[id(v)]
            assert name in shapes, f"ONNX inferred no shape for {name} ({node.op})"
            theirs = shapes[name]
            assert len(theirs) == v.type.rank, f"{name} ({node.op}): ours {v.type}, ONNX {theirs}"
            for ours, their in zip(v.type.shape, theirs):
                if isinstance(their, int) or isinstance(ours, int):
                    assert ours == their, f"{name} ({node.op}): ours {v.type}, ONNX {theirs}"
                    compared += 1
    return compared
