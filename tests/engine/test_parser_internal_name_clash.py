"""A node expanded into several layers names its first layer after the node, so that layer's output is auto-named
'<node>_output_0' — the very name PyTorch gives the node's own output. timm's XCiT and EdgeNeXt failed to parse
("a tensor named '/blocks.0/attn/ReduceL2_output_0' already exists in the network"): ReduceL2 expands into a
square, a sum named after the node, and a sqrt whose output takes the ONNX name. The internal tensor now yields,
and the values still match onnxruntime; a later node whose output takes an earlier internal name works too."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine.conformance.harness import run_onnx


def l2_then(second_output: str):
    """n = ReduceL2(x) (node 'n', output 'n_output_0'), then y = Relu(n + 1); the Add output is named
    plainly or after the expansion's internal square ('n/square_output_0')."""
    nodes = [helper.make_node("ReduceL2", ["x"], ["n_output_0"], name="n", axes=[-1], keepdims=1),
             helper.make_node("Add", ["n_output_0", "one"], [second_output], name="a"),
             helper.make_node("Relu", [second_output], ["y"], name="r")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 1])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("second_output", ["sum", "n/square_output_0"], ids=["node_output", "later_output"])
def test_onnx_names_win_over_internal_auto_names(second_output) -> None:
    model = l2_then(second_output)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    np.testing.assert_allclose(expected, np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True)) + 1, rtol=1e-6)
    np.testing.assert_allclose(run_onnx(model, {"x": x})["y"], expected, rtol=1e-6)
