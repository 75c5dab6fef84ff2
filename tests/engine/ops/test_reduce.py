"""REDUCE layers and the ONNX Reduce* importers, checked against onnxruntime, float64 references and the ONNX
backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType, ReduceOperation
from engine.errors import ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(7)
ALL_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def _axes_input_since(op: str) -> int:
    return 13 if op == "ReduceSum" else 18


def _data(op: str, dtype, shape=(3, 4, 5)):
    if op in ("ReduceLogSum", "ReduceProd"):
        return RNG.uniform(0.5, 1.5, shape).astype(dtype)
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(0 if np.dtype(dtype).kind == "u" else -5, 6, shape).astype(dtype)
    return RNG.uniform(-2, 2, shape).astype(dtype)


@pytest.mark.parametrize("case", cases_for(ALL_OPS), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("op", ALL_OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", [[1], [0, 2], [-1], None])
def test_axes_input_matches_onnxruntime(op, keepdims, axes):
    values = {"x": _data(op, np.float32)}
    inputs = ["x"]
    if axes is not None:
        values["axes"] = np.array(axes, np.int64)
        inputs.append("axes")
    check_against_ort(op, inputs, values, constants=["axes"] if axes is not None else [],
                      attrs={"keepdims": keepdims}, opset=_axes_input_since(op), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ALL_OPS)
@pytest.mark.parametrize("opset", [7, 11])
def test_axes_attribute_matches_onnxruntime(op, opset):
    check_against_ort(op, ["x"], {"x": _data(op, np.float32)}, attrs={"axes": [0, -1], "keepdims": 0},
                      opset=opset, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ALL_OPS)
def test_noop_with_empty_axes_applies_only_the_elementwise_part(op):
    x = _data(op, np.float32)
    (out,) = check_against_float64_reference(op, ["x"], {"x": x}, attrs={"noop_with_empty_axes": 1}, opset=18,
                                             rtol=1e-6, atol=1e-6)
    assert out.shape == x.shape


@pytest.mark.parametrize("op", ALL_OPS)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float_types_match_float64_reference(op, dtype):
    tolerance = {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float16 else {"rtol": 1e-12, "atol": 1e-12}
    check_against_float64_reference(op, ["x", "axes"], {"x": _data(op, dtype), "axes": np.array([1], np.int64)},
                                    constants=["axes"], opset=18, **tolerance)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integers_match_onnxruntime(op, dtype):
    check_against_ort(op, ["x", "axes"], {"x": _data(op, dtype), "axes": np.array([0, 2], np.int64)},
                      constants=["axes"], attrs={"keepdims": 0}, opset=18)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.uint64])
def test_small_and_unsigned_integers_match_reference(op, dtype):
    x = RNG.integers(0, 4, (4, 6)).astype(dtype)
    check_against_float64_reference(op, ["x", "axes"], {"x": x, "axes": np.array([1], np.int64)},
                                    constants=["axes"], opset=18)


@pytest.mark.parametrize("op", ["ReduceL2", "ReduceLogSum", "ReduceLogSumExp"])
def test_integer_inputs_of_float_functions_compute_in_float64(op):
    x = RNG.integers(1, 6, (3, 4)).astype(np.int64)
    (out,) = run_engine(node_model(op, ["x"], {"x": x}, attrs={"axes": [1], "keepdims": 0}, opset=13), {"x": x})
    wide = x.astype(np.float64)
    expected = {"ReduceL2": np.sqrt((wide * wide).sum(1)), "ReduceLogSum": np.log(wide.sum(1)),
                "ReduceLogSumExp": np.log(np.exp(wide).sum(1))}[op]
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected.astype(np.int64))


def test_log_sum_exp_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1000.0]], np.float32)
    (out,) = check_against_ort("ReduceLogSumExp", ["x"], {"x": x}, attrs={"axes": [1], "keepdims": 0}, opset=13,
                               rtol=1e-6, atol=1e-4)
    wide = x.astype(np.float64)
    peak = wide.max(1)
    np.testing.assert_allclose(out, peak + np.log(np.exp(wide - peak[:, None]).sum(1)), rtol=1e-6)


def test_float16_sums_accumulate_in_float32():
    x = np.full((1, 4096), 1.0, np.float16)
    x[0, 0] = 2048.0
    (out,) = run_engine(node_model("ReduceSum", ["x"], {"x": x}, attrs={"keepdims": 0}, opset=11), {"x": x})
    # float16 accumulation would stick at 2048 (2048 + 1 rounds back to 2048).
    assert out.dtype == np.float16 and float(out) == float(np.float16(2048 + 4095))


@pytest.mark.parametrize(("op", "fill"), [("ReduceMax", np.iinfo(np.int32).min), ("ReduceMin", np.iinfo(np.int32).max),
                                          ("ReduceSum", 0), ("ReduceProd", 1)])
def test_empty_reduction_of_integers_gives_the_identity(op, fill):
    x = np.zeros((2, 0, 3), np.int32)
    (out,) = run_engine(node_model(op, ["x"], {"x": x}, attrs={"axes": [1]}, opset=11), {"x": x})
    np.testing.assert_array_equal(out, np.full((2, 1, 3), fill, np.int32))


def test_runtime_axes_tensor_gives_rank_at_build_time_and_shape_at_run_time():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (2, 3, 4))
    axes = network.add_input("axes", DataType.INT64, (2,))
    layer = network.add_reduce(x, ReduceOperation.SUM, [], keep_dims=False)
    layer.set_input(1, axes)
    assert layer.get_output(0).shape == (-1,)
    impl = layer_impl(LayerType.REDUCE)
    axes_value = np.array([-1, 0], np.int64)
    [(shape, dtype)] = impl.infer(layer, [TensorInfo((2, 3, 4), DataType.FLOAT), TensorInfo((2,), DataType.INT64,
                                                                                              axes_value)])
    assert shape == (3,) and dtype == DataType.FLOAT
    data = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    [out] = impl.compute(layer, [data, axes_value], np)
    np.testing.assert_allclose(out, data.sum(axis=(0, 2)), rtol=1e-6)
    layer.keep_dims = True
    assert layer.get_output(0).shape == (-1, -1, -1)


def test_axes_fed_as_graph_input():
    run_case(next(c for c in cases_for(["ReduceSum"]) if c.name == "test_reduce_sum_keepdims_random"), freeze=False)


def _parse_error(op, values, **kwargs):
    with pytest.raises(ParseError) as info:
        parse_onnx(node_model(op, list(values), values, **kwargs))
    return str(info.value)


def test_axes_of_unknown_length_are_rejected():
    model = node_model("ReduceMean", ["x", "axes"], {"x": np.zeros((2, 3), np.float32),
                                                    "axes": np.zeros(1, np.int64)}, opset=18)
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "n"
    with pytest.raises(ParseError, match="ReduceMean.*axes must be a constant"):
        parse_onnx(model)


def test_out_of_range_axis_is_rejected():
    message = _parse_error("ReduceSum", {"x": np.zeros((2, 3), np.float32)}, attrs={"axes": [2]}, opset=11)
    assert "ReduceSum" in message and "out of range" in message


def test_bool_input_needs_max_or_min_at_opset_20():
    x = np.zeros((2, 3), np.bool_)
    assert "BOOL" in _parse_error("ReduceSum", {"x": x}, opset=13)
    assert "BOOL" in _parse_error("ReduceMax", {"x": x}, opset=18)
    check_against_float64_reference("ReduceMax", ["x"], {"x": RNG.integers(0, 2, (3, 4)).astype(bool)}, opset=20)
