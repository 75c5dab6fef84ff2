"""Normalization (LayerType.NORMALIZATION, `network.add_normalization`; TensorRT INormalizationLayer).

out = (x - mean) / sqrt(var + epsilon) * scale + bias, with mean and (biased) variance taken over `axes`.
`scale` and `bias` (inputs 1 and 2, either may be None) broadcast against x NumPy-style, so LayerNormalization
passes them with the normalized shape and Instance/GroupNormalization as (1, C, 1, ...). With `num_groups` > 1
the channel axis 1 is split into groups and the statistics of a group cover its channels plus `axes` (which may
then not contain axes 0 or 1). Statistics are computed in float32 for float16 inputs.

ONNX: LayerNormalization (optional Mean / InvStdDev outputs are computed by reduce/elementwise layers next to
the normalization), InstanceNormalization, GroupNormalization (opset 18: scale/bias per group; opset 21: per
channel), MeanVarianceNormalization (epsilon 1e-9 as in its function body), LpNormalization (p = 1 or 2, a
zero norm gives 0).
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import ElementWiseOperation, LayerType, ReduceOperation, UnaryOperation
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer
from .math_helpers import upcast_half


def _statistic_axes(layer, shape) -> tuple[int, ...]:
    """Axes of the (grouped, when num_groups > 1) input the statistics are taken over."""
    rank = len(shape)
    axes = sorted({normalize_axis(a, rank, "normalization axis") for a in layer.params["axes"]})
    groups = int(layer.params["num_groups"])
    if groups <= 1:
        return tuple(axes)
    if rank < 2 or any(a < 2 for a in axes):
        raise EngineError(f"group normalization needs a channel axis 1 and axes >= 2, got axes {axes}")
    if shape[1] >= 0 and shape[1] % groups:
        raise EngineError(f"{shape[1]} channels cannot be split into {groups} groups")
    return (2,) + tuple(a + 1 for a in axes)


def _infer(layer, inputs):
    x = inputs[0]
    if not x.dtype.is_floating:
        raise EngineError(f"normalization needs a floating-point input, got {x.dtype.value}")
    _statistic_axes(layer, x.shape)
    return [(x.shape, x.dtype)]


def _compute(layer, inputs, xp):
    x, scale, bias = (list(inputs) + [None, None])[:3]
    stat_axes = _statistic_axes(layer, x.shape)
    work = upcast_half(x, xp)
    groups = int(layer.params["num_groups"])
    if groups > 1:
        work = work.reshape((x.shape[0], groups, x.shape[1] // groups) + x.shape[2:])
    mean = xp.mean(work, axis=stat_axes, keepdims=True)
    centered = work - mean
    var = xp.mean(centered * centered, axis=stat_axes, keepdims=True)
    out = (centered / xp.sqrt(var + float(layer.params["epsilon"]))).reshape(x.shape)
    if scale is not None:
        out = out * upcast_half(scale, xp)
    if bias is not None:
        out = out + upcast_half(bias, xp)
    return [out.astype(x.dtype, copy=False)]


register_layer(LayerType.NORMALIZATION, _infer, _compute)


# ---------------------------------------------------------------------------------------------------- ONNX
def _add_normalization(ctx, x, scale, bias, axes: list[int], epsilon: float, num_groups: int = 1):
    layer = ctx.network.add_normalization(x, scale, bias, axes, name=ctx.layer_name())
    layer.epsilon = float(epsilon)
    layer.num_groups = int(num_groups)
    return layer.get_output(0)


def _check_float(ctx, x) -> None:
    if not x.dtype.is_floating:
        ctx.unsupported(f"{ctx.op_type} needs a floating-point input, got {x.dtype.value}", UnsupportedCategory.DTYPE)


def _axis(ctx, default: int, rank: int) -> int:
    try:
        return normalize_axis(ctx.attr("axis", default), rank)
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)


@onnx_op("LayerNormalization")
def import_layer_normalization(ctx):
    x = ctx.input(0)
    _check_float(ctx, x)
    rank = len(x.shape)
    axes = list(range(_axis(ctx, -1, rank), rank))
    epsilon = ctx.attr("epsilon", 1e-5)
    outputs = [_add_normalization(ctx, x, ctx.input(1), ctx.input(2), axes, epsilon)]
    wanted = [i < ctx.num_outputs and bool(ctx.node.output[i]) for i in (1, 2)]
    if any(wanted):
        outputs += _mean_and_inv_std_dev(ctx, x, axes, epsilon)
    return outputs


def _mean_and_inv_std_dev(ctx, x, axes: list[int], epsilon: float):
    """The LayerNormalization training outputs, in float32 for float16 inputs (ONNX's stash type)."""
    net = ctx.network
    stash = DataType.FLOAT if x.dtype == DataType.HALF else x.dtype
    if stash != x.dtype:
        x = net.add_cast(x, stash, name=ctx.layer_name("stash")).get_output(0)
    mean = net.add_reduce(x, ReduceOperation.AVG, axes, True, name=ctx.layer_name("mean")).get_output(0)
    centered = net.add_elementwise(x, mean, ElementWiseOperation.SUB, name=ctx.layer_name("center")).get_output(0)
    square = net.add_elementwise(centered, centered, ElementWiseOperation.PROD,
                                 name=ctx.layer_name("square")).get_output(0)
    var = net.add_reduce(square, ReduceOperation.AVG, axes, True, name=ctx.layer_name("var")).get_output(0)
    eps = ctx.constant(np.asarray(epsilon, dtype=nptype(stash)), name=ctx.layer_name("epsilon"))
    shifted = net.add_elementwise(var, eps, ElementWiseOperation.SUM, name=ctx.layer_name("var_eps")).get_output(0)
    minus_half = ctx.constant(np.asarray(-0.5, dtype=nptype(stash)), name=ctx.layer_name("minus_half"))
    inv_std = net.add_elementwise(shifted, minus_half, ElementWiseOperation.POW, name=ctx.layer_name("inv_std"))
    return [mean, inv_std.get_output(0)]


def _per_channel(ctx, tensor, rank: int, suffix: str):
    """A (C,) scale/bias as (1, C, 1, ...) so it broadcasts against an (N, C, ...) input."""
    if tensor is None:
        return None
    dims = [1, -1] + [1] * (rank - 2)
    from ..shape_inference import known_value  # late import: shape inference imports the op registry

    value = known_value(tensor)
    if value is not None:
        return ctx.constant(value.reshape(dims), name=ctx.layer_name(suffix))
    layer = ctx.network.add_shuffle(tensor, name=ctx.layer_name(suffix))
    layer.reshape_dims = dims
    return layer.get_output(0)


@onnx_op("InstanceNormalization")
def import_instance_normalization(ctx):
    x = ctx.input(0)
    _check_float(ctx, x)
    rank = len(x.shape)
    if rank < 3:
        ctx.unsupported(f"InstanceNormalization needs an input of rank >= 3, got rank {rank}",
                        UnsupportedCategory.OTHER)
    scale = _per_channel(ctx, ctx.input(1), rank, "scale")
    bias = _per_channel(ctx, ctx.input(2), rank, "bias")
    return [_add_normalization(ctx, x, scale, bias, list(range(2, rank)), ctx.attr("epsilon", 1e-5))]


@onnx_op("GroupNormalization")
def import_group_normalization(ctx):
    x = ctx.input(0)
    _check_float(ctx, x)
    rank = len(x.shape)
    if not ctx.has_attr("num_groups"):
        ctx.unsupported("GroupNormalization needs the num_groups attribute", UnsupportedCategory.ATTRIBUTE)
    groups = int(ctx.attr("num_groups"))
    channels = x.shape[1] if rank >= 2 else -1
    if rank < 2 or groups < 1 or channels >= 0 and channels % groups:
        ctx.unsupported(f"cannot split the channels of a {list(x.shape)} input into {groups} groups",
                        UnsupportedCategory.OTHER)
    scale, bias = ctx.input(1), ctx.input(2)
    if ctx.opset < 21:
        scale, bias = (_group_to_channel(ctx, i, channels, groups) for i in (1, 2))
    scale = _per_channel(ctx, scale, rank, "scale")
    bias = _per_channel(ctx, bias, rank, "bias")
    epsilon = ctx.attr("epsilon", 1e-5)
    if groups == 1:
        return [_add_normalization(ctx, x, scale, bias, list(range(1, rank)), epsilon)]
    return [_add_normalization(ctx, x, scale, bias, list(range(2, rank)), epsilon, groups)]


def _group_to_channel(ctx, index: int, channels: int, groups: int):
    """Opset 18 gives one scale/bias per group: repeat it for the channels of the group."""
    value = ctx.const(index)
    if value is None or channels < 0:
        ctx.unsupported("GroupNormalization before opset 21 needs constant scale and bias and a static channel count",
                        UnsupportedCategory.DYNAMIC_SHAPE)
    return ctx.constant(np.repeat(value.reshape(-1), channels // groups), name=ctx.layer_name(f"channel_{index}"))


@onnx_op("MeanVarianceNormalization")
def import_mean_variance_normalization(ctx):
    x = ctx.input(0)
    _check_float(ctx, x)
    rank = len(x.shape)
    try:
        axes = sorted({normalize_axis(a, rank) for a in ctx.attr("axes", [0, 2, 3])})
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    return [_add_normalization(ctx, x, None, None, axes, 1e-9)]


@onnx_op("LpNormalization")
def import_lp_normalization(ctx):
    x = ctx.input(0)
    _check_float(ctx, x)
    p = ctx.attr("p", 2)
    if p not in (1, 2):
        ctx.unsupported(f"p must be 1 or 2, got {p}", UnsupportedCategory.OTHER)
    net = ctx.network
    axis = _axis(ctx, -1, len(x.shape))
    if p == 1:
        magnitude = net.add_unary(x, UnaryOperation.ABS, name=ctx.layer_name("abs")).get_output(0)
    else:
        magnitude = net.add_elementwise(x, x, ElementWiseOperation.PROD, name=ctx.layer_name("square")).get_output(0)
    norm = net.add_reduce(magnitude, ReduceOperation.SUM, [axis], True, name=ctx.layer_name("sum")).get_output(0)
    if p == 2:
        norm = net.add_unary(norm, UnaryOperation.SQRT, name=ctx.layer_name("sqrt")).get_output(0)
    # A zero norm means x is all zeros there: dividing by the smallest normal number instead gives 0, not NaN.
    tiny = ctx.constant(np.asarray(np.finfo(nptype(x.dtype)).tiny, dtype=nptype(x.dtype)), name=ctx.layer_name("tiny"))
    norm = net.add_elementwise(norm, tiny, ElementWiseOperation.MAX, name=ctx.layer_name("nonzero")).get_output(0)
    return [net.add_elementwise(x, norm, ElementWiseOperation.DIV, name=ctx.layer_name("div")).get_output(0)]
