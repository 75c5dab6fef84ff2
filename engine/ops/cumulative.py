"""Cumulative layer (TensorRT ICumulativeLayer); ONNX CumSum.

Inputs (x, axis) where axis is a 0-D/1-element int tensor (it may be a runtime value: the output shape does
not depend on it). Params `op` ("SUM"), `exclusive` (each output leaves out its own element) and `reverse`
(accumulate from the end). Sums accumulate in the input dtype, as ONNX specifies.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import normalize_axis, onnx_op, register_layer, same_as_input
from .shape_values import host_scalar


def _compute_cumulative(layer, inputs, xp):
    x = inputs[0]
    if layer.params["op"] != "SUM":
        raise EngineError(f"unknown cumulative op {layer.params['op']!r}")
    axis = normalize_axis(int(host_scalar(inputs[1])), x.ndim, "cumsum axis")
    if layer.params["reverse"]:
        x = xp.flip(x, axis)
    out = xp.cumsum(x, axis=axis, dtype=x.dtype)
    if layer.params["exclusive"]:
        zeros = xp.zeros_like(xp.take(out, xp.arange(min(1, x.shape[axis])), axis=axis))
        head = (slice(None),) * axis + (slice(0, max(x.shape[axis] - 1, 0)),)
        out = xp.concatenate([zeros, out[head]], axis=axis)
    if layer.params["reverse"]:
        out = xp.flip(out, axis)
    return [out]


register_layer(LayerType.CUMULATIVE, same_as_input(0), _compute_cumulative, host_operands=(1,))


@onnx_op("CumSum")
def import_cumsum(ctx):
    params = {"op": "SUM", "exclusive": bool(ctx.attr("exclusive", 0)), "reverse": bool(ctx.attr("reverse", 0))}
    return [ctx.network.add_layer(LayerType.CUMULATIVE, [ctx.input(0), ctx.input(1)], params,
                                  name=ctx.layer_name()).get_output(0)]
