"""CAST layers and the ONNX Cast / CastLike importers, checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_node_check import assert_same, check_against_ort, feeds_of, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.errors import ParseError
from engine.network import NetworkDefinition

RNG = np.random.default_rng(3)
TYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
         np.uint64, np.bool_]


def _source(dtype):
    """Values every target type can hold (so no conversion is undefined), with fractions for float sources."""
    if np.dtype(dtype) == np.bool_:
        return RNG.integers(0, 2, (3, 4)).astype(bool)
    values = RNG.uniform(0, 100, (3, 4))
    values[0, :2] = 0
    return values.astype(dtype)


def _onnx_type(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


@pytest.mark.parametrize("source", TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("target", TYPES, ids=lambda t: np.dtype(t).name)
def test_cast_between_every_pair(source, target):
    (out,) = check_against_ort("Cast", ["x"], {"x": _source(source)}, attrs={"to": _onnx_type(target)}, opset=13)
    assert out.dtype == target


@pytest.mark.parametrize("target", [np.int8, np.int32, np.int64])
def test_negative_floats_truncate_toward_zero(target):
    values = {"x": np.array([-2.7, -0.5, 0.5, 2.7, -100.9], np.float32)}
    check_against_ort("Cast", ["x"], values, attrs={"to": _onnx_type(target)})


def test_narrowing_rounds_to_nearest_and_overflows_to_inf():
    values = {"x": np.array([1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 65519.0, 70000.0, -1e10, np.nan, 1e-8])}
    check_against_ort("Cast", ["x"], values, attrs={"to": onnx.TensorProto.FLOAT16}, rtol=0, atol=0)


def test_float_to_bool_is_nonzero():
    values = {"x": np.array([0.0, -0.0, 1e-30, -3.0, np.inf, np.nan], np.float32)}
    (out,) = check_against_ort("Cast", ["x"], values, attrs={"to": onnx.TensorProto.BOOL})
    np.testing.assert_array_equal(out, [False, False, True, True, True, True])


def test_saturate_is_ignored_for_non_float8_targets():
    """The ONNX spec ignores `saturate` here (onnxruntime rejects the model instead)."""
    values = {"x": np.array([1e6, -3.5], np.float32)}
    model = node_model("Cast", ["x"], values, attrs={"to": onnx.TensorProto.FLOAT16, "saturate": 0}, opset=19)
    (out,) = run_engine(model, feeds_of(model, values))
    assert_same(out, np.array([np.inf, -3.5], np.float16))


def test_cast_opset1_names_the_type():
    values = {"x": np.array([1.5, -2.5], np.float32)}
    model = node_model("Cast", ["x"], values, attrs={"to": "INT32"}, opset=1)
    (out,) = run_engine(model, feeds_of(model, values))
    assert_same(out, np.array([1, -2], np.int32))


@pytest.mark.parametrize("like", [np.float16, np.int64, np.bool_, np.uint8])
def test_castlike_takes_the_second_input_type(like):
    values = {"x": _source(np.float32), "like": np.zeros((1,), like)}
    (out,) = check_against_ort("CastLike", ["x", "like"], values, opset=15)
    assert out.dtype == like


@pytest.mark.parametrize("to", [onnx.TensorProto.STRING, onnx.TensorProto.FLOAT8E4M3FN,
                                onnx.TensorProto.INT4, onnx.TensorProto.COMPLEX64])
def test_unsupported_targets_are_parse_errors_naming_the_type(to):
    model = node_model("Cast", ["x"], {"x": _source(np.float32)}, attrs={"to": to}, opset=21)
    model.graph.node[0].name = "cast"
    name = onnx.TensorProto.DataType.Name(to)
    with pytest.raises(ParseError, match=f"node 'cast' \\(Cast\\): cast to {name} is not supported"):
        parse_onnx(model)


def test_add_cast_sets_the_output_type():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.HALF, (-1, 2))
    out = network.add_cast(x, DataType.INT64).get_output(0)
    assert out.dtype == DataType.INT64 and out.shape == (-1, 2)
