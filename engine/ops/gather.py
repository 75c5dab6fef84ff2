"""Gather layer (TensorRT IGatherLayer); ONNX Gather, GatherElements, GatherND.

Params `axis`, `mode` and `num_elementwise_dims`:
  DEFAULT  np.take along `axis` (output: data[:axis] + indices.shape + data[axis+1:]); num_elementwise_dims 0.
  ELEMENT  GatherElements: output[i..] = data[.., indices[i..], ..] along `axis`, output shape = indices shape.
  ND       GatherND with `num_elementwise_dims` leading batch dims (ONNX batch_dims).
Negative indices count from the back of the indexed dim (ONNX semantics); indices may be int32 or int64.
"""
from __future__ import annotations

import math

from ..enums import LayerType
from ..errors import EngineError
from .base import normalize_axis, onnx_op, register_layer

DEFAULT, ELEMENT, ND = "DEFAULT", "ELEMENT", "ND"


def _wrap_negative(indices, dims, xp):
    """Negative indices + dim; `dims` broadcasts against indices (a scalar or a vector over the last axis)."""
    indices = indices.astype(xp.int64, copy=False)
    return xp.where(indices < 0, indices + xp.asarray(dims, dtype=xp.int64), indices)


def _infer_gather(layer, inputs):
    data, indices = inputs[0], inputs[1]
    mode = layer.params["mode"]
    rank = len(data.shape)
    if mode == DEFAULT:
        if layer.params["num_elementwise_dims"]:
            raise EngineError("DEFAULT gather with num_elementwise_dims > 0 is not supported")
        axis = normalize_axis(layer.params["axis"], rank, "gather axis")
        return [(data.shape[:axis] + tuple(indices.shape) + data.shape[axis + 1:], data.dtype)]
    if mode == ELEMENT:
        normalize_axis(layer.params["axis"], rank, "gather axis")
        if len(indices.shape) != rank:
            raise EngineError(f"element gather needs indices of the data rank {rank}, got {indices.shape}")
        return [(tuple(indices.shape), data.dtype)]
    if mode == ND:
        batch = layer.params["num_elementwise_dims"]
        depth = indices.shape[-1]
        if depth < 0:
            raise EngineError("ND gather needs a static last indices dim")
        if batch + depth > rank:
            raise EngineError(f"ND gather indexes {depth} dims after {batch} batch dims of a rank-{rank} tensor")
        return [(tuple(indices.shape[:-1]) + data.shape[batch + depth:], data.dtype)]
    raise EngineError(f"unknown gather mode {mode!r}")


def _gather_nd(data, indices, batch: int, xp):
    depth = indices.shape[-1]
    batch_shape = data.shape[:batch]
    batch_size = math.prod(batch_shape)
    flat_data = data.reshape((batch_size,) + data.shape[batch:])
    flat_idx = _wrap_negative(indices.reshape(batch_size, -1, depth), data.shape[batch:batch + depth], xp)
    batch_index = xp.arange(batch_size).reshape(batch_size, 1)
    picked = flat_data[(batch_index,) + tuple(flat_idx[..., k] for k in range(depth))]
    return picked.reshape(tuple(indices.shape[:-1]) + data.shape[batch + depth:])


def _compute_gather(layer, inputs, xp):
    data, indices = inputs[0], inputs[1]
    mode = layer.params["mode"]
    if mode == ND:
        return [_gather_nd(data, indices, layer.params["num_elementwise_dims"], xp)]
    axis = normalize_axis(layer.params["axis"], data.ndim, "gather axis")
    indices = _wrap_negative(indices, data.shape[axis], xp)
    if mode == ELEMENT:
        # indices may be smaller than data outside `axis` (ONNX allows it; take_along_axis would not)
        rank = indices.ndim
        grid = [xp.arange(n).reshape((1,) * k + (n,) + (1,) * (rank - k - 1)) for k, n in enumerate(indices.shape)]
        grid[axis] = indices
        return [data[tuple(grid)]]
    return [xp.take(data, indices, axis=axis)]


register_layer(LayerType.GATHER, _infer_gather, _compute_gather)


def _add_gather(ctx, mode: str, axis: int = 0, batch_dims: int = 0):
    layer = ctx.network.add_gather(ctx.input(0), ctx.input(1), axis, name=ctx.layer_name())
    layer.mode = mode
    layer.num_elementwise_dims = batch_dims
    return [layer.get_output(0)]


@onnx_op("Gather")
def import_gather(ctx):
    rank = len(ctx.input(0).shape)
    return _add_gather(ctx, DEFAULT, normalize_axis(int(ctx.attr("axis", 0)), rank, "gather axis"))


@onnx_op("GatherElements")
def import_gather_elements(ctx):
    rank = len(ctx.input(0).shape)
    return _add_gather(ctx, ELEMENT, normalize_axis(int(ctx.attr("axis", 0)), rank, "gather axis"))


@onnx_op("GatherND")
def import_gather_nd(ctx):
    return _add_gather(ctx, ND, 0, int(ctx.attr("batch_dims", 0)))
