"""GPU tactics of the transformer layers the attention rules make (passes/transformer_fusions.py):

- gpu:attention:flash_attention: one NVRTC kernel (kernels/attention.cu), flash-attention style: one block per
  (batch*head, 16 queries), online softmax over tiles of 32 keys, float32 accumulation, float32/float16 I/O,
  head dims up to 128; the score matrix never leaves the chip. It reads and writes every operand through strides,
  so the layer's operand permutations (the Transposes the rule absorbed) cost nothing.
- gpu:attention:cublas_softmax: batched cuBLAS GEMM for the scores (float32, the scale as alpha), one fused
  mask + softmax kernel (gpu_kernels.cu masked_softmax_rows) writing the probabilities in the I/O type, and a
  second batched GEMM; it needs a workspace of Sq*Sk scores per head, and copies operands the absorbed
  Transposes left in other layouts into it first. The builder times both and keeps the faster.
- gpu:masked_softmax:masked_softmax_rows: MASKED_SOFTMAX layers with the same softmax kernel.

All are CUDA-graph capturable (cuBLAS is called directly, backends/cublas_gemm.py). The kernels read the mask
through strides, 0 where it broadcasts. CuPy is imported inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.kernel_sources import storage_kernel
from ..dtypes import GPU_KERNEL_FLOAT_TYPES, DataType
from ..enums import LayerType, TacticSource
from ..errors import EngineError
from ..evaluator import is_static
from ..ops.attention import PERMS, attention_dims, attention_perms, attention_scale
from ..ops.masked_softmax import check_flag, check_mask_shape
from .base import Tactic, TacticContext, stable_tactic_id
from .gpu_rows import MAX_SHARED_ROW
from .registry import register_tactic
from .scratch import carve, total_bytes

FLASH_MAX_HEAD_DIM = 128   # FA_MAXD in kernels/attention.cu
FLASH_QUERY_TILE = 16      # FA_BQ
FLASH_THREADS = 128        # FA_WARPS * 32


def mask_strides(layer, mask: Any, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Element strides of `mask` over the 4-D view of the scores `shape` (left-padded with ones), 0 where the mask
    broadcasts; the mask must be C-contiguous."""
    check_mask_shape(layer, tuple(mask.shape), tuple(shape))
    dims = (1,) * (4 - mask.ndim) + tuple(mask.shape)
    strides, step = [0, 0, 0, 0], 1
    for axis in range(3, -1, -1):
        strides[axis] = 0 if dims[axis] == 1 else step
        step *= dims[axis]
    return tuple(strides)


def io_refusal(ctx: TacticContext) -> str | None:
    """Why the kernels cannot take the layer's tensor types or shapes (None: they can)."""
    dtype = ctx.inputs[0].dtype
    if dtype not in GPU_KERNEL_FLOAT_TYPES or ctx.outputs[0].dtype != dtype:
        return f"the kernels take FLOAT or HALF to the same type, not {dtype.value}"
    if not all(is_static(info.shape) for info in ctx.inputs if info is not None):
        return "the shapes must be concrete"
    return None


def _attention_problem(layer, q, k, v) -> tuple[int, int, int, int, int, int]:
    """(batch*heads, heads, Sq, Sk, D, Dv) of stored operands whose shapes the layer accepts."""
    leading, sq, sk, d, dv = attention_dims(layer, q.shape, k.shape, v.shape)
    if any(n < 0 for n in leading):
        raise EngineError(f"layer '{layer.name}': q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} "
                          "must share their leading dims")
    # the kernels see (batch, heads, ...) operands: rank-3 ones are one batch of `leading[0]` heads, so a mask of
    # rank <= 3, left-padded to 4-D, lines up with them
    return math.prod(leading), leading[-1], sq, sk, d, dv


def logical_strides(array: Any, perm: tuple[int, ...], inverse: bool = False) -> tuple[int, ...]:
    """Element strides of a C-contiguous stored `array` over the logical (batch, head, row, dim) axes: logical =
    transpose(stored, perm), or stored = transpose(logical, perm) with `inverse` (the output). Rank-3 operands get
    batch stride 0."""
    stored = [s // array.itemsize for s in array.strides]
    strides = [0] * len(perm)
    for position, axis in enumerate(perm):
        if inverse:
            strides[axis] = stored[position]
        else:
            strides[position] = stored[axis]
    return tuple([0] * (4 - len(strides)) + strides)


class AttentionTactic(Tactic):
    layer_type = LayerType.ATTENTION
    backend = "gpu"

    def supports(self, ctx: TacticContext) -> bool | str:
        refusal = io_refusal(ctx)
        if refusal:
            return refusal
        try:
            problem = _attention_problem(ctx.layer, *ctx.inputs[:3])
        except EngineError as exc:
            return str(exc)
        return self.supports_problem(problem)

    def supports_problem(self, problem: tuple[int, int, int, int, int, int]) -> bool | str:
        """What this tactic's kernels add to the shared checks, given (batch*heads, heads, Sq, Sk, D, Dv)."""
        return True

    @staticmethod
    def operands(state: dict, inputs: list, out: Any, xp: Any) -> tuple[tuple[Any, Any, Any], tuple] | None:
        """(contiguous q, k, v), (batch*heads, heads, Sq, Sk, D, Dv); None when nothing is left to launch: an empty
        output, or no keys (softmax over no keys weighs nothing: the product is zeros, as MatMul's is)."""
        q, k, v = (xp.ascontiguousarray(x) for x in inputs[:3])
        problem = _attention_problem(state["layer"], q, k, v)
        if out.size == 0:
            return None
        if problem[3] == 0:
            out.fill(0)
            return None
        return (q, k, v), problem

    def prepare(self, ctx: TacticContext) -> dict:
        return {"layer": ctx.layer, "scale": attention_scale(ctx.layer),
                "perms": attention_perms(ctx.layer, len(ctx.inputs[0].shape)),
                "nan_to_zero": check_flag(ctx.layer, "nan_to_zero")}

    @staticmethod
    def _mask(state, inputs, bh_shape, xp) -> tuple[Any, tuple[int, int, int, int]]:
        mask = inputs[3] if len(inputs) > 3 else None
        if mask is None:
            return None, (0, 0, 0, 0)
        mask = xp.ascontiguousarray(mask)
        return mask, mask_strides(state["layer"], mask, bh_shape)


class FlashAttention(AttentionTactic):
    name = "gpu:attention:flash_attention"
    id = stable_tactic_id(name)
    heuristic_rank = 10

    def supports_problem(self, problem):
        _, _, _, _, d, dv = problem
        if max(d, dv) > FLASH_MAX_HEAD_DIM:
            return f"head dims {d} and {dv} must be at most {FLASH_MAX_HEAD_DIM}"
        return True

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import GRID_YZ_LIMIT, kernel

        out = outputs[0]
        found = self.operands(state, inputs, out, xp)
        if found is None:
            return
        (q, k, v), (bh, heads, sq, sk, d, dv) = found
        mask, strides = self._mask(state, inputs, (bh // heads, heads, sq, sk), xp)
        dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        tiles = -(-sq // FLASH_QUERY_TILE)
        if tiles > GRID_YZ_LIMIT:
            raise EngineError(f"layer '{state['layer'].name}': {sq} queries exceed the kernel's grid")
        perms = state["perms"]
        operand_strides = [s for x, key in zip((q, k, v), PERMS) for s in logical_strides(x, perms[key])]
        operand_strides += logical_strides(dst, perms["out_perm"], inverse=True)
        kernel("attention", storage_kernel("flash_attention", q.dtype))(
            (bh, tiles), (FLASH_THREADS,),
            (q, k, v, q if mask is None else mask, dst, np.int32(heads), np.int32(sq), np.int32(sk), np.int32(d),
             np.int32(dv), np.float32(state["scale"]), *(np.int64(s) for s in operand_strides),
             np.int32(mask is not None), *(np.int64(s) for s in strides), np.int32(state["nan_to_zero"])))
        if dst is not out:
            xp.copyto(out, dst)


def _softmax_threads(length: int) -> int:
    from ..backends.nvrtc import block_size

    return min(block_size(length), 256)


def _gemm_ready(perms: dict[str, tuple[int, ...]]) -> dict[str, bool]:
    """Per operand, whether its stored layout is a strided batch of row-major matrices cuBLAS reads as it lies: the
    identity, and for k also K^T; the others are staged into the workspace first."""
    rank = len(perms["q_perm"])
    identity = tuple(range(rank))
    swap = identity[:-2] + (rank - 1, rank - 2)
    return {key: perm == identity or (key == "k_perm" and perm == swap) for key, perm in perms.items()}


class CublasSoftmaxAttention(AttentionTactic):
    """Scores by one strided-batched GEMM, one mask + softmax kernel, one more GEMM. Operands the absorbed
    Transposes left in other layouts are copied to (batch, heads, rows, dims) in the workspace first (what the
    unfused Transposes did), and the output back."""

    name = "gpu:attention:cublas_softmax"
    id = stable_tactic_id(name)
    source = TacticSource.CUBLAS
    heuristic_rank = 20

    def supports_problem(self, problem):
        sk = problem[3]
        return True if sk <= MAX_SHARED_ROW else f"{sk} keys exceed the softmax kernel's row of {MAX_SHARED_ROW}"

    @staticmethod
    def _specs(problem: tuple[int, ...], perms: dict, dtype: Any) -> list:
        """float32 scores; the probabilities in the I/O type (their own buffer: the softmax kernel's input and
        output are restrict pointers); staging copies of q, k, v and the output where their layout needs one."""
        bh, _, sq, sk, d, dv = problem
        ready = _gemm_ready(perms)
        sizes = {"q_perm": bh * sq * d, "k_perm": bh * sk * d, "v_perm": bh * sk * dv, "out_perm": bh * sq * dv}
        return [((bh * sq * sk,), np.float32), ((bh * sq * sk,), np.dtype(dtype))] + \
            [((0 if ready[key] else sizes[key],), np.dtype(dtype)) for key in PERMS]

    def workspace_bytes(self, ctx: TacticContext) -> int:
        problem = _attention_problem(ctx.layer, *ctx.inputs[:3])
        perms = attention_perms(ctx.layer, len(ctx.inputs[0].shape))
        return total_bytes(self._specs(problem, perms, np.float16 if ctx.inputs[0].dtype == DataType.HALF else
                                       np.float32))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.cublas_gemm import COMPUTE_32F, Operand, gemm
        from ..backends.nvrtc import kernel

        out = outputs[0]
        found = self.operands(state, inputs, out, xp)
        if found is None:
            return
        (q, k, v), problem = found
        bh, heads, sq, sk, d, dv = problem
        perms, ready = state["perms"], _gemm_ready(state["perms"])
        mask, strides = self._mask(state, inputs, (bh // heads, heads, sq, sk), xp)
        scores, probs, *staging = carve(workspace, self._specs(problem, perms, q.dtype), xp)
        operands = []
        for x, key, buffer in zip((q, k, v), PERMS, staging):
            if not ready[key]:
                logical = xp.transpose(x, perms[key])
                x = buffer.reshape(logical.shape)
                xp.copyto(x, logical)
            operands.append(x)
        q, k, v = operands
        k_transposed = ready["k_perm"] and perms["k_perm"] != tuple(range(k.ndim))  # stored (..., D, Sk): K^T
        key = Operand(k, d, sk, False, d * sk) if k_transposed else Operand(k, sk, d, True, sk * d)
        gemm(Operand(q, sq, d, False, sq * d), key, Operand(scores, sq, sk, False, sq * sk), bh, COMPUTE_32F,
             alpha=state["scale"])
        threads = _softmax_threads(sk)
        entry = "masked_softmax_rows_f32" if q.dtype == np.float32 else "masked_softmax_rows_f32_to_f16"
        kernel("gpu_kernels", entry)(
            (bh * sq,), (threads,),
            (scores, probs if mask is None else mask, np.int32(mask is not None), probs, np.int32(sk),
             np.int32(heads), np.int32(sq), *(np.int64(s) for s in strides), np.int32(state["nan_to_zero"])),
            shared_mem=(threads + sk) * 4)
        if ready["out_perm"]:
            dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        else:
            dst = staging[3].reshape(q.shape[:-1] + (dv,))
        gemm(Operand(probs, sq, sk, False, sq * sk), Operand(v, sk, dv, False, sk * dv),
             Operand(dst, sq, dv, False, sq * dv), bh, COMPUTE_32F)
        if not ready["out_perm"]:
            xp.copyto(out, xp.transpose(dst, perms["out_perm"]))
        elif dst is not out:
            xp.copyto(out, dst)


class MaskedSoftmaxRows(Tactic):
    name = "gpu:masked_softmax:masked_softmax_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.MASKED_SOFTMAX
    backend = "gpu"
    heuristic_rank = 20

    def supports(self, ctx: TacticContext) -> bool | str:
        refusal = io_refusal(ctx)
        if refusal:
            return refusal
        shape = ctx.inputs[0].shape
        if not 1 <= len(shape) <= 4 or len(ctx.inputs[1].shape) > len(shape):
            return f"scores of rank {len(shape)} (the kernel takes ranks 1 to 4)"
        if shape[-1] > MAX_SHARED_ROW:
            return f"rows of {shape[-1]} exceed the kernel's {MAX_SHARED_ROW}"
        return True

    def prepare(self, ctx: TacticContext) -> dict:
        return {"layer": ctx.layer, "nan_to_zero": check_flag(ctx.layer, "nan_to_zero")}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import kernel

        scores, mask = xp.ascontiguousarray(inputs[0]), xp.ascontiguousarray(inputs[1])
        out = outputs[0]
        if out.size == 0:
            return
        shape = (1,) * (4 - scores.ndim) + tuple(scores.shape)
        strides = mask_strides(state["layer"], mask, shape)
        dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        threads = _softmax_threads(shape[3])
        kernel("gpu_kernels", storage_kernel("masked_softmax_rows", scores.dtype))(
            (math.prod(shape[:3]),), (threads,),
            (scores, mask, np.int32(1), dst, np.int32(shape[3]), np.int32(shape[1]), np.int32(shape[2]),
             *(np.int64(s) for s in strides), np.int32(state["nan_to_zero"])),
            shared_mem=(threads + shape[3]) * 4)
        if dst is not out:
            xp.copyto(out, dst)


register_tactic(FlashAttention())
register_tactic(CublasSoftmaxAttention())
register_tactic(MaskedSoftmaxRows())
