"""INT8 layers from Q/DQ networks: the int8_fusion rule (in the rule table's own test too) makes them, the INT8
tactics compute them with exact integer accumulation, checked bit for bit against an int64 NumPy reference and
against onnxruntime's execution of the same QDQ model."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.conformance.harness import parse_onnx, run_onnx
from polyx.build import BuildOptions, build_engine

RNG = np.random.default_rng(23)
K, N = 24, 10
SX, SY = 0.05, 0.08
W_Q = RNG.integers(-127, 128, (K, N)).astype(np.int8)
W_SCALES = RNG.uniform(0.002, 0.01, N).astype(np.float32)
BIAS = RNG.standard_normal(N).astype(np.float32)


def qdq_linear_model(activation_zero: int = 0, activation_type=TensorProto.INT8) -> onnx.ModelProto:
    """x → Q → DQ → MatMul(DQ(W_q, per column)) → Add(bias) → Relu → Q → DQ → y."""
    zero_dtype = np.int8 if activation_type == TensorProto.INT8 else np.uint8
    inits = [numpy_helper.from_array(np.array(SX, np.float32), "sx"),
             numpy_helper.from_array(np.array(activation_zero, zero_dtype), "zx"),
             numpy_helper.from_array(np.array(SY, np.float32), "sy"),
             numpy_helper.from_array(np.array(0, np.int8), "zy"),
             numpy_helper.from_array(W_Q, "w_q"), numpy_helper.from_array(W_SCALES, "sw"),
             numpy_helper.from_array(np.zeros(N, np.int8), "zw"), numpy_helper.from_array(BIAS, "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["x_q"], name="quant_x"),
             helper.make_node("DequantizeLinear", ["x_q", "sx", "zx"], ["x_f"], name="dequant_x"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w_f"], name="dequant_w", axis=1),
             helper.make_node("MatMul", ["x_f", "w_f"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "b"], ["biased"], name="fc.bias"),
             helper.make_node("Relu", ["biased"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["y_q"], name="quant_y"),
             helper.make_node("DequantizeLinear", ["y_q", "sy", "zy"], ["y"], name="dequant_y")]
    graph = helper.make_graph(nodes, "qdq_linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5, N])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def int64_reference(x: np.ndarray) -> np.ndarray:
    """The INT8 layer's arithmetic, spelled out: int8 input, int64 (exact) accumulation, float64 requantization."""
    x_q = np.clip(np.rint(x.astype(np.float64) / np.float32(SX)), -128, 127).astype(np.int64)
    acc = x_q @ W_Q.astype(np.int64)
    y = acc * (np.float64(np.float32(SX)) * W_SCALES.astype(np.float64)) + BIAS.astype(np.float64)
    y_q = np.clip(np.rint(np.maximum(y, 0) / np.float32(SY)), -128, 127)
    return (y_q.astype(np.float32) * np.float32(SY)).astype(np.float32)


def test_qdq_linear_becomes_one_int8_layer_exact_to_int64_reference(tmp_path):
    path = tmp_path / "linear.onnx"
    onnx.save(qdq_linear_model(), path)
    engine, _, _ = build_engine(path, BuildOptions(device="cpu"))
    layers = [r for r in engine.layer_info() if not r["host"]]
    int8 = [r for r in layers if r["precision"] == "INT8"]
    assert [(r["name"], r["type"], r["tactic"]) for r in int8] == [("fc", "MATRIX_MULTIPLY",
                                                                    "cpu:matrix_multiply:int8_exact")]
    assert set(int8[0]["fused_from"]) >= {"fc", "fc.bias", "relu", "quant_y", "dequant_x", "dequant_w"}
    x = (RNG.standard_normal((3, 5, K)) * 3).astype(np.float32)
    got = engine.create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(got, int64_reference(x))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x})
    assert np.max(np.abs(got - want)) <= SY * 1.0001  # onnxruntime requantizes in float32: at most one step


def test_uint8_asymmetric_activations_stay_as_qdq_layers_and_still_match():
    model = qdq_linear_model(activation_zero=128, activation_type=TensorProto.UINT8)
    network_layers = {layer.type.value for layer in parse_onnx(model).layers}
    assert {"QUANTIZE", "DEQUANTIZE"} <= network_layers
    x = RNG.standard_normal((3, 5, K)).astype(np.float32)
    got = run_onnx(model, {"x": x})["y"]
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.max(np.abs(got - want)) <= SY * 1.0001


def qdq_conv_model() -> onnx.ModelProto:
    c, k = 4, 6
    w_q = RNG.integers(-127, 128, (k, c, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(0.04, np.float32), "sx"), numpy_helper.from_array(np.array(0, np.int8),
                                                                                               "z"),
             numpy_helper.from_array(np.array(0.1, np.float32), "sy"), numpy_helper.from_array(w_q, "w_q"),
             numpy_helper.from_array(RNG.uniform(0.001, 0.01, k).astype(np.float32), "sw"),
             numpy_helper.from_array(np.zeros(k, np.int8), "zw"),
             numpy_helper.from_array(RNG.standard_normal(k).astype(np.float32), "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "z"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "sx", "z"], ["x_f"]),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w_f"], axis=0),
             helper.make_node("Conv", ["x_f", "w_f", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "z"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "sy", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, 9, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_qdq_conv_runs_as_int8_and_matches_onnxruntime(fp16):
    model = qdq_conv_model()
    x = (RNG.standard_normal((2, 4, 9, 8)) * 2).astype(np.float32)
    got = run_onnx(model, {"x": x}, fp16=fp16)["y"]
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    half_rounding = np.abs(want) * 2.0 ** -10 if fp16 else 0  # the dequantized output is stored in float16
    assert got.shape == want.shape and np.all(np.abs(got - want) <= 0.1 * 1.0001 + half_rounding)
    if not fp16:
        assert np.mean(got == want) > 0.99
