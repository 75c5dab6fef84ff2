"""GPU convolution kernels written as one NVRTC kernel each (the cuBLAS-based tactics are in gpu_conv_gemm.py).
CuPy is imported inside functions: this module is imported on every machine.

- depthwise_nvrtc: an NVRTC kernel, one thread per output element reading its window directly (no padded copy,
  no GEMM), for groups == channels.
- implicit_gemm_nvrtc: an NVRTC kernel computing the convolution as a GEMM in shared-memory tiles whose input
  tile is gathered on the fly (no im2col buffer), for any 2-D convolution.

float16 layers are staged through float32 workspace buffers and accumulate in float32 (the ConvTactic base).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..dtypes import GPU_KERNEL_FLOAT_TYPES
from ..enums import TacticSource
from .base import TacticContext, stable_tactic_id
from .cpu_conv import ConvGeometry, ConvTactic
from .registry import register_tactic


class _OnDevice:
    """Moves the prepared NumPy weights (and bias) to the GPU once, at prepare time."""

    backend = "gpu"

    def prepare(self, ctx: TacticContext) -> dict:
        import cupy

        state = super().prepare(ctx)
        return {key: cupy.asarray(value) if isinstance(value, np.ndarray) else value for key, value in state.items()}


class _NvrtcConv(_OnDevice, ConvTactic):
    """2-D float32 kernels; float16 layers are staged to float32 by ConvTactic.run."""

    source = TacticSource.JIT_CONVOLUTIONS  # compiled at run time by NVRTC

    def supports(self, ctx: TacticContext) -> bool | str:
        if ctx.inputs[0].dtype not in GPU_KERNEL_FLOAT_TYPES:
            return f"the kernel computes float32 (and float16 staged), not {ctx.inputs[0].dtype.value}"
        return super().supports(ctx)

    def supports_geometry(self, g: ConvGeometry) -> bool | str:
        if len(g.kernel) != 2:
            return f"the kernel handles 2-D convolutions, not {len(g.kernel)}-D"
        return True

    def prepare_weights(self, w: np.ndarray, g: ConvGeometry) -> dict:
        return {"w": np.ascontiguousarray(w.reshape(g.maps, -1), dtype=np.float32)}

    def launch_args(self, state: dict, g: ConvGeometry, x: Any, y: Any, xp: Any) -> list[Any]:
        bias = state["bias"]
        return [xp.ascontiguousarray(x, dtype=xp.float32), state["w"], state["w"] if bias is None else bias,
                np.int32(bias is not None), y]


def _window_args(g: ConvGeometry) -> list[np.int32]:
    return [np.int32(v) for v in (*g.kernel, *g.out_sizes, *g.strides, *g.pre, *g.dilations)]


class DepthwiseNvrtc(_NvrtcConv):
    name = "gpu:conv:depthwise_nvrtc"
    id = stable_tactic_id(name)
    heuristic_rank = 10

    def supports_geometry(self, g):
        if g.groups != g.channels or g.groups == 1:
            return "not a depthwise convolution (groups must equal the input channels)"
        return super().supports_geometry(g)

    def convolve(self, state, g, x, y, buffers, xp):
        from ..backends.nvrtc import kernel, launch_1d

        grid, block = launch_1d(g.batch * g.maps * g.out_pixels)
        args = self.launch_args(state, g, x, y, xp)
        h, w = g.in_sizes
        kernel("gpu_kernels", "depthwise_conv2d")(grid, block, (
            *args, np.int32(g.batch), np.int32(g.channels), np.int32(h), np.int32(w),
            np.int32(g.maps // g.channels), *_window_args(g)))


class ImplicitGemmNvrtc(_NvrtcConv):
    name = "gpu:conv:implicit_gemm_nvrtc"
    id = stable_tactic_id(name)
    heuristic_rank = 25
    tile = 16  # TILE in gpu_kernels.cu

    def convolve(self, state, g, x, y, buffers, xp):
        from ..backends.nvrtc import kernel

        pixels = g.batch * g.out_pixels
        grid = (-(-pixels // self.tile), -(-(g.maps // g.groups) // self.tile), g.groups)
        args = self.launch_args(state, g, x, y, xp)
        h, w = g.in_sizes
        kernel("gpu_kernels", "implicit_gemm_conv2d")(grid, (self.tile, self.tile), (
            *args, np.int32(g.batch), np.int32(g.channels), np.int32(h), np.int32(w), np.int32(g.maps),
            np.int32(g.groups), *_window_args(g)))

    def supports_geometry(self, g):
        if g.groups > 65535 or math.prod(g.out_sizes) * g.batch >= (1 << 31) * self.tile:
            return "the launch grid would exceed CUDA's limits"
        return super().supports_geometry(g)


for _tactic in (DepthwiseNvrtc(), ImplicitGemmNvrtc()):
    register_tactic(_tactic)
