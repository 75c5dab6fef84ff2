"""SELECT layers and the ONNX Where importer, checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx_node_check import check_against_float64_reference, check_against_ort

from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import EngineError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(4)


def _values(dtype, shapes):
    def make(shape):
        return RNG.integers(0, 2, shape).astype(bool) if np.dtype(dtype) == np.bool_ else \
            np.asarray(RNG.standard_normal(shape) * 50).astype(dtype)

    return {"c": RNG.integers(0, 2, shapes[0]).astype(bool), "a": make(shapes[1]), "b": make(shapes[2])}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8,
                                   np.uint64, np.bool_])
def test_where_types(dtype):
    """onnxruntime lacks Where for several of these types: the reference is onnx's evaluator."""
    (out,) = check_against_float64_reference("Where", ["c", "a", "b"], _values(dtype, [(3, 4)] * 3), opset=16)
    assert out.dtype == dtype


@pytest.mark.parametrize("shapes", [[(3, 1), (1, 4), (4,)], [(), (2, 3), (3,)], [(2, 1, 4), (3, 1), ()],
                                    [(5,), (5,), (1,)]])
def test_where_broadcasts_all_three_inputs(shapes):
    check_against_ort("Where", ["c", "a", "b"], _values(np.float32, shapes), opset=9)


def test_constant_branches():
    values = _values(np.float32, [(2, 3), (), (2, 3)])
    check_against_ort("Where", ["c", "a", "b"], values, constants=["a"])


def test_infer_rules():
    network = NetworkDefinition()
    c = network.add_input("c", DataType.BOOL, (-1, 1))
    a = network.add_input("a", DataType.HALF, (1, 4))
    b = network.add_input("b", DataType.HALF, (4,))
    layer = network.add_select(c, a, b)
    assert layer.get_output(0).shape == (-1, 4) and layer.get_output(0).dtype == DataType.HALF
    infer = layer_impl(LayerType.SELECT).infer
    with pytest.raises(EngineError, match="condition must be BOOL"):
        infer(layer, [TensorInfo((4,), DataType.FLOAT), TensorInfo((4,), DataType.FLOAT),
                      TensorInfo((4,), DataType.FLOAT)])
    with pytest.raises(EngineError, match="data types differ"):
        infer(layer, [TensorInfo((4,), DataType.BOOL), TensorInfo((4,), DataType.FLOAT),
                      TensorInfo((4,), DataType.INT32)])
