"""Row-major (batched) GEMM through cublasGemmStridedBatchedEx with an explicit compute type, which CuPy's
matmul does not let a caller choose per call: FP32 (IEEE), TF32 tensor cores, and FP16 storage with FP32
accumulation.

Row-major C (M x N) = A (M x K) @ B (K x N) is column-major C^T = B^T A^T, so cuBLAS is called with the operands
swapped; a transposed operand is passed as the untransposed array with the transpose flag. A batch stride of 0
reuses one matrix for every batch entry (a shared weight).
"""
from __future__ import annotations

from dataclasses import dataclass

import cupy
import numpy as np
from cupy.cuda import cublas

COMPUTE_32F = 68  # CUBLAS_COMPUTE_32F
COMPUTE_32F_FAST_TF32 = 77  # CUBLAS_COMPUTE_32F_FAST_TF32
COMPUTE_64F = 70  # CUBLAS_COMPUTE_64F
_DATA_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}  # CUDA_R_32F/64F/16F
_GEMM_DEFAULT = -1
_OP_N, _OP_T = 0, 1


@dataclass(frozen=True)
class Operand:
    """A stack of row-major matrices in one contiguous array: `rows` x `cols` as stored, `transposed` when the
    product reads its transpose, `batch_stride` elements between matrices (0: one matrix for every batch)."""

    array: cupy.ndarray
    rows: int
    cols: int
    transposed: bool
    batch_stride: int

    @property
    def product_shape(self) -> tuple[int, int]:
        return (self.cols, self.rows) if self.transposed else (self.rows, self.cols)


def gemm(a: Operand, b: Operand, c: cupy.ndarray, batch: int, compute_type: int, alpha: float = 1.0,
         beta: float = 0.0) -> None:
    """c[i] = alpha * a[i] @ b[i] + beta * c[i] for i < batch; `c` is a contiguous (batch, M, N) array whose
    dtype is the operands' (float16 with FP32 accumulation for COMPUTE_32F)."""
    m, k = a.product_shape
    k2, n = b.product_shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: {a.product_shape} @ {b.product_shape}")
    if not c.flags.c_contiguous or c.size != batch * m * n:
        raise ValueError("the GEMM result must be one contiguous (batch, M, N) array")
    scalar = np.float64 if compute_type == COMPUTE_64F else np.float32
    alpha_host, beta_host = np.array(alpha, dtype=scalar), np.array(beta, dtype=scalar)
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.gemmStridedBatchedEx(
        handle, _OP_T if b.transposed else _OP_N, _OP_T if a.transposed else _OP_N, n, m, k,
        alpha_host.ctypes.data,
        b.array.data.ptr, _DATA_TYPES[b.array.dtype], b.cols, b.batch_stride,
        a.array.data.ptr, _DATA_TYPES[a.array.dtype], a.cols, a.batch_stride,
        beta_host.ctypes.data,
        c.data.ptr, _DATA_TYPES[c.dtype], n, m * n,
        batch, compute_type, _GEMM_DEFAULT)
