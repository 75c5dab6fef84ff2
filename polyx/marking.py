"""Marking intermediate tensors as outputs, on both sides of a comparison.

Engine: a marked tensor is a network output, which the builder never fuses away; Constant layers (weights)
are not marked. ONNX: node outputs (except Constant nodes') are appended to graph.output with their element
type from `onnx.shape_inference`; tensors whose type stays unknown are skipped (onnxruntime needs a type). Both sides
keep the ONNX tensor names, so the comparison lines them up by name.
"""
from __future__ import annotations

import difflib

import onnx
from onnx import helper

from engine.enums import LayerType
from engine.network import NetworkDefinition

from .errors import PolyxError


def mark_network_outputs(network: NetworkDefinition, names: list[str], mark_all: bool = False) -> int:
    """Mark `names` (or every non-constant tensor) as outputs; returns how many were newly marked."""
    produced = {t.name: t for layer in network.layers if layer.type != LayerType.CONSTANT for t in layer.outputs}
    if mark_all:
        chosen = list(produced.values())
    else:
        chosen = [produced.get(name) or _unknown(name, produced, "the engine network") for name in names]
    marked = 0
    for tensor in chosen:
        if not tensor.is_network_output:
            network.mark_output(tensor)
            marked += 1
    return marked


def mark_onnx_outputs(model: onnx.ModelProto, names: list[str], mark_all: bool = False) -> onnx.ModelProto:
    """A copy of `model` whose graph also outputs `names` (or every node output whose type is known)."""
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    graph = marked.graph
    types = _element_types(marked)
    existing = {o.name for o in graph.output}
    node_outputs = [name for node in graph.node for name in node.output if name]
    if mark_all:
        wanted = [name for node in graph.node if node.op_type != "Constant" for name in node.output
                  if name and name in types]
    else:
        known = set(node_outputs) | {i.name for i in graph.input}
        for name in names:
            if name not in known:
                _unknown(name, known, "the ONNX model")
            if name not in types:
                raise PolyxError(f"ONNX tensor '{name}': its type is unknown after shape inference, so onnxruntime "
                                 "cannot output it")
        wanted = list(names)
    for name in wanted:
        if name not in existing:
            graph.output.append(helper.make_tensor_value_info(name, types[name], None))
            existing.add(name)
    return marked


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor whose type is known, after ONNX shape inference (best effort)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is a best effort; declared types still count
        inferred = model
    types = {}
    graph = inferred.graph
    for info in list(graph.value_info) + list(graph.output) + list(graph.input):
        elem = info.type.tensor_type.elem_type if info.type.HasField("tensor_type") else 0
        if elem:
            types[info.name] = elem
    for init in graph.initializer:
        types.setdefault(init.name, init.data_type)
    return types


def _unknown(name: str, known, where: str):
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    raise PolyxError(f"tensor '{name}' does not exist in {where}{hint}")
