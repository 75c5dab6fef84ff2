"""ARG_REDUCE layers (ONNX ArgMax/ArgMin), checked against onnxruntime and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("case", cases_for(["ArgMax", "ArgMin"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("select_last_index", [0, 1])
def test_ties_and_axes_match_onnxruntime(op, axis, keepdims, select_last_index):
    # Few distinct values so that ties are common.
    x = RNG.integers(0, 3, (4, 5, 6)).astype(np.float32)
    (out,) = check_against_ort(op, ["x"], {"x": x}, opset=13,
                               attrs={"axis": axis, "keepdims": keepdims, "select_last_index": select_last_index})
    assert out.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64, np.float16, np.int8])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_dtypes_match_reference(op, dtype):
    x = RNG.integers(0, 5, (3, 7)).astype(dtype)
    check_against_float64_reference(op, ["x"], {"x": x}, attrs={"axis": 1}, opset=13)


def test_opset_1_defaults_to_axis_0_with_keepdims():
    (out,) = check_against_ort("ArgMax", ["x"], {"x": RNG.standard_normal((3, 4)).astype(np.float32)}, opset=7)
    assert out.shape == (1, 4)


def test_out_of_range_axis_is_a_parse_error():
    with pytest.raises(ParseError, match="ArgMin.*out of range"):
        parse_onnx(node_model("ArgMin", ["x"], {"x": np.zeros((2, 3), np.float32)}, attrs={"axis": 2}, opset=13))
