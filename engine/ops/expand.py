"""Expand and Tile layers; ONNX Expand and Tile.

EXPAND: inputs (x, shape); output = x broadcast with `shape` in both directions (ONNX Expand: a 1 in `shape`
keeps x's dim). TILE: inputs (x, repeats); output dim i = x dim i * repeats[i]. Both second inputs may be
runtime shape tensors; when their value is unknown at build time the output keeps what can still be known
(the dims of x larger than 1, for Expand).
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import broadcast_shapes, onnx_op, register_layer
from .shape_values import dims_from_value, host_ints


def _infer_expand(layer, inputs):
    x, shape = inputs[0], inputs[1]
    dims = dims_from_value(shape, "the expand shape")
    if shape.value is not None:
        return [(broadcast_shapes(x.shape, dims), x.dtype)]
    rank = max(len(x.shape), len(dims))
    padded = (1,) * (rank - len(x.shape)) + tuple(x.shape)
    return [(tuple(d if d > 1 else -1 for d in padded), x.dtype)]


def _compute_expand(layer, inputs, xp):
    x = inputs[0]
    out_shape = broadcast_shapes(x.shape, host_ints(inputs[1]))
    return [xp.broadcast_to(x, out_shape).copy()]


def _infer_tile(layer, inputs):
    x, repeats = inputs[0], inputs[1]
    if repeats.value is None:
        if len(dims_from_value(repeats, "the tile repeats")) != len(x.shape):
            raise EngineError(f"tile repeats must have one entry per input dim ({len(x.shape)})")
        return [(tuple(-1 for _ in x.shape), x.dtype)]
    reps = host_ints(repeats.value)
    if len(reps) != len(x.shape) or any(r < 0 for r in reps):
        raise EngineError(f"tile repeats {reps} do not fit the input shape {x.shape}")
    return [(tuple(d * r if d >= 0 else (-1 if r != 0 else 0) for d, r in zip(x.shape, reps)), x.dtype)]


def _compute_tile(layer, inputs, xp):
    return [xp.tile(inputs[0], tuple(host_ints(inputs[1])))]


register_layer(LayerType.EXPAND, _infer_expand, _compute_expand, host_operands=(1,))
register_layer(LayerType.TILE, _infer_tile, _compute_tile, host_operands=(1,))


@onnx_op("Expand")
def import_expand(ctx):
    layer = ctx.network.add_layer(LayerType.EXPAND, [ctx.input(0), ctx.input(1)], {}, name=ctx.layer_name())
    return [layer.get_output(0)]


@onnx_op("Tile")
def import_tile(ctx):
    if ctx.opset < 6:
        ctx.unsupported("Tile-1 (tiles and axis inputs) is not supported; use opset 6 or newer",
                        UnsupportedCategory.OPSET)
    layer = ctx.network.add_layer(LayerType.TILE, [ctx.input(0), ctx.input(1)], {}, name=ctx.layer_name())
    return [layer.get_output(0)]
