"""SHAPE layer and ONNX Shape/Size: against the ONNX backend cases and onnxruntime on dynamic dims."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.dtypes import DataType
from engine.network import NetworkDefinition
from engine.shape_inference import known_value

SHAPE_CASES = cases_for({"Shape"})
SIZE_CASES = cases_for({"Size"})


@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c.name)
def test_shape_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("case", SIZE_CASES, ids=lambda c: c.name)
def test_size_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("start,end", [(0, None), (1, None), (-2, None), (0, -1), (1, 2), (-10, 10), (3, 1)])
def test_shape_start_end_on_dynamic_dims(start, end):
    attrs = {"start": start} | ({} if end is None else {"end": end})
    model = graph_model([helper.make_node("Shape", ["x"], ["y"], **attrs), helper.make_node("Size", ["x"], ["n"])],
                        {"x": (TensorProto.FLOAT, ["b", 3, "s"])}, ["y", "n"], opset=21)
    check_model_against_ort(model, {"x": np.zeros((2, 3, 5), np.float32)})


def test_shape_value_known_at_build_time_only_for_static_dims():
    network = NetworkDefinition()
    static = network.add_input("a", DataType.FLOAT, (2, 3, 4))
    dynamic = network.add_input("b", DataType.FLOAT, (-1, 3))
    layer = network.add_shape(static)
    layer.start, layer.end = 1, None
    np.testing.assert_array_equal(known_value(layer.get_output(0)), [3, 4])
    assert layer.get_output(0).shape == (2,) and layer.get_output(0).dtype == DataType.INT64
    dyn = network.add_shape(dynamic).get_output(0)
    assert dyn.shape == (2,) and known_value(dyn) is None
