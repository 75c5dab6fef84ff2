"""Deep graphs parse and build without recursion proportional to depth and without re-walking each tensor's
ancestry per node (a 10k-node chain: under 1 s to parse and about 3 s to build on the CPU machine;
docs/guarantees.md). The chains here are twice as deep as Python's recursion limit."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.shape_inference import known_value

DEPTH = 2 * sys.getrecursionlimit()  # even


def chain_model(depth: int, kind: str):
    """"shape": Shape(x) followed by `depth` Adds of zeros (small static tensors whose values are known at build
    time) driving a Reshape; "data": `depth` Negs on x (an even count: y = x)."""
    nodes, inits = [], []
    if kind == "shape":
        nodes.append(helper.make_node("Shape", ["x"], ["s0"], name="shape"))
        inits.append(numpy_helper.from_array(np.array([0, 0], np.int64), "zero"))
        nodes += [helper.make_node("Add", [f"s{i}", "zero"], [f"s{i + 1}"], name=f"add{i}") for i in range(depth)]
        nodes.append(helper.make_node("Reshape", ["x", f"s{depth}"], ["y"], name="reshape"))
    else:
        names = ["x"] + [f"t{i}" for i in range(1, depth)] + ["y"]
        nodes += [helper.make_node("Neg", [names[i]], [names[i + 1]], name=f"n{i}")
                  for i in range(depth)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("kind, expected", [("shape", lambda x: x), ("data", lambda x: x)])
def test_a_chain_deeper_than_the_recursion_limit_parses_builds_and_runs(kind: str, expected) -> None:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(chain_model(DEPTH, kind).SerializeToString()), parser.errors_text()
    if kind == "shape":
        assert network.get_output(0).shape == (3, 4)  # the value at the end of the chain was known at build time
    config = builder.create_builder_config()
    config.device = "cpu"
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(engine.create_execution_context().execute({"x": x})["y"], expected(x))


def test_known_values_follow_a_layer_changed_after_creation() -> None:
    network = trt.NetworkDefinition()
    a = network.add_constant((2,), np.array([1, 2], np.int64), name="a").get_output(0)
    b = network.add_constant((2,), np.array([10, 20], np.int64), name="b").get_output(0)
    total = network.add_elementwise(a, a, trt.ElementWiseOperation.SUM, name="sum")
    doubled = network.add_elementwise(total.get_output(0), a, trt.ElementWiseOperation.SUM, name="plus_a")
    np.testing.assert_array_equal(known_value(doubled.get_output(0)), [3, 6])
    total.set_input(1, b)  # upstream of plus_a: its cached value must not survive
    np.testing.assert_array_equal(known_value(doubled.get_output(0)), [12, 24])
