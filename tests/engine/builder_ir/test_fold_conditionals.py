"""The constant-condition fold on the builder's graph: the branch that runs replaces the conditional, reads what
the conditional read, keeps the graph outputs' names (also when the branch passes an input straight through),
and leaves a graph that lints; a runtime condition is left alone."""
from __future__ import annotations

import numpy as np

import engine as trt
from engine.enums import LayerType
from engine.ir import graph_from_network
from engine.passes.base import PassContext
from engine.passes.fold import ConstantFolding
from engine.passes.fold_conditionals import FoldConstantConditions
from engine.shape_inference import infer_graph


def conditional_network(value: bool | None) -> trt.NetworkDefinition:
    """out = exp(x) if cond else x (the else-branch passes its input through); cond is the constant `value`, or
    an input when `value` is None."""
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (3,))
    if value is None:
        condition = net.add_input("c", trt.DataType.BOOL, ())
    else:
        condition = net.add_constant((), np.array(value)).get_output(0)
    conditional = net.add_if_conditional("cond")
    conditional.set_condition(condition)
    views = conditional.add_input(x)
    exp = conditional.then_branch.add_unary(views.then_tensor, trt.UnaryOperation.EXP, name="exp").get_output(0)
    net.mark_output(conditional.add_output(exp, views.else_tensor, name="out"))
    return net


def _folded(net: trt.NetworkDefinition):
    graph = graph_from_network(net)
    infer_graph(graph)
    ctx = PassContext()
    ConstantFolding().run(graph, ctx)
    report = FoldConstantConditions().run(graph, ctx)
    graph.cleanup()
    graph.toposort()
    graph.lint()
    return graph, report["constant_conditions_folded"]


def test_true_condition_becomes_the_then_branch_keeping_the_output_name():
    graph, folded = _folded(conditional_network(value=True))
    assert folded == ["cond"]
    assert [node.type for node in graph.nodes] == [LayerType.UNARY, LayerType.IDENTITY]
    assert graph.nodes[0].inputs[0] is graph.inputs[0]  # branch input 0 is the conditional's input 1: x
    assert [v.name for v in graph.outputs] == ["out"]
    assert graph.nodes[0].metadata["folded_from"] == ["cond"]


def test_false_condition_passing_an_input_through_keeps_the_output_name():
    graph, folded = _folded(conditional_network(value=False))
    assert folded == ["cond"]
    assert [node.type for node in graph.nodes] == [LayerType.IDENTITY]
    assert graph.nodes[0].inputs[0] is graph.inputs[0]
    assert [v.name for v in graph.outputs] == ["out"]


def test_runtime_condition_is_left_alone():
    graph, folded = _folded(conditional_network(value=None))
    assert folded == []
    assert [node.type for node in graph.nodes] == [LayerType.CONDITIONAL]
