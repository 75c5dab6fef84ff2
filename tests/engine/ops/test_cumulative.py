"""CUMULATIVE layer; ONNX CumSum with exclusive/reverse, against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for
from onnx import helper
from shape_op_checks import check_model_against_ort, graph_model, run_case_frozen

RNG = np.random.default_rng(12)


@pytest.mark.parametrize("case", cases_for({"CumSum"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case_frozen(case)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_flags_axes_dtypes(exclusive, reverse, axis, dtype):
    x = RNG.integers(-9, 9, (3, 4, 5)).astype(dtype)
    model = graph_model([helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
                        {"x": (helper.np_dtype_to_tensor_dtype(x.dtype), ["a", 4, "c"])}, ["y"],
                        {"axis": np.array(axis, np.int32)})
    check_model_against_ort(model, {"x": x})
