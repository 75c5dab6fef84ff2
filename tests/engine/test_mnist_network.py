"""A hand-built MNIST-style network through the NetworkDefinition API, checked against a float64 NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import engine as trt

RNG = np.random.default_rng(1234)
WEIGHTS = {
    "conv1.w": RNG.standard_normal((8, 1, 5, 5)).astype(np.float32) * 0.2,
    "conv1.b": RNG.standard_normal(8).astype(np.float32) * 0.1,
    "conv2.w": RNG.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1,
    "conv2.b": RNG.standard_normal(16).astype(np.float32) * 0.1,
    "fc1.w": RNG.standard_normal((16 * 3 * 3, 32)).astype(np.float32) * 0.1,
    "fc1.b": RNG.standard_normal((1, 32)).astype(np.float32) * 0.1,
    "fc2.w": RNG.standard_normal((32, 10)).astype(np.float32) * 0.3,
    "fc2.b": RNG.standard_normal((1, 10)).astype(np.float32) * 0.1,
}


def build_mnist_network(network: trt.NetworkDefinition) -> None:
    """(N,1,28,28) → conv5x5 pad2 → relu → maxpool2 → conv3x3 stride2 pad1 → relu → maxpool2 → fc → relu → fc
    → softmax → top-1. Each layer is named so the printer test can find it."""
    x = network.add_input("image", trt.DataType.FLOAT, (-1, 1, 28, 28))
    conv1 = network.add_convolution_nd(x, 8, (5, 5), WEIGHTS["conv1.w"], WEIGHTS["conv1.b"], name="conv1")
    conv1.stride_nd = (1, 1)
    conv1.padding_nd = (2, 2)
    relu1 = network.add_activation(conv1.get_output(0), trt.ActivationType.RELU, name="relu1")
    pool1 = network.add_pooling_nd(relu1.get_output(0), trt.PoolingType.MAX, (2, 2), name="pool1")
    conv2 = network.add_convolution_nd(pool1.get_output(0), 16, (3, 3), WEIGHTS["conv2.w"], WEIGHTS["conv2.b"],
                                       name="conv2")
    conv2.stride_nd = (2, 2)
    conv2.pre_padding = (1, 1)
    conv2.post_padding = (1, 1)
    relu2 = network.add_activation(conv2.get_output(0), trt.ActivationType.RELU, name="relu2")
    pool2 = network.add_pooling_nd(relu2.get_output(0), trt.PoolingType.MAX, (2, 2), name="pool2")
    flatten = network.add_shuffle(pool2.get_output(0), name="flatten")
    flatten.reshape_dims = (0, -1)
    hidden = _fully_connected(network, flatten.get_output(0), "fc1")
    relu3 = network.add_activation(hidden, trt.ActivationType.RELU, name="relu3")
    logits = _fully_connected(network, relu3.get_output(0), "fc2")
    softmax = network.add_softmax(logits, name="softmax")
    topk = network.add_topk(softmax.get_output(0), trt.TopKOperation.MAX, 1, 1 << 1, name="top1")
    softmax.get_output(0).name = "probabilities"
    network.mark_output(softmax.get_output(0))
    network.mark_output(topk.get_output(0))
    network.mark_output(topk.get_output(1))


def _fully_connected(network: trt.NetworkDefinition, x: trt.Tensor, name: str) -> trt.Tensor:
    w, b = WEIGHTS[f"{name}.w"], WEIGHTS[f"{name}.b"]
    weights = network.add_constant(w.shape, w, name=f"{name}.weights")
    bias = network.add_constant(b.shape, b, name=f"{name}.bias")
    matmul = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, weights.get_output(0),
                                         trt.MatrixOperation.NONE, name=f"{name}.matmul")
    add = network.add_elementwise(matmul.get_output(0), bias.get_output(0), trt.ElementWiseOperation.SUM,
                                  name=f"{name}.bias_add")
    return add.get_output(0)


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,kcij->nkhw", windows, w) + b.reshape(1, -1, 1, 1)


def _maxpool_ref(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    x = x[:, :, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def mnist_reference(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = {k: v.astype(np.float64) for k, v in WEIGHTS.items()}
    x = image.astype(np.float64)
    x = _maxpool_ref(np.maximum(_conv_ref(x, w["conv1.w"], w["conv1.b"], 1, 2), 0))
    x = _maxpool_ref(np.maximum(_conv_ref(x, w["conv2.w"], w["conv2.b"], 2, 1), 0))
    x = x.reshape(x.shape[0], -1)
    x = np.maximum(x @ w["fc1.w"] + w["fc1.b"], 0)
    logits = x @ w["fc2.w"] + w["fc2.b"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    return probs, probs.max(axis=1, keepdims=True), probs.argmax(axis=1)[:, None]


@pytest.fixture(scope="module")
def mnist_engine() -> trt.Engine:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    build_mnist_network(network)
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 1, 28, 28), (4, 1, 28, 28), (8, 1, 28, 28))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    return trt.Runtime(logger).deserialize_cuda_engine(plan)


@pytest.mark.parametrize("batch", [1, 5])
def test_mnist_matches_float64_reference(mnist_engine: trt.Engine, batch: int) -> None:
    image = np.random.default_rng(batch).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    outputs = mnist_engine.create_execution_context().execute({"image": image})
    probs, top_value, top_index = mnist_reference(image)
    names = [mnist_engine.get_tensor_name(i) for i in range(mnist_engine.num_io_tensors)]
    assert names[0] == "image" and names[1] == "probabilities"
    np.testing.assert_allclose(outputs["probabilities"], probs, rtol=1e-4, atol=1e-6)
    values, indices = (outputs[n] for n in names[2:])
    assert values.shape == (batch, 1) and indices.shape == (batch, 1)
    assert indices.dtype == np.int64
    np.testing.assert_allclose(values, top_value, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(indices, top_index)


def _describe(network: trt.NetworkDefinition) -> list[str]:
    """A TensorRT-sample style network printer: one line per layer with its tensors."""
    lines = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        ins = [layer.get_input(i) for i in range(layer.num_inputs)]
        outs = [layer.get_output(i) for i in range(layer.num_outputs)]
        fmt = lambda t: "None" if t is None else f"{t.name}:{t.dtype.value}{list(t.shape)}"  # noqa: E731
        lines.append(f"{index} {layer.name} {layer.type.value} {layer.precision.value} "
                     f"in=[{', '.join(fmt(t) for t in ins)}] out=[{', '.join(fmt(t) for t in outs)}]")
    return lines


def test_network_printer_lists_layers_tensors_shapes_and_types() -> None:
    network = trt.NetworkDefinition()
    build_mnist_network(network)
    by_name = {layer.name: layer for layer in network}
    lines = _describe(network)
    assert len(lines) == network.num_layers == len(network)
    assert network.num_inputs == 1 and network.get_input(0).name == "image"
    assert [network.get_output(i).name for i in range(network.num_outputs)][0] == "probabilities"

    conv1 = by_name["conv1"]
    assert conv1.type == trt.LayerType.CONVOLUTION and conv1.num_inputs == 3
    assert conv1.get_input(0).name == "image"
    assert conv1.get_input(1).shape == (8, 1, 5, 5) and conv1.get_input(1).producer.type == trt.LayerType.CONSTANT
    assert tuple(conv1.stride_nd) == (1, 1) and tuple(conv1.padding_nd) == (2, 2)
    assert tuple(conv1.pre_padding) == tuple(conv1.post_padding) == (2, 2)
    assert conv1.get_output(0).shape == (-1, 8, 28, 28)
    assert by_name["pool1"].get_output(0).shape == (-1, 8, 14, 14)
    assert by_name["conv2"].get_output(0).shape == (-1, 16, 7, 7)
    assert by_name["pool2"].get_output(0).shape == (-1, 16, 3, 3)
    assert by_name["flatten"].get_output(0).shape == (-1, 144)
    assert by_name["fc1.matmul"].get_output(0).shape == (-1, 32)
    assert by_name["fc2.bias_add"].get_output(0).shape == (-1, 10)
    top1 = by_name["top1"]
    assert top1.num_outputs == 2
    assert [t.dtype for t in top1.outputs] == [trt.DataType.FLOAT, trt.DataType.INT64]
    assert [t.shape for t in top1.outputs] == [(-1, 1), (-1, 1)]
    for layer in network:
        assert layer.precision == trt.DataType.FLOAT and not layer.precision_is_set
        for t in layer.outputs:
            assert t.producer is layer

    line = next(s for s in lines if " conv1 " in s)
    assert line.endswith("CONVOLUTION FLOAT in=[image:FLOAT[-1, 1, 28, 28], conv1.kernel_output_0:FLOAT[8, 1, 5, 5], "
                         "conv1.bias_output_0:FLOAT[8]] out=[conv1_output_0:FLOAT[-1, 8, 28, 28]]")
    expected_types = ["CONVOLUTION", "ACTIVATION", "POOLING", "CONVOLUTION", "ACTIVATION", "POOLING", "SHUFFLE",
                      "MATRIX_MULTIPLY", "ELEMENTWISE", "ACTIVATION", "MATRIX_MULTIPLY", "ELEMENTWISE", "SOFTMAX",
                      "TOPK"]
    assert [layer.type.value for layer in network if layer.type != trt.LayerType.CONSTANT] == expected_types
