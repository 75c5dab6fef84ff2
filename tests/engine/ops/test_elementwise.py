"""ELEMENTWISE layers and their ONNX importers, checked against onnxruntime (and NumPy where ORT has no kernel)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx_node_check import (
    assert_same,
    check_against_float64_reference,
    check_against_ort,
    feeds_of,
    node_model,
    run_engine,
)

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import ElementWiseOperation, LayerType
from engine.errors import EngineError, ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(0)


def _values(dtype, shape_a=(2, 3, 4), shape_b=(3, 1), low=-20, high=20, nonzero_b=False):
    def make(shape):
        if np.dtype(dtype) == np.bool_:
            return RNG.integers(0, 2, shape).astype(bool)
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        lo = max(low, info.min) if info else low
        array = RNG.uniform(lo, high, shape) if info is None else RNG.integers(lo, high, shape)
        return array.astype(dtype)

    a, b = make(shape_a), make(shape_b)
    if nonzero_b:
        b[b == 0] = 1
    return {"a": a, "b": b}


ARITHMETIC_TYPES = [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", ARITHMETIC_TYPES)
def test_arithmetic_broadcasts_like_onnxruntime(op, dtype):
    """Integer Div truncates toward zero (negative operands included); unsigned arithmetic wraps."""
    values = _values(dtype, nonzero_b=True)
    check_against_ort(op, ["a", "b"], values, rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.int64, np.uint16])
def test_comparisons_give_bool(op, dtype):
    values = _values(dtype, low=-3, high=3)
    (out,) = check_against_ort(op, ["a", "b"], values)
    assert out.dtype == np.bool_


def test_equal_on_bool():
    check_against_ort("Equal", ["a", "b"], _values(np.bool_))


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical_ops(op):
    check_against_ort(op, ["a", "b"], _values(np.bool_, shape_a=(4, 1, 3), shape_b=(5, 1)))


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.uint64])
def test_bitwise_ops(op, dtype):
    check_against_ort(op, ["a", "b"], _values(dtype, low=-100, high=100), opset=18)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_bitshift_with_counts_up_to_the_width(direction, dtype):
    bits = np.dtype(dtype).itemsize * 8
    values = {"a": RNG.integers(0, 200, (3, 4)).astype(dtype), "b": RNG.integers(0, bits, (4,)).astype(dtype)}
    # onnx's reference evaluator, not onnxruntime: older onnxruntime releases have no uint16 BitShift kernel.
    check_against_float64_reference("BitShift", ["a", "b"], values, attrs={"direction": direction})


def test_bitshift_out_of_range_counts_follow_onnx_reference():
    """Counts >= the bit width give 0 (C would leave that undefined; the ONNX reference defines it)."""
    values = {"a": np.array([1, 255, 128, 7], np.uint8), "b": np.array([8, 9, 200, 1], np.uint8)}
    model = node_model("BitShift", ["a", "b"], values, attrs={"direction": "LEFT"})
    (left,) = run_engine(model, feeds_of(model, values))
    np.testing.assert_array_equal(left, [0, 0, 0, 14])
    model = node_model("BitShift", ["a", "b"], values, attrs={"direction": "RIGHT"})
    (right,) = run_engine(model, feeds_of(model, values))
    np.testing.assert_array_equal(right, [0, 0, 0, 3])


def test_signed_shift_kernel_sign_fills_right_shift():
    layer = type("L", (), {"params": {"op": ElementWiseOperation.BIT_SHIFT_RIGHT}})()
    a = np.array([-8, -8, 8, -1], np.int16)
    b = np.array([1, 16, 16, 40], np.int16)
    (out,) = layer_impl(LayerType.ELEMENTWISE).compute(layer, [a, b], np)
    np.testing.assert_array_equal(out, [-4, -1, 0, -1])


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint32])
def test_integer_mod_signs(fmod, dtype):
    """fmod=0 takes the divisor's sign (Python), fmod=1 the dividend's (C)."""
    check_against_ort("Mod", ["a", "b"], _values(dtype, nonzero_b=True), attrs={"fmod": fmod})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_fmod(dtype):
    values = _values(dtype, nonzero_b=True)
    check_against_ort("Mod", ["a", "b"], values, attrs={"fmod": 1}, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("base", "exponent"), [(np.float32, np.float32), (np.float32, np.int64),
                                                (np.float16, np.float32), (np.float64, np.int32),
                                                (np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32)])
def test_pow_keeps_the_base_type(base, exponent):
    a = RNG.uniform(0.5, 4, (2, 5)).astype(base)
    b = RNG.integers(0, 4, (5,)).astype(exponent)
    (out,) = check_against_ort("Pow", ["a", "b"], {"a": a, "b": b}, rtol=1e-3 if base == np.float16 else 1e-5)
    assert out.dtype == base


def test_pow_integer_negative_exponents_truncate():
    """C pow then truncation: 1 for base 1, +-1 for base -1, 0 for any other base."""
    values = {"a": np.array([2, -1, -1, 3, 0, 1, -2], np.int32), "b": np.array([-1, -3, -2, 2, 3, -5, -1], np.int64)}
    (out,) = check_against_ort("Pow", ["a", "b"], values)
    np.testing.assert_array_equal(out, [0, -1, 1, 9, 0, 1, 0])


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_variadic_ops_broadcast_all_inputs(op, count):
    shapes = [(3, 1, 4), (2, 1), (4,)][:count]
    values = {f"x{i}": RNG.standard_normal(shape).astype(np.float32) for i, shape in enumerate(shapes)}
    check_against_ort(op, list(values), values)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint64, np.float16])
def test_max_min_other_types(op, dtype):
    values = _values(dtype)
    values["c"] = values["a"][0, 0]
    check_against_ort(op, ["a", "b", "c"], values, opset=13)


def test_mean_in_float16():
    values = {"a": RNG.standard_normal((4, 5)).astype(np.float16), "b": RNG.standard_normal((5,)).astype(np.float16)}
    check_against_ort("Mean", ["a", "b"], values, rtol=1e-3, atol=1e-3)


def test_constant_operand_from_initializer():
    values = {"a": RNG.standard_normal((2, 3)).astype(np.float32), "b": np.float32(2.5).reshape(())}
    check_against_ort("Mul", ["a", "b"], values, constants=["b"])


def test_legacy_broadcast_with_axis():
    """Opset 6 `broadcast=1, axis=1`: B of shape (3,) lines up with A's dim 1."""
    values = {"a": RNG.standard_normal((2, 3, 4)).astype(np.float32), "b": RNG.standard_normal(3).astype(np.float32)}
    model = node_model("Add", ["a", "b"], values, attrs={"broadcast": 1, "axis": 1}, opset=6)
    (out,) = run_engine(model, feeds_of(model, values))
    assert_same(out, values["a"] + values["b"][:, None])


def test_bitshift_bad_direction_is_a_parse_error():
    values = {"a": np.array([1], np.uint8), "b": np.array([1], np.uint8)}
    model = node_model("BitShift", ["a", "b"], values, attrs={"direction": "UP"})
    model.graph.node[0].name = "shift"
    with pytest.raises(ParseError, match="node 'shift' \\(BitShift\\).*direction"):
        parse_onnx(model)


def test_infer_propagates_unknown_dims_and_rejects_mixed_types():
    network = NetworkDefinition()
    a = network.add_input("a", DataType.FLOAT, (-1, 1, 4))
    b = network.add_input("b", DataType.FLOAT, (3, 1))
    out = network.add_elementwise(a, b, ElementWiseOperation.GREATER).get_output(0)
    assert out.shape == (-1, 3, 4) and out.dtype == DataType.BOOL
    layer = network.add_elementwise(a, b, ElementWiseOperation.SUM)
    with pytest.raises(EngineError, match="different data types"):
        layer_impl(LayerType.ELEMENTWISE).infer(layer, [TensorInfo((3,), DataType.FLOAT),
                                                        TensorInfo((3,), DataType.INT32)])
