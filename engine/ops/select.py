"""Select layers (LayerType.SELECT, `network.add_select(condition, then, else)`): condition ? then : else with
NumPy broadcasting over all three inputs. ONNX: Where."""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError
from .base import broadcast_shapes, onnx_op, register_layer


def _infer(layer, inputs):
    condition, then_info, else_info = inputs
    if condition.dtype != DataType.BOOL:
        raise EngineError(f"the condition must be BOOL, got {condition.dtype.value}")
    if then_info.dtype != else_info.dtype:
        raise EngineError(f"then ({then_info.dtype.value}) and else ({else_info.dtype.value}) data types differ")
    return [(broadcast_shapes(condition.shape, then_info.shape, else_info.shape), then_info.dtype)]


def _compute(layer, inputs, xp):
    condition, then_value, else_value = (xp.asarray(x) for x in inputs)
    return [xp.where(condition, then_value, else_value).astype(then_value.dtype, copy=False)]


register_layer(LayerType.SELECT, _infer, _compute)


@onnx_op("Where", min_opset=9)
def import_where(ctx):
    layer = ctx.network.add_select(ctx.input(0), ctx.input(1), ctx.input(2), name=ctx.layer_name())
    return [layer.get_output(0)]
