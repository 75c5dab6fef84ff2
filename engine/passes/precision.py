"""Precision assignment and reformat insertion.

FP32 by default. With BuilderFlag.FP16 every floating node runs in HALF: its float32 values become float16 (and
its kernels accumulate in float32); with BuilderFlag.BF16 alone they become bfloat16 the same way (with both
flags HALF is the default, and BF16 stays available per layer). A layer precision the user set (FLOAT, HALF or BF16)
is honoured under OBEY/PREFER_PRECISION_CONSTRAINTS (both are exact here: every tactic supports every float
precision) and ignored with a warning otherwise, as in TensorRT. Where precisions meet, REFORMAT nodes convert;
constant weights are converted at build time instead. Graph inputs and outputs keep their declared types (and the
outputs their names).

A strongly typed network (NetworkDefinitionCreationFlag.STRONGLY_TYPED) is not converted at all: each node runs in
the float type its own tensors have (an ONNX model's float16 nodes in HALF, its float32 nodes in FLOAT), and the
builder refuses the flags and layer precisions that would change that (builder.py).
"""
from __future__ import annotations

from ..dtypes import DataType, nptype
from ..enums import LayerType
from ..ir import Graph, Node, Value
from .base import Pass, PassContext

FLOATS = (DataType.FLOAT, DataType.HALF, DataType.BF16)
UNTYPED_LAYERS = (LayerType.CONSTANT, LayerType.SHAPE, LayerType.CAST, LayerType.REFORMAT)


class PrecisionAssignment(Pass):
    """Reports the reformat nodes it inserted."""

    name = "reformats_inserted"
    requires = ("fusion",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        if ctx.strongly_typed:
            for node in graph.nodes:
                node.precision = _own_type(node) or node.precision
            return {self.name: []}
        targets = {id(node): _target(node, ctx) for node in graph.nodes}
        if not (ctx.fp16 or ctx.bf16) and all(t in (None, DataType.FLOAT) for t in targets.values()):
            for node in graph.nodes:  # an ignored layer precision must not stay on the node as its label
                if targets[id(node)] is not None:
                    node.precision = targets[id(node)]
            return {self.name: []}
        converter = _Converter(graph)
        declared = {id(v): v.dtype for v in graph.values()}
        for node in list(graph.nodes):
            target = targets.get(id(node))
            if target is None:
                continue
            node.precision = target
            for position, value in enumerate(node.inputs):
                if value is not None and declared.get(id(value)) == DataType.FLOAT and value.dtype != target:
                    graph.set_input(node, position, converter.convert(value, target, node))
            for value in node.outputs:
                if declared[id(value)] == DataType.FLOAT:
                    value.dtype = target
        for value in list(graph.outputs):  # graph outputs keep their declared FLOAT type and their name
            if declared.get(id(value)) == DataType.FLOAT and value.dtype != DataType.FLOAT:
                name = value.name
                graph.rename(value, graph.fresh_name(f"{name}:{value.dtype.value.lower()}"))
                fixed = converter.convert(value, DataType.FLOAT, None)
                graph.replace_output(value, fixed)  # readers inside the graph keep the HALF value
                graph.rename(fixed, name)
        return {self.name: converter.reformats}


def _target(node: Node, ctx: PassContext) -> DataType | None:
    """The precision a node runs in, None for nodes precision does not apply to."""
    floating = any(v.dtype == DataType.FLOAT for v in node.outputs) or \
        any(v is not None and v.dtype == DataType.FLOAT for v in node.inputs)
    if node.type in UNTYPED_LAYERS or not floating or node.precision == DataType.INT8 or _typed_by_params(node):
        return None  # an INT8 layer's float operands (bias, residual) are read as they are
    if node.type in (LayerType.CONDITIONAL, LayerType.LOOP):
        return DataType.FLOAT  # their subgraphs were built in the declared types; reformats feed them FLOAT
    if node.precision_is_set and node.precision in FLOATS:
        if ctx.constraints in ("obey", "prefer"):
            return node.precision
        ctx.warn(f"layer '{node.name}': precision {node.precision.value} is ignored without "
                 "OBEY_PRECISION_CONSTRAINTS or PREFER_PRECISION_CONSTRAINTS")
    return DataType.HALF if ctx.fp16 else DataType.BF16 if ctx.bf16 else DataType.FLOAT


def _typed_by_params(node: Node) -> bool:
    """ConstantOfShape and EyeLike (FILL) make the type their params name, whatever precision the layer runs in."""
    return node.type == LayerType.FILL and "dtype" in node.params


def _own_type(node: Node) -> DataType | None:
    """A strongly typed node's precision: the float type of its outputs, else of its inputs (a Reduce to an
    integer index reads floats); None for nodes precision does not apply to."""
    if node.type in UNTYPED_LAYERS or node.precision == DataType.INT8:
        return None
    for values in (node.outputs, node.inputs):
        for value in values:
            if value is not None and value.dtype in FLOATS:
                return value.dtype
    return None


class _Converter:
    """One converted copy per (value, type): a converted constant, or a REFORMAT node after the producer."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.copies: dict[tuple[int, DataType], Value] = {}
        self.reformats: list[str] = []

    def convert(self, value: Value, dtype: DataType, reader: Node | None) -> Value:
        key = (id(value), dtype)
        if key in self.copies:
            return self.copies[key]
        graph, producer = self.graph, value.producer
        suffix = dtype.value.lower()
        if producer is not None and producer.type == LayerType.CONSTANT:
            weights = producer.params["weights"].astype(nptype(dtype))
            node = graph.add_node(LayerType.CONSTANT, [], [(f"{value.name}:{suffix}", dtype, weights.shape)],
                                  {"weights": weights, "shape": list(weights.shape)},
                                  name=f"{producer.name}:{dtype.value.lower()}", after=producer, precision=dtype)
            node.refit_name = producer.refit_name  # a refit converts the new weights the same way
        else:
            node = graph.add_node(LayerType.REFORMAT, [value], [(f"{value.name}:{suffix}", dtype, value.shape)],
                                  {"to_type": dtype}, name=f"Reformat({value.name})->{dtype.value}",
                                  before=reader, precision=dtype)
            self.reformats.append(node.name)
        self.copies[key] = node.outputs[0]
        return node.outputs[0]
