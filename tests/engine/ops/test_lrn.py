"""LRN layers and the ONNX LRN importer, checked against onnxruntime, float64 NumPy and the ONNX backend cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(19)


def _lrn_reference(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    x = x.astype(np.float64)
    square_sum = np.zeros_like(x)
    for c in range(x.shape[1]):
        begin, end = max(0, c - (size - 1) // 2), min(x.shape[1], c + math.ceil((size - 1) / 2) + 1)
        square_sum[:, c] = (x[:, begin:end] ** 2).sum(1)
    return x / (bias + alpha / size * square_sum) ** beta


@pytest.mark.parametrize("case", cases_for(["LRN"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_matches_onnxruntime(size):
    x = RNG.standard_normal((2, 6, 3, 4)).astype(np.float32) * 3
    check_against_ort("LRN", ["x"], {"x": x}, attrs={"size": size, "alpha": 0.5, "beta": 0.6, "bias": 2.0},
                      opset=13, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 4, 2, 2, 3)])
@pytest.mark.parametrize("size", [2, 3, 8])
def test_types_ranks_and_even_sizes_match_float64_reference(dtype, shape, size):
    """onnxruntime takes odd sizes only; ONNX defines the window for even sizes too."""
    x = RNG.standard_normal(shape).astype(dtype)
    (y,) = run_engine(node_model("LRN", ["x"], {"x": x}, attrs={"size": size, "alpha": 0.125}, opset=13), {"x": x})
    tolerance = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-12}[dtype]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), _lrn_reference(x, size, alpha=0.125), rtol=tolerance,
                               atol=tolerance)


def test_missing_size_is_a_parse_error():
    with pytest.raises(ParseError, match="LRN.*positive size"):
        parse_onnx(node_model("LRN", ["x"], {"x": np.zeros((1, 3, 2, 2), np.float32)}, opset=13))
