"""GPU matrix-multiply tactics (cuBLAS). CuPy is imported inside functions: this module is imported on every
machine when the tactic registry loads.

- cupy_matmul: cupy.matmul on the (transposed) views, batch dims broadcast; float16 computed in float32.
- cublas_gemm_fp32 / cublas_gemm_tf32 / cublas_gemm_fp16: cublasGemmStridedBatchedEx with an explicit compute
  type (IEEE FP32; TF32 tensor cores, only with BuilderFlag.TF32 since it rounds inputs to 10 mantissa bits;
  FP16 storage with FP32 accumulation for HALF layers). A shared second operand is folded into one large GEMM,
  alpha goes to cuBLAS, and a Gemm bias is copied into the output first and scaled by cuBLAS's beta.
- cublas_gemm_bf16: BF16 layers on their bfloat16 storage (uint16 bits, CUDA_R_16BF) with FP32 accumulation
  (`reads_bfloat16`: no widened float32 copies); layers with a fused epilogue are left to the widened tactics.
- gemm_bias_act_epilogue: the same GEMM, then ONE elementwise kernel adding the bias and applying the fused
  activation (ReLU, Clip, LeakyReLU, GELU erf/tanh) in place, in float32, instead of a bias pass and an
  activation pass.
"""
from __future__ import annotations

import functools
import math
from typing import Any

from ..dtypes import DataType
from ..enums import ActivationType, LayerType, MatrixOperation, TacticSource
from ..ir.epilogue import ACTIVATION
from ..ops.base import broadcast_shapes
from .base import Tactic, TacticContext, stable_tactic_id
from .cpu_matmul import BatchedMatmul
from .registry import register_tactic

_COMPUTE_DTYPES = {"fp32": DataType.FLOAT, "tf32": DataType.FLOAT, "fp16": DataType.HALF, "bf16": DataType.BF16}


class CupyMatmul(BatchedMatmul):
    """The CPU batched tactic's algorithm runs unchanged on CuPy arrays (xp.matmul is cuBLAS there)."""

    name = "gpu:matmul:cupy_matmul"
    id = stable_tactic_id(name)
    backend = "gpu"
    source = TacticSource.CUBLAS
    heuristic_rank = 30
    capturable = False  # CuPy's cuBLAS wrapper refuses to run while a stream is capturing


def _batch(shape: tuple[int, ...]) -> int:
    return math.prod(shape[:-2])


def gemm_shape_refusal(ctx: TacticContext) -> str | None:
    """Why the layer's operands are not one strided-batched GEMM (None: they are): the shape rules shared by the
    cuBLAS and cuBLASLt tactics, which run a batch as one call with a stride, or a 2-D operand broadcast over it."""
    a, b = ctx.inputs[0], ctx.inputs[1]
    p = ctx.layer.params
    if MatrixOperation.VECTOR in (MatrixOperation(p["op0"]), MatrixOperation(p["op1"])):
        return "a vector operand (1-D MatMul input) is left to cupy_matmul"
    if len(a.shape) < 2 or len(b.shape) < 2 or any(d < 0 for d in a.shape + b.shape):
        return "operands must be matrices of concrete shape"
    if _batch(a.shape) > 1 and _batch(b.shape) > 1 and a.shape[:-2] != b.shape[:-2]:
        return f"batch dims {a.shape[:-2]} and {b.shape[:-2]} broadcast against each other"
    if ctx.outputs[0].shape != tuple(broadcast_shapes(a.shape[:-2], b.shape[:-2])) + ctx.outputs[0].shape[-2:]:
        return "the bias broadcasts the result to a larger shape"
    return None


class CublasGemmEx(Tactic):
    layer_type = LayerType.MATRIX_MULTIPLY
    backend = "gpu"
    source = TacticSource.CUBLAS
    heuristic_rank = 10

    def __init__(self, mode: str):
        self.mode = mode
        self.name = f"gpu:matmul:cublas_gemm_{mode}"
        self.id = stable_tactic_id(self.name)
        if mode == "tf32":
            self.heuristic_rank = 5

    def supports(self, ctx: TacticContext) -> bool | str:
        a, b = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        want = _COMPUTE_DTYPES[self.mode]
        if a.dtype != want or b.dtype != want or (bias is not None and bias.dtype != want):
            return f"{self.mode} GEMM needs {want.value} operands, got {a.dtype.value} x {b.dtype.value}"
        if self.mode == "tf32" and not ctx.extra.get("tf32"):
            return "TF32 is used only when BuilderFlag.TF32 is set"
        if self.mode == "bf16" and (ctx.outputs[0].dtype != DataType.BF16 or not ctx.epilogue.empty):
            return "a bfloat16 GEMM writes BF16 without a fused epilogue (the widened tactics take the others)"
        return gemm_shape_refusal(ctx) or self.supports_epilogue(ctx)

    def supports_epilogue(self, ctx: TacticContext) -> bool | str:
        return True

    def prepare(self, ctx: TacticContext) -> dict:
        from ..backends import cublas_gemm

        p = ctx.layer.params
        compute = cublas_gemm.COMPUTE_32F_FAST_TF32 if self.mode == "tf32" else cublas_gemm.COMPUTE_32F
        return {"op0": MatrixOperation(p["op0"]) == MatrixOperation.TRANSPOSE,
                "op1": MatrixOperation(p["op1"]) == MatrixOperation.TRANSPOSE,
                "alpha": float(p.get("alpha", 1.0)), "beta": float(p.get("beta", 1.0)), "compute": compute}

    def gemm(self, state: dict, a: Any, b: Any, out: Any, xp: Any, beta: float) -> None:
        """out (contiguous, the layer's result shape) = alpha * op0(a) @ op1(b) + beta * out."""
        from ..backends.cublas_gemm import Operand, gemm

        a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
        ba, bb = _batch(a.shape), _batch(b.shape)
        if bb == 1 and not state["op0"]:  # every batch entry uses the same B: one tall GEMM
            left = Operand(a, ba * a.shape[-2], a.shape[-1], False, 0)
            right = Operand(b, b.shape[-2], b.shape[-1], state["op1"], 0)
            batch = 1
        else:
            left = Operand(a, a.shape[-2], a.shape[-1], state["op0"], a.shape[-2] * a.shape[-1] if ba > 1 else 0)
            right = Operand(b, b.shape[-2], b.shape[-1], state["op1"], b.shape[-2] * b.shape[-1] if bb > 1 else 0)
            batch = max(ba, bb)
        m, n = left.product_shape[0], right.product_shape[1]
        gemm(left, right, Operand(out, m, n, False, m * n), batch, state["compute"], state["alpha"], beta)

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        bias = inputs[2] if len(inputs) > 2 else None
        out = outputs[0]
        target = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        beta = 0.0
        if bias is not None and state["beta"] != 0:
            xp.copyto(target, bias, casting="unsafe")
            beta = state["beta"]
        self.gemm(state, inputs[0], inputs[1], target, xp, beta)
        if target is not out:
            xp.copyto(out, target)


_ACT_KIND = {None: 0, ActivationType.RELU: 1, ActivationType.CLIP: 2, ActivationType.LEAKY_RELU: 3,
             ActivationType.GELU_ERF: 4, ActivationType.GELU_TANH: 5}


@functools.cache
def _epilogue_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T bias, float32 beta, int32 kind, float32 alpha, float32 limit", "T y",
        """
        float v = (float)y + beta * (float)bias;
        if (kind == 1) v = v < 0.0f ? 0.0f : v;
        else if (kind == 2) { v = v < alpha ? alpha : v; v = v > limit ? limit : v; }
        else if (kind == 3) v = v >= 0.0f ? v : alpha * v;
        else if (kind == 4) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        else if (kind == 5) v = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        y = (T)v;
        """,
        "polyx_gemm_bias_act_epilogue")


class GemmBiasActEpilogue(CublasGemmEx):
    absorbs = frozenset({ACTIVATION})

    def __init__(self):
        super().__init__("fp32")
        self.name = "gpu:matmul:gemm_bias_act_epilogue"
        self.id = stable_tactic_id(self.name)
        self.heuristic_rank = 8

    def supports(self, ctx: TacticContext) -> bool | str:
        if ctx.inputs[0].dtype == DataType.HALF:  # same epilogue, FP16 storage with FP32 accumulation
            ok = CublasGemmEx.supports(_FP16_GEMM, ctx)
            return self.supports_epilogue(ctx) if ok is True else ok
        return super().supports(ctx)

    def supports_epilogue(self, ctx: TacticContext) -> bool | str:
        activation = ctx.epilogue.activation
        kind = None if activation is None else activation.type
        if kind not in _ACT_KIND:
            return f"the epilogue does not implement a fused {kind.value}"
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if bias is not None:
            n = ctx.outputs[0].shape[-1]
            if math.prod(bias.shape) not in (1, n) or (math.prod(bias.shape) == n and bias.shape[-1] != n):
                return "the bias is not one value per output column"
        elif kind is None:
            return "no bias and no fused activation: nothing for an epilogue to do"
        return True

    def prepare(self, ctx: TacticContext) -> dict:
        import cupy

        state = super().prepare(ctx)
        activation = ctx.epilogue.activation
        kind = _ACT_KIND[None if activation is None else activation.type]
        state.update(kind=kind, act_alpha=0.0 if activation is None else activation.alpha,
                     act_beta=0.0 if activation is None else activation.beta,
                     zero=cupy.zeros((), dtype="float16" if ctx.inputs[0].dtype == DataType.HALF else "float32"))
        return state

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        bias = inputs[2] if len(inputs) > 2 else None
        out = outputs[0]
        target = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        self.gemm(state, inputs[0], inputs[1], target, xp, 0.0)
        has_bias = bias is not None and state["beta"] != 0
        row = bias.reshape(-1) if has_bias and bias.size > 1 else (bias.reshape(()) if has_bias else state["zero"])
        _epilogue_kernel()(row, state["beta"] if has_bias else 0.0, state["kind"], state["act_alpha"],
                           state["act_beta"], target)
        if target is not out:
            xp.copyto(out, target)


_FP16_GEMM = CublasGemmEx("fp16")


class CublasGemmBf16(CublasGemmEx):
    """BF16 operands as stored (uint16 bits): cuBLAS reads and writes CUDA_R_16BF and accumulates in FP32."""

    reads_bfloat16 = True

    def __init__(self):
        super().__init__("bf16")
        self.heuristic_rank = 9


for _tactic in (CupyMatmul(), CublasGemmEx("fp32"), CublasGemmEx("tf32"), _FP16_GEMM, CublasGemmBf16(),
                GemmBiasActEpilogue()):
    register_tactic(_tactic)
