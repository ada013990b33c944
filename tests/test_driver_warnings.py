"""The API's compile and check functions give what `archdsl build` and `check` warn of as ArchWarning (the API
printed nothing and kept it in an undocumented list: a library user never saw torch's argument order read
otherwise, nor a layer the build left out)."""

from __future__ import annotations

import warnings

import pytest

import archdsl

TORCH_ORDER = "model m(x: float32[B, 3, 32, 32]) -> y {\n    y = x -> conv2d(3, 16, 3) -> relu\n}\n"
UNUSED = "model m(x: float32[B, 4]) -> y {\n    unused = x -> linear(5) as dead\n    y = x\n}\n"


@pytest.mark.parametrize("call", [archdsl.compile_source, archdsl.check_source])
def test_warnings_reach_the_caller(call):
    with pytest.warns(archdsl.ArchWarning, match=r"^<string>:2:14: conv2d\(3, 16, 3\) reads as out_channels=3") as got:
        call(TORCH_ORDER)
    assert got[0].filename == __file__  # pointing at the caller's line, not archdsl's
    with pytest.warns(archdsl.ArchWarning, match=r"'dead' \(linear\) is computed but reaches no output"):
        call(UNUSED)


def test_a_clean_spec_warns_of_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        archdsl.compile_source("model m(x: float32[B, 4]) -> y {\n    y = x -> linear(4)\n}\n")


def test_a_loop_warns_once_for_the_results_it_leaves_unread():
    """One ArchWarning per iteration (2000 for a loop of 2000), where the command line says it once."""
    src = "model m(x: float32[B, 4]) -> y {\n    repeat 50 as i {\n        u = x -> linear(5)\n    }\n    y = x\n}\n"
    with pytest.warns(archdsl.ArchWarning) as got:
        archdsl.check_source(src)
    assert len(got) == 1 and "(and 49 more made here" in str(got[0].message)


def test_a_train_step_from_python_warns_as_build_train_does(tmp_path):
    """compile_train_file gave no ArchWarning at all, neither the model's nor the train step's own (a head the
    loss never reads), which `archdsl build --train` prints (vqvae hunt)."""
    from archdsl.autodiff import TrainConfig
    from archdsl.driver import compile_train_file
    spec = tmp_path / "t.arch"
    spec.write_text("model m(x: float32[B, 3, 32, 32]) -> (y, z) {\n    h = x -> conv2d(3, 16, 3) -> global_avgpool\n"
                    "    y = h -> linear(4) as head1\n    z = h -> linear(2) as head2\n}\n")
    with pytest.warns(archdsl.ArchWarning) as got:
        compile_train_file(spec, TrainConfig(loss="mse", output="y"))
    said = [str(w.message) for w in got]
    assert any("reads as out_channels=3" in m for m in said) and any("'head2.weight'" in m for m in said), said
    assert all(w.filename == __file__ for w in got)


def test_a_first_call_left_out_says_the_layers_other_calls_keep_its_parameters():
    """`f(x) as f` made only to be called with layer("f"): 'leaves it out' read as if the shared layer was gone
    (capsule hunt); its parameters stay, read by the other calls."""
    src = ("block odefunc(h) { return h -> linear(8) as fc1 -> tanh -> linear(4) as fc2 }\n"
           "model m(x: float32[B, 4]) -> y {\n    unused = odefunc(x) as f\n    y = x + layer(\"f\")(x)\n}\n")
    with pytest.warns(archdsl.ArchWarning, match=r"'f.fc2' \(linear\) is computed but reaches no output: the built "
                                                 r"model leaves it out, not the parameters it reads, which the rest "
                                                 r"of the model reads"):
        g = archdsl.check_source(src)
    assert g.param_count() == 4 * 8 + 8 + 8 * 4 + 4


def test_a_view_made_only_for_its_shape_is_no_dead_result():
    """torch's NeRF pads with `expand(tensor([1e10]), dists[..., :1].shape)`: the slice exists for shape() alone
    and was warned of as a result reaching no output (porting4 hunt). A dead relu beside it, or a layer read only
    by rank(), is still said: the relu is work thrown away, the layer's parameters leave the model."""
    src = ("model m(d: float32[R, 15]) -> y {\n    n = shape(d[:, :1])\n    c = channels(d[:, 2:4])\n"
           "    t = d[:, :2].dtype\n    g = relu(d[:, 1:2])\n    r = rank(d -> linear(3))\n"
           "    y = concat([d, expand(tensor([1e10]), n)], axis=-1)\n}\n")
    with pytest.warns(archdsl.ArchWarning) as got:
        archdsl.check_source(src)
    said = sorted(str(w.message).split(": ", 1)[1].split(" is computed")[0] for w in got)
    assert said == ["'g' (relu)", "'linear_0' (linear)"], said  # the name the spec gave it, where it gave one


def test_a_dead_result_is_called_by_its_first_name_and_an_as_label_stays():
    """`h = mean(x)` then `z = h`, both unused: the first name the spec gave it; a label given with `as`, even one
    shaped as an automatic name (Keras's conv2d_1), is kept (review103 hunt: 'k' replaced `as linear_7`)."""
    src = ("model m(x: float32[B, 4]) -> y {\n    h = mean(x)\n    z = h\n    k = x -> linear(4) as linear_7\n"
           "    y = x\n}\n")
    with pytest.warns(archdsl.ArchWarning) as got:
        archdsl.check_source(src)
    said = sorted(str(w.message).split(": ", 1)[1].split(" is computed")[0] for w in got)
    assert said == ["'h' (mean)", "'linear_7' (linear)"], said


_BLOCK = "block blk(x) {\n    z = mean(x, -1, keepdim=true)\n    return x -> linear(4) as fc, z\n}\n"


@pytest.mark.parametrize("body, called", [
    ("    q = sum(x)\n    r = q\n    y = x", "q"),                      # the first name given, not a later copy's
    ("    w = mean(x) as mean_3\n    y = x", "mean_3"),                 # an `as` name that looks like op_N stays
    ("    y = x -> linear(4) as fc_1\n    z = layer(\"fc_1\")(x)", "fc_1#2"),  # a layer called again: its own name
    ("    y = x -> linear(4) as linear_a\n    z = layer(\"linear_a\")(x)", "linear_a#2"),  # op-like, no number
    ("    y = x -> linear(4) as linear_1\n    z = layer(\"linear_1\")(x)", "linear_1#2"),  # op-like: an `as` all the
    ("    y = x -> linear(4)\n    z = layer(\"linear_0\")(x)", "z"),  # same (was 'z'); an automatic name is not
    ("    y = x -> relu\n    r = topk(x, 2)\n    i = r[1]", "i"),         # a name given to a second output
    ("    v, i = topk(x, 2)\n    y = x", "v"),                         # names given by unpacking (was topk_0)
    ("    a, b = split(x, 2, dim=1)\n    y = x", "a"),
    ("    y, s = blk(x) as f", "z"),                                   # inside a labelled block call (f.mean_0)
    ("    a, s = blk(x) as f\n    b, s2 = layer(\"f\")(a)\n    y = b + s", "z"),  # and its call again (f.mean_0#2)
])
def test_the_unused_result_warning_says_the_name_the_spec_gave(body, called):
    src = _BLOCK + f"model m(x: float32[B, 4]) -> y {{\n{body}\n}}\n"
    with pytest.warns(archdsl.ArchWarning) as got:
        archdsl.check_source(src)
    said = [str(w.message) for w in got if "reaches no output" in str(w.message)]
    assert said and said[0].split(": ", 1)[1].startswith(f"'{called}' ("), said


def test_a_node_one_of_whose_results_is_read_for_its_shape_alone_is_still_said():
    """topk's values read by shape() alone, its indices by nothing: the topk is work thrown away (only a node all
    of whose results exist for shape() alone is no dead result)."""
    src = "model m(x: float32[B, 4]) -> y {\n    v, i = topk(x, 2)\n    y = expand(tensor([1.0]), shape(v))\n}\n"
    with pytest.warns(archdsl.ArchWarning, match=r"\(topk\) is computed but reaches no output"):
        archdsl.check_source(src)
