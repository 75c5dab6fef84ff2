"""Index of the maximum or minimum along one axis (LayerType.ARG_REDUCE; no TensorRT `add_*` method).

Params: `op` TopKOperation MAX|MIN, `axis` (non-negative), `keep_dims` bool, `select_last_index` bool (ties give
the last index instead of the first). The output is INT64. Build with `add_arg_reduce`.

ONNX: ArgMax ArgMin (keepdims, select_last_index since opset 12).
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType, TopKOperation
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer


def add_arg_reduce(network, x, op: TopKOperation, axis: int, keep_dims: bool = True,
                   select_last_index: bool = False, name: str | None = None):
    """Add an ARG_REDUCE layer computing argmax/argmin of `x` along `axis`."""
    params = {"op": TopKOperation(op), "axis": int(axis), "keep_dims": bool(keep_dims),
              "select_last_index": bool(select_last_index)}
    return network.add_layer(LayerType.ARG_REDUCE, [x], params, name=name, output_dtypes=[DataType.INT64])


def _infer(layer, inputs):
    shape = inputs[0].shape
    axis = normalize_axis(layer.params["axis"], len(shape))
    if shape[axis] == 0:
        raise EngineError("cannot take the arg max/min over an empty axis")
    if layer.params["keep_dims"]:
        out = shape[:axis] + (1,) + shape[axis + 1:]
    else:
        out = shape[:axis] + shape[axis + 1:]
    return [(out, DataType.INT64)]


def _compute(layer, inputs, xp):
    x = inputs[0]
    axis = normalize_axis(layer.params["axis"], x.ndim)
    arg = xp.argmax if layer.params["op"] == TopKOperation.MAX else xp.argmin
    if layer.params["select_last_index"]:
        index = x.shape[axis] - 1 - arg(xp.flip(x, axis=axis), axis=axis)
    else:
        index = arg(x, axis=axis)
    index = xp.asarray(index).astype(xp.int64, copy=False)
    if layer.params["keep_dims"]:
        index = xp.expand_dims(index, axis)
    return [index]


register_layer(LayerType.ARG_REDUCE, _infer, _compute)


@onnx_op("ArgMax", "ArgMin")
def import_arg_reduce(ctx):
    x = ctx.input(0)
    try:
        axis = normalize_axis(ctx.attr("axis", 0), len(x.shape))
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    op = TopKOperation.MAX if ctx.op_type == "ArgMax" else TopKOperation.MIN
    layer = add_arg_reduce(ctx.network, x, op, axis, bool(ctx.attr("keepdims", 1)),
                           bool(ctx.attr("select_last_index", 0)), name=ctx.layer_name())
    return [layer.get_output(0)]
