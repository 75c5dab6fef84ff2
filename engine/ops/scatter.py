"""Scatter layer (polyx; TensorRT's IScatterLayer with ONNX reductions); ONNX ScatterElements, ScatterND and the
deprecated Scatter.

Inputs (data, indices, updates); output = a copy of data with updates written at the indexed places. Params:
  mode       "ELEMENT" (ScatterElements along param `axis`) or "ND" (ScatterND: indices[..., k] address the
             first k dims of data).
  reduction  "none" | "add" | "mul" | "max" | "min": how an update combines with the value already there;
             repeated indices accumulate for the reductions (ufunc.at), and the last one wins for "none".
Negative indices count from the back of the indexed dim.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import normalize_axis, onnx_op, register_layer, same_as_input

ELEMENT, ND = "ELEMENT", "ND"
_UFUNCS = {"add": "add", "mul": "multiply", "max": "maximum", "min": "minimum"}


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
    elif reduction in _UFUNCS:
        getattr(xp, _UFUNCS[reduction]).at(out, index, updates)
    else:
        raise EngineError(f"unknown scatter reduction {reduction!r}")
    return [out]


register_layer(LayerType.SCATTER, same_as_input(0), _compute_scatter)


def _add_scatter(ctx, mode: str, axis: int):
    reduction = ctx.attr("reduction", "none")
    if reduction not in ("none", *_UFUNCS):
        ctx.unsupported(f"reduction '{reduction}' is not supported")
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
