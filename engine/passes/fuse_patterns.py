"""Pattern fusions that exporters leave behind as chains of small layers (each chain becomes one kernel or none).

- MatMul + Add(constant bias along the last axis) → the MatMul's own bias input (beta = 1), which the GEMM
  tactics add in their epilogue; PyTorch exports every nn.Linear on a 3-D input this way.
- The erf form of GELU, x * 0.5 * (1 + erf(x / sqrt(2))) in any of its association orders, → one ACTIVATION
  GELU_ERF layer, which activation fusion then folds into the producing MatMul.
- Convolution + Add(same-shape tensor) → the convolution adds that tensor to its output (`fused_residual`, the
  residual becomes its last input), before the activation that activation fusion then folds in too: a ResNet
  block's conv → add → ReLU becomes one layer, and on the GPU one epilogue pass.

A tensor the user marked as an output is never fused away.
"""
from __future__ import annotations

import math

import numpy as np

from ..enums import ActivationType, ElementWiseOperation, LayerType, UnaryOperation
from ..network import Layer, NetworkDefinition, Tensor
from .fuse import _const, _record, _single_consumer, _take_outputs

_SQRT2 = math.sqrt(2.0)


def fuse_matmul_bias(network: NetworkDefinition) -> list[str]:
    fused = []
    users = network.consumers()
    for matmul in list(network.layers):
        if matmul.type != LayerType.MATRIX_MULTIPLY or matmul.params.get("fused_activation"):
            continue
        if len(matmul.inputs) > 2 and matmul.inputs[2] is not None:
            continue
        add = _single_consumer(users, matmul.outputs[0])
        if not _is_elementwise(add, ElementWiseOperation.SUM) or add.inputs[0] is add.inputs[1]:
            continue
        bias = add.inputs[1] if add.inputs[0] is matmul.outputs[0] else add.inputs[0]
        if not _is_row_bias(bias, matmul.outputs[0]):
            continue
        constant = bias.producer
        if network.layers.index(constant) > network.layers.index(matmul):  # producers must precede users
            network.layers.remove(constant)
            network.layers.insert(network.layers.index(matmul), constant)
        while len(matmul.inputs) < 3:
            matmul.inputs.append(None)
        matmul.inputs[2] = bias
        matmul.params["beta"] = 1.0
        _take_outputs(network, matmul, add)
        _record(matmul, add)
        fused.append(add.name)
        users = network.consumers()
    return fused


def _is_elementwise(layer: Layer | None, op: ElementWiseOperation) -> bool:
    return layer is not None and layer.type == LayerType.ELEMENTWISE and ElementWiseOperation(layer.params["op"]) == op


def _is_row_bias(bias: Tensor, product: Tensor) -> bool:
    """A constant of the product's dtype holding one value per output column (or one value), broadcasting
    without enlarging the product."""
    value = _const(bias)
    shape = product.shape
    if value is None or bias.dtype != product.dtype or shape is None or len(shape) < 2 or value.ndim > len(shape):
        return False
    leading, last = value.shape[:-1] if value.ndim else (), value.shape[-1] if value.ndim else 1
    return all(d == 1 for d in leading) and (last == 1 or last == shape[-1] > 0)


def _scalar(tensor: Tensor | None) -> float | None:
    value = _const(tensor)
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    return float(value.reshape(-1)[0])


def _other(layer: Layer, tensor: Tensor) -> Tensor | None:
    """The input of a two-input layer that is not `tensor` (None if both or neither are)."""
    a, b = layer.inputs[0], layer.inputs[1]
    if (a is tensor) == (b is tensor):
        return None
    return b if a is tensor else a


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-3 * abs(target)


def _gelu_input(scale: Layer | None) -> Tensor | None:
    """x when `scale` computes x / sqrt(2) or x * (1 / sqrt(2))."""
    if _is_elementwise(scale, ElementWiseOperation.DIV) and _close(_scalar(scale.inputs[1]), _SQRT2):
        return scale.inputs[0]
    if _is_elementwise(scale, ElementWiseOperation.PROD):
        for x, factor in ((scale.inputs[0], scale.inputs[1]), (scale.inputs[1], scale.inputs[0])):
            if _close(_scalar(factor), 1 / _SQRT2) and _scalar(x) is None:
                return x
    return None


def _gelu_chain(erf: Layer, users) -> tuple[Tensor, list[Layer]] | None:
    """(x, the chain's layers in order, the last producing the result) when `erf` sits in an erf-GELU."""
    scale = erf.inputs[0].producer
    x = _gelu_input(scale)
    if x is None or _single_consumer(users, erf.inputs[0]) is not erf:
        return None
    one_plus = _single_consumer(users, erf.outputs[0])
    if not _is_elementwise(one_plus, ElementWiseOperation.SUM) or \
            not _close(_scalar(_other(one_plus, erf.outputs[0])), 1.0):
        return None
    chain = [scale, erf, one_plus]
    first = _single_consumer(users, one_plus.outputs[0])
    if not _is_elementwise(first, ElementWiseOperation.PROD):
        return None
    partner = _other(first, one_plus.outputs[0])
    if partner is x:                                    # (x * (1 + erf)) * 0.5
        last = _single_consumer(users, first.outputs[0])
        if not _is_elementwise(last, ElementWiseOperation.PROD) or \
                not _close(_scalar(_other(last, first.outputs[0])), 0.5):
            return None
        return x, chain + [first, last]
    if _close(_scalar(partner), 0.5):                   # x * ((1 + erf) * 0.5)
        last = _single_consumer(users, first.outputs[0])
        if not _is_elementwise(last, ElementWiseOperation.PROD) or _other(last, first.outputs[0]) is not x:
            return None
        return x, chain + [first, last]
    half = partner.producer if partner is not None else None      # (x * 0.5) * (1 + erf)
    if _is_elementwise(half, ElementWiseOperation.PROD) and _other(half, x) is not None and \
            _close(_scalar(_other(half, x)), 0.5) and _single_consumer(users, partner) is first:
        return x, [half] + chain + [first]
    return None


def fuse_gelu(network: NetworkDefinition) -> list[str]:
    fused = []
    users = network.consumers()
    for erf in list(network.layers):
        if erf.type != LayerType.UNARY or UnaryOperation(erf.params["op"]) != UnaryOperation.ERF:
            continue
        found = _gelu_chain(erf, users)
        if found is None or not found[0].dtype.is_floating:
            continue
        x, chain = found
        if any(t.is_network_output for layer in chain[:-1] for t in layer.outputs):
            continue
        gelu = network.add_activation(x, ActivationType.GELU_ERF, name=f"{erf.name}.gelu")
        network.layers.remove(gelu)
        network.layers.insert(network.layers.index(chain[-1]), gelu)
        _take_outputs(network, gelu, chain[-1])
        gelu.metadata["fused_from"] = [layer.name for layer in chain]
        network.remove_layers({id(layer) for layer in chain[:-1]})
        fused.extend(layer.name for layer in chain)
        users = network.consumers()
    return fused


def fuse_conv_residual(network: NetworkDefinition) -> list[str]:
    fused = []
    users = network.consumers()
    order = {id(layer): index for index, layer in enumerate(network.layers)}
    for add in list(network.layers):
        if not _is_elementwise(add, ElementWiseOperation.SUM) or add.params.get("fused_activation"):
            continue
        a, b = add.inputs[0], add.inputs[1]
        candidates = [(conv_out, other) for conv_out, other in ((a, b), (b, a))
                      if conv_out is not other and _residual_host(conv_out, other, users, order)]
        if not candidates:
            continue
        conv_out, other = max(candidates, key=lambda pair: order[id(pair[0].producer)])  # the later convolution
        conv = conv_out.producer
        while len(conv.inputs) < 3:
            conv.inputs.append(None)
        conv.inputs.append(other)
        conv.params["fused_residual"] = True
        _take_outputs(network, conv, add)
        _record(conv, add)
        fused.append(add.name)
        users = network.consumers()
        order = {id(layer): index for index, layer in enumerate(network.layers)}
    return fused


def _residual_host(conv_out: Tensor, other: Tensor, users, order) -> bool:
    """Whether `conv_out` comes from a convolution that can add `other` to its output: its only reader is the
    Add, nothing is fused into it yet, and `other` has its shape and dtype and is computed before it."""
    conv = conv_out.producer
    if conv is None or conv.type != LayerType.CONVOLUTION or len(conv.inputs) > 3 or len(conv.outputs) != 1:
        return False
    if conv.params.get("fused_activation") or conv.params.get("fused_residual"):
        return False
    if len(users.get(id(conv_out), [])) != 1:
        return False
    if conv_out.is_network_output or other.dtype != conv_out.dtype or not conv_out.dtype.is_floating:
        return False
    if other.shape is None or conv_out.shape is None or tuple(other.shape) != tuple(conv_out.shape):
        return False
    return other.producer is None or order.get(id(other.producer), len(order)) < order[id(conv)]
