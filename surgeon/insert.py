"""`insert`: replace the subgraph between given tensors with one node (typically a plugin)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
import onnx_graphsurgeon as gs

from .errors import SurgeonError
from .graph_tools import detach_from_producer, export_model, find_tensor, import_graph, toposort, upstream_nodes
from .shapes import infer_shapes

# Ops that onnx does not know go in this domain unless --domain says otherwise: a default-domain node of an
# unknown op fails onnx.checker, a custom domain does not (and the engine's plugin importer ignores the domain).
PLUGIN_DOMAIN = "polyx.plugin"


def insert(model: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str], op: str, *,
           name: str | None = None, domain: str | None = None,
           attrs: Mapping[str, object] | None = None) -> onnx.ModelProto:
    """Model where one `op` node computes `outputs` from `inputs`; nodes only they needed are removed."""
    if not outputs:
        raise SurgeonError("--outputs: name at least one tensor for the new node to produce")
    graph = import_graph(infer_shapes(model))
    tensors = graph.tensors()
    node_inputs = [find_tensor(tensors, n, "--inputs") for n in inputs]
    node_outputs = [find_tensor(tensors, n, "--outputs") for n in outputs]
    for tensor in node_outputs:
        if isinstance(tensor, gs.Constant) or tensor in graph.inputs:
            raise SurgeonError(f"--outputs: '{tensor.name}' is a graph input or constant; the new node cannot "
                               "produce it")
    # The new node reads `inputs`; if one of them depends on an output, the node would feed itself.
    feeding = {id(n) for n in upstream_nodes(node_inputs)}
    for tensor in node_outputs:
        if tensor.inputs and id(tensor.inputs[0]) in feeding:
            raise SurgeonError(f"--outputs: '{tensor.name}' feeds --inputs; inserting the node would create a cycle")
    if domain is None:
        domain = "" if onnx.defs.has(op) else PLUGIN_DOMAIN
    for tensor in node_outputs:
        detach_from_producer(tensor)
    node = gs.Node(op=op, name=name or f"{op}_inserted", attrs=dict(attrs or {}), inputs=node_inputs,
                   outputs=node_outputs, domain=domain or None)
    graph.nodes.append(node)
    graph.cleanup(remove_unused_graph_inputs=False)
    toposort(graph)
    result = export_model(graph, model)
    if domain and domain not in {imp.domain for imp in result.opset_import}:
        result.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    return result
