"""Rewrites that fold a following op into a layer's constant weights: BatchNormalization and per-channel
Mul/Add into Conv, per-column Mul (and Add, for Gemm) into MatMul/Gemm, and a zero Pad into Conv/AveragePool
padding. Weights are recomputed in float32, so outputs move by the one rounding of the folded weights (as in
onnxruntime's own fusions); the Pad folding is exact.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from .rewrite_tools import constant_value, single_reader


def fold_batchnorm_into_conv(graph: gs.Graph) -> int:
    """`Conv → BatchNormalization` (inference) becomes one Conv with scaled weights and a shifted bias.

    The folded parameters are computed in float32 in the order onnxruntime's own Conv+BN fusion uses, so the
    result equals onnxruntime's optimized original up to its kernels' summation order (a few float32 ulps)."""
    fused = 0
    for bn in list(graph.nodes):
        if bn.op != "BatchNormalization" or len(bn.outputs) != 1 or bn.attrs.get("training_mode"):
            continue
        source = bn.inputs[0]
        conv = source.inputs[0] if source.inputs else None
        if conv is None or conv.op != "Conv" or not single_reader(graph, source) or len(conv.outputs) != 1:
            continue
        params = [constant_value(t) for t in bn.inputs[1:5]]
        weight = constant_value(conv.inputs[1])
        bias = constant_value(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2].name else None
        if weight is None or any(p is None for p in params) or weight.dtype != np.float32 \
                or (len(conv.inputs) > 2 and conv.inputs[2].name and bias is None):
            continue
        gamma, beta, mean, var = (np.asarray(p, np.float32).reshape(-1) for p in params)
        if any(p.size != weight.shape[0] for p in (gamma, beta, mean, var)):
            continue
        alpha = gamma / np.sqrt(var + np.float32(bn.attrs.get("epsilon", 1e-5)))
        new_weight = (weight * alpha.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(np.float32)
        new_bias = ((bias.astype(np.float32) - mean) * alpha + beta if bias is not None
                    else beta - mean * alpha).astype(np.float32)
        _fold_into_conv(conv, bn, "bn", new_weight, new_bias)
        fused += 1
    return fused


def fold_affine_into_conv(graph: gs.Graph) -> int:
    """`Conv → Mul by a per-channel constant` and `Conv → Add of one` fold into the Conv's weights and bias
    (computed in float32: one rounding of the folded weights, as BatchNormalization folding)."""
    folded = 0
    for node in list(graph.nodes):
        if node.op not in ("Mul", "Add") or len(node.inputs) != 2 or len(node.outputs) != 1:
            continue
        for data, operand in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
            conv = data.inputs[0] if data.inputs else None
            value = constant_value(operand)
            if conv is None or conv.op != "Conv" or value is None or not single_reader(graph, data):
                continue
            weight = constant_value(conv.inputs[1])
            bias = constant_value(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2].name else None
            if weight is None or weight.dtype != np.float32 or value.dtype != np.float32 \
                    or (len(conv.inputs) > 2 and conv.inputs[2].name and bias is None):
                continue
            channels = _per_channel(value, weight.shape[0], weight.ndim)
            if channels is None:
                continue
            bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32)
            if node.op == "Mul":
                weight = (weight * channels.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(np.float32)
                bias = (bias * channels).astype(np.float32)
            else:
                bias = (bias + channels).astype(np.float32)
            _fold_into_conv(conv, node, node.op.lower(), weight, bias)
            folded += 1
            break
    return folded


def _fold_into_conv(conv: gs.Node, folded: gs.Node, tag: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """The Conv gets the folded weights and bias as new constants and takes over the folded node's output."""
    base = conv.name or conv.outputs[0].name
    while len(conv.inputs) > 1:
        conv.inputs.pop()
    conv.inputs.extend([gs.Constant(f"{base}_{tag}_folded_weight", weight),
                        gs.Constant(f"{base}_{tag}_folded_bias", bias)])
    out = folded.outputs[0]
    folded.outputs.clear()
    conv.outputs[0] = out


def _per_channel(value: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """`value` as one number per output channel of a rank-`rank` Conv output, when it broadcasts only along the
    channel axis (shape [C,1,..], [1,C,1,..], a scalar or [1]); else None."""
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    if shape[0] != 1 or any(d != 1 for d in shape[2:]) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)


def fold_scale_into_matmul(graph: gs.Graph) -> int:
    """`MatMul(x, W) → Mul by a per-column constant` (W constant, 2-D) becomes `MatMul(x, W * scale)`, and
    `Gemm → Mul`/`Gemm → Add` of a per-column constant fold into its B and C (rounded once, in float32)."""
    folded = 0
    for node in list(graph.nodes):
        if node.op not in ("Mul", "Add") or len(node.inputs) != 2 or len(node.outputs) != 1:
            continue
        for data, operand in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
            producer = data.inputs[0] if data.inputs else None
            value = constant_value(operand)
            if producer is None or producer.op not in ("MatMul", "Gemm") or value is None \
                    or value.dtype != np.float32 or not single_reader(graph, data) or data.shape is None:
                continue
            if _fold_columns(producer, node.op, value, len(data.shape)):
                out = node.outputs[0]
                node.outputs.clear()
                producer.outputs[0] = out
                folded += 1
                break
    return folded


def _fold_columns(producer: gs.Node, op: str, value: np.ndarray, rank: int) -> bool:
    weight = constant_value(producer.inputs[1])
    if weight is None or weight.dtype != np.float32 or weight.ndim != 2 or value.ndim > rank \
            or any(d != 1 for d in value.shape[:-1]):
        return False
    transposed = producer.op == "Gemm" and producer.attrs.get("transB", 0)
    columns = weight.shape[0] if transposed else weight.shape[1]
    if value.shape and value.shape[-1] not in (1, columns):
        return False
    scale = np.broadcast_to(value.reshape(-1), (columns,)).astype(np.float32)
    base = producer.name or producer.outputs[0].name
    if producer.op == "MatMul":
        if op != "Mul":
            return False
        producer.inputs[1] = gs.Constant(f"{base}_scaled_weight", (weight * scale).astype(np.float32))
        return True
    if producer.attrs.get("transA", 0) not in (0, 1) or rank != 2:
        return False
    bias = constant_value(producer.inputs[2]) if len(producer.inputs) > 2 and producer.inputs[2].name else None
    if len(producer.inputs) > 2 and producer.inputs[2].name and (bias is None or bias.dtype != np.float32):
        return False
    bias = np.zeros(columns, np.float32) if bias is None else bias.astype(np.float32)
    beta = np.float32(producer.attrs.get("beta", 1.0))
    if bias.ndim == 2 and bias.shape[0] != 1:
        return False
    bias = np.broadcast_to(bias.reshape(-1), (columns,)) * beta
    if op == "Mul":
        axis_scale = scale.reshape(-1, 1) if transposed else scale.reshape(1, -1)
        producer.inputs[1] = gs.Constant(f"{base}_scaled_weight", (weight * axis_scale).astype(np.float32))
        bias = bias * scale
    else:
        bias = bias + scale
    while len(producer.inputs) > 2:
        producer.inputs.pop()
    producer.inputs.append(gs.Constant(f"{base}_{op.lower()}_folded_bias", bias.astype(np.float32)))
    producer.attrs["beta"] = 1.0
    return True


def fold_pad_into_conv(graph: gs.Graph) -> int:
    """A zero constant Pad of spatial axes only, read by a Conv (or an AveragePool that counts padding), becomes
    the reader's own padding."""
    folded = 0
    for node in list(graph.nodes):
        if node.op not in ("Conv", "AveragePool") or not node.inputs or node.attrs.get("auto_pad", "NOTSET") \
                not in ("NOTSET", b"NOTSET"):
            continue
        source = node.inputs[0]
        pad = source.inputs[0] if source.inputs else None
        if pad is None or pad.op != "Pad" or not single_reader(graph, source):
            continue
        spatial = _spatial_pads(pad, source)
        if spatial is None:
            continue
        rank = len(spatial) // 2
        own = list(node.attrs.get("pads", [0] * (2 * rank)))
        if node.op == "AveragePool" and (node.attrs.get("ceil_mode") or (any(own) and
                                                                        not node.attrs.get("count_include_pad"))):
            continue
        node.attrs["pads"] = [a + b for a, b in zip(own, spatial)]
        if node.op == "AveragePool":
            node.attrs["count_include_pad"] = 1
        node.inputs[0] = pad.inputs[0]
        pad.outputs.clear()
        folded += 1
    return folded


def _spatial_pads(pad: gs.Node, padded: gs.Tensor) -> list[int] | None:
    """The Pad's begin/end pads of the axes after N and C, when it only adds zeros there; else None."""
    if pad.attrs.get("mode", "constant") not in ("constant", b"constant") or len(pad.inputs) > 3:
        return None
    pads = constant_value(pad.inputs[1]) if len(pad.inputs) > 1 else None
    value = constant_value(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2].name else None
    if pads is None or (len(pad.inputs) > 2 and pad.inputs[2].name and (value is None or np.any(value != 0))):
        return None
    pads = [int(p) for p in pads.reshape(-1)]
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if rank < 3 or any(p < 0 for p in pads) or begins[:2] != [0, 0] or ends[:2] != [0, 0]:
        return None
    return begins[2:] + ends[2:]
