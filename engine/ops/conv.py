"""Convolution (LayerType.CONVOLUTION) and ONNX Conv, for any number of spatial dims.

Inputs: x (N, C, *spatial), kernel (K, C/groups, *kernel_size), optional bias (K,). Params are those of
`NetworkDefinition.add_convolution_nd`. The reference kernel pads once, takes a strided window view
(N, G, C/G, *out, *kernel) and contracts it with the kernel per group in one einsum; the fast CPU algorithms
(im2col, Winograd, depthwise, ...) are tactics in engine/tactics/cpu_conv.py.
"""
from __future__ import annotations

from typing import Any

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, onnx_op, register_layer
from .window import layer_window, onnx_window_attrs, pad_spatial

_LETTERS = "abdefhijklmpqrstuvwxyz"


def _infer_conv(layer, inputs: list[TensorInfo | None]):
    x, w = inputs[0], inputs[1]
    groups = int(layer.params["num_groups"])
    kernel = list(layer.params["kernel_size_nd"])
    if len(x.shape) != len(kernel) + 2:
        raise EngineError(f"input rank {len(x.shape)} does not match a {len(kernel)}-D kernel")
    channels = x.shape[1]
    if channels >= 0 and w.shape[1] >= 0 and channels != w.shape[1] * groups:
        raise EngineError(f"input has {channels} channels, kernel expects {w.shape[1]} x {groups} groups")
    if w.shape[0] >= 0 and w.shape[0] % groups:
        raise EngineError(f"{w.shape[0]} output maps are not divisible by {groups} groups")
    out, _, _ = layer_window(layer, kernel, x.shape[2:])
    return [((x.shape[0], int(layer.params["num_output_maps"]), *out), x.dtype)]


def conv_reference(x: Any, w: Any, bias: Any, layer: Any, xp: Any) -> Any:
    """The N-D grouped convolution of `layer` on arrays of one float dtype."""
    groups = int(layer.params["num_groups"])
    kernel = list(w.shape[2:])
    n = len(kernel)
    out, pre, post = layer_window(layer, kernel, x.shape[2:])
    strides, dilations = list(layer.params["stride_nd"]), list(layer.params["dilation_nd"])
    padded = xp.ascontiguousarray(pad_spatial(x, pre, post, 0, xp))
    batch, channels = x.shape[:2]
    grouped = padded.reshape(batch, groups, channels // groups, *padded.shape[2:])
    spatial_strides = grouped.strides[3:]
    windows = xp.lib.stride_tricks.as_strided(
        grouped, (*grouped.shape[:3], *out, *kernel),
        (*grouped.strides[:3], *(st * s for st, s in zip(spatial_strides, strides)),
         *(st * d for st, d in zip(spatial_strides, dilations))))
    kernel_groups = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    o, k = _LETTERS[:n], _LETTERS[n:2 * n]
    y = xp.einsum(f"ngc{o}{k},goc{k}->ngo{o}", windows, kernel_groups, optimize=True)
    y = y.reshape(batch, w.shape[0], *out)
    if bias is not None:
        y = y + bias.reshape((-1,) + (1,) * n)
    return y


def _compute_conv(layer, inputs, xp):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    dtype = x.dtype
    work = xp.float32 if dtype == xp.float16 else dtype
    y = conv_reference(x.astype(work, copy=False), w.astype(work, copy=False),
                       None if bias is None else bias.astype(work, copy=False), layer, xp)
    return [y.astype(dtype, copy=False)]


register_layer(LayerType.CONVOLUTION, _infer_conv, _compute_conv)


def check_float(ctx: Any, *tensors: Any) -> None:
    for t in tensors:
        if t is not None and not t.dtype.is_floating:
            ctx.unsupported(f"input '{t.name}' has data type {t.dtype.value}; only float16/float32/float64 are "
                            "supported", UnsupportedCategory.DTYPE)


def checked_kernel_shape(ctx, w, layout: str) -> list[int]:
    """The spatial kernel shape of Conv/ConvTranspose weights `w` (static, matching any kernel_shape attribute);
    `layout` names the weight dims in the error, e.g. "K, C/group"."""
    if w.shape is None or len(w.shape) < 3 or any(d < 0 for d in w.shape):
        ctx.unsupported(f"the weight tensor W needs a static shape ({layout}, k1, ...)",
                        UnsupportedCategory.DYNAMIC_SHAPE)
    kernel = list(ctx.attr("kernel_shape", w.shape[2:]))
    if kernel != list(w.shape[2:]):
        ctx.unsupported(f"kernel_shape {kernel} does not match the weights' shape {list(w.shape)}",
                        UnsupportedCategory.OTHER)
    return kernel


@onnx_op("Conv")
def import_conv(ctx):
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    check_float(ctx, x, w, b)
    kernel = checked_kernel_shape(ctx, w, "K, C/group")
    layer = ctx.network.add_convolution_nd(x, w.shape[0], kernel, w, b, name=ctx.layer_name())
    params = onnx_window_attrs(ctx, len(kernel))
    params["num_groups"] = int(ctx.attr("group", 1))
    for key, value in params.items():
        setattr(layer, key, value)
    return [layer.get_output(0)]
