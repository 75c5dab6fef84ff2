"""Implicit INT8: calibrators compute dynamic ranges from FP32 runs (each algorithm checked on data with a known
answer), the TensorRT-format cache round-trips and loads hand-written, a cached build does not calibrate and
gives the same plan, user-set ranges work without a calibrator, and bad calibrators are refused by name."""
from __future__ import annotations

import struct

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_model_cases import MODELS

import engine as trt
from engine.calibrator import AbsHistogram, entropy_threshold, quantile_threshold, read_cache, write_cache
from engine.conformance.harness import parse_onnx

RNG = np.random.default_rng(31)


def test_minmax_quantile_and_entropy_on_a_known_distribution() -> None:
    histogram = AbsHistogram()
    batches = [RNG.standard_normal(200_000) * (1 + i) for i in range(3)]
    for batch in batches:  # later batches exceed the first one's range: bins merge, counts are kept
        histogram.add(batch)
    histogram.add(np.array([40.0, -np.inf, np.nan]))  # one outlier; non-finite values are ignored
    assert histogram.amax == 40.0 and histogram.counts.sum() == 600_001
    exact = np.quantile(np.abs(np.concatenate(batches + [np.array([40.0])])), 0.9999)
    assert abs(quantile_threshold(histogram, 0.9999) - exact) <= 2 * histogram.bin_width
    threshold = entropy_threshold(histogram)
    assert 5 < threshold < 20  # clips the lone outlier, keeps the bulk (3 sigma of the widest batch is 9)


def test_cache_round_trip_and_a_tensorrt_written_cache() -> None:
    ranges = {"input": 2.54, "/conv/Relu_output_0": 127.0}
    text = write_cache(trt.CalibrationAlgoType.ENTROPY_CALIBRATION_2, ranges)
    assert text.splitlines()[0] == b"TRT-8601-EntropyCalibration2"
    assert text.splitlines()[2] == b"/conv/Relu_output_0: 3f800000"  # scale 1.0 as big-endian float32 hex
    assert read_cache(text) == pytest.approx(ranges)
    by_tensorrt = b"TRT-8501-EntropyCalibration2\ninput: 3c010204\nconv1: 3d4ccccd\n"
    loaded = read_cache(by_tensorrt)
    assert loaded["input"] == pytest.approx(struct.unpack(">f", bytes.fromhex("3c010204"))[0] * 127)
    assert loaded["conv1"] == pytest.approx(0.05 * 127, rel=1e-6)


@pytest.mark.parametrize("data, message", [
    (b"", "the first line must name the TensorRT version"),
    (b"hello\nx: 3c010204\n", "the first line must name the TensorRT version"),
    (b"TRT-8601-MinMaxCalibration\nx: zz\n", "line 2 'x: zz' is not 'tensor_name: <8 hex digits"),
    (b"TRT-8601-MinMaxCalibration\nx: 7fc00000\n", "line 2 'x: 7fc00000'"),  # NaN scale
    (b"\xff\xfe", "not ASCII text"),
])
def test_bad_caches_are_refused_naming_the_line(data, message) -> None:
    with pytest.raises(trt.BuildError, match=message):
        read_cache(data, "calibration cache")


def conv_model() -> onnx.ModelProto:
    """Conv → Relu → Conv → Relu on a dynamic batch."""
    inits = [numpy_helper.from_array((RNG.standard_normal((8, 3, 3, 3)) / 4).astype(np.float32), "w1"),
             numpy_helper.from_array((RNG.standard_normal(8) / 4).astype(np.float32), "b1"),
             numpy_helper.from_array((RNG.standard_normal((4, 8, 3, 3)) / 8).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["y"], name="relu2")]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Batches:
    """Mixed into a calibrator class: `count` seeded batches, a cache kept in memory, calls counted."""

    def __init__(self, count: int, shape=(2, 3, 10, 10), dtype=np.float32, cache: bytes | None = None):
        self.remaining, self.shape, self.dtype, self.cache, self.batches_given = count, shape, dtype, cache, 0

    def get_batch(self, names):
        assert names == ["x"]
        if self.remaining == 0:
            return None
        self.remaining -= 1
        self.batches_given += 1
        return [np.random.default_rng(self.remaining).standard_normal(self.shape).astype(self.dtype)]

    def read_calibration_cache(self):
        return self.cache

    def write_calibration_cache(self, cache):
        self.cache = cache


class MinMax(Batches, trt.IInt8MinMaxCalibrator):
    pass


class Entropy(Batches, trt.IInt8EntropyCalibrator2):
    pass


def build(network, calibrator=None, int8=True) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 10, 10), (2, 3, 10, 10), (4, 3, 10, 10))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def run(plan: bytes, x: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)
    return engine.create_execution_context().execute({"x": x})["y"], engine.layer_info()


@pytest.mark.parametrize("calibrator_class", [MinMax, Entropy])
def test_calibrated_convolutions_run_in_int8_close_to_fp32(calibrator_class) -> None:
    model = conv_model()
    calibrator = calibrator_class(4)
    plan = build(parse_onnx(model), calibrator)
    x = np.random.default_rng(99).standard_normal((3, 3, 10, 10)).astype(np.float32)
    got, layers = run(plan, x)
    assert [(r["name"], r["precision"]) for r in layers if r["type"] == "CONVOLUTION"] == [("conv1", "INT8"),
                                                                                        ("conv2", "INT8")]
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()  # INT8 error, well below the signal
    assert not np.array_equal(got, want)  # it did quantize
    assert calibrator.cache.startswith(b"TRT-8601-" + (b"MinMax" if calibrator_class is MinMax else b"Entropy"))


def test_a_cached_build_does_not_calibrate_and_gives_the_same_plan() -> None:
    network = parse_onnx(conv_model())
    first = MinMax(3)
    plan = build(network, first)
    again = MinMax(3, cache=first.cache)
    assert build(network, again) == plan and again.batches_given == 0


def test_user_set_dynamic_ranges_need_no_calibrator() -> None:
    network = parse_onnx(conv_model())
    tensors = {t.name: t for t in network.tensors()}
    for name, amax in (("x", 4.0), ("r1", 3.0), ("y", 2.0)):
        tensors[name].set_dynamic_range(-amax, amax)
    plan = build(network)
    got, layers = run(plan, np.random.default_rng(1).standard_normal((1, 3, 10, 10)).astype(np.float32))
    convs = {r["name"]: r for r in layers if r["type"] == "CONVOLUTION"}
    assert [r["precision"] for r in convs.values()] == ["INT8", "INT8"]
    assert convs["conv1"]["epilogue"]["output_scale"] == pytest.approx(3.0 / 127)  # r1's range requantizes conv1
    assert convs["conv2"]["epilogue"]["output_scale"] is None  # y is a network output: it stays FP32
    with pytest.raises(trt.EngineError, match=r"tensor 'x': dynamic range must be finite with min <= max"):
        tensors["x"].set_dynamic_range(1.0, -1.0)


@pytest.mark.parametrize("calibrator, message", [
    (MinMax(1, shape=(2, 3, 9, 10)), r"calibration batch for input 'x': shape \(2, 3, 9, 10\) does not fit"),
    (MinMax(1, dtype=np.float64), r"calibration batch for input 'x': dtype float64, the network expects float32"),
    (MinMax(0), r"the INT8 calibrator returned no batch"),
])
def test_bad_calibrators_are_refused_by_name(calibrator, message) -> None:
    with pytest.raises(trt.BuildError, match=message):
        build(parse_onnx(conv_model()), calibrator)
    with pytest.raises(trt.BuildError, match="int8_calibrator must subclass"):
        trt.Builder().create_builder_config().int8_calibrator = object()


def test_entropy_calibration_of_mobilenet_keeps_its_top1() -> None:
    path = MODELS / "mobilenet_v2.onnx"
    if not path.is_file():
        pytest.skip(f"shared model {path} is not available")
    network = parse_onnx(str(path))

    class Images(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            self.left = 2

        def get_batch(self, names):
            self.left -= 1
            return None if self.left < 0 else [RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)]

    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    plans = []
    for int8 in (True, False):
        config = builder.create_builder_config()
        config.device, config.builder_optimization_level = "cpu", 0
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = Images()
        profile = builder.create_optimization_profile()
        profile.set_shape("input", (1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 224, 224))
        config.add_optimization_profile(profile)
        plans.append(trt.Runtime().deserialize_cuda_engine(builder.build_serialized_network(network, config)))
    assert sum(r["precision"] == "INT8" for r in plans[0].layer_info()) == 52  # every convolution
    x = RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)
    int8, fp32 = (engine.create_execution_context().execute({"input": x})["output"] for engine in plans)
    assert int8.argmax() == fp32.argmax() and np.abs(int8 - fp32).max() < 0.05 * np.abs(fp32).max()


def test_a_layer_kept_in_fp32_under_obey_stays_out_of_int8() -> None:
    network = parse_onnx(conv_model())
    next(layer for layer in network.layers if layer.name == "conv2").precision = trt.DataType.FLOAT
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device, config.builder_optimization_level = "cpu", 0
    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.int8_calibrator = MinMax(2)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 10, 10), (2, 3, 10, 10), (4, 3, 10, 10))
    config.add_optimization_profile(profile)
    _, layers = run(builder.build_serialized_network(network, config), np.ones((1, 3, 10, 10), np.float32))
    assert {r["name"]: r["precision"] for r in layers if r["type"] == "CONVOLUTION"} == {"conv1": "INT8",
                                                                                        "conv2": "FLOAT"}


def stem_model() -> onnx.ModelProto:
    """ResNet-50's stem and first block's two readers: Conv → Relu → MaxPool → {Conv a, Conv b} → Add → y."""
    inits = [numpy_helper.from_array((RNG.standard_normal((8, 3, 3, 3)) / 4).astype(np.float32), "w1"),
             numpy_helper.from_array((RNG.standard_normal((8, 8, 1, 1)) / 4).astype(np.float32), "wa"),
             numpy_helper.from_array((RNG.standard_normal((8, 8, 1, 1)) / 4).astype(np.float32), "wb")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "wa"], ["a"], name="conv_a"),
             helper.make_node("Conv", ["p", "wb"], ["b"], name="conv_b"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_max_pool_read_by_two_quantized_convolutions_runs_in_int8() -> None:
    """The pool's output gets one Q→DQ pair for both its readers, which the q_commute rule moves before the pool:
    the stem convolution then writes INT8 itself (requantized to the pool's range) and the pool moves INT8 values,
    as TensorRT runs ResNet's stem; without the shared pair, conv1 wrote FP32 and the pool ran in float."""
    model = stem_model()
    network = parse_onnx(model)
    tensors = {t.name: t for t in network.tensors()}
    for name, amax in (("x", 4.0), ("r1", 5.0), ("p", 5.0), ("a", 6.0), ("b", 6.0), ("y", 8.0)):
        tensors[name].set_dynamic_range(-amax, amax)  # wider than the values of x: nothing saturates
    x = np.random.default_rng(3).standard_normal((2, 3, 10, 10)).astype(np.float32)
    got, layers = run(build(network), x)
    by_name = {r["name"]: r for r in layers}
    assert by_name["conv1"]["precision"] == "INT8"
    assert by_name["conv1"]["epilogue"]["output_scale"] == pytest.approx(5.0 / 127)  # the pool's range
    assert by_name["pool"]["inputs"][0].endswith("int8"), by_name["pool"]
    assert [r["type"] for r in layers].count("QUANTIZE") == 1, [r["name"] for r in layers]  # only the input's
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
