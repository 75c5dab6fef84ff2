"""UnsupportedError.category: the parser records why a node is unsupported as a field, and `inspect capability`
reports that field (not a guess from the message's wording)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.errors import UnsupportedCategory
from surgeon.partition import analyze_capability

Category = UnsupportedCategory


def _model(node: onnx.NodeProto, x_shape, y_type=TensorProto.FLOAT, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph([node], "one_node", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", y_type, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _parse_errors(model: onnx.ModelProto) -> list[tuple[str, UnsupportedCategory]]:
    parser = trt.OnnxParser(trt.NetworkDefinition(), trt.CapturingLogger())
    assert not parser.parse_model(model)
    return [(parser.get_error(i).desc, parser.get_error(i).category) for i in range(parser.num_errors)]


CASES = [
    (helper.make_node("Det", ["x"], ["y"], name="det"), [2, 2], Category.OPERATOR,
     "node 'det' (Det): unsupported operator"),
    (helper.make_node("Cast", ["x"], ["y"], name="to_text", to=TensorProto.STRING), [2], Category.DTYPE,
     "node 'to_text' (Cast): cast to STRING is not supported"),
    (helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=2, mode="XYZ"), [1, 4, 2, 2],
     Category.ATTRIBUTE, "node 'd2s' (DepthToSpace): mode 'XYZ' is not supported"),
    (helper.make_node("Squeeze", ["x"], ["y"], name="squeeze"), ["n", 1], Category.DYNAMIC_SHAPE,
     "node 'squeeze' (Squeeze): Squeeze without axes needs a static input shape, got (-1, 1)"),
]


@pytest.mark.parametrize("node, shape, category, message", CASES, ids=[c[2].name for c in CASES])
def test_parser_records_the_category(node, shape, category, message) -> None:
    y_type = TensorProto.STRING if node.op_type == "Cast" else TensorProto.FLOAT
    assert _parse_errors(_model(node, shape, y_type)) == [(message, category)]


def test_unsupported_error_carries_its_category() -> None:
    error = trt.UnsupportedError("mode 'XYZ' is not supported", node="d2s", op="DepthToSpace",
                                 category=Category.ATTRIBUTE)
    assert error.category is Category.ATTRIBUTE and str(error) == "node 'd2s' (DepthToSpace): mode 'XYZ' is not " \
                                                                  "supported"
    with pytest.raises(TypeError):
        trt.UnsupportedError("no category")  # every raise site must say which kind of problem it is


def test_capability_reads_the_category_not_the_wording() -> None:
    """Messages that say "shape" without being about dynamic shapes, which the old wording match reported as
    "dynamic shape": a Conv whose kernel_shape contradicts its weights, and any error of a node named "shape..."."""
    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[2, 2])
    (verdict,) = analyze_capability(_model(node, [1, 3, 8, 8], inits=[w]), "conv.onnx").unsupported
    assert (verdict.name, verdict.category) == ("conv", "other")
    assert verdict.reason == "kernel_shape [2, 2] does not match the weights' shape [4, 3, 3, 3]"

    node = helper.make_node("DepthToSpace", ["x"], ["y"], name="shape_to_depth", blocksize=2, mode="XYZ")
    (verdict,) = analyze_capability(_model(node, [1, 4, 2, 2]), "d2s.onnx").unsupported
    assert (verdict.category, verdict.reason) == ("attribute", "mode 'XYZ' is not supported")


def test_capability_of_a_model_whose_every_node_is_unsupported() -> None:
    report = analyze_capability(_model(helper.make_node("Det", ["x"], ["y"], name="det"), [2, 2]), "det.onnx")
    assert [(v.name, v.category, v.reason) for v in report.unsupported] == [("det", "operator", "unsupported operator")]
    assert [(s.supported, s.node_indices) for s in report.subgraphs] == [(False, [0])]
