"""A small ResNet-like ONNX model (dynamic batch) for the channels-last tests, CPU and GPU: Conv → Relu → MaxPool →
[Conv → Relu → Conv, + residual] → Relu → Mul by a per-channel scale (a broadcast, which ends the chain) → Conv →
GlobalAveragePool → Flatten → Gemm → y, with the first block's output also a network output ("block_out").

Counted by hand, the format pass makes one chain of conv1, relu0 (fused into conv1), pool, conv2 (+relu), conv3
(+residual +relu) — REFORMATs: x in, block_out out (a network output, read by the Mul too) — and a second chain
conv4 → gap: REFORMATs: the Mul's output in, the GAP's output out (Flatten reads it). Four in all.

`pointwise_block_model` has only 1x1 convolutions, the cuBLASLt GEMM convolutions' case (gpu_cublaslt_conv.py)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 8
RNG = np.random.default_rng(23)
WEIGHTS = {
    "w1": RNG.standard_normal((CHANNELS, 3, 3, 3)).astype(np.float32) * 0.4,
    "b1": RNG.standard_normal(CHANNELS).astype(np.float32) * 0.1,
    "w2": RNG.standard_normal((CHANNELS, CHANNELS, 3, 3)).astype(np.float32) * 0.2,
    "b2": RNG.standard_normal(CHANNELS).astype(np.float32) * 0.1,
    "w3": RNG.standard_normal((CHANNELS, CHANNELS, 1, 1)).astype(np.float32) * 0.3,
    "b3": RNG.standard_normal(CHANNELS).astype(np.float32) * 0.1,
    "scale": RNG.uniform(0.5, 1.5, (1, CHANNELS, 1, 1)).astype(np.float32),
    "w4": RNG.standard_normal((CHANNELS, 1, 3, 3)).astype(np.float32) * 0.4,  # depthwise
    "fc_w": RNG.standard_normal((CHANNELS, 5)).astype(np.float32) * 0.3,
    "fc_b": RNG.standard_normal(5).astype(np.float32) * 0.1,
}
FORMAT_REFORMATS = 4


def resnet_like_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Add", ["c3", "p1"], ["sum"], name="residual"),
        helper.make_node("Relu", ["sum"], ["block_out"], name="relu3"),
        helper.make_node("Mul", ["block_out", "scale"], ["scaled"], name="scale_mul"),
        helper.make_node("Conv", ["scaled", "w4"], ["c4"], name="conv4", pads=[1, 1, 1, 1], group=CHANNELS),
        helper.make_node("GlobalAveragePool", ["c4"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "resnet_like", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("block_out", TensorProto.FLOAT, ["N", CHANNELS, 6, 6])],
        [numpy_helper.from_array(array, name) for name, array in WEIGHTS.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, 3, 12, 12)).astype(np.float32)}


def pointwise_block_model() -> onnx.ModelProto:
    """x -> 1x1 conv -> Relu -> 1x1 conv, + the first Relu's output -> Relu -> y: only pointwise convolutions."""
    rng = np.random.default_rng(4)
    weights = {"w1": rng.standard_normal((32, 16, 1, 1)).astype(np.float32) * 0.3,
               "b1": rng.standard_normal(32).astype(np.float32) * 0.1,
               "w2": rng.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.2,
               "b2": rng.standard_normal(32).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["sum"], name="residual"),
             helper.make_node("Relu", ["sum"], ["y"], name="relu2")]
    graph = helper.make_graph(nodes, "pointwise_block",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32, 10, 10])],
                              [numpy_helper.from_array(a, n) for n, a in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
