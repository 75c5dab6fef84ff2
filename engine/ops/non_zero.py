"""NonZero (LayerType.NON_ZERO, `network.add_non_zero`): the indices of the non-zero elements of its input.

Output: INT64 of shape (rank, count), column j holding the coordinates of the j-th non-zero element in row-major
order. `count` depends on the input's values: a data-dependent dimension (-1 at build time; docs/dynamic-shapes.md).
Its upper bound, used to time and plan the layer, is the input's element count. A 0-D input behaves as a
one-element 1-D one (ONNX and onnxruntime give a (1, count) result).

ONNX: NonZero (opset 9; bfloat16 since 13); Compress (opset 9, negative axis since 11) imports as NonZero of its
condition, then a Gather along the axis (of the flattened input when no axis is given).
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer


def _rank(shape) -> int:
    return max(len(shape), 1)


def _infer(layer, inputs):
    return [((_rank(inputs[0].shape), -1), DataType.INT64)]


def _upper_bound(layer, inputs):
    shape = inputs[0].shape
    count = 1
    for dim in shape:
        count *= dim
    return [((_rank(shape), count), DataType.INT64)]


def _compute(layer, inputs, xp):
    x = inputs[0]
    if x.ndim == 0:
        x = x.reshape(1)
    return [xp.stack(xp.nonzero(x)).astype(xp.int64, copy=False).reshape(x.ndim, -1)]


register_layer(LayerType.NON_ZERO, _infer, _compute, static_output_shape=False, upper_bound=_upper_bound)


@onnx_op("NonZero", min_opset=9)
def import_non_zero(ctx):
    layer = ctx.network.add_layer(LayerType.NON_ZERO, [ctx.input(0)], {}, name=ctx.layer_name(),
                                  output_dtypes=[DataType.INT64])
    return [layer.get_output(0)]


def _flat(ctx, tensor, suffix: str):
    layer = ctx.network.add_shuffle(tensor, name=ctx.layer_name(suffix))
    layer.reshape_dims = [-1]
    return layer.get_output(0)


@onnx_op("Compress", min_opset=9)
def import_compress(ctx):
    data, condition = ctx.input(0), ctx.input(1)
    if condition.shape is not None and len(condition.shape) != 1:
        ctx.unsupported(f"condition must be 1-D, got shape {list(condition.shape)}", UnsupportedCategory.OTHER)
    if ctx.has_attr("axis"):
        try:
            axis = normalize_axis(int(ctx.attr("axis")), len(data.shape))
        except EngineError as exc:
            ctx.unsupported(str(exc), UnsupportedCategory.ATTRIBUTE)
    else:
        data, axis = _flat(ctx, data, "flatten"), 0
    if condition.dtype != DataType.BOOL:
        condition = ctx.network.add_cast(condition, DataType.BOOL, name=ctx.layer_name("to_bool")).get_output(0)
    positions = ctx.network.add_non_zero(condition, name=ctx.layer_name("non_zero")).get_output(0)
    layer = ctx.network.add_gather(data, _flat(ctx, positions, "indices"), axis, name=ctx.layer_name())
    return [layer.get_output(0)]
