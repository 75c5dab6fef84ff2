"""Build-time shape inference and value propagation over the network IR.

Shapes carry -1 for dimensions unknown until run time. Small integer tensors whose value can be known without
running the model (constants, Shape of a static tensor, arithmetic on those) are evaluated with the reference
kernels, so Reshape/Expand/Slice driven by shape arithmetic get static output shapes wherever the dims are static.
"""
from __future__ import annotations

import numpy as np

from .dtypes import DataType
from .enums import LayerType
from .errors import EngineError, ShapeError
from .ops.base import TensorInfo, layer_impl

# Values larger than this are never propagated at build time (they are data, not shape arithmetic).
MAX_PROPAGATED_ELEMENTS = 4096


def tensor_info(tensor, values: dict[int, np.ndarray] | None = None) -> TensorInfo | None:
    if tensor is None:
        return None
    return TensorInfo(tensor.shape, tensor.dtype, known_value(tensor, values))


def known_value(tensor, memo: dict[int, np.ndarray] | None = None) -> np.ndarray | None:
    """The tensor's value if it is computable at build time (constant or shape arithmetic), else None."""
    if tensor is None or tensor.producer is None:
        return None
    if memo is None:
        memo = {}
    key = id(tensor)
    if key in memo:
        return memo[key]
    layer = tensor.producer
    value = None
    if layer.type == LayerType.CONSTANT:
        value = layer.params["weights"]
    elif layer.type == LayerType.SHAPE:
        shape = layer.inputs[0].shape
        if shape is not None and all(d >= 0 for d in shape):
            value = _compute(layer, [_ShapeOnly(shape)])
            value = value[0] if value is not None else None
    elif tensor.shape is not None and all(d >= 0 for d in tensor.shape) and \
            int(np.prod(tensor.shape, dtype=np.int64)) <= MAX_PROPAGATED_ELEMENTS and layer.inputs:
        ins = []
        for t in layer.inputs:
            if t is None:
                ins.append(None)
                continue
            v = known_value(t, memo)
            if v is None or v.size > MAX_PROPAGATED_ELEMENTS:
                memo[key] = None
                return None
            ins.append(v)
        outs = _compute(layer, ins)
        if outs is not None:
            value = outs[layer.outputs.index(tensor)]
    memo[key] = value
    return value


class _ShapeOnly:
    """Stands in for an input whose values are unknown but whose shape is static (the Shape layer reads only that)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(shape)


def _compute(layer, inputs):
    try:
        outs = layer_impl(layer.type).compute(layer, inputs, np)
    except Exception:  # noqa: BLE001 - a value we cannot fold is simply not known at build time
        return None
    return [np.asarray(o) for o in outs]


def infer_layer(layer, strict: bool = False, memo: dict[int, np.ndarray] | None = None) -> None:
    """Set shape/dtype of the layer's outputs. Non-strict (while the user builds) leaves unknown shapes as None."""
    infos = [tensor_info(t, memo) for t in layer.inputs]
    if any(i is not None and i.shape is None for i in infos):
        if strict:
            bad = next(t for t, i in zip(layer.inputs, infos) if i is not None and i.shape is None)
            raise ShapeError(f"layer '{layer.name}': input '{bad.name}' has no known shape")
        return
    try:
        results = layer_impl(layer.type).infer(layer, infos)
    except EngineError as exc:
        if strict:
            raise ShapeError(f"layer '{layer.name}' ({layer.type.value}): {exc}") from None
        return
    except Exception as exc:  # noqa: BLE001 - an infer function crashing on odd input is a user-facing shape error
        if strict:
            raise ShapeError(f"layer '{layer.name}' ({layer.type.value}): cannot infer output shape ({exc})") from None
        return
    if len(results) != len(layer.outputs):
        raise EngineError(f"layer '{layer.name}': shape inference returned {len(results)} outputs, "
                          f"expected {len(layer.outputs)}")
    for index, (out, (shape, dtype)) in enumerate(zip(layer.outputs, results)):
        out.shape = None if shape is None else tuple(int(d) for d in shape)
        out.dtype = layer.output_types.get(index, DataType(dtype))


def infer_network(network) -> None:
    """Strictly re-infer every layer in order (the builder calls this after the user is done editing)."""
    memo: dict[int, np.ndarray] = {}
    for layer in network.layers:
        infer_layer(layer, strict=True, memo=memo)
