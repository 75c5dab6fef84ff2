"""Softmax (LayerType.SOFTMAX, `network.add_softmax`, params `axes` a bitmask with exactly one bit as in TensorRT,
`log` bool for LogSoftmax). The max along the axis is subtracted before exp, so large inputs do not overflow;
float16 is computed in float32.

ONNX: Softmax LogSoftmax Hardmax. Since opset 13 they act on one axis (default -1). Before, the input is coerced
to 2-D at `axis` (default 1) and the op acts on the flattened trailing block; that becomes shuffle → softmax on the
last axis → shuffle back, as TensorRT's parser does. Hardmax is ArgMax (first index on ties) compared with an
iota along the axis, cast to the input type.
"""
from __future__ import annotations

import numpy as np

from ..enums import ElementWiseOperation, LayerType, TopKOperation
from ..errors import EngineError, UnsupportedCategory
from .arg_reduce import add_arg_reduce
from .base import normalize_axis, onnx_op, register_layer
from .math_helpers import upcast_half


def softmax_axis(layer, rank: int) -> int:
    """The single axis of the `axes` bitmask."""
    mask = int(layer.params["axes"])
    axes = [i for i in range(max(rank, 1)) if (mask >> i) & 1]
    if len(axes) != 1 or mask >> max(rank, 1):
        raise EngineError(f"softmax axes bitmask {mask:#x} must select exactly one axis of a rank-{rank} tensor")
    return axes[0]


def _infer(layer, inputs):
    x = inputs[0]
    if not x.dtype.is_floating:
        raise EngineError(f"softmax needs a floating-point input, got {x.dtype.value}")
    softmax_axis(layer, len(x.shape))
    return [(x.shape, x.dtype)]


def _compute(layer, inputs, xp):
    x = inputs[0]
    axis = softmax_axis(layer, x.ndim)
    if x.size == 0:
        return [x.copy()]
    work = upcast_half(x, xp)
    shifted = work - xp.max(work, axis=axis, keepdims=True)
    if layer.params["log"]:
        out = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
    else:
        exp = xp.exp(shifted)
        out = exp / xp.sum(exp, axis=axis, keepdims=True)
    return [out.astype(x.dtype, copy=False)]


register_layer(LayerType.SOFTMAX, _infer, _compute)


# ---------------------------------------------------------------------------------------------------- ONNX
@onnx_op("Softmax", "LogSoftmax", "Hardmax")
def import_softmax(ctx):
    x = ctx.input(0)
    if not x.dtype.is_floating:
        ctx.unsupported(f"{ctx.op_type} needs a floating-point input, got {x.dtype.value}", UnsupportedCategory.DTYPE)
    rank = len(x.shape)
    try:
        axis = normalize_axis(ctx.attr("axis", -1 if ctx.opset >= 13 else 1), rank)
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    flatten = ctx.opset < 13 and axis < rank - 1
    source = _flatten_from(ctx, x, axis) if flatten else x
    if ctx.op_type == "Hardmax":
        result = _hardmax(ctx, source, axis)
    else:
        layer = ctx.network.add_softmax(source, name=ctx.layer_name())
        layer.axes = 1 << axis
        layer.log = ctx.op_type == "LogSoftmax"
        result = layer.get_output(0)
    return [_restore_shape(ctx, result, x, axis) if flatten else result]


def _flatten_from(ctx, x, axis: int):
    """Reshape to x.shape[:axis] + (prod(x.shape[axis:]),): ONNX's 2-D coercion, keeping the leading dims."""
    layer = ctx.network.add_shuffle(x, name=ctx.layer_name("flatten"))
    layer.reshape_dims = [0] * axis + [-1]
    return layer.get_output(0)


def _restore_shape(ctx, y, x, axis: int):
    trailing = x.shape[axis:]
    if all(d >= 0 for d in trailing):
        layer = ctx.network.add_shuffle(y, name=ctx.layer_name("unflatten"))
        layer.reshape_dims = [0] * axis + list(trailing)
    else:
        shape = ctx.network.add_shape(x, name=ctx.layer_name("shape")).get_output(0)
        layer = ctx.network.add_shuffle(y, name=ctx.layer_name("unflatten"))
        layer.set_input(1, shape)
    return layer.get_output(0)


def _hardmax(ctx, x, axis: int):
    """1 at the first maximum along `axis`, 0 elsewhere."""
    size = x.shape[axis]
    if size < 0:
        ctx.unsupported("Hardmax needs the size of its axis to be known when the model is parsed",
                        UnsupportedCategory.DYNAMIC_SHAPE)
    net = ctx.network
    index = add_arg_reduce(net, x, TopKOperation.MAX, axis, keep_dims=True, name=ctx.layer_name("argmax"))
    iota = np.arange(size, dtype=np.int64).reshape((size,) + (1,) * (len(x.shape) - axis - 1))
    hot = net.add_elementwise(index.get_output(0), ctx.constant(iota, name=ctx.layer_name("iota")),
                              ElementWiseOperation.EQUAL, name=ctx.layer_name("equal"))
    return net.add_cast(hot.get_output(0), x.dtype, name=ctx.layer_name("cast")).get_output(0)
