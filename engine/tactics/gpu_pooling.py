"""GPU pooling tactics, one NVRTC kernel each (kernels/pooling.cu), reading float32 or float16 directly:

- max_pool_nvrtc: max pooling over 1-D and 2-D windows with no padded copy; one thread per output pixel; INT8
  tensors too (the quantized values a MaxPool moves in INT8 networks).
- global_avg_pool_nvrtc: average pooling over whole planes (GlobalAveragePool), one warp per plane summing in
  float32.

Both run HWC (channels-last) tensors too, with their NHWC kernels (one thread per output value, channel innermost).

Windowed average and Lp pooling, and max pooling that also returns indices, stay with the reference kernel.
CuPy is imported inside functions: this module is imported on every machine."""
from __future__ import annotations

import numpy as np

from ..backends.kernel_sources import storage_kernel
from ..dtypes import GPU_KERNEL_FLOAT_TYPES, DataType
from ..enums import LayerType, PoolingType, TensorFormat
from ..ops.pooling import pooling_geometry
from ..tensor_formats import FROM_CHANNELS_LAST, storage_order
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic

# NHWC max pooling four channels per thread, by storage type (C a multiple of 4)
_VECTOR_KERNELS = {np.dtype(np.int8): "max_pool2d_nhwc_i8x4", np.dtype(np.float16): "max_pool2d_nhwc_f16x4"}


class _PoolingNvrtc(Tactic):
    """Checks shared by the pooling kernels: float storage and a concrete input shape."""

    layer_type = LayerType.POOLING
    backend = "gpu"
    heuristic_rank = 20
    formats = frozenset({TensorFormat.LINEAR, TensorFormat.HWC})

    def prepare(self, ctx: TacticContext) -> dict:
        return {"layer": ctx.layer, "geometry": {}, "channels_last": ctx.channels_last}

    storage_types = GPU_KERNEL_FLOAT_TYPES

    def supports(self, ctx: TacticContext) -> bool | str:
        p, x = ctx.layer.params, ctx.inputs[0]
        if x.dtype not in self.storage_types or ctx.outputs[0].dtype != x.dtype:
            names = "/".join(sorted(t.value for t in self.storage_types))
            return f"the kernel takes and writes one of {names}, not {x.dtype.value} -> {ctx.outputs[0].dtype.value}"
        if x.shape is None or any(d < 0 for d in x.shape) or len(x.shape) < len(p["window_size_nd"]) + 1:
            return "the input shape is not concrete"
        if ctx.channels_last and (len(x.shape) != 4 or len(p["window_size_nd"]) != 2):
            return "the NHWC kernels pool 2-D windows of 4-D tensors"
        return self.supports_pooling(ctx.layer, x)

    def supports_pooling(self, layer, x) -> bool | str:
        raise NotImplementedError


class MaxPoolNvrtc(_PoolingNvrtc):
    name = "gpu:pooling:max_pool_nvrtc"
    id = stable_tactic_id(name)
    # INT8 too: a MaxPool the q_commute rule left moving quantized values (max commutes with quantization)
    storage_types = GPU_KERNEL_FLOAT_TYPES | {DataType.INT8}

    def supports_pooling(self, layer, x):
        p = layer.params
        if PoolingType(p["pooling_type"]) != PoolingType.MAX or p.get("return_indices"):
            return "the kernel computes max pooling without indices"
        if len(p["window_size_nd"]) not in (1, 2):
            return f"the kernel handles 1-D and 2-D windows, not {len(p['window_size_nd'])}-D"
        return True

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import kernel

        if state["channels_last"]:
            self._run_nhwc(state, inputs[0], outputs[0], xp)
            return
        x, y = xp.ascontiguousarray(inputs[0]), outputs[0]
        args = state["geometry"].get(x.shape)
        if args is None:
            args = state["geometry"][x.shape] = self._launch(state["layer"], x.shape)
        grid, block, sizes = args
        target = y if y.flags.c_contiguous else xp.empty(y.shape, y.dtype)
        kernel("pooling", storage_kernel("max_pool2d", x.dtype))(grid, block, (x, target, *sizes))
        if target is not y:
            xp.copyto(y, target)

    def _run_nhwc(self, state, x, y, xp) -> None:
        from ..backends.nvrtc import kernel

        key = ("nhwc", x.shape)
        sizes = state["geometry"].get(key)
        if sizes is None:
            p = state["layer"].params
            kernel_sizes, (out, pre, _) = pooling_geometry(state["layer"], list(x.shape[2:]))
            sizes = state["geometry"][key] = tuple(np.int32(v) for v in (
                x.shape[0], x.shape[1], *x.shape[2:], *out, *kernel_sizes, *p["stride_nd"], *pre,
                *(p.get("dilation_nd") or [1, 1])))
        source, target, separate = nhwc_buffers(x, y, xp)
        channels, vector = x.shape[1], _VECTOR_KERNELS.get(np.dtype(x.dtype))
        if vector and channels % 4 == 0 and source.data.ptr % 8 == 0 and target.data.ptr % 8 == 0:
            kernel("pooling", vector)(  # four channels per thread
                (min(-(-y.size // 1024), 1 << 20),), (256,), (source, target, sizes[0], np.int32(channels // 4),
                                                              *sizes[2:]))
        else:
            kernel("pooling", storage_kernel("max_pool2d_nhwc", x.dtype))(
                (min(-(-y.size // 256), 1 << 20),), (256,), (source, target, *sizes))
        if separate:
            xp.copyto(y, target.transpose(FROM_CHANNELS_LAST))

    @staticmethod
    def _launch(layer, shape: tuple[int, ...]) -> tuple:
        from ..backends.nvrtc import GRID_YZ_LIMIT, plane_threads

        p = layer.params
        n = len(p["window_size_nd"])
        kernel_sizes, (out, pre, _) = pooling_geometry(layer, list(shape[-n:]))
        pad = 2 - n  # 1-D pooling runs as a 2-D window of height 1
        in_sizes, out = [1] * pad + list(shape[-n:]), [1] * pad + list(out)
        window, pre = [1] * pad + list(kernel_sizes), [0] * pad + list(pre)
        strides = [1] * pad + list(p["stride_nd"])
        dilations = [1] * pad + list(p.get("dilation_nd") or [1] * n)
        planes = int(np.prod(shape[:-n], dtype=np.int64))
        pixels = out[0] * out[1]
        threads = plane_threads(pixels)
        sizes = tuple(np.int32(v) for v in (planes, *in_sizes, *out, *window, *strides, *pre, *dilations))
        return (-(-pixels // threads), min(planes, GRID_YZ_LIMIT)), (threads,), sizes


class GlobalAvgPoolNvrtc(_PoolingNvrtc):
    name = "gpu:pooling:global_avg_pool_nvrtc"
    id = stable_tactic_id(name)

    def supports_pooling(self, layer, x):
        p = layer.params
        if PoolingType(p["pooling_type"]) != PoolingType.AVERAGE:
            return "the kernel computes average pooling"
        n = len(p["window_size_nd"])
        one_window = pooling_geometry(layer, list(x.shape[-n:]))[1][0] == [1] * n
        if not one_window or any(p["pre_padding"]) or any(p["post_padding"]):
            return "not a global average pooling (one unpadded window per plane)"
        return True

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import kernel

        if state["channels_last"]:
            x, y = inputs[0], outputs[0]
            source, target, separate = nhwc_buffers(x, y, xp)
            planes = x.shape[0] * x.shape[1]
            kernel("pooling", storage_kernel("global_avg_pool_nhwc", x.dtype))(
                (min(-(-planes // 256), 1 << 20),), (256,),
                (source, target, np.int32(x.shape[0]), np.int32(x.shape[1]), np.int32(x.shape[2] * x.shape[3])))
            if separate:
                xp.copyto(y, target.transpose(FROM_CHANNELS_LAST))
            return
        x, y = xp.ascontiguousarray(inputs[0]), outputs[0]
        planes = y.size
        pixels = x.size // max(planes, 1)
        target = y if y.flags.c_contiguous else xp.empty(y.shape, y.dtype)
        kernel("pooling", storage_kernel("global_avg_pool", x.dtype))(
            (min(-(-planes // 8), 1 << 20),), (32, 8), (x, target, np.int32(planes), np.int32(pixels)))
        if target is not y:
            xp.copyto(y, target)


def nhwc_buffers(x, y, xp) -> tuple:
    """The input and output of an NHWC kernel in memory order (N, H, W, C), C-contiguous: the tensors' own
    memory when they are laid out channels-last (the format pass's HWC tensors), else copies; and whether the
    output is such a copy (to be copied into `y` after the kernel)."""
    source = storage_order(x)
    if not source.flags.c_contiguous:
        source = xp.ascontiguousarray(source)
    target = storage_order(y)
    if target.flags.c_contiguous:
        return source, target, False
    return source, xp.empty(target.shape, y.dtype), True


register_tactic(MaxPoolNvrtc())
register_tactic(GlobalAvgPoolNvrtc())
