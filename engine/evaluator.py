"""What is known at build time: one evaluator for shapes and values.

Shape inference on the façade (`shape_inference.known_value`), constant folding (`passes/fold.py`) and the
runtime's shape resolution (`graph.resolve_shapes`) all ask the same two questions of a layer: what are its output
shapes and dtypes for these input infos, and what are its output values when its inputs' values (or, for a Shape
layer, only their static shapes) are known. Both are answered here, from the op registry.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dtypes import DataType, nptype
from .enums import LayerType
from .errors import EngineError
from .ops.base import TensorInfo, layer_impl
from .ops.math_helpers import upcast_bfloat16

# Layers never evaluated at build time: a plugin's kernel is the user's, a reformat exists only to be run.
NOT_EVALUATED = frozenset({LayerType.PLUGIN_V2, LayerType.REFORMAT})


class ShapeOnly:
    """Stands in for an input whose values are unknown but whose shape is static (the Shape layer reads only
    that)."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(shape)
        self.ndim = len(self.shape)


def output_infos(layer: Any, inputs: list[TensorInfo | None]) -> list[tuple[tuple[int, ...] | None, DataType]]:
    """(shape, dtype) of each output; shapes may hold -1. Raises whatever the op's infer function raises.
    An INT8 layer made from a Q/DQ-wrapped layer (params int8.input_scales) computes on its quantized inputs'
    float values: its op infers from those (the output's INT8 type is set by the fusion)."""
    scales = layer.params.get("int8", {}).get("input_scales") if isinstance(layer.params.get("int8"), dict) else None
    if scales:
        inputs = [info if info is None or scale is None else TensorInfo(info.shape, DataType.FLOAT, None)
                  for info, scale in zip(inputs, scales)]
    return layer_impl(layer.type).infer(layer, inputs)


def is_static(shape: Sequence[int] | None) -> bool:
    return shape is not None and all(d >= 0 for d in shape)


def kernel_inputs(layer: Any, inputs: list[TensorInfo | None], max_elements: int) -> list[Any] | None:
    """What the reference kernel reads to evaluate `layer` at build time, or None when something is unknown:
    the static shape of a Shape layer's input, otherwise every present input's value (each at most
    `max_elements`)."""
    if layer.type in NOT_EVALUATED:
        return None
    if layer.type == LayerType.SHAPE:
        info = inputs[0]
        return [ShapeOnly(info.shape)] if info is not None and is_static(info.shape) else None
    present = [i for i in inputs if i is not None]
    if not present or any(i.value is None or np.size(i.value) > max_elements for i in present):
        return None
    return [None if i is None else i.value for i in inputs]


def known_outputs(layer: Any, inputs: list[TensorInfo | None], output_shapes: Sequence[Sequence[int] | None],
                  max_elements: int) -> list[np.ndarray] | None:
    """The layer's output values when they can be computed at build time and each output is static and at most
    `max_elements` large; None otherwise (a value we cannot compute is simply not known)."""
    if any(not is_static(s) or int(np.prod(s, dtype=np.int64)) > max_elements for s in output_shapes):
        return None
    args = kernel_inputs(layer, inputs, max_elements)
    if args is None:
        return None
    try:
        return _compute(layer, args, inputs)
    except Exception:  # noqa: BLE001 - an evaluation that fails here leaves the value unknown
        return None


def compute_host_layer(layer: Any, inputs: list[TensorInfo | None]) -> list[np.ndarray]:
    """Run a host (shape-arithmetic) layer on known values; raises EngineError naming the layer on failure."""
    if layer.type == LayerType.SHAPE:
        args: list[Any] = [ShapeOnly(inputs[0].shape)]
    else:
        args = [None if i is None else i.value for i in inputs]
    try:
        return _compute(layer, args, inputs)
    except Exception as exc:  # noqa: BLE001 - surfaced naming the layer
        raise EngineError(f"layer '{layer.name}' ({layer.type.value}): cannot evaluate on the host: {exc}") from None


def _compute(layer: Any, args: list[Any], inputs: list[TensorInfo | None]) -> list[np.ndarray]:
    """The reference kernel's outputs. bfloat16 values are computed in float32 (no kernel reads bfloat16) and the
    results stored in the dtypes the layer's inference gives."""
    widened = [upcast_bfloat16(a) for a in args]
    results = [np.asarray(o) for o in layer_impl(layer.type).compute(layer, widened, np)]
    if all(w is a for w, a in zip(widened, args)):
        return results
    dtypes = [dtype for _, dtype in output_infos(layer, inputs)]
    return [r.astype(nptype(DataType(d)), copy=False) for r, d in zip(results, dtypes)]
