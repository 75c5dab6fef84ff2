"""Where each ONNX tensor lives in the engine as built: at a layer boundary (read back as it is), inside a fused
layer (compared at that layer's output), or removed by the builder (no-op, folded constant).

The engine keeps ONNX tensor names at layer boundaries (a fused layer's output takes the name of the last tensor
it computes), and each layer lists the layers it absorbed (`fused_from`); parser layer names are the ONNX node's
name (OP_index when unnamed), with `/suffix` for the extra layers of a node that lowers to several. From these two
facts every ONNX node is given the engine layer that computes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

_SHORT_OPS = {"BatchNormalization": "bn", "DequantizeLinear": "dq", "QuantizeLinear": "q",
              "LayerNormalization": "layernorm", "InstanceNormalization": "instancenorm"}


@dataclass
class EngineLayerGroup:
    """One engine layer and the ONNX nodes it computes."""

    name: str
    type: str
    precision: str
    tactic: str
    onnx_nodes: list[str]                 # ONNX nodes this layer computes (several when fused)
    label: str                            # "conv+bn+relu" for a fused layer, "" otherwise
    inputs: list[str]                     # engine tensors read
    outputs: list[str]                    # engine tensors written (layer boundaries)
    absorbed: list[str] = field(default_factory=list)  # ONNX tensors computed inside the layer, never stored
    output_scale: float | None = None     # an INT8 layer's output quantization scale (its output is INT8)

    @property
    def fused(self) -> bool:
        return len(self.onnx_nodes) > 1

    def describe(self) -> str:
        kind = f"{self.type} {self.label}" if self.label else self.type
        return f"{self.name} ({kind}, {self.precision}, tactic {self.tactic or '-'})"


@dataclass
class TensorPlacement:
    tensor: str
    where: str              # "boundary", "fused", "quantized" (stored as INT8 by the layer) or "removed"
    layer: str | None       # the engine layer that computes it
    compared_at: str | None  # the engine tensor its layer's error is read from


@dataclass
class EngineProvenance:
    layers: list[EngineLayerGroup]          # engine execution order
    placements: dict[str, TensorPlacement]  # every ONNX node output (constants excluded), by name
    engine_only: list[str]                  # boundary tensors with no ONNX tensor of that name
    # INT8 layer outputs that hold an ONNX tensor quantized: engine tensor -> (ONNX tensor, scale)
    quantized: dict[str, tuple[str, float]] = field(default_factory=dict)

    def onnx_name(self, engine_tensor: str) -> str:
        """The ONNX tensor an engine tensor holds (itself unless it is an INT8 layer's quantized output)."""
        return self.quantized[engine_tensor][0] if engine_tensor in self.quantized else engine_tensor

    def layer(self, name: str) -> EngineLayerGroup | None:
        return next((group for group in self.layers if group.name == name), None)

    def fused_groups(self) -> list[EngineLayerGroup]:
        return [group for group in self.layers if group.absorbed]

    def removed(self) -> list[str]:
        return [p.tensor for p in self.placements.values() if p.where == "removed"]


def engine_provenance(model: onnx.ModelProto, layer_rows: list[dict[str, Any]]) -> EngineProvenance:
    """Place every ONNX tensor in the engine described by `layer_rows` (Engine.layer_info(), execution order)."""
    node_names = [node.name or f"{node.op_type}_{index}" for index, node in enumerate(model.graph.node)]
    ops = dict(zip(node_names, (node.op_type for node in model.graph.node)))
    owner: dict[str, str] = {}  # ONNX node -> engine layer
    groups = []
    for row in layer_rows:
        covered = [row["name"], *row.get("fused_from", [])]
        nodes = []
        for layer_name in covered:
            node = _onnx_node_of(layer_name, ops)
            if node is not None and node not in nodes:
                nodes.append(node)
                owner.setdefault(node, row["name"])
        label = "+".join(_short(ops[n]) for n in nodes) if len(nodes) > 1 else ""
        epilogue = row.get("epilogue") or {}
        groups.append(EngineLayerGroup(row["name"], row["type"], row["precision"], row.get("tactic", ""), nodes, label,
                                       [i for i in row["inputs"] if i], list(row["outputs"]),
                                       output_scale=epilogue.get("output_scale")))
    by_name = {group.name: group for group in groups}
    boundary = {out: group.name for group in groups for out in group.outputs}
    placements: dict[str, TensorPlacement] = {}
    for name, node in zip(node_names, model.graph.node):
        if node.op_type == "Constant":
            continue
        for tensor in (o for o in node.output if o):
            if tensor in boundary:
                placements[tensor] = TensorPlacement(tensor, "boundary", boundary[tensor], tensor)
            elif name in owner:
                group = by_name[owner[name]]
                group.absorbed.append(tensor)
                placements[tensor] = TensorPlacement(tensor, "fused", group.name,
                                                     group.outputs[0] if group.outputs else None)
            else:
                placements[tensor] = TensorPlacement(tensor, "removed", None, None)
    onnx_tensors = {o for node in model.graph.node for o in node.output} | {i.name for i in model.graph.input}
    quantized = _quantized_outputs(groups, placements, node_names, model, onnx_tensors)
    engine_only = [t for group in groups for t in group.outputs if t not in onnx_tensors and t not in quantized]
    return EngineProvenance(groups, placements, engine_only, quantized)


def _quantized_outputs(groups: list[EngineLayerGroup], placements: dict[str, TensorPlacement], node_names: list[str],
                       model: onnx.ModelProto, onnx_tensors: set[str]) -> dict[str, tuple[str, float]]:
    """An INT8 layer that quantizes its result (implicit INT8: the builder's QuantizeLinear) stores, under a new
    name, the first output of its last ONNX node: that ONNX tensor is compared with the stored INT8 values times
    the scale."""
    order = {name: index for index, name in enumerate(node_names)}
    outputs = dict(zip(node_names, ([o for o in node.output if o] for node in model.graph.node)))
    quantized = {}
    for group in groups:
        if group.output_scale is None or len(group.outputs) != 1 or group.outputs[0] in onnx_tensors:
            continue
        last = max(group.onnx_nodes, key=lambda n: order[n], default=None)
        tensor = outputs[last][0] if last is not None and outputs[last] else None
        if tensor is None or placements.get(tensor) is None or placements[tensor].where != "fused":
            continue
        placements[tensor] = TensorPlacement(tensor, "quantized", group.name, group.outputs[0])
        group.absorbed.remove(tensor)
        quantized[group.outputs[0]] = (tensor, float(group.output_scale))
    return quantized


def _onnx_node_of(layer_name: str, ops: dict[str, str]) -> str | None:
    """The ONNX node an engine (or fused-away) layer name comes from: the name itself, or its part before a
    `/suffix` the parser appends for a node's extra layers (the longest such prefix that is a node)."""
    if layer_name in ops:
        return layer_name
    cut = layer_name.rfind("/")
    while cut > 0:
        if layer_name[:cut] in ops:
            return layer_name[:cut]
        cut = layer_name.rfind("/", 0, cut)
    return None


def _short(op_type: str) -> str:
    return _SHORT_OPS.get(op_type, op_type.lower())
