"""Scale (LayerType.SCALE; TensorRT IScaleLayer): out = (x * scale + shift) ** power.

Inputs: x, shift, scale, power (inputs 1-3; any may be None, meaning 0, 1 and 1). Params:
  - `mode` ScaleMode: UNIFORM (each coefficient has one element), CHANNEL (one per channel: shape (C,), applied
    along `channel_axis`), ELEMENTWISE (one per element of x.shape[channel_axis:], any shape of that size).
  - `channel_axis` (default 1, non-negative).
Coefficients usually come from Constant layers (the builder folds a Convolution followed by a constant CHANNEL
Scale with power None into the convolution weights), but runtime tensors work too. float16 inputs are computed in
float32; the output has x's dtype.

ONNX: BatchNormalization in inference mode. Constant statistics fold at parse time into one CHANNEL scale and
shift (ELEMENTWISE for spatial=0 before opset 9); otherwise elementwise layers compute the same coefficients at
run time. training_mode=1 normalizes with the input's own statistics (biased variance over every axis but the
channel axis; deterministic, so it is no training: timm's NFNets standardize their conv weights this way) and
gives the optional running-statistics outputs as ONNX defines them (momentum-weighted with the inputs).
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import ElementWiseOperation, LayerType, ReduceOperation, ScaleMode
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer
from .math_helpers import upcast_half


def add_scale(network, x, mode: ScaleMode, shift=None, scale=None, power=None, channel_axis: int = 1,
              name: str | None = None):
    """Add a SCALE layer; shift/scale/power are Tensors or None."""
    params = {"mode": ScaleMode(mode), "channel_axis": int(channel_axis)}
    return network.add_layer(LayerType.SCALE, [x, shift, scale, power], params, name=name)


def _coefficient_shape(mode: ScaleMode, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """Shape a coefficient takes to broadcast against an input of `shape`."""
    if mode == ScaleMode.UNIFORM:
        return ()
    if mode == ScaleMode.CHANNEL:
        return (shape[axis],) + (1,) * (len(shape) - axis - 1)
    return tuple(shape[axis:])


def _infer(layer, inputs):
    x = inputs[0]
    mode = ScaleMode(layer.params["mode"])
    axis = normalize_axis(layer.params["channel_axis"], len(x.shape), "channel axis")
    expected = _coefficient_shape(mode, x.shape, axis)
    if all(d >= 0 for d in expected):
        size = int(np.prod(expected, dtype=np.int64))
        for name, info in zip(("shift", "scale", "power"), inputs[1:]):
            if info is not None and all(d >= 0 for d in info.shape) and int(np.prod(info.shape)) != size:
                raise EngineError(f"{mode.value} scale {name} has shape {list(info.shape)}, expected {size} "
                                  f"elements for input {list(x.shape)}")
    return [(x.shape, x.dtype)]


def _compute(layer, inputs, xp):
    x, shift, scale, power = (list(inputs) + [None] * 3)[:4]
    mode = ScaleMode(layer.params["mode"])
    shape = _coefficient_shape(mode, x.shape, normalize_axis(layer.params["channel_axis"], x.ndim, "channel axis"))
    out = upcast_half(x, xp)
    if scale is not None:
        out = out * upcast_half(scale, xp).reshape(shape)
    if shift is not None:
        out = out + upcast_half(shift, xp).reshape(shape)
    if power is not None:
        out = out ** upcast_half(power, xp).reshape(shape)
    return [out.astype(x.dtype, copy=False)]


register_layer(LayerType.SCALE, _infer, _compute)


# ---------------------------------------------------------------------------------------------------- ONNX
@onnx_op("BatchNormalization")
def import_batch_normalization(ctx):
    x = ctx.input(0)
    if not x.dtype.is_floating:
        ctx.unsupported(f"BatchNormalization needs a floating-point input, got {x.dtype.value}",
                        UnsupportedCategory.DTYPE)
    if len(x.shape) < 2:
        ctx.unsupported(f"BatchNormalization needs an (N, C, ...) input, got rank {len(x.shape)}",
                        UnsupportedCategory.OTHER)
    if ctx.attr("training_mode", 0):
        return _import_batch_statistics(ctx, x)
    if any(ctx.node.output[1:]):
        ctx.unsupported("the running mean/variance outputs need training_mode=1", UnsupportedCategory.OTHER)
    mode = ScaleMode.ELEMENTWISE if ctx.opset < 9 and ctx.attr("spatial", 1) == 0 else ScaleMode.CHANNEL
    epsilon = float(ctx.attr("epsilon", 1e-5))
    values = [ctx.const(i) for i in range(1, 5)]
    if all(v is not None for v in values):
        scale, shift = _folded_coefficients(ctx, x.dtype, values, epsilon)
    else:
        scale, shift = _runtime_coefficients(ctx, epsilon)
    return [add_scale(ctx.network, x, mode, shift=shift, scale=scale, name=ctx.layer_name()).get_output(0)]


def _folded_coefficients(ctx, dtype: DataType, values, epsilon: float):
    """scale = gamma / sqrt(var + eps), shift = beta - mean * scale, computed in float64."""
    gamma, beta, mean, var = (np.asarray(v, dtype=np.float64) for v in values)
    scale = gamma / np.sqrt(var + epsilon)
    shift = beta - mean * scale
    store = np.float32 if dtype == DataType.HALF else nptype(dtype)
    return (ctx.constant(scale.astype(store), name=ctx.layer_name("scale")),
            ctx.constant(shift.astype(store), name=ctx.layer_name("shift")))


def _runtime_coefficients(ctx, epsilon: float):
    """The folded coefficients as layers, for statistics that are not constants."""
    gamma, beta, mean, var = (ctx.input(i) for i in range(1, 5))
    if len({t.dtype for t in (gamma, beta, mean, var)}) != 1:
        ctx.unsupported("non-constant scale, bias, mean and var must share one data type", UnsupportedCategory.DTYPE)
    net = ctx.network
    dtype = nptype(var.dtype)

    def binary(a, b, op, suffix):
        return net.add_elementwise(a, b, op, name=ctx.layer_name(suffix)).get_output(0)

    eps = ctx.constant(np.asarray(epsilon, dtype=dtype), name=ctx.layer_name("epsilon"))
    minus_half = ctx.constant(np.asarray(-0.5, dtype=dtype), name=ctx.layer_name("minus_half"))
    inv_std = binary(binary(var, eps, ElementWiseOperation.SUM, "var_eps"), minus_half, ElementWiseOperation.POW,
                     "inv_std")
    scale = binary(gamma, inv_std, ElementWiseOperation.PROD, "scale")
    shift = binary(beta, binary(mean, scale, ElementWiseOperation.PROD, "mean_scale"), ElementWiseOperation.SUB,
                   "shift")
    return scale, shift


def _import_batch_statistics(ctx, x):
    """training_mode=1: y = (x - mean) / sqrt(var + eps) * scale + B with the mean and biased variance of x over
    every axis but 1; outputs 1 and 2 (when asked for) are input_mean * momentum + mean * (1 - momentum), and the
    same for the variance."""
    if x.dtype == DataType.HALF or any(ctx.input(i).dtype != x.dtype for i in range(1, 5)):
        ctx.unsupported("training_mode=1 needs float32/float64 inputs of one data type", UnsupportedCategory.DTYPE)
    net = ctx.network
    dtype = nptype(x.dtype)
    axes = [a for a in range(len(x.shape)) if a != 1]

    def binary(a, b, op, suffix):
        return net.add_elementwise(a, b, op, name=ctx.layer_name(suffix)).get_output(0)

    def mean_over(t, keep, suffix):
        return net.add_reduce(t, ReduceOperation.AVG, axes, keep, name=ctx.layer_name(suffix)).get_output(0)

    mean = mean_over(x, True, "batch_mean")
    centred = binary(x, mean, ElementWiseOperation.SUB, "centred")
    square = binary(centred, centred, ElementWiseOperation.PROD, "square")
    var = mean_over(square, True, "batch_var")
    eps = ctx.constant(np.asarray(float(ctx.attr("epsilon", 1e-5)), dtype=dtype), name=ctx.layer_name("epsilon"))
    minus_half = ctx.constant(np.asarray(-0.5, dtype=dtype), name=ctx.layer_name("minus_half"))
    inv_std = binary(binary(var, eps, ElementWiseOperation.SUM, "var_eps"), minus_half, ElementWiseOperation.POW,
                     "inv_std")
    normalized = binary(centred, inv_std, ElementWiseOperation.PROD, "normalized")
    outputs = [add_scale(net, normalized, ScaleMode.CHANNEL, shift=ctx.input(2), scale=ctx.input(1),
                         name=ctx.layer_name()).get_output(0)]
    if any(ctx.node.output[1:]):
        momentum = float(ctx.attr("momentum", 0.9))
        keep = ctx.constant(np.asarray(momentum, dtype=dtype), name=ctx.layer_name("momentum"))
        take = ctx.constant(np.asarray(1.0 - momentum, dtype=dtype), name=ctx.layer_name("one_minus_momentum"))
        for index, (statistic, suffix) in enumerate([(mean_over(x, False, "mean"), "running_mean"),
                                                     (mean_over(square, False, "var"), "running_var")], start=3):
            old = binary(ctx.input(index), keep, ElementWiseOperation.PROD, f"{suffix}_kept")
            outputs.append(binary(old, binary(statistic, take, ElementWiseOperation.PROD, f"{suffix}_new"),
                                  ElementWiseOperation.SUM, suffix))
    return outputs
