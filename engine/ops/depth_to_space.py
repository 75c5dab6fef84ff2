"""DepthToSpace and SpaceToDepth layers on NCHW tensors; ONNX DepthToSpace and SpaceToDepth (DCR/CRD).

Params `blocksize` and `mode`: "DCR" (depth-column-row: the channel index splits as (block_y, block_x, c)) or
"CRD" (column-row-depth: (c, block_y, block_x)). SpaceToDepth of a mode is the inverse of DepthToSpace of the
same mode (SpaceToDepth before opset 26 has no mode attribute and is DCR).
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer


def _scaled(d: int, factor: int) -> int:
    return d * factor if d >= 0 else -1


def _divided(d: int, divisor: int, what: str) -> int:
    if d < 0:
        return -1
    if d % divisor:
        raise EngineError(f"{what} {d} is not divisible by {divisor}")
    return d // divisor


def _nchw(shape) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise EngineError(f"expected a 4-D NCHW input, got shape {tuple(shape)}")
    return tuple(shape)


def _infer_depth_to_space(layer, inputs):
    n, c, h, w = _nchw(inputs[0].shape)
    b = layer.params["blocksize"]
    return [((n, _divided(c, b * b, "channels"), _scaled(h, b), _scaled(w, b)), inputs[0].dtype)]


def _compute_depth_to_space(layer, inputs, xp):
    x = inputs[0]
    n, c, h, w = x.shape
    b = layer.params["blocksize"]
    if layer.params["mode"] == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


def _infer_space_to_depth(layer, inputs):
    n, c, h, w = _nchw(inputs[0].shape)
    b = layer.params["blocksize"]
    return [((n, _scaled(c, b * b), _divided(h, b, "height"), _divided(w, b, "width")), inputs[0].dtype)]


def _compute_space_to_depth(layer, inputs, xp):
    x = inputs[0]
    n, c, h, w = x.shape
    b = layer.params["blocksize"]
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.transpose(0, 3, 5, 1, 2, 4) if layer.params["mode"] == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]


register_layer(LayerType.DEPTH_TO_SPACE, _infer_depth_to_space, _compute_depth_to_space)
register_layer(LayerType.SPACE_TO_DEPTH, _infer_space_to_depth, _compute_space_to_depth)


def _blocksize(ctx) -> int:
    b = ctx.attr("blocksize")
    if b is None or int(b) < 1:
        ctx.unsupported("blocksize must be a positive integer", UnsupportedCategory.OTHER)
    return int(b)


@onnx_op("DepthToSpace", "SpaceToDepth")
def import_depth_to_space(ctx):
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        ctx.unsupported(f"mode '{mode}' is not supported", UnsupportedCategory.ATTRIBUTE)
    layer_type = LayerType.DEPTH_TO_SPACE if ctx.op_type == "DepthToSpace" else LayerType.SPACE_TO_DEPTH
    params = {"blocksize": _blocksize(ctx), "mode": mode}
    return [ctx.network.add_layer(layer_type, [ctx.input(0)], params, name=ctx.layer_name()).get_output(0)]
