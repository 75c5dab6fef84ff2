"""Lowering: the user's NetworkDefinition becomes the builder's Graph, once per build.

Only the façade's public surface is read (inputs, layers, their tensors, params, precision, metadata, outputs), and
everything mutable is copied, so no pass can change the user's network. Weights arrays are shared: no pass
mutates an array, rewrites make new ones.
"""
from __future__ import annotations

from typing import Any

from ..errors import BuildError
from ..network import NetworkDefinition
from .graph import Graph, Value


def graph_from_network(network: NetworkDefinition) -> Graph:
    """Raises BuildError when a layer reads a tensor no earlier layer or input produces (call validate() first
    for the friendlier message)."""
    graph = Graph(network.name)
    values: dict[int, Value] = {}
    for tensor in network.inputs:
        values[id(tensor)] = graph.add_input(tensor.name, tensor.dtype, tensor.shape)
    for layer in network.layers:
        inputs = []
        for position, tensor in enumerate(layer.inputs):
            if tensor is not None and id(tensor) not in values:
                raise BuildError(f"layer '{layer.name}' input {position} ('{tensor.name}') is not produced by an "
                                 "earlier layer or a network input")
            inputs.append(None if tensor is None else values[id(tensor)])
        node = graph.add_node(layer.type, inputs, [(t.name, t.dtype, t.shape) for t in layer.outputs],
                              {k: _lower_param(k, v, layer.name) for k, v in layer.params.items()},
                              name=layer.name, precision=layer.precision, precision_is_set=layer.precision_is_set,
                              metadata=_copy_param(layer.metadata), output_types=dict(layer.output_types))
        for tensor, value in zip(layer.outputs, node.outputs):
            values[id(tensor)] = value
    for tensor in network.outputs:
        if id(tensor) not in values:
            raise BuildError(f"network output '{tensor.name}' is not produced by any layer of the network")
        graph.mark_output(values[id(tensor)])
    return graph


def _lower_param(key: str, value: Any, layer: str) -> Any:
    """Weights are shared; a control-flow layer's subgraphs (façade networks) are lowered the same way, each into
    a Graph of its own; everything else is copied."""
    if key == "weights":
        return value
    if key == "subgraphs":
        return {name: _lower_subgraph(sub, name, layer) if isinstance(sub, NetworkDefinition) else sub
                for name, sub in value.items()}
    return _copy_param(value)


def _lower_subgraph(sub: NetworkDefinition, name: str, layer: str) -> Graph:
    try:
        return graph_from_network(sub)
    except BuildError as exc:
        raise BuildError(f"layer '{layer}' {name} subgraph: {exc} (a subgraph reads a tensor of the enclosing "
                         "network only through the conditional's or loop's add_input)") from None


def _copy_param(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_param(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_param(v) for k, v in value.items()}
    return value
