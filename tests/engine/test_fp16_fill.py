"""FP16 builds leave ConstantOfShape's output in the type its `value` attribute names. The precision pass used to
label it HALF while the layer makes FLOAT, and the plan check refused the engine it had just built (Faster R-CNN's
RoI pooling: "layer '...ConstantOfShape' (FILL) output ...: dtype HALF in the plan, the layer makes FLOAT")."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from engine.conformance.harness import run_onnx


def zeros_like_plus_x():
    """y = ConstantOfShape(Shape(x), 0.5) + x with a dynamic dim, so the fill stays a layer (not folded)."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("ConstantOfShape", ["shape"], ["halves"], name="fill",
                              value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.5])),
             helper.make_node("Add", ["halves", "x"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fp16_build_keeps_constant_of_shape_in_its_own_type() -> None:
    model = zeros_like_plus_x()
    x = np.array([[1.0, -2.0, 0.25], [3.0, 0.0, -1.5]], np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    np.testing.assert_array_equal(expected, x + 0.5)
    actual = run_onnx(model, {"x": x}, fp16=True)["y"]
    np.testing.assert_allclose(actual, expected, rtol=1e-3)  # every value here is exact in FP16
