import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from polyx.errors import PolyxError
from polyx.marking import mark_network_outputs, mark_onnx_outputs


def _model():
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.float32(2.0))),
             helper.make_node("Mul", ["x", "k"], ["y"], name="mul"),
             helper.make_node("Relu", ["y"], ["z"], name="relu"),
             helper.make_node("Shape", ["z"], ["s"], name="shape"),
             helper.make_node("Cast", ["s"], ["sf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["z"], ["out"], name="sum", keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_mark_all_adds_typed_node_outputs_but_not_constants():
    marked = mark_onnx_outputs(_model(), [], mark_all=True)
    outputs = {o.name: o.type.tensor_type.elem_type for o in marked.graph.output}
    assert outputs == {"out": TensorProto.FLOAT, "y": TensorProto.FLOAT, "z": TensorProto.FLOAT,
                       "s": TensorProto.INT64, "sf": TensorProto.FLOAT}
    session = ort.InferenceSession(marked.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[-1, 2, 3]], np.float32)
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    np.testing.assert_array_equal(values["z"], np.maximum(x * 2, 0))
    np.testing.assert_array_equal(values["s"], [1, 3])


def test_onnx_marks_named_tensors_and_rejects_unknown_ones():
    marked = mark_onnx_outputs(_model(), ["z"])
    assert [o.name for o in marked.graph.output] == ["out", "z"]
    with pytest.raises(PolyxError, match="'zz' does not exist.*did you mean: z"):
        mark_onnx_outputs(_model(), ["zz"])


def test_onnx_mark_all_skips_tensors_of_unknown_type():
    model = _model()
    model.graph.node.append(helper.make_node("Relu", ["x"], ["typed"], name="r2"))
    model.graph.node.append(helper.make_node("CustomOp", ["x"], ["untyped"], name="c", domain="my.domain"))
    model.opset_import.append(helper.make_opsetid("my.domain", 1))
    names = [o.name for o in mark_onnx_outputs(model, [], mark_all=True).graph.output]
    assert "typed" in names and "untyped" not in names


def test_network_marking_marks_every_non_constant_tensor():
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network()
    assert trt.OnnxParser(network, logger).parse(_model().SerializeToString())
    produced = {t.name for layer in network.layers if layer.type != trt.LayerType.CONSTANT for t in layer.outputs}
    count = mark_network_outputs(network, [], mark_all=True)
    assert {t.name for t in network.outputs} == produced
    assert count == len(produced) - 1  # "out" was already an output
    with pytest.raises(PolyxError, match="'nope' does not exist in the engine network"):
        mark_network_outputs(network, ["nope"])
