"""NON_ZERO layers and the ONNX NonZero importer, checked against onnxruntime, NumPy and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(23)


@pytest.mark.parametrize("case", cases_for(["NonZero"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.bool_, np.uint8, np.float16])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4)])
def test_matches_onnxruntime(dtype, shape):
    x = (RNG.integers(0, 3, shape) * (RNG.random(shape) < 0.5)).astype(dtype)
    (indices,) = check_against_ort("NonZero", ["x"], {"x": x})
    assert indices.shape == (len(shape), int(np.count_nonzero(x)))


@pytest.mark.parametrize("fill", [0, 1])
def test_all_zero_and_all_nonzero_inputs(fill):
    x = np.full((2, 5), fill, np.float32)
    (indices,) = check_against_ort("NonZero", ["x"], {"x": x})
    assert indices.shape == (2, 10 * fill)


def test_scalar_input_gives_one_row():
    (indices,) = check_against_ort("NonZero", ["x"], {"x": np.array(3.0, np.float32)})
    assert indices.shape == (1, 1)


def test_build_time_shape_has_a_data_dependent_dim_and_an_upper_bound():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (3, 4))
    layer = network.add_non_zero(x)
    assert layer.get_output(0).shape == (2, -1) and layer.get_output(0).dtype == DataType.INT64
    impl = layer_impl(LayerType.NON_ZERO)
    assert not impl.static_output_shape
    assert impl.upper_bound(layer, [TensorInfo((3, 4), DataType.FLOAT)]) == [((2, 12), DataType.INT64)]
    data = np.array([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]], np.float32)
    (indices,) = impl.compute(layer, [data], np)
    np.testing.assert_array_equal(indices, [[0, 0, 2], [1, 3, 0]])  # row-major order, by hand


@pytest.mark.parametrize("case", cases_for(["Compress"]), ids=lambda c: c.name)
def test_compress_backend_case(case):
    run_case(case)  # test_compress_bfloat16 included: BF16 is an engine type since the BF16 merge


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("length", [3, 2])
def test_compress_matches_onnxruntime(axis, length):
    """Compress = NonZero of the condition + Gather; a condition shorter than the axis drops the tail."""
    x = RNG.standard_normal((3, 4, 3)).astype(np.float32)
    condition = np.array([True, False, True, True][:length])
    attrs = {} if axis is None else {"axis": axis}
    (y,) = check_against_ort("Compress", ["x", "c"], {"x": x, "c": condition}, attrs=attrs)
    assert y.shape[0 if axis is None else axis] == int(condition.sum())


def test_compress_with_a_bad_axis_is_unsupported():
    values = {"x": np.zeros((2, 3), np.float32), "c": np.array([True, False])}
    with pytest.raises(ParseError, match="axis 2 is out of range for rank 2"):
        parse_onnx(node_model("Compress", ["x", "c"], values, attrs={"axis": 2}))
