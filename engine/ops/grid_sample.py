"""GridSample (LayerType.GRID_SAMPLE, TensorRT 8.6's IGridSampleLayer; ONNX GridSample).

Inputs: X [N, C, *spatial] and grid [N, *out, r] (r = number of spatial dims) of normalized coordinates in
[-1, 1], the last axis ordered x, y(, z): the *last* spatial dim first, as ONNX and PyTorch have it. Params:
`interpolation_mode` linear|nearest|cubic (cubic for 2 spatial dims only, as ONNX allows), `sample_mode`
zeros|border|reflection (ONNX's padding_mode), `align_corners`. Output [N, C, *out].

Following ONNX's reference and onnxruntime: coordinates are denormalized in float32; nearest rounds half to even;
a coordinate outside the border box is clamped (border) or reflected (reflection) first; then every tap outside
the input reads 0 (zeros), the nearest edge pixel (border) or its reflection (reflection). Linear and cubic weights
are separable (Keys cubic, a = -0.75), so a sample is a sum over 2^r or 4^r taps, vectorized with `xp`.
"""
from __future__ import annotations

import itertools

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer

MODES = ("linear", "nearest", "cubic")
PADDING_MODES = ("zeros", "border", "reflection")
CUBIC_ALPHA = -0.75
# ONNX's opset-16 names of the modes.
OPSET_16_MODES = {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"}


def _infer(layer, inputs):
    x, grid = inputs
    spatial = len(x.shape) - 2
    if spatial < 1:
        raise EngineError(f"GridSample input must be [N, C, spatial...], got {list(x.shape)}")
    if len(grid.shape) != spatial + 2 or grid.shape[-1] not in (spatial, -1):
        raise EngineError(f"GridSample grid must have shape [N, out..., {spatial}] for input {list(x.shape)}, got "
                          f"{list(grid.shape)}")
    if not x.dtype.is_floating or not grid.dtype.is_floating:
        raise EngineError(f"GridSample input and grid must be float tensors, got {x.dtype.value} and "
                          f"{grid.dtype.value}")
    if layer.params["interpolation_mode"] not in MODES or layer.params["sample_mode"] not in PADDING_MODES:
        raise EngineError(f"GridSample interpolation_mode {layer.params['interpolation_mode']!r} / sample_mode "
                          f"{layer.params['sample_mode']!r}: expected one of {list(MODES)} / {list(PADDING_MODES)}")
    if layer.params["interpolation_mode"] == "cubic" and spatial != 2:
        raise EngineError(f"GridSample cubic mode needs 2 spatial dims, the input has {spatial}")
    batch = x.shape[0] if x.shape[0] >= 0 else grid.shape[0]
    return [((batch, x.shape[1], *grid.shape[1:-1]), x.dtype)]


def _reflect(value, low: float, high: float, xp):
    """Fold coordinates outside [low, high] back in, mirror after mirror."""
    extent = high - low
    if extent <= 0:
        return xp.full_like(value, low)
    below, above = value < low, value > high
    distance = xp.where(below, low - value, value - high)
    folds = xp.trunc(distance / extent)
    rest = distance - folds * extent
    even = folds % 2 == 0
    return xp.where(below, xp.where(even, low + rest, high - rest),
                    xp.where(above, xp.where(even, high - rest, low + rest), value))


def _cubic_weights(t, xp):
    """Keys' cubic convolution weights of the taps at -1, 0, 1, 2 for a fractional offset t in [0, 1)."""
    a = CUBIC_ALPHA

    def near(d):
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _taps(coordinate, mode: str, xp):
    """Per tap along one axis: (integer index, weight)."""
    if mode == "nearest":
        return [(coordinate.astype(xp.int64), None)]
    base = xp.floor(coordinate)
    t = coordinate - base
    base = base.astype(xp.int64)
    if mode == "linear":
        return [(base, 1.0 - t), (base + 1, t)]
    return [(base + offset, weight) for offset, weight in zip((-1, 0, 1, 2), _cubic_weights(t, xp))]


def _compute(layer, inputs, xp):
    x, grid = inputs
    params = layer.params
    mode, padding, align = params["interpolation_mode"], params["sample_mode"], params["align_corners"]
    sizes = x.shape[2:]
    spatial = len(sizes)
    batch = xp.arange(x.shape[0]).reshape((-1,) + (1,) * spatial)
    normalized = grid.astype(xp.float32)
    per_axis = []  # taps of each spatial dim (in X's order), each [(index [N, *out], weight)]
    for axis, size in enumerate(sizes):
        g = normalized[..., spatial - 1 - axis]
        if align:
            coordinate, low, high = (g + 1) / 2 * (size - 1), 0.0, size - 1.0
        else:
            coordinate, low, high = ((g + 1) * size - 1) / 2, -0.5, size - 0.5
        if mode == "nearest":
            coordinate = xp.rint(coordinate)
        outside = (coordinate < low) | (coordinate > high)
        if padding == "border":
            coordinate = xp.where(outside, xp.clip(coordinate, 0, size - 1), coordinate)
        elif padding == "reflection":
            coordinate = xp.where(outside, _reflect(coordinate, low, high, xp), coordinate)
        taps = []
        for index, weight in _taps(coordinate.astype(xp.float64), mode, xp):
            valid = None
            if padding == "zeros":
                valid = (index >= 0) & (index < size)
            elif padding == "reflection":
                index = _reflect(index.astype(xp.float64), low, high, xp).astype(xp.int64)
            taps.append((xp.clip(index, 0, size - 1), weight, valid))
        per_axis.append(taps)
    channels_last = xp.moveaxis(x, 1, -1)  # [N, *spatial, C]: one gather per tap fetches every channel
    total = None
    for combination in itertools.product(*per_axis):
        weight, valid = None, None
        for _, w, v in combination:
            if w is not None:
                weight = w if weight is None else weight * w
            if v is not None:
                valid = v if valid is None else valid & v
        term = channels_last[(batch, *(index for index, _, _ in combination))].astype(xp.float64)  # [N, *out, C]
        if weight is not None:
            term = term * weight[..., None]
        if valid is not None:
            term = term * valid[..., None]
        total = term if total is None else total + term
    return [xp.moveaxis(total, -1, 1).astype(x.dtype)]


register_layer(LayerType.GRID_SAMPLE, _infer, _compute)


@onnx_op("GridSample", min_opset=16)
def import_grid_sample(ctx):
    mode = ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear")
    names = OPSET_16_MODES if ctx.opset < 20 else {m: m for m in MODES}
    if mode not in names:
        ctx.unsupported(f"mode must be one of {list(names)}, got {mode!r}", UnsupportedCategory.ATTRIBUTE)
    padding = ctx.attr("padding_mode", "zeros")
    if padding not in PADDING_MODES:
        ctx.unsupported(f"padding_mode must be one of {list(PADDING_MODES)}, got {padding!r}",
                        UnsupportedCategory.ATTRIBUTE)
    x = ctx.input(0)
    if ctx.opset < 20 and x.shape is not None and len(x.shape) != 4:
        ctx.unsupported(f"GridSample before opset 20 takes 4-D input, got rank {len(x.shape)}",
                        UnsupportedCategory.OTHER)
    if names[mode] == "cubic" and x.shape is not None and len(x.shape) != 4:
        ctx.unsupported(f"cubic mode needs a 4-D input, got rank {len(x.shape)}", UnsupportedCategory.ATTRIBUTE)
    params = {"interpolation_mode": names[mode], "sample_mode": padding,
              "align_corners": bool(ctx.attr("align_corners", 0))}
    layer = ctx.network.add_layer(LayerType.GRID_SAMPLE, [x, ctx.input(1)], params, name=ctx.layer_name())
    return [layer.get_output(0)]
