"""Pooling (LayerType.POOLING) and ONNX MaxPool, AveragePool, LpPool and their Global* forms, for N spatial dims.

Params are those of `NetworkDefinition.add_pooling_nd`, with two extensions:
  - a window size of -1 spans that whole spatial dim (Global*Pool, also when the size is only known at run time);
  - `return_indices` (MAX only; the layer is then built with two outputs) also returns the argmax as INT64 flat
    indices into x, in row-major order, or column-major over the spatial dims when `storage_order` is 1 (ONNX
    MaxPool's Indices).
EXPLICIT_ROUND_UP is ONNX ceil_mode; `average_count_excludes_padding` is the negation of count_include_pad.

The kernel loops over kernel offsets (9 for 3x3), each a strided view of the padded input covering every output
position, so no window is ever materialised.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, PaddingMode, PoolingType
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, onnx_op, register_layer
from .window import kernel_offsets, onnx_window_attrs, pad_spatial, window_geometry, window_slice


def _window(layer: Any, in_sizes: list[int]) -> list[int]:
    return [size if k == -1 else k for k, size in zip(layer.params["window_size_nd"], in_sizes)]


def pooling_geometry(layer: Any, in_sizes: list[int]):
    p = layer.params
    kernel = _window(layer, in_sizes)
    n = len(kernel)
    return kernel, window_geometry(in_sizes, kernel, p["stride_nd"], p.get("dilation_nd", [1] * n),
                                   p["pre_padding"], p["post_padding"], p["padding_mode"])


def _infer_pooling(layer, inputs: list[TensorInfo | None]):
    x = inputs[0]
    n = len(layer.params["window_size_nd"])
    if len(x.shape) < n + 1:
        raise EngineError(f"input rank {len(x.shape)} is too small for a {n}-D window")
    in_sizes = list(x.shape[-n:])
    if any(k == -1 for k in layer.params["window_size_nd"]):
        out = [1 if k == -1 else -1 for k in layer.params["window_size_nd"]]
        if all(s >= 0 for s in in_sizes):
            _, (out, _, _) = pooling_geometry(layer, in_sizes)
    else:
        _, (out, _, _) = pooling_geometry(layer, in_sizes)
    shape = (*x.shape[:-n], *out)
    results = [(shape, x.dtype)]
    if layer.params.get("return_indices"):
        results.append((shape, DataType.INT64))
    return results


def _pad_value(dtype: Any, xp: Any) -> Any:
    return -xp.inf if xp.dtype(dtype).kind == "f" else xp.iinfo(dtype).min


def _tap_counts(in_sizes, kernel, out, pre, post, explicit_post, strides, dilations, include_pad, xp):
    """Per output position, how many taps the average divides by (separable: a product over dims)."""
    count = None
    for i, (size, k, o) in enumerate(zip(in_sizes, kernel, out)):
        pos = (xp.arange(o)[:, None] * strides[i] + xp.arange(k)[None, :] * dilations[i]) - pre[i]
        lo, hi = (-pre[i], size + min(post[i], explicit_post[i])) if include_pad else (0, size)
        per_dim = ((pos >= lo) & (pos < hi)).sum(axis=1)
        shape = [1] * len(kernel)
        shape[i] = o
        per_dim = per_dim.reshape(shape)
        count = per_dim if count is None else count * per_dim
    return count


def _compute_pooling(layer, inputs, xp):
    x = inputs[0]
    p = layer.params
    kind = PoolingType(p["pooling_type"])
    n = len(p["window_size_nd"])
    dtype = x.dtype
    in_sizes = list(x.shape[-n:])
    spatial_axes = tuple(range(x.ndim - n, x.ndim))
    work = x.astype(xp.float32) if dtype == xp.float16 and kind != PoolingType.MAX else x
    with_indices = bool(p.get("return_indices"))
    if all(k == -1 for k in p["window_size_nd"]) and not with_indices:
        if kind == PoolingType.MAX:
            y = x.max(axis=spatial_axes, keepdims=True)
        elif kind == PoolingType.AVERAGE:
            y = work.mean(axis=spatial_axes, keepdims=True)
        else:
            y = (xp.abs(work) ** p["p"]).sum(axis=spatial_axes, keepdims=True) ** (1.0 / p["p"])
        return [y.astype(dtype, copy=False)]
    kernel, (out, pre, post) = pooling_geometry(layer, in_sizes)
    strides, dilations = p["stride_nd"], p.get("dilation_nd", [1] * n)
    lead = (slice(None),) * (x.ndim - n)
    if kind == PoolingType.MAX:
        padded = pad_spatial(x, pre, post, _pad_value(dtype, xp), xp)
        y, best = None, None
        for flat, offset in enumerate(kernel_offsets(kernel)):
            tap = padded[lead + window_slice(offset, out, strides, dilations)]
            if y is None:
                y = tap.copy()
                best = xp.zeros(y.shape, dtype=xp.int64) if with_indices else None
            elif with_indices:
                better = tap > y
                y = xp.where(better, tap, y)
                best = xp.where(better, flat, best)
            else:
                xp.maximum(y, tap, out=y)
        if not with_indices:
            return [y]
        return [y, _flat_indices(best, kernel, out, pre, strides, dilations, x.shape, int(p.get("storage_order", 0)),
                                 xp)]
    padded = pad_spatial(work, pre, post, 0, xp)
    if kind == PoolingType.LP:
        padded = xp.abs(padded) ** p["p"]
    y = None
    for offset in kernel_offsets(kernel):
        tap = padded[lead + window_slice(offset, out, strides, dilations)]
        y = tap.copy() if y is None else xp.add(y, tap, out=y)
    if kind == PoolingType.LP:
        y = y ** (1.0 / p["p"])
    else:
        explicit = post if p["padding_mode"] in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER) else \
            p["post_padding"]
        counts = _tap_counts(in_sizes, kernel, out, pre, post, explicit, strides, dilations,
                             not p["average_count_excludes_padding"], xp)
        y = y / xp.maximum(counts, 1).astype(y.dtype)
    return [y.astype(dtype, copy=False)]


def _flat_indices(best, kernel, out, pre, strides, dilations, x_shape, storage_order, xp):
    """Window-local argmax → flat index into x (batch and channel included, as ONNX MaxPool's Indices)."""
    n = len(kernel)
    local = xp.unravel_index(best, kernel)
    spatial = x_shape[-n:]
    flat = None
    for i in range(n):
        shape = [1] * n
        shape[i] = out[i]
        coord = local[i] * dilations[i] + (xp.arange(out[i]) * strides[i] - pre[i]).reshape(shape)
        # Column-major over spatial dims: the first spatial dim varies fastest.
        weight = int(np.prod(spatial[i + 1:])) if storage_order == 0 else int(np.prod(spatial[:i]))
        flat = coord * weight if flat is None else flat + coord * weight
    lead = int(np.prod(x_shape[:-n]))
    base = (xp.arange(lead, dtype=xp.int64) * int(np.prod(spatial))).reshape(*x_shape[:-n], *([1] * n))
    return (flat + base).astype(xp.int64)


register_layer(LayerType.POOLING, _infer_pooling, _compute_pooling)


def _spatial_rank(ctx, x) -> int:
    if x.shape is None or len(x.shape) < 3:
        ctx.unsupported("pooling needs an input of rank >= 3 (N, C, spatial...)", UnsupportedCategory.OTHER)
    return len(x.shape) - 2


def _check_dtype(ctx, x, also: tuple[DataType, ...] = ()):
    """Float types always; `also` names the further types one pooling op accepts."""
    if not (x.dtype.is_floating or x.dtype in also):
        ctx.unsupported(f"input data type {x.dtype.value} is not supported by {ctx.op_type}", UnsupportedCategory.DTYPE)


def _pooling(ctx, kind: PoolingType, num_outputs: int = 1, **extra):
    x = ctx.input(0)
    n = _spatial_rank(ctx, x)
    kernel = ctx.attr("kernel_shape")
    if kernel is None or len(kernel) != n:
        ctx.unsupported(f"kernel_shape must give {n} sizes", UnsupportedCategory.OTHER)
    params = {"pooling_type": kind, "window_size_nd": list(kernel), "average_count_excludes_padding": True, "p": 2}
    params.update(onnx_window_attrs(ctx, n))
    if not ctx.has_attr("strides"):
        params["stride_nd"] = [1] * n
    if ctx.attr("ceil_mode", 0):
        if params["padding_mode"] != PaddingMode.EXPLICIT_ROUND_DOWN:
            ctx.unsupported("ceil_mode with auto_pad SAME_* is not supported", UnsupportedCategory.ATTRIBUTE)
        params["padding_mode"] = PaddingMode.EXPLICIT_ROUND_UP
    params.update(extra)
    dtypes = [x.dtype, DataType.INT64][:num_outputs]
    layer = ctx.network.add_layer(LayerType.POOLING, [x], params, num_outputs=num_outputs, output_dtypes=dtypes,
                                  name=ctx.layer_name())
    return layer.outputs


@onnx_op("MaxPool")
def import_max_pool(ctx):
    _check_dtype(ctx, ctx.input(0), also=(DataType.INT8, DataType.UINT8))
    with_indices = ctx.num_outputs > 1 and bool(ctx.node.output[1])
    storage_order = int(ctx.attr("storage_order", 0))
    return _pooling(ctx, PoolingType.MAX, 2 if with_indices else 1, storage_order=storage_order,
                    return_indices=with_indices)


@onnx_op("AveragePool")
def import_average_pool(ctx):
    _check_dtype(ctx, ctx.input(0))
    return _pooling(ctx, PoolingType.AVERAGE, average_count_excludes_padding=not ctx.attr("count_include_pad", 0))


@onnx_op("LpPool")
def import_lp_pool(ctx):
    _check_dtype(ctx, ctx.input(0))
    return _pooling(ctx, PoolingType.LP, p=_lp_order(ctx))


def _lp_order(ctx) -> float:
    p = ctx.attr("p", 2)
    if p <= 0:
        ctx.unsupported(f"p={p} must be positive", UnsupportedCategory.OTHER)
    return int(p) if float(p).is_integer() else float(p)


def _global(ctx, kind: PoolingType, **extra):
    x = ctx.input(0)
    _check_dtype(ctx, x)
    n = _spatial_rank(ctx, x)
    layer = ctx.network.add_pooling_nd(x, kind, [-1] * n, name=ctx.layer_name())
    layer.params.update(stride_nd=[1] * n, **extra)
    return [layer.get_output(0)]


@onnx_op("GlobalAveragePool")
def import_global_average_pool(ctx):
    return _global(ctx, PoolingType.AVERAGE)


@onnx_op("GlobalMaxPool")
def import_global_max_pool(ctx):
    return _global(ctx, PoolingType.MAX)


@onnx_op("GlobalLpPool")
def import_global_lp_pool(ctx):
    return _global(ctx, PoolingType.LP, p=_lp_order(ctx))
