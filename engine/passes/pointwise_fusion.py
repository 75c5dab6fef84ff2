"""Pointwise fusion: connected elementwise, activation and unary nodes become one POINTWISE node (ops/pointwise.py),
which the GPU runs as one generated kernel: TensorRT's PointWise fusion.

It runs after precision assignment (a layer precision the user pins must still name a layer, and one kernel runs in
one precision). Grown backwards from each group's last node: a producer joins when it is itself fusable, runs in the
same precision, and its output is read by nothing else (one use, not a graph output), so no intermediate value is
needed outside the group. Every intermediate is then computed per output element from broadcast inputs, which gives
the same values the separate layers gave. `BuilderConfig.pointwise_fusion` (CLI `--pointwise-fusion`) turns it on,
for either device; it pays on the GPU, where each layer is a launch and a trip through memory. It is off by default
until the generated kernel has been measured on the GPU machine.
"""
from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import ActivationType, ElementWiseOperation, LayerType, UnaryOperation
from ..ir import Graph, Node, Value
from .base import Pass, PassContext
from .match import sole_reader

FLOAT_BINARY = frozenset({ElementWiseOperation.SUM, ElementWiseOperation.SUB, ElementWiseOperation.PROD,
                          ElementWiseOperation.DIV, ElementWiseOperation.POW, ElementWiseOperation.MAX,
                          ElementWiseOperation.MIN})
FLOAT_UNARY = frozenset(UnaryOperation) - {UnaryOperation.NOT, UnaryOperation.ISINF, UnaryOperation.ISNAN,
                                           UnaryOperation.BITWISE_NOT}
FLOAT_ACTIVATIONS = frozenset(ActivationType)
MAX_STEPS = 32   # a bound on the generated kernel's size
MAX_INPUTS = 8   # and on its arguments


def fusable(node: Node) -> bool:
    """An elementwise/activation/unary node of floats, one output, nothing fused into it but an activation."""
    if len(node.outputs) != 1 or node.precision not in (DataType.FLOAT, DataType.HALF) or node.params.get("int8"):
        return False
    epilogue = node.epilogue
    if epilogue.residual is not None or epilogue.output_scale is not None:
        return False
    if node.type == LayerType.ELEMENTWISE:
        ok = ElementWiseOperation(node.params["op"]) in FLOAT_BINARY
    elif node.type == LayerType.UNARY:
        ok = UnaryOperation(node.params["op"]) in FLOAT_UNARY
    elif node.type == LayerType.ACTIVATION:
        ok = ActivationType(node.params["activation_type"]) in FLOAT_ACTIVATIONS
    else:
        return False
    values = [v for v in node.inputs if v is not None] + list(node.outputs)
    return ok and len(node.inputs) == (2 if node.type == LayerType.ELEMENTWISE else 1) and \
        all(v.dtype == node.precision for v in values)


def _group(graph: Graph, root: Node, claimed: set[int]) -> list[Node]:
    """The nodes fused with `root` (root last, in graph order)."""
    members = [root]
    frontier = [root]
    while frontier:
        node = frontier.pop()
        for value in node.inputs:
            producer = value.producer if value is not None else None
            if producer is None or id(producer) in claimed or producer in members or len(members) >= MAX_STEPS:
                continue
            if fusable(producer) and producer.precision == root.precision and sole_reader(graph, value) is node:
                members.append(producer)
                frontier.append(producer)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    return sorted(members, key=lambda n: order[id(n)])


def _program(members: list[Node]) -> tuple[list[dict[str, Any]], list[Value]]:
    """The steps (ops/pointwise.py's format) and the external input values, each once."""
    produced: dict[int, int] = {}
    inputs: list[Value] = []
    steps: list[dict[str, Any]] = []

    def ref(value: Value) -> list:
        if id(value) in produced:
            return ["step", produced[id(value)]]
        if value not in inputs:
            inputs.append(value)
        return ["input", inputs.index(value)]

    for node in members:
        params = {k: _plain(v) for k, v in node.params.items()}
        steps.append({"layer": node.type.value, "params": params, "args": [ref(v) for v in node.inputs]})
        if node.epilogue.activation is not None:
            act = node.epilogue.activation
            steps.append({"layer": LayerType.ACTIVATION.value, "args": [["step", len(steps) - 1]],
                          "params": {"activation_type": act.type.value, "alpha": act.alpha, "beta": act.beta}})
        produced[id(node.outputs[0])] = len(steps) - 1
    return steps, inputs


def _plain(value: Any) -> Any:
    """A param as a plan stores it: enums by name, NumPy scalars as numbers."""
    if isinstance(value, Enum):
        return value.value
    return value.item() if isinstance(value, np.generic) else value


class PointwiseFusion(Pass):
    """Reports the nodes fused into POINTWISE nodes (every member but each group's last)."""

    name = "pointwise_fusion"
    requires = ("reformats_inserted",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        if not ctx.pointwise_fusion:
            return {self.name: []}
        fused: list[str] = []
        claimed: set[int] = set()
        for root in reversed(list(graph.nodes)):
            if id(root) in claimed or not fusable(root):
                continue
            members = _group(graph, root, claimed)
            claimed.update(id(n) for n in members)
            steps, inputs = _program(members)
            if len(members) < 2 or len(inputs) > MAX_INPUTS:
                continue
            out = root.outputs[0]
            node = graph.add_node(LayerType.POINTWISE, inputs, [(graph.fresh_name(f"{root.name}.pointwise"),
                                                                  out.dtype, out.shape)],
                                  {"program": steps}, name=f"{root.name}.pointwise", before=root,
                                  precision=root.precision, precision_is_set=root.precision_is_set,
                                  metadata={"fused_from": [name for n in members
                                                           for name in n.metadata.get("fused_from", [n.name])]})
            graph.take_over_output(node, root)
            for member in reversed(members[:-1]):
                graph.erase(member)
            graph.rename_node(node, root.name)  # the group's last layer's name (and output) live on
            fused += [n.name for n in members[:-1]]
        return {self.name: fused}
