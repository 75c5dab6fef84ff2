"""POOLING layers and ONNX MaxPool/AveragePool/LpPool/Global*Pool: backend cases and onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(13)
OPS = ["MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"]


@pytest.mark.parametrize("case", cases_for(OPS), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


ATTRS = [
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "pads": [0, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 1], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
]


@pytest.mark.parametrize("attrs", ATTRS)
@pytest.mark.parametrize("op, extra", [("MaxPool", {}), ("AveragePool", {"count_include_pad": 0}),
                                       ("AveragePool", {"count_include_pad": 1}), ("LpPool", {"p": 3})])
def test_matches_onnxruntime(op, extra, attrs):
    values = {"x": RNG.standard_normal((2, 3, 9, 8)).astype(np.float32)}
    check_against_ort(op, ["x"], values, attrs={**attrs, **extra}, rtol=1e-5, atol=1e-5, opset=19)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices_match_onnxruntime(storage_order):
    values = {"x": RNG.standard_normal((2, 3, 7, 6)).astype(np.float32)}
    attrs = {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "storage_order": storage_order}
    check_against_ort("MaxPool", ["x"], values, attrs=attrs, num_outputs=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16])
def test_max_pool_other_types(dtype):
    values = {"x": (RNG.standard_normal((1, 2, 6, 6)) * 50).astype(dtype)}
    check_against_ort("MaxPool", ["x"], values, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, opset=12)


@pytest.mark.parametrize("op, attrs", [("GlobalAveragePool", {}), ("GlobalMaxPool", {}), ("GlobalLpPool", {"p": 3})])
def test_global_pools_1d_and_3d(op, attrs):
    for shape in ((2, 3, 7), (1, 2, 3, 4, 5)):
        check_against_ort(op, ["x"], {"x": RNG.standard_normal(shape).astype(np.float32)}, attrs=attrs, rtol=1e-5,
                          atol=1e-6)


def test_ceil_mode_with_same_padding_is_unsupported():
    model = node_model("MaxPool", ["x"], {"x": np.zeros((1, 1, 4, 4), np.float32)},
                       attrs={"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER", "ceil_mode": 1})
    with pytest.raises(ParseError, match="ceil_mode"):
        parse_onnx(model)
