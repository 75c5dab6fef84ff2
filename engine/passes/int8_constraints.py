"""INT8 precision constraints: what happens to a layer whose precision the user set to INT8 and that no rule made
an INT8 layer (no Q/DQ or dynamic range reaches it, or its type has no INT8 implementation).

As TensorRT does: under OBEY_PRECISION_CONSTRAINTS that is a build error naming the layer and what is missing;
under PREFER_PRECISION_CONSTRAINTS a warning, and the layer runs in the build's float precision; without either
flag the setting is ignored with a warning. Runs after the fusion rules, before precision assignment (which then
treats the layer as any float layer).
"""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import BuildError
from ..ir import Graph, Node
from .base import Pass, PassContext
from .implicit_quantization import requested_int8
from .qdq_propagation import INT8_IO

INT8_CAPABLE = (LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY, *INT8_IO)


class Int8PrecisionConstraints(Pass):
    """Reports the layers whose INT8 preference fell back to float (PREFER_PRECISION_CONSTRAINTS)."""

    name = "int8_precision_fallbacks"
    requires = ("fusion",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        fallbacks = []
        for node in graph.nodes:
            if not requested_int8(node):
                continue
            if ctx.constraints == "none":
                ctx.warn(f"layer '{node.name}': precision INT8 is ignored without OBEY_PRECISION_CONSTRAINTS or "
                         "PREFER_PRECISION_CONSTRAINTS")
                node.precision, node.precision_is_set = DataType.FLOAT, False
                continue
            why = _why_not_int8(graph, node, ctx)
            if ctx.constraints == "obey":
                raise BuildError(f"layer '{node.name}' ({node.type.value}): precision INT8 is required "
                                 f"(OBEY_PRECISION_CONSTRAINTS) but it cannot run in INT8: {why}")
            ctx.warn(f"layer '{node.name}': precision INT8 preferred (PREFER_PRECISION_CONSTRAINTS) but it cannot "
                     f"run in INT8 ({why}); it runs in float")
            node.precision, node.precision_is_set = DataType.FLOAT, False
            fallbacks.append(node.name)
        return {self.name: fallbacks}


def _why_not_int8(graph: Graph, node: Node, ctx: PassContext) -> str:
    if node.type not in INT8_CAPABLE:
        return f"{node.type.value} layers have no INT8 implementation"
    if ctx.dynamic_ranges is None and not any(n.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE)
                                              for n in graph.nodes):
        return "INT8 is not enabled (BuilderFlag.INT8 with a calibrator, a calibration cache or dynamic ranges)"
    unranged = [v.name for v in [*node.inputs, *node.outputs] if v is not None and v.constant is None and
                v.dtype == DataType.FLOAT and ctx.dynamic_ranges is not None and
                ctx.dynamic_ranges.get(v.name) is None]
    if unranged:
        return "no dynamic range for " + ", ".join(f"'{name}'" for name in unranged)
    if any(v in graph.outputs for v in node.outputs) and node.type in INT8_IO:
        return "its output is a network output, which stays float"
    return "its inputs and output are not INT8 tensors with one scale and zero point 0 (Q/DQ nodes around it)"
