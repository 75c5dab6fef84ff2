"""The pointwise reference kernels (elementwise, activation, unary, cast, select) give the same results under CuPy
as under NumPy: they are written against `xp`, and this checks that every op really is."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engine.dtypes import DataType, nptype
from engine.enums import ActivationType, ElementWiseOperation, LayerType, UnaryOperation
from engine.ops.base import layer_impl

cp = pytest.importorskip("cupy")
pytestmark = pytest.mark.gpu

RNG = np.random.default_rng(5)
COMPARISONS = {ElementWiseOperation.EQUAL, ElementWiseOperation.GREATER, ElementWiseOperation.LESS,
               ElementWiseOperation.GREATER_OR_EQUAL, ElementWiseOperation.LESS_OR_EQUAL}
LOGICAL = {ElementWiseOperation.AND, ElementWiseOperation.OR, ElementWiseOperation.XOR}
INTEGER_ONLY = {ElementWiseOperation.BITWISE_AND, ElementWiseOperation.BITWISE_OR, ElementWiseOperation.BITWISE_XOR,
                ElementWiseOperation.BIT_SHIFT_LEFT, ElementWiseOperation.BIT_SHIFT_RIGHT}


def _data(dtype, shape, low=-8, high=8):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return RNG.integers(0, 2, shape).astype(bool)
    if dtype.kind == "u":
        return RNG.integers(0, high, shape).astype(dtype)
    if dtype.kind == "i":
        return RNG.integers(low, high, shape).astype(dtype)
    return RNG.uniform(low, high, shape).astype(dtype)


def _same_on_both(layer_type, params, inputs, rtol=1e-6):
    layer = SimpleNamespace(params=params)
    compute = layer_impl(layer_type).compute
    expected = compute(layer, inputs, np)
    actual = compute(layer, [cp.asarray(x) for x in inputs], cp)
    for got, want in zip(actual, expected):
        got = cp.asnumpy(got)
        assert got.dtype == want.dtype, (params, got.dtype, want.dtype)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True, err_msg=str(params))
        else:
            np.testing.assert_array_equal(got, want, err_msg=str(params))


def _elementwise_dtypes(op):
    if op in LOGICAL:
        return [np.bool_]
    if op in INTEGER_ONLY:
        return [np.int8, np.int32, np.uint8, np.uint64]
    return [np.float32, np.float16, np.int32, np.int64, np.uint8]


@pytest.mark.parametrize("op", list(ElementWiseOperation))
def test_elementwise(op):
    for dtype in _elementwise_dtypes(op):
        a, b = _data(dtype, (3, 4)), _data(dtype, (4,))
        if op in (ElementWiseOperation.DIV, ElementWiseOperation.MOD, ElementWiseOperation.FMOD,
                  ElementWiseOperation.FLOOR_DIV):
            b[b == 0] = 3
        if op in (ElementWiseOperation.BIT_SHIFT_LEFT, ElementWiseOperation.BIT_SHIFT_RIGHT):
            b = RNG.integers(0, 70, (4,)).astype(dtype)
        if op == ElementWiseOperation.POW:
            b = RNG.integers(-2, 4, (4,)).astype(np.int64 if np.dtype(dtype).kind == "i" else dtype)
            if np.dtype(dtype).kind == "u":
                b = np.abs(b).astype(dtype)
        _same_on_both(LayerType.ELEMENTWISE, {"op": op}, [a, b], rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("kind", list(ActivationType))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_activation(kind, dtype):
    params = {"activation_type": kind, "alpha": 0.7, "beta": 0.3}
    _same_on_both(LayerType.ACTIVATION, params, [_data(dtype, (5, 7))], rtol=1e-3 if dtype == np.float16 else 1e-5)


def test_parametric_relu():
    _same_on_both(LayerType.PARAMETRIC_RELU, {}, [_data(np.float32, (2, 3, 4)), _data(np.float32, (3, 1))])


@pytest.mark.parametrize("op", list(UnaryOperation))
def test_unary(op):
    if op == UnaryOperation.NOT:
        dtypes = [np.bool_]
    elif op == UnaryOperation.BITWISE_NOT:
        dtypes = [np.int16, np.uint32]
    elif op in (UnaryOperation.ABS, UnaryOperation.NEG, UnaryOperation.SIGN):
        dtypes = [np.float32, np.int32]
    else:
        dtypes = [np.float32, np.float16, np.float64]
    for dtype in dtypes:
        x = _data(dtype, (4, 6), low=-0.9, high=0.9) if np.dtype(dtype).kind == "f" else _data(dtype, (4, 6))
        if op == UnaryOperation.ACOSH:
            x = x + 2
        params = {"op": op, "detect_positive": True, "detect_negative": False}
        _same_on_both(LayerType.UNARY, params, [x], rtol=1e-3 if dtype == np.float16 else 1e-5)


def test_cast_and_select():
    x = _data(np.float32, (3, 5), low=0, high=100)
    for to_type in DataType:
        _same_on_both(LayerType.CAST, {"to_type": to_type}, [x])
        condition = _data(np.bool_, (3, 1))
        value = x.astype(nptype(to_type))
        _same_on_both(LayerType.SELECT, {}, [condition, value, value[::-1]])
