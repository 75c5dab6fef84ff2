"""Explicit quantization: DequantizeLinear → Convolution/MatMul (→ QuantizeLinear) becomes one INT8 layer.

TensorRT's rule for Q/DQ networks, in our graph: the layer reads the quantized activation (INT8, one scale, zero
point 0) and the quantized weights (INT8 constants, one scale per output channel or one in all, zero point 0)
directly; its params carry `int8 = {input_scale, weight_scales}`; when the only reader of its output is a
QuantizeLinear (INT8, one scale, zero point 0), that Q becomes the epilogue's `output_scale` and the layer writes
INT8 (also when that Q arrives later, moved there by the q_commute rule: `match_int8_output`). Bias, residual
and activation stay in float between accumulation and requantization. Anything else
(asymmetric or UINT8 activations, runtime scales, per-channel activation scales) stays as Q/DQ layers, which
compute the same result in float. The rule is one row of FUSION_RULES (fusion_rules.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, MatrixOperation
from ..ir import Graph, Node
from .match import record_fusion, sole_reader


@dataclass
class Int8Layer:
    node: Node
    input_dq: Node
    weight_dq: Node
    input_scale: float
    weight_scales: np.ndarray
    output_q: Node | None
    output_scale: float | None


def is_int8_layer(node: Node) -> bool:
    """Made INT8 by a rule (its params carry the scales). A precision of INT8 alone is only a user's request,
    which the int8_precision_constraints pass checks after the rules ran."""
    return "int8" in node.params


def symmetric_int8_scale(node: Node | None, kinds: tuple[LayerType, ...]) -> np.ndarray | None:
    """The constant scale of a Q/DQ node of INT8 with zero point 0 (absent or all zeros), else None."""
    if node is None or node.type not in kinds:
        return None
    quantized = node.outputs[0] if node.type == LayerType.QUANTIZE else node.inputs[0]
    if quantized.dtype != DataType.INT8:
        return None
    scale = node.inputs[1].constant
    zero = node.inputs[2] if len(node.inputs) > 2 else None
    if scale is None or (zero is not None and (zero.constant is None or np.any(zero.constant != 0))):
        return None
    return np.asarray(scale, np.float64).reshape(-1)


def _per_tensor(scale: np.ndarray | None) -> float | None:
    return float(scale[0]) if scale is not None and scale.size == 1 else None


def _weight_scales(dq: Node, channels: int, axis: int) -> np.ndarray | None:
    """One scale per output channel (a single scale is repeated), when the weights are quantized along `axis`."""
    scale = symmetric_int8_scale(dq, (LayerType.DEQUANTIZE,))
    if scale is None or dq.inputs[0].constant is None:
        return None
    if scale.size == 1:
        return np.full(channels, scale[0])
    rank = len(dq.inputs[0].shape)
    if scale.size != channels or int(dq.params.get("axis", 1)) % rank != axis:
        return None
    return scale


def match_int8_layer(graph: Graph, node: Node) -> Int8Layer | None:
    if is_int8_layer(node) or node.epilogue.output_scale is not None or len(node.outputs) != 1:
        return None
    if node.outputs[0].dtype != DataType.FLOAT or len(node.inputs) < 2:
        return None
    x, w = node.inputs[0], node.inputs[1]
    input_dq, weight_dq = x.producer, w.producer
    input_scale = _per_tensor(symmetric_int8_scale(input_dq, (LayerType.DEQUANTIZE,)))
    if input_scale is None or weight_dq is None or w.shape is None:
        return None
    if node.type == LayerType.CONVOLUTION:
        weight_scales = _weight_scales(weight_dq, w.shape[0], axis=0)
    else:
        p = node.params
        transposed = MatrixOperation(p["op1"]) == MatrixOperation.TRANSPOSE
        if len(w.shape) != 2 or MatrixOperation(p["op0"]) != MatrixOperation.NONE or \
                MatrixOperation(p["op1"]) not in (MatrixOperation.NONE, MatrixOperation.TRANSPOSE) or \
                p.get("alpha", 1.0) != 1.0 or \
                (len(node.inputs) > 2 and node.inputs[2] is not None and p.get("beta", 1.0) != 1.0):
            return None
        # Gemm(transB=1), as nn.Linear exports: the output channels are the weights' rows
        weight_scales = _weight_scales(weight_dq, w.shape[0], axis=0) if transposed else \
            _weight_scales(weight_dq, w.shape[1], axis=1)
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if weight_scales is None or (bias is not None and (not bias.is_constant or bias.dtype != DataType.FLOAT)):
        return None
    output_q, output_scale = _output_quantize(graph, node)
    return Int8Layer(node, input_dq, weight_dq, input_scale, weight_scales, output_q, output_scale)


def _output_quantize(graph: Graph, node: Node) -> tuple[Node | None, float | None]:
    """The per-tensor INT8 Q that is the only reader of the layer's output and its scale (None, None: there is
    none)."""
    reader = sole_reader(graph, node.outputs[0])
    output_scale = _per_tensor(symmetric_int8_scale(reader, (LayerType.QUANTIZE,)))
    return (None, None) if output_scale is None else (reader, output_scale)


def match_int8_output(graph: Graph, node: Node) -> tuple[Node, Node, float] | None:
    """An INT8 layer still writing float whose only reader is now a per-tensor INT8 Q (moved before a MaxPool or
    Shuffle by q_commute after this layer was made INT8): (layer, Q, its scale)."""
    if not is_int8_layer(node) or node.epilogue.output_scale is not None or len(node.outputs) != 1 or \
            node.outputs[0].dtype != DataType.FLOAT:
        return None
    output_q, output_scale = _output_quantize(graph, node)
    return None if output_q is None else (node, output_q, output_scale)


def absorb_output_quantize(graph: Graph, m: tuple[Node, Node, float]) -> list[str]:
    node, q, output_scale = m
    _requantize_in_epilogue(graph, node, q, output_scale)
    return [q.name]


def _requantize_in_epilogue(graph: Graph, node: Node, q: Node, output_scale: float) -> None:
    """The Q becomes the layer's output scale: the layer writes the Q's INT8 tensor."""
    node.epilogue = replace(node.epilogue, output_scale=output_scale)
    graph.take_over_output(node, q)
    node.outputs[0].dtype = DataType.INT8
    record_fusion(node, q)


def make_int8_layer(graph: Graph, m: Int8Layer) -> list[str]:
    node = m.node
    graph.set_input(node, 0, m.input_dq.inputs[0])
    weights = m.weight_dq.inputs[0]
    if node.type == LayerType.MATRIX_MULTIPLY and MatrixOperation(node.params["op1"]) == MatrixOperation.TRANSPOSE:
        array = np.ascontiguousarray(weights.constant.T)  # the INT8 tactics read (K, N) weights
        weights = graph.add_node(LayerType.CONSTANT, [], [(f"{weights.name}:transposed", DataType.INT8, array.shape)],
                                 {"weights": array, "shape": list(array.shape)}, name=f"{node.name}.weights_int8",
                                 before=node).outputs[0]
        node.params["op1"] = MatrixOperation.NONE
    graph.set_input(node, 1, weights)
    node.params["int8"] = {"input_scale": m.input_scale, "weight_scales": [float(s) for s in m.weight_scales]}
    node.precision, node.precision_is_set = DataType.INT8, True
    record_fusion(node, m.input_dq)
    record_fusion(node, m.weight_dq)
    absorbed = [m.input_dq.name, m.weight_dq.name]
    if m.output_q is not None:
        _requantize_in_epilogue(graph, node, m.output_q, m.output_scale)
        absorbed.append(m.output_q.name)
    return absorbed
