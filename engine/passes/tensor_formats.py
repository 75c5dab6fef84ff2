"""Channels-last tensor formats (opt-in: BuilderConfig.channels_last, CLI --channels-last).

TensorRT's idea: each tensor has a format, each tactic states the formats it runs, and the builder inserts reformat
layers only where producer and consumer disagree. Here the choice is one format, HWC (NHWC memory), for the 4-D
activations of convolution chains: cuDNN's fused convolution graphs and FP16 tensor-core convolutions want it.

Members are CONVOLUTION, POOLING, ACTIVATION, and ELEMENTWISE / POINTWISE layers whose operands all have the
output's shape (a broadcast operand would need its own reformat), of FLOAT or HALF 4-D tensors, and INT8
CONVOLUTION layers (int8 input; output and residual INT8, FLOAT or HALF: their fused requantization, residual and
activation come with them), for which some tactic of the build device runs HWC (`ctx.runs_channels_last`, asked of
the tactic registry by the builder: for an INT8 layer, an INT8 tactic). TensorRT runs INT8 convolutions
channels-last too: the reduction (channels) is then contiguous, as the IMMA GEMMs want it; so does a MaxPool that
moves INT8 values between them (`moves_int8`: ResNet's stem pool). Other INT8 layers
(the int8_io rule's pooling, elementwise, ...) stay LINEAR; an int8 tensor entering or leaving a chain gets a
REFORMAT of its own (a copy of the bytes: QUANTIZE/DEQUANTIZE layers at a boundary keep their LINEAR tensors).
Connected members form a chain; a chain without a convolution stays LINEAR (the layouts are for the
convolutions: reformats around a lone pooling or activation would only cost). Inside a chain every member's
activation tensors are HWC; a REFORMAT layer converts each tensor entering the chain (one per tensor, shared by its
readers) and each tensor leaving it (read by another layer, or a network output). The LINEAR copy of a leaving
tensor keeps its name, so network outputs, debug tensors and comparisons see the names they know; the HWC tensor
inside becomes `<name>:hwc`. Weights, biases and every other operand stay LINEAR. Where a precision REFORMAT
(FP16 builds) already stands at a chain's end, it converts the layout too (one copy, not two): one whose output only
the chain reads writes HWC, and one reading a chain's tensor reads it HWC.

With BuilderConfig.channels_last = "auto" the builder runs the pass with `ctx.channels_last_only`, the first-node
names of the chains to convert (empty for its LINEAR variant), and reads back `ctx.format_chains`: every chain found,
with the reformats each needs, which it times (engine/channels_last_choice.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..dtypes import DataType
from ..enums import LayerType, PoolingType, TensorFormat
from ..ir import Graph, Node, Value
from .base import Pass, PassContext

CHAIN_TYPES = frozenset({LayerType.CONVOLUTION, LayerType.POOLING, LayerType.ACTIVATION, LayerType.ELEMENTWISE,
                         LayerType.POINTWISE})
# Layers whose input has its own spatial size (a window slides over it).
WINDOW_TYPES = frozenset({LayerType.CONVOLUTION, LayerType.POOLING})
FORMAT_DTYPES = frozenset({DataType.FLOAT, DataType.HALF})
# The types an INT8 convolution's activations may have (input 0 is always INT8; output and residual any of these).
INT8_CONV_DTYPES = FORMAT_DTYPES | {DataType.INT8}


def activation_positions(node: Node) -> list[int]:
    """The input positions of `node` that read activations of its output's layout (the others: weights, bias)."""
    if node.type == LayerType.CONVOLUTION:
        residual = node.epilogue.residual
        return [0] if residual is None else [0, residual]
    if node.type in (LayerType.POOLING, LayerType.ACTIVATION):
        return [0]
    return list(range(len(node.inputs)))


def _is_4d(value: Value | None, dtypes: frozenset[DataType]) -> bool:
    return value is not None and value.shape is not None and len(value.shape) == 4 and value.dtype in dtypes


def is_int8_convolution(node: Node) -> bool:
    """An INT8 convolution made by the int8_fusion rule (or implicit quantization): int8 input, int32 accumulation."""
    return node.type == LayerType.CONVOLUTION and node.precision == DataType.INT8 \
        and isinstance(node.params.get("int8"), dict)


def moves_int8(node: Node) -> bool:
    """A MaxPool reading and writing INT8 (the q_commute rule put the quantization before it): it compares
    quantized values, so it can sit inside an INT8 convolution chain (ResNet's stem: conv → pool → conv)."""
    return node.type == LayerType.POOLING and PoolingType(node.params["pooling_type"]) == PoolingType.MAX \
        and len(node.outputs) == 1 and node.outputs[0].dtype == DataType.INT8 and bool(node.inputs) \
        and node.inputs[0] is not None and node.inputs[0].dtype == DataType.INT8 and "int8" not in node.params


def can_join(node: Node) -> str | None:
    """None when `node` may run channels-last (its tactics permitting), else why not."""
    if node.type not in CHAIN_TYPES:
        return f"{node.type.value} layers keep LINEAR tensors"
    int8 = is_int8_convolution(node) or moves_int8(node)
    if not int8 and (node.precision == DataType.INT8 or node.params.get("int8")):
        return "INT8 layers other than convolutions keep LINEAR tensors"
    dtypes, described = (INT8_CONV_DTYPES, "INT8/FLOAT/HALF") if int8 else (FORMAT_DTYPES, "FLOAT/HALF")
    if len(node.outputs) != 1 or not _is_4d(node.outputs[0], dtypes):
        return f"its output is not one 4-D {described} tensor"
    output = node.outputs[0]
    for position in activation_positions(node):
        value = node.inputs[position] if position < len(node.inputs) else None
        if not _is_4d(value, dtypes) or value.is_constant:
            return f"input {position} is not a 4-D {described} activation"
        if int8 and position == 0 and value.dtype != DataType.INT8:
            return "input 0 of an INT8 convolution is not INT8"
        if position != 0 or node.type not in WINDOW_TYPES:
            if value.shape != output.shape:
                return f"input {position} of shape {list(value.shape)} broadcasts to {list(output.shape)}"
    return None


def _chains(members: list[Node]) -> list[list[Node]]:
    """Members connected through the tensors they pass each other, in graph order."""
    parent = {id(n): id(n) for n in members}

    def root(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for node in members:
        for position in activation_positions(node):
            producer = node.inputs[position].producer
            if producer is not None and id(producer) in parent:
                parent[root(id(producer))] = root(id(node))
    groups: dict[int, list[Node]] = {}
    for node in members:
        groups.setdefault(root(id(node)), []).append(node)
    return list(groups.values())


def _converts_only_for(value: Value, inside: set[int], graph: Graph) -> bool:
    """Whether `value` is a REFORMAT's output that only chain members read, as activations (not a network output):
    that reformat can write it HWC directly."""
    producer = value.producer
    return (producer is not None and producer.type == LayerType.REFORMAT and value not in graph.outputs
            and all(id(reader) in inside and position in activation_positions(reader)
                    for reader, position in value.uses))


@dataclass
class FormatChain:
    """One convolution chain as the pass found it, by stable node names (the builder's timed choice compares the
    same chain in a LINEAR and an HWC build): its members in graph order (`members[0]` keys it), and, when it was
    converted, the REFORMAT layers made for it (`reformats`; one shared with another chain is listed for both) and
    the precision REFORMATs that convert its layout in the same copy (`converted`: they exist LINEAR without it)."""

    members: tuple[str, ...]
    reformats: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)

    @property
    def first(self) -> str:
        return self.members[0]


class ChannelsLastFormats(Pass):
    name = "channels_last"

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        if not ctx.channels_last:
            return {}
        members = [n for n in graph.nodes if can_join(n) is None and ctx.runs_channels_last(n)]
        chains = [chain for chain in _chains(members) if any(n.type == LayerType.CONVOLUTION for n in chain)]
        records = [FormatChain(tuple(n.name for n in chain)) for chain in chains]
        ctx.format_chains[:] = records
        only = ctx.channels_last_only
        record_of = {id(n): record for chain, record in zip(chains, records) for n in chain
                     if only is None or record.first in only}
        chosen = [n for chain in chains for n in chain if id(n) in record_of]
        if not chosen and only is not None:
            return {}  # a timed choice that keeps every chain LINEAR builds what the option off builds
        inside = {id(n) for n in chosen}
        for node in chosen:
            node.outputs[0].format = TensorFormat.HWC
        reformats: list[str] = []
        entering: dict[int, Value] = {}
        for node in chosen:
            for position in activation_positions(node):
                value = node.inputs[position]
                if value.format == TensorFormat.HWC:
                    continue
                if _converts_only_for(value, inside, graph):  # the precision reformat converts the layout too
                    value.producer.params["to_format"] = TensorFormat.HWC
                    value.format = TensorFormat.HWC
                    reformats.append(value.producer.name)
                    record_of[id(node)].converted.append(value.producer.name)
                    continue
                if id(value) not in entering:
                    entering[id(value)] = self._reformat(graph, value, f"{value.name}:hwc", TensorFormat.HWC,
                                                         reformats)
                made = entering[id(value)].producer.name
                if made not in record_of[id(node)].reformats:
                    record_of[id(node)].reformats.append(made)
                graph.set_input(node, position, entering[id(value)])
        for node in chosen:
            value = node.outputs[0]
            leaving = [(reader, position) for reader, position in value.uses
                       if (id(reader) not in inside or position not in activation_positions(reader))
                       and reader.type != LayerType.REFORMAT]  # a reformat reads any layout (precision ones too)
            record_of[id(node)].converted.extend(reader.name for reader, _ in value.uses
                                                 if reader.type == LayerType.REFORMAT)
            if not leaving and value not in graph.outputs:
                continue
            name = value.name
            graph.rename(value, graph.fresh_name(f"{name}:hwc"))
            linear = self._reformat(graph, value, name, TensorFormat.LINEAR, reformats)
            record_of[id(node)].reformats.append(linear.producer.name)
            for reader, position in leaving:
                graph.set_input(reader, position, linear)
            graph.replace_output(value, linear)
        return {self.name: [n.name for n in chosen], "format_reformats": reformats}

    @staticmethod
    def _reformat(graph: Graph, value: Value, name: str, to_format: TensorFormat, made: list[str]) -> Value:
        node = graph.add_node(LayerType.REFORMAT, [value], [(name, value.dtype, value.shape)],
                              {"to_type": value.dtype, "to_format": to_format},
                              name=f"Reformat({value.name})->{to_format.value}", precision=value.dtype)
        node.outputs[0].format = to_format
        made.append(node.name)
        return node.outputs[0]
