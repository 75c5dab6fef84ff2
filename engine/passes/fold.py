"""Constant folding: a layer whose inputs are all known at build time becomes a Constant layer.

Shape layers over static input shapes fold too, so static models lose their shape arithmetic entirely; on
dynamic dims the arithmetic stays and runs on the host at run time (see runtime).
"""
from __future__ import annotations

import numpy as np

from ..enums import LayerType
from ..network import Layer, NetworkDefinition
from ..ops.base import layer_impl
from ..shape_inference import _ShapeOnly

# Folded results above this many elements stay as layers: folding them would bloat the plan.
MAX_FOLDED_ELEMENTS = 1 << 24


def fold_constants(network: NetworkDefinition, max_elements: int = MAX_FOLDED_ELEMENTS) -> list[str]:
    """Fold in place; returns the names of the folded layers."""
    values: dict[int, np.ndarray] = {}
    folded: list[str] = []
    new_layers: list[Layer] = []
    for layer in network.layers:
        if layer.type == LayerType.CONSTANT:
            values[id(layer.outputs[0])] = layer.params["weights"]
            new_layers.append(layer)
            continue
        results = _try_evaluate(layer, values, max_elements)
        if results is None:
            new_layers.append(layer)
            continue
        folded.append(layer.name)
        for index, (tensor, value) in enumerate(zip(layer.outputs, results)):
            value = np.asarray(value, order="C")  # not ascontiguousarray: it makes 0-D arrays 1-D
            const = Layer(LayerType.CONSTANT, layer.name if index == 0 else f"{layer.name}/{index}", [],
                          {"weights": value.astype(_np_dtype(tensor), copy=False), "shape": list(value.shape)})
            const.outputs.append(tensor)
            const.metadata.update(layer.metadata)
            const.metadata["folded_from"] = [layer.name]
            tensor.producer = const
            tensor.shape = tuple(value.shape)
            values[id(tensor)] = const.params["weights"]
            new_layers.append(const)
    network.layers = new_layers
    network._layer_names = {layer.name for layer in new_layers}
    return folded


def _np_dtype(tensor):
    from ..dtypes import nptype

    return nptype(tensor.dtype)


def _try_evaluate(layer: Layer, values: dict[int, np.ndarray], max_elements: int):
    if layer.type in (LayerType.PLUGIN_V2, LayerType.REFORMAT):
        return None
    if layer.type == LayerType.SHAPE:
        shape = layer.inputs[0].shape
        if shape is None or any(d < 0 for d in shape):
            return None
        inputs = [_ShapeOnly(shape)]
    else:
        present = [t for t in layer.inputs if t is not None]
        if not present or any(id(t) not in values for t in present):
            return None
        inputs = [None if t is None else values[id(t)] for t in layer.inputs]
    for tensor in layer.outputs:
        if tensor.shape is None or any(d < 0 for d in tensor.shape):
            return None
        if int(np.prod(tensor.shape, dtype=np.int64)) > max_elements:
            return None
    try:
        return [np.asarray(r) for r in layer_impl(layer.type).compute(layer, inputs, np)]
    except Exception:  # noqa: BLE001 - a layer that cannot be evaluated here simply stays a layer
        return None
