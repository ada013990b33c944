"""Hostile and random input: `archdsl check` answers 0 or 1 with a diagnostic, never a traceback or an
internal error (70); random valid programs compile, pass the ONNX checker and run to finite outputs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.cli import main
from archdsl.runtime import random_feeds, session

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEEDS = {name: (SPECS / name).read_text() for name in ("mlp.arch", "lenet5.arch", "resnet.arch")}

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

_WORDS = ["param", "let", "block", "model", "import", "as", "for", "in", "if", "elif", "else", "repeat", "return",
          "assert", "and", "or", "not", "true", "false", "none", "x", "y", "B", "T", "relu", "linear", "conv2d",
          "float32", "int64", "range", "len", "channels", "parameter", "ref", "flatten", "batchnorm", "depth"]
_PUNCT = ["(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "==", "->", "+", "-", "*", "/", "//", "%", "**", "@",
          ".", "...", "<", ">=", "!=", "\n", "\n    ", "#c\n", '"a{i}"', "'s'", "\\\n"]
_TOKENS = st.one_of(st.sampled_from(_WORDS), st.sampled_from(_PUNCT),
                    st.integers(-3, 10**12).map(str), st.sampled_from(["0.5", "1e3", "0x1f", "1_0", ".5"]))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check_cli(path: Path, text: str) -> int:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["check", str(path)])
    both = out.getvalue() + err.getvalue()
    assert rc in (0, 1), f"exit {rc} for:\n{text}\n---\n{both}"
    assert "Traceback" not in both and "internal error" not in both, f"for:\n{text}\n---\n{both}"
    if rc == 1:
        assert "error" in err.getvalue()
    return rc


def test_the_seed_specs_check_cleanly(workdir):
    for name, text in SEEDS.items():
        assert check_cli(workdir / name, text) == 0


@FUZZ
@given(tokens=st.lists(_TOKENS, max_size=40), wrap=st.booleans())
def test_token_soup_never_crashes(workdir, tokens, wrap):
    text = " ".join(tokens)
    if wrap:
        text = "model m(x: float32[B, 4]) -> y {\n    y = " + text + "\n}\n"
    check_cli(workdir / "soup.arch", text)


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    chars = list(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(chars) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "swap", "dup"]))
        if kind == "delete":
            del chars[i]
        elif kind == "insert":
            chars.insert(i, draw(st.sampled_from(list("()[]{},:;=-+*/.\n\"'#0 9a_\\@<>!") + ["\x00", "é"])))
        elif kind == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            chars.insert(i, chars[i])
    return name, "".join(chars)


@FUZZ
@given(case=mutated())
def test_mutated_specs_never_crash(workdir, case):
    name, text = case
    check_cli(workdir / name, text)


# ---- random valid programs ----

_UNARY = ["relu", "sigmoid", "tanh", "gelu", "silu", "leaky_relu(negative_slope=0.1)", "softmax",
          'gelu(approximate="tanh")']


@st.composite
def valid_program(draw):
    feats = draw(st.integers(1, 6))
    lines, n = [], feats
    for k in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["unary", "linear", "norm", "scalar", "residual", "labelled"]))
        if kind == "unary":
            lines.append(f"h = h -> {draw(st.sampled_from(_UNARY))}")
        elif kind in ("linear", "labelled"):
            n = draw(st.integers(1, 6))
            label = f' as "fc{k}"' if kind == "labelled" else ""
            lines.append(f"h = h -> linear({n}, bias={draw(st.sampled_from(['true', 'false']))}){label}")
        elif kind == "norm":
            lines.append("h = h -> layernorm")
        elif kind == "scalar":
            op = draw(st.sampled_from(["+", "-", "*", "/"]))
            lines.append(f"h = h {op} {draw(st.sampled_from(['0.5', '2', '1.5']))}")
        else:
            lines.append(f"h = relu(h -> linear({n})) + h")
    body = "\n    ".join(["h = x"] + lines + ["y = h"])
    return f"model rnd(x: float32[B, {feats}]) -> y {{\n    {body}\n}}\n"


@st.composite
def valid_conv_program(draw):
    """A CNN: conv / batchnorm / activation / pools / residual blocks with the spatial size tracked so every
    window fits, then a head (global pool or flatten) and a linear classifier."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9))
    sig = f"x: float32[B, {c}, {h}, {w}]"
    lines = ["h = x"]
    for k in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "depthwise", "bn", "act", "maxpool", "avgpool", "residual", "concat"]))
        if kind == "conv":
            out, ks = draw(st.integers(1, 4)), draw(st.integers(1, 3))
            pad = draw(st.integers(0, ks // 2)) if draw(st.booleans()) else '"same"'
            stride = 1 if pad == '"same"' else draw(st.integers(1, 2))
            p = (ks - 1) // 2 if pad == '"same"' else pad
            if min(h, w) + 2 * p < ks:
                continue
            lines.append(f"h = h -> conv2d({out}, {ks}, stride={stride}, padding={pad}) as \"c{k}\"")
            if pad != '"same"':
                h, w = (h + 2 * p - ks) // stride + 1, (w + 2 * p - ks) // stride + 1
            c = out
        elif kind == "depthwise":
            lines.append(f"h = h -> conv2d({c}, 3, padding=1, groups={c}, bias=false)")
        elif kind == "bn":
            lines.append("h = h -> batchnorm")
        elif kind == "act":
            lines.append(f"h = h -> {draw(st.sampled_from(_UNARY[:5]))}")
        elif kind in ("maxpool", "avgpool") and min(h, w) >= 2:
            ceil = draw(st.booleans())
            lines.append(f"h = h -> {kind}2d(2, ceil_mode={'true' if ceil else 'false'})")
            h, w = (-(-h // 2), -(-w // 2)) if ceil else (h // 2, w // 2)
        elif kind == "residual":
            lines.append(f"h = relu(h + (h -> conv2d({c}, 3, padding=1, bias=false) -> batchnorm))")
        elif kind == "concat":
            lines.append("h = concat([h, h -> relu], axis=1)")
            c *= 2
    classes = draw(st.integers(1, 5))
    if draw(st.booleans()):
        lines.append(f"y = h -> global_avgpool -> flatten -> linear({classes})")
    else:
        lines.append(f"y = h -> flatten -> linear({classes}) -> softmax")
    body = "\n    ".join(lines)
    return f"model cnn({sig}) -> y {{\n    {body}\n}}\n", classes


def _compile_check_run(text: str, want_tail: tuple) -> None:
    model = archdsl.compile_source(text, file="rnd.arch")
    onnx.checker.check_model(model, full_check=True)
    sess = session(model, provider="cpu", threads=1)
    for batch in (1, 3):
        (y,) = sess.run(None, random_feeds(sess, batch=batch))
        assert y.shape == (batch, *want_tail), text
        assert np.isfinite(y).all(), text


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=valid_program())
def test_random_valid_programs_compile_check_and_run(text):
    g = archdsl.check_source(text, file="rnd.arch")
    _compile_check_run(text, tuple(g.outputs[0][1].type.shape[1:]))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=valid_conv_program())
def test_random_valid_cnns_compile_check_and_run(case):
    text, classes = case
    _compile_check_run(text, (classes,))


def _same_at_every_level(text: str) -> None:
    """-O0, -O1 and -O2 builds of one program agree on the same inputs (the weights come from the seed and
    the parameter names, so BatchNorm folding and pre-transposed weights start from the same values)."""
    outs, feeds = [], None
    for level in (0, 1, 2):
        sess = session(archdsl.compile_source(text, file="rnd.arch", opt_level=level), provider="cpu", threads=1)
        feeds = feeds or random_feeds(sess, batch=3, seed=5)
        outs.append(sess.run(None, feeds)[0])
    for level, out in enumerate(outs[1:], 1):
        np.testing.assert_allclose(out, outs[0], rtol=1e-4, atol=1e-4, err_msg=f"-O{level}\n{text}")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=valid_program())
def test_random_programs_give_the_same_outputs_at_every_opt_level(text):
    _same_at_every_level(text)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=valid_conv_program())
def test_random_cnns_give_the_same_outputs_at_every_opt_level(case):
    _same_at_every_level(case[0])


@FUZZ
@given(name=st.sampled_from(["hidden", "classes", "nope", "", "hidden hidden"]),
       value=st.lists(_TOKENS, max_size=8).map(" ".join), eq=st.booleans())
def test_random_defines_never_crash(workdir, name, value, eq):
    """-D NAME=VALUE with any value: a diagnostic (or a model), never a traceback."""
    spec = workdir / "mlp.arch"
    spec.write_text(SEEDS["mlp.arch"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["check", str(spec), "-D", f"{name}={value}" if eq else name])
    assert rc in (0, 1), (name, value, err.getvalue())
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
