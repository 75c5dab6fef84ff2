"""Edits shared by the sanitize rewrites (simplify, weight_folding): reading constants and shapes, and rerouting
a node's readers so that cleanup removes it."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs


def static_shape(tensor: gs.Tensor) -> tuple[int, ...] | None:
    shape = tensor.shape
    if shape is None or any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def bypass(graph: gs.Graph, node: gs.Node, out: gs.Tensor, keep: gs.Tensor) -> bool:
    """Make every reader of `out` read `keep` instead, so `node` (producing `out`) becomes dead."""
    if out in graph.outputs:
        # Graph outputs keep their names: let `keep`'s producer produce `out` instead.
        if isinstance(keep, gs.Constant) or not keep.inputs or keep in graph.outputs or keep in graph.inputs:
            return False
        producer = keep.inputs[0]
        for consumer in list(keep.outputs):
            replace_input(consumer, keep, out)
        node.outputs.clear()
        producer.outputs[producer.outputs.index(keep)] = out
        return True
    for consumer in list(out.outputs):
        replace_input(consumer, out, keep)
    node.outputs.clear()
    return True


def replace_input(node: gs.Node, old: gs.Tensor, new: gs.Tensor) -> None:
    for index, tensor in enumerate(node.inputs):
        if tensor is old:
            node.inputs[index] = new


def constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    return tensor.values if isinstance(tensor, gs.Constant) else None


def single_reader(graph: gs.Graph, tensor: gs.Tensor) -> bool:
    return len(tensor.outputs) == 1 and tensor not in graph.outputs


def is_int(element) -> bool:
    return isinstance(element, (int, np.integer)) and not isinstance(element, (bool, np.bool_))
