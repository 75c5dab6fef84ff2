"""FILL layer; ONNX ConstantOfShape, Range and EyeLike, including shapes and bounds from dynamic dims."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for
from onnx import TensorProto, helper, numpy_helper
from shape_op_checks import check_model_against_ort, graph_model, run_case_frozen

from engine.conformance.harness import parse_onnx
from engine.network import NetworkDefinition
from engine.shape_inference import known_value

F = TensorProto.FLOAT


@pytest.mark.parametrize("case", cases_for({"ConstantOfShape", "Range", "EyeLike"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case_frozen(case)


def test_constant_of_shape_from_dynamic_shape():
    value = numpy_helper.from_array(np.array([3], np.int32))
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"], value=value),
             helper.make_node("ConstantOfShape", ["s"], ["z"])]
    model = graph_model(nodes, {"x": (F, ["a", 2, "b"])}, ["y", "z"])
    assert parse_onnx(model).find_tensor("y").shape == (-1, -1, -1)
    check_model_against_ort(model, {"x": np.zeros((3, 2, 4), np.float32)})


def test_range_over_a_dynamic_dim_gives_position_ids():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "step"], ["pos"])]
    model = graph_model(nodes, {"x": (F, ["b", "t"])}, ["pos"],
                        {"one": np.array(1), "zero": np.array(0), "step": np.array(2)})
    assert parse_onnx(model).find_tensor("pos").shape == (-1,)
    check_model_against_ort(model, {"x": np.zeros((2, 7), np.float32)})


@pytest.mark.parametrize("start,limit,delta,dtype", [(1, 10, 3, np.int64), (10, -3, -4, np.int32),
                                                     (0.5, 2.0, 0.25, np.float32), (3.0, 1.0, 1.0, np.float64)])
def test_range_values_known_at_build_time(start, limit, delta, dtype):
    network = NetworkDefinition()
    bounds = [network.add_constant((), np.array(v, dtype)).get_output(0) for v in (start, limit, delta)]
    out = network.add_layer("FILL", bounds, {"op": "RANGE"}).get_output(0)
    expected = np.arange(start, limit, delta).astype(dtype)
    assert out.shape == expected.shape
    np.testing.assert_allclose(known_value(out), expected)


def test_eye_like_dtype_and_offset():
    model = graph_model([helper.make_node("EyeLike", ["x"], ["y"], k=-1, dtype=TensorProto.INT32)],
                        {"x": (F, ["a", 5])}, ["y"])
    check_model_against_ort(model, {"x": np.zeros((4, 5), np.float32)})
