"""Fill layer (polyx form of TensorRT IFillLayer); ONNX ConstantOfShape, Range, EyeLike.

Param `op` picks the generator:
  CONSTANT_OF_SHAPE  input 0 = the output shape (a shape tensor); params `value` (JSON scalar), `dtype`.
  RANGE              inputs (start, limit, delta) scalars; output start + i * delta for
                     i < max(ceil((limit - start) / delta), 0), in start's dtype. The length depends on input
                     values, which are shape tensors when computed from shapes: known at build time when they
                     are constant, else -1 until run time.
  EYE_LIKE           input 0 = a 2-D tensor giving the shape; params `k` (diagonal offset), `dtype`.
"""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import DataType, from_numpy, from_onnx, nptype
from ..enums import LayerType
from ..errors import EngineError
from .base import onnx_op, register_layer
from .shape_values import dims_from_value, host_ints, host_scalar

CONSTANT_OF_SHAPE, RANGE, EYE_LIKE = "CONSTANT_OF_SHAPE", "RANGE", "EYE_LIKE"


def _range_length(start, limit, delta) -> int:
    if delta == 0:
        raise EngineError("Range delta must not be 0")
    if all(isinstance(v, int) for v in (start, limit, delta)):
        return max(-((start - limit) // delta), 0)
    return max(math.ceil((limit - start) / delta), 0)


def _infer_fill(layer, inputs):
    op = layer.params["op"]
    if op == CONSTANT_OF_SHAPE:
        dims = dims_from_value(inputs[0], "the ConstantOfShape shape")
        if any(d < -1 for d in dims) or (inputs[0].value is not None and any(d < 0 for d in dims)):
            raise EngineError(f"ConstantOfShape shape {dims} holds a negative dim")
        return [(tuple(dims), DataType(layer.params["dtype"]))]
    if op == RANGE:
        for info in inputs:
            if info.shape not in ((), (1,)):
                raise EngineError(f"Range inputs must be scalars, got shape {info.shape}")
        if any(info.value is None for info in inputs):
            return [((-1,), inputs[0].dtype)]
        return [((_range_length(*(host_scalar(i.value) for i in inputs)),), inputs[0].dtype)]
    if op == EYE_LIKE:
        if len(inputs[0].shape) != 2:
            raise EngineError(f"EyeLike needs a 2-D input, got shape {inputs[0].shape}")
        return [(tuple(inputs[0].shape), DataType(layer.params["dtype"]))]
    raise EngineError(f"unknown fill op {op!r}")


def _compute_fill(layer, inputs, xp):
    op = layer.params["op"]
    if op == RANGE:
        start, limit, delta = (host_scalar(x) for x in inputs)
        dtype = inputs[0].dtype
        n = _range_length(start, limit, delta)
        return [(xp.asarray(start, dtype=dtype) + xp.arange(n, dtype=dtype) * xp.asarray(delta, dtype=dtype))
                .astype(dtype, copy=False)]
    dtype = _made_as(DataType(layer.params["dtype"]), xp)
    if op == CONSTANT_OF_SHAPE:
        return [xp.full(tuple(host_ints(inputs[0])), layer.params["value"], dtype=dtype)]
    rows, cols = inputs[0].shape
    return [xp.eye(rows, cols, k=layer.params["k"], dtype=dtype)]


def _made_as(dtype: DataType, xp):
    """The array dtype a fill is made in. CuPy has no bfloat16 dtype: on the GPU a BF16 fill is made in float32 —
    exact for a bfloat16 value, a 0 or a 1 — and the widened step stores it as bfloat16 bits (bfloat16.py)."""
    return nptype(DataType.FLOAT if dtype == DataType.BF16 and xp is not np else dtype)


register_layer(LayerType.FILL, _infer_fill, _compute_fill, host_operands=(0, 1, 2))


@onnx_op("ConstantOfShape")
def import_constant_of_shape(ctx):
    value = ctx.attr("value")
    if value is None:
        value, dtype = 0.0, DataType.FLOAT
    else:
        dtype = from_numpy(value.dtype)
        value = value.reshape(-1)[0].item()
    params = {"op": CONSTANT_OF_SHAPE, "value": value, "dtype": dtype}
    layer = ctx.network.add_layer(LayerType.FILL, [ctx.input(0)], params, name=ctx.layer_name(), output_dtypes=[dtype])
    return [layer.get_output(0)]


@onnx_op("Range")
def import_range(ctx):
    layer = ctx.network.add_layer(LayerType.FILL, [ctx.input(0), ctx.input(1), ctx.input(2)], {"op": RANGE},
                                  name=ctx.layer_name())
    return [layer.get_output(0)]


@onnx_op("EyeLike")
def import_eye_like(ctx):
    x = ctx.input(0)
    dtype = x.dtype
    if ctx.has_attr("dtype"):
        dtype = from_onnx(int(ctx.attr("dtype")))
    params = {"op": EYE_LIKE, "k": int(ctx.attr("k", 0)), "dtype": dtype}
    return [ctx.network.add_layer(LayerType.FILL, [x], params, name=ctx.layer_name(),
                                  output_dtypes=[dtype]).get_output(0)]
