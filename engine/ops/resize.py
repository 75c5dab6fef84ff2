"""Resize (LayerType.RESIZE) and ONNX Resize (opsets 10-19+) and Upsample (opsets 7-9).

Params are those of `NetworkDefinition.add_resize`: `shape` (output sizes) or `scales`, both for `axes` (all dims
when None), or a runtime tensor in input 1 (sizes, or scales when `input_is_scales`); `resize_mode`
NEAREST|LINEAR|CUBIC; `coordinate_transformation`, `nearest_rounding`, `keep_aspect_ratio_policy` with ONNX
names; `cubic_coeff`, `exclude_outside`, `extrapolation_value`. Extensions: `roi` (start..., end... for `axes`,
used by tf_crop_and_resize; or a runtime tensor in input 2) and the nearest_rounding "simple" (floor when
upsampling, ceil when downsampling: what Upsample and Resize-10 mean by nearest).

Interpolation is separable: each resized axis is one gather (nearest) or a weighted sum of 2 (linear) or 4 (cubic)
gathers along that axis, with per-output weights computed on the host from the coordinate transform.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, onnx_op, register_layer

TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
MODES = {"nearest": "NEAREST", "linear": "LINEAR", "bilinear": "LINEAR", "cubic": "CUBIC"}


def _host(value: Any) -> np.ndarray:
    return np.asarray(value.get() if hasattr(value, "get") else value)


def resize_plan(layer: Any, in_shape: tuple[int, ...], has_dynamic: bool, dynamic: Any, roi: Any
                ) -> tuple[list[int], list[float], list[float] | None]:
    """(output shape, per-dim scale, per-dim roi [starts..., ends...] or None) for a concrete input shape.
    `has_dynamic`: the layer reads its scales/sizes from input 1 (whose value `dynamic` may be unknown).
    Output dims are -1 where they depend on a runtime value that is not known."""
    p = layer.params
    rank = len(in_shape)
    axes = [a % rank for a in p["axes"]] if p.get("axes") is not None else list(range(rank))
    scales_in, sizes_in = p.get("scales"), p.get("shape")
    if has_dynamic:
        if dynamic is None:
            out = list(in_shape)
            for a in axes:
                out[a] = -1
            return out, [1.0] * rank, None
        values = _host(dynamic).ravel().tolist()
        scales_in, sizes_in = (values, None) if p.get("input_is_scales") else (None, values)
    out, scales = list(in_shape), [1.0] * rank
    if sizes_in is not None and len(sizes_in):
        if len(sizes_in) != len(axes):
            raise EngineError(f"resize got {len(sizes_in)} sizes for {len(axes)} axes")
        for a, size in zip(axes, sizes_in):
            out[a] = int(size)
            scales[a] = int(size) / in_shape[a] if in_shape[a] > 0 else 1.0
        policy = p.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch" and all(in_shape[a] >= 0 for a in axes):
            pick = min if policy == "not_larger" else max
            scale = pick(scales[a] for a in axes)
            for a in axes:
                scales[a] = scale
                out[a] = int(scale * in_shape[a] + 0.5)
    elif scales_in is not None and len(scales_in):
        if len(scales_in) != len(axes):
            raise EngineError(f"resize got {len(scales_in)} scales for {len(axes)} axes")
        for a, scale in zip(axes, scales_in):
            if scale <= 0:
                raise EngineError(f"resize scale {scale} must be positive")
            scales[a] = float(scale)
            out[a] = int(in_shape[a] * float(scale)) if in_shape[a] >= 0 else -1
    else:
        raise EngineError("resize needs output sizes or scales")
    full_roi = None
    roi = p.get("roi") if roi is None else _host(roi).ravel().tolist()
    if roi is not None and len(roi):
        full_roi = [0.0] * rank + [1.0] * rank
        for i, a in enumerate(axes if len(roi) == 2 * len(axes) else range(rank)):
            full_roi[a], full_roi[rank + a] = float(roi[i]), float(roi[len(roi) // 2 + i])
    return out, scales, full_roi


def _infer_resize(layer, inputs: list[TensorInfo | None]):
    x = inputs[0]
    has_dynamic = len(inputs) > 1 and inputs[1] is not None
    out, _, _ = resize_plan(layer, x.shape, has_dynamic, inputs[1].value if has_dynamic else None, None)
    return [(tuple(out), x.dtype)]


def source_coordinates(transform: str, out_size: int, in_size: int, scale: float,
                       roi: tuple[float, float] | None) -> np.ndarray:
    """Input coordinate of every output index along one axis (float64), per ONNX's coordinate transforms."""
    x = np.arange(out_size, dtype=np.float64)
    length = scale * in_size  # the reference uses the unrounded output length
    if transform == "align_corners":
        return np.zeros_like(x) if length == 1 else x * (in_size - 1) / (length - 1)
    if transform == "asymmetric":
        return x / scale
    if transform == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if transform == "pytorch_half_pixel":
        return np.full_like(x, -0.5) if length == 1 else (x + 0.5) / scale - 0.5
    if transform == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if transform == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / length)
        return offset + (x + 0.5) / scale - 0.5
    if transform == "tf_crop_and_resize":
        start, end = roi if roi is not None else (0.0, 1.0)
        if length == 1:
            return np.full_like(x, (end - start) * (in_size - 1) / 2 + start * (in_size - 1))
        return x * (end - start) * (in_size - 1) / (length - 1) + start * (in_size - 1)
    raise EngineError(f"unknown coordinate transformation {transform!r}")


def _nearest_index(coords: np.ndarray, rounding: str, scale: float) -> np.ndarray:
    if rounding == "round_prefer_floor":
        return np.ceil(coords - 0.5)
    if rounding == "round_prefer_ceil":
        return np.floor(coords + 0.5)
    if rounding == "ceil" or (rounding == "simple" and scale < 1):
        return np.ceil(coords)
    return np.floor(coords)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights for taps at floor-1 .. floor+2, t = coordinate - floor."""
    distances = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)
    d = np.abs(distances)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def axis_taps(layer: Any, coords: np.ndarray, in_size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), both (out_size, taps): the input positions each output reads and their weights."""
    p = layer.params
    mode = p["resize_mode"]
    if mode == "NEAREST":
        idx = _nearest_index(coords, p["nearest_rounding"], scale)[:, None]
        return np.clip(idx, 0, in_size - 1).astype(np.int64), np.ones(idx.shape)
    floor = np.floor(coords)
    t = coords - floor
    if mode == "LINEAR":
        idx = floor[:, None] + np.arange(2)[None, :]
        weights = np.stack([1 - t, t], axis=1)
    else:
        idx = floor[:, None] + np.arange(-1, 3)[None, :]
        weights = _cubic_weights(t, float(p["cubic_coeff"]))
        if p["exclude_outside"]:
            weights = np.where((idx < 0) | (idx >= in_size), 0.0, weights)
            weights = weights / weights.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, in_size - 1).astype(np.int64), weights


def _compute_resize(layer, inputs, xp):
    x = inputs[0]
    dynamic = inputs[1] if len(inputs) > 1 else None
    roi_input = inputs[2] if len(inputs) > 2 else None
    out, scales, roi = resize_plan(layer, x.shape, dynamic is not None, dynamic, roi_input)
    p = layer.params
    transform = p["coordinate_transformation"]
    dtype = x.dtype
    interpolate = p["resize_mode"] != "NEAREST"
    y = x.astype(xp.float64 if dtype == xp.float64 else xp.float32) if interpolate else x
    outside = None
    rank = x.ndim
    for axis in range(rank):
        in_size, out_size, scale = x.shape[axis], out[axis], scales[axis]
        axis_roi = None if roi is None else (roi[axis], roi[rank + axis])
        if in_size == out_size and scale == 1 and axis_roi in (None, (0.0, 1.0)):
            continue
        coords = source_coordinates(transform, out_size, in_size, scale, axis_roi)
        idx, weights = axis_taps(layer, coords, in_size, scale)
        shape = [1] * rank
        shape[axis] = out_size
        if interpolate:
            acc = None
            for k in range(idx.shape[1]):
                term = xp.take(y, xp.asarray(idx[:, k]), axis=axis) * \
                    xp.asarray(weights[:, k].reshape(shape), dtype=y.dtype)
                acc = term if acc is None else acc + term
            y = acc
        else:
            y = xp.take(y, xp.asarray(idx[:, 0]), axis=axis)
        if transform == "tf_crop_and_resize":
            mask = ((coords < 0) | (coords > in_size - 1)).reshape(shape)
            outside = mask if outside is None else outside | mask
    if outside is not None and outside.any():
        y = xp.where(xp.asarray(outside), xp.asarray(p["extrapolation_value"], dtype=y.dtype), y)
    if y.dtype != dtype:
        if xp.dtype(dtype).kind in "iu":
            info = xp.iinfo(dtype)
            y = xp.clip(xp.rint(y), info.min, info.max)
        y = y.astype(dtype)
    return [y]


register_layer(LayerType.RESIZE, _infer_resize, _compute_resize, host_operands=(1, 2))

RESIZE_TYPES = (DataType.FLOAT, DataType.HALF, DataType.BF16, DataType.DOUBLE,
                DataType.INT8, DataType.INT16, DataType.INT32,
                DataType.INT64, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64)


def _add_resize(ctx, x, params: dict, scales, sizes, roi):
    """One RESIZE layer; scales/sizes/roi are (constant value, tensor) pairs, a value of None meaning runtime."""
    if x.dtype not in RESIZE_TYPES:
        ctx.unsupported(f"input data type {x.dtype.value} is not supported", UnsupportedCategory.DTYPE)
    layer = ctx.network.add_resize(x, name=ctx.layer_name())
    updates = {**params, "roi": None}
    for (value, tensor), key in ((scales, "scales"), (sizes, "shape")):
        empty_tensor = tensor is not None and tensor.shape is not None and 0 in tensor.shape
        if (value is None and tensor is None) or (value is not None and value.size == 0) or empty_tensor:
            continue
        if value is not None:
            updates[key] = value.ravel().tolist()
        else:
            updates["input_is_scales"] = key == "scales"
            layer.set_input(1, tensor)
        break
    else:
        ctx.unsupported("neither scales nor sizes is given", UnsupportedCategory.OTHER)
    value, tensor = roi
    if params["coordinate_transformation"] == "tf_crop_and_resize" and tensor is not None:
        if value is not None:
            updates["roi"] = value.ravel().tolist()
        else:
            layer.set_input(2, tensor)
    layer.set_params(updates)
    return [layer.get_output(0)]


def _pair(ctx, index: int):
    return ctx.const(index), ctx.input(index)


@onnx_op("Resize", min_opset=10)
def import_resize(ctx):
    mode = ctx.attr("mode", "nearest")
    if mode not in MODES:
        ctx.unsupported(f"mode={mode!r} is not supported", UnsupportedCategory.ATTRIBUTE)
    if ctx.attr("antialias", 0):
        ctx.unsupported("antialias=1 is not supported", UnsupportedCategory.ATTRIBUTE)
    x = ctx.input(0)
    if ctx.opset < 11:
        params = {"resize_mode": MODES[mode], "coordinate_transformation": "asymmetric", "nearest_rounding": "simple"}
        return _add_resize(ctx, x, params, _pair(ctx, 1), (None, None), (None, None))
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    rounding = ctx.attr("nearest_mode", "round_prefer_floor")
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
    if transform not in TRANSFORMS or rounding not in NEAREST_ROUNDINGS[:-1]:
        ctx.unsupported(f"coordinate_transformation_mode={transform!r} / nearest_mode={rounding!r} is not supported",
                        UnsupportedCategory.ATTRIBUTE)
    if policy not in ("stretch", "not_larger", "not_smaller"):
        ctx.unsupported(f"keep_aspect_ratio_policy={policy!r} is not supported", UnsupportedCategory.ATTRIBUTE)
    axes = ctx.attr("axes")
    params = {"resize_mode": MODES[mode], "coordinate_transformation": transform, "nearest_rounding": rounding,
              "cubic_coeff": float(ctx.attr("cubic_coeff_a", -0.75)),
              "exclude_outside": bool(ctx.attr("exclude_outside", 0)),
              "extrapolation_value": float(ctx.attr("extrapolation_value", 0.0)),
              "axes": None if axes is None else list(axes), "keep_aspect_ratio_policy": policy}
    return _add_resize(ctx, x, params, _pair(ctx, 2), _pair(ctx, 3), _pair(ctx, 1))


@onnx_op("Upsample", min_opset=7, max_opset=9)
def import_upsample(ctx):
    mode = ctx.attr("mode", "nearest")
    if mode not in MODES or mode == "cubic":
        ctx.unsupported(f"mode={mode!r} is not supported", UnsupportedCategory.ATTRIBUTE)
    params = {"resize_mode": MODES[mode], "coordinate_transformation": "asymmetric", "nearest_rounding": "simple"}
    if ctx.opset < 9:
        scales = np.asarray(ctx.attr("scales"), dtype=np.float32)
        return _add_resize(ctx, ctx.input(0), params, (scales, None), (None, None), (None, None))
    return _add_resize(ctx, ctx.input(0), params, _pair(ctx, 1), (None, None), (None, None))
