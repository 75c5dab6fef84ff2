"""The pass pipeline: order requirements checked up front, a pass that breaks the graph named by lint, rules
repeated until none fires, and the user's network untouched by a build."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine.enums import ActivationType, LayerType, UnaryOperation
from engine.ir import IRError, graph_from_network
from engine.passes.base import Pass, PassContext
from engine.passes.fold import ConstantFolding
from engine.passes.pipeline import PassPipeline
from engine.shape_inference import infer_graph

RNG = np.random.default_rng(11)


class BreaksTheGraph(Pass):
    name = "careless_rewrite"

    def run(self, graph, ctx):
        node = next(n for n in graph.nodes if n.type == LayerType.UNARY)
        node._inputs[0] = graph.outputs[0]  # bypasses Graph.set_input: uses go stale
        return {self.name: [node.name]}


def small_network() -> trt.NetworkDefinition:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (4, 6))
    w = RNG.standard_normal((6, 6)).astype(np.float32)
    mm = net.add_matrix_multiply(x, trt.MatrixOperation.NONE, net.add_constant(w.shape, w).get_output(0),
                                 trt.MatrixOperation.NONE, name="mm")
    neg = net.add_unary(mm.get_output(0), UnaryOperation.NEG, name="neg")
    relu = net.add_activation(neg.get_output(0), ActivationType.RELU, name="relu")
    net.mark_output(relu.get_output(0))
    return net


def test_a_pass_must_come_after_what_it_requires() -> None:
    class NeedsFolding(Pass):
        name = "needs_folding"
        requires = ("constant_folding",)

    with pytest.raises(ValueError, match=r"pass 'needs_folding' requires \['constant_folding'\]"):
        PassPipeline([NeedsFolding(), ConstantFolding()])
    PassPipeline([ConstantFolding(), NeedsFolding()])


def test_lint_names_the_pass_that_broke_the_graph() -> None:
    graph = graph_from_network(small_network())
    infer_graph(graph)
    with pytest.raises(IRError, match="after pass 'careless_rewrite'"):
        PassPipeline([ConstantFolding(), BreaksTheGraph()]).run(graph, PassContext(), lint=True)


def test_default_pipeline_reports_each_rule_and_pass() -> None:
    graph = graph_from_network(small_network())
    infer_graph(graph)
    report = PassPipeline().run(graph, PassContext(), lint=True)
    assert report["activation_fusion"] == 0  # a unary layer has no epilogue
    assert set(report) >= {"constant_folding", "noop_elimination", "conv_scale_fusion", "matmul_bias_fusion",
                           "gelu_fusion", "conv_residual_fusion", "activation_fusion", "reformats_inserted",
                           "dead_layer_elimination"}


def test_a_build_leaves_the_users_network_as_it_was() -> None:
    net = small_network()
    before = [(layer.name, layer.type, [None if t is None else t.name for t in layer.inputs],
               [(t.name, t.dtype, t.shape) for t in layer.outputs], repr(layer.params), layer.precision)
              for layer in net.layers]
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.FP16)
    builder.build_serialized_network(net, config)
    after = [(layer.name, layer.type, [None if t is None else t.name for t in layer.inputs],
              [(t.name, t.dtype, t.shape) for t in layer.outputs], repr(layer.params), layer.precision)
             for layer in net.layers]
    assert after == before and [t.name for t in net.outputs] == ["relu_output_0"]
