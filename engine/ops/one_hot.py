"""One-hot layer; ONNX OneHot.

Inputs (indices, depth, values=[off, on]); param `axis` is where the new depth dim goes in the output (ONNX
range [-r-1, r], normalised by the importer). Indices may be any numeric type; negative ones count from depth,
and indices outside [-depth, depth) give an all-`off` row. `depth` may be a runtime scalar (shape tensor).
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import normalize_axis, onnx_op, register_layer
from .shape_values import host_scalar


def _depth(value) -> int:
    depth = int(host_scalar(value))
    if depth < 1:
        raise EngineError(f"OneHot depth must be positive, got {depth}")
    return depth


def _infer_one_hot(layer, inputs):
    indices, depth, values = inputs
    axis = layer.params["axis"]
    size = -1 if depth.value is None else _depth(depth.value)
    shape = tuple(indices.shape)
    return [(shape[:axis] + (size,) + shape[axis:], values.dtype)]


def _compute_one_hot(layer, inputs, xp):
    indices, depth, values = inputs
    depth = _depth(depth)
    axis = layer.params["axis"]
    indices = indices.astype(xp.int64) if indices.dtype.kind != "f" else xp.trunc(indices).astype(xp.int64)
    indices = xp.where(indices < 0, indices + depth, indices)
    expanded = xp.expand_dims(indices, axis)
    positions = xp.arange(depth, dtype=xp.int64).reshape((depth,) + (1,) * (indices.ndim - axis))
    off, on = values.reshape(-1)[0], values.reshape(-1)[1]
    return [xp.where(expanded == positions, on, off)]


register_layer(LayerType.ONE_HOT, _infer_one_hot, _compute_one_hot, host_operands=(1,))


@onnx_op("OneHot")
def import_one_hot(ctx):
    indices = ctx.input(0)
    axis = normalize_axis(int(ctx.attr("axis", -1)), len(indices.shape) + 1, "one-hot axis")
    inputs = [indices, ctx.input(1), ctx.input(2)]
    return [ctx.network.add_layer(LayerType.ONE_HOT, inputs, {"axis": axis}, name=ctx.layer_name()).get_output(0)]
