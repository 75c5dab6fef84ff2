"""OnnxParser error reporting: every failure is collected (not only the first) and names its file, node and op."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_model_cases import MODELS

import engine as trt
from engine.conformance.harness import parse_onnx

SHARED_MODEL = MODELS / "mobilenet_v2.onnx"
# Real ONNX ops with one float input that the engine is unlikely to ever import; the test uses the first missing one.
RARE_OPS = ("Det", "NonMaxSuppression", "StringNormalizer")


def new_parser() -> tuple[trt.OnnxParser, trt.NetworkDefinition]:
    network = trt.NetworkDefinition()
    return trt.OnnxParser(network, trt.CapturingLogger()), network


def relu_model(opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def errors(parser: trt.OnnxParser) -> list[str]:
    return [parser.get_error(i).desc for i in range(parser.num_errors)]


def test_missing_file(tmp_path: Path) -> None:
    parser, _ = new_parser()
    path = tmp_path / "absent.onnx"
    assert not parser.parse_from_file(path)
    assert errors(parser) == [f"{path}: no such file"]
    assert (trt.Severity.ERROR, f"{path}: no such file") in parser.logger.messages


def test_truncated_model(tmp_path: Path) -> None:
    data = SHARED_MODEL.read_bytes() if SHARED_MODEL.is_file() else \
        relu_model().SerializeToString() + numpy_helper.from_array(np.zeros(64, np.float32)).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[:100])
    parser, _ = new_parser()
    assert not parser.parse_from_file(path)
    assert parser.num_errors == 1
    assert parser.get_error(0).desc.startswith(f"{path}: not a readable ONNX model (")
    parser, _ = new_parser()
    assert not parser.parse(data[:100])
    assert errors(parser)[0].startswith("<bytes>: not a readable ONNX model (")


def test_two_unsupported_ops_are_both_reported() -> None:
    parser, network = new_parser()
    rare = next((op for op in RARE_OPS if not parser.supports_operator(op)), None)
    assert rare is not None, f"every op of {RARE_OPS} is supported now: add an unsupported one to RARE_OPS"
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("FancyOp", ["a"], ["b"], name="custom_node", domain="com.example"),
        helper.make_node(rare, ["a"], ["c"], name="rare_node"),
        helper.make_node("Sigmoid", ["b"], ["d"], name="after_custom"),  # depends on a failed node: not reported
        helper.make_node("Add", ["c", "d"], ["y"], name="after_both"),
    ]
    graph = helper.make_graph(nodes, "two_bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    assert not parser.parse_model(model)
    assert parser.num_errors == 2
    first, second = parser.get_error(0), parser.get_error(1)
    assert (first.node, first.op, first.node_index) == ("custom_node", "FancyOp", 1)
    assert first.desc == "node 'custom_node' (FancyOp): unsupported operator in domain 'com.example'"
    assert (second.node, second.op, second.node_index) == ("rare_node", rare, 2)
    assert second.desc == f"node 'rare_node' ({rare}): unsupported operator"
    assert str(second) == second.desc
    with pytest.raises(trt.ParseError) as info:
        parse_onnx(model)
    assert "custom_node" in str(info.value) and "rare_node" in str(info.value)
    parser.clear_errors()
    assert parser.num_errors == 0


def test_unsupported_attribute_value_names_the_node() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="rs_aa", mode="linear", antialias=1)
    graph = helper.make_graph([node], "rs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [scales])
    parser, _ = new_parser()
    assert not parser.parse_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    error = parser.get_error(0)
    assert (error.node, error.op) == ("rs_aa", "Resize")
    assert error.desc.startswith("node 'rs_aa' (Resize): antialias=1 is not supported")


def test_opset_newer_than_supported() -> None:
    newest = onnx.defs.onnx_opset_version()
    parser, network = new_parser()
    assert not parser.parse_model(relu_model(newest + 1), source="future.onnx")
    assert errors(parser) == [f"future.onnx: opset {newest + 1} is newer than the newest supported ({newest})"]
    assert network.num_layers == 0
    parser, _ = new_parser()
    assert parser.parse_model(relu_model(newest))


def test_string_graph_input() -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["y"], name="ident")], "strings",
                              [helper.make_tensor_value_info("s", TensorProto.STRING, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.STRING, [2])])
    parser, network = new_parser()
    assert not parser.parse_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert errors(parser) == ["input 's': unsupported data type STRING"]
    assert network.num_inputs == 0


def test_model_without_default_opset() -> None:
    model = relu_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    parser, _ = new_parser()
    assert not parser.parse_model(model, source="m.onnx")
    assert errors(parser) == ["m.onnx: the model imports no default-domain opset"]
