"""TopK (LayerType.TOPK, `network.add_topk`, params `op` TopKOperation MAX|MIN, `k`, `axis`, `sorted`).

Outputs the k largest (MAX) or smallest (MIN) values along `axis` and their INT64 indices. Optional input 1 is a
runtime k (INT64, one element) that replaces the `k` param. Results are always sorted (ONNX allows any order when
sorted=0), and equal values keep the lower index first, as ONNX requires: a stable sort of the values, negated
(or bit-inverted for integers) for MAX.

ONNX: TopK (k as attribute in opset 1, as input since 10; largest/sorted since 11).
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType, TopKOperation
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, normalize_axis, onnx_op, register_layer


def _k(layer, k_input) -> int | None:
    """k from the runtime input when present (None if its value is unknown), else the `k` param."""
    if k_input is None:
        return int(layer.params["k"])
    value = k_input.value if isinstance(k_input, TensorInfo) else k_input
    if value is None:
        return None
    if value.size != 1:
        raise EngineError(f"TopK k must have one element, got {value.size}")
    return int(value.reshape(-1)[0])


def _infer(layer, inputs):
    x = inputs[0]
    axis = normalize_axis(layer.params["axis"], len(x.shape))
    k = _k(layer, inputs[1] if len(inputs) > 1 else None)
    if k is not None and (k < 0 or 0 <= x.shape[axis] < k):
        raise EngineError(f"TopK k={k} is out of range for axis {axis} of size {x.shape[axis]}")
    shape = x.shape[:axis] + (-1 if k is None else k,) + x.shape[axis + 1:]
    return [(shape, x.dtype), (shape, DataType.INT64)]


def _compute(layer, inputs, xp):
    x = inputs[0]
    axis = normalize_axis(layer.params["axis"], x.ndim)
    k = _k(layer, inputs[1] if len(inputs) > 1 else None)
    if not 0 <= k <= x.shape[axis]:
        raise EngineError(f"TopK k={k} is out of range for axis {axis} of size {x.shape[axis]}")
    key = x
    if layer.params["op"] == TopKOperation.MAX:
        # Order-reversing maps that keep equal values equal, so the stable sort keeps ties in index order.
        key = xp.logical_not(x) if x.dtype == xp.bool_ else xp.invert(x) if x.dtype.kind in "iu" else -x
    order = xp.argsort(key, axis=axis, kind="stable")
    index = xp.take(order, xp.arange(k), axis=axis)
    return [xp.take_along_axis(x, index, axis=axis), index.astype(xp.int64, copy=False)]


register_layer(LayerType.TOPK, _infer, _compute, host_operands=(1,))


@onnx_op("TopK")
def import_topk(ctx):
    x = ctx.input(0)
    try:
        axis = normalize_axis(ctx.attr("axis", -1), len(x.shape))
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    op = TopKOperation.MAX if ctx.attr("largest", 1) else TopKOperation.MIN
    if ctx.opset < 10:
        if not ctx.has_attr("k"):
            ctx.unsupported("TopK before opset 10 needs the k attribute", UnsupportedCategory.ATTRIBUTE)
        k, k_tensor = int(ctx.attr("k")), None
    elif ctx.input(1) is None:
        ctx.unsupported("TopK needs the K input", UnsupportedCategory.OTHER)
    else:
        value = ctx.const(1)
        k, k_tensor = (int(value.reshape(-1)[0]), None) if value is not None else (0, ctx.input(1))
    layer = ctx.network.add_topk(x, op, k, [axis], name=ctx.layer_name())
    if k_tensor is not None:
        layer.set_input(1, k_tensor)
    return [layer.get_output(0), layer.get_output(1)]
