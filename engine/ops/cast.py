"""Cast layers (LayerType.CAST, `network.add_cast`, param `to_type`).

Conversions follow NumPy `astype`, which matches ONNX Cast for every type pair the engine holds: floats to
integers truncate toward zero, to BOOL test for nonzero, float narrowing rounds to nearest even and overflows
to inf. ONNX: Cast (the `saturate` and `round_mode` attributes only concern float8 targets, which are
unsupported), CastLike.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..dtypes import DataType, from_onnx, is_supported_onnx, nptype
from ..enums import LayerType
from ..errors import UnsupportedCategory
from .base import onnx_op, register_layer


def _infer(layer, inputs):
    return [(inputs[0].shape, DataType(layer.params["to_type"]))]


def _compute(layer, inputs, xp):
    # Overflow to inf (float64 → float16) is the defined result, not a warning.
    with np.errstate(all="ignore"):
        return [xp.asarray(inputs[0]).astype(nptype(DataType(layer.params["to_type"])), copy=False)]


register_layer(LayerType.CAST, _infer, _compute)


def _add_cast(ctx, to_type: DataType):
    return [ctx.network.add_cast(ctx.input(0), to_type, name=ctx.layer_name()).get_output(0)]


@onnx_op("Cast")
def import_cast(ctx):
    to = ctx.attr("to")
    if to is None:
        ctx.unsupported("the 'to' attribute is missing", UnsupportedCategory.ATTRIBUTE)
    if isinstance(to, str):  # Cast-1 named the type
        to = onnx.TensorProto.DataType.Value(to.upper())
    if not is_supported_onnx(to):
        name = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else str(to)
        ctx.unsupported(f"cast to {name} is not supported", UnsupportedCategory.DTYPE)
    return _add_cast(ctx, from_onnx(to))


@onnx_op("CastLike", min_opset=15)
def import_cast_like(ctx):
    return _add_cast(ctx, ctx.input(1).dtype)
