"""GPU convolutions as cuBLAS GEMMs in the layer's own precision: FP16 storage on tensor cores with FP32
accumulation, FP32 (IEEE), or TF32 tensor cores for FP32 layers when BuilderFlag.TF32 is set. Around the GEMM,
one NVRTC im2col launch covers the whole batch and one epilogue launch adds the bias and a fused residual and
applies the fused activation (ReLU, Clip, LeakyReLU; other activations run after it), so a convolution is two
or three kernels.

- im2col_gemm: columns per sample, cols[n] = (C*KH*KW, P) for P output pixels, then one GEMM strided-batched
  over the samples, Y[n] = W @ cols[n], written straight into the NCHW output (one GEMM call per group).
- pointwise_gemm: unpadded stride-1 1x1 convolutions read the input as the GEMM operand: no im2col at all.
- im2col_gemm_rows: one row per output pixel of the whole batch, so ONE GEMM of N*P rows covers every sample
  (Y' = cols @ W^T); the epilogue transposes Y' into NCHW through shared memory. Wins where P is small (late
  ResNet stages: 7x7 pixels), where batched GEMMs of narrow matrices leave the tensor cores idle.

CuPy is imported inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.kernel_sources import storage_kernel
from ..dtypes import DataType
from ..enums import ActivationType, TacticSource
from ..ir.epilogue import ACTIVATION, RESIDUAL, Epilogue, apply_epilogue
from .base import TacticContext, stable_tactic_id
from .cpu_conv import ConvGeometry, ConvTactic, conv_geometry
from .registry import register_tactic
from .scratch import BufferSpec, carve, total_bytes

# Fused activations the epilogue applies itself (kernels/conv_gemm.cu `activate`); 0 = none.
ACTIVATION_KINDS = {ActivationType.RELU: 1, ActivationType.CLIP: 2, ActivationType.LEAKY_RELU: 3}
_STORAGE = {DataType.FLOAT: np.float32, DataType.HALF: np.float16}
# Work per thread of the elementwise-shaped kernels: a block of a few hundred one-element threads costs more to
# launch than its work, so threads loop over taps / planes.
_TAPS_PER_THREAD = 16
_PLANES_PER_THREAD = 8
_TARGET_BLOCKS = 8192  # im2col_rows: tap chunks are spread over blocks until about this many


def tap_table(g: ConvGeometry, length: int) -> np.ndarray:
    """int32 (3, length) for the im2col kernels: per window tap q = (c, r, s) of a sample, the channel offset
    c*H*W, the row offset r*DH and the column offset s*DW (kernels/conv_gemm.cu). Entries past the C*KH*KW taps
    pad a column row to `length` with zeros: their row offset lies outside every input."""
    (height, width), (kh, kw), (dh, dw) = g.in_sizes, g.kernel, g.dilations
    c, r, s = np.meshgrid(np.arange(g.channels), np.arange(kh), np.arange(kw), indexing="ij")
    table = np.zeros((3, length), np.int64)
    table[1, c.size:] = -(1 << 30)
    table[:, :c.size] = [c.ravel() * height * width, r.ravel() * dh, s.ravel() * dw]
    return table.astype(np.int32)


def as_2d(g: ConvGeometry) -> ConvGeometry:
    """A 1-D convolution as a 2-D one of height 1 (the kernels are 2-D); 2-D geometries unchanged."""
    if len(g.kernel) == 2:
        return g
    return ConvGeometry(g.batch, g.channels, g.maps, g.groups, (1, *g.in_sizes), (1, *g.kernel), (1, *g.out_sizes),
                        (0, *g.pre), (0, *g.post), (1, *g.strides), (1, *g.dilations))


class _ConvGemm(ConvTactic):
    """Shared plumbing: eligibility, weights in the storage type on the device, workspace, epilogue."""

    backend = "gpu"
    absorbs = frozenset({RESIDUAL, ACTIVATION})
    source = TacticSource.CUBLAS  # the GEMM is cuBLAS; the im2col and epilogue kernels are ours
    algorithm = ""
    base_rank = 20  # heuristic rank of the IEEE variant; TF32 variants rank 5 ahead

    def __init__(self, tf32: bool = False):
        self.tf32 = tf32
        self.name = f"gpu:conv:{self.algorithm}" + ("_tf32" if tf32 else "")
        self.id = stable_tactic_id(self.name)
        self.heuristic_rank = self.base_rank - (5 if tf32 else 0)

    def supports(self, ctx: TacticContext) -> bool | str:
        x, y = ctx.inputs[0], ctx.outputs[0]
        if x.dtype not in _STORAGE or y.dtype != x.dtype:
            return f"the GEMM runs FLOAT or HALF layers with outputs of the input type, not {x.dtype.value} -> " \
                   f"{y.dtype.value}"
        if self.tf32 and (x.dtype != DataType.FLOAT or not ctx.extra.get("tf32")):
            return "TF32 is used only for FLOAT layers when BuilderFlag.TF32 is set"
        return super().supports(ctx)

    def supports_geometry(self, g: ConvGeometry) -> bool | str:
        if len(g.kernel) not in (1, 2):
            return f"the im2col kernel handles 1-D and 2-D convolutions, not {len(g.kernel)}-D"
        limit = (1 << 31) - 1
        if max(g.channels * math.prod(g.in_sizes), g.batch * g.out_pixels, g.batch * g.maps) > limit:
            return "a sample, the output pixels or the output planes exceed the kernels' 32-bit indexing"
        return True

    def geometry(self, ctx: TacticContext) -> ConvGeometry:
        return as_2d(super().geometry(ctx))

    def prepare(self, ctx: TacticContext) -> dict:
        import cupy

        from ..backends.cublas_gemm import COMPUTE_32F, COMPUTE_32F_FAST_TF32

        storage = _STORAGE[ctx.inputs[0].dtype]
        w = np.asarray(ctx.inputs[1].value)
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        activation = ctx.epilogue.activation
        kind = ACTIVATION_KINDS.get(activation.type) if activation else None
        return {
            "w": cupy.asarray(np.ascontiguousarray(w.reshape(w.shape[0], -1), dtype=storage)),
            "bias": None if bias is None else cupy.asarray(np.asarray(bias, dtype=np.float32).reshape(-1)),
            "layer": ctx.layer, "kernel_shape": w.shape, "storage": storage, "geometry": {},
            "compute": COMPUTE_32F_FAST_TF32 if self.tf32 else COMPUTE_32F,
            "epilogue": (np.int32(kind or 0), np.float32(activation.alpha if kind else 0.0),
                         np.float32(activation.beta if kind else 0.0)),
            # an activation the kernel lacks runs after it
            "after": Epilogue(activation=activation) if activation and kind is None else None,
            "residual": ctx.epilogue.residual,  # input position, or None
        }

    def row_length(self, g: ConvGeometry) -> int:
        """Elements per column of the im2col matrix (the window taps, C*KH*KW, unless a layout pads them)."""
        return g.channels * g.kernel[0] * g.kernel[1]

    def buffers(self, g: ConvGeometry, storage: Any) -> list[BufferSpec]:
        return []

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return total_bytes(self.buffers(self.geometry(ctx), _STORAGE.get(ctx.inputs[0].dtype, np.float32)))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        x, out = xp.ascontiguousarray(inputs[0]), outputs[0]
        cached = state["geometry"].get(x.shape)
        if cached is None:  # first run at these shapes: before any CUDA-graph capture, which replays it
            g = as_2d(conv_geometry(state["layer"], x.shape, state["kernel_shape"]))
            taps = xp.asarray(tap_table(g, self.row_length(g)))
            cached = state["geometry"][x.shape] = (g, self.buffers(g, state["storage"]), taps)
        g, specs, taps = cached
        y = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        residual = None
        if state["residual"] is not None:  # the kernels read it elementwise in y's layout and type
            residual = xp.ascontiguousarray(xp.broadcast_to(inputs[state["residual"]], y.shape), dtype=y.dtype)
        self.convolve(state, g, x, y, carve(workspace, specs, xp), taps, residual)
        if state["after"] is not None:
            apply_epilogue(state["after"], y, inputs, xp)
        if y is not out:
            xp.copyto(out, y)

    def convolve(self, state: dict, g: ConvGeometry, x: Any, y: Any, buffers: list, taps: Any,
                 residual: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def im2col(layout: str, x: Any, cols: Any, taps: Any, g: ConvGeometry) -> None:
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel, plane_threads

        depth = taps.shape[1]
        if layout == "kp":
            threads = plane_threads(g.out_pixels)
            grid = (-(-g.out_pixels // threads), min(-(-depth // _TAPS_PER_THREAD), GRID_YZ_LIMIT),
                    min(g.batch, GRID_YZ_LIMIT))
            block = (threads,)
        else:
            row_tiles, tap_tiles = -(-(g.batch * g.out_pixels) // 32), -(-depth // 32)
            grid, block = (row_tiles, max(1, min(tap_tiles, -(-_TARGET_BLOCKS // row_tiles), GRID_YZ_LIMIT))), (32, 8)
        kernel("conv_gemm", storage_kernel(f"im2col_{layout}", x.dtype))(grid, block, (
            x, cols, taps, *(np.int32(v) for v in (g.batch, depth, g.channels * math.prod(g.in_sizes), *g.in_sizes,
                                                    *g.out_sizes, *g.strides, *g.pre))))

    @staticmethod
    def bias_act_in_place(state: dict, y: Any, g: ConvGeometry, residual: Any) -> None:
        """The NCHW epilogue; skipped when there is no bias, residual or fused activation."""
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel, plane_threads

        bias, (kind, alpha, beta) = state["bias"], state["epilogue"]
        if bias is None and residual is None and not kind:
            return
        planes, threads = g.batch * g.maps, plane_threads(g.out_pixels)
        kernel("conv_gemm", storage_kernel("bias_act_nchw", y.dtype))(
            (-(-g.out_pixels // threads), min(-(-planes // _PLANES_PER_THREAD), GRID_YZ_LIMIT)), (threads,), (
                y, state["w"] if bias is None else bias, np.int32(bias is not None),
                y if residual is None else residual, np.int32(residual is not None), np.int32(planes),
                np.int32(g.maps), np.int32(g.out_pixels), kind, alpha, beta))


def _batched_gemm(state: dict, g: ConvGeometry, b: Any, b_depth: int, y: Any) -> None:
    """Y[n, group] = W[group] @ B[n, group] for every sample (one strided-batched GEMM per group); `b` is
    (N, groups * b_depth, P) and the weights of a group are b_depth deep."""
    from ..backends.cublas_gemm import Operand, gemm

    maps, pixels = g.maps // g.groups, g.out_pixels
    for group in range(g.groups):
        gemm(Operand(state["w"][group * maps:(group + 1) * maps], maps, b_depth, False, 0),
             Operand(b[:, group * b_depth:], b_depth, pixels, False, b.shape[1] * pixels),
             Operand(y[:, group * maps:], maps, pixels, False, g.maps * pixels), g.batch, state["compute"])


class GpuIm2colGemm(_ConvGemm):
    algorithm = "im2col_gemm"
    base_rank = 20

    def buffers(self, g, storage):
        return [((g.batch, g.channels * g.kernel[0] * g.kernel[1], g.out_pixels), storage)]

    def convolve(self, state, g, x, y, buffers, taps, residual):
        (cols,) = buffers
        self.im2col("kp", x, cols, taps, g)
        _batched_gemm(state, g, cols, cols.shape[1] // g.groups, y.reshape(g.batch, g.maps, g.out_pixels))
        self.bias_act_in_place(state, y, g, residual)


class GpuPointwiseGemm(_ConvGemm):
    algorithm = "pointwise_gemm"
    base_rank = 10

    def supports_geometry(self, g):
        if any(k != 1 for k in g.kernel) or any(s != 1 for s in g.strides):
            return "not a stride-1 1x1 convolution"
        if any(g.pre) or any(g.post):
            return "a padded 1x1 convolution is not a plain GEMM"
        return super().supports_geometry(g)

    def convolve(self, state, g, x, y, buffers, taps, residual):
        _batched_gemm(state, g, x.reshape(g.batch, g.channels, g.out_pixels), g.channels // g.groups,
                      y.reshape(g.batch, g.maps, g.out_pixels))
        self.bias_act_in_place(state, y, g, residual)


class GpuIm2colGemmRows(_ConvGemm):
    algorithm = "im2col_gemm_rows"
    base_rank = 25
    alignment = 8  # column rows padded to 16 bytes of FP16: unaligned leading dimensions keep cuBLAS off tensor cores

    def supports_geometry(self, g):
        if g.groups != 1:
            return "the one-GEMM layout handles ungrouped convolutions"
        if g.batch > 65535 or g.maps > 65535 * 32:
            return "the epilogue's launch grid would exceed CUDA's limits"
        return super().supports_geometry(g)

    def row_length(self, g):
        return -(-super().row_length(g) // self.alignment) * self.alignment

    def prepare(self, ctx):
        state = super().prepare(ctx)
        w = state["w"]
        depth = -(-w.shape[1] // self.alignment) * self.alignment
        if depth != w.shape[1]:  # zero weights for the padding taps
            import cupy

            padded = cupy.zeros((w.shape[0], depth), w.dtype)
            padded[:, :w.shape[1]] = w
            state["w"] = padded
        return state

    def buffers(self, g, storage):
        rows = g.batch * g.out_pixels
        return [((rows, self.row_length(g)), storage), ((rows, g.maps), storage)]

    def convolve(self, state, g, x, y, buffers, taps, residual):
        from ..backends.cublas_gemm import Operand, gemm
        from ..backends.nvrtc import kernel

        cols, product = buffers
        self.im2col("rows", x, cols, taps, g)
        rows, depth = cols.shape
        gemm(Operand(cols, rows, depth, False, 0), Operand(state["w"], g.maps, depth, True, 0),
             Operand(product, rows, g.maps, False, 0), 1, state["compute"])
        bias, (kind, alpha, beta) = state["bias"], state["epilogue"]
        grid = (-(-g.out_pixels // 32), -(-g.maps // 32), g.batch)
        kernel("conv_gemm", storage_kernel("bias_act_rows", y.dtype))(grid, (32, 8), (
            product, y, state["w"] if bias is None else bias, np.int32(bias is not None),
            y if residual is None else residual, np.int32(residual is not None), np.int32(g.maps),
            np.int32(g.out_pixels), kind, alpha, beta))


for _tf32 in (False, True):
    for _tactic in (GpuIm2colGemm(_tf32), GpuPointwiseGemm(_tf32), GpuIm2colGemmRows(_tf32)):
        register_tactic(_tactic)
