"""Vertical fusions as pattern → replacement rules, all in one table (FUSION_RULES).

A rule names the node types its pattern starts from, a `match(graph, node)` that returns what the rewrite needs
(or None), and a `rewrite(graph, match)` that edits the graph through its methods and returns the names of the
nodes it fused away. The FusionPass applies the rules in table order, each to a fixed point, and repeats the table
until no rule fires: a later rule sees what earlier ones made (the GELU rule's new activation is then fused into
its producer). A tensor the user marked as an output is never fused away (`sole_reader` refuses graph outputs).

- conv_scale_fusion: Convolution + per-channel Scale → the convolution with rescaled weights (BatchNorm folding).
- matmul_bias_fusion: MatMul + Add(constant per-column bias) → the MatMul's bias operand (Gemm's C, beta = 1),
  which GEMM tactics add in their epilogue; PyTorch exports every nn.Linear on a 3-D input this way.
- gelu_fusion: the erf form of GELU, x * 0.5 * (1 + erf(x / sqrt(2))) in its association orders → one
  ACTIVATION GELU_ERF node.
- shape_of_transpose, attention_fusion, masked_softmax_fusion, residual_norm_fusion: a transformer's MatMul →
  scale → mask Add → Softmax → MatMul as one ATTENTION node (a Shape read of its Transposes moved before them
  first), the remaining Add → Softmax pairs as MASKED_SOFTMAX, Add → LayerNorm as RESIDUAL_NORMALIZATION
  (transformer_fusions.py).
- conv_residual_fusion: Convolution + Add(same-shape tensor) → the residual part of the convolution's epilogue:
  a ResNet block's conv → add → ReLU becomes one node, and on the GPU one epilogue pass.
- activation_fusion: {Convolution, Deconvolution, MatMul, ElementWise, Scale, (Residual)Normalization} + Activation
  → the activation part of the producer's epilogue (applied in place right after its kernel).
- int8_fusion: DequantizeLinear → Convolution/MatMul (→ QuantizeLinear) → one INT8 layer (int8_fusion.py).
- int8_output: an INT8 layer absorbs a QuantizeLinear that q_commute moved after it (int8_fusion.py).
- int8_residual, dq_commute, q_commute, qdq_cancel, int8_io: Q/DQ propagation around INT8 layers, TensorRT's rules
  (qdq_propagation.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..enums import ActivationType, ElementWiseOperation, LayerType, ScaleMode, UnaryOperation
from ..ir import Activation, Graph, Node, Value
from .base import Pass, PassContext
from .int8_fusion import absorb_output_quantize, make_int8_layer, match_int8_layer, match_int8_output
from .match import close, is_elementwise, other_input, record_fusion, scalar, sole_reader
from .qdq_propagation import (
    COMMUTING,
    INT8_IO,
    cancel_qdq,
    commute_dq,
    commute_q,
    make_int8_io_layer,
    match_dq_commute,
    match_int8_io,
    match_int8_residual,
    match_q_commute,
    match_qdq_cancel,
    read_int8_residual,
)
from .transformer_fusions import (
    make_attention,
    make_masked_softmax,
    make_residual_norm,
    match_attention,
    match_masked_softmax,
    match_residual_norm,
    match_shape_of_transpose,
    read_shape_before_transpose,
)

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class FusionRule:
    name: str                                        # the build summary's key
    anchors: tuple[LayerType, ...]                   # node types the pattern starts from
    match: Callable[[Graph, Node], Any]              # what the rewrite needs, or None
    rewrite: Callable[[Graph, Any], list[str]]       # edits the graph; returns the fused-away node names


# ---------------------------------------------------------------------------------------------- conv + scale
@dataclass
class ConvScale:
    conv: Node
    scale_node: Node
    kernel: np.ndarray
    bias: np.ndarray | None
    shift: np.ndarray | None
    scale: np.ndarray | None


def match_conv_scale(graph: Graph, conv: Node) -> ConvScale | None:
    if not conv.epilogue.empty or len(conv.inputs) > 3:
        return None
    scale_node = sole_reader(graph, conv.outputs[0])
    if scale_node is None or scale_node.type != LayerType.SCALE or scale_node.inputs[0] is not conv.outputs[0]:
        return None
    if scale_node.params.get("mode") != ScaleMode.CHANNEL or scale_node.params.get("channel_axis", 1) != 1:
        return None
    bias_input = conv.inputs[2] if len(conv.inputs) > 2 else None
    kernel, bias = conv.inputs[1].constant, None if bias_input is None else bias_input.constant
    if kernel is None or (bias_input is not None and bias is None):
        return None
    operands = (list(scale_node.inputs) + [None, None, None])[1:4]
    shift, scale, power = (None if v is None else v.constant for v in operands)
    if any(v is not None and array is None for v, array in zip(operands, (shift, scale, power))):
        return None
    if power is not None and not np.all(power == 1):
        return None
    return ConvScale(conv, scale_node, kernel, bias, shift, scale)


def fold_scale_into_conv(graph: Graph, m: ConvScale) -> list[str]:
    k = m.kernel.shape[0]
    scale = np.broadcast_to(np.asarray(1.0 if m.scale is None else m.scale, np.float64).ravel(), (k,))
    shift = np.broadcast_to(np.asarray(0.0 if m.shift is None else m.shift, np.float64).ravel(), (k,))
    bias = np.zeros(k, np.float64) if m.bias is None else m.bias.astype(np.float64)
    kernel = (m.kernel.astype(np.float64) * scale.reshape((k,) + (1,) * (m.kernel.ndim - 1))).astype(m.kernel.dtype)
    new_bias = (bias * scale + shift).astype(m.kernel.dtype)
    for position, (suffix, array) in ((1, ("kernel_fused", kernel)), (2, ("bias_fused", new_bias))):
        value = m.conv.inputs[1]
        constant = graph.add_node(LayerType.CONSTANT, [], [(f"{m.conv.name}.{suffix}", value.dtype, array.shape)],
                                  {"weights": array, "shape": list(array.shape)}, name=f"{m.conv.name}.{suffix}",
                                  before=m.conv)
        graph.set_input(m.conv, position, constant.outputs[0])
    graph.take_over_output(m.conv, m.scale_node)
    record_fusion(m.conv, m.scale_node)
    return [m.scale_node.name]


# ---------------------------------------------------------------------------------------------- matmul + bias
def match_matmul_bias(graph: Graph, matmul: Node) -> tuple[Node, Node, Value] | None:
    if not matmul.epilogue.empty or (len(matmul.inputs) > 2 and matmul.inputs[2] is not None):
        return None
    add = sole_reader(graph, matmul.outputs[0])
    if not is_elementwise(add, ElementWiseOperation.SUM) or add.inputs[0] is add.inputs[1]:
        return None
    bias = other_input(add, matmul.outputs[0])
    return (matmul, add, bias) if bias is not None and is_row_bias(bias, matmul.outputs[0]) else None


def is_row_bias(bias: Value, product: Value) -> bool:
    """A constant of the product's dtype holding one value per output column (or one value), broadcasting
    without enlarging the product. Only its shape is read: the rewrite moves the value (a refittable one too)."""
    bias_shape, shape = bias.shape, product.shape
    if not bias.is_constant or bias_shape is None or bias.dtype != product.dtype or shape is None or len(shape) < 2 \
            or len(bias_shape) > len(shape):
        return False
    leading, last = (bias_shape[:-1], bias_shape[-1]) if bias_shape else ((), 1)
    return all(d == 1 for d in leading) and (last == 1 or last == shape[-1] > 0)


def add_bias_operand(graph: Graph, m: tuple[Node, Node, Value]) -> list[str]:
    matmul, add, bias = m
    graph.set_input(matmul, 2, bias)  # the pipeline's toposort moves a later constant before its new reader
    matmul.params["beta"] = 1.0
    graph.take_over_output(matmul, add)
    record_fusion(matmul, add)
    return [add.name]


# ---------------------------------------------------------------------------------------------- erf GELU
def _gelu_input(scale: Node | None) -> Value | None:
    """x when `scale` computes x / sqrt(2) or x * (1 / sqrt(2))."""
    if is_elementwise(scale, ElementWiseOperation.DIV) and close(scalar(scale.inputs[1]), _SQRT2):
        return scale.inputs[0]
    if is_elementwise(scale, ElementWiseOperation.PROD):
        for x, factor in ((scale.inputs[0], scale.inputs[1]), (scale.inputs[1], scale.inputs[0])):
            if close(scalar(factor), 1 / _SQRT2) and scalar(x) is None:
                return x
    return None


def match_gelu(graph: Graph, erf: Node) -> tuple[Value, list[Node]] | None:
    """(x, the chain's nodes in order, the last producing the result) when `erf` sits in an erf-GELU."""
    if UnaryOperation(erf.params["op"]) != UnaryOperation.ERF:
        return None
    scale = erf.inputs[0].producer
    x = _gelu_input(scale)
    if x is None or not x.dtype.is_floating or sole_reader(graph, erf.inputs[0]) is not erf:
        return None
    one_plus = sole_reader(graph, erf.outputs[0])
    if not is_elementwise(one_plus, ElementWiseOperation.SUM) or \
            not close(scalar(other_input(one_plus, erf.outputs[0])), 1.0):
        return None
    chain = [scale, erf, one_plus]
    first = sole_reader(graph, one_plus.outputs[0])
    if not is_elementwise(first, ElementWiseOperation.PROD):
        return None
    partner = other_input(first, one_plus.outputs[0])
    if partner is x:                                    # (x * (1 + erf)) * 0.5
        last = sole_reader(graph, first.outputs[0])
        if is_elementwise(last, ElementWiseOperation.PROD) and close(scalar(other_input(last, first.outputs[0])), 0.5):
            return x, chain + [first, last]
        return None
    if close(scalar(partner), 0.5):                     # x * ((1 + erf) * 0.5)
        last = sole_reader(graph, first.outputs[0])
        if is_elementwise(last, ElementWiseOperation.PROD) and other_input(last, first.outputs[0]) is x:
            return x, chain + [first, last]
        return None
    half = partner.producer if partner is not None else None      # (x * 0.5) * (1 + erf)
    if is_elementwise(half, ElementWiseOperation.PROD) and other_input(half, x) is not None and \
            close(scalar(other_input(half, x)), 0.5) and sole_reader(graph, partner) is first:
        return x, [half] + chain + [first]
    return None


def replace_with_gelu(graph: Graph, m: tuple[Value, list[Node]]) -> list[str]:
    x, chain = m
    erf = chain[1] if chain[1].type == LayerType.UNARY else chain[2]
    gelu = graph.add_node(LayerType.ACTIVATION, [x], [(f"{erf.name}.gelu", x.dtype, x.shape)],
                          {"activation_type": ActivationType.GELU_ERF, "alpha": 0.0, "beta": 0.0},
                          name=f"{erf.name}.gelu", before=chain[-1], precision=chain[-1].precision,
                          precision_is_set=chain[-1].precision_is_set,
                          metadata={"fused_from": [node.name for node in chain]})
    graph.take_over_output(gelu, chain[-1])
    for node in reversed(chain[:-1]):
        graph.erase(node)
    return [node.name for node in chain]


# ---------------------------------------------------------------------------------------------- conv + residual
def match_conv_residual(graph: Graph, add: Node) -> tuple[Node, Node, Value] | None:
    if not is_elementwise(add, ElementWiseOperation.SUM) or not add.epilogue.empty:
        return None
    a, b = add.inputs[0], add.inputs[1]
    candidates = [(out, other) for out, other in ((a, b), (b, a)) if out is not other and _residual_host(graph, out,
                                                                                                         other)]
    if not candidates:
        return None
    order = {id(node): i for i, node in enumerate(graph.nodes)}
    out, other = max(candidates, key=lambda pair: order[id(pair[0].producer)])  # the later convolution
    return out.producer, add, other


def _residual_host(graph: Graph, out: Value, other: Value) -> bool:
    """Whether `out` comes from a convolution that can add `other` to its output: its only reader is the Add,
    nothing is fused into it yet, and `other` has its shape and dtype and is computed before it."""
    conv = out.producer
    if conv is None or conv.type != LayerType.CONVOLUTION or len(conv.inputs) > 3 or len(conv.outputs) != 1:
        return False
    if not conv.epilogue.empty or sole_reader(graph, out) is None:
        return False
    if other.dtype != out.dtype or not out.dtype.is_floating or other.shape is None or out.shape is None:
        return False
    if tuple(other.shape) != tuple(out.shape):
        return False
    if other.producer is None:
        return True
    nodes = graph.nodes
    return nodes.index(other.producer) < nodes.index(conv)


def add_residual_epilogue(graph: Graph, m: tuple[Node, Node, Value]) -> list[str]:
    conv, add, other = m
    while len(conv.inputs) < 3:
        graph.set_input(conv, len(conv.inputs), None)
    conv.epilogue = replace(conv.epilogue, residual=graph.append_input(conv, other))
    graph.take_over_output(conv, add)
    record_fusion(conv, add)
    return [add.name]


# ---------------------------------------------------------------------------------------------- activation
ACTIVATION_HOSTS = (LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.MATRIX_MULTIPLY, LayerType.ELEMENTWISE,
                    LayerType.SCALE, LayerType.NORMALIZATION, LayerType.RESIDUAL_NORMALIZATION)


def match_activation(graph: Graph, host: Node) -> tuple[Node, Node] | None:
    if host.epilogue.activation is not None or len(host.outputs) != 1 or not host.outputs[0].dtype.is_floating:
        return None
    activation = sole_reader(graph, host.outputs[0])
    if activation is None or activation.type != LayerType.ACTIVATION:
        return None
    return host, activation


def add_activation_epilogue(graph: Graph, m: tuple[Node, Node]) -> list[str]:
    host, activation = m
    p = activation.params
    host.epilogue = replace(host.epilogue, activation=Activation(p["activation_type"], p.get("alpha", 0.0),
                                                                 p.get("beta", 0.0)))
    graph.take_over_output(host, activation)
    record_fusion(host, activation)
    return [activation.name]


FUSION_RULES: tuple[FusionRule, ...] = (
    FusionRule("conv_scale_fusion", (LayerType.CONVOLUTION,), match_conv_scale, fold_scale_into_conv),
    FusionRule("matmul_bias_fusion", (LayerType.MATRIX_MULTIPLY,), match_matmul_bias, add_bias_operand),
    FusionRule("gelu_fusion", (LayerType.UNARY,), match_gelu, replace_with_gelu),
    FusionRule("shape_of_transpose", (LayerType.SHAPE,), match_shape_of_transpose, read_shape_before_transpose),
    FusionRule("attention_fusion", (LayerType.SOFTMAX,), match_attention, make_attention),
    FusionRule("masked_softmax_fusion", (LayerType.SOFTMAX,), match_masked_softmax, make_masked_softmax),
    FusionRule("residual_norm_fusion", (LayerType.NORMALIZATION,), match_residual_norm, make_residual_norm),
    FusionRule("conv_residual_fusion", (LayerType.ELEMENTWISE,), match_conv_residual, add_residual_epilogue),
    FusionRule("activation_fusion", ACTIVATION_HOSTS, match_activation, add_activation_epilogue),
    FusionRule("int8_fusion", (LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY), match_int8_layer, make_int8_layer),
    FusionRule("int8_residual", (LayerType.CONVOLUTION,), match_int8_residual, read_int8_residual),
    FusionRule("dq_commute", COMMUTING, match_dq_commute, commute_dq),
    FusionRule("q_commute", COMMUTING, match_q_commute, commute_q),
    FusionRule("int8_output", (LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY), match_int8_output,
               absorb_output_quantize),
    FusionRule("qdq_cancel", (LayerType.QUANTIZE,), match_qdq_cancel, cancel_qdq),
    FusionRule("int8_io", INT8_IO, match_int8_io, make_int8_io_layer),
)


def apply_rule(graph: Graph, rule: FusionRule) -> list[str]:
    """Apply one rule wherever it matches, until it matches nowhere; returns the fused-away node names."""
    fused: list[str] = []
    changed = True
    while changed:
        changed = False
        for node in graph.nodes_of(*rule.anchors):
            if node.graph is not graph:  # erased by an earlier rewrite of this sweep
                continue
            found = rule.match(graph, node)
            if found is not None:
                fused += rule.rewrite(graph, found)
                changed = True
    return fused


class FusionPass(Pass):
    """Every rule of the table, in order, repeated until none fires."""

    name = "fusion"
    requires = ("constant_folding",)

    def __init__(self, rules: tuple[FusionRule, ...] = FUSION_RULES):
        self.rules = rules

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        report: dict[str, list[str]] = {rule.name: [] for rule in self.rules}
        while True:
            progress = False
            for rule in self.rules:
                fused = apply_rule(graph, rule)
                report[rule.name] += fused
                progress = progress or bool(fused)
            if not progress:
                return report
