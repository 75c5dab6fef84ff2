"""INT8 convolutions on channels-last (HWC) tensors on the GPU: the INT8 layers of a channels-last build.

On NCHW activations gpu_int8.py's IMMA tactic needs an im2col for every convolution, 1x1 ones included: IMMA
wants the reduction (the channels) contiguous, which NCHW is not. In NHWC memory it is, so, as TensorRT runs its
INT8 convolutions channels-last:
- a 1x1, stride-1, unpadded convolution is ONE int8 GEMM with no im2col: acc (N*H*W, M_pad) = X (N*H*W, C) @
  W (M_pad, C)^T, X read where it lies (its rows copied into a padded buffer only when C is not a multiple of 4);
- any other ungrouped 2-D convolution: an NHWC im2col (kernels/int8.cu: one row per output pixel, taps x
  channels contiguous, padded to 16) and the same GEMM.
gpu_int8_cublaslt.py reuses these operands (`gemm_operands`) with a GEMM that requantizes in its own epilogue.
The accumulator rows are the output's NHWC memory, one channel per column: the INT8 epilogue of gpu_int8.py runs
them in its "channel along the row" mode (the MatMul's), reading an HWC residual in the same order, so the GPU
gives the bits of the CPU INT8 tactics (cpu_int8.py, cpu_int8_nhwc.py). Grouped convolutions join no GPU chain
(`may_run_channels_last`): they stay LINEAR on gpu_int8.py's grouped kernel; an HWC layer this tactic refuses
otherwise (an activation its epilogue lacks) runs on the float64 `gpu:convolution:int8_nhwc` (cpu_int8_nhwc.py).
CuPy is imported inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..enums import LayerType
from ..tensor_formats import STRIDED_FORMATS, storage_order
from .base import TacticContext
from .cpu_conv import ConvGeometry, conv_geometry
from .gpu_int8 import DIM_ALIGNMENT, MAX_REDUCTION, TAP_ALIGNMENT, GpuInt8Tactic, round_up
from .nhwc_windows import channels_last_refusal
from .registry import register_tactic
from .scratch import BufferSpec, carve, total_bytes

INDEX_LIMIT = (1 << 31) - 1  # the epilogue counts output pixels (its planes) in 32-bit ints
STAGED_BYTES = 32 << 10  # shared memory for the im2col rows staged per block (within the 48 KiB default)


def is_pointwise(g: ConvGeometry) -> bool:
    """A convolution that is a plain GEMM over NHWC rows: 1x1 kernel, stride 1, no padding."""
    return g.kernel == (1, 1) and g.strides == (1, 1) and not any(g.pre) and not any(g.post)


def pack_weights(w: np.ndarray, depth: int) -> np.ndarray:
    """(M, C, KH, KW) int8 weights as IMMA's second operand: (M_pad, depth) rows in the NHWC im2col's tap order
    (kh, kw, c), zero-padded to M_pad = M rounded up to 4 and to `depth` columns."""
    maps = w.shape[0]
    rows = w.transpose(0, 2, 3, 1).reshape(maps, -1)
    packed = np.zeros((round_up(maps, DIM_ALIGNMENT), depth), np.int8)
    packed[:maps, :rows.shape[1]] = rows
    return packed


def depths(channels: int, taps: int) -> tuple[int, int]:
    """The GEMM's reduction length for the 1x1 path (C rounded up to 4) and the im2col path (KH*KW*C to 16)."""
    return round_up(channels, DIM_ALIGNMENT), round_up(taps, TAP_ALIGNMENT)


class GpuInt8ConvImmaNhwc(GpuInt8Tactic):
    """NHWC int8 GEMM (+ im2col unless 1x1) + the row epilogue (module docstring)."""

    algorithm = "int8_imma_nhwc"
    formats = STRIDED_FORMATS  # weights and bias stay LINEAR constants; the activations are HWC

    def __init__(self):
        super().__init__(LayerType.CONVOLUTION)

    def supports(self, ctx: TacticContext) -> bool | str:
        return channels_last_refusal(ctx) or super().supports(ctx)

    def may_run_channels_last(self, node) -> bool:
        """Grouped (depthwise) INT8 convolutions only have the float64 fallback in HWC: they stay LINEAR, on
        gpu_int8.py's grouped kernel."""
        return int(node.params.get("num_groups", 1)) == 1

    def channels(self, ctx):
        return ctx.inputs[1].value.shape[0]

    def supports_shapes(self, ctx):
        w = ctx.inputs[1].value
        if int(ctx.layer.params["num_groups"]) != 1:
            return "grouped INT8 convolutions run on gpu:convolution:int8_nhwc (float64)"
        if w.ndim != 4:
            return f"a 2-D convolution's weights are 4-D, not {w.ndim}-D"
        if math.prod(w.shape[1:]) > MAX_REDUCTION:
            return f"more than {MAX_REDUCTION} taps per output could overflow the int32 accumulator"
        g = self.geometry(ctx)
        if g.batch * g.out_pixels > INDEX_LIMIT:
            return "more output pixels than the epilogue's 32-bit count"
        return True

    def geometry(self, ctx: TacticContext) -> ConvGeometry:
        return conv_geometry(ctx.layer, tuple(ctx.inputs[0].shape), ctx.inputs[1].value.shape)

    @staticmethod
    def buffers(g: ConvGeometry) -> list[BufferSpec]:
        """The GEMM's int8 rows when X cannot be read where it lies ((0,) when it can), and the int32 accumulators
        (N*OH*OW, M_pad)."""
        rows = g.batch * g.out_pixels
        pointwise_depth, im2col_depth = depths(g.channels, g.channels * math.prod(g.kernel))
        if is_pointwise(g):
            cols = (rows, pointwise_depth) if pointwise_depth != g.channels else (0,)
        else:
            cols = (rows, im2col_depth)
        return [(cols, np.int8), ((rows, round_up(g.maps, DIM_ALIGNMENT)), np.int32)]

    def workspace_bytes(self, ctx):
        return total_bytes(self.buffers(self.geometry(ctx)))

    def prepare(self, ctx):
        import cupy

        w = np.asarray(ctx.inputs[1].value)
        pointwise_depth, im2col_depth = depths(w.shape[1], math.prod(w.shape[1:]))
        state = self.epilogue_state(ctx)
        state.update(kernel_shape=w.shape, w_im2col=cupy.asarray(pack_weights(w, im2col_depth)),
                     w_pointwise=cupy.asarray(pack_weights(w, pointwise_depth)) if w.shape[2:] == (1, 1) else None)
        return state

    @staticmethod
    def geometry_at(state: dict, shape: tuple[int, ...]) -> ConvGeometry:
        """The geometry at an input shape, made on the first run at that shape, before any CUDA-graph capture."""
        g = state["geometry"].get(shape)
        if g is None:
            g = state["geometry"][shape] = conv_geometry(state["layer"], shape, state["kernel_shape"])
        return g

    @staticmethod
    def gemm_operands(state: dict, g: ConvGeometry, x: Any, cols: Any, xp: Any) -> tuple[Any, Any]:
        """The GEMM's int8 operands (rows of N*OH*OW output pixels, the packed weights), both with the reduction
        contiguous: X itself for a 1x1 convolution whose C is a multiple of 4, else rows written into `cols` (the
        padded rows, or the NHWC im2col: 16 channels per thread when C is a multiple of 16, the usual case, else
        window rows staged in shared memory and written out 16 bytes at a time)."""
        from ..backends.nvrtc import kernel, launch_1d

        rows = g.batch * g.out_pixels
        if is_pointwise(g):
            w = state["w_pointwise"]
            depth = w.shape[1]
            if depth == g.channels:
                return x.reshape(rows, depth), w
            grid, block = launch_1d(rows * depth)
            kernel("int8", "pad_rows_int8")(grid, block, (x, cols, np.int64(rows), np.int32(g.channels),
                                                          np.int32(depth)))
            return cols, w
        w = state["w_im2col"]
        depth = w.shape[1]
        (kh, kw), (oh, ow) = g.kernel, g.out_sizes
        window = (*g.strides, *g.pre, *g.dilations)
        if g.channels % 16 == 0 and x.data.ptr % 16 == 0 and cols.data.ptr % 16 == 0:
            grid, block = launch_1d(rows * depth // 16)
            kernel("int8", "im2col_nhwc_int8_x16")(grid, block, (x, cols, np.int64(rows), *(np.int32(v) for v in (
                *g.in_sizes, g.channels // 16, oh, ow, kw, kh * kw, *window))))
            return cols, w
        sizes = tuple(np.int32(v) for v in (depth, *g.in_sizes, g.channels, oh, ow, kh, kw, *window))
        tile = min(64, STAGED_BYTES // depth)
        if tile and cols.data.ptr % 16 == 0:  # rows staged in shared memory, written 16 bytes at a time
            grid = (max(1, min(-(-rows // tile), 1 << 16)),)
            kernel("int8", "im2col_nhwc_int8_tiled")(grid, (256,), (x, cols, np.int64(rows), *sizes, np.int32(tile)),
                                                     shared_mem=tile * depth)
            return cols, w
        grid, block = launch_1d(rows * kh)
        kernel("int8", "im2col_nhwc_int8")(grid, block, (x, cols, np.int64(rows), *sizes))
        return cols, w

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.cublas_gemm import COMPUTE_32I, Operand, gemm

        out = outputs[0]
        if inputs[0].size == 0 or out.size == 0:
            return
        g = self.geometry_at(state, tuple(inputs[0].shape))
        x = xp.ascontiguousarray(storage_order(inputs[0]))  # (N, H, W, C): the HWC tensor's own memory
        rows = g.batch * g.out_pixels
        cols, acc = carve(workspace, self.buffers(g), xp)
        a, w = self.gemm_operands(state, g, x, cols, xp)
        depth, width = w.shape[1], acc.shape[1]
        gemm(Operand(a, rows, depth, False, 0), Operand(w, width, depth, True, 0), Operand(acc, rows, width, False, 0),
             1, COMPUTE_32I)
        if state["residual"] is not None:  # the epilogue reads it in the output's (NHWC) order
            inputs = list(inputs)
            inputs[state["residual"]] = storage_order(inputs[state["residual"]])
        self.finish(state, acc, inputs, storage_order(out), rows, 0, g.maps, width, 0, xp)


register_tactic(GpuInt8ConvImmaNhwc())
