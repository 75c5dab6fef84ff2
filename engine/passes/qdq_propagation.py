"""Q/DQ propagation: TensorRT's rules for moving quantization across the layers around INT8 layers, as fusion rules.

A Q/DQ network from onnxruntime's quantizer puts a QuantizeLinear → DequantizeLinear pair on nearly every
activation. The int8_fusion rule turns DQ → Convolution/MatMul → Q into INT8 layers; these rules take the rest, so
that no Q/DQ layer is left where TensorRT would have none. Every rewrite computes the same values as the Q/DQ
layers it replaces (up to float32 rounding order), which is what lets tests compare with onnxruntime's execution:

- dq_commute: DQ → {Shuffle (Reshape, Transpose, Flatten, Squeeze, Unsqueeze), MaxPool, Concat of one scale}
  → the layer moves the INT8 values and the DQ follows it. Exact: these layers only move or compare values, and
  dequantization by one positive scale (zero point 0) keeps order.
- q_commute: {Shuffle, MaxPool} → Q → the Q moves before the layer, which then moves INT8 values: the Q can then
  become the output scale of the Convolution/MatMul before it. Exact for the same reason (rounding keeps order).
- qdq_cancel: DQ → Q with the same scale and zero point is the identity on the quantized values: the Q's readers
  read the DQ's input.
- int8_io: DQ(s) → {ElementWise, Activation, Pooling, Concat, Scale} → Q becomes one INT8 layer reading and
  writing INT8 (TensorRT's fused INT8 pointwise/pooling layers; float constant operands are read as they are):
  the tactic dequantizes, computes in float, requantizes — so a Concat of inputs with different scales
  requantizes them to the output's scale, and a residual Add of two quantized branches (onnxruntime quantizes
  both) runs as one INT8 layer.
- int8_residual: an INT8 convolution whose epilogue adds a residual produced by a DQ reads the residual's INT8
  values and dequantizes them in its epilogue (TensorRT's conv + add fusion for Q/DQ networks).

Only INT8 with one (per-tensor) constant scale and zero point 0 is moved: the form TensorRT's rules take.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, PoolingType
from ..ir import Graph, Node, Value
from .int8_fusion import is_int8_layer, symmetric_int8_scale
from .match import record_fusion, sole_reader

DEQUANTIZE, QUANTIZE = (LayerType.DEQUANTIZE,), (LayerType.QUANTIZE,)
COMMUTING = (LayerType.SHUFFLE, LayerType.POOLING, LayerType.CONCATENATION)
INT8_IO = (LayerType.ELEMENTWISE, LayerType.ACTIVATION, LayerType.POOLING, LayerType.CONCATENATION,
           LayerType.SCALE)


def per_tensor_scale(node: Node | None, kinds: tuple[LayerType, ...]) -> float | None:
    """The one scale of an INT8 Q/DQ node with zero point 0 and a constant per-tensor scale, else None."""
    scale = symmetric_int8_scale(node, kinds)
    return float(scale[0]) if scale is not None and scale.size == 1 else None


def _dequantized_by(value: Value | None) -> tuple[Node, float] | None:
    node = None if value is None else value.producer
    scale = per_tensor_scale(node, DEQUANTIZE)
    return None if scale is None else (node, scale)


def _data_inputs(node: Node) -> list[Value]:
    """The tensors a layer computes on (a Shuffle's second input is its shape, not data)."""
    return [node.inputs[0]] if node.type == LayerType.SHUFFLE else [v for v in node.inputs if v is not None]


def _only_read_by(graph: Graph, value: Value, node: Node) -> bool:
    return value not in graph.outputs and bool(value.uses) and all(reader is node for reader, _ in value.uses)


# ---------------------------------------------------------------------------------------------- dq_commute
@dataclass
class DqCommute:
    node: Node
    dequantizers: list[Node]


def match_dq_commute(graph: Graph, node: Node) -> DqCommute | None:
    if is_int8_layer(node) or len(node.outputs) != 1 or node.outputs[0].dtype != DataType.FLOAT:
        return None
    if node.type == LayerType.POOLING and PoolingType(node.params["pooling_type"]) != PoolingType.MAX:
        return None
    inputs = _data_inputs(node)
    found = [_dequantized_by(v) for v in inputs]
    if not inputs or any(f is None for f in found) or len({scale for _, scale in found}) != 1:
        return None
    if not all(_only_read_by(graph, v, node) for v in inputs):
        return None
    return DqCommute(node, [dq for dq, _ in found])


def commute_dq(graph: Graph, m: DqCommute) -> list[str]:
    node, first = m.node, m.dequantizers[0]
    for position, value in enumerate(node.inputs):
        dq = None if value is None else value.producer
        if dq in m.dequantizers and (node.type != LayerType.SHUFFLE or position == 0):
            graph.set_input(node, position, dq.inputs[0])
    out = node.outputs[0]
    name = out.name
    graph.rename(out, graph.fresh_name(f"{name}:int8"))
    out.dtype = DataType.INT8
    dq = graph.add_node(LayerType.DEQUANTIZE, [out, *first.inputs[1:]], [(name, DataType.FLOAT, out.shape)],
                        dict(first.params), name=f"{first.name}:after:{node.name}", after=node,
                        metadata={"moved_from": [first.name]})
    graph.replace_all_uses_with(out, dq.outputs[0])
    return [d.name for d in m.dequantizers]


# ---------------------------------------------------------------------------------------------- q_commute
def match_q_commute(graph: Graph, node: Node) -> tuple[Node, Node] | None:
    if node.type == LayerType.CONCATENATION or is_int8_layer(node) or len(node.outputs) != 1:
        return None
    if node.type == LayerType.POOLING and PoolingType(node.params["pooling_type"]) != PoolingType.MAX:
        return None
    x = node.inputs[0]
    if x is None or x.dtype != DataType.FLOAT or x.constant is not None:
        return None
    q = sole_reader(graph, node.outputs[0])
    return None if per_tensor_scale(q, QUANTIZE) is None else (node, q)


def commute_q(graph: Graph, m: tuple[Node, Node]) -> list[str]:
    node, q = m
    x = node.inputs[0]
    moved = graph.add_node(LayerType.QUANTIZE, [x, *q.inputs[1:]], [(f"{x.name}:int8", DataType.INT8, x.shape)],
                           dict(q.params), name=f"{q.name}:before:{node.name}", before=node,
                           metadata={"moved_from": [q.name]})
    graph.set_input(node, 0, moved.outputs[0])
    graph.take_over_output(node, q)
    node.outputs[0].dtype = DataType.INT8
    return [q.name]


# ---------------------------------------------------------------------------------------------- qdq_cancel
def match_qdq_cancel(graph: Graph, q: Node) -> tuple[Node, Node] | None:
    dq = q.inputs[0].producer
    if q.outputs[0] in graph.outputs or dq is None or dq.type != LayerType.DEQUANTIZE:
        return None
    if q.outputs[0].dtype != dq.inputs[0].dtype or q.outputs[0].dtype not in (DataType.INT8, DataType.UINT8):
        return None
    operands = [(list(dq.inputs) + [None, None])[1:3], (list(q.inputs) + [None, None])[1:3]]
    arrays = [[None if v is None else v.constant for v in pair] for pair in operands]
    if any(v is not None and a is None for pair, got in zip(operands, arrays) for v, a in zip(pair, got)):
        return None  # a scale or zero point computed at run time
    (dq_scale, dq_zero), (q_scale, q_zero) = arrays
    if dq_scale is None or q_scale is None or dq_scale.shape != q_scale.shape or np.any(dq_scale != q_scale):
        return None
    zeros = [np.zeros(1) if z is None else np.asarray(z, np.int64).reshape(-1) for z in (dq_zero, q_zero)]
    if not np.array_equal(np.broadcast_to(zeros[0], dq_scale.shape if dq_scale.ndim else (1,)),
                          np.broadcast_to(zeros[1], q_scale.shape if q_scale.ndim else (1,))):
        return None
    if dq_scale.size > 1 and dq.params.get("axis", 1) != q.params.get("axis", 1):
        return None
    return dq, q


def cancel_qdq(graph: Graph, m: tuple[Node, Node]) -> list[str]:
    dq, q = m
    graph.replace_all_uses_with(q.outputs[0], dq.inputs[0])
    graph.erase(q)  # now, not at cleanup: a dead Q would still match
    removed = [q.name]
    if not dq.outputs[0].uses and dq.outputs[0] not in graph.outputs:
        graph.erase(dq)
        removed.append(dq.name)
    return removed


# ---------------------------------------------------------------------------------------------- int8_io
@dataclass
class Int8Io:
    node: Node
    dequantizers: list[tuple[int, Node, float]]
    quantizer: Node
    output_scale: float


def match_int8_io(graph: Graph, node: Node) -> Int8Io | None:
    if is_int8_layer(node) or node.epilogue.output_scale is not None or len(node.outputs) != 1:
        return None
    if node.outputs[0].dtype != DataType.FLOAT or node.epilogue.residual is not None:
        return None
    dequantizers = []
    for position, value in enumerate(node.inputs):
        if value is None:
            continue
        if value.constant is not None and value.dtype == DataType.FLOAT:
            continue  # a float operand (a Scale's shift and scale) is read as it is
        found = _dequantized_by(value)
        if found is None or found[0].inputs[0].constant is not None:
            return None  # (a quantized constant is left to constant folding, which runs the float layers)
        dequantizers.append((position, *found))
    q = sole_reader(graph, node.outputs[0])
    output_scale = per_tensor_scale(q, QUANTIZE)
    if not dequantizers or output_scale is None:
        return None
    return Int8Io(node, dequantizers, q, output_scale)


def make_int8_io_layer(graph: Graph, m: Int8Io) -> list[str]:
    node = m.node
    scales: list[float | None] = [None] * len(node.inputs)
    for position, dq, scale in m.dequantizers:
        graph.set_input(node, position, dq.inputs[0])
        scales[position] = scale
        record_fusion(node, dq)
    node.params["int8"] = {"input_scales": scales}
    node.precision, node.precision_is_set = DataType.INT8, True
    node.epilogue = replace(node.epilogue, output_scale=m.output_scale)
    graph.take_over_output(node, m.quantizer)
    node.outputs[0].dtype = DataType.INT8
    record_fusion(node, m.quantizer)
    return [m.quantizer.name] + [dq.name for _, dq, _ in m.dequantizers if not dq.outputs[0].uses]


# ---------------------------------------------------------------------------------------------- int8_residual
def match_int8_residual(graph: Graph, conv: Node) -> tuple[Node, Node, float] | None:
    position = conv.epilogue.residual
    if not is_int8_layer(conv) or position is None or "residual_scale" in conv.params["int8"]:
        return None
    found = _dequantized_by(conv.inputs[position])
    return None if found is None else (conv, *found)


def read_int8_residual(graph: Graph, m: tuple[Node, Node, float]) -> list[str]:
    conv, dq, scale = m
    graph.set_input(conv, conv.epilogue.residual, dq.inputs[0])
    conv.params["int8"] = {**conv.params["int8"], "residual_scale": scale}
    record_fusion(conv, dq)
    return [dq.name] if not dq.outputs[0].uses else []
