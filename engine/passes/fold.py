"""Constant folding: a node whose outputs are known at build time becomes Constant nodes holding them.

Shape nodes over static shapes fold too, so static models lose their shape arithmetic entirely; on dynamic dims
the arithmetic stays and runs on the host at run time (graph.resolve_shapes). Values come from the one build-time
evaluator (engine/evaluator.py).

The first folding keeps DequantizeLinear of INT8/UINT8 constants (quantized weights): the INT8 fusion rule reads
their integer values and scales. The pipeline folds again after fusion, for those no INT8 layer took.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import LayerType
from ..evaluator import known_outputs
from ..ir import Graph, Node
from ..ops.base import TensorInfo
from .base import Pass, PassContext

# Folded results above this many elements stay as nodes: folding them would bloat the plan.
MAX_FOLDED_ELEMENTS = 1 << 24


class ConstantFolding(Pass):
    name = "constant_folding"

    def __init__(self, max_elements: int = MAX_FOLDED_ELEMENTS, keep_quantized_weights: bool = False):
        self.max_elements = max_elements
        self.keep_quantized_weights = keep_quantized_weights

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        folded = []
        for node in list(graph.nodes):
            if node.type == LayerType.CONSTANT or (self.keep_quantized_weights and is_quantized_weight(node)):
                continue
            infos = [None if v is None else TensorInfo(v.shape, v.dtype, v.constant) for v in node.inputs]
            values = known_outputs(node, infos, [v.shape for v in node.outputs], self.max_elements)
            if values is not None:
                folded.append(node.name)
                _replace_with_constants(graph, node, values)
        return {self.name: folded}


def is_quantized_weight(node: Node) -> bool:
    """A DequantizeLinear of an 8-bit constant: weights of an explicitly quantized network."""
    source = node.inputs[0] if node.type == LayerType.DEQUANTIZE else None
    return source is not None and source.constant is not None and source.dtype in (DataType.INT8, DataType.UINT8)


def _replace_with_constants(graph: Graph, node: Node, values: list[np.ndarray]) -> None:
    """Constant nodes take over the node's outputs, keeping its name (the first) and its output names."""
    name, outputs = node.name, list(node.outputs)
    constants = []
    for index, (value, array) in enumerate(zip(outputs, values)):
        array = np.asarray(array, order="C").astype(nptype(value.dtype), copy=False)  # 0-D stays 0-D
        constant = graph.add_node(LayerType.CONSTANT, [], [(f"{value.name}#folded", value.dtype, array.shape)],
                                  {"weights": array, "shape": list(array.shape)}, name=f"{name}#folded{index}",
                                  before=node, metadata={**node.metadata, "folded_from": [name]})
        graph.replace_all_uses_with(value, constant.outputs[0])
        constants.append(constant)
    graph.erase(node)
    for index, (constant, value) in enumerate(zip(constants, outputs)):
        graph.rename(constant.outputs[0], value.name)
        graph.rename_node(constant, name if index == 0 else f"{name}/{index}")
