"""embedding: a lookup table indexed by integer ids (torch.nn.Embedding)."""

from __future__ import annotations

from ..types import DType
from ._common import NORMAL_REACH, drawn_top, positive, shape_str
from .registry import Attr, Init, OpDef, ParamSpec, fail, register


def _infer(ins, a):
    ids, w = ins
    if ids.dtype not in (DType.int64, DType.int32):
        fail(f"embedding: ids must be int64 or int32, got {ids.dtype} {shape_str(ids)}" + (
            '; an output layer tied to an embedding\'s table is h @ ref("emb.weight").T'
            if ids.dtype.is_float and ids.rank and ids.shape[-1] == w.shape[1] else ""))  # features, not ids
    if w.rank != 2:
        fail(f"embedding: table must be 2-D, got {shape_str(w)}")
    if not a["std"] >= 0:
        fail(f"embedding: std must be >= 0, got {a['std']}", "std")
    if not NORMAL_REACH * a["std"] <= (top := drawn_top(w.dtype)):  # inf past this (mutnew5)
        fail(f"embedding: std={a['std']} draws numbers past {top:g} (inf in the float32 draw or the {w.dtype} "
             "table)", "std")
    p, n = a.get("padding_idx"), w.shape[0]
    if p is not None and not -n <= p < n:
        fail(f"embedding: padding_idx {p} is not a row of a {n}-row table ({-n}..{n - 1})", "padding_idx")
    return [w.with_shape(ids.shape + (w.shape[1],))]


def _padding_row(p: int | None, rows: int) -> int | None:
    """torch's padding_idx, a negative one counted from the end."""
    return None if p is None else p % rows


def _params(ins, a):
    positive("embedding", a, "num_embeddings", "embedding_dim")
    return [ParamSpec("weight", (a["num_embeddings"], a["embedding_dim"]),
                      Init("normal", 0.0, a["std"], zero_row=_padding_row(a["padding_idx"], a["num_embeddings"])))]


register(OpDef(
    name="embedding", inputs=("ids",), category="layer", positions=("ids",), indexes=(0, 1, 0),
    attrs=(Attr("num_embeddings", "int"), Attr("embedding_dim", "int"),
           Attr("std", "float", 1.0, doc="init N(0, std): torch's nn.Embedding draws N(0, 1), Hugging Face's "
                                         "GPT-2 and BERT N(0, 0.02)"),
           Attr("padding_idx", "int?", None, doc="a row that starts at zero, no gradient through the lookup"),
           Attr("dtype", "str", "float32", choices=tuple(d.label for d in DType if d.is_float),
                doc="the table's dtype (a layer's parameters otherwise take its input's float dtype, and ids "
                    "have none): float16 or bfloat16 for a half-precision model from its first layer on")),
    params=_params,
    infer=_infer, lower=lambda e, ins, outs, c: e.op("Gather", [ins[1], ins[0]], outputs=outs, axis=0),
    grad=lambda b, c, ins, outs, gouts: [None, b.op("autodiff.embedding_grad", ins[0], gouts[0],
                                                    num_embeddings=c.in_types[1].shape[0],
                                                    padding_idx=_padding_row(c.attrs.get("padding_idx"),
                                                                             c.in_types[1].shape[0]))],
    cost=lambda c: 0,
    doc="Rows of a [num_embeddings, embedding_dim] table, N(0, std) init (std=1 as torch's nn.Embedding); "
        "padding_idx: a row that starts at zero and gets no gradient through this lookup, as torch's (weight "
        "decay, or a tied use of the table, still move it). dtype: the table's float dtype (float32; "
        "\"float16\" or \"bfloat16\" for a half-precision language model, as torch's .half()).",
))
