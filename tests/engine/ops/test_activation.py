"""ACTIVATION / PARAMETRIC_RELU layers and their ONNX importers, checked against onnxruntime and float64 NumPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_node_check import (
    assert_same,
    check_against_float64_reference,
    check_against_ort,
    feeds_of,
    node_model,
    run_engine,
)

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import ActivationType, LayerType
from engine.errors import EngineError, ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(1)
FLOATS = [np.float32, np.float64, np.float16]


def _x(dtype=np.float32, shape=(2, 3, 5), scale=3.0):
    return {"x": (RNG.standard_normal(shape) * scale).astype(dtype)}


def _tolerance(dtype):
    return {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float16 else {"rtol": 1e-5, "atol": 1e-6}


ACTIVATIONS = [
    ("Relu", {}, 14), ("Sigmoid", {}, 13), ("Tanh", {}, 13), ("Softsign", {}, 17), ("Softplus", {}, 17),
    ("LeakyRelu", {}, 16), ("LeakyRelu", {"alpha": 0.3}, 16), ("Elu", {}, 17), ("Elu", {"alpha": 0.5}, 17),
    ("Selu", {}, 17), ("Selu", {"alpha": 2.0, "gamma": 3.0}, 17), ("Celu", {"alpha": 0.7}, 17),
    ("ThresholdedRelu", {"alpha": 0.4}, 17), ("HardSigmoid", {}, 17), ("HardSigmoid", {"alpha": 0.4, "beta": 0.3}, 17),
    ("HardSwish", {}, 17), ("Mish", {}, 18), ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
]


@pytest.mark.parametrize(("op", "attrs", "opset"), ACTIVATIONS, ids=str)
def test_activations_match_onnxruntime(op, attrs, opset):
    check_against_ort(op, ["x"], _x(), attrs=attrs, opset=opset, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("op", "attrs", "opset"), ACTIVATIONS, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_match_float64_reference(op, attrs, opset, dtype):
    check_against_float64_reference(op, ["x"], _x(dtype), attrs=attrs, opset=opset, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_integer_relu(dtype):
    check_against_float64_reference("Relu", ["x"], {"x": RNG.integers(-50, 50, (3, 4)).astype(dtype)}, opset=14)


@pytest.mark.parametrize("op", ["Sigmoid", "Softplus", "Elu", "Mish", "Selu"])
def test_extreme_inputs_stay_finite_and_accurate(op):
    """Relative accuracy holds in the tails too (exp(-|x|) sigmoid, expm1 near 0), where naive formulas lose it."""
    x = np.array([-1000, -80, -20, -1e-3, 0, 1e-3, 20, 80, 1000], np.float32)
    check_against_float64_reference(op, ["x"], {"x": x}, opset=18, rtol=1e-6, atol=1e-37)


def test_swish_matches_float64_reference():
    values = _x()
    model = node_model("Swish", ["x"], values, attrs={"alpha": 0.7}, opset=24)
    (out,) = run_engine(model, feeds_of(model, values))
    x = values["x"].astype(np.float64)
    assert_same(out, (x / (1 + np.exp(-0.7 * x))).astype(np.float32), rtol=1e-5, atol=1e-6)


def test_gelu_unknown_approximation_is_a_parse_error():
    model = node_model("Gelu", ["x"], _x(), attrs={"approximate": "fast"}, opset=20)
    model.graph.node[0].name = "gelu"
    with pytest.raises(ParseError, match="node 'gelu' \\(Gelu\\).*approximate"):
        parse_onnx(model)


@pytest.mark.parametrize("dtype", FLOATS + [np.int32, np.int64])
def test_prelu_broadcasts_slopes_per_channel(dtype):
    x = (RNG.standard_normal((2, 3, 4, 4)) * 10).astype(dtype)
    slope = RNG.uniform(0, 1, (3, 1, 1)).astype(dtype) if np.dtype(dtype).kind == "f" else \
        RNG.integers(0, 3, (3, 1, 1)).astype(dtype)
    check_against_ort("PRelu", ["x", "slope"], {"x": x, "slope": slope}, constants=["slope"], opset=16,
                      **_tolerance(dtype))


@pytest.mark.parametrize(("low", "high"), [(-1.0, 2.0), (None, 0.5), (-0.5, None), (None, None), (1.0, -1.0)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_clip_with_constant_bounds(low, high, dtype):
    """min > max gives max everywhere, as min(max(x, lo), hi) does."""
    values = _x(dtype)
    inputs = ["x", "" if low is None else "lo", "" if high is None else "hi"]
    while inputs[-1] == "":
        inputs.pop()
    for name, bound in (("lo", low), ("hi", high)):
        if bound is not None:
            values[name] = np.array(bound, dtype)
    check_against_ort("Clip", inputs, values, constants=[n for n in ("lo", "hi") if n in values], opset=13,
                      **_tolerance(dtype))


def test_clip_with_runtime_bounds():
    values = {**_x(), "lo": np.array(-0.5, np.float32), "hi": np.array(1.5, np.float32)}
    check_against_ort("Clip", ["x", "lo", "hi"], values, opset=13)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_integer_clip(dtype):
    values = {"x": RNG.integers(0, 100, (3, 4)).astype(dtype), "lo": np.array(10, dtype), "hi": np.array(60, dtype)}
    check_against_ort("Clip", ["x", "lo", "hi"], values, constants=["lo"], opset=13)


def test_clip_opset6_attributes():
    values = _x()
    model = node_model("Clip", ["x"], values, attrs={"min": -1.0, "max": 0.25}, opset=6)
    (out,) = run_engine(model, feeds_of(model, values))
    assert_same(out, np.clip(values["x"], -1.0, 0.25))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.uint8])
def test_shrink(dtype):
    values = {"x": (RNG.standard_normal((3, 5)) * 4).astype(dtype) if np.dtype(dtype).kind == "f" else
              RNG.integers(0, 6, (3, 5)).astype(dtype)}
    attrs = {"lambd": 1.5, "bias": 0.5} if np.dtype(dtype).kind == "f" else {"lambd": 2.0, "bias": 1.0}
    check_against_ort("Shrink", ["x"], values, attrs=attrs, **_tolerance(dtype))


def _activation(kind, alpha, beta, x):
    network = NetworkDefinition()
    layer = network.add_activation(network.add_input("x", DataType.FLOAT, x.shape), kind, alpha, beta)
    return layer_impl(LayerType.ACTIVATION).compute(layer, [x], np)[0]


def test_tensorrt_only_activation_types_against_float64():
    x = RNG.standard_normal(50).astype(np.float32) * 3
    x64 = x.astype(np.float64)
    references = {
        ActivationType.SCALED_TANH: (1.7, 0.6, 1.7 * np.tanh(0.6 * x64)),
        ActivationType.CLIP: (-0.5, 0.8, np.clip(x64, -0.5, 0.8)),
        ActivationType.SOFTPLUS: (2.0, 0.5, 2.0 * np.log1p(np.exp(0.5 * x64))),
        ActivationType.HARD_SWISH: (0.2, 0.4, x64 * np.clip(0.2 * x64 + 0.4, 0, 1)),
        ActivationType.SELU: (1.5, 2.0, 2.0 * np.where(x64 > 0, x64, 1.5 * (np.exp(x64) - 1))),
        ActivationType.GELU_ERF: (0, 0, 0.5 * x64 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x64]))),
    }
    for kind, (alpha, beta, expected) in references.items():
        out = _activation(kind, alpha, beta, x)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, err_msg=kind.value)


def test_activation_rejects_integer_inputs_except_relu():
    network = NetworkDefinition()
    layer = network.add_activation(network.add_input("x", DataType.INT32, (3,)), ActivationType.SIGMOID)
    with pytest.raises(EngineError, match="SIGMOID"):
        layer_impl(LayerType.ACTIVATION).infer(layer, [TensorInfo((3,), DataType.INT32)])
    layer.activation_type = ActivationType.RELU
    assert layer.get_output(0).shape == (3,) and layer.get_output(0).dtype == DataType.INT32
