"""Bad INT8 input not covered elsewhere (calibrator batches of the wrong shape/dtype and empty calibration sets:
test_int8_calibration.py; importer scale/zero-point checks: ops/test_quantize.py; tampered plan scales:
test_tampered_plans.py): calibration caches of another network or with a zero scale, and Q/DQ layers made through
the network API with bad constants — each a clear error naming the layer or tensor, nothing written."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine.calibrator import read_cache, write_cache
from engine.enums import LayerType

RNG = np.random.default_rng(8)


class CacheOnly(trt.IInt8MinMaxCalibrator):
    """Returns `cache` (no calibration); records what the builder writes back."""

    def __init__(self, cache: bytes):
        super().__init__()
        self.cache, self.written = cache, []

    def get_batch(self, names):
        return None

    def read_calibration_cache(self):
        return self.cache

    def write_calibration_cache(self, cache):
        self.written.append(cache)


def conv_network() -> trt.NetworkDefinition:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (1, 2, 6, 6))
    conv = net.add_convolution_nd(x, 3, (3, 3), RNG.standard_normal((3, 2, 3, 3)).astype(np.float32),
                                  np.zeros(3, np.float32), name="conv")
    relu = net.add_activation(conv.get_output(0), trt.ActivationType.RELU, name="relu")
    net.mark_output(relu.get_output(0))
    return net


def build(net, calibrator=None, logger=None):
    builder = trt.Builder(logger or trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    return builder.build_serialized_network(net, config)


def test_a_cache_of_another_network_is_refused_naming_its_tensors():
    calibrator = CacheOnly(write_cache(trt.CalibrationAlgoType.MINMAX_CALIBRATION, {"images": 2.0, "fc7": 9.0}))
    with pytest.raises(trt.BuildError, match=r"calibration cache: none of its 2 tensors is in this network "
                                             r"\('images', 'fc7'\): a cache of another network\?"):
        build(conv_network(), calibrator)
    assert calibrator.written == []


def test_a_cache_naming_some_absent_tensors_warns_and_uses_the_rest():
    class Warnings(trt.Logger):
        def __init__(self):
            super().__init__(trt.Logger.WARNING)
            self.messages = []

        def log(self, severity, msg):
            self.messages.append(msg)

    logger = Warnings()
    cache = write_cache(trt.CalibrationAlgoType.MINMAX_CALIBRATION, {"x": 3.0, "gone": 1.0})
    engine = trt.Runtime(logger).deserialize_cuda_engine(build(conv_network(), CacheOnly(cache), logger))
    assert [r["precision"] for r in engine.layer_info() if r["name"] == "conv"] == ["INT8"]
    assert any("1 tensor(s) not in this network are ignored ('gone')" in m for m in logger.messages)


@pytest.mark.parametrize("line, message", [
    (b"x: 00000000", r"line 2: tensor 'x' has scale 0"),
    (b"x: 7f800000", r"line 2 'x: 7f800000' is not 'tensor_name: <8 hex digits"),  # inf
    (b"x: bf800000", r"line 2 'x: bf800000' is not 'tensor_name: <8 hex digits"),  # -1
])
def test_cache_scales_that_cannot_quantize_are_refused(line, message):
    with pytest.raises(trt.BuildError, match=message):
        read_cache(b"TRT-8601-MinMaxCalibration\n" + line + b"\n")


def qdq_network(scale, zero, zero_dtype=np.int8) -> trt.NetworkDefinition:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (2, 3))
    s = net.add_constant((), np.array(scale, np.float32), name="s").get_output(0)
    z = net.add_constant((), np.array(zero, zero_dtype), name="z").get_output(0)
    q = net.add_layer(LayerType.QUANTIZE, [x, s, z], {"output_type": trt.DataType.INT8}, name="quant").get_output(0)
    net.mark_output(q)
    return net


@pytest.mark.parametrize("scale, zero, zero_dtype, message", [
    (0.0, 0, np.int8, r"the scale \(input 1\) must be positive and finite, got \[0\.0\]"),
    (np.nan, 0, np.int8, r"the scale \(input 1\) must be positive and finite, got \[nan\]"),
    (np.inf, 0, np.int8, r"the scale \(input 1\) must be positive and finite, got \[inf\]"),
    (0.1, 300, np.int32, r"the zero point \(input 2\) is INT32, the quantized type is INT8"),
    (0.1, 200, np.uint8, r"the zero point \(input 2\) is UINT8, the quantized type is INT8"),
])
def test_qdq_layers_made_through_the_api_with_bad_constants_are_refused(scale, zero, zero_dtype, message):
    network = qdq_network(scale, zero, zero_dtype)
    with pytest.raises(trt.EngineError, match=r"layer 'quant' \(QUANTIZE\): " + message):
        build(network)
