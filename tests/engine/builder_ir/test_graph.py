"""ir.Graph: edits keep producers and uses in sync, names stay unique, and lint() catches what a careless edit
breaks."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine.dtypes import DataType
from engine.enums import ActivationType, ElementWiseOperation, LayerType
from engine.ir import Graph, IRError, graph_from_network

F = DataType.FLOAT


def chain() -> tuple[Graph, list]:
    """x -> relu -> sigmoid -> y (graph output)."""
    g = Graph("chain")
    x = g.add_input("x", F, (2, 3))
    relu = g.add_node(LayerType.ACTIVATION, [x], [("r", F, (2, 3))], {"activation_type": ActivationType.RELU})
    sig = g.add_node(LayerType.ACTIVATION, [relu.outputs[0]], [("y", F, (2, 3))],
                     {"activation_type": ActivationType.SIGMOID})
    g.mark_output(sig.outputs[0])
    return g, [x, relu, sig]


def test_uses_follow_every_edit() -> None:
    g, (x, relu, sig) = chain()
    assert x.uses == [(relu, 0)] and relu.outputs[0].uses == [(sig, 0)]
    g.set_input(sig, 0, x)
    assert x.uses == [(relu, 0), (sig, 0)] and relu.outputs[0].uses == []
    extra = g.add_node(LayerType.ELEMENTWISE, [x, x], [("s", F, (2, 3))], {"op": ElementWiseOperation.SUM})
    g.replace_all_uses_with(x, extra.outputs[0])
    assert x.uses == [(extra, 0), (extra, 1)]
    assert relu.inputs[0] is extra.outputs[0] and sig.inputs[0] is extra.outputs[0]
    g.toposort()  # extra was appended after its readers
    g.lint()
    assert [n.name for n in g.nodes].index(extra.name) == 0


def test_fresh_names_never_collide() -> None:
    g, _ = chain()
    node = g.add_node(LayerType.IDENTITY, [g.value("x")], [("r", F, (2, 3))], name="activation")
    assert node.outputs[0].name == "r_1" and node.name == "activation_2"
    assert g.fresh_name("y") == "y_1"
    with pytest.raises(IRError, match="a value of that name exists"):
        g.rename(node.outputs[0], "y")


def test_erase_refuses_a_node_whose_output_is_read() -> None:
    g, (_, relu, sig) = chain()
    with pytest.raises(IRError, match=r"cannot erase '.*': its output 'r' is still read by \['activation_1'\]"):
        g.erase(relu)
    with pytest.raises(IRError, match=r"still read by \['<graph output>'\]"):
        g.erase(sig)


def test_take_over_output_keeps_the_name_readers_and_output_role() -> None:
    g, (x, relu, sig) = chain()
    reader = g.add_node(LayerType.IDENTITY, [sig.outputs[0]], [("z", F, (2, 3))])
    g.take_over_output(relu, sig)
    assert sig.graph is None and relu.outputs[0].name == "y"
    assert g.outputs == [relu.outputs[0]] and reader.inputs[0] is relu.outputs[0]
    assert [n.name for n in g.nodes] == [relu.name, reader.name]
    g.lint()


def test_toposort_is_stable_and_finds_cycles() -> None:
    g, (x, relu, sig) = chain()
    g.move_before(sig, relu)
    with pytest.raises(IRError, match="reads 'r' before it is produced"):
        g.lint()
    g.toposort()
    assert g.nodes == [relu, sig]
    g.set_input(relu, 0, sig.outputs[0])
    with pytest.raises(IRError, match="has a cycle"):
        g.toposort()


def test_cleanup_follows_producers_not_order() -> None:
    """A constant placed after its reader (as a rewrite may leave it) is live; unread branches go."""
    g, (x, relu, sig) = chain()
    late = g.add_node(LayerType.CONSTANT, [], [("c", F, (2, 3))], {"weights": np.ones((2, 3), np.float32),
                                                                    "shape": [2, 3]})
    g.set_input(sig, 0, late.outputs[0])  # sig now reads the constant; relu is dead
    dead_branch = g.add_node(LayerType.IDENTITY, [x], [("unused", F, (2, 3))])
    assert g.cleanup() == [relu.name, dead_branch.name]
    assert late.graph is g and g.nodes == [sig, late]
    g.toposort()
    g.lint()


@pytest.mark.parametrize("damage, message", [
    (lambda g, x, relu, sig: relu._inputs.__setitem__(0, sig.outputs[0]), "reads 'y' before it is produced"),
    (lambda g, x, relu, sig: x.uses.clear(), "does not record its use by 'activation' input 0"),
    (lambda g, x, relu, sig: relu.outputs[0].uses.append((relu, 3)), "records a use by 'activation' input 3"),
    (lambda g, x, relu, sig: setattr(relu.outputs[0], "producer", sig), "does not name 'activation' as its producer"),
    (lambda g, x, relu, sig: g.nodes.append(relu), "two nodes are named 'activation'"),
    (lambda g, x, relu, sig: g.outputs.append(Graph().add_input("q", F, (1,))), "graph output 'q' is not a value"),
])
def test_lint_names_each_broken_invariant(damage, message) -> None:
    g, (x, relu, sig) = chain()
    g.lint()
    damage(g, x, relu, sig)
    with pytest.raises(IRError, match=message):
        g.lint()


def test_lowering_copies_and_never_touches_the_network() -> None:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (1, 2, 5, 5))
    conv = net.add_convolution_nd(x, 3, (3, 3), np.ones((3, 2, 3, 3), np.float32), name="conv")
    conv.precision = trt.DataType.HALF
    net.mark_output(conv.get_output(0))
    graph = graph_from_network(net)
    node = graph.nodes[-1]
    assert node.name == "conv" and node.precision == DataType.HALF and node.precision_is_set
    assert [v.name for v in node.inputs[:2]] == [t.name for t in conv.inputs[:2]]
    node.params["stride_nd"][0] = 7
    node.metadata["fused_from"] = ["x"]
    graph.rename(node.outputs[0], "renamed")
    assert conv.stride_nd == [1, 1] and "fused_from" not in conv.metadata
    assert conv.get_output(0).name == "conv_output_0" and net.num_layers == 2
    weights = graph.nodes[0].params["weights"]
    assert weights is conv.inputs[1].producer.params["weights"]  # arrays are shared, never mutated
