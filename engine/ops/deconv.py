"""Transposed convolution (LayerType.DECONVOLUTION) and ONNX ConvTranspose, for any number of spatial dims.

Inputs: x (N, C, *spatial), kernel (C, K/groups, *kernel_size) as in ONNX, optional bias (K,). Params are those of
`NetworkDefinition.add_deconvolution_nd` plus `output_shape` (None or the spatial output sizes; ONNX's attribute:
the paddings are then derived from it, as auto_pad SAME_* derives them from input size x stride).

The kernel is one GEMM per group (every input pixel times every kernel tap) followed by a scatter-add of each
kernel tap's plane into the strided output (col2im), then a crop by the paddings.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..enums import LayerType, PaddingMode
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, onnx_op, register_layer
from .conv import check_float, checked_kernel_shape
from .window import kernel_offsets, onnx_window_attrs


def deconv_geometry(layer: Any, in_sizes: Sequence[int], kernel: Sequence[int]) -> tuple[list[int], list[int]]:
    """(output sizes, leading paddings) for the given input sizes; -1 sizes give -1 outputs."""
    p = layer.params
    mode = p["padding_mode"]
    requested = p.get("output_shape")
    outs, pres = [], []
    for i, size in enumerate(in_sizes):
        s, d, k = p["stride_nd"][i], p["dilation_nd"][i], kernel[i]
        extra = p["output_padding"][i]
        if size < 0:
            outs.append(requested[i] if requested else -1)
            pres.append(0)
            continue
        full = (size - 1) * s + d * (k - 1) + 1 + extra
        if requested or mode in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER):
            out = requested[i] if requested else size * s
            total = full - out
            pre = total // 2 if mode == PaddingMode.SAME_UPPER else total - total // 2
        else:
            pre = p["pre_padding"][i]
            out = full - pre - p["post_padding"][i]
        if out < 0:
            raise EngineError(f"transposed convolution output size {out} is negative")
        outs.append(out)
        pres.append(pre)
    return outs, pres


def _infer_deconv(layer, inputs: list[TensorInfo | None]):
    x, w = inputs[0], inputs[1]
    kernel = list(layer.params["kernel_size_nd"])
    groups = int(layer.params["num_groups"])
    if len(x.shape) != len(kernel) + 2:
        raise EngineError(f"input rank {len(x.shape)} does not match a {len(kernel)}-D kernel")
    if x.shape[1] >= 0 and w.shape[0] >= 0 and x.shape[1] != w.shape[0]:
        raise EngineError(f"input has {x.shape[1]} channels, the kernel {w.shape[0]}")
    if x.shape[1] >= 0 and x.shape[1] % groups:
        raise EngineError(f"{x.shape[1]} input channels are not divisible by {groups} groups")
    out, _ = deconv_geometry(layer, x.shape[2:], kernel)
    return [((x.shape[0], int(layer.params["num_output_maps"]), *out), x.dtype)]


def _compute_deconv(layer, inputs, xp):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    dtype = x.dtype
    work = xp.float32 if dtype == xp.float16 else dtype
    x, w = x.astype(work, copy=False), w.astype(work, copy=False)
    groups = int(layer.params["num_groups"])
    kernel = list(w.shape[2:])
    strides, dilations = layer.params["stride_nd"], layer.params["dilation_nd"]
    batch, channels, *in_sizes = x.shape
    out_sizes, pres = deconv_geometry(layer, in_sizes, kernel)
    maps = w.shape[1] * groups
    cg = channels // groups
    taps = w.reshape(groups, cg, -1).transpose(0, 2, 1)  # (G, K/G * prod(k), C/G)
    # The spatial size spelt out, not -1: an empty batch (no detections reach Mask R-CNN's mask head) has
    # size 0, and reshape cannot infer -1 from 0 elements.
    cols = xp.matmul(taps, x.reshape(batch, groups, cg, math.prod(in_sizes)))  # (N, G, K/G*prod(k), prod(in))
    cols = cols.reshape(batch, maps, *kernel, *in_sizes)
    # The canvas holds every tap's contribution plus room for outputs that lie outside it (negative paddings).
    starts = [max(0, -p) for p in pres]
    canvas = [st + max((n - 1) * s + d * (k - 1) + 1, p + o)
              for st, n, s, d, k, p, o in zip(starts, in_sizes, strides, dilations, kernel, pres, out_sizes)]
    y = xp.zeros((batch, maps, *canvas), dtype=work)
    for offset in kernel_offsets(kernel):
        dst = tuple(slice(st + o * d, st + o * d + (n - 1) * s + 1, s)
                    for st, o, n, s, d in zip(starts, offset, in_sizes, strides, dilations))
        y[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *offset)]
    y = y[(slice(None), slice(None), *(slice(st + p, st + p + o) for st, p, o in zip(starts, pres, out_sizes)))]
    if bias is not None:
        y = y + bias.astype(work, copy=False).reshape((-1,) + (1,) * len(kernel))
    return [xp.ascontiguousarray(y).astype(dtype, copy=False)]


register_layer(LayerType.DECONVOLUTION, _infer_deconv, _compute_deconv)


@onnx_op("ConvTranspose")
def import_conv_transpose(ctx):
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    check_float(ctx, x, w, b)
    kernel = checked_kernel_shape(ctx, w, "C, K/group")
    n = len(kernel)
    groups = int(ctx.attr("group", 1))
    layer = ctx.network.add_deconvolution_nd(x, w.shape[1] * groups, kernel, w, b, name=ctx.layer_name())
    params = onnx_window_attrs(ctx, n)
    params["num_groups"] = groups
    params["output_padding"] = list(ctx.attr("output_padding", [0] * n))
    output_shape = ctx.attr("output_shape")
    if output_shape is not None:
        output_shape = list(output_shape)[-n:]  # some exporters include N and C
        if len(output_shape) != n:
            ctx.unsupported(f"output_shape {output_shape} does not give {n} spatial sizes", UnsupportedCategory.OTHER)
    layer.set_params({**params, "output_shape": output_shape})
    return [layer.get_output(0)]
