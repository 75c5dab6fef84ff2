"""A small ONNX model whose engine fuses: Conv → BatchNormalization → Relu (one fused layer), then MaxPool, Conv,
Add(residual) → Relu (conv+add+relu, one layer), Identity (removed), Flatten, Gemm → y. Its float64 NumPy
reference gives every ONNX tensor, so tests check what the engine reports at each layer boundary."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHAPE = (2, 3, 8, 8)
RNG = np.random.default_rng(11)
W1 = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.4
B1 = RNG.standard_normal(4).astype(np.float32) * 0.1
GAMMA, BETA = (RNG.uniform(0.5, 1.5, 4).astype(np.float32), RNG.standard_normal(4).astype(np.float32) * 0.1)
MEAN, VAR = RNG.standard_normal(4).astype(np.float32) * 0.1, RNG.uniform(0.5, 1.5, 4).astype(np.float32)
W2 = RNG.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3
B2 = RNG.standard_normal(4).astype(np.float32) * 0.1
FC_W = RNG.standard_normal((64, 5)).astype(np.float32) * 0.2
FC_B = RNG.standard_normal(5).astype(np.float32) * 0.1
EPS = 1e-5


def fused_block_model() -> onnx.ModelProto:
    init = [numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (GAMMA, "gamma"), (BETA, "beta"),
                                                        (MEAN, "mean"), (VAR, "var"), (W2, "w2"), (B2, "b2"),
                                                        (FC_W, "fc_w"), (FC_B, "fc_b"))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["conv1_out"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1_out", "gamma", "beta", "mean", "var"], ["bn_out"], name="bn",
                         epsilon=EPS),
        helper.make_node("Relu", ["bn_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool_out"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool_out", "w2", "b2"], ["conv2_out"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["conv2_out", "pool_out"], ["add_out"], name="add"),
        helper.make_node("Relu", ["add_out"], ["relu2_out"], name="relu2"),
        helper.make_node("Identity", ["relu2_out"], ["same_out"], name="same"),
        helper.make_node("Flatten", ["same_out"], ["flat_out"], name="flatten"),
        helper.make_node("Gemm", ["flat_out", "fc_w", "fc_b"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "fused_block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (SHAPE[0], 5))], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sample_input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,kc->nkhw", padded[:, :, i:i + h, j:j + wd], w[:, :, i, j].astype(np.float64))
    return out + b.reshape(1, -1, 1, 1)


def reference_tensors(x: np.ndarray) -> dict[str, np.ndarray]:
    """Every ONNX tensor of the model, computed in float64."""
    t = {"conv1_out": _conv(x.astype(np.float64), W1, B1)}
    ch = (1, -1, 1, 1)
    t["bn_out"] = (t["conv1_out"] - MEAN.reshape(ch)) / np.sqrt(VAR.reshape(ch).astype(np.float64) + EPS) * \
        GAMMA.reshape(ch) + BETA.reshape(ch)
    t["relu1_out"] = np.maximum(t["bn_out"], 0)
    n, c, h, w = t["relu1_out"].shape
    t["pool_out"] = t["relu1_out"].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    t["conv2_out"] = _conv(t["pool_out"], W2, B2)
    t["add_out"] = t["conv2_out"] + t["pool_out"]
    t["relu2_out"] = np.maximum(t["add_out"], 0)
    t["same_out"] = t["relu2_out"]
    t["flat_out"] = t["same_out"].reshape(n, -1)
    t["y"] = t["flat_out"] @ FC_W.astype(np.float64) + FC_B
    return t
