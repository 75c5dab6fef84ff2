"""Shape layer (TensorRT IShapeLayer plus ONNX Shape-15 start/end); ONNX Shape and Size.

The Shape layer's compute reads only `inputs[0].shape`: at build time it receives a shape-only stand-in, at run
time the runtime evaluates it on the host from the concrete input shape. `start`/`end` follow Python slicing of
the dims, which is exactly ONNX Shape-15's clamping rule (negative values count from the back, then clamp).
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType, ReduceOperation
from .base import onnx_op, register_layer


def _dims_slice(layer) -> slice:
    return slice(layer.params["start"], layer.params["end"])


def _infer_shape(layer, inputs):
    rank = len(inputs[0].shape)
    return [((len(range(rank)[_dims_slice(layer)]),), DataType.INT64)]


def _compute_shape(layer, inputs, xp):
    return [xp.asarray(list(inputs[0].shape)[_dims_slice(layer)], dtype=xp.int64).reshape(-1)]


register_layer(LayerType.SHAPE, _infer_shape, _compute_shape)


@onnx_op("Shape")
def import_shape(ctx):
    layer = ctx.network.add_shape(ctx.input(0), name=ctx.layer_name())
    if ctx.opset >= 15:
        layer.start = int(ctx.attr("start", 0))
        end = ctx.attr("end")
        layer.end = None if end is None else int(end)
    return [layer.get_output(0)]


@onnx_op("Size")
def import_size(ctx):
    """Size = product of the Shape vector (a scalar INT64), as TensorRT's parser builds it."""
    shape = ctx.network.add_shape(ctx.input(0), name=ctx.layer_name("shape")).get_output(0)
    return [ctx.network.add_reduce(shape, ReduceOperation.PROD, [0], keep_dims=False,
                                   name=ctx.layer_name()).get_output(0)]
