"""Trilu layer; ONNX Trilu.

Inputs (x, k?) where k is a scalar diagonal offset (default 0, may be a runtime value); param `upper` keeps the
upper triangle (j - i >= k) when true, the lower one (j - i <= k) when false, over the last two dims.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError
from .base import onnx_op, register_layer, same_as_input
from .shape_values import host_scalar


def _compute_trilu(layer, inputs, xp):
    x = inputs[0]
    if x.ndim < 2:
        raise EngineError(f"Trilu needs a tensor of rank >= 2, got shape {x.shape}")
    k = int(host_scalar(inputs[1])) if len(inputs) > 1 and inputs[1] is not None else 0
    return [xp.triu(x, k) if layer.params["upper"] else xp.tril(x, k)]


register_layer(LayerType.TRILU, same_as_input(0), _compute_trilu, host_operands=(1,))


@onnx_op("Trilu")
def import_trilu(ctx):
    inputs = [ctx.input(0)] + ([ctx.input(1)] if ctx.input(1) is not None else [])
    params = {"upper": bool(ctx.attr("upper", 1))}
    return [ctx.network.add_layer(LayerType.TRILU, inputs, params, name=ctx.layer_name()).get_output(0)]
