"""Shape inference that works on any model size, and input shape overrides."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import onnx
from onnx import helper

from .errors import SurgeonError

# Initializers above this many elements are never shape values, so inference sees only their type and dims; this
# keeps the proto handed to the inference engine small whatever the model's size.
_VALUE_ELEMENTS_LIMIT = 4096


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace `model.graph.value_info` with onnx's inferred types/shapes (with data propagation); returns `model`."""
    graph = model.graph
    small, big_inputs = [], []
    for init in graph.initializer:
        if math.prod(init.dims) > _VALUE_ELEMENTS_LIMIT:
            big_inputs.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            small.append(init)
    declared = {i.name for i in graph.input}
    light_graph = helper.make_graph(graph.node, graph.name or "graph",
                                    list(graph.input) + [i for i in big_inputs if i.name not in declared],
                                    graph.output, initializer=small, value_info=graph.value_info)
    light = helper.make_model(light_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    light.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - inference raises InferenceError and others on inconsistent graphs
        raise SurgeonError(f"shape inference failed: {str(exc).strip().splitlines()[0]}") from exc
    del graph.value_info[:]
    graph.value_info.extend(inferred.graph.value_info)
    outputs = {o.name: o for o in inferred.graph.output}
    for out in graph.output:
        if out.name in outputs:
            out.CopyFrom(outputs[out.name])
    return model


def value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Every tensor's known type (inputs, outputs, value_info, initializers) by name."""
    types: dict[str, onnx.TypeProto] = {}
    for init in model.graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type
    return types


def override_input_shapes(model: onnx.ModelProto,
                          shapes: Mapping[str, Sequence[int | str | None]]) -> onnx.ModelProto:
    """Set the declared shapes of graph inputs (ints are static dims; strings or None dynamic); returns `model`."""
    inputs = {i.name: i for i in model.graph.input}
    for name, dims in shapes.items():
        if name not in inputs:
            raise SurgeonError(f"--override-input-shapes: '{name}' is not a graph input "
                               f"(inputs: {', '.join(inputs) or 'none'})")
        tensor_type = inputs[name].type.tensor_type
        tensor_type.ClearField("shape")
        shape = tensor_type.shape
        shape.SetInParent()
        for dim in dims:
            entry = shape.dim.add()
            if isinstance(dim, str):
                entry.dim_param = dim
            elif dim is not None:
                entry.dim_value = int(dim)
    # Stale inferred shapes would contradict the new ones.
    del model.graph.value_info[:]
    return model
