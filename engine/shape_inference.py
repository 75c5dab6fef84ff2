"""Build-time shape inference and value propagation over the network IR.

Shapes carry -1 for dimensions unknown until run time. Small integer tensors whose value can be known without
running the model (constants, Shape of a static tensor, arithmetic on those) are evaluated with the reference
kernels, so Reshape/Expand/Slice driven by shape arithmetic get static output shapes wherever the dims are static.
"""
from __future__ import annotations

import weakref

import numpy as np

from .dtypes import DataType
from .enums import LayerType
from .errors import EngineError, ShapeError
from .evaluator import is_static, known_outputs, output_infos
from .ops.base import TensorInfo

# Values larger than this are never propagated at build time (they are data, not shape arithmetic).
MAX_PROPAGATED_ELEMENTS = 4096

# Values found by known_value, kept across calls so that importing a graph walks each tensor's ancestry once, not
# once per node downstream (a 10k-node chain was quadratic). An entry holds while the tensor keeps its producer,
# shape and dtype and no layer was changed after creation (`forget_known_values`, called by the façade when it
# re-infers a changed layer, whose downstream values may change).
_known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_generation = 0


def forget_known_values() -> None:
    """Invalidate every cached build-time value (a layer's params or inputs changed after it was created)."""
    global _generation
    _generation += 1


def _cached(tensor) -> tuple[bool, np.ndarray | None]:
    entry = _known.get(tensor)
    if entry is not None and entry[:4] == (_generation, tensor.producer, tensor.shape, tensor.dtype):
        return True, entry[4]
    return False, None


def tensor_info(tensor, values: dict[int, np.ndarray] | None = None) -> TensorInfo | None:
    if tensor is None:
        return None
    return TensorInfo(tensor.shape, tensor.dtype, known_value(tensor, values))


def known_value(tensor, memo: dict[int, np.ndarray] | None = None) -> np.ndarray | None:
    """The tensor's value if it is computable at build time (constant or shape arithmetic), else None.

    Walks upstream with an explicit stack, not recursion: a chain of thousands of small shape tensors must not
    hit Python's recursion limit (a tensor met again while its own inputs are pending, i.e. a cycle, is unknown)."""
    if tensor is None or tensor.producer is None:
        return None
    if memo is None:
        memo = {}
    stack, expanding = [tensor], set()
    while stack:
        current = stack[-1]
        key = id(current)
        if key in memo:
            stack.pop()
            continue
        found, value = _cached(current)
        if found:
            memo[key] = value
            stack.pop()
            continue
        layer = current.producer
        if layer is None:
            value = None
        elif layer.type == LayerType.CONSTANT:
            value = layer.params["weights"]
        elif not is_static(current.shape) or int(np.prod(current.shape, dtype=np.int64)) > MAX_PROPAGATED_ELEMENTS:
            value = None  # decided before looking upstream: data tensors never walk through their producers
        else:
            if layer.type != LayerType.SHAPE and key not in expanding:
                pending = [t for t in layer.inputs if t is not None and id(t) not in memo and id(t) not in expanding]
                if pending:
                    expanding.add(key)
                    stack.extend(pending)
                    continue
            infos = [None if t is None else TensorInfo(t.shape, t.dtype, None if layer.type == LayerType.SHAPE
                                                       else memo.get(id(t))) for t in layer.inputs]
            outs = known_outputs(layer, infos, [current.shape], MAX_PROPAGATED_ELEMENTS) if layer.inputs else None
            value = None if outs is None else outs[layer.outputs.index(current)]
        memo[key] = value
        _known[current] = (_generation, current.producer, current.shape, current.dtype, value)
        expanding.discard(key)
        stack.pop()
    return memo[id(tensor)]


def infer_layer(layer, strict: bool = False, memo: dict[int, np.ndarray] | None = None) -> None:
    """Set shape/dtype of the layer's outputs. Non-strict (while the user builds) leaves unknown shapes as None."""
    _set_outputs(layer, [tensor_info(t, memo) for t in layer.inputs], strict)


def infer_graph(graph) -> None:
    """Strictly infer every node's output shapes and dtypes in order, propagating build-time-known values (the
    builder runs this once on its ir.Graph after lowering, so the user's network is never touched)."""
    known: dict[int, np.ndarray] = {}
    for node in graph.nodes:
        infos = [None if v is None else TensorInfo(v.shape, v.dtype, known.get(id(v))) for v in node.inputs]
        _set_outputs(node, infos, strict=True)
        if node.type == LayerType.CONSTANT:
            known[id(node.outputs[0])] = node.params["weights"]
            continue
        values = known_outputs(node, infos, [v.shape for v in node.outputs], MAX_PROPAGATED_ELEMENTS)
        for value, array in zip(node.outputs, values or ()):
            known[id(value)] = array


def _set_outputs(layer, infos: list[TensorInfo | None], strict: bool) -> None:
    """Infer the outputs of `layer` (a façade Layer or a graph Node) from `infos` and set their shapes and dtypes
    (forced output types kept). Strict: a failure is a ShapeError naming the layer; otherwise outputs stay as
    they were."""
    bad = next((t for t, i in zip(layer.inputs, infos) if i is not None and i.shape is None), None)
    if bad is not None:
        if strict:
            raise ShapeError(f"layer '{layer.name}': input '{bad.name}' has no known shape")
        return
    try:
        results = output_infos(layer, infos)
    except EngineError as exc:
        if strict:
            raise ShapeError(f"layer '{layer.name}' ({layer.type.value}): {exc}") from None
        return
    except Exception as exc:  # noqa: BLE001 - an infer function crashing on odd input is a user-facing shape error
        if strict:
            raise ShapeError(f"layer '{layer.name}' ({layer.type.value}): cannot infer output shape ({exc})") from None
        return
    if len(results) != len(layer.outputs):
        raise EngineError(f"layer '{layer.name}': shape inference returned {len(results)} outputs, "
                          f"expected {len(layer.outputs)}")
    for index, (out, (shape, dtype)) in enumerate(zip(layer.outputs, results)):
        out.shape = None if shape is None else tuple(int(d) for d in shape)
        out.dtype = layer.output_types.get(index, DataType(dtype))
