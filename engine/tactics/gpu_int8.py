"""INT8 convolution and matrix multiply on the GPU's tensor cores: int8 x int8 -> int32 cuBLAS GEMMs
(cublasGemmStridedBatchedEx, CUDA_R_8I operands, CUDA_R_32I result, CUBLAS_COMPUTE_32I: cuBLAS's IMMA kernels),
then one NVRTC epilogue (kernels/int8.cu) from the int32 accumulators to the layer's output.

- gpu:convolution:int8_imma_gemm: an int8 im2col (one launch for the batch) writes per-sample rows of window
  taps, cols[n] = (P_pad, Q_pad); one strided-batched GEMM C[n] = W (M_pad, Q_pad) @ cols[n]^T writes NCHW
  planes of int32 accumulators; the epilogue writes the output. A 1x1 convolution still goes through the im2col:
  on NCHW activations it is the transpose that puts the channels (the reduction) contiguous, which IMMA needs.
- gpu:matrix_multiply:int8_imma_gemm: C (rows, N_pad) = X (rows, K_pad) @ W^T, the input's rows copied into a
  padded buffer only when K is not a multiple of 4.
- gpu:convolution:int8_direct_grouped: grouped (depthwise: MobileNet's) convolutions, which a GEMM serves badly:
  one NVRTC kernel sums each output's window in int32, then the same epilogue.

IMMA's rules (the "TN" layout, cuBLASLt's documented IMMA requirements): the reduction dimension contiguous in
both operands, the GEMM's M and K and every leading dimension a multiple of 4. Everything is zero-padded to get
there (weights once in `prepare`; taps to 16, pixels and output channels to 4), so no shape is refused for its
sizes. The epilogue computes y = acc * (input_scale * weight_scale[c]) + bias[c], the residual, the activation,
and the requantization saturate(round_half_even(y / output_scale)) in float64 in the CPU INT8 tactic's order
(cpu_int8.py), so the GPU's INT8 layers give the CPU's bits.

cuBLAS rather than cuBLASLt through nvmath-python: the int8 GEMM is in the cuBLAS the GPU machine already has
(no extra wheel, no import guard), it is called through the same ctypes path as the float GEMMs (capturable in
a CUDA graph), and the exact epilogue (per-channel float64 scales, INT8 residuals, half-to-even requantization)
is ours either way. The fast path of channels-last builds, where cuBLASLt requantizes in float32 inside the GEMM
(within one step, not the CPU's bits), is gpu_int8_cublaslt.py. The float64 tactics of cpu_int8.py stay
registered for the GPU as fallbacks (3-D convolutions, activations this epilogue lacks). CuPy is imported inside
functions.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, TacticSource
from ..evaluator import is_static
from .base import TacticContext, stable_tactic_id
from .cpu_conv import ConvGeometry, conv_geometry
from .cpu_int8 import Int8Tactic
from .gpu_conv_gemm import ACTIVATION_KINDS, as_2d, tap_table
from .registry import register_tactic
from .scratch import BufferSpec, carve, total_bytes

# IMMA wants M, K and the leading dimensions in multiples of 4; taps are padded to 16 (16-byte rows).
DIM_ALIGNMENT = 4
TAP_ALIGNMENT = 16
# Residual kinds of the epilogue (kernels/int8.cu residual_value): by the residual tensor's storage type.
RESIDUAL_KINDS = {DataType.FLOAT: 1, DataType.HALF: 2, DataType.INT8: 3}
_OUTPUT_KERNELS = {DataType.FLOAT: "int8_epilogue_f32", DataType.HALF: "int8_epilogue_f16",
                   DataType.INT8: "int8_epilogue_i8"}
# int8 x int8 products are at most 128 * 128 = 2**14 in size: an int32 sum of up to 2**17 of them cannot overflow.
MAX_REDUCTION = 1 << 17
_TARGET_BLOCKS = 8192  # im2col: tap chunks are spread over blocks until about this many
_PLANES_PER_THREAD = 8  # epilogue: a thread loops over a few planes, so a block pays for its launch


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class GpuInt8Tactic(Int8Tactic):
    """Shared plumbing: the INT8-layer checks of cpu_int8 (quantized input, INT8 constant weights), the epilogue's
    parts, its device state and its launch."""

    source = TacticSource.CUBLAS  # the GEMM is cuBLAS; the layout and epilogue kernels are ours (NVRTC)
    heuristic_rank = 5  # ahead of the float64 tactics (10)
    algorithm = "int8_imma_gemm"

    def __init__(self, layer_type: LayerType):
        super().__init__(layer_type, "gpu")
        self.name = f"gpu:{layer_type.value.lower()}:{self.algorithm}"
        self.id = stable_tactic_id(self.name)
        self.capturable = True  # cuBLAS through ctypes on the current stream, NVRTC kernels: nothing syncs

    def supports(self, ctx: TacticContext) -> bool | str:
        ok = super().supports(ctx)
        if ok is not True:
            return ok
        epilogue, out = ctx.epilogue, ctx.outputs[0]
        if out.dtype not in _OUTPUT_KERNELS or (out.dtype == DataType.INT8) != (epilogue.output_scale is not None):
            return f"the epilogue writes FLOAT or HALF, or INT8 with an output scale, not {out.dtype.value}"
        activation = epilogue.activation
        if activation is not None and activation.type not in ACTIVATION_KINDS:
            return f"the epilogue does not implement a fused {activation.type.value} (the float64 tactic does)"
        if epilogue.residual is not None:
            residual = ctx.inputs[epilogue.residual]
            int8_residual = "residual_scale" in ctx.layer.params["int8"]
            if residual is None or residual.dtype not in RESIDUAL_KINDS or \
                    (residual.dtype == DataType.INT8) != int8_residual:
                return "the residual is not FLOAT, HALF, or INT8 with a residual scale"
        if not is_static(ctx.inputs[0].shape):
            return "the input shape is not concrete"
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if bias is not None and (bias.value is None or (math.prod(bias.value.shape) != 1 and (
                bias.value.shape[-1] != self.channels(ctx) or bias.value.size != self.channels(ctx)))):
            return "the bias is not a constant with one value per output channel"
        return self.supports_shapes(ctx)

    def channels(self, ctx: TacticContext) -> int:
        raise NotImplementedError

    def supports_shapes(self, ctx: TacticContext) -> bool | str:
        return True

    def epilogue_state(self, ctx: TacticContext) -> dict[str, Any]:
        """Scales and bias as float64 device arrays (one per output channel) and the epilogue's scalars."""
        import cupy

        quantization, epilogue = ctx.layer.params["int8"], ctx.epilogue
        channels = self.channels(ctx)
        scales = quantization["input_scale"] * np.asarray(quantization["weight_scales"], np.float64)
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        activation = epilogue.activation
        return {
            "layer": ctx.layer, "geometry": {},
            "scales": cupy.asarray(np.ascontiguousarray(np.broadcast_to(scales, channels))),
            "bias": None if bias is None else cupy.asarray(
                np.ascontiguousarray(np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), channels))),
            "residual": epilogue.residual,
            "residual_scale": np.float32(quantization.get("residual_scale", 0.0)),
            "activation": (np.int32(0 if activation is None else ACTIVATION_KINDS[activation.type]),
                           np.float64(0.0 if activation is None else activation.alpha),
                           np.float64(0.0 if activation is None else activation.beta)),
            "output_scale": np.float64(epilogue.output_scale or 0.0),
        }

    @staticmethod
    def finish(state: dict, acc: Any, inputs: list, out: Any, planes: int, channels: int, inner: int,
               acc_outer: int, acc_channel: int, xp: Any) -> None:
        """The epilogue launch: out[plane][i] from acc[(plane / channels) * acc_outer + (plane % channels) *
        acc_channel + i]; channels == 0 means one channel per column i (a GEMM's rows as planes)."""
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel, plane_threads
        from ..dtypes import from_numpy

        y = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        residual, residual_kind = acc, 0  # a placeholder pointer when there is no residual
        if state["residual"] is not None:  # read elementwise in the output's layout
            source = inputs[state["residual"]]
            residual = xp.ascontiguousarray(xp.broadcast_to(source, y.shape))
            residual_kind = RESIDUAL_KINDS[from_numpy(source.dtype)]
        bias = state["bias"]
        kind, alpha, beta = state["activation"]
        threads = plane_threads(inner)
        grid = (-(-inner // threads), max(1, min(-(-planes // _PLANES_PER_THREAD), GRID_YZ_LIMIT)))
        kernel("int8", _OUTPUT_KERNELS[from_numpy(y.dtype)])(grid, (threads,), (
            acc, y, state["scales"], state["scales"] if bias is None else bias, np.int32(bias is not None),
            residual, np.int32(residual_kind), state["residual_scale"], kind, alpha, beta, state["output_scale"],
            np.int32(planes), np.int32(max(channels, 1)), np.int32(inner), np.int64(acc_outer),
            np.int32(acc_channel), np.int32(channels == 0)))
        if y is not out:
            xp.copyto(out, y)


class GpuInt8ConvImma(GpuInt8Tactic):
    """int8 im2col + one strided-batched IMMA GEMM + the epilogue (module docstring)."""

    def __init__(self):
        super().__init__(LayerType.CONVOLUTION)

    def channels(self, ctx):
        return ctx.inputs[1].value.shape[0]

    def supports_shapes(self, ctx):
        if int(ctx.layer.params["num_groups"]) != 1:
            return "grouped convolutions run on int8_direct_grouped"
        refusal = self.window_refusal(ctx.inputs[1].value, "the im2col kernel")
        if refusal:
            return refusal
        g = self.geometry(ctx)
        limit = (1 << 31) - 1
        if max(g.channels * math.prod(g.in_sizes), g.batch * g.maps,
               round_up(g.out_pixels, DIM_ALIGNMENT) * round_up(g.maps, DIM_ALIGNMENT)) > limit:
            return "a sample, the output planes or one sample's accumulators exceed the kernels' 32-bit indexing"
        return True

    @staticmethod
    def window_refusal(weights: np.ndarray, kernel_name: str) -> str | None:
        """Why the kernels cannot take these weights (rank, or taps that could overflow int32), None if they can."""
        if weights.ndim not in (3, 4):
            return f"{kernel_name} handles 1-D and 2-D convolutions, not {weights.ndim - 2}-D"
        if math.prod(weights.shape[1:]) > MAX_REDUCTION:
            return f"more than {MAX_REDUCTION} taps per output could overflow the int32 accumulator"
        return None

    def geometry(self, ctx: TacticContext) -> ConvGeometry:
        return as_2d(conv_geometry(ctx.layer, ctx.inputs[0].shape, ctx.inputs[1].value.shape))

    @staticmethod
    def tap_geometry(g: ConvGeometry) -> ConvGeometry:
        """The geometry whose window taps one output reads: all input channels (one group)."""
        return g

    def shape_state(self, state: dict, shape: tuple[int, ...], xp: Any) -> tuple[ConvGeometry, list[BufferSpec], Any]:
        """(geometry, scratch specs, device tap table) for an input shape; made on the first run at that shape,
        before any CUDA-graph capture, which then replays it."""
        cached = state["geometry"].get(shape)
        if cached is None:
            g = as_2d(conv_geometry(state["layer"], shape, state["kernel_shape"]))
            cached = state["geometry"][shape] = (
                g, self.buffers(g), xp.asarray(tap_table(self.tap_geometry(g), state["w"].shape[1])))
        return cached

    @staticmethod
    def buffers(g: ConvGeometry) -> list[BufferSpec]:
        """cols (N, P_pad, Q_pad) int8 and the accumulators (N, M_pad, P_pad) int32."""
        pixels, depth = round_up(g.out_pixels, DIM_ALIGNMENT), round_up(g.channels * math.prod(g.kernel),
                                                                         TAP_ALIGNMENT)
        return [((g.batch, pixels, depth), np.int8), ((g.batch, round_up(g.maps, DIM_ALIGNMENT), pixels), np.int32)]

    def workspace_bytes(self, ctx):
        return total_bytes(self.buffers(self.geometry(ctx)))

    def prepare(self, ctx):
        import cupy

        w = np.asarray(ctx.inputs[1].value)
        maps, taps = w.shape[0], math.prod(w.shape[1:])
        packed = np.zeros((round_up(maps, DIM_ALIGNMENT), round_up(taps, TAP_ALIGNMENT)), np.int8)
        packed[:maps, :taps] = w.reshape(maps, taps)
        state = self.epilogue_state(ctx)
        state.update(w=cupy.asarray(packed), kernel_shape=w.shape)
        return state

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.cublas_gemm import COMPUTE_32I, Operand, gemm
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel

        x = xp.ascontiguousarray(inputs[0])
        if x.size == 0 or outputs[0].size == 0:
            return
        g, specs, taps = self.shape_state(state, x.shape, xp)
        cols, acc = carve(workspace, specs, xp)
        (batch, pixels, depth), maps = cols.shape, acc.shape[1]
        row_tiles = -(-(batch * pixels) // 32)
        grid = (row_tiles, max(1, min(-(-depth // 32), -(-_TARGET_BLOCKS // row_tiles), GRID_YZ_LIMIT)))
        kernel("int8", "im2col_int8")(grid, (32, 8), (
            x, cols, taps, *(np.int32(v) for v in (batch, depth, g.channels * math.prod(g.in_sizes), *g.in_sizes,
                                                    *g.out_sizes, *g.strides, *g.pre, pixels))))
        gemm(Operand(state["w"], maps, depth, False, 0), Operand(cols, pixels, depth, True, pixels * depth),
             Operand(acc, maps, pixels, False, maps * pixels), batch, COMPUTE_32I)
        self.finish(state, acc, inputs, outputs[0], batch * g.maps, g.maps, g.out_pixels, maps * pixels, pixels, xp)


class GpuInt8MatmulImma(GpuInt8Tactic):
    """X (..., K) int8 @ W (K, N) int8 as one IMMA GEMM over all rows + the epilogue (module docstring)."""

    def __init__(self):
        super().__init__(LayerType.MATRIX_MULTIPLY)

    def channels(self, ctx):
        return ctx.inputs[1].value.shape[-1]

    def supports_shapes(self, ctx):
        x, w = ctx.inputs[0], ctx.inputs[1].value
        if w.ndim != 2 or len(x.shape) < 2:
            return "the INT8 GEMM takes a 2-D weight matrix and an input of rank 2 or more"
        if w.shape[0] > MAX_REDUCTION:
            return f"a reduction longer than {MAX_REDUCTION} could overflow the int32 accumulator"
        if tuple(ctx.outputs[0].shape) != (*x.shape[:-1], w.shape[1]):
            return "the output is not the input's rows times the weights' columns"
        if math.prod(x.shape[:-1]) > (1 << 31) - 1:
            return "more rows than the epilogue's 32-bit plane count"
        return True

    @staticmethod
    def buffers(rows: int, k: int, n: int) -> list[BufferSpec]:
        """The padded input (rows, K_pad) int8 (empty when K is aligned) and the accumulators (rows, N_pad)."""
        depth = round_up(k, DIM_ALIGNMENT)
        return [((rows, depth) if depth != k else (0,), np.int8), ((rows, round_up(n, DIM_ALIGNMENT)), np.int32)]

    def workspace_bytes(self, ctx):
        x, w = ctx.inputs[0], ctx.inputs[1].value
        return total_bytes(self.buffers(math.prod(x.shape[:-1]), *w.shape))

    def prepare(self, ctx):
        import cupy

        w = np.asarray(ctx.inputs[1].value)
        k, n = w.shape
        packed = np.zeros((round_up(n, DIM_ALIGNMENT), round_up(k, DIM_ALIGNMENT)), np.int8)
        packed[:n, :k] = w.T  # (N, K): the reduction contiguous, as IMMA reads it
        state = self.epilogue_state(ctx)
        state.update(w=cupy.asarray(packed), k=k, n=n)
        return state

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.cublas_gemm import COMPUTE_32I, Operand, gemm
        from ..backends.nvrtc import kernel, launch_1d

        x = xp.ascontiguousarray(inputs[0])
        if outputs[0].size == 0:
            return
        k, n = state["k"], state["n"]
        rows = x.size // k
        padded, acc = carve(workspace, self.buffers(rows, k, n), xp)
        depth, width = state["w"].shape[1], acc.shape[1]
        if depth != k:
            grid, block = launch_1d(rows * depth)
            kernel("int8", "pad_rows_int8")(grid, block, (x, padded, np.int64(rows), np.int32(k),
                                                                np.int32(depth)))
            x = padded
        gemm(Operand(x, rows, depth, False, 0), Operand(state["w"], width, depth, True, 0),
             Operand(acc, rows, width, False, 0), 1, COMPUTE_32I)
        self.finish(state, acc, inputs, outputs[0], rows, 0, n, width, 0, xp)


class GpuInt8GroupedConv(GpuInt8ConvImma):
    """Grouped (depthwise) INT8 convolutions: one NVRTC kernel sums each output's window in int32 (no GEMM: a
    depthwise convolution has one channel per group), then the same epilogue."""

    source = TacticSource.JIT_CONVOLUTIONS  # our NVRTC kernels only
    algorithm = "int8_direct_grouped"

    def supports_shapes(self, ctx):
        if int(ctx.layer.params["num_groups"]) == 1:
            return "ungrouped convolutions run as IMMA GEMMs (int8_imma_gemm)"
        refusal = self.window_refusal(ctx.inputs[1].value, "the kernel")
        if refusal:
            return refusal
        g = self.geometry(ctx)
        if max(g.channels * math.prod(g.in_sizes), g.batch * g.maps * g.out_pixels) > (1 << 31) - 1:
            return "a sample or the output exceeds the kernel's 32-bit indexing"
        return True

    @staticmethod
    def buffers(g: ConvGeometry) -> list[BufferSpec]:
        return [((g.batch, g.maps, g.out_pixels), np.int32)]

    @staticmethod
    def tap_geometry(g: ConvGeometry) -> ConvGeometry:
        """One output reads the window of its own group's channels only."""
        return replace(g, channels=g.channels // g.groups)

    def prepare(self, ctx):
        import cupy

        w = np.asarray(ctx.inputs[1].value)
        state = self.epilogue_state(ctx)
        state.update(w=cupy.asarray(np.ascontiguousarray(w.reshape(w.shape[0], -1))), kernel_shape=w.shape)
        return state

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel, plane_threads

        x = xp.ascontiguousarray(inputs[0])
        if x.size == 0 or outputs[0].size == 0:
            return
        g, specs, taps = self.shape_state(state, x.shape, xp)
        (acc,) = carve(workspace, specs, xp)
        planes, pixels, threads = g.batch * g.maps, g.out_pixels, plane_threads(g.out_pixels)
        grid = (-(-pixels // threads), max(1, min(-(-planes // _PLANES_PER_THREAD), GRID_YZ_LIMIT)))
        group_channels = g.channels // g.groups
        kernel("int8", "grouped_conv_int8")(grid, (threads,), (x, state["w"], acc, taps, *(np.int32(v) for v in (
            planes, g.maps, g.maps // g.groups, state["w"].shape[1], g.channels * math.prod(g.in_sizes),
            group_channels * math.prod(g.in_sizes), *g.in_sizes, *g.out_sizes, *g.strides, *g.pre))))
        self.finish(state, acc, inputs, outputs[0], planes, g.maps, pixels, g.maps * pixels, pixels, xp)


for _tactic in (GpuInt8ConvImma(), GpuInt8MatmulImma(), GpuInt8GroupedConv()):
    register_tactic(_tactic)
