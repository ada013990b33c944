"""IR graph: use-def lists stay in step with node inputs through every mutation helper; the checker
catches corrupted graphs; the printer is deterministic."""

from __future__ import annotations

import collections

import pytest

import archdsl
from archdsl.diagnostics import ArchError, ShapeError
from archdsl.ir import Graph, check, print_graph
from archdsl.types import DType, TensorType

_TINY = ("model tiny(x: float32[B, 4]) -> y {\n"
         "    y = x -> linear(3) as fc1 -> relu -> linear(2, bias=false) as fc2\n}\n")


def tiny() -> Graph:
    return archdsl.check_source(_TINY, file="tiny.arch")


def assert_use_def(g: Graph) -> None:
    """Every value's use list holds each reading node exactly as often as the node reads it."""
    want: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for n in g.nodes:
        for v in n.inputs:
            want[id(v)][id(n)] += 1
    for v in g.values():
        assert collections.Counter(id(n) for n in v.uses) == want.get(id(v), collections.Counter()), v
    for n in g.nodes:
        for o in n.outputs:
            assert o.producer is n


def test_fresh_graph_is_consistent():
    g = tiny()
    assert_use_def(g)
    assert [n.op for n in g.nodes] == ["linear", "relu", "linear"]
    x = g.inputs[0]
    assert x.uses == [g.nodes[0]]


def test_node_reading_one_value_twice_and_replace_all_uses():
    g = tiny()
    relu = g.nodes[1]
    h = relu.outputs[0]
    sq = g.add_node("mul", [h, h], {}, "sq")
    assert h.uses.count(sq) == 2
    assert_use_def(g)
    # rewire everything that read relu's output onto fc1's output, then drop relu
    fc1_out = g.nodes[0].outputs[0]
    g.replace_all_uses_with(h, fc1_out)
    assert h.uses == []
    assert sq.inputs == [fc1_out, fc1_out]
    assert_use_def(g)
    g.remove_node(relu)
    assert relu not in g.nodes and relu not in fc1_out.uses
    assert_use_def(g)
    check(g)


def test_set_input_moves_one_use():
    g = tiny()
    fc2 = g.nodes[2]
    relu_out, x_like = g.nodes[1].outputs[0], g.nodes[0].outputs[0]
    g.set_input(fc2, 0, x_like)
    assert fc2 not in relu_out.uses and fc2 in x_like.uses
    assert_use_def(g)
    check(g)


def test_replace_all_uses_updates_graph_outputs():
    g = tiny()
    last = g.nodes[2].outputs[0]
    new = g.add_node("relu", [last], {}, "post").outputs[0]
    g.replace_all_uses_with(last, new)
    # the new node itself read `last`, so it now reads itself: put it back to keep SSA
    g.set_input(g.nodes[-1], 0, last)
    assert g.outputs == [("y", new)]
    assert_use_def(g)
    check(g)


def test_which_values_are_outputs_follows_every_way_outputs_change():
    """The graph keeps a count of its output values (rewrites ask it instead of scanning a train step's
    thousands of outputs): set whole, added, or moved by replace_all_uses_with, it must stay right."""
    g = tiny()
    y = g.outputs[0][1]
    other = g.nodes[1].outputs[0]
    assert g.is_output(y) and not g.is_output(other)
    g.set_output("h", other)
    assert g.is_output(other)
    new = g.add_node("relu", [y], {}, "post").outputs[0]
    g.replace_all_uses_with(y, new)
    g.set_input(g.nodes[-1], 0, y)
    assert g.is_output(new) and not g.is_output(y) and g.outputs == [("y", new), ("h", other)]
    g.outputs = [("y", y)]
    assert g.is_output(y) and not g.is_output(new) and not g.is_output(other)
    g.remove_node(g.nodes[-1])  # `new` is no longer an output: its node may go


def test_remove_node_whose_output_is_used_is_refused():
    g = tiny()
    with pytest.raises(ValueError, match="still used"):
        g.remove_node(g.nodes[1])
    with pytest.raises(ValueError, match="still used"):
        g.remove_node(g.nodes[2])  # a graph output
    assert_use_def(g)


def test_prune_params_after_removing_a_layer():
    g = tiny()
    fc2 = g.nodes[2]
    g.replace_all_uses_with(fc2.outputs[0], g.nodes[1].outputs[0])
    g.remove_node(fc2)
    g.prune_params()
    assert set(g.params) == {"fc1.weight", "fc1.bias"}
    assert g.param_count() == 15
    assert_use_def(g)


def test_check_catches_a_corrupted_type():
    g = tiny()
    g.nodes[1].outputs[0].type = TensorType(DType.float32, (7, 3))
    with pytest.raises(ShapeError, match="relu 'relu_0': recorded type .* disagrees"):
        check(g)


def test_check_catches_a_stale_use_list_and_use_before_definition():
    g = tiny()
    g.nodes[1].inputs[0].uses.clear()
    with pytest.raises(ArchError, match="stale"):
        check(g)
    g2 = tiny()
    g2.nodes[0], g2.nodes[1] = g2.nodes[1], g2.nodes[0]
    with pytest.raises(ArchError, match="before it is defined"):
        check(g2)


def test_check_catches_an_output_nothing_defines():
    """A pass that erased the node making an output (leaving the output pointing at it) must not pass."""
    g = tiny()
    last = g.nodes.pop()
    assert g.outputs[0][1] is last.outputs[0]
    with pytest.raises(ArchError, match="output 'y' is not defined"):
        check(g)


def test_check_catches_a_shape_rule_violation_on_rewire():
    g = tiny()
    fc2 = g.nodes[2]
    g.set_input(fc2, 0, g.inputs[0])   # fc2 expects 3 features, x has 4
    with pytest.raises(ShapeError):
        check(g)


_GOLDEN = """\
model tiny(x: float32[B, 4]) -> (y)
  param fc1.weight: float32[3, 4]
  param fc1.bias: float32[3]
  param fc2.weight: float32[2, 3]
  %0: float32[B, 3] = linear(x, fc1.weight, fc1.bias) {out_features=3, bias=true}  # fc1 @ tiny.arch:2
  %1: float32[B, 3] = relu(%0)  # relu_0 @ tiny.arch:2
  %2: float32[B, 2] = linear(%1, fc2.weight) {out_features=2, bias=false}  # fc2 @ tiny.arch:2
  return y=%2
"""


def test_printer_golden_and_deterministic():
    assert print_graph(tiny()) == _GOLDEN
    assert print_graph(tiny()) == print_graph(tiny())


def test_printer_shows_constants():
    g = archdsl.check_source("model c(x: float32[2]) -> y { y = x * 0.5 + 1 }\n", file="c.arch")
    text = print_graph(g)
    assert "const %c0: float32[] = 0.5" in text and "const %c1: float32[] = 1.0" in text
    assert "= mul(x, %c0)" in text and "= add(%0, %c1)" in text
    big = print_graph(archdsl.check_source("model c(x: float32[9]) -> (y, z) {\n    y = x + tensor([1.0] * 9)\n"
                                           "    z = x[0:8] + tensor([2.0] * 8)\n}\n", file="c.arch"))
    assert "float32[9] = <9 values>" in big and "float32[8] = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]" in big


def test_a_wide_node_keeps_its_input_positions_through_every_rewire():
    """A concat of 40 values, some read twice: replace_all_uses_with moves each value's every place (the wide
    node's positions come from Node.slots, not a scan of its inputs), set_input keeps them, and the checker
    catches positions that went stale."""
    g = archdsl.check_source("model w(x: float32[B, 4]) -> y {\n    hs = [x * float(i) for i in range(20)]\n"
                             "    y = concat(hs + hs, axis=1)\n}\n")
    (cat,) = [n for n in g.nodes if n.op == "concat"]
    hs = cat.inputs[:20]
    relu = g.add_node("relu", [g.inputs[0]], {}, "r")
    g.nodes.remove(relu)
    g.nodes.insert(0, relu)
    r = relu.outputs[0]
    for k in (3, 7, 3):
        g.replace_all_uses_with(cat.inputs[k], r)
        assert cat.slots is not None  # wide: positions kept
    assert [i for i, v in enumerate(cat.inputs) if v is r] == [3, 7, 23, 27]
    assert cat.inputs[3] is r and hs[3].uses == [] and r.uses.count(cat) == 4
    g.set_input(cat, 23, hs[3])
    g.replace_all_uses_with(r, hs[5])
    assert [i for i, v in enumerate(cat.inputs) if v is hs[5]] == [3, 5, 7, 25, 27]
    assert cat.inputs[23] is hs[3] and r.uses == []
    assert_use_def(g)
    check(g)
    cat.inputs[0], cat.inputs[1] = cat.inputs[1], cat.inputs[0]  # behind the graph's back
    with pytest.raises(ArchError, match="input positions of 'concat.*' are stale"):
        check(g)


@pytest.mark.parametrize("body, said", [
    ("y = ctc_loss(lp, tensor([[1, 2]]), tensor([9]), tensor([2]))",
     r"ctc_loss 'ctc_loss_0' reads 9 among the input_lengths of its 2 frames \(0\.\.2\)"),
    ("y = ctc_loss(lp, tensor([[1, 2]]), tensor([2]), tensor([3]))",
     r"reads 3 among the target_lengths of its 2 label positions \(0\.\.2\)"),
    ("y = cross_entropy(lp[0], tensor([4]))", r"cross_entropy 'cross_entropy_0' reads 4 among the labels of its 4 "
                                              r"classes \(0\.\.3\)"),
    ("y = cross_entropy(lp[0], tensor([-1])) + cross_entropy(lp[1], tensor([-2]), ignore_index=-1)",
     r"'cross_entropy_0' reads -1 among the labels of its 4 classes \(0\.\.3\)"),
    ("y = cross_entropy(lp[1], tensor([-2]), ignore_index=-1)", r"reads -2 among the labels of its 4 classes "
                                                                r"\(0\.\.3, or -1\)"),
    ("y = x -> lstm(3, lengths=tensor([4]))", r"lstm 'lstm_0' reads 4 among the lengths of its 3 steps \(1\.\.3\)"),
    ("y = x -> gru(3, lengths=tensor([0]))", r"gru 'gru_0' reads 0 among the lengths of its 3 steps \(1\.\.3\)"),
])
def test_labels_and_lengths_known_at_compile_time_must_fit(body, said):
    """A constant length past ctc_loss's frames was folded into a number (1.033 where torch refuses it); a
    constant label past the classes, or an lstm length past its steps, built and failed in onnxruntime only."""
    with pytest.raises(ShapeError, match=said):
        archdsl.check_source(f"model m(lp: float32[2, 1, 4], x: float32[1, 3, 4]) -> y {{\n    {body}\n}}\n")


def test_labels_and_lengths_that_fit_pass_the_checker():
    archdsl.check_source("model m(lp: float32[2, 1, 4], x: float32[1, 3, 4]) -> y {\n"
                         "    y = ctc_loss(lp, tensor([[1, 2]]), tensor([2]), tensor([1])) + cross_entropy(lp[0], "
                         "tensor([3]), ignore_index=-1) + cross_entropy(lp[1], tensor([-1]), ignore_index=-1) + "
                         "mean(x -> lstm(3, lengths=tensor([3])))\n}\n")
