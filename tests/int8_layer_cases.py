"""INT8 convolution and matrix-multiply layers as the int8_fusion rule leaves them (int8 input, int8 constant
weights, params["int8"] scales, a typed epilogue), with tactic contexts, seeded data and an independent int64
NumPy reference: for the INT8 tactics' tests on the CPU (what `supports` accepts) and on the GPU (bit for bit)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.dtypes import DataType, from_numpy
from engine.enums import ActivationType, MatrixOperation
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext

INPUT_SCALE = 0.05
RESIDUAL_SCALE = 0.07
OUTPUT_DTYPES = {"int8": np.int8, "float32": np.float32, "float16": np.float16}


@dataclass
class Int8Layer:
    ctx: TacticContext
    inputs: list                      # host arrays in input order (None for an absent bias)
    out_dtype: type
    reference: np.ndarray | None      # int64 accumulation, float64 epilogue, requantized when the output is int8


def _info(array: np.ndarray | None, constant: bool = False) -> TensorInfo | None:
    return None if array is None else TensorInfo(array.shape, from_numpy(array.dtype), array if constant else None)


def _epilogue(activation: Activation | None, residual_at: int | None, output: str) -> Epilogue:
    return Epilogue(residual=residual_at, activation=activation,
                    output_scale=0.25 if output == "int8" else None)


def _finish(acc: np.ndarray, scales: np.ndarray, bias: np.ndarray | None, residual: np.ndarray | None,
            activation: Activation | None, output: str, channel_axis: int) -> np.ndarray | None:
    """The INT8 layer's float arithmetic on exact int64 accumulators, in float64 (docs/quantization.md)."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    y = acc.astype(np.float64) * scales.reshape(shape)
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(shape)
    if residual is not None:
        if residual.dtype == np.int8:
            y = y + (residual.astype(np.float32) * np.float32(RESIDUAL_SCALE)).astype(np.float64)
        else:
            y = y + residual.astype(np.float64)
    if activation is not None:
        a, b = activation.alpha, activation.beta
        apply = {ActivationType.RELU: lambda v: np.maximum(v, 0.0), ActivationType.CLIP: lambda v: np.clip(v, a, b),
                 ActivationType.LEAKY_RELU: lambda v: np.where(v >= 0, v, a * v)}.get(activation.type)
        if apply is None:  # a layer made to be refused: no reference
            return None
        y = apply(y)
    if output == "int8":
        return np.clip(np.rint(y / 0.25), -128, 127).astype(np.int8)
    return y.astype(OUTPUT_DTYPES[output])


def conv_layer(rng: np.random.Generator, x_shape: tuple, maps: int, kernel: tuple, stride=None, dilation=None,
               pre=None, post=None, groups: int = 1, bias: bool = True, activation: Activation | None = None,
               residual: str | None = None, output: str = "int8") -> Int8Layer:
    """An INT8 convolution; `residual` is None or the residual's dtype name ("int8" reads it with a scale)."""
    nd = len(kernel)
    stride, dilation = stride or (1,) * nd, dilation or (1,) * nd
    pre, post = pre or (0,) * nd, post or (0,) * nd
    x = rng.integers(-128, 128, x_shape).astype(np.int8)
    w = rng.integers(-127, 128, (maps, x_shape[1] // groups, *kernel)).astype(np.int8)
    b = (rng.standard_normal(maps) * 4).astype(np.float32) if bias else None
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", DataType.FLOAT, x_shape), maps, kernel, w.astype(np.float32), b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding = list(pre), list(post)
    out_shape = tuple(layer.get_output(0).shape)
    scales = rng.uniform(0.001, 0.01, maps)
    params = dict(layer.params, int8={"input_scale": INPUT_SCALE, "weight_scales": [float(s) for s in scales]})
    r = None
    if residual is not None:
        r = rng.integers(-128, 128, out_shape).astype(np.int8) if residual == "int8" else \
            (rng.standard_normal(out_shape) * 3).astype(residual)
        if residual == "int8":
            params["int8"]["residual_scale"] = RESIDUAL_SCALE
    node = Node(layer.type, "conv", params, precision=DataType.INT8,
                epilogue=_epilogue(activation, None if r is None else 3, output))
    inputs = [x, w, b] + ([] if r is None else [r])
    ctx = TacticContext(node, [_info(x), _info(w, True), _info(b, True)] + ([] if r is None else [_info(r)]),
                        [TensorInfo(out_shape, from_numpy(np.dtype(OUTPUT_DTYPES[output])))], "gpu")
    acc = int64_conv(x, w, stride, dilation, pre, post, groups)
    reference = _finish(acc, INPUT_SCALE * scales, b, r, activation, output, channel_axis=1)
    return Int8Layer(ctx, inputs, OUTPUT_DTYPES[output], reference)


def int64_conv(x, w, stride, dilation, pre, post, groups) -> np.ndarray:
    """Grouped N-D convolution of integers, accumulated exactly in int64 (one window position at a time)."""
    x, w = x.astype(np.int64), w.astype(np.int64)
    padded = np.pad(x, [(0, 0), (0, 0)] + list(zip(pre, post)))
    kernel = w.shape[2:]
    out = [(padded.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(len(kernel))]
    y = np.zeros((x.shape[0], w.shape[0], *out), np.int64)
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    for pos in np.ndindex(*out):
        window = tuple(slice(p * s, p * s + d * (k - 1) + 1, d) for p, s, d, k in zip(pos, stride, dilation, kernel))
        for g in range(groups):
            patch = padded[(slice(None), slice(g * cg, (g + 1) * cg), *window)].reshape(x.shape[0], -1)
            y[(slice(None), slice(g * kg, (g + 1) * kg), *pos)] = patch @ w[g * kg:(g + 1) * kg].reshape(kg, -1).T
    return y


def matmul_layer(rng: np.random.Generator, x_shape: tuple, n: int, bias: bool = True,
                 activation: Activation | None = None, output: str = "int8") -> Int8Layer:
    """An INT8 MatMul X (..., K) @ W (K, N), weight scales per output column."""
    k = x_shape[-1]
    x = rng.integers(-128, 128, x_shape).astype(np.int8)
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    b = (rng.standard_normal(n) * 4).astype(np.float32) if bias else None
    net = NetworkDefinition()
    a = net.add_input("x", DataType.FLOAT, x_shape)
    weights = net.add_constant((k, n), w.astype(np.float32)).get_output(0)
    layer = net.add_matrix_multiply(a, MatrixOperation.NONE, weights, MatrixOperation.NONE)
    scales = rng.uniform(0.001, 0.01, n)
    params = dict(layer.params, int8={"input_scale": INPUT_SCALE, "weight_scales": [float(s) for s in scales]})
    node = Node(layer.type, "fc", params, precision=DataType.INT8, epilogue=_epilogue(activation, None, output))
    out_shape = (*x_shape[:-1], n)
    ctx = TacticContext(node, [_info(x), _info(w, True)] + ([] if b is None else [_info(b, True)]),
                        [TensorInfo(out_shape, from_numpy(np.dtype(OUTPUT_DTYPES[output])))], "gpu")
    acc = x.astype(np.int64) @ w.astype(np.int64)
    reference = _finish(acc, INPUT_SCALE * scales, b, None, activation, output, channel_axis=acc.ndim - 1)
    return Int8Layer(ctx, [x, w] + ([] if b is None else [b]), OUTPUT_DTYPES[output], reference)


RELU, CLIP, LEAKY = Activation(ActivationType.RELU), Activation(ActivationType.CLIP, -1.0, 2.5), \
    Activation(ActivationType.LEAKY_RELU, 0.1)
# Odd sizes on purpose: channels, taps, pixels and columns that are not multiples of 4 (the tactics pad them).
CASES = {
    "conv3x3_pad_relu_int8": lambda rng: conv_layer(rng, (2, 4, 9, 8), 6, (3, 3), pre=(1, 1), post=(1, 1),
                                                    activation=RELU),
    "conv5x5_s2_dilated_asym_float32": lambda rng: conv_layer(rng, (3, 3, 11, 10), 5, (5, 3), stride=(2, 1),
                                                              dilation=(1, 2), pre=(2, 0), post=(1, 3),
                                                              output="float32"),
    "conv1x1_no_bias_clip_float16": lambda rng: conv_layer(rng, (2, 12, 5, 7), 8, (1, 1), bias=False,
                                                           activation=CLIP, output="float16"),
    "conv1x1_s2_leaky_int8": lambda rng: conv_layer(rng, (1, 7, 9, 9), 3, (1, 1), stride=(2, 2), activation=LEAKY),
    "conv1d_float32": lambda rng: conv_layer(rng, (2, 5, 13), 4, (3,), pre=(1,), post=(1,), output="float32"),
    "conv_residual_float32_relu_int8": lambda rng: conv_layer(rng, (2, 8, 6, 6), 8, (3, 3), pre=(1, 1),
                                                              post=(1, 1), activation=RELU, residual="float32"),
    "conv_residual_float16_float16": lambda rng: conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), pre=(1, 1), post=(1, 1),
                                                            residual="float16", output="float16"),
    "conv_residual_int8_relu_int8": lambda rng: conv_layer(rng, (2, 16, 7, 7), 16, (1, 1), activation=RELU,
                                                           residual="int8"),
    "depthwise3x3_s2_relu_int8": lambda rng: conv_layer(rng, (2, 6, 9, 8), 6, (3, 3), stride=(2, 2), pre=(1, 1),
                                                        post=(1, 1), groups=6, activation=RELU),
    "depthwise_multiplier2_residual_int8_float32": lambda rng: conv_layer(rng, (1, 3, 7, 7), 6, (3, 3), pre=(1, 1),
                                                                          post=(1, 1), groups=3, residual="int8",
                                                                          output="float32"),
    "grouped_dilated_float16": lambda rng: conv_layer(rng, (2, 8, 9, 9), 4, (3, 3), dilation=(2, 1), groups=2,
                                                      bias=False, output="float16"),
    "matmul_k7_n5_int8": lambda rng: matmul_layer(rng, (3, 5, 7), 5, activation=RELU),
    "matmul_k24_n10_float32": lambda rng: matmul_layer(rng, (4, 24), 10, output="float32"),
    "matmul_no_bias_float16": lambda rng: matmul_layer(rng, (9, 33), 6, bias=False, output="float16"),
}


def gpu_int8_tactic_name(layer: Int8Layer) -> str:
    """The GPU INT8 tactic meant for the layer (engine/tactics/gpu_int8.py)."""
    node = layer.ctx.layer
    if node.type.value == "MATRIX_MULTIPLY":
        return "gpu:matrix_multiply:int8_imma_gemm"
    grouped = int(node.params["num_groups"]) > 1
    return f"gpu:convolution:{'int8_direct_grouped' if grouped else 'int8_imma_gemm'}"
