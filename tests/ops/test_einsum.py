"""ops/einsum.py, property-based against torch.einsum (see core_harness.py for what every run_op case checks):
random equations (explicit and implicit outputs, letters summed in one operand, diagonals, '...', size-1
broadcasting), symbolic batch dims, 16-bit and integer dtypes, and the diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl import runtime

from .core_harness import OPSET, SETTINGS, SYM, covers, refused, run_op

torch = pytest.importorskip("torch")


def _operands(eq: str, sizes: dict, seed: int, ones: set = frozenset()) -> list[np.ndarray]:
    """One array per operand of an ellipsis-free equation, each letter its size (1 for the `ones` of an
    operand, (operand, letter) pairs: broadcast)."""
    rng = np.random.default_rng(seed)
    terms = eq.split("->")[0].split(",")
    return [rng.standard_normal([1 if (k, c) in ones else sizes[c] for c in t]).astype(np.float32)
            for k, t in enumerate(terms)]


def _against_torch(eq: str, arrays: list[np.ndarray], **kw) -> None:
    names = [f"a{i}" for i in range(len(arrays))]
    y, _ = run_op(f'einsum("{eq}", [{", ".join(names)}])', **dict(zip(names, arrays)), **kw)
    want = torch.einsum(eq, *[torch.from_numpy(a).double() for a in arrays]).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@st.composite
def equations(draw, batch: bool = False):
    """(equation, sizes): 1-3 operands over the letters abcd (a letter may repeat within an operand: a
    diagonal), an explicit output of some of them in any order, or torch's implicit one. `batch`: every
    operand and the output start with z."""
    letters = "abcd"
    n = draw(st.integers(1, 3))
    terms = ["z" * batch + "".join(draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3)))
             for _ in range(n)]
    used = sorted(set("".join(terms)) - {"z"})
    sizes = {c: draw(st.integers(1, 4)) for c in used} | {"z": 2}
    if draw(st.booleans()) and not batch:
        return ",".join(terms), sizes
    out = draw(st.permutations(used))[:draw(st.integers(0, len(used)))]
    return ",".join(terms) + "->" + "z" * batch + "".join(out), sizes


@covers("einsum")
@SETTINGS
@given(eq=equations(), seed=st.integers(0, 99), opset=OPSET)
def test_einsum_matches_torch(eq, seed, opset):
    equation, sizes = eq
    _against_torch(equation, _operands(equation, sizes, seed), opset=opset)


@SETTINGS
@given(eq=equations(batch=True), seed=st.integers(0, 99), sym=SYM)
def test_einsum_over_a_symbolic_batch(eq, seed, sym):
    equation, sizes = eq
    _against_torch(equation, _operands(equation, sizes, seed), sym=sym)


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=3), data=st.data(), seed=st.integers(0, 99),
       sym=SYM)
def test_einsum_ellipsis_broadcasts_like_torch(lead, data, seed, sym):
    """A batched matmul over '...': the second operand's leading dims are a suffix of the first's, some 1."""
    cut = data.draw(st.integers(0, len(lead)))
    other = [1 if data.draw(st.booleans()) else d for d in lead[cut:]]
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(lead + [2, 3]).astype(np.float32)
    b = rng.standard_normal(other + [3, 4]).astype(np.float32)
    _against_torch("...ij,...jk->...ik", [a, b], sym=sym and bool(lead) and not cut and other[0] == lead[0])
    _against_torch("...ij,...jk", [a, b])  # implicit: ... first, then i, k
    _against_torch("i...j->j", [a.reshape(2, *lead, 3)] if lead else [a])


@pytest.mark.parametrize("eq", ["ijk->kij", "ijk->jki", "bijk->bkij", "ij->ji"])
def test_einsum_of_one_operand_permutes_it_as_written(eq):
    """A 3-cycle is not its own inverse: the permutation read the other way round gave a [3, 4, 2] for
    ijk->kij (the random equations seldom draw one)."""
    _against_torch(eq, [np.random.default_rng(0).standard_normal((2, 3, 4, 5)[:len(eq.split("-")[0])])
                        .astype(np.float32)])


@pytest.mark.parametrize("eq, shapes", [
    ("...ij,...jk->...ik", [(2, 3, 2, 3), (3, 3, 4)]),  # '...' aligned at the right: [2, 3] with [3]
    ("...ij,...jk", [(4, 1, 2, 3), (1, 5, 1, 2)]),      # [4, 1] with [1, 5] broadcast; j: 3 with 1
    ("i...,j...->...ij", [(2, 3, 4), (5, 4)]),
])
def test_einsum_ellipsis_cases(eq, shapes):
    rng = np.random.default_rng(0)
    _against_torch(eq, [rng.standard_normal(s).astype(np.float32) for s in shapes])


@SETTINGS
@given(eq=equations(), data=st.data(), seed=st.integers(0, 99))
def test_einsum_broadcasts_a_size_one_dim_like_torch(eq, data, seed):
    equation, sizes = eq
    terms = equation.split("->")[0].split(",")
    pairs = [(k, c) for k, t in enumerate(terms) for c in set(t)]
    ones = set(data.draw(st.lists(st.sampled_from(pairs), max_size=2))) if pairs else set()
    _against_torch(equation, _operands(equation, sizes, seed, ones))


@pytest.mark.parametrize("dtype", ["float16", "float64", "int64", "int32"])
def test_einsum_of_other_dtypes(dtype):
    """onnxruntime's float16 Einsum gave torch's numbers exactly here (and at 400 terms a sum); a bfloat16
    einsum is computed in float32 (ONNX Einsum takes no bfloat16: test_core_ops checks that model)."""
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((2, 3, 40)) * 4).astype(dtype)
    b = (rng.standard_normal((2, 40, 5)) * 4).astype(dtype)
    model = archdsl.compile_source(f"model m(a: {dtype}[2, 3, 40], b: {dtype}[2, 40, 5]) -> y {{\n"
                                   "    y = einsum(\"bij,bjk->bik\", [a, b])\n}\n")
    y = runtime.session(model, "cpu").run(None, {"a": a, "b": b})[0]
    want = torch.einsum("bij,bjk->bik", torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert y.dtype == want.dtype
    np.testing.assert_allclose(y, want, rtol=1e-3 if dtype == "float16" else 1e-7)


@pytest.mark.parametrize("eq, n", [("ij->i", 1), ("ij->", 1), ("ii->i", 1), ("ii", 1), ("ij,k->k", 2)])
def test_an_int64_einsum_sums_exactly_and_wraps_as_torch(eq, n):
    """A summed-out letter was onnxruntime's int64 ReduceSum, which goes through double: 2**53 + 1 + 1 + 1 gave
    2**53 + 4, and a sum past 2**63 gave 0 where torch wraps (ints hunt)."""
    a = np.array([[2**53, 1, 1, 1], [2**62, 2**62, 3, -2**63 + 5]], np.int64)
    if eq.startswith("ii"):
        a = np.array([[2**53 + 1, 7], [5, 2**60 + 1]], np.int64)
    shape = list(a.shape)
    operands = "[a]" if n == 1 else "[a, a[0, 0:1]]"
    for level in (0, 2):
        model = archdsl.compile_source(f"model m(a: int64{shape}) -> y {{\n    y = einsum(\"{eq}\", {operands})\n}}\n",
                                       opt_level=level)
        y = runtime.session(model, "cpu").run(None, {"a": a})[0]
        t = torch.from_numpy(a)
        want = torch.einsum(eq, t) if n == 1 else torch.einsum(eq, t, t[0, 0:1])
        np.testing.assert_array_equal(y, want.numpy())


def test_einsum_spaces_and_capitals_as_torch():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    _against_torch(" B a , a C ", [a, b])  # implicit output: ASCII order, capitals first
    _against_torch("bA,Ac", [a, b])


@pytest.mark.parametrize("call, match", [
    ('einsum("ij,jk->ik", [a])', r"names 2 operands, but 1 tensor was given"),
    ('einsum("ij->i", [a, b])', r"names 1 operand, but 2 tensors were given"),
    ('einsum("i1,jk", [a, b])', r"operand 0 'i1' holds '1'"),
    ('einsum("i...j...,jk", [a, b])', r"operand 0 'i...j...' holds a second '...'"),
    ('einsum("ijk,jk", [a, b])', r"operand 0 'ijk' has 3 subscripts and no \.\.\., but its tensor has rank 2"),
    ('einsum("ij,ik", [a, b])', r"subscript i is 2 in one operand and 3 in operand 1"),
    ('einsum("ij,jk->iz", [a, b])', r"output subscript z appears in no operand"),
    ('einsum("ij,jk->ii", [a, b])', r"output subscript i appears more than once"),
    ('einsum("ij,jk->...", [a, b])', r"the output '\.\.\.' has '\.\.\.' but no operand does"),
    ('einsum("ij->i->j", [a])', r"more than one '->'"),
    ('einsum("ii", [a])', r"subscript i is repeated in operand 0 'ii' with sizes 2 and 3"),
    ('einsum("ij,jk", [a, n])', r"dtypes differ"),
    ('einsum("ij", [m])', r"no arithmetic on bool"),
    ('einsum("ij,jk", a, b)', r'takes its tensors as one list: einsum\(equation, \[a, b\]\)'),
    # the equation after the tensors, or a chain's input where the equation goes (porting26 hunt)
    ('einsum([a, b], "ij,jk")', r'takes its equation first, then its tensors as one list: einsum\("ij,jk", \[a, b\]\)'),
    ('einsum(a, "ij->ji")', r'takes its equation first, then its tensors as one list: einsum\("ij->ji", \[x\]\)'),
    ('a -> einsum("ij->ji")', r"a chain `x -> einsum\(\.\.\.\)` gives x first, where the equation goes"),
    ('einsum([a, 3], "ij->ji")', r'takes its equation first, then its tensors as one list: einsum\("ij->ji", '
                                 r'\[a, b\]\)'),
    ('einsum([], "ij->ji")', r"takes its equation first"),
    ('einsum(split(a, [1, 1], axis=0), "ij,ij->i")', r'takes its equation first, then its tensors as one list: '
                                                     r'einsum\("ij,ij->i", \[a, b\]\)'),
    ('einsum("ij->ji", [a, 3])', r"'operands' must be a list of tensors, got list of 2 \(element 1 is int 3\)"),
])
def test_einsum_diagnostics(call, match):
    refused("model m(a: float32[2, 3], b: float32[3, 4], n: int64[3, 4], m: bool[2, 3]) -> y {\n"
           f"    y = {call}\n}}\n", match)


def test_einsum_signature():
    assert archdsl.ops.get("einsum").signature() == "einsum(equation, [operands, ...])"


def test_einsum_flops_are_those_of_its_pairwise_contraction():
    """Counted over every letter at once, "ij,jk,kl->il" of 64-long letters was 33.5M FLOPs, for the 1.05M of
    (a @ b) @ c (torch's FlopCounterMode: 1,048,576)."""
    from archdsl.ops import OpCall, get
    from archdsl.types import DType, TensorType
    t = TensorType(DType.float32, (64, 64))
    cost = lambda eq, n: get("einsum").cost(OpCall((t,) * n, (t,), {"equation": eq}))  # noqa: E731
    assert cost("ij,jk,kl->il", 3) == 2 * 2 * 64**3
    assert cost("ij,jk->ik", 2) == 2 * 64**3
    assert cost("ij,jk->i", 2) == 64 * 64 + 2 * 64 * 64  # k summed out of b first, then [i, j] @ [j]
    assert cost("ij->ji", 1) == 0 and cost("ij->i", 1) == 64 * 64


def test_einsum_that_sums_nothing_counts_a_multiply_per_product():
    """"bi,bj->bij" (an outer product) and "bi,bi->bi" counted 2 FLOPs per product, twice what the same `*`
    counts: with no letter summed there are no adds."""
    src = ("model m(a: float32[B, 64], b: float32[B, 32]) -> (y1, y2, h1, h2) {\n"
           "    y1 = einsum(\"bi,bj->bij\", [a, b])\n    y2 = unsqueeze(a, 2) * unsqueeze(b, 1)\n"
           "    h1 = einsum(\"bi,bi->bi\", [a, a])\n    h2 = a * a\n}\n")
    from archdsl.summary import summarize
    rows = {r["name"]: r["flops"] for r in summarize(archdsl.check_source(src))["layers"]}
    assert (rows["einsum_0"], rows["einsum_1"]) == (rows["mul_0"], rows["mul_1"]) == (64 * 32, 64)


_MATMUL_FORMS = ["bhqd,bhkd->bhqk", "bqd,bkd->bqk", "abcd,abed->abce", "ij,jk->ik", "ij,kj->ki", "i,i->", "i,j->ij",
                 "ij,j->ij", "i,i->i", "bls,bls->bls",  # elementwise: a Mul
                 "bi,bj->bij", "bij,bj->bi", "ji,jk->ki", "bij,bj->ib",
                 "bijd,bkjd->bik", "bhijd,bhkjd->bhik", "ijd,kjd->ik", "abc,bcd->ad", "bchw,bc->bhw",
                 "bijk,bjk->bi", "ij,ij->", "ab,cd->abcd", "bqhd,bkhd->bhqk",  # several letters a group (docs3)
                 "bij,bjk->b", "bln,bsn,bls->bls", "blhn,bshn,bhls,bshp->blhp", "ab,bc,cd->ad",
                 "bi,bi,bi->b"]  # a letter summed in one operand alone; three and four operands (ssm hunt)
# a diagonal (a letter repeated in an operand) and one operand: a mask and a ReduceSum, a Transpose (ops3 hunt)
_OTHER_FORMS = ["bjtj->bt", "fdf->f", "fdf->fd", "fdf->df", "ifdf->if", "hf,fdf->fh", "f,fdf->f", "ii->i",
                "bii,bij->bj", "iij->ji", "ij->ji", "ij->j", "ij->", "bhij->bhj"]


def test_contractions_at_size_zero_run_as_torch(tmp_path):
    """onnxruntime's Einsum kernel died of SIGFPE (the whole process) on `bhqd,bhkd->bhqk` at a batch or a
    contracted size of 0 (ops2 hunt), and in float16, int64 and with a symbolic letter in a group of two
    (review58), and in three- and four-operand forms (ssm hunt): contractions go to MatMuls, pairwise, which take
    size 0; and on a diagonal of letters apart (bjtj->bt, fdf->f: ops3 hunt), taken by a mask now. In a child
    process, so that a regression fails this test instead of killing the run."""
    import subprocess
    import sys
    child = tmp_path / "child.py"
    child.write_text(f"""
import numpy as np, torch, archdsl
from archdsl import runtime

def run(eq, dt, symbols, zero):
    terms = eq.split("->")[0].split(",")
    dims = lambda t: ", ".join(c.upper() if c in symbols else "3" for c in t)
    decl = ", ".join(f"a{{k}}: {{dt}}[{{dims(t)}}]" for k, t in enumerate(terms))
    ops = ", ".join(f"a{{k}}" for k in range(len(terms)))
    src = f"model m({{decl}}) -> y {{{{\\n    y = einsum(\\"{{eq}}\\", [{{ops}}])\\n}}}}\\n"
    arrs = [np.ones([0 if c == zero else 3 for c in t], dt) for t in terms]
    y = runtime.session(archdsl.compile_source(src)).run(None, {{f"a{{k}}": a for k, a in enumerate(arrs)}})[0]
    want = torch.einsum(eq, *map(torch.from_numpy, arrs)).numpy()
    assert y.shape == want.shape and np.array_equal(y, want), (eq, dt, zero, y.shape, want.shape)

for eq in {_MATMUL_FORMS + _OTHER_FORMS!r}:
    for zero in sorted(set(eq.split("->")[0].replace(",", ""))):
        run(eq, "float32", zero, zero)
for dt, eq, symbols in (("float16", "bhqd,bhkd->bhqk", "b"), ("int64", "bqd,bkd->bqk", "b"),
                        ("float32", "bijd,bkjd->bik", "bj")):
    run(eq, dt, symbols, "b")
print("ok")
""")
    run = subprocess.run([sys.executable, str(child)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.split() == ["ok"], (run.returncode, run.stderr[-2000:])


@pytest.mark.parametrize("eq", _MATMUL_FORMS + _OTHER_FORMS)
def test_contractions_written_as_matmul_match_torch(eq):
    terms = eq.split("->")[0].split(",")
    sizes = dict(zip("bhqdkijeacwlnsptf", (2, 3, 4, 5, 6, 3, 4, 5, 2, 3, 2, 3, 2, 4, 5, 3, 4)))
    _against_torch(eq, _operands(eq, sizes, 0))
    model = archdsl.compile_source("model m(" + ", ".join(
        f"a{k}: float32[{', '.join(str(sizes[c]) for c in t)}]" for k, t in enumerate(terms)) +
        f') -> y {{\n    y = einsum("{eq}", [{", ".join(f"a{k}" for k in range(len(terms)))}])\n}}\n')
    ops = {n.op_type for n in model.graph.node}  # a product that sums no letter is a broadcast Mul
    assert "Einsum" not in ops and ("MatMul" in ops or "Mul" in ops or eq in _OTHER_FORMS), ops
