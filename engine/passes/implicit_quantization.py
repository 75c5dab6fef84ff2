"""Implicit quantization: dynamic ranges (calibration, a calibration cache, or ITensor.set_dynamic_range) become
Q/DQ nodes, so both INT8 paths end in the same INT8 layers (the int8_fusion rule, run again after this pass).

For each Convolution/MatMul with constant weights whose activation input has a range: the input gets a
QuantizeLinear→DequantizeLinear pair (scale amax/127, zero point 0), the weights are quantized at build time (one
scale per output channel, max |w| / 127) behind a DequantizeLinear, and, when its output has a range, is not a
graph output and feeds another layer that is quantized, a Q→DQ pair follows it for its readers (an output read
only by float layers stays float, as TensorRT keeps a tensor INT8 only where an INT8 layer reads it). An input
that already comes from a dequantized INT8 tensor is taken as it is.

A pointwise, pooling, concatenation or scale layer becomes INT8 only when the user asks (`layer.precision =
INT8`) and its inputs and output have ranges: they get Q→DQ pairs, and the int8_io rule (qdq_propagation.py) makes
the INT8 layer. Whether a requested INT8 layer got there is checked by the int8_precision_constraints pass.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType, from_numpy
from ..enums import LayerType, MatrixOperation
from ..ir import Graph, Node, Value
from .base import Pass, PassContext
from .qdq_propagation import INT8_IO


class ImplicitQuantization(Pass):
    name = "int8_calibrated_layers"
    requires = ("fusion",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        ranges = ctx.dynamic_ranges
        quantized: list[str] = []
        if ranges is None:
            return {self.name: quantized}
        # One Q→DQ pair per tensor, shared by all its quantized readers (ResNet's block input feeds two
        # convolutions): a Q with one reader is what the q_commute rule moves before a MaxPool or Shuffle, so that
        # the layer before it writes INT8.
        dequantized: dict[str, Value] = {}
        for node in graph.nodes_of(LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY):
            x = node.inputs[0]
            if not _quantizable(node, ctx):
                continue
            if not _is_dequantized(x):
                amax = ranges.get(x.name)
                if amax is None:
                    continue
                if x.name not in dequantized:
                    dequantized[x.name] = _quantize_dequantize(graph, x, amax, before=node)
                graph.set_input(node, 0, dequantized[x.name])
            _quantize_weights(graph, node, _weight_axis(node))
            out = node.outputs[0]
            quantized_reader = any(_quantizable(reader, ctx) or _honoured_int8(reader, ctx) for reader in out.consumers)
            amax = ranges.get(out.name) if quantized_reader else None
            if amax is not None and out not in graph.outputs:
                _requantize_output(graph, out, amax)
            quantized.append(node.name)
        for node in graph.nodes_of(*INT8_IO):
            if _honoured_int8(node, ctx) and _wrap_in_qdq(graph, node, ranges):
                quantized.append(node.name)
        return {self.name: quantized}


def requested_int8(node: Node) -> bool:
    """The user set the layer's precision to INT8 (a rule that made it INT8 also leaves params['int8'])."""
    return node.precision_is_set and node.precision == DataType.INT8 and "int8" not in node.params


def _honoured_int8(node: Node, ctx: PassContext) -> bool:
    """An INT8 request counts under OBEY/PREFER_PRECISION_CONSTRAINTS only, as FLOAT/HALF requests do."""
    return requested_int8(node) and ctx.constraints in ("obey", "prefer")


def _data_inputs(node: Node) -> list[tuple[int, Value]]:
    """Inputs that carry activations (float constants such as a Scale's shift are read as they are)."""
    return [(i, v) for i, v in enumerate(node.inputs) if v is not None and v.constant is None]


def _wrap_in_qdq(graph: Graph, node: Node, ranges) -> bool:
    """Q→DQ on every activation input and on the output, when each has a range: the int8_io rule then makes the
    node INT8. False (nothing changed) when something is missing."""
    out = node.outputs[0] if len(node.outputs) == 1 else None
    inputs = _data_inputs(node)
    if out is None or out.dtype != DataType.FLOAT or out in graph.outputs or not out.uses or not inputs:
        return False
    if any(v.dtype != DataType.FLOAT for _, v in inputs):
        return False
    needed = [v for _, v in inputs if not _is_dequantized(v)] + [out]
    amax = {v.name: ranges.get(v.name) for v in needed}
    if any(a is None for a in amax.values()):
        return False
    for position, value in inputs:
        if not _is_dequantized(value):
            graph.set_input(node, position, _quantize_dequantize(graph, value, amax[value.name], before=node))
    _requantize_output(graph, out, amax[out.name])
    return True


def _requantize_output(graph: Graph, out: Value, amax: float) -> None:
    readers = list(out.uses)
    requantized = _quantize_dequantize(graph, out, amax, before=readers[0][0])
    for reader, position in readers:
        graph.set_input(reader, position, requantized)


def _quantizable(node: Node, ctx: PassContext) -> bool:
    """A Convolution/MatMul with constant float weights and a float input, not kept in float by the user."""
    if node.type not in (LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY) or _weight_axis(node) is None:
        return False
    return node.inputs[0].dtype == DataType.FLOAT and not _kept_in_float(node, ctx)


def _kept_in_float(node: Node, ctx: PassContext) -> bool:
    """A layer whose precision the user set to FLOAT, HALF or BF16 under OBEY/PREFER_PRECISION_CONSTRAINTS stays out
    of INT8 (as in TensorRT; without the constraint flags the precision pass warns that the setting is ignored)."""
    return node.precision_is_set and node.precision in (DataType.FLOAT, DataType.HALF, DataType.BF16) and \
        ctx.constraints in ("obey", "prefer")


def _weight_axis(node: Node) -> int | None:
    """The axis of the output channels in the constant weights, or None when the node cannot be INT8."""
    w = node.inputs[1] if len(node.inputs) > 1 else None
    if w is None or w.constant is None or w.dtype != DataType.FLOAT:
        return None
    if node.type == LayerType.CONVOLUTION:
        return 0
    p = node.params
    plain = all(MatrixOperation(p[k]) == MatrixOperation.NONE for k in ("op0", "op1"))
    return 1 if plain and w.constant.ndim == 2 and p.get("alpha", 1.0) == 1.0 else None


def _is_dequantized(value: Value) -> bool:
    node = value.producer
    return node is not None and node.type == LayerType.DEQUANTIZE and node.inputs[0].dtype == DataType.INT8


def _constant(graph: Graph, array: np.ndarray, name: str, before: Node) -> Value:
    node = graph.add_node(LayerType.CONSTANT, [], [(name, from_numpy(array.dtype), array.shape)],
                          {"weights": array, "shape": list(array.shape)}, name=name, before=before)
    return node.outputs[0]


def _quantize_dequantize(graph: Graph, value: Value, amax: float, before: Node) -> Value:
    scale = _constant(graph, np.array(amax / 127.0, np.float32), f"{value.name}#scale", before)
    zero = _constant(graph, np.array(0, np.int8), f"{value.name}#zero", before)
    q = graph.add_node(LayerType.QUANTIZE, [value, scale, zero], [(f"{value.name}#int8", DataType.INT8, value.shape)],
                       {"output_type": DataType.INT8}, name=f"{value.name}#quantize", before=before)
    dq = graph.add_node(LayerType.DEQUANTIZE, [q.outputs[0], scale, zero],
                        [(f"{value.name}#dequantized", DataType.FLOAT, value.shape)], {},
                        name=f"{value.name}#dequantize", before=before)
    return dq.outputs[0]


def _quantize_weights(graph: Graph, node: Node, axis: int) -> None:
    weights = node.inputs[1].constant.astype(np.float64)
    reduce = tuple(d for d in range(weights.ndim) if d != axis)
    amax = np.max(np.abs(weights), axis=reduce)
    scales = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * weights.ndim
    shape[axis] = -1
    quantized = np.clip(np.rint(weights / scales.reshape(shape)), -127, 127).astype(np.int8)
    name = f"{node.name}#weights"
    source = _constant(graph, quantized, f"{name}_int8", node)
    scale = _constant(graph, scales, f"{name}_scale", node)
    zero = _constant(graph, np.zeros(scales.shape, np.int8), f"{name}_zero", node)
    dq = graph.add_node(LayerType.DEQUANTIZE, [source, scale, zero],
                        [(f"{name}_dequantized", DataType.FLOAT, weights.shape)], {"axis": axis},
                        name=f"{name}#dequantize", before=node)
    graph.set_input(node, 1, dq.outputs[0])
