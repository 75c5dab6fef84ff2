"""QUANTIZE / DEQUANTIZE layers and the QuantizeLinear / DequantizeLinear importers, against onnxruntime, and the
bad scales and zero points each refused with the tensor named."""
from __future__ import annotations

import numpy as np
import pytest
from onnx_node_check import check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(17)
X = (RNG.standard_normal((2, 3, 5)) * 4).astype(np.float32)
X[0, 0, :4] = [0.5, 1.5, -0.5, -2.5]  # halves round to even
X[1, 2, 3:] = [-1000, 1000]  # saturates


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("per_axis", [False, True], ids=["per_tensor", "per_axis"])
def test_quantize_matches_onnxruntime(dtype, per_axis):
    scale = np.array([0.5, 0.05, 0.25], np.float32) if per_axis else np.array(0.5, np.float32)
    zero = np.full(scale.shape, 3 if dtype == np.int8 else 128, dtype)
    values = {"x": X, "s": scale, "z": zero}
    (y,) = check_against_ort("QuantizeLinear", ["x", "s", "z"], values, constants=["s", "z"],
                             attrs={"axis": 1} if per_axis else {}, opset=13)
    assert y.dtype == dtype and (y == np.iinfo(dtype).max).any()  # saturation happened


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32])
@pytest.mark.parametrize("per_axis", [False, True], ids=["per_tensor", "per_axis"])
def test_dequantize_matches_onnxruntime(dtype, per_axis):
    info = np.iinfo(dtype)
    x = RNG.integers(max(info.min, -1000), min(info.max, 1000), (2, 3, 5)).astype(dtype)
    scale = np.array([0.5, 0.05, 0.25], np.float32) if per_axis else np.array(0.125, np.float32)
    zero = np.zeros(scale.shape, dtype) if dtype == np.int32 else np.full(scale.shape, 7, dtype)
    check_against_ort("DequantizeLinear", ["x", "s", "z"], {"x": x, "s": scale, "z": zero}, constants=["s", "z"],
                      attrs={"axis": 1} if per_axis else {}, opset=13)


def test_without_zero_point_quantize_gives_uint8():
    (y,) = check_against_ort("QuantizeLinear", ["x", "s"], {"x": X, "s": np.array(0.1, np.float32)},
                             constants=["s"], opset=13)
    assert y.dtype == np.uint8


@pytest.mark.parametrize("scale, zero, message", [
    (np.array(0.0, np.float32), np.array(0, np.int8), r"scale 's' must be positive and finite, got \[0.0\]"),
    (np.array(np.nan, np.float32), np.array(0, np.int8), r"scale 's' must be positive and finite, got \[nan\]"),
    (np.array([0.5, np.inf, 1], np.float32), np.zeros(3, np.int8), r"scale 's' must be positive and finite"),
    (np.array([0.5, 0.5, 1], np.float32), np.zeros(2, np.int8), r"zero point 'z' has shape \(2,\), scale 's' has "
                                                               r"shape \(3,\): they must hold as many values"),
    (np.ones((3, 1), np.float32), np.zeros((3, 1), np.int8), r"scale 's' has shape \(3, 1\): only per-tensor"),
])
def test_bad_coefficients_are_refused_naming_the_tensor(scale, zero, message):
    model = node_model("QuantizeLinear", ["x", "s", "z"], {"x": X, "s": scale, "z": zero}, constants=["s", "z"],
                       attrs={"axis": 1}, opset=13)
    with pytest.raises(ParseError, match=rf"node '.*' \(QuantizeLinear\): {message}"):
        parse_onnx(model)


def test_block_quantization_and_float_inputs_to_dequantize_are_unsupported():
    model = node_model("DequantizeLinear", ["x", "s"], {"x": X, "s": np.array(0.5, np.float32)}, constants=["s"],
                       opset=13)
    with pytest.raises(ParseError, match=r"input 'x' has type FLOAT; dequantizing INT8, UINT8"):
        parse_onnx(model)
    blocked = node_model("QuantizeLinear", ["x", "s"], {"x": X, "s": np.full((2, 3, 1), 0.5, np.float32)},
                         constants=["s"], attrs={"axis": 2, "block_size": 5}, opset=21)
    with pytest.raises(ParseError, match="block quantization"):
        parse_onnx(blocked)
