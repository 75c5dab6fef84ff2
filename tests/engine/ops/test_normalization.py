"""NORMALIZATION layers and the ONNX Layer/Instance/Group/MeanVariance/Lp normalization importers, checked against
onnxruntime, float64 NumPy and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(11)
OPS = ["LayerNormalization", "InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization",
       "LpNormalization"]


def _normal(*shape, dtype=np.float32):
    return (RNG.standard_normal(shape) * 2 + 1).astype(dtype)


def _group_norm_reference(x, scale, bias, groups, eps):
    """float64 GroupNormalization with per-channel scale and bias (opset 21)."""
    n, c = x.shape[:2]
    grouped = x.astype(np.float64).reshape(n, groups, -1)
    normalized = (grouped - grouped.mean(-1, keepdims=True)) / np.sqrt(grouped.var(-1, keepdims=True) + eps)
    channel = (-1,) + (1,) * (x.ndim - 2)
    return normalized.reshape(x.shape) * scale.reshape(channel) + bias.reshape(channel)


@pytest.mark.parametrize("case", cases_for(OPS), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("num_outputs", [1, 3])
def test_layer_normalization_matches_onnxruntime(axis, with_bias, num_outputs):
    x = _normal(2, 3, 4)
    normalized = x.shape[axis % 3:]
    values = {"x": x, "w": _normal(*normalized), "b": _normal(*normalized)}
    inputs = ["x", "w", "b"] if with_bias else ["x", "w"]
    check_against_ort("LayerNormalization", inputs, values, constants=["w"], attrs={"axis": axis, "epsilon": 1e-3},
                      opset=17, num_outputs=num_outputs, rtol=1e-5, atol=1e-5)


def test_layer_normalization_float16_keeps_float32_statistics():
    values = {"x": _normal(4, 8, dtype=np.float16), "w": _normal(8, dtype=np.float16),
              "b": _normal(8, dtype=np.float16)}
    y, mean, inv_std = check_against_ort("LayerNormalization", ["x", "w", "b"], values, opset=17, num_outputs=3,
                                         rtol=2e-3, atol=2e-3)
    assert y.dtype == np.float16 and mean.dtype == np.float32 and inv_std.dtype == np.float32


def test_layer_normalization_float64():
    x, w = _normal(3, 6, dtype=np.float64), _normal(6, dtype=np.float64)
    (y,) = run_engine(node_model("LayerNormalization", ["x", "w"], {"x": x, "w": w}, opset=17), {"x": x, "w": w})
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)])
@pytest.mark.parametrize("constant_coefficients", [True, False])
def test_instance_normalization_matches_onnxruntime(shape, constant_coefficients):
    values = {"x": _normal(*shape), "s": _normal(shape[1]), "b": _normal(shape[1])}
    check_against_ort("InstanceNormalization", ["x", "s", "b"], values, attrs={"epsilon": 1e-4},
                      constants=["s", "b"] if constant_coefficients else [], opset=6, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("constant_coefficients", [True, False])
def test_group_normalization_opset_21_per_channel(groups, constant_coefficients):
    values = {"x": _normal(2, 6, 3, 2), "s": _normal(6), "b": _normal(6)}
    model = node_model("GroupNormalization", ["x", "s", "b"], values, attrs={"num_groups": groups, "epsilon": 1e-3},
                       constants=["s", "b"] if constant_coefficients else [], opset=21)
    feeds = {} if constant_coefficients else {"s": values["s"], "b": values["b"]}
    (y,) = run_engine(model, {"x": values["x"], **feeds})
    expected = _group_norm_reference(values["x"], values["s"], values["b"], groups, 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_group_normalization_opset_18_scales_per_group():
    values = {"x": _normal(2, 6, 5), "s": _normal(3), "b": _normal(3)}
    model = node_model("GroupNormalization", ["x", "s", "b"], values, attrs={"num_groups": 3},
                       constants=["s", "b"], opset=18)
    (y,) = run_engine(model, {"x": values["x"]})
    expected = _group_norm_reference(values["x"], np.repeat(values["s"], 2), np.repeat(values["b"], 2), 3, 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_group_normalization_opset_18_needs_constant_coefficients():
    values = {"x": _normal(2, 6, 5), "s": _normal(3), "b": _normal(3)}
    with pytest.raises(ParseError, match="GroupNormalization.*constant"):
        parse_onnx(node_model("GroupNormalization", ["x", "s", "b"], values, attrs={"num_groups": 3}, opset=18))


def test_group_normalization_rejects_indivisible_channels():
    values = {"x": _normal(2, 6, 5), "s": _normal(6), "b": _normal(6)}
    with pytest.raises(ParseError, match="GroupNormalization.*groups"):
        parse_onnx(node_model("GroupNormalization", ["x", "s", "b"], values, attrs={"num_groups": 4}, opset=21))


@pytest.mark.parametrize("axes", [None, [1], [0, 1, 2, 3], [-1, -2]])
def test_mean_variance_normalization_matches_onnxruntime(axes):
    attrs = {} if axes is None else {"axes": axes}
    check_against_ort("MeanVarianceNormalization", ["x"], {"x": _normal(2, 3, 4, 5)}, attrs=attrs, opset=13,
                      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_normalization_matches_onnxruntime(p, axis):
    x = _normal(3, 4, 5)
    x[0] = 0.0  # a zero vector normalizes to zeros
    (y,) = check_against_ort("LpNormalization", ["x"], {"x": x}, attrs={"p": p, "axis": axis}, opset=1, rtol=1e-5,
                             atol=1e-6)
    assert np.isfinite(y).all()


def test_lp_normalization_rejects_other_norms():
    with pytest.raises(ParseError, match="LpNormalization.*p must be 1 or 2"):
        parse_onnx(node_model("LpNormalization", ["x"], {"x": _normal(2, 3)}, attrs={"p": 3}, opset=1))


def test_integer_input_is_a_parse_error():
    values = {"x": np.zeros((2, 3), np.int32), "w": np.ones(3, np.int32)}
    with pytest.raises(ParseError, match="LayerNormalization.*floating-point"):
        parse_onnx(node_model("LayerNormalization", ["x", "w"], values, opset=17))
