"""SOFTMAX layers and the ONNX Softmax/LogSoftmax/Hardmax importers, checked against onnxruntime and the ONNX
backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import assert_same, check_against_float64_reference, check_against_ort, node_model, run_ort

from engine.conformance.harness import parse_onnx, run_onnx
from engine.dtypes import DataType
from engine.errors import ParseError, ShapeError
from engine.network import NetworkDefinition
from engine.shape_inference import infer_layer

RNG = np.random.default_rng(5)
OPS = ["Softmax", "LogSoftmax", "Hardmax"]


@pytest.mark.parametrize("case", cases_for(OPS), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3, None])
def test_axis_semantics_match_onnxruntime(op, opset, axis):
    """Before opset 13 the input is coerced to 2-D at `axis` (default 1), from 13 on it is one axis (default -1)."""
    x = RNG.standard_normal((2, 3, 4, 2)).astype(np.float32)
    if op == "Hardmax":
        x = np.round(x)  # ties: the first maximum wins
    attrs = {} if axis is None else {"axis": axis}
    check_against_ort(op, ["x"], {"x": x}, attrs=attrs, opset=opset, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_opset_11_with_dynamic_trailing_dims(op):
    values = {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)}
    model = node_model(op, ["x"], values, attrs={"axis": 1}, opset=11)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "w"
    if op == "Hardmax":
        # Hardmax needs the size of the flattened axis when parsing.
        with pytest.raises(ParseError, match="Hardmax.*known"):
            parse_onnx(model)
        return
    (got,) = run_onnx(model, values).values()
    assert_same(got, run_ort(model, values)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_large_inputs_do_not_overflow(op):
    x = np.array([[1000.0, 999.0, -1000.0], [-5e4, -5e4, -5e4]], np.float32)
    (out,) = check_against_ort(op, ["x"], {"x": x}, opset=13, rtol=1e-6, atol=1e-6)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float_types_match_float64_reference(op, dtype):
    tolerance = {"rtol": 1e-3, "atol": 1e-3} if dtype == np.float16 else {"rtol": 1e-12, "atol": 1e-14}
    x = RNG.uniform(-4, 4, (3, 5)).astype(dtype)
    check_against_float64_reference(op, ["x"], {"x": x}, attrs={"axis": 0}, opset=13, **tolerance)


def test_integer_input_is_a_parse_error():
    with pytest.raises(ParseError, match="Softmax.*floating-point"):
        parse_onnx(node_model("Softmax", ["x"], {"x": np.zeros((2, 3), np.int32)}, opset=13))


def test_out_of_range_axis_is_a_parse_error():
    with pytest.raises(ParseError, match="LogSoftmax.*out of range"):
        parse_onnx(node_model("LogSoftmax", ["x"], {"x": np.zeros((2, 3), np.float32)}, attrs={"axis": 2}, opset=13))


def test_softmax_layer_takes_exactly_one_axis():
    network = NetworkDefinition()
    layer = network.add_softmax(network.add_input("x", DataType.FLOAT, (2, 3)))
    assert layer.axes == 0b10 and layer.get_output(0).shape == (2, 3)
    layer.axes = 0b11
    with pytest.raises(ShapeError, match="exactly one axis"):
        infer_layer(layer, strict=True)
