"""Quantize and dequantize layers (LayerType.QUANTIZE / DEQUANTIZE; TensorRT's IQuantizeLayer/IDequantizeLayer)
and the ONNX QuantizeLinear / DequantizeLinear importers (opsets 10 to 21).

Inputs are (x, scale, zero_point): the scale is one value (per tensor) or one value per index of `axis` (per
channel), the zero point has the scale's shape and the quantized type (absent: 0 of INT8 for Quantize unless
`output_type` says otherwise). Quantize: y = saturate(round_half_even(x / scale) + zero_point); Dequantize:
y = (x - zero_point) * scale. Constant scales are checked at import (positive, finite); only Q/DQ with constant
scales can be fused into INT8 layers, others run as scale layers. int8/uint8 (and int16/uint16 through the
reference kernels) are supported; float8, int4/uint4 and block quantization (opset 21's block_size) are refused
with that reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..dtypes import DataType, from_onnx, nptype
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer

# INT8/UINT8 are what INT8 tactics run; 16-bit types run through the reference kernels.
QUANTIZED_TYPES = (DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16)
# INT32 is what quantizers store biases in (scale = input scale x weight scale): dequantized, never produced.
DEQUANTIZED_TYPES = QUANTIZED_TYPES + (DataType.INT32,)
SCALE_TYPES = (DataType.FLOAT, DataType.HALF)


def coefficient_shape(layer: Any, x_shape: tuple[int, ...], scale_size: int) -> tuple[int, ...]:
    """Shape the scale/zero point broadcast to against x: () per tensor, or one value along `axis`."""
    if scale_size == 1 and layer.params.get("axis") is None:
        return ()
    rank = len(x_shape)
    axis = normalize_axis(int(layer.params.get("axis", 1)), rank, "quantization axis")
    if x_shape[axis] >= 0 and scale_size not in (1, x_shape[axis]):
        raise EngineError(f"a per-axis scale has {scale_size} values, axis {axis} of the input has {x_shape[axis]}")
    return tuple(-1 if d == axis else 1 for d in range(rank))


def _coefficients(layer: Any, x: Any, scale: Any, zero_point: Any, xp: Any) -> tuple[Any, Any]:
    shape = coefficient_shape(layer, tuple(x.shape), int(np.size(scale)))
    scale = xp.asarray(scale).reshape(shape) if shape else xp.asarray(scale).reshape(())
    zero = xp.zeros((), np.int32) if zero_point is None else xp.asarray(zero_point).astype(np.int32)
    return scale, zero.reshape(shape) if shape else zero.reshape(())


def _quantized_type(layer: Any) -> DataType:
    return DataType(layer.params["output_type"])


def _check_known_coefficients(inputs, quantized: DataType) -> None:
    """What the importer checks (_check_coefficients), for layers made through the network API too: a constant
    scale of 0, NaN or inf, or a zero point of another type than the quantized one, would give wrong values
    without an error."""
    scale = inputs[1].value
    if scale is not None and (not np.all(np.isfinite(scale)) or np.any(np.asarray(scale) <= 0)):
        raise EngineError(f"the scale (input 1) must be positive and finite, got {np.ravel(scale)[:8].tolist()}")
    zero = inputs[2] if len(inputs) > 2 else None
    if zero is not None and zero.dtype != quantized:
        raise EngineError(f"the zero point (input 2) is {zero.dtype.value}, the quantized type is {quantized.value}: "
                          f"it must be a {quantized.value} value in that type's range")


def _infer_quantize(layer, inputs):
    coefficient_shape(layer, inputs[0].shape, int(np.prod(inputs[1].shape or (1,), dtype=np.int64)))
    _check_known_coefficients(inputs, _quantized_type(layer))
    return [(inputs[0].shape, _quantized_type(layer))]


def _compute_quantize(layer, inputs, xp):
    x, scale, zero_point = (list(inputs) + [None])[:3]
    scale, zero = _coefficients(layer, x, scale, zero_point, xp)
    dtype = np.dtype(nptype(_quantized_type(layer)))
    info = np.iinfo(dtype)
    # float32 division as the ONNX reference does; rint rounds half to even
    with np.errstate(divide="ignore", invalid="ignore"):
        q = xp.rint(x.astype(np.float32) / scale.astype(np.float32)) + zero
    return [xp.clip(q, info.min, info.max).astype(dtype)]


def _infer_dequantize(layer, inputs):
    coefficient_shape(layer, inputs[0].shape, int(np.prod(inputs[1].shape or (1,), dtype=np.int64)))
    _check_known_coefficients(inputs, inputs[0].dtype)
    return [(inputs[0].shape, inputs[1].dtype)]


def _compute_dequantize(layer, inputs, xp):
    x, scale, zero_point = (list(inputs) + [None])[:3]
    scale, zero = _coefficients(layer, x, scale, zero_point, xp)
    return [((x.astype(np.int32) - zero).astype(np.float32) * scale.astype(np.float32)).astype(scale.dtype)]


register_layer(LayerType.QUANTIZE, _infer_quantize, _compute_quantize)
register_layer(LayerType.DEQUANTIZE, _infer_dequantize, _compute_dequantize)


def _check_coefficients(ctx, scale, zero_point, quantized: DataType | None) -> tuple[Any, Any]:
    """The scale and zero point, validated where they are constants: positive finite scales, zero points of the
    quantized type and as many values as the scale. Runtime scales are taken as they come (the layer then runs as
    a scale layer and is never fused)."""
    if ctx.has_attr("block_size") and int(ctx.attr("block_size", 0)) != 0:
        ctx.unsupported("block quantization (block_size) is not supported", UnsupportedCategory.ATTRIBUTE)
    if scale.dtype not in SCALE_TYPES:
        ctx.unsupported(f"scale '{scale.name}' has type {scale.dtype.value}; FLOAT or HALF is supported",
                        UnsupportedCategory.DTYPE)
    if scale.shape is not None and len(scale.shape) > 1:
        ctx.unsupported(f"scale '{scale.name}' has shape {scale.shape}: only per-tensor and per-axis (1-D) "
                        "scales are supported", UnsupportedCategory.ATTRIBUTE)
    scale_value = ctx.const(1)
    if scale_value is not None and (not np.all(np.isfinite(scale_value)) or np.any(scale_value <= 0)):
        raise EngineError(f"scale '{scale.name}' must be positive and finite, got {scale_value.ravel()[:8].tolist()}")
    if zero_point is None:
        return scale_value, None
    if quantized is not None and zero_point.dtype != quantized:
        raise EngineError(f"zero point '{zero_point.name}' is {zero_point.dtype.value} but the quantized type is "
                          f"{quantized.value}")
    sizes = [None if t.shape is None or any(d < 0 for d in t.shape) else int(np.prod(t.shape))
             for t in (zero_point, scale)]
    if None not in sizes and sizes[0] != sizes[1]:  # () against (1,) is fine (onnxruntime)
        raise EngineError(f"zero point '{zero_point.name}' has shape {tuple(zero_point.shape)}, scale '{scale.name}' "
                          f"has shape {tuple(scale.shape)}: they must hold as many values")
    return scale_value, ctx.const(2)


def _axis_params(ctx, scale) -> dict[str, Any]:
    """Per-axis when the scale is 1-D with more than one value (a scalar or one-value scale is per tensor, as
    onnxruntime treats it: quantizers write biases' scales as shape (1,) whatever the axis)."""
    per_axis = scale.shape is not None and len(scale.shape) == 1 and scale.shape[0] != 1
    return {"axis": int(ctx.attr("axis", 1))} if per_axis else {}


@onnx_op("QuantizeLinear", min_opset=10)
def import_quantize(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    if not x.dtype.is_floating:
        ctx.unsupported(f"input '{x.name}' has type {x.dtype.value}; QuantizeLinear takes floats",
                        UnsupportedCategory.DTYPE)
    quantized = zero_point.dtype if zero_point is not None else DataType.UINT8
    if ctx.has_attr("output_dtype"):
        code = int(ctx.attr("output_dtype"))
        supported = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT16, onnx.TensorProto.UINT16}
        if code not in supported:
            ctx.unsupported(f"output_dtype {onnx.TensorProto.DataType.Name(code)} is not supported "
                            "(INT8, UINT8, INT16, UINT16)", UnsupportedCategory.DTYPE)
        quantized = from_onnx(code)
    if quantized not in QUANTIZED_TYPES:
        ctx.unsupported(f"quantizing to {quantized.value} is not supported", UnsupportedCategory.DTYPE)
    if ctx.has_attr("saturate") and int(ctx.attr("saturate")) != 1:
        ctx.unsupported("saturate=0 only concerns float8 outputs, which are not supported", UnsupportedCategory.DTYPE)
    _check_coefficients(ctx, scale, zero_point, quantized)
    params = {"output_type": quantized, **_axis_params(ctx, scale)}
    inputs = [x, scale] if zero_point is None else [x, scale, zero_point]
    return [ctx.network.add_layer(LayerType.QUANTIZE, inputs, params, name=ctx.layer_name()).get_output(0)]


@onnx_op("DequantizeLinear", min_opset=10)
def import_dequantize(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    if x.dtype not in DEQUANTIZED_TYPES:
        ctx.unsupported(f"input '{x.name}' has type {x.dtype.value}; dequantizing "
                        f"{', '.join(t.value for t in DEQUANTIZED_TYPES)} is supported", UnsupportedCategory.DTYPE)
    _check_coefficients(ctx, scale, zero_point, x.dtype)
    params = _axis_params(ctx, scale)
    inputs = [x, scale] if zero_point is None else [x, scale, zero_point]
    return [ctx.network.add_layer(LayerType.DEQUANTIZE, inputs, params, name=ctx.layer_name()).get_output(0)]
