"""SCALE layers and the ONNX BatchNormalization importer, checked against onnxruntime, float64 NumPy and the ONNX
backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType, ScaleMode
from engine.errors import ParseError, ShapeError
from engine.network import NetworkDefinition
from engine.ops.base import layer_impl
from engine.ops.scale import add_scale
from engine.shape_inference import infer_layer

RNG = np.random.default_rng(13)
BN_INPUTS = ["x", "gamma", "beta", "mean", "var"]


def _bn_values(shape, dtype=np.float32):
    c = shape[1]
    return {"x": RNG.standard_normal(shape).astype(dtype), "gamma": RNG.uniform(0.5, 2, c).astype(dtype),
            "beta": RNG.standard_normal(c).astype(dtype), "mean": RNG.standard_normal(c).astype(dtype),
            "var": RNG.uniform(0.1, 2, c).astype(dtype)}


def _bn_reference(values, epsilon=1e-5):
    x, gamma, beta, mean, var = (values[k].astype(np.float64) for k in BN_INPUTS)
    channel = (-1,) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(channel)) / np.sqrt(var.reshape(channel) + epsilon) * gamma.reshape(channel) + \
        beta.reshape(channel)


@pytest.mark.parametrize("case", cases_for(["BatchNormalization"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)  # training_mode=1 included: batch statistics (tests/engine/test_batchnorm_batch_statistics.py)


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("constant_statistics", [True, False])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5)])
def test_batch_normalization_matches_onnxruntime(opset, constant_statistics, shape):
    constants = BN_INPUTS[1:] if constant_statistics else []
    check_against_ort("BatchNormalization", BN_INPUTS, _bn_values(shape), constants=constants,
                      attrs={"epsilon": 1e-3}, opset=opset, rtol=1e-5, atol=1e-5)


def test_constant_statistics_fold_into_one_channel_scale():
    values = _bn_values((2, 4, 3, 3))
    network = parse_onnx(node_model("BatchNormalization", BN_INPUTS, values, constants=BN_INPUTS[1:], opset=15))
    scales = [layer for layer in network if layer.type == LayerType.SCALE]
    assert len(scales) == 1 and scales[0].mode == ScaleMode.CHANNEL and scales[0].inputs[3] is None
    assert {layer.type for layer in network} == {LayerType.SCALE, LayerType.CONSTANT}


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("constant_statistics", [True, False])
def test_float_types_match_float64_reference(dtype, constant_statistics):
    values = _bn_values((2, 3, 4), dtype)
    constants = BN_INPUTS[1:] if constant_statistics else []
    model = node_model("BatchNormalization", BN_INPUTS, values, constants=constants, opset=15)
    (y,) = run_engine(model, {k: v for k, v in values.items() if k not in constants})
    tolerance = 3e-3 if dtype == np.float16 else 1e-12
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), _bn_reference(values), rtol=tolerance, atol=tolerance)


def test_spatial_0_normalizes_each_element():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    stats = {"gamma": RNG.uniform(0.5, 2, (3, 4)), "beta": RNG.standard_normal((3, 4)),
             "mean": RNG.standard_normal((3, 4)), "var": RNG.uniform(0.1, 2, (3, 4))}
    values = {"x": x, **{k: v.astype(np.float32) for k, v in stats.items()}}
    model = node_model("BatchNormalization", BN_INPUTS, values, constants=BN_INPUTS[1:], attrs={"spatial": 0},
                       opset=7)
    (y,) = run_engine(model, {"x": x})
    expected = (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * stats["gamma"] + stats["beta"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_training_outputs_are_rejected():
    values = _bn_values((2, 3))
    model = node_model("BatchNormalization", BN_INPUTS, values, constants=BN_INPUTS[1:], opset=9, num_outputs=3)
    with pytest.raises(ParseError, match="BatchNormalization.*running"):
        parse_onnx(model)


@pytest.mark.parametrize(("mode", "axis", "coefficient_shape"), [(ScaleMode.UNIFORM, 1, (1,)),
                                                                  (ScaleMode.CHANNEL, 1, (3,)),
                                                                  (ScaleMode.CHANNEL, 2, (4,)),
                                                                  (ScaleMode.ELEMENTWISE, 1, (12,))])
def test_scale_layer_modes(mode, axis, coefficient_shape):
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (2, 3, 4))
    coefficients = [RNG.uniform(0.5, 1.5, coefficient_shape).astype(np.float32) for _ in range(3)]
    shift, scale, power = (network.add_constant(c.shape, c).get_output(0) for c in coefficients)
    layer = add_scale(network, x, mode, shift=shift, scale=scale, power=power, channel_axis=axis)
    assert layer.get_output(0).shape == (2, 3, 4)
    data = RNG.uniform(0.5, 1.5, (2, 3, 4)).astype(np.float32)
    [out] = layer_impl(LayerType.SCALE).compute(layer, [data, *coefficients], np)
    broadcast = {ScaleMode.UNIFORM: (), ScaleMode.CHANNEL: (-1,) + (1,) * (2 - axis), ScaleMode.ELEMENTWISE: (3, 4)}
    b, s, p = (c.astype(np.float64).reshape(broadcast[mode]) for c in coefficients)
    np.testing.assert_allclose(out, (data * s + b) ** p, rtol=1e-6)


def test_scale_layer_checks_coefficient_sizes():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (2, 3, 4))
    shift = network.add_constant((4,), np.zeros(4, np.float32)).get_output(0)
    layer = add_scale(network, x, ScaleMode.CHANNEL, shift=shift)
    with pytest.raises(ShapeError, match="expected 3 elements"):
        infer_layer(layer, strict=True)
