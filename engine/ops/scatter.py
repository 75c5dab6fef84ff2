"""Scatter layer (polyx; TensorRT's IScatterLayer with ONNX reductions); ONNX ScatterElements, ScatterND and the
deprecated Scatter.

Inputs (data, indices, updates); output = a copy of data with updates written at the indexed places. Params:
  mode       "ELEMENT" (ScatterElements along param `axis`) or "ND" (ScatterND: indices[..., k] address the
             first k dims of data).
  reduction  "none" | "add" | "mul" | "max" | "min": how an update combines with the value already there;
             repeated indices accumulate for the reductions, and the last one wins for "none".
Negative indices count from the back of the indexed dim.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer, same_as_input

ELEMENT, ND = "ELEMENT", "ND"
_UFUNCS = {"add": "add", "max": "maximum", "min": "minimum"}
REDUCTIONS = ("none", "mul", *_UFUNCS)


def _element_index(indices, axis: int, dim: int, xp) -> tuple:
    """Full index tuple addressing data for ScatterElements: the grid of `indices`' positions, with the
    scattered axis replaced by the index values."""
    indices = indices.astype(xp.int64, copy=False)
    indices = xp.where(indices < 0, indices + dim, indices)
    rank = indices.ndim
    grid = [xp.arange(n).reshape((1,) * k + (n,) + (1,) * (rank - k - 1)) for k, n in enumerate(indices.shape)]
    grid[axis] = indices
    return tuple(grid)


def _nd_index(indices, shape, xp) -> tuple:
    depth = indices.shape[-1]
    indices = indices.astype(xp.int64, copy=False)
    dims = xp.asarray(shape[:depth], dtype=xp.int64)
    indices = xp.where(indices < 0, indices + dims, indices)
    return tuple(indices[..., k] for k in range(depth))


def _multiply_at(out, index: tuple, updates, xp) -> None:
    """out[index] *= updates with repeated indices multiplying in turn. CuPy has no multiply.at, so updates are
    applied in rounds, each round taking the first remaining update of every position (rounds = the largest
    repeat count, usually 1)."""
    flat = out.reshape(-1)
    trailing = out.shape[len(index):]  # ScatterND updates whole trailing slices
    lead = index[0].ndim
    grid = [i.reshape(i.shape + (1,) * len(trailing)) for i in index]
    grid += [xp.arange(n).reshape((1,) * (lead + k) + (n,) + (1,) * (len(trailing) - k - 1))
             for k, n in enumerate(trailing)]
    grid = xp.broadcast_arrays(*grid)
    positions = xp.ravel_multi_index(tuple(grid), out.shape).reshape(-1)
    updates = xp.broadcast_to(updates, grid[0].shape).reshape(-1)
    while positions.size:
        _, first = xp.unique(positions, return_index=True)
        flat[positions[first]] *= updates[first]
        rest = xp.ones(positions.size, dtype=bool)
        rest[first] = False
        positions, updates = positions[rest], updates[rest]


def _compute_scatter(layer, inputs, xp):
    data, indices, updates = inputs
    out = data.copy()
    if layer.params["mode"] == ELEMENT:
        axis = normalize_axis(layer.params["axis"], data.ndim, "scatter axis")
        index = _element_index(indices, axis, data.shape[axis], xp)
    elif layer.params["mode"] == ND:
        index = _nd_index(indices, data.shape, xp)
    else:
        raise EngineError(f"unknown scatter mode {layer.params['mode']!r}")
    reduction = layer.params["reduction"]
    updates = updates.astype(data.dtype, copy=False)
    if reduction == "none":
        out[index] = updates
    elif reduction == "mul":
        _multiply_at(out, index, updates, xp)
    elif reduction in _UFUNCS:
        getattr(xp, _UFUNCS[reduction]).at(out, index, updates)
    else:
        raise EngineError(f"unknown scatter reduction {reduction!r}")
    return [out]


register_layer(LayerType.SCATTER, same_as_input(0), _compute_scatter)


def _add_scatter(ctx, mode: str, axis: int):
    reduction = ctx.attr("reduction", "none")
    if reduction not in REDUCTIONS:
        ctx.unsupported(f"reduction '{reduction}' is not supported", UnsupportedCategory.ATTRIBUTE)
    params = {"mode": mode, "axis": axis, "reduction": reduction}
    inputs = [ctx.input(0), ctx.input(1), ctx.input(2)]
    return [ctx.network.add_layer(LayerType.SCATTER, inputs, params, name=ctx.layer_name()).get_output(0)]


@onnx_op("ScatterElements", "Scatter")
def import_scatter_elements(ctx):
    rank = len(ctx.input(0).shape)
    return _add_scatter(ctx, ELEMENT, normalize_axis(int(ctx.attr("axis", 0)), rank, "scatter axis"))


@onnx_op("ScatterND")
def import_scatter_nd(ctx):
    return _add_scatter(ctx, ND, 0)
