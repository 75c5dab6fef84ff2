"""Unique (LayerType.UNIQUE, `network.add_unique`): the distinct values of a tensor, or its distinct slices along an
axis. TensorRT 8.6 has no such layer; it is here because exports of `torch.unique` need it.

Params: `axis` (None: the input flattened; else the axis whose slices are compared, as a whole) and `sorted`
(True: ascending, slices lexicographically as NumPy's `unique` orders them; False: in order of first occurrence).
Outputs, ONNX's four: Y (the distinct values [count], or the input with `count` slices along `axis`), indices
(INT64 [count]: where each first occurs), inverse_indices (INT64 [n]: for each value or slice of the input, its
position in Y) and counts (INT64 [count]). n is the input's element count (no axis) or its extent along the axis;
`count` depends on the values: a data-dependent dimension (-1 at build time, upper bound n; docs/dynamic-shapes.md).
The kernel is `xp.unique` (NumPy, or CuPy on the GPU), then a reordering by first occurrence when unsorted.
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer


def _axis(layer, rank: int) -> int | None:
    """The compared axis (non-negative), or None for the flattened input; checks the params as a plan gives them."""
    axis, is_sorted = layer.params["axis"], layer.params["sorted"]
    if not isinstance(is_sorted, bool):
        raise EngineError(f"Unique 'sorted' must be true or false, got {is_sorted!r}")
    if axis is None:
        return None
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise EngineError(f"Unique axis must be an integer or None, got {axis!r}")
    if rank == 0:
        raise EngineError("Unique with an axis needs an input of rank 1 or more, got a scalar")
    return normalize_axis(axis, rank, "Unique axis")


def _shapes(layer, inputs, count: int | None):
    """Output (shape, dtype) pairs with the distinct count `count` (-1 when not known)."""
    x = inputs[0]
    axis = _axis(layer, len(x.shape))
    if axis is None:
        n = -1 if any(d < 0 for d in x.shape) else _product(x.shape)
        y = (n if count is None else count,)
    else:
        n = x.shape[axis]
        y = x.shape[:axis] + (n if count is None else count,) + x.shape[axis + 1:]
    distinct = y[0] if axis is None else y[axis]
    return [(tuple(y), x.dtype), ((distinct,), DataType.INT64), ((n,), DataType.INT64),
            ((distinct,), DataType.INT64)]


def _product(shape) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _infer(layer, inputs):
    return _shapes(layer, inputs, -1)


def _upper_bound(layer, inputs):
    return _shapes(layer, inputs, None)  # at most n distinct values or slices


def _compute(layer, inputs, xp):
    x = inputs[0]
    axis = _axis(layer, x.ndim)
    if axis is None:
        x = x.reshape(-1)
    values, first, inverse, counts = xp.unique(x, return_index=True, return_inverse=True, return_counts=True,
                                               axis=axis)
    inverse = inverse.reshape(-1)  # NumPy 2 shapes it like the input when no axis is given
    if not layer.params["sorted"]:
        order = xp.argsort(first)  # first occurrences are distinct: any sort gives the same order
        rank = xp.empty_like(order)
        rank[order] = xp.arange(order.size, dtype=order.dtype)
        values = xp.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return [values] + [a.astype(xp.int64, copy=False) for a in (first, inverse, counts)]


register_layer(LayerType.UNIQUE, _infer, _compute, static_output_shape=False, upper_bound=_upper_bound)


@onnx_op("Unique", min_opset=11)
def import_unique(ctx):
    x = ctx.input(0)
    axis = int(ctx.attr("axis")) if ctx.has_attr("axis") else None
    if axis is not None:
        try:
            normalize_axis(axis, len(x.shape), "axis")
        except EngineError as exc:
            ctx.unsupported(str(exc), UnsupportedCategory.ATTRIBUTE)
    is_sorted = int(ctx.attr("sorted", 1))
    if is_sorted not in (0, 1):
        ctx.unsupported(f"sorted must be 0 or 1, got {is_sorted}", UnsupportedCategory.ATTRIBUTE)
    layer = ctx.network.add_unique(x, axis, bool(is_sorted), name=ctx.layer_name())
    return [layer.get_output(i) for i in range(4)]
