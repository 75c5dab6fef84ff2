"""Q/DQ propagation on whole models (the rules alone: tests/engine/builder_ir/test_fusion_rules.py): QDQ models
from onnxruntime's static quantizer build into INT8 convolutions with no Q/DQ layer left but the network input's
QuantizeLinear and the output's DequantizeLinear (what TensorRT keeps), and still match onnxruntime's execution
of the QDQ model within one output quantization step on >= 99.9% of elements (docs/quantization.md's metric)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from quantized_models import calibration_shapes, output_steps, qdq_model
from shared_model_cases import MODELS as MODELS_DIR
from shared_model_cases import make_feeds

from polyx.build import BuildOptions, build_engine

RNG = np.random.default_rng(41)
QDQ_LAYERS = ("QUANTIZE", "DEQUANTIZE")


def within_one_step(got: np.ndarray, want: np.ndarray, step: float) -> float:
    slack = step * (1 + 1e-5) + 1e-6 * np.abs(want)
    return float(np.mean(np.abs(got.astype(np.float64) - want) <= slack))


def weight(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def resnet_style_model() -> onnx.ModelProto:
    """A small float network with every layer the propagation rules cover: Conv+Relu, MaxPool, a residual block
    (Conv, Relu, Conv, Add, Relu), a Concat of two branches with different ranges, AveragePool, Reshape,
    Transpose, Unsqueeze/Squeeze, Flatten and a Gemm classifier (transB = 1, as nn.Linear exports)."""
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("w1", weight(8, 3, 3, 3)), ("b1", RNG.standard_normal(8).astype(np.float32) * 0.1),
        ("w2", weight(8, 8, 3, 3)), ("b2", RNG.standard_normal(8).astype(np.float32) * 0.1),
        ("w3", weight(8, 8, 3, 3)), ("b3", RNG.standard_normal(8).astype(np.float32) * 0.1),
        ("w4", weight(4, 8, 1, 1) * 3), ("b4", np.zeros(4, np.float32)),
        ("wf", weight(10, 48)), ("bf", RNG.standard_normal(10).astype(np.float32) * 0.1),
        ("shape", np.array([0, 12, 4], np.int64)), ("axes", np.array([1], np.int64))]]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c3", "p1"], ["sum"], name="residual_add"),
        helper.make_node("Relu", ["sum"], ["r3"], name="relu3"),
        helper.make_node("Conv", ["p1", "w4", "b4"], ["c4"], name="conv4"),
        helper.make_node("Concat", ["r3", "c4"], ["cat"], name="concat", axis=1),
        helper.make_node("AveragePool", ["cat"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["ap", "shape"], ["rs"], name="reshape"),
        helper.make_node("Transpose", ["rs"], ["tr"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("Unsqueeze", ["tr", "axes"], ["us"], name="unsqueeze"),
        helper.make_node("Squeeze", ["us", "axes"], ["sq"], name="squeeze"),
        helper.make_node("Flatten", ["sq"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "resnet_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                   [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


class _Batches(CalibrationDataReader):
    def __init__(self, n: int):
        self.batches = iter({"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(n))

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module")
def resnet_qdq(tmp_path_factory) -> onnx.ModelProto:
    folder = tmp_path_factory.mktemp("resnet_style")
    onnx.save(resnet_style_model(), folder / "float.onnx")
    quantize_static(str(folder / "float.onnx"), str(folder / "qdq.onnx"), _Batches(4), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(folder / "qdq.onnx")


def built_layers(model: onnx.ModelProto, tmp_path, shapes=None) -> tuple[object, list[dict]]:
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    engine, _, _ = build_engine(path, BuildOptions(device="cpu", input_shapes=shapes or {}))
    return engine, [r for r in engine.layer_info() if not r["host"]]


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_resnet_style_qdq_model_keeps_only_the_input_q_and_output_dq(resnet_qdq, tmp_path):
    ops = Counter(n.op_type for n in resnet_qdq.graph.node)
    assert ops["QuantizeLinear"] >= 14  # the quantizer wraps every activation (reshape, pooling, concat, add, ...)
    engine, layers = built_layers(resnet_qdq, tmp_path)
    kinds = Counter((r["type"], r["precision"]) for r in layers)
    assert kinds[("CONVOLUTION", "INT8")] == 4 and kinds[("CONVOLUTION", "FLOAT")] == 0
    assert kinds[("MATRIX_MULTIPLY", "INT8")] == 1  # the Gemm with transB = 1
    left = sorted((r["type"], r["name"]) for r in layers if r["type"] in QDQ_LAYERS)
    assert left == [("DEQUANTIZE", "y_DequantizeLinear"), ("QUANTIZE", "x_QuantizeLinear")], left
    int8 = {r["name"] for r in layers if r["precision"] == "INT8"}
    assert {"relu1", "residual_add", "concat", "avgpool"} <= int8  # TensorRT's INT8 pointwise/pooling layers
    feeds = {"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)}
    got = engine.create_execution_context().execute(feeds)["y"]
    want = onnxruntime_outputs(resnet_qdq, feeds)["y"]
    assert within_one_step(got, want, output_steps(resnet_qdq)["y"]) >= 0.999


def trt_style_residual_block() -> onnx.ModelProto:
    """Q/DQ placed as NVIDIA's toolkits place them: on the convolution's inputs and on the residual branch only,
    the convolution's output added in float: x → Q → DQ → Conv(DQ(w)) → Add(DQ(r_q)) → Relu → Q → DQ → y."""
    c = 4
    w_q = RNG.integers(-127, 128, (c, c, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(0.03, np.float32), "sx"), numpy_helper.from_array(np.array(0, np.int8),
                                                                                                "z"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sr"),
             numpy_helper.from_array(np.array(0.08, np.float32), "sy"), numpy_helper.from_array(w_q, "w_q"),
             numpy_helper.from_array(RNG.uniform(0.002, 0.006, c).astype(np.float32), "sw"),
             numpy_helper.from_array(np.zeros(c, np.int8), "zw"),
             numpy_helper.from_array(RNG.standard_normal(c).astype(np.float32) * 0.1, "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "z"], ["x_q"], name="quant_x"),
             helper.make_node("DequantizeLinear", ["x_q", "sx", "z"], ["x_f"], name="dequant_x"),
             helper.make_node("QuantizeLinear", ["r", "sr", "z"], ["r_q"], name="quant_r"),
             helper.make_node("DequantizeLinear", ["r_q", "sr", "z"], ["r_f"], name="dequant_r"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w_f"], name="dequant_w", axis=0),
             helper.make_node("Conv", ["x_f", "w_f", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "r_f"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["a"], name="relu"),
             helper.make_node("QuantizeLinear", ["a", "sy", "z"], ["y_q"], name="quant_y"),
             helper.make_node("DequantizeLinear", ["y_q", "sy", "z"], ["y"], name="dequant_y")]
    shape = [2, c, 6, 6]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
                                                  helper.make_tensor_value_info("r", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_the_residual_dq_fuses_into_the_int8_convolution(tmp_path):
    model = trt_style_residual_block()
    engine, layers = built_layers(model, tmp_path)
    (conv,) = [r for r in layers if r["type"] == "CONVOLUTION"]
    assert conv["precision"] == "INT8" and {"add", "relu", "dequant_r", "quant_y"} <= set(conv["fused_from"])
    assert sorted(r["name"] for r in layers if r["type"] in QDQ_LAYERS) == ["dequant_y", "quant_r", "quant_x"]
    feeds = {"x": RNG.standard_normal((2, 4, 6, 6)).astype(np.float32) * 2,
             "r": RNG.standard_normal((2, 4, 6, 6)).astype(np.float32) * 3}
    got = engine.create_execution_context().execute(feeds)["y"]
    want = onnxruntime_outputs(model, feeds)["y"]
    assert np.max(np.abs(got - want)) <= 0.08 * 1.0001 and np.mean(got == want) > 0.99


@pytest.mark.parametrize("preprocessed", [True, False], ids=["bn_folded", "bn_kept"])
def test_mobilenet_v2_qdq_has_only_int8_layers_between_input_q_and_output_dq(preprocessed, tmp_path):
    """With onnxruntime's recommended pre-processing (BatchNormalization folded into the convolutions) and
    without it (each BatchNormalization between its own Q/DQ pairs, which TensorRT runs as an INT8 scale)."""
    if not (MODELS_DIR / "mobilenet_v2.onnx").is_file():
        pytest.skip("shared model mobilenet_v2 is not available")
    model = onnx.load(qdq_model("mobilenet_v2", preprocessed=preprocessed))
    assert sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node) > 200
    shapes = calibration_shapes("mobilenet_v2")
    engine, layers = built_layers(model, tmp_path, shapes)
    kinds = Counter((r["type"], r["precision"]) for r in layers)
    assert kinds[("CONVOLUTION", "INT8")] == 52 and kinds[("MATRIX_MULTIPLY", "INT8")] == 1
    assert kinds[("ACTIVATION", "INT8")] == 35 and kinds[("ELEMENTWISE", "INT8")] == 10
    # each BatchNormalization the pre-processing left (all without it; some onnxruntime versions fold none)
    batch_norms = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert batch_norms == (52 if not preprocessed else batch_norms)
    assert kinds[("SCALE", "INT8")] == batch_norms and kinds[("SCALE", "FLOAT")] == 0
    assert sorted(r["type"] for r in layers if r["type"] in QDQ_LAYERS) == ["DEQUANTIZE", "QUANTIZE"]
    feeds = make_feeds(onnx.load(MODELS_DIR / "mobilenet_v2.onnx"), shapes, seed=7)
    got = engine.create_execution_context().execute(feeds)["output"]
    want = onnxruntime_outputs(model, feeds)["output"]
    assert within_one_step(got, want, output_steps(model)["output"]) >= 0.999
