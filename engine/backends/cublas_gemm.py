"""Row-major (batched) GEMM through cublasGemmStridedBatchedEx with an explicit compute type, which CuPy's
matmul does not let a caller choose per call: FP32 (IEEE), TF32 tensor cores, and FP16 or BF16 storage with FP32
accumulation.

cuBLAS is called through ctypes on CuPy's per-thread handle, on the current stream, because CuPy's own cuBLAS
wrappers refuse to run while a stream is being captured: called directly, the GEMMs of an execution can be
captured into a CUDA graph (engine/backends/gpu_graph.py).

Row-major C (M x N) = A (M x K) @ B (K x N) is column-major C^T = B^T A^T, so cuBLAS is called with the operands
swapped; a transposed operand is passed as the untransposed array with the transpose flag. A batch stride of 0
reuses one matrix for every batch entry (a shared weight).
"""
from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import cupy
import numpy as np

COMPUTE_32F = 68  # CUBLAS_COMPUTE_32F
COMPUTE_64F = 70  # CUBLAS_COMPUTE_64F
COMPUTE_32F_FAST_TF32 = 77  # CUBLAS_COMPUTE_32F_FAST_TF32
COMPUTE_32I = 72  # CUBLAS_COMPUTE_32I: int8 operands, int32 accumulation and result, int32 alpha/beta
# CUDA_R_32F/64F/16F/16BF/8I/32I; uint16 arrays are the engine's bfloat16 storage on the GPU (engine/bfloat16.py)
_DATA_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2, np.dtype(np.uint16): 14,
               np.dtype(np.int8): 3, np.dtype(np.int32): 10}
_GEMM_DEFAULT = -1
_OP_N, _OP_T = 0, 1
_PTR, _INT, _LONG = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong


@dataclass(frozen=True)
class Operand:
    """A stack of row-major matrices: `array` views the first one (each matrix's rows are contiguous, `cols`
    elements apart), `rows` x `cols` as stored, `transposed` when the product reads its transpose, and
    `batch_stride` elements between consecutive matrices (0: one matrix for every batch entry)."""

    array: Any
    rows: int
    cols: int
    transposed: bool
    batch_stride: int

    @property
    def product_shape(self) -> tuple[int, int]:
        return (self.cols, self.rows) if self.transposed else (self.rows, self.cols)


def compute_type_for(dtype: Any) -> int:
    """IEEE compute of the storage type: FP64 for float64, FP32 for float32 and float16."""
    return COMPUTE_64F if np.dtype(dtype) == np.float64 else COMPUTE_32F


@functools.cache
def _cublas() -> ctypes.CDLL:
    from cupy.cuda import cublas  # noqa: F401 - CuPy locates and loads libcublas; we reuse that library

    candidates = []
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        candidates.append(load_nvidia_dynamic_lib("cublas").abs_path)
    except Exception:  # noqa: BLE001 - older CuPy: fall back to the sonames
        pass
    for name in [c for c in candidates if c] + ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]:
        try:
            library = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise RuntimeError("libcublas could not be loaded")
    library.cublasSetStream_v2.argtypes = [_PTR, _PTR]
    library.cublasSetStream_v2.restype = _INT
    library.cublasGemmStridedBatchedEx.argtypes = [
        _PTR, _INT, _INT, _INT, _INT, _INT, _PTR, _PTR, _INT, _INT, _LONG, _PTR, _INT, _INT, _LONG, _PTR, _PTR, _INT,
        _INT, _LONG, _INT, _INT, _INT]
    library.cublasGemmStridedBatchedEx.restype = _INT
    return library


def gemm(a: Operand, b: Operand, c: Operand, batch: int, compute_type: int, alpha: float = 1.0,
         beta: float = 0.0) -> None:
    """c[i] = alpha * a[i] @ b[i] + beta * c[i] for i < batch, enqueued on the current stream. Operands share
    one dtype (float16 storage accumulates in float32 with COMPUTE_32F), except int8 operands with an int32 `c`
    under COMPUTE_32I (tensor-core IMMA kernels want a transposed `b`, and rows of both operands and of `c`
    a multiple of 4 elements long: engine/tactics/gpu_int8.py lays them out so)."""
    m, k = a.product_shape
    k2, n = b.product_shape
    if k != k2 or (c.rows, c.cols) != (m, n) or c.transposed:
        raise ValueError(f"GEMM shapes do not agree: {a.product_shape} @ {b.product_shape} -> {(c.rows, c.cols)}")
    if batch == 0 or m == 0 or n == 0:
        return
    scalar = {COMPUTE_64F: np.float64, COMPUTE_32I: np.int32}.get(compute_type, np.float32)
    alpha_host, beta_host = np.array(alpha, dtype=scalar), np.array(beta, dtype=scalar)
    library = _cublas()
    handle = cupy.cuda.device.get_cublas_handle()
    status = library.cublasSetStream_v2(handle, cupy.cuda.get_current_stream().ptr)
    if status == 0:
        status = library.cublasGemmStridedBatchedEx(
            handle, _OP_T if b.transposed else _OP_N, _OP_T if a.transposed else _OP_N, n, m, k,
            alpha_host.ctypes.data,
            b.array.data.ptr, _DATA_TYPES[b.array.dtype], b.cols, b.batch_stride,
            a.array.data.ptr, _DATA_TYPES[a.array.dtype], a.cols, a.batch_stride,
            beta_host.ctypes.data,
            c.array.data.ptr, _DATA_TYPES[c.array.dtype], n, c.batch_stride,
            batch, compute_type, _GEMM_DEFAULT)
    if status != 0:
        raise RuntimeError(f"cuBLAS GEMM failed with status {status} ({m}x{n}x{k}, batch {batch})")
