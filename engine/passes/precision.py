"""Precision assignment and reformat insertion.

FP32 by default. With BuilderFlag.FP16 every floating layer runs in HALF: its float32 tensors become float16
(and its kernels accumulate in float32). A layer whose precision the user set is honoured under
OBEY/PREFER_PRECISION_CONSTRAINTS (both are exact here: every tactic supports both precisions) and ignored with
a warning otherwise, as in TensorRT. Where precisions meet, REFORMAT layers convert; constant weights are
converted at build time instead. Network inputs and outputs keep their declared types.
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..network import Layer, NetworkDefinition, Tensor

FLOATS = (DataType.FLOAT, DataType.HALF)
UNTYPED_LAYERS = (LayerType.CONSTANT, LayerType.SHAPE, LayerType.CAST, LayerType.REFORMAT)


def assign_precisions(network: NetworkDefinition, fp16: bool, constraints: str, warn) -> int:
    """Returns the number of reformat layers inserted. `constraints`: 'obey' | 'prefer' | 'none'."""
    original = {id(t): t.dtype for t in network.tensors()}
    targets: dict[int, DataType | None] = {}
    for layer in network.layers:
        floating = any(original[id(t)] == DataType.FLOAT for t in layer.outputs) or \
            any(t is not None and original.get(id(t)) == DataType.FLOAT for t in layer.inputs)
        if layer.type in UNTYPED_LAYERS or not floating:
            targets[id(layer)] = None
            continue
        if layer.precision_is_set and layer.precision in FLOATS:
            if constraints in ("obey", "prefer"):
                targets[id(layer)] = layer.precision
                continue
            warn(f"layer '{layer.name}': precision {layer.precision.value} is ignored without "
                 "OBEY_PRECISION_CONSTRAINTS or PREFER_PRECISION_CONSTRAINTS")
        targets[id(layer)] = DataType.HALF if fp16 else DataType.FLOAT
    if not fp16 and all(t in (None, DataType.FLOAT) for t in targets.values()):
        return 0

    converted: dict[tuple[int, DataType], Tensor] = {}
    new_layers: list[Layer] = []
    inserted = 0

    def convert(tensor: Tensor, dtype: DataType) -> Tensor:
        nonlocal inserted
        key = (id(tensor), dtype)
        if key in converted:
            return converted[key]
        producer = tensor.producer
        name = f"{tensor.name}:{'half' if dtype == DataType.HALF else 'float'}"
        if producer is not None and producer.type == LayerType.CONSTANT:
            weights = producer.params["weights"].astype("float16" if dtype == DataType.HALF else "float32")
            layer = Layer(LayerType.CONSTANT, network._unique_layer_name(f"{producer.name}:{dtype.value.lower()}"), [],
                          {"weights": weights, "shape": list(weights.shape)})
        else:
            layer = Layer(LayerType.REFORMAT, network._unique_layer_name(f"Reformat({tensor.name})->{dtype.value}"),
                          [tensor], {"to_type": dtype})
            inserted += 1
        network._layer_names.add(layer.name)
        out = Tensor(network.unique_tensor_name(name), dtype, tensor.shape)
        network._tensor_names.add(out.name)
        out.producer = layer
        layer.outputs.append(out)
        object.__setattr__(layer, "precision", dtype)
        new_layers.append(layer)
        converted[key] = out
        return out

    for layer in network.layers:
        target = targets[id(layer)]
        if target is not None:
            object.__setattr__(layer, "precision", target)
            for i, t in enumerate(layer.inputs):
                if t is not None and original.get(id(t)) == DataType.FLOAT and t.dtype != target:
                    layer.inputs[i] = convert(t, target)
            for t in layer.outputs:
                if original[id(t)] == DataType.FLOAT:
                    t.dtype = target
        new_layers.append(layer)
    network.layers = new_layers

    # Network outputs keep their declared FLOAT type.
    for index, out in enumerate(list(network.outputs)):
        if original.get(id(out)) == DataType.FLOAT and out.dtype != DataType.FLOAT:
            name = out.name
            network.rename_tensor(out, network.unique_tensor_name(f"{name}:half"))
            fixed = convert(out, DataType.FLOAT)
            network.rename_tensor(fixed, name)
            out.is_network_output = False
            fixed.is_network_output = True
            network._outputs[index] = fixed
    return inserted
