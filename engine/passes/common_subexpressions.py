"""Common-subexpression elimination: two nodes that compute the same thing from the same inputs become one.

Exporters repeat work per block: transformers' BERT export rebuilds the attention mask (a Where over the same
expanded mask, with equal constants) in each of its 12 layers, which on the GPU is 11 launches and 11 tensors
too many. Nodes are the same when their type, parameters, precision (and whether it was set), epilogue and forced
output types are equal and their inputs are the same values, or equal constants (compared by value: an
exporter's per-layer Constant_3/Constant_4 are separate nodes). Nodes are visited in graph order, so a merge
makes their readers equal in turn.

Left alone: control flow (subgraphs), plugins (user code that may keep state), unclassified layers, Constant nodes
themselves (their readers compare them by value), a node whose output is a network output or a marked tensor
(it stays observable by its name), and refittable weights (compared as values that may change, by identity).
"""
from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any

import numpy as np

from ..enums import LayerType
from ..ir import Graph, Node, Value
from .base import Pass, PassContext

NEVER_MERGED = frozenset({LayerType.CONDITIONAL, LayerType.LOOP, LayerType.PLUGIN_V2, LayerType.MISC,
                          LayerType.CONSTANT})
# Constants up to this many elements are compared by value (hashed); larger ones, weights, by identity.
MAX_COMPARED_ELEMENTS = 1 << 16


def _array_key(array: np.ndarray) -> tuple:
    data = np.ascontiguousarray(array)
    return "array", data.dtype.str, data.shape, hashlib.sha1(data.tobytes()).hexdigest()


def _canonical(item: Any) -> Any:
    """A JSON-able form of a parameter: arrays by type, shape and content hash, enums by value."""
    if isinstance(item, np.ndarray):
        return _array_key(item) if item.size <= MAX_COMPARED_ELEMENTS else ("array-id", id(item))
    if isinstance(item, Enum):
        return item.value
    if isinstance(item, dict):
        return {str(k): _canonical(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_canonical(v) for v in item]
    if isinstance(item, np.generic):
        return item.item()
    if item is None or isinstance(item, (bool, int, float, str)):
        return item
    return repr(item)


class CommonSubexpressionElimination(Pass):
    name = "common_subexpression_elimination"

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        protected = set(map(id, graph.outputs))
        value_keys: dict[int, Any] = {}
        seen: dict[str, Node] = {}
        merged: list[str] = []
        for node in list(graph.nodes):
            if node.type in NEVER_MERGED or any(id(v) in protected for v in node.outputs):
                continue
            key = self._key(node, value_keys)
            twin = seen.get(key)
            if twin is None:
                seen[key] = node
                continue
            for mine, theirs in zip(node.outputs, twin.outputs):
                graph.replace_all_uses_with(mine, theirs)
            merged.append(node.name)
            graph.erase(node)
        return {self.name: merged}

    @staticmethod
    def _key(node: Node, value_keys: dict[int, Any]) -> str:
        def input_key(value: Value | None) -> Any:
            if value is None:
                return None
            if id(value) not in value_keys:
                constant = value.constant
                value_keys[id(value)] = ("value", id(value)) if constant is None or \
                    np.size(constant) > MAX_COMPARED_ELEMENTS else _array_key(np.asarray(constant))
            return value_keys[id(value)]

        return json.dumps([node.type.value, _canonical(node.params), node.precision.value, node.precision_is_set,
                           node.epilogue.to_json(), {str(k): v.value for k, v in node.output_types.items()},
                           [input_key(v) for v in node.inputs],
                           [[v.dtype.value, v.format.value] for v in node.outputs]], sort_keys=True)
