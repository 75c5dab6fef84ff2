"""UNARY layers and their ONNX importers, checked against onnxruntime and float64 references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_node_check import check_against_float64_reference, check_against_ort, feeds_of, node_model, run_engine

from engine.dtypes import DataType
from engine.enums import LayerType, UnaryOperation
from engine.errors import EngineError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(2)
FLOATS = [np.float32, np.float64, np.float16]

# op -> input range that keeps the function finite and well conditioned
FLOAT_OPS = {
    "Exp": (-5, 5), "Log": (0.1, 10), "Sqrt": (0, 10), "Reciprocal": (0.5, 4), "Abs": (-5, 5), "Neg": (-5, 5),
    "Floor": (-5, 5), "Ceil": (-5, 5), "Round": (-5, 5), "Sin": (-3, 3), "Cos": (-3, 3), "Tan": (-1.2, 1.2),
    "Asin": (-0.9, 0.9), "Acos": (-0.9, 0.9), "Atan": (-5, 5), "Sinh": (-3, 3), "Cosh": (-3, 3),
    "Asinh": (-5, 5), "Acosh": (1.1, 5), "Atanh": (-0.9, 0.9), "Erf": (-3, 3), "Sign": (-5, 5),
}


def _x(op, dtype, shape=(3, 4, 5)):
    low, high = FLOAT_OPS[op]
    return {"x": RNG.uniform(low, high, shape).astype(dtype)}


@pytest.mark.parametrize("op", FLOAT_OPS)
def test_float32_matches_onnxruntime(op):
    check_against_ort(op, ["x"], _x(op, np.float32), opset=13, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", FLOAT_OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_float_types_match_float64_reference(op, dtype):
    tolerance = {"rtol": 1e-3, "atol": 1e-3} if dtype == np.float16 else {"rtol": 1e-6, "atol": 1e-7}
    check_against_float64_reference(op, ["x"], _x(op, dtype), opset=13, **tolerance)


@pytest.mark.parametrize("dtype", FLOATS)
def test_round_half_to_even(dtype):
    values = {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6, 0.0], dtype)}
    (out,) = check_against_ort("Round", ["x"], values, opset=11) if dtype == np.float32 else \
        check_against_float64_reference("Round", ["x"], values, opset=11)
    np.testing.assert_array_equal(out, np.array([0, 2, 2, -0, -2, -2, 2, -3, 0], dtype))


def test_erf_is_accurate_to_float64():
    x = np.linspace(-6, 6, 101)
    model = node_model("Erf", ["x"], {"x": x}, opset=13)
    (out,) = run_engine(model, {"x": x})
    np.testing.assert_allclose(out, [math.erf(v) for v in x], rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_signed_integer_ops(op, dtype):
    check_against_float64_reference(op, ["x"], {"x": RNG.integers(-100, 100, (4, 5)).astype(dtype)}, opset=13)


@pytest.mark.parametrize("op", ["Abs", "Sign"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint64])
def test_unsigned_integer_ops(op, dtype):
    check_against_float64_reference(op, ["x"], {"x": RNG.integers(0, 100, (4, 5)).astype(dtype)}, opset=13)


def test_not():
    check_against_ort("Not", ["x"], {"x": RNG.integers(0, 2, (3, 4)).astype(bool)})


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.uint64])
def test_bitwise_not(dtype):
    check_against_ort("BitwiseNot", ["x"], {"x": RNG.integers(0, 100, (3, 4)).astype(dtype)}, opset=18)


SPECIALS = np.array([np.inf, -np.inf, np.nan, 0.0, -1.5, 3.0e38])


def _specials(dtype):
    with np.errstate(over="ignore"):  # 3e38 becomes inf in float16, on purpose
        return SPECIALS.astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_isnan(dtype):
    (out,) = check_against_float64_reference("IsNaN", ["x"], {"x": _specials(dtype)}, opset=13)
    np.testing.assert_array_equal(out, np.isnan(SPECIALS))


@pytest.mark.parametrize(("positive", "negative"), [(1, 1), (1, 0), (0, 1), (0, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isinf_detect_attributes(positive, negative, dtype):
    attrs = {"detect_positive": positive, "detect_negative": negative}
    (out,) = check_against_ort("IsInf", ["x"], {"x": _specials(dtype)}, attrs=attrs, opset=10)
    assert out.dtype == np.bool_


def test_isinf_float16_overflowed_values():
    """3e38 overflows to inf in float16, so it is detected there and not in float32."""
    values = {"x": _specials(np.float16)}
    model = node_model("IsInf", ["x"], values, opset=20)
    (out,) = run_engine(model, feeds_of(model, values))
    np.testing.assert_array_equal(out, [True, True, False, False, False, True])


def test_dtype_rules_of_infer():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (-1, 3))
    out = network.add_unary(x, UnaryOperation.ISNAN).get_output(0)
    assert out.shape == (-1, 3) and out.dtype == DataType.BOOL
    layer = network.add_unary(x, UnaryOperation.NOT)
    with pytest.raises(EngineError, match="NOT does not take FLOAT"):
        layer_impl(LayerType.UNARY).infer(layer, [TensorInfo((3,), DataType.FLOAT)])
    layer.params["op"] = UnaryOperation.SQRT
    with pytest.raises(EngineError, match="SQRT does not take INT32"):
        layer_impl(LayerType.UNARY).infer(layer, [TensorInfo((3,), DataType.INT32)])
