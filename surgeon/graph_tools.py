"""Small onnx-graphsurgeon helpers shared by extract, insert and partition."""
from __future__ import annotations

import difflib

import onnx
import onnx_graphsurgeon as gs

from .errors import SurgeonError


def import_graph(model: onnx.ModelProto) -> gs.Graph:
    try:
        return gs.import_onnx(model)
    except Exception as exc:  # noqa: BLE001 - graphsurgeon raises plain exceptions for malformed graphs
        raise SurgeonError(f"cannot import the graph: {str(exc).strip().splitlines()[0]}") from exc


def export_model(graph: gs.Graph, original: onnx.ModelProto) -> onnx.ModelProto:
    """Export, keeping what graphsurgeon drops: IR version, producer, metadata and every opset import."""
    model = gs.export_onnx(graph, do_type_check=False)
    model.ir_version = original.ir_version
    model.producer_name, model.producer_version = original.producer_name, original.producer_version
    original_domains = {imp.domain for imp in original.opset_import}
    added = [imp for imp in model.opset_import if imp.domain not in original_domains]
    del model.opset_import[:]
    model.opset_import.extend(list(original.opset_import) + added)
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    return model


def toposort(graph: gs.Graph) -> None:
    try:
        graph.toposort()
    except Exception as exc:  # noqa: BLE001 - graphsurgeon reports cycles as a plain exception
        raise SurgeonError(f"the graph has a cycle: {str(exc).strip().splitlines()[0]}") from exc


def find_tensor(tensors: dict[str, gs.Tensor], name: str, option: str) -> gs.Tensor:
    """The tensor called `name`, or an error that names the option and the closest existing names."""
    if name in tensors:
        return tensors[name]
    close = difflib.get_close_matches(name, list(tensors), n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise SurgeonError(f"{option}: no tensor named '{name}' in the model{hint}")


def upstream_nodes(tensors: list[gs.Tensor], stop: set[int] | None = None) -> list[gs.Node]:
    """Nodes the given tensors depend on, not looking past tensors whose id is in `stop`."""
    stop = stop or set()
    seen: dict[int, gs.Node] = {}
    frontier = [t for t in tensors if id(t) not in stop]
    while frontier:
        tensor = frontier.pop()
        for node in tensor.inputs:
            if id(node) in seen:
                continue
            seen[id(node)] = node
            frontier.extend(t for t in node.inputs if id(t) not in stop)
    return list(seen.values())


def detach_from_producer(tensor: gs.Tensor) -> None:
    """Cut `tensor` from the node producing it; the node keeps a placeholder so its other outputs keep their slots."""
    for producer in list(tensor.inputs):
        index = producer.outputs.index(tensor)
        producer.outputs[index] = gs.Variable(f"{tensor.name}__detached")
