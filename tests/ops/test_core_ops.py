"""Every op of the core op files, property-based. A one-op model is compiled (random weights loaded by
name, no optimization passes); it must pass the full ONNX check, ONNX's own shape inference must agree with
our shape rule on every value, onnxruntime's output must have exactly the shape (and dtype) our rule says,
and its values must equal a small numpy reference (core_harness.py) written from the op's definition (torch
semantics). Opset 17 and the newest are both drawn: Gelu and the reductions lower differently below 20/18.
A symbolic batch dim is drawn where an op allows one, so lowerings that read shapes at run time run too.

Property tests live in test_core_layers.py and test_core_tensor_ops.py (harness: core_harness.py); here,
that every core op has one, the call forms agree, and every dtype gives a diagnostic or a valid model."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import archdsl
from archdsl import ops, runtime

from . import (  # noqa: F401 - their @covers fill COVERED
    test_bitwise_ops,
    test_chunk_unbind,
    test_conv_functional,
    test_core_layers,
    test_core_tensor_ops,
    test_ctc_loss,
    test_detach,
    test_einsum,
    test_filled,
    test_gamma,
    test_grid_sample,
    test_indexing_ops,
    test_logical_ops,
    test_losses,
    test_lrn_cdist,
    test_math_ops,
    test_mobile_ops,
    test_more_activations,
    test_more_tensor_ops,
    test_random_ops,
    test_reductions,
    test_scan_repeat_ops,
    test_sort_scatter_ops,
    test_unfold_ops,
    test_vector_norm,
    test_vision_layers,
)
from .core_harness import CORE_MODULES, COVERED, NEWEST, close, rand, run_op


def test_every_core_op_is_covered():
    """Each op defined in a core op file has a property test here (a new op there needs one too)."""
    core = {op.name for op in ops.all_ops() if op.infer.__module__.rsplit(".", 1)[-1] in CORE_MODULES}
    assert core, "no core ops found"
    assert core - COVERED == set(), f"core ops without a test: {sorted(core - COVERED)}"
    assert COVERED - core == set(), f"tests claim ops that are not core ops: {sorted(COVERED - core)}"


@pytest.mark.parametrize("text", ["relu(x)", "x -> relu", "x -> relu()"])
def test_call_forms_agree(text):
    x = rand(2, 3)
    y, _ = run_op(text, x=x)
    close(y, np.maximum(x, 0))


# one small use of every core op, over inputs x [2, 3], x3 [2, 3, 1], x4, x5 (rank 4, 5) and a bool mask m
_USES = {
    "linear": "x -> linear(3)", "conv1d": "x3 -> conv1d(2, 1)", "conv2d": "x4 -> conv2d(2, 1)",
    "conv3d": "x5 -> conv3d(2, 1)", "conv": "conv(x4, x4[:2], bias=x[0, :2])", "batchnorm": "x3 -> batchnorm",
    "conv_transpose": "conv_transpose(x3, permute(x3, [1, 0, 2]))", "layernorm": "x -> layernorm",
    "dropout": "x -> dropout(0.1)", "embedding": "x -> embedding(5, 2)", "relu": "relu(x)",
    "leaky_relu": "leaky_relu(x)", "gelu": "gelu(x)", "silu": "silu(x)", "sigmoid": "sigmoid(x)", "tanh": "tanh(x)",
    "softmax": "softmax(x)", "log_softmax": "log_softmax(x)", "maxpool1d": "x3 -> maxpool1d(1)",
    "maxpool2d": "x4 -> maxpool2d(1)", "maxpool3d": "x5 -> maxpool3d(1)", "avgpool1d": "x3 -> avgpool1d(1)",
    "avgpool2d": "x4 -> avgpool2d(1)", "avgpool3d": "x5 -> avgpool3d(1)", "global_avgpool": "x3 -> global_avgpool",
    "global_maxpool": "x3 -> global_maxpool(keepdims=false)", "add": "x + x", "sub": "x - 1", "mul": "2 * x",
    "div": "x / x", "pow": "x ** 2", "matmul": "x @ x.T", "neg": "-x", "abs": "abs(x)", "exp": "exp(x)",
    "log": "log(x)", "sqrt": "sqrt(x)", "erf": "erf(x)", "reciprocal": "reciprocal(x)", "getitem": "x[:, 1:]",
    "flatten": "x3 -> flatten", "permute": "x -> permute([1, 0])", "transpose": "x -> transpose",
    "reshape": "x -> reshape([-1])", "concat": "concat([x, x])", "split": "split(x, 1)[0]", "roll": "roll(x, [1], [0])",
    "chunk": "chunk(x, 2, dim=1)[1]", "unbind": "unbind(x, 1)[2]",  # split_ops.py
    "floordiv": "x // x", "remainder": "x % x", "drop_path": "x -> drop_path(0.1)",
    "floor": "floor(x)", "ceil": "ceil(x)", "round": "round(x)", "sign": "sign(x)", "rsqrt": "rsqrt(x)",  # more_math.py
    "cumsum": "cumsum(x, -1)", "argmax": "argmax(x, 1)", "argmin": "argmin(x)", "tril": "tril(x)",
    "triu": "triu(x, -1)", "stack": "stack([x, x], dim=-1)",
    "pixel_shuffle": "x4 -> pixel_shuffle(1)", "pixel_unshuffle": "x4 -> pixel_unshuffle(1)",  # rearrange.py
    "flip": "flip(x, [0, -1])", "adaptive_avgpool1d": "x3 -> adaptive_avgpool1d(2)",  # adaptive_pool.py
    "adaptive_avgpool2d": "x4 -> adaptive_avgpool2d([2, 1])", "adaptive_maxpool1d": "x3 -> adaptive_maxpool1d(2)",
    "adaptive_maxpool2d": "x4 -> adaptive_maxpool2d(2)", "adaptive_avgpool3d": "x5 -> adaptive_avgpool3d(2)",
    "adaptive_maxpool3d": "x5 -> adaptive_maxpool3d([2, 1, none])",
    "instance_norm": "x -> unsqueeze(0) -> instance_norm(affine=true)",  # instance_norm.py
    "var": "var(x, 1)", "std": "std(x)", "logsumexp": "logsumexp(x, [1])", "normalize": "normalize(x)",  # reductions.py
    "cosine_similarity": "cosine_similarity(x, x3[:, :, 0])",
    "selu": "selu(x)", "celu": "celu(x)", "glu": "glu(x, 0)", "logsigmoid": "logsigmoid(x)",  # more_activations.py
    "softsign": "softsign(x)", "prelu": "x -> prelu",
    "detach": "detach(x)",  # detach.py
    "zeros_like": "zeros_like(x)", "ones_like": 'ones_like(x, dtype="int64")', "full_like": "full_like(x, 2)",
    "topk": "topk(x, 2)[0]", "gather": "gather(x, 1, argmax(x, 1, keepdim=true))",  # indexing.py
    "one_hot": "one_hot(argmax(x, 1), 3)", "tile": "tile(x, [2, 1, 2])",
    "einsum": 'einsum("ij,kj->ik", [x, x])',  # einsum.py
    "sort": "sort(x, 0)[0]", "argsort": "argsort(x, descending=true)",  # sorting.py
    "searchsorted": "searchsorted(x, x)",
    "logical_and": "logical_and(x, m)", "logical_or": "logical_or(m, x)", "logical_xor": "logical_xor(x, x)",
    "logical_not": "logical_not(x)",  # logical.py
    "bitwise_and": "bitwise_and(x, x)", "bitwise_or": "bitwise_or(x, x)", "bitwise_xor": "bitwise_xor(x, x)",
    "bitwise_not": "bitwise_not(x)",  # bitwise.py
    "lgamma": "lgamma(x)", "digamma": "digamma(x)",  # gamma.py
    "rand_like": "rand_like(x)", "randn_like": "randn_like(x3)", "randint_like": "randint_like(x, 2)",  # random.py
    "scatter_add": "scatter_add(x, 1, argsort(x), x)",  # scatter.py
    "scatter": "scatter(x, 1, argsort(x), x)", "scatter_reduce": 'scatter_reduce(x, 1, argsort(x), x, "sum")',
    "index_add": "index_add(x, 1, argmax(x, 1), x[:, :2], alpha=2)",
    "cumprod": "cumprod(x, 1)", "repeat_interleave": "repeat_interleave(x, 2, 1)", "eye": "eye(2, 3)",
    "unfold": "x4 -> unfold(1)", "fold": "fold(x3, [1, 1], 1)",  # unfold.py
    "local_response_norm": "x3 -> local_response_norm(3)", "cdist": "cdist(x, x[:1], p=1)",  # lrn, cdist.py
    "cross_entropy": "cross_entropy(x, positions(x)[:2])", "bce_with_logits": "bce_with_logits(x, x)",  # losses.py
    "unsqueeze": "x -> unsqueeze(0)", "squeeze": "x3 -> squeeze", "expand": "x3 -> expand(shape=[2, 3, 4])",
    "mean": "mean(x)", "sum": "sum(x, dim=[1])", "amax": "amax(x)", "amin": "amin(x)", "where": "where(m, x, x)",
    "masked_fill": "masked_fill(x, m, 0)", "causal_mask": "causal_mask(x, value=0)", "cast": "cast(x, 'float32')",
    "positions": "positions(x)", "clamp": "clamp(x, 0, 6)", "hardtanh": "hardtanh(x)", "relu6": "relu6(x)",
    "hardsigmoid": "hardsigmoid(x)", "hardswish": "hardswish(x)", "elu": "elu(x)", "softplus": "softplus(x)",
    "mish": "mish(x)", "minimum": "minimum(x, x)", "maximum": "maximum(x, 0)", "sin": "sin(x)", "cos": "cos(x)",
    **{n: f"{n}(x)" for n in ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")},  # trig.py
    "atan2": "atan2(x, x)", "log1p": "log1p(x)", "expm1": "expm1(x)", "log2": "log2(x)",  # logexp.py
    "log10": "log10(x)", "logaddexp": "logaddexp(x, 0)", "isnan": "isnan(x)", "isinf": "isinf(x)",  # finite.py
    "isfinite": "isfinite(x)", "nan_to_num": "nan_to_num(x)", "fmod": "fmod(x, x)", "trunc": "trunc(x)",
    "frac": "frac(x)",
    "norm": "norm(x, dim=[1])",  # vector_norm.py
    "ctc_loss": "ctc_loss(x3 -> permute([1, 0, 2]), i[:, :1], i[:, 0], i[:, 0])",  # ctc.py
    "grid_sample": "grid_sample(x4, x4[:, :2] -> permute([0, 2, 3, 1]))",  # grid_sample.py
    "affine_grid": "affine_grid(concat([x3 -> transpose(1, 2), x3 -> transpose(1, 2)], axis=1), [2, 1, 2, 2])",
    "eq": "eq(x, x)", "ne": "ne(x, 1)", "lt": "x < x", "le": "le(x, x)", "gt": "1 > x", "ge": "x >= x",  # compare.py
}


def _use(dtype: str, op: str) -> str:
    return (f"model m(x: {dtype}[2, 3], x3: {dtype}[2, 3, 1], x4: {dtype}[2, 3, 1, 1], x5: {dtype}[2, 3, 1, 1, 1], "
            f"m: bool[2, 3], i: int64[2, 2]) -> y {{\n    y = {_USES[op]}\n}}\n")


# grammar/REFERENCE.md's dtypes paragraph: onnxruntime's CPU kernels lacking for float64 (bfloat16 has few)
_NO_FLOAT64 = {"Conv", "ConvTranspose", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "PRelu", "Resize", "LSTM",
               "Gelu", "Erf", "Elu", "HardSigmoid", "Softplus", "LeakyRelu", "GridSample", "Tan", "Asin", "Acos",
               "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"}


@pytest.mark.parametrize("opset", [17, NEWEST])
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "bfloat16", "int64", "int32", "bool"])
def test_every_dtype_gives_a_diagnostic_or_a_valid_model(dtype, opset):
    """Whatever the input dtype and opset, an op either refuses with a diagnostic or lowers to a model that
    passes the full ONNX check (bool arithmetic, an int tensor filled with -inf, bf16 constants, a bf16 Conv
    below opset 22 used to slip through) and loads in onnxruntime's CPU provider (a bool Where did not), but
    for the kernels the REFERENCE says it lacks."""
    from archdsl.diagnostics import ArchError
    accepted = []
    for op in sorted(_USES):
        try:
            model = archdsl.compile_source(_use(dtype, op), opt_level=0, opset=opset)
        except ArchError:
            continue
        onnx.checker.check_model(model, full_check=True)
        if dtype != "bfloat16":  # and onnxruntime's CPU provider loads it (a bool Where did not)
            try:
                runtime.session(model, provider="cpu", threads=1)
            except Exception as e:
                missing = re.search(r"implementation for (\w+)\(", str(e))
                assert dtype == "float64" and missing and missing[1] in _NO_FLOAT64, f"{op}: {e}"
        accepted.append(op)
    if dtype == "float32":
        integer = {"embedding", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"}  # integer ids, bits
        assert accepted == sorted(set(_USES) - integer)
    if dtype == "int64":
        assert {"embedding", "add", "concat", "reshape", "getitem"} <= set(accepted)
    assert set(_USES) >= {op.name for op in ops.all_ops() if op.infer.__module__.rsplit(".", 1)[-1] in CORE_MODULES}
