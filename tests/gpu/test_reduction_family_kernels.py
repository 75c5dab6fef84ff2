"""The reference kernels of the reduction-family layers (REDUCE, ARG_REDUCE, SOFTMAX, NORMALIZATION, SCALE, TOPK,
LRN) give the same results on CuPy as on NumPy."""
from __future__ import annotations

import numpy as np
import pytest

from engine.dtypes import DataType
from engine.enums import ReduceOperation, ScaleMode, TopKOperation
from engine.network import NetworkDefinition
from engine.ops.arg_reduce import add_arg_reduce
from engine.ops.base import layer_impl
from engine.ops.lrn import add_lrn
from engine.ops.scale import add_scale

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.gpu
RNG = np.random.default_rng(23)
SHAPE = (2, 6, 5, 4)


def _compare(layer, arrays, rtol=1e-5):
    impl = layer_impl(layer.type)
    expected = impl.compute(layer, arrays, np)
    actual = impl.compute(layer, [None if a is None else cupy.asarray(a) for a in arrays], cupy)
    for got, want in zip(actual, expected):
        got = cupy.asnumpy(got)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def _network(dtype=DataType.FLOAT):
    network = NetworkDefinition()
    return network, network.add_input("x", dtype, SHAPE)


@pytest.mark.parametrize("op", list(ReduceOperation))
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_reduce(op, dtype, keep_dims):
    network, x = _network()
    layer = network.add_reduce(x, op, [1, 3], keep_dims)
    data = RNG.uniform(0.5, 1.5, SHAPE).astype(dtype) if dtype != np.int32 else RNG.integers(-3, 4, SHAPE, np.int32)
    _compare(layer, [data], rtol=2e-3 if dtype == np.float16 else 1e-5)
    _compare(layer, [np.zeros((2, 0, 5, 4), dtype)])


def test_reduce_with_runtime_axes():
    network, x = _network()
    layer = network.add_reduce(x, ReduceOperation.MAX, [], False)
    layer.set_input(1, network.add_input("axes", DataType.INT64, (1,)))
    _compare(layer, [RNG.standard_normal(SHAPE).astype(np.float32), np.array([-2], np.int64)])


@pytest.mark.parametrize("op", list(TopKOperation))
@pytest.mark.parametrize("last", [False, True])
def test_arg_reduce(op, last):
    network, x = _network()
    layer = add_arg_reduce(network, x, op, 1, keep_dims=False, select_last_index=last)
    _compare(layer, [RNG.integers(0, 3, SHAPE).astype(np.float32)])


@pytest.mark.parametrize("log", [False, True])
def test_softmax(log):
    network, x = _network()
    layer = network.add_softmax(x)
    layer.axes, layer.log = 1 << 1, log
    _compare(layer, [RNG.standard_normal(SHAPE).astype(np.float32) * 50])


@pytest.mark.parametrize(("axes", "groups"), [([3], 1), ([2, 3], 1), ([2, 3], 3)])
def test_normalization(axes, groups):
    network, x = _network()
    scale = network.add_input("scale", DataType.FLOAT, (1, 6, 1, 1))
    bias = network.add_input("bias", DataType.FLOAT, (1, 6, 1, 1))
    layer = network.add_normalization(x, scale, bias, axes)
    layer.num_groups = groups
    _compare(layer, [RNG.standard_normal(SHAPE).astype(np.float32), RNG.standard_normal((1, 6, 1, 1), np.float32),
                     RNG.standard_normal((1, 6, 1, 1), np.float32)])


def test_scale():
    network, x = _network()
    coefficients = [network.add_input(name, DataType.FLOAT, (6,)) for name in ("shift", "scale", "power")]
    layer = add_scale(network, x, ScaleMode.CHANNEL, *coefficients)
    _compare(layer, [RNG.uniform(0.5, 1.5, SHAPE).astype(np.float32)] +
             [RNG.uniform(0.5, 1.5, 6).astype(np.float32) for _ in range(3)])


@pytest.mark.parametrize("op", list(TopKOperation))
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_topk(op, dtype):
    network, x = _network()
    layer = network.add_topk(x, op, 3, [1])
    _compare(layer, [RNG.integers(0, 4, SHAPE).astype(dtype)])


def test_lrn():
    network, x = _network()
    _compare(add_lrn(network, x, 5, 1e-2, 0.75, 2.0), [RNG.standard_normal(SHAPE).astype(np.float32)])
