"""TOPK layers and the ONNX TopK importer, checked against onnxruntime, NumPy and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType, TopKOperation
from engine.errors import EngineError, ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(17)


@pytest.mark.parametrize("case", cases_for(["TopK"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_matches_onnxruntime(largest, axis, k):
    values = {"x": RNG.standard_normal((4, 5, 6)).astype(np.float32), "k": np.array([k], np.int64)}
    values_out, indices = check_against_ort("TopK", ["x", "k"], values, constants=["k"], opset=11, num_outputs=2,
                                            attrs={"axis": axis, "largest": largest})
    assert indices.dtype == np.int64


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.uint64, np.float16, np.float64, np.int8])
def test_ties_keep_the_lower_index_first(largest, dtype):
    x = RNG.integers(0, 3, (3, 8)).astype(dtype)
    values, indices = run_engine(node_model("TopK", ["x", "k"], {"x": x, "k": np.array([5], np.int64)},
                                            constants=["k"], attrs={"largest": largest}, opset=11, num_outputs=2),
                                 {"x": x})
    # A stable sort of the negated (largest) or plain values orders ties by index.
    key = -x.astype(np.float64) if largest else x
    expected = np.argsort(key, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(values, np.take_along_axis(x, expected, 1))


def test_extreme_integers_keep_their_order():
    x = np.array([[np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max, 0]], np.int64)
    check_against_float64_reference("TopK", ["x", "k"], {"x": x, "k": np.array([5], np.int64)}, constants=["k"],
                                    opset=11, num_outputs=2)


def test_opset_1_takes_k_as_attribute():
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    check_against_ort("TopK", ["x"], {"x": x}, attrs={"k": 2, "axis": 0}, opset=1, num_outputs=2)


def test_runtime_k_gives_unknown_dim_at_build_time_and_exact_shape_at_run_time():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (3, 6))
    layer = network.add_topk(x, TopKOperation.MIN, 0, [1])
    layer.set_input(1, network.add_input("k", DataType.INT64, (1,)))
    assert layer.get_output(0).shape == (3, -1) and layer.get_output(1).dtype == DataType.INT64
    impl = layer_impl(LayerType.TOPK)
    k = np.array([4], np.int64)
    shapes = impl.infer(layer, [TensorInfo((3, 6), DataType.FLOAT), TensorInfo((1,), DataType.INT64, k)])
    assert shapes == [((3, 4), DataType.FLOAT), ((3, 4), DataType.INT64)]
    data = RNG.standard_normal((3, 6)).astype(np.float32)
    values, indices = impl.compute(layer, [data, k], np)
    np.testing.assert_array_equal(indices, np.argsort(data, axis=1, kind="stable")[:, :4])
    with pytest.raises(EngineError, match="out of range"):
        impl.infer(layer, [TensorInfo((3, 6), DataType.FLOAT), TensorInfo((1,), DataType.INT64, np.array([7]))])


def test_k_fed_as_graph_input():
    run_case(next(c for c in cases_for(["TopK"]) if c.name == "test_top_k"), freeze=False)


def test_k_larger_than_the_axis_is_an_error():
    values = {"x": np.zeros((2, 3), np.float32), "k": np.array([4], np.int64)}
    with pytest.raises(EngineError, match="out of range"):
        run_engine(node_model("TopK", ["x", "k"], values, constants=["k"], opset=11, num_outputs=2),
                   {"x": values["x"]})


def test_missing_k_is_a_parse_error():
    with pytest.raises(ParseError, match="TopK.*k attribute"):
        parse_onnx(node_model("TopK", ["x"], {"x": np.zeros((2, 3), np.float32)}, opset=1, num_outputs=2))
