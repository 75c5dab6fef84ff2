"""Col2Im (LayerType.COL2IM, `network.add_col2im`; ONNX opset 18): sum sliding blocks back into an image, the
inverse layout of Im2Col / torch.nn.Unfold (torch.nn.Fold exports to it; timm's VOLO outlook attention uses it).

Input (N, C * prod(block_shape), L): column j of channel group c holds the block at grid position j (row-major
over the grid of block positions), its prod(block_shape) values row-major over the block. Output (N, C,
*image_shape). Params (plain int lists, one entry per spatial dim): image_shape and block_shape (None when input
1 / 2 holds them: INT64 shape tensors, known on the host when the input shapes are set), strides, dilations and
pads ([begin..., end...], ONNX's layout). The grid has (image + pads - (dilation * (block - 1) + 1)) // stride
+ 1 positions per dim, and L must be their product. Overlapping blocks add up; image pixels no block covers are 0.

Why a layer of its own, not a grouped deconvolution with one-hot weights (the shape of an earlier draft): the
deconvolution multiplies every value by every kernel weight, so one inf or NaN in a column turns the neighbouring
pixels into NaN (0 * inf), and it costs prod(block_shape) times the additions. The kernel here adds each block
offset's (N, C, *grid) slice into a strided window of a padded image — prod(block_shape) slice additions whose
windows never overlap within one addition (exact, deterministic order, the same code on NumPy and CuPy) — then
crops the pads.
"""
from __future__ import annotations

import itertools
import math

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer
from .shape_values import host_ints, vector_length


def _int_list(layer_name: str, params: dict, key: str, length: int, minimum: int) -> list[int]:
    value = params.get(key)
    if not isinstance(value, list) or len(value) != length or \
            any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in value):
        raise EngineError(f"Col2Im '{layer_name}' {key} must be {length} integers >= {minimum}, got {value!r}")
    return value


def _param_or_value(layer, key: str, value) -> list[int] | None:
    """A shape param, else the value of the input standing for it (None: not known yet)."""
    if layer.params.get(key) is not None:
        return layer.params[key]
    return None if value is None else host_ints(value)


def geometry(name: str, params: dict) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """(image, block, strides, dilations, pads, grid) of a Col2Im layer's params, checked (as a plan gives them)."""
    block = params.get("block_shape")
    n = len(block) if isinstance(block, list) else 0
    if n == 0:
        raise EngineError(f"Col2Im '{name}' block_shape must be a non-empty list of integers, got {block!r}")
    image, block = _int_list(name, params, "image_shape", n, 1), _int_list(name, params, "block_shape", n, 1)
    strides, dilations = _int_list(name, params, "strides", n, 1), _int_list(name, params, "dilations", n, 1)
    pads = _int_list(name, params, "pads", 2 * n, 0)
    spans = [d * (b - 1) + 1 for d, b in zip(dilations, block)]
    extents = [i + pads[k] + pads[k + n] for k, i in enumerate(image)]
    if any(e < span for e, span in zip(extents, spans)):
        raise EngineError(f"Col2Im '{name}': block_shape {block} with dilations {dilations} does not fit image_shape "
                          f"{image} with pads {pads}")
    grid = [(e - span) // s + 1 for e, span, s in zip(extents, spans, strides)]
    return image, block, strides, dilations, pads, grid


def _check_params(layer) -> None:
    """The params a plan gives: image_shape/block_shape a list or None, the others lists."""
    for key in ("image_shape", "block_shape"):
        if layer.params.get(key) is not None and not isinstance(layer.params[key], list):
            raise EngineError(f"Col2Im '{layer.name}' {key} must be a list of integers or null, got "
                              f"{layer.params[key]!r}")


def _layer_geometry(layer, image_value, block_value):
    """geometry() with image_shape/block_shape from the params or the inputs' values; None while either is unknown."""
    _check_params(layer)
    image = _param_or_value(layer, "image_shape", image_value)
    block = _param_or_value(layer, "block_shape", block_value)
    if image is None or block is None:
        return None
    return geometry(layer.name, {**layer.params, "image_shape": image, "block_shape": block})


def _input_value(inputs, index: int):
    return inputs[index].value if len(inputs) > index and inputs[index] is not None else None


def _infer(layer, inputs):
    _check_params(layer)
    image = _param_or_value(layer, "image_shape", _input_value(inputs, 1))
    block = _param_or_value(layer, "block_shape", _input_value(inputs, 2))
    if layer.params.get("image_shape") is not None:
        rank = len(layer.params["image_shape"])
    else:  # a 1-D shape tensor of static length
        rank = vector_length(inputs[1], "image_shape")
        if rank < 0:
            raise EngineError(f"Col2Im '{layer.name}': the length of image_shape must be static")
    return [(output_shape(layer.name, layer.params, inputs[0].shape, image, block, rank), inputs[0].dtype)]


def output_shape(name: str, params: dict, shape, image: list[int] | None, block: list[int] | None,
                 rank: int) -> tuple[int, ...]:
    """(N, C, *image_shape) for an input of `shape`; -1 where image_shape/block_shape (None) are not known yet.
    Refuses an input whose columns or block count do not fit the geometry."""
    if shape is None or len(shape) != 3:
        raise EngineError(f"Col2Im '{name}' input must be (N, C*prod(block_shape), L), got shape {shape}")
    for key, length, minimum in (("strides", rank, 1), ("dilations", rank, 1), ("pads", 2 * rank, 0)):
        _int_list(name, params, key, length, minimum)
    channels = -1
    if block is not None:
        size = math.prod(_int_list(name, {"block_shape": block}, "block_shape", len(block), 1))
        if shape[1] >= 0 and shape[1] % size:
            raise EngineError(f"Col2Im '{name}' input dim 1 ({shape[1]}) must be a multiple of prod(block_shape) "
                              f"= {size}")
        channels = shape[1] // size if shape[1] >= 0 else -1
    if image is None or block is None:
        return (shape[0], channels, *[-1] * rank)
    image, _, _, _, _, grid = geometry(name, {**params, "image_shape": image, "block_shape": block})
    if shape[2] >= 0 and shape[2] != math.prod(grid):
        raise EngineError(f"Col2Im '{name}' input has {shape[2]} blocks; image_shape {image} holds "
                          f"{math.prod(grid)} ({' x '.join(map(str, grid))})")
    return (shape[0], channels, *image)


def _compute(layer, inputs, xp):
    x = inputs[0]
    image, block, strides, dilations, pads, grid = _layer_geometry(
        layer, inputs[1] if len(inputs) > 1 else None, inputs[2] if len(inputs) > 2 else None)
    n = len(block)
    batch, columns, _ = x.shape
    columns_of = x.reshape(batch, columns // math.prod(block), math.prod(block), *grid)
    padded = xp.zeros((batch, columns_of.shape[1], *(i + pads[k] + pads[k + n] for k, i in enumerate(image))),
                      dtype=x.dtype)
    everything = (slice(None), slice(None))
    for k, offset in enumerate(itertools.product(*(range(b) for b in block))):
        window = tuple(slice(o * d, o * d + s * (g - 1) + 1, s) for o, d, s, g in zip(offset, dilations, strides, grid))
        padded[everything + window] += columns_of[:, :, k]
    return [padded[everything + tuple(slice(pads[k], pads[k] + i) for k, i in enumerate(image))]]


register_layer(LayerType.COL2IM, _infer, _compute, host_operands=(1, 2))


@onnx_op("Col2Im", min_opset=18)
def import_col2im(ctx):
    x = ctx.input(0)
    if x.dtype == DataType.BOOL:
        ctx.unsupported("input is BOOL; Col2Im adds values, which needs a numeric type", UnsupportedCategory.DTYPE)
    image, block = ctx.const(1), ctx.const(2)
    for index, what in ((1, "image_shape"), (2, "block_shape")):
        tensor = ctx.input(index)
        if tensor is None:
            ctx.unsupported(f"input {index} ({what}) is missing", UnsupportedCategory.OTHER)
        if tensor.shape is None or len(tensor.shape) != 1 or tensor.shape[0] < 1:
            ctx.unsupported(f"{what} must be a 1-D tensor of static length, got shape {tensor.shape}",
                            UnsupportedCategory.DYNAMIC_SHAPE)
        if tensor.dtype != DataType.INT64:
            ctx.unsupported(f"{what} must be INT64, got {tensor.dtype.value}", UnsupportedCategory.DTYPE)
    n = ctx.input(2).shape[0]
    if ctx.input(1).shape[0] != n:
        ctx.unsupported(f"image_shape has {ctx.input(1).shape[0]} values, block_shape {n}", UnsupportedCategory.OTHER)
    attrs = {"strides": [int(v) for v in ctx.attr("strides", [1] * n)],
             "dilations": [int(v) for v in ctx.attr("dilations", [1] * n)],
             "pads": [int(v) for v in ctx.attr("pads", [0] * (2 * n))]}
    image, block = (None if value is None else host_ints(value) for value in (image, block))
    try:  # the attributes, with placeholder sizes where a shape tensor gives them at run time
        geometry(ctx.name, {**attrs, "image_shape": image or [1 << 30] * n, "block_shape": block or [1] * n})
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.ATTRIBUTE)
    try:
        output_shape(ctx.name, attrs, x.shape, image, block, n)
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    # image_shape/block_shape: constants as params, else the shape tensors as inputs
    layer = ctx.network.add_col2im(x, ctx.input(1) if image is None else image,
                                   ctx.input(2) if block is None else block, **attrs, name=ctx.layer_name())
    return [layer.get_output(0)]
