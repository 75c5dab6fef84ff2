"""Small questions fusion patterns ask of the graph (who reads this value, is that a constant scalar, ...)."""
from __future__ import annotations

import numpy as np

from ..enums import ElementWiseOperation, LayerType
from ..ir import Graph, Node, Value


def sole_reader(graph: Graph, value: Value) -> Node | None:
    """The one node reading `value` exactly once, when nothing else (a graph output included) sees it: only then
    may a rewrite absorb the value into a fused node."""
    if len(value.uses) != 1 or value in graph.outputs:
        return None
    return value.uses[0][0]


def is_elementwise(node: Node | None, op: ElementWiseOperation) -> bool:
    return node is not None and node.type == LayerType.ELEMENTWISE and ElementWiseOperation(node.params["op"]) == op


def scalar(value: Value | None) -> float | None:
    """The number a one-element floating constant holds."""
    array = None if value is None else value.constant
    if array is None or array.size != 1 or not np.issubdtype(array.dtype, np.floating):
        return None
    return float(array.reshape(-1)[0])


def close(number: float | None, target: float) -> bool:
    return number is not None and abs(number - target) <= 1e-3 * abs(target)


def other_input(node: Node, value: Value) -> Value | None:
    """The input of a two-input node that is not `value` (None if both or neither are)."""
    a, b = node.inputs[0], node.inputs[1]
    if (a is value) == (b is value):
        return None
    return b if a is value else a


def record_fusion(host: Node, fused: Node) -> None:
    """`inspect` and `run --mark-all` show which original layers a fused node stands for: the fused node's own
    provenance comes along (a GELU node fused into its MatMul still names the ONNX nodes of the GELU chain)."""
    names = host.metadata.setdefault("fused_from", [host.name])
    for name in [fused.name, *fused.metadata.get("fused_from", [])]:
        if name not in names:
            names.append(name)
