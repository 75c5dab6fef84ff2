"""A network with both a data-dependent layer (NonZero) and control flow (If) runs eagerly, layer by layer, and
matches onnxruntime (torchvision's SSDlite export has both: 180 NonZero and an If on "no boxes left")."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine.conformance.harness import run_onnx


def nonzero_then_if(scale: float | None = None):
    """y = If(sum(x) > 0, then: 2 * x[x > 0], else: [-1, -1, -1]): the then-branch reads a tensor whose size NonZero
    decides, and the branches' shapes differ, so y's shape is known only once the If has run. With `scale`, x is
    first multiplied by it (a Mul layer computes the values NonZero reads)."""
    then = helper.make_graph([helper.make_node("Mul", ["selected", "two"], ["then_out"], name="double")], "then", [],
                             [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [None])],
                             [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    other = helper.make_graph([helper.make_node("Identity", ["minus_ones"], ["else_out"], name="fallback")], "else",
                              [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [3])],
                              [helper.make_tensor("minus_ones", TensorProto.FLOAT, [3], [-1.0] * 3)])
    constants = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                 helper.make_tensor("flat", TensorProto.INT64, [1], [-1])]
    nodes, s = [], "x"
    if scale is not None:
        nodes, s = [helper.make_node("Mul", ["x", "factor"], ["s"], name="scale")], "s"
        constants.append(helper.make_tensor("factor", TensorProto.FLOAT, [], [scale]))
    nodes += [helper.make_node("Greater", [s, "zero"], ["mask"], name="positive"),
              helper.make_node("NonZero", ["mask"], ["where"], name="nonzero"),
              helper.make_node("Reshape", ["where", "flat"], ["indices"], name="flatten"),
              helper.make_node("Gather", [s, "indices"], ["selected"], name="select"),
              helper.make_node("ReduceSum", [s], ["total"], name="total", keepdims=0),
              helper.make_node("Greater", ["total", "zero"], ["cond"], name="is_positive"),
              helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("values", [[1, -2, 3, 0, 5, -1, 2, 1], [-5, -2, 3, 0, -5, -1, 2, -1], [-1] * 8])
def test_nonzero_feeding_an_if_matches_onnxruntime(values) -> None:
    model = nonzero_then_if()
    x = np.array(values, np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    actual = run_onnx(model, {"x": x})["y"]
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def test_execute_async_v3_delivers_an_eager_output_through_its_output_allocator(tmp_path) -> None:
    """An eagerly run engine (control flow + NonZero) gives an output whose size only the run tells to the output
    allocator set for it, as a staged engine does (it used to fail with a KeyError: no address set)."""
    import onnx

    import engine as trt

    model = nonzero_then_if()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    assert trt.OnnxParser(network, logger).parse_from_file(str(path))
    config = builder.create_builder_config()
    config.device = "cpu"
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    context = engine.create_execution_context()
    allocator = trt.HostOutputAllocator()
    context.set_output_allocator("y", allocator)
    for values in ([1, -2, 3, 0, 5, -1, 2, 1], [-1] * 8):  # 5 values selected, then the else branch's 3
        x = np.array(values, np.float32)
        context.set_input_shape("x", x.shape)
        context.set_tensor_address("x", x)
        assert context.execute_async_v3(0)
        (expected,) = session.run(None, {"x": x})
        assert allocator.shapes["y"] == expected.shape
        np.testing.assert_array_equal(allocator.result("y", np.float32), expected)
