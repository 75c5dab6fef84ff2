"""INT8 convolutions of channels-last builds as cuBLASLt int8 GEMMs that requantize in their own epilogue.

gpu_int8_nhwc.py's IMMA tactic writes int32 accumulators (four bytes per output) and reads them back in a second
kernel that requantizes in float64: exact to the CPU's bits, but three times the memory traffic of the GEMM's
int8 output. Here the GEMM writes the int8 output itself (engine/backends/cublaslt_int8.py):

    out[pixel, c] = saturate(round(relu(alpha[c] * acc + beta * residual[pixel, c] + bias'[c])))
    alpha[c] = input_scale * weight_scale[c] / output_scale, bias'[c] = bias[c] / output_scale,
    beta = residual_scale / output_scale

in float32, as TensorRT's INT8 kernels do. That is not bit-exact to the float64 order of cpu_int8.py: an output
whose exact value lies within float32 rounding of a half-step can round the other way, so results are within one
quantization step of the exact tactic (tests/gpu/test_gpu_int8_cublaslt.py measures how many differ). The builder
times this tactic against the exact one and keeps the faster, as it does for every tactic; builds that want the
exact bits can leave TacticSource.CUBLAS_LT out of their tactic sources.

Its operands are those of the IMMA NHWC tactic (X read in place for a 1x1 convolution, an NHWC im2col otherwise).
Taken: INT8 outputs, no activation or ReLU, no residual or an INT8 one (ResNet's blocks); output channels a
multiple of 4 (IMMA's leading-dimension rule for D). Anything else is left to the exact tactics.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.cublaslt_int8 import OPERAND_ALIGNMENT, enqueue_int8_gemm, plan_int8_gemm
from ..backends.cudnn_frontend import aligned_contiguous, is_aligned
from ..dtypes import DataType
from ..enums import ActivationType, TacticSource
from ..tensor_formats import storage_order
from .base import TacticContext
from .cpu_conv import ConvGeometry
from .gpu_cublaslt import HEURISTIC_COUNTS, cublaslt_unavailable
from .gpu_int8 import DIM_ALIGNMENT
from .gpu_int8_nhwc import GpuInt8ConvImmaNhwc, depths, is_pointwise
from .registry import register_tactic
from .scratch import BufferSpec, carve

# The workspace cuBLASLt's int8 algorithms may use (split-K); most IMMA kernels need none.
GEMM_WORKSPACE_BYTES = 4 << 20
# Heuristic ranks offered as tactics (the builder times them; ranks above 0 from optimization level 2).
RANKS = (0, 1, 2, 3)


class GpuInt8ConvCublasLtNhwc(GpuInt8ConvImmaNhwc):
    """NHWC int8 GEMM (+ im2col unless 1x1) with requantization, bias, residual and ReLU in cuBLASLt's epilogue."""

    source = TacticSource.CUBLAS_LT

    def __init__(self, rank: int):
        self.rank = rank
        self.algorithm = f"int8_cublaslt_nhwc_h{rank}"
        super().__init__()
        self.heuristic_rank = 6 + rank  # after the exact IMMA tactic in untimed builds; timing decides otherwise
        self.min_optimization_level = 0 if rank == 0 else 2

    def supports_shapes(self, ctx: TacticContext) -> bool | str:
        ok = super().supports_shapes(ctx)
        if ok is not True:
            return ok
        epilogue = ctx.epilogue
        if ctx.outputs[0].dtype != DataType.INT8:
            return "cuBLASLt's int8 epilogue writes INT8 outputs only (the exact tactics write FLOAT/HALF)"
        if epilogue.activation is not None and epilogue.activation.type != ActivationType.RELU:
            return f"cuBLASLt's int8 epilogue has ReLU only, not {epilogue.activation.type.value}"
        if epilogue.residual is not None and ctx.inputs[epilogue.residual].dtype != DataType.INT8:
            return "cuBLASLt adds an INT8 residual only (its C operand has D's type)"
        maps = ctx.inputs[1].value.shape[0]
        if maps % DIM_ALIGNMENT:
            return f"{maps} output channels: IMMA wants the output's rows a multiple of {DIM_ALIGNMENT} bytes"
        reason = cublaslt_unavailable()
        if reason:
            return reason
        offered = self.offered(ctx)
        if isinstance(offered, str):
            return offered
        if self.rank >= offered:
            return f"cuBLASLt's heuristic offers {offered} int8 algorithm(s) here, not rank {self.rank}"
        return True

    def offered(self, ctx: TacticContext) -> int | str:
        """How many algorithms cuBLASLt's heuristic offers for the layer's GEMM (asked once per problem, whichever
        rank asks first: HEURISTIC_COUNTS), or why it cannot plan it."""
        import cupy

        g = self.geometry(ctx)
        epilogue = ctx.epilogue
        key = (cupy.cuda.Device().id, "int8_nhwc", g.maps, g.batch * g.out_pixels, self.depth(g),
               len(ctx.inputs) > 2 and ctx.inputs[2] is not None, epilogue.activation is not None,
               epilogue.residual is not None)
        if key not in HEURISTIC_COUNTS:
            try:
                HEURISTIC_COUNTS[key] = self.plan(self.scalars(ctx), g).offered
            except Exception as exc:  # noqa: BLE001 - a GEMM cuBLASLt refuses is a reason, not a crash
                return f"cuBLASLt cannot plan this int8 GEMM: {type(exc).__name__}: {exc}"
        return HEURISTIC_COUNTS[key]

    # ------------------------------------------------------------------ build / load
    @staticmethod
    def scalars(ctx: TacticContext) -> dict[str, Any]:
        """alpha, bias' (float32 device vectors, one per output channel) and beta, in units of the output scale."""
        import cupy

        quantization, epilogue = ctx.layer.params["int8"], ctx.epilogue
        maps = ctx.inputs[1].value.shape[0]
        out_scale = float(epilogue.output_scale)
        weight_scales = np.broadcast_to(np.asarray(quantization["weight_scales"], np.float64).reshape(-1), maps)
        alpha = quantization["input_scale"] * weight_scales / out_scale
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        return {
            "alpha": cupy.asarray(alpha.astype(np.float32)),
            "bias": None if bias is None else cupy.asarray(
                (np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), maps) / out_scale).astype(np.float32)),
            "beta": float(quantization.get("residual_scale", 0.0)) / out_scale,
            "relu": epilogue.activation is not None,
            "plans": {},
        }

    @staticmethod
    def depth(g: ConvGeometry) -> int:
        """The GEMM's reduction length: C padded to 4 (1x1 read in place), or the im2col's taps padded to 16."""
        pointwise_depth, im2col_depth = depths(g.channels, g.channels * math.prod(g.kernel))
        return pointwise_depth if is_pointwise(g) else im2col_depth

    def plan(self, state: dict, g: ConvGeometry) -> Any:
        """The planned GEMM at a geometry (cached in state): m = output channels, n = output pixels, k = depth."""
        key = (g.maps, g.batch * g.out_pixels, self.depth(g))
        planned = state["plans"].get(key)
        if planned is None:
            planned = state["plans"][key] = plan_int8_gemm(
                *key, bias=state["bias"], relu=state["relu"], beta=state["beta"], rank=self.rank,
                workspace_limit=GEMM_WORKSPACE_BYTES)
        return planned

    @staticmethod
    def buffers(g: ConvGeometry) -> list[BufferSpec]:
        """The GEMM's int8 rows when X cannot be read where it lies ((0,) when it can) and cuBLASLt's workspace."""
        cols = GpuInt8ConvImmaNhwc.buffers(g)[0]
        return [cols, ((GEMM_WORKSPACE_BYTES,), np.uint8)]

    def prepare(self, ctx):
        state = super().prepare(ctx)
        state.update(self.scalars(ctx))
        if all(d >= 0 for d in ctx.inputs[0].shape):  # static shapes: plan now, not in the first run
            self.plan(state, self.geometry(ctx))
        return state

    # ------------------------------------------------------------------ run
    def run(self, state, inputs, outputs, workspace, xp) -> None:
        out = outputs[0]
        if inputs[0].size == 0 or out.size == 0:
            return
        g = self.geometry_at(state, tuple(inputs[0].shape))
        x = aligned_contiguous(storage_order(inputs[0]), xp, OPERAND_ALIGNMENT)
        cols, gemm_workspace = carve(workspace, self.buffers(g), xp)
        a, w = self.gemm_operands(state, g, x, cols, xp)
        y = storage_order(out)
        d = y if y.flags.c_contiguous and is_aligned(y, OPERAND_ALIGNMENT) else xp.empty(y.shape, y.dtype)
        c = d
        if state["residual"] is not None:
            c = aligned_contiguous(storage_order(inputs[state["residual"]]), xp, OPERAND_ALIGNMENT)
        plan = self.plan(state, g)
        enqueue_int8_gemm(plan, state["alpha"], w, aligned_contiguous(a, xp, OPERAND_ALIGNMENT), c, d,
                          gemm_workspace if plan.workspace_bytes else None)
        if d is not y:
            xp.copyto(y, d)


for _rank in RANKS:
    register_tactic(GpuInt8ConvCublasLtNhwc(_rank))
