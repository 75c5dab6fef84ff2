"""cuBLASLt's int8 GEMM with the requantization in its epilogue, through nvmath-python's low-level bindings.

    D (int8) = saturate(round(relu?(alpha[row] * (op(A) @ B) + beta * C + bias[row])))

with A and B int8, int32 accumulation (CUBLAS_COMPUTE_32I, the tensor cores' IMMA kernels), float32 scales,
alpha a device vector with one value per row of D (CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST), C an
int8 addend laid out as D (the residual), and the bias/ReLU epilogue. An INT8 layer then writes one byte per
output and nothing else: no int32 accumulators, no second kernel.

nvmath-python's `Matmul` does not plan int8 GEMMs with these pointer modes, so the descriptors are made here with
its bindings of cublasLtMatmulDescCreate / MatrixLayoutCreate / AlgoGetHeuristic, and the call is enqueued as
gpu_cublaslt.py enqueues its GEMMs: fixed descriptors, pointers and host scalars, which a CUDA graph captures.

Column-major problem (cuBLASLt's convention): D is (m x n) with leading dimension m, A is stored (k x m) and used
transposed (the "TN" layout IMMA wants: the reduction contiguous in both operands), B is stored (k x n). A
row-major output (n, m) with rows of m channels, weights (m, k) and inputs (n, k) are exactly these matrices.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

CUDA_R_32F, CUDA_R_8I = 0, 3  # cudaDataType_t
COMPUTE_32I = 72  # cublasComputeType_t CUBLAS_COMPUTE_32I
OP_N, OP_T = 0, 1  # cublasOperation_t
# Pointer alignment every operand is planned for; run() makes sure its pointers have it.
OPERAND_ALIGNMENT = 16
HEURISTIC_LIMIT = 8


@functools.cache
def _handle(device: int) -> int:
    from nvmath.bindings import cublasLt

    return cublasLt.create()


def _set(setter: Any, dtype_of: Any, target: int, attribute: Any, value: Any) -> None:
    """One descriptor attribute, in the binary type the library declares for it."""
    buffer = np.asarray(value, dtype=dtype_of(attribute)).reshape(1)
    setter(target, attribute, buffer.ctypes.data, buffer.nbytes)


@dataclass
class Int8GemmPlan:
    """Descriptors, layouts and the chosen algorithm of one (m, n, k, epilogue) problem."""

    desc: int
    layouts: tuple[int, int, int]  # A, B, C = D
    results: np.ndarray  # the heuristic's records; `rank` is the one run
    rank: int
    offered: int
    workspace_bytes: int
    beta: np.ndarray  # float32 host scalar, read by cublasLtMatmul at enqueue time
    description: str

    def __del__(self):  # the descriptors are the library's; the plan is their only owner
        try:
            from nvmath.bindings import cublasLt

            for layout in self.layouts:
                cublasLt.matrix_layout_destroy(layout)
            cublasLt.matmul_desc_destroy(self.desc)
        except Exception:  # noqa: BLE001, S110 - at interpreter exit the library may be gone first
            pass


def plan_int8_gemm(m: int, n: int, k: int, *, bias: Any, relu: bool, beta: float, rank: int,
                   workspace_limit: int) -> Int8GemmPlan:
    """Plan D = alpha[row] * A^T @ B + beta * C (+ bias[row]) (ReLU) for int8 A (k x m), B (k x n), C = D (m x n);
    `bias` is the float32 device vector (kept alive by the caller: its address is in the descriptor) or None.
    Raises RuntimeError when cuBLASLt offers no algorithm (a shape or epilogue its IMMA kernels lack)."""
    import cupy
    from nvmath.bindings import cublasLt as lt

    desc = lt.matmul_desc_create(COMPUTE_32I, CUDA_R_32F)
    set_desc = functools.partial(_set, lt.matmul_desc_set_attribute, lt.get_matmul_desc_attribute_dtype, desc)
    attr = lt.MatmulDescAttribute
    set_desc(attr.TRANSA, OP_T)
    set_desc(attr.TRANSB, OP_N)
    set_desc(attr.POINTER_MODE, int(lt.PointerMode.ALPHA_DEVICE_VECTOR_BETA_HOST))
    epilogue = {(False, False): lt.Epilogue.DEFAULT, (True, False): lt.Epilogue.BIAS,
                (False, True): lt.Epilogue.RELU, (True, True): lt.Epilogue.RELU_BIAS}[(bias is not None, relu)]
    set_desc(attr.EPILOGUE, int(epilogue))
    if bias is not None:
        set_desc(attr.BIAS_DATA_TYPE, CUDA_R_32F)
        set_desc(attr.BIAS_POINTER, bias.data.ptr)
    layouts = (lt.matrix_layout_create(CUDA_R_8I, rows=k, cols=m, ld=k),
               lt.matrix_layout_create(CUDA_R_8I, rows=k, cols=n, ld=k),
               lt.matrix_layout_create(CUDA_R_8I, rows=m, cols=n, ld=m))
    preference = lt.matmul_preference_create()
    try:
        set_pref = functools.partial(_set, lt.matmul_preference_set_attribute,
                                     lt.get_matmul_preference_attribute_dtype, preference)
        pattr = lt.MatmulPreferenceAttribute
        set_pref(pattr.MAX_WORKSPACE_BYTES, workspace_limit)
        for name in ("MIN_ALIGNMENT_A_BYTES", "MIN_ALIGNMENT_B_BYTES", "MIN_ALIGNMENT_C_BYTES",
                     "MIN_ALIGNMENT_D_BYTES"):
            set_pref(getattr(pattr, name), OPERAND_ALIGNMENT)
        results = np.zeros(HEURISTIC_LIMIT, dtype=lt.matmul_heuristic_result_dtype)
        count = np.zeros(1, np.int32)
        a_layout, b_layout, d_layout = layouts
        lt.matmul_algo_get_heuristic(_handle(cupy.cuda.Device().id), desc, a_layout, b_layout, d_layout, d_layout,
                                     preference, HEURISTIC_LIMIT, results.ctypes.data, count.ctypes.data)
    except Exception:
        for layout in layouts:
            lt.matrix_layout_destroy(layout)
        lt.matmul_desc_destroy(desc)
        raise
    finally:
        lt.matmul_preference_destroy(preference)
    offered = int(count[0])
    plan = Int8GemmPlan(desc, layouts, results, min(rank, max(offered - 1, 0)), offered, 0,
                        np.array([beta], np.float32), "")
    if offered == 0:
        raise RuntimeError(f"cuBLASLt offers no int8 algorithm for m={m} n={n} k={k} (epilogue {epilogue.name})")
    plan.workspace_bytes = int(results["workspace_size"][plan.rank])
    plan.description = f"cuBLASLt int8 GEMM m={m} n={n} k={k}, epilogue {epilogue.name}, heuristic rank " \
                       f"{plan.rank} of {offered}"
    return plan


def enqueue_int8_gemm(plan: Int8GemmPlan, alpha: Any, a: Any, b: Any, c: Any, d: Any, workspace: Any) -> None:
    """One cublasLtMatmul on the current stream with the plan's descriptors: device arrays alpha (float32, m),
    a, b, c, d (int8, each aligned to OPERAND_ALIGNMENT), workspace (uint8, at least plan.workspace_bytes, or None
    when the algorithm needs none)."""
    import cupy
    from nvmath.bindings import cublasLt as lt

    record = plan.results[plan.rank:plan.rank + 1]
    algo = record.ctypes.data + record.dtype.fields["algo"][1]
    a_layout, b_layout, d_layout = plan.layouts
    lt.matmul(_handle(cupy.cuda.Device().id), plan.desc, alpha.data.ptr, a.data.ptr, a_layout, b.data.ptr, b_layout,
              plan.beta.ctypes.data, c.data.ptr, d_layout, d.data.ptr, d_layout, algo,
              0 if workspace is None else workspace.data.ptr, 0 if workspace is None else workspace.nbytes,
              cupy.cuda.get_current_stream().ptr)
