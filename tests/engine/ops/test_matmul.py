"""MATRIX_MULTIPLY layers and ONNX MatMul/Gemm: backend cases and onnxruntime on broadcasting and 1-D operands."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(14)


@pytest.mark.parametrize("case", cases_for(["MatMul", "Gemm"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("constant_b", [True, False])
@pytest.mark.parametrize("a_shape, b_shape", [((2, 3, 4, 5), (5, 6)), ((3, 1, 4, 5), (2, 5, 6)), ((5,), (2, 5, 3)),
                                              ((2, 4, 5), (5,)), ((5,), (5,)), ((1, 4, 5), (3, 5, 2))])
def test_matmul_matches_onnxruntime(a_shape, b_shape, constant_b):
    values = {"a": RNG.standard_normal(a_shape).astype(np.float32),
              "b": RNG.standard_normal(b_shape).astype(np.float32)}
    check_against_ort("MatMul", ["a", "b"], values, constants=["b"] if constant_b else [], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_matmul_other_types(dtype):
    values = {"a": (RNG.standard_normal((3, 4)) * 5).astype(dtype),
              "b": (RNG.standard_normal((4, 2)) * 5).astype(dtype)}
    check_against_ort("MatMul", ["a", "b"], values)


def test_matmul_float16():
    values = {"a": RNG.standard_normal((3, 8)).astype(np.float16), "b": RNG.standard_normal((8, 2)).astype(np.float16)}
    check_against_float64_reference("MatMul", ["a", "b"], values, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.5, "beta": 2.0},
                                   {"transA": 1, "transB": 1, "beta": 0.0}])
@pytest.mark.parametrize("c_shape", [None, (1,), (6,), (4, 1), (4, 6)])
def test_gemm_matches_onnxruntime(attrs, c_shape):
    a_shape = (5, 4) if attrs.get("transA") else (4, 5)
    b_shape = (6, 5) if attrs.get("transB") else (5, 6)
    values = {"a": RNG.standard_normal(a_shape).astype(np.float32),
              "b": RNG.standard_normal(b_shape).astype(np.float32)}
    inputs = ["a", "b"]
    if c_shape is not None:
        values["c"] = RNG.standard_normal(c_shape).astype(np.float32)
        inputs.append("c")
    check_against_ort("Gemm", inputs, values, attrs=attrs, constants=[n for n in ("b", "c") if n in values],
                      rtol=1e-5, atol=1e-5)


def test_bool_matmul_is_unsupported():
    values = {"a": np.ones((2, 2), bool), "b": np.ones((2, 2), bool)}
    with pytest.raises(ParseError, match="MatMul"):
        parse_onnx(node_model("MatMul", ["a", "b"], values))
