"""RoiAlign (LayerType.ROI_ALIGN; TensorRT 8.6's parser maps ONNX RoiAlign to its ROIAlign_TRT plugin).

Inputs: X [N, C, H, W], rois [R, 4] as (x1, y1, x2, y2) in input coordinates, batch_indices [R] (integers).
Params: `mode` avg|max, `output_height`, `output_width`, `sampling_ratio` (0: ceil(roi size / output size)
samples per bin and axis), `spatial_scale`, `half_pixel` (ONNX coordinate_transformation_mode half_pixel, the
default since opset 16; opset 10 has only output_half_pixel, i.e. False). Output [R, C, output_height,
output_width].

Each output bin averages (avg) or takes the largest of (max) its bilinear samples, following ONNX's reference
and onnxruntime: a sample outside [-1, size] on either axis counts as 0, coordinates are clamped to the last
pixel, and max mode takes each sample's largest weighted corner. Rois are visited one at a time (their sample grids
differ); within a roi the work is vectorized with `xp`.
"""
from __future__ import annotations

import math

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer

MODES = ("avg", "max")


def _infer(layer, inputs):
    x, rois, indices = inputs
    if len(x.shape) != 4:
        raise EngineError(f"RoiAlign input must be 4-D [N, C, H, W], got {list(x.shape)}")
    if len(rois.shape) != 2 or rois.shape[1] not in (4, -1):
        raise EngineError(f"RoiAlign rois must have shape [num_rois, 4], got {list(rois.shape)}")
    if len(indices.shape) != 1:
        raise EngineError(f"RoiAlign batch_indices must be 1-D, got {list(indices.shape)}")
    if rois.shape[0] >= 0 and indices.shape[0] >= 0 and rois.shape[0] != indices.shape[0]:
        raise EngineError(f"RoiAlign has {rois.shape[0]} rois but {indices.shape[0]} batch indices")
    if not x.dtype.is_floating or rois.dtype != x.dtype:
        raise EngineError(f"RoiAlign input and rois must be the same float type, got {x.dtype.value} and "
                          f"{rois.dtype.value}")
    params = layer.params
    if params["mode"] not in MODES:
        raise EngineError(f"RoiAlign mode must be one of {list(MODES)}, got {params['mode']!r}")
    rows = rois.shape[0] if rois.shape[0] >= 0 else indices.shape[0]
    return [((rows, x.shape[1], params["output_height"], params["output_width"]), x.dtype)]


def _axis_samples(start: float, size: float, bins: int, grid: int, limit: int, xp):
    """Per sample along one axis (bins x grid of them): low and high pixel, their weights, and whether the sample
    lies inside [-1, limit]."""
    position = xp.arange(bins * grid, dtype=xp.float64)
    coordinate = start + (position // grid) * (size / bins) + (position % grid + 0.5) * (size / bins) / grid
    inside = (coordinate >= -1.0) & (coordinate <= limit)
    coordinate = xp.maximum(coordinate, 0.0)
    low = xp.floor(coordinate).astype(xp.int64)
    at_edge = low >= limit - 1
    low = xp.where(at_edge, limit - 1, low)
    high = xp.where(at_edge, limit - 1, low + 1)
    coordinate = xp.where(at_edge, low.astype(xp.float64), coordinate)
    frac = coordinate - low
    return low, high, 1.0 - frac, frac, inside


def _compute(layer, inputs, xp):
    x, rois, indices = inputs
    params = layer.params
    bins_h, bins_w, ratio = params["output_height"], params["output_width"], params["sampling_ratio"]
    scale, half_pixel, use_max = params["spatial_scale"], params["half_pixel"], params["mode"] == "max"
    batch, channels, height, width = x.shape
    host_rois = rois.get() if hasattr(rois, "get") else rois
    host_indices = indices.get() if hasattr(indices, "get") else indices
    out = xp.empty((host_rois.shape[0], channels, bins_h, bins_w), dtype=x.dtype)
    offset = 0.5 if half_pixel else 0.0
    for r, (x1, y1, x2, y2) in enumerate(host_rois.astype(float).tolist()):
        image = int(host_indices[r])
        if not 0 <= image < batch:
            raise EngineError(f"RoiAlign layer '{layer.name}': batch index {image} of roi {r} is out of range for "
                              f"batch {batch}")
        start_w, start_h = x1 * scale - offset, y1 * scale - offset
        roi_w, roi_h = x2 * scale - offset - start_w, y2 * scale - offset - start_h
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        grid_h = ratio if ratio > 0 else math.ceil(roi_h / bins_h)
        grid_w = ratio if ratio > 0 else math.ceil(roi_w / bins_w)
        count = max(grid_h * grid_w, 1)
        if grid_h <= 0 or grid_w <= 0:  # an empty roi (half_pixel, zero size): no samples, as the reference
            out[r] = 0
            continue
        y_low, y_high, y_lw, y_hw, y_in = _axis_samples(start_h, roi_h, bins_h, grid_h, height, xp)
        x_low, x_high, x_lw, x_hw, x_in = _axis_samples(start_w, roi_w, bins_w, grid_w, width, xp)
        inside = (y_in[:, None] & x_in[None, :]).astype(x.dtype)
        plane = x[image].astype(xp.float64)  # [C, H, W]
        rows_low, rows_high = plane[:, y_low, :], plane[:, y_high, :]
        corners = [rows_low[:, :, x_low] * (y_lw[:, None] * x_lw[None, :]),
                   rows_low[:, :, x_high] * (y_lw[:, None] * x_hw[None, :]),
                   rows_high[:, :, x_low] * (y_hw[:, None] * x_lw[None, :]),
                   rows_high[:, :, x_high] * (y_hw[:, None] * x_hw[None, :])]
        if use_max:
            samples = xp.maximum(xp.maximum(corners[0], corners[1]), xp.maximum(corners[2], corners[3])) * inside
            pooled = samples.reshape(channels, bins_h, grid_h, bins_w, grid_w).max(axis=(2, 4))
        else:
            samples = (corners[0] + corners[1] + corners[2] + corners[3]) * inside
            pooled = samples.reshape(channels, bins_h, grid_h, bins_w, grid_w).sum(axis=(2, 4)) / count
        out[r] = pooled.astype(x.dtype)
    return [out]


register_layer(LayerType.ROI_ALIGN, _infer, _compute)


@onnx_op("RoiAlign", min_opset=10)
def import_roi_align(ctx):
    mode = ctx.attr("mode", "avg")
    if mode not in MODES:
        ctx.unsupported(f"mode must be one of {list(MODES)}, got {mode!r}", UnsupportedCategory.ATTRIBUTE)
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else "output_half_pixel")
    if transform not in ("half_pixel", "output_half_pixel"):
        ctx.unsupported(f"coordinate_transformation_mode {transform!r} is not half_pixel or output_half_pixel",
                        UnsupportedCategory.ATTRIBUTE)
    sampling_ratio = int(ctx.attr("sampling_ratio", 0))
    if sampling_ratio < 0:
        ctx.unsupported(f"sampling_ratio must be >= 0, got {sampling_ratio}", UnsupportedCategory.ATTRIBUTE)
    sizes = [int(ctx.attr("output_height", 1)), int(ctx.attr("output_width", 1))]
    if min(sizes) < 1:
        ctx.unsupported(f"output_height and output_width must be positive, got {sizes}", UnsupportedCategory.ATTRIBUTE)
    params = {"mode": mode, "output_height": sizes[0], "output_width": sizes[1], "sampling_ratio": sampling_ratio,
              "spatial_scale": float(ctx.attr("spatial_scale", 1.0)), "half_pixel": transform == "half_pixel"}
    layer = ctx.network.add_layer(LayerType.ROI_ALIGN, [ctx.input(0), ctx.input(1), ctx.input(2)], params,
                                  name=ctx.layer_name())
    return [layer.get_output(0)]
