"""Runs an ir.Graph node by node with the op registry's reference kernels (and each node's epilogue), so a test
can compare a graph before and after a rewrite against a float64 NumPy reference of its own."""
from __future__ import annotations

import numpy as np

from engine.enums import LayerType
from engine.ir import Graph, apply_epilogue
from engine.ops.base import layer_impl


def run_graph(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values: dict[int, np.ndarray] = {id(v): feeds[v.name] for v in graph.inputs}
    for node in graph.nodes:
        if node.type == LayerType.CONSTANT:
            values[id(node.outputs[0])] = node.params["weights"]
            continue
        ins = [None if v is None else values[id(v)] for v in node.inputs]
        outs = [np.array(o) for o in layer_impl(node.type).compute(node, ins, np)]
        if not node.epilogue.empty:
            apply_epilogue(node.epilogue, outs[0], ins, np)
        for value, array in zip(node.outputs, outs):
            values[id(value)] = array
    return {v.name: values[id(v)] for v in graph.outputs}
