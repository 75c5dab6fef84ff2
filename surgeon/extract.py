"""`extract`: the subgraph between chosen tensors, as a standalone model with those tensors as its I/O."""
from __future__ import annotations

from collections.abc import Sequence

import onnx
import onnx_graphsurgeon as gs

from .errors import SurgeonError
from .graph_tools import detach_from_producer, export_model, find_tensor, import_graph, toposort, upstream_nodes
from .shapes import infer_shapes
from .tensor_specs import TensorSpec


def extract(model: onnx.ModelProto, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> onnx.ModelProto:
    """New model computing `outputs` from `inputs`; unspecified shapes/dtypes come from shape inference."""
    if not outputs:
        raise SurgeonError("--outputs: name at least one tensor to extract")
    graph = import_graph(infer_shapes(model))
    tensors = graph.tensors()
    new_inputs = [_typed(find_tensor(tensors, spec.name, "--inputs"), spec, "--inputs") for spec in inputs]
    new_outputs = [_typed(find_tensor(tensors, spec.name, "--outputs"), spec, "--outputs") for spec in outputs]
    for tensor in new_inputs:
        if isinstance(tensor, gs.Constant):
            raise SurgeonError(f"--inputs: '{tensor.name}' is a constant (initializer), not a computed tensor")
    input_ids = {id(t) for t in new_inputs}
    needed = upstream_nodes(new_outputs, stop=input_ids)
    for node in needed:
        for tensor in node.inputs:
            if isinstance(tensor, gs.Variable) and not tensor.inputs and id(tensor) not in input_ids:
                raise SurgeonError(f"--inputs: the subgraph also needs tensor '{tensor.name}' (read by node "
                                   f"'{node.name}'); add it to --inputs")
    for tensor in new_inputs:
        detach_from_producer(tensor)  # its producer is outside the subgraph now
    graph.inputs = new_inputs
    graph.outputs = new_outputs
    graph.cleanup(remove_unused_graph_inputs=False)
    toposort(graph)
    return infer_shapes(export_model(graph, model))


def _typed(tensor: gs.Tensor, spec: TensorSpec, option: str) -> gs.Tensor:
    if spec.dtype is not None:
        tensor.dtype = spec.dtype
    if spec.shape is not None:
        tensor.shape = list(spec.shape)
    if tensor.dtype is None:
        raise SurgeonError(f"{option}: cannot infer the data type of '{tensor.name}'; give it as "
                           f"{tensor.name}:{'shape:' if option == '--inputs' else ''}dtype")
    if option == "--inputs" and tensor.shape is None:
        raise SurgeonError(f"--inputs: cannot infer the shape of '{tensor.name}'; give it as "
                           f"{tensor.name}:[dims]:dtype")
    return tensor
