"""The one build-time evaluator: values of shape arithmetic, within size limits, and host-layer errors that name
the layer."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine.dtypes import DataType
from engine.errors import EngineError
from engine.evaluator import compute_host_layer, known_outputs
from engine.ir import graph_from_network
from engine.ops.base import TensorInfo
from engine.shape_inference import infer_graph


def shape_then_gather() -> trt.NetworkDefinition:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (-1, 5, 7))
    shape = net.add_shape(x, name="shape")
    index = net.add_constant((), np.array(2, np.int64)).get_output(0)
    net.mark_output(net.add_gather(shape.get_output(0), index, 0, name="last_dim").get_output(0))
    return net


def test_shape_of_a_static_input_is_known_without_its_values() -> None:
    graph = graph_from_network(shape_then_gather())
    shape = graph.nodes[0]
    static = [TensorInfo((2, 5, 7), DataType.FLOAT, None)]
    (value,) = known_outputs(shape, static, [(3,)], max_elements=16)
    np.testing.assert_array_equal(value, [2, 5, 7])
    assert known_outputs(shape, [TensorInfo((-1, 5, 7), DataType.FLOAT, None)], [(3,)], 16) is None
    assert known_outputs(shape, static, [(3,)], max_elements=2) is None  # larger than asked for


def test_strict_inference_propagates_known_values_on_the_builder_graph() -> None:
    net = shape_then_gather()
    graph = graph_from_network(net)
    infer_graph(graph)
    assert graph.outputs[0].shape == () and graph.value("shape_output_0").shape == (3,)


def test_a_failing_host_layer_is_named() -> None:
    graph = graph_from_network(shape_then_gather())
    gather = graph.nodes[-1]
    infos = [TensorInfo((3,), DataType.INT64, np.array([2, 5, 7])), TensorInfo((), DataType.INT64, np.array(9))]
    with pytest.raises(EngineError, match=r"layer 'last_dim' \(GATHER\): cannot evaluate on the host"):
        compute_host_layer(gather, infos)
