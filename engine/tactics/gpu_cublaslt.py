"""GPU MatMul tactics of the cuBLASLt source (TacticSource.CUBLAS_LT), through nvmath-python: the GEMM adds the
bias and applies ReLU/GELU in cuBLASLt's own epilogue (no second pass over the output), and the algorithms that
cuBLASLt's heuristic offers for a GEMM are tactics the builder times, as TensorRT does.

Tactic identity: `gpu:matmul:cublaslt_<mode>_h<k>` runs the k-th algorithm (0 = the heuristic's first choice)
that `cublasLtMatmulAlgoGetHeuristic` ranks for the GEMM, in mode fp32 (IEEE), tf32 (only with BuilderFlag.TF32)
or fp16 (FP16 storage, FP32 accumulation). The plan records the tactic id; loading re-runs the heuristic for the
same GEMM on the same GPU (the plan pins it) and takes the k-th algorithm again. If the installed cuBLASLt offers
fewer than k + 1 algorithms for a GEMM, the last one offered runs and a RuntimeWarning names the layer (results
stay right: every algorithm computes the same GEMM; only the speed may differ from the timed one).

Why nvmath-python's `Matmul` and not our own ctypes bindings: it builds the descriptors, layouts and epilogue
inputs (bias pointer, data types, batch strides) and queries the heuristic with checked arguments. It is used for
planning only: the GEMM is enqueued with nvmath's binding of `cublasLtMatmul` on the descriptors that `Matmul`
planned, our output buffer and the engine's workspace, because `Matmul.execute` allocates a fresh result per
call (it cannot write into the engine's planned buffers) and manages a workspace of its own. One call with fixed
descriptors, pointers and host scalars is what a CUDA graph captures. `Matmul.autotune` is not used either: the
builder times each algorithm as a tactic, which the timing cache and the algorithm selector then see.

Layout: row-major `out (M x N) = op0(A) @ op1(B) + bias[N]` is planned as the column-major product
`out^T (N x M) = op1(B)^T @ op0(A)^T`, whose bias is one value per row of the result, which is what cuBLASLt's
BIAS epilogues add; the views below are the same memory, nothing is copied or transposed.

GELU: cuBLASLt's GELU epilogue is the tanh approximation, at most 4.8e-4 from the exact erf GELU. FP16 layers
absorb an erf GELU with it (far inside FP16 engines' error bounds); FP32 layers, held to 1e-4 of onnxruntime,
leave an erf GELU to the shared epilogue helper after a BIAS epilogue. Activations cuBLASLt lacks (Clip,
LeakyReLU, ...) run the same way. A fused residual is left to the cuBLAS tactics here (it must come before the
activation; the 1x1-convolution tactics add theirs as the C operand).

Not here: native BF16 (nvmath reads bfloat16 operands only from PyTorch tensors, CuPy has no bfloat16; BF16
layers reach these tactics widened to FP32, engine/bfloat16.py). 1x1 convolutions of HWC layers are GEMMs of
gpu_cublaslt_conv.py, which plans and enqueues through `plan_gemm` / `enqueue_gemm` below; NCHW ones are not:
with NCHW output the bias is per column of the column-major product, which cuBLASLt's bias epilogue does not add.
"""
from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

from ..dtypes import DataType
from ..enums import ActivationType, LayerType, MatrixOperation, TacticSource
from ..ir.epilogue import ACTIVATION, Activation, Epilogue, apply_epilogue
from .base import Tactic, TacticContext, stable_tactic_id
from .gpu_matmul import gemm_shape_refusal
from .registry import register_tactic

MODES = {"fp32": DataType.FLOAT, "tf32": DataType.FLOAT, "fp16": DataType.HALF}
ALGORITHMS_PER_MODE = 4  # heuristic ranks 0..3 are tactics; later ones rarely win and cost build time
HEURISTIC_LIMIT = 8  # algorithms asked of the heuristic (a lower rank's choice does not depend on it)
# The workspace cuBLASLt may use (NVIDIA recommends 32 MiB on Hopper); the heuristic only offers algorithms
# that fit in it, less the 16 bytes nvmath adds for epilogues.
WORKSPACE_BYTES = 32 << 20
STORAGE = {DataType.FLOAT: "float32", DataType.HALF: "float16"}
# GELU_TANH is what cuBLASLt computes; GELU_ERF is absorbed as it only by FP16 layers (see the module docstring).
_FUSED_ACTIVATIONS = {ActivationType.RELU: "RELU", ActivationType.GELU_TANH: "GELU"}
# Largest |GELU_erf(x) - GELU_tanh(x)| over all x (at |x| near 2.7), the error of absorbing an erf GELU.
GELU_TANH_MAX_ERROR = 4.8e-4
_LOG = logging.getLogger("engine.cublaslt")


@functools.cache
def cublaslt_unavailable() -> str | None:
    """Why these tactics cannot run here (None: they can): nvmath-python with its cuBLASLt binding, which needs
    cuda-bindings and libcublasLt (the nvidia-cublas wheel PyTorch brings), and CuPy."""
    try:
        import cupy  # noqa: F401
        from nvmath.bindings import cublasLt
        from nvmath.linalg.advanced import Matmul  # noqa: F401

        version = cublasLt.get_version()
    except ImportError as exc:
        return f"cuBLASLt tactics need nvmath-python, cuda-bindings, libcublasLt and CuPy ({exc})"
    except Exception as exc:  # noqa: BLE001 - a library that fails to load is a reason, not a crash
        return f"cuBLASLt could not be loaded through nvmath-python: {type(exc).__name__}: {exc}"
    return None if version else "cuBLASLt reports no version"


def epilogue_plan(activation: Activation | None, has_bias: bool, half: bool) -> tuple[str | None, Epilogue | None]:
    """cuBLASLt's epilogue for a layer (an nvmath MatmulEpilog name, None for a plain GEMM) and the fused
    activation left for the shared helper to apply after it (None when cuBLASLt does it all)."""
    kind = None if activation is None else activation.type
    if kind == ActivationType.GELU_ERF and half:
        kind = ActivationType.GELU_TANH
    fused = _FUSED_ACTIVATIONS.get(kind)
    left = None if activation is None or fused is not None else Epilogue(activation=activation)
    if fused is None:
        return ("BIAS" if has_bias else None), left
    return (f"{fused}_BIAS" if has_bias else fused), left


def gemm_views(a: Any, b: Any, out: Any, trans_a: bool, trans_b: bool) -> tuple[Any, Any, Any]:
    """The column-major problem `c = a' @ b'` that is `out = op0(a) @ op1(b)` (row-major, contiguous arrays):
    a' = op1(b)^T, b' = op0(a)^T, c = out^T, as views of the same memory. A first operand multiplied by one
    shared matrix is folded into one tall GEMM; other batch dims are flattened into one, and a 2-D operand is
    broadcast over the batch. Works on NumPy and CuPy arrays alike."""
    batch_a, batch_b = math.prod(a.shape[:-2]), math.prod(b.shape[:-2])
    if batch_b == 1 and not trans_a and a.ndim > 2:  # every batch entry uses the same B: one tall GEMM
        a = a.reshape(-1, a.shape[-1])
        out = out.reshape(-1, out.shape[-1])
    else:
        a = a.reshape(batch_a, *a.shape[-2:]) if batch_a > 1 else a.reshape(a.shape[-2:])
        b = b.reshape(batch_b, *b.shape[-2:]) if batch_b > 1 else b.reshape(b.shape[-2:])
        out = out.reshape(-1, *out.shape[-2:]) if out.ndim > 2 else out
        if out.ndim == 3 and out.shape[0] == 1:
            out = out.reshape(out.shape[-2:])
    left = b if trans_b else b.swapaxes(-1, -2)
    right = a if trans_a else a.swapaxes(-1, -2)
    return left, right, out.swapaxes(-1, -2)


def algorithm_rank(wanted: int, offered: int, layer: str) -> int:
    """The heuristic rank to run: `wanted`, or the last of the `offered` ones with a warning when the installed
    cuBLASLt offers fewer for this GEMM than the plan's tactic names."""
    if offered < 1:
        raise RuntimeError(f"layer '{layer}': cuBLASLt's heuristic offers no algorithm for this GEMM")
    if wanted < offered:
        return wanted
    warnings.warn(f"layer '{layer}': the plan's tactic runs cuBLASLt's algorithm of heuristic rank {wanted}, but "
                  f"the installed cuBLASLt offers {offered} for this GEMM; running rank {offered - 1} instead "
                  "(rebuild the engine to time this library's algorithms)", RuntimeWarning, stacklevel=2)
    return offered - 1


def alignment(pointer: int) -> int:
    """The power of two (up to 256 bytes) that `pointer` is aligned to: the heuristic's algorithms may rely on it."""
    return min(256, pointer & -pointer) if pointer else 256


@dataclass
class _PlannedGemm:
    """One GEMM shape planned: nvmath's Matmul (owner of the descriptors and layouts), the chosen algorithm as
    cuBLASLt's heuristic-result record (its address is what cublasLtMatmul reads), and a workspace of its own,
    made only if a caller gives less than the algorithm needs."""

    matmul: Any
    record: Any
    rank: int
    workspace_bytes: int
    own_workspace: Any
    description: str


class RankedCublasLtTactic(Tactic):
    """One (mode, heuristic rank) of a cuBLASLt GEMM: the MatMul tactics here and the HWC 1x1 convolutions of
    gpu_cublaslt_conv.py are named, ranked and checked the same way, because cuBLASLt's heuristic decides how many
    ranks a problem has. A subclass gives `name_stem`, `problem` (what a refusal calls its GEMM),
    `static_refusal` and `_heuristic_count`."""

    backend = "gpu"
    source = TacticSource.CUBLAS_LT
    name_stem: str
    problem: str

    def __init__(self, mode: str, rank: int):
        self.mode, self.rank = mode, rank
        self.name = f"{self.name_stem}_{mode}_h{rank}"
        self.id = stable_tactic_id(self.name)
        # Untimed builds (optimization level 0) rank the cuBLAS GEMM tactics (the native BF16 GEMM among them)
        # first, then this heuristic's first choice, ahead of the cuDNN engines (rank 30); timing decides otherwise.
        self.heuristic_rank = (6 if mode == "tf32" else 11) + rank
        # Builds at optimization level 0-1 take the heuristic's own choice; higher levels time the others too.
        self.min_optimization_level = 0 if rank == 0 else 2

    # ------------------------------------------------------------------ eligibility
    def supports(self, ctx: TacticContext) -> bool | str:
        reason = cublaslt_unavailable() or self.static_refusal(ctx)
        if reason:
            return reason
        try:
            offered = self._heuristic_count(ctx)
        except Exception as exc:  # noqa: BLE001 - a GEMM cuBLASLt refuses is a reason, not a crash
            return f"cuBLASLt cannot plan {self.problem}: {type(exc).__name__}: {exc}"
        if self.rank >= offered:
            return f"cuBLASLt's heuristic offers {offered} algorithm(s) for this GEMM, not rank {self.rank}"
        return True

    def static_refusal(self, ctx: TacticContext) -> str | None:
        """What rules the layer out before asking cuBLASLt (None: nothing does)."""
        raise NotImplementedError

    def _heuristic_count(self, ctx: TacticContext) -> int:
        """How many algorithms cuBLASLt's heuristic offers for the layer's GEMM at the context's shapes."""
        raise NotImplementedError


class CublasLtMatmul(RankedCublasLtTactic):
    layer_type = LayerType.MATRIX_MULTIPLY
    absorbs = frozenset({ACTIVATION})
    name_stem = "gpu:matmul:cublaslt"
    problem = "this GEMM"

    def static_refusal(self, ctx: TacticContext) -> str | None:
        """What rules the layer out before asking cuBLASLt (None: nothing does)."""
        a, b = ctx.inputs[0], ctx.inputs[1]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        want = MODES[self.mode]
        if a.dtype != want or b.dtype != want or ctx.outputs[0].dtype != want:
            return f"the {self.mode} GEMM needs {want.value} operands and output, got {a.dtype.value} x " \
                   f"{b.dtype.value} -> {ctx.outputs[0].dtype.value}"
        if self.mode == "tf32" and not ctx.extra.get("tf32"):
            return "TF32 is used only when BuilderFlag.TF32 is set"
        shape_refusal = gemm_shape_refusal(ctx)
        if shape_refusal:
            return shape_refusal
        if any(d == 0 for d in a.shape + b.shape):
            return "an empty operand: nothing for cuBLASLt to multiply"
        if ctx.epilogue.residual is not None:
            return "a fused residual comes before the activation: left to the cuBLAS tactics"
        if bias is not None:
            n = ctx.outputs[0].shape[-1]
            if bias.value is None:
                return "the bias is not a build-time constant (cuBLASLt's epilogue reads one fixed bias vector)"
            if bias.dtype != want:
                return f"the bias is {bias.dtype.value}, the GEMM {want.value}"
            if math.prod(bias.shape) not in (1, n) or (math.prod(bias.shape) == n and bias.shape[-1] != n):
                return "the bias is not one value per output column"
        return None

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return WORKSPACE_BYTES

    # ------------------------------------------------------------------ build / load
    def prepare(self, ctx: TacticContext) -> dict:
        """The bias on the device (beta folded in), the epilogue split, and at static shapes the planned GEMM."""
        import cupy

        state = self._state(ctx)
        shapes = (ctx.inputs[0].shape, ctx.inputs[1].shape, ctx.outputs[0].shape)
        if all(d >= 0 for shape in shapes for d in shape):  # static shapes: plan now, not in the first run
            self._plan(state, *(cupy.empty(shape, state["storage"]) for shape in shapes))
        return state

    def _state(self, ctx: TacticContext) -> dict:
        import cupy
        import numpy as np

        p = ctx.layer.params
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        storage = STORAGE[MODES[self.mode]]
        epilog, left = epilogue_plan(ctx.epilogue.activation, bias is not None, MODES[self.mode] == DataType.HALF)
        bias_row = None
        if bias is not None:  # beta folded in; a scalar bias repeated per column
            n = ctx.outputs[0].shape[-1]
            values = np.asarray(bias.value, np.float64).reshape(-1) * float(p.get("beta", 1.0))
            bias_row = cupy.asarray(np.broadcast_to(values, (n,)).astype(storage))
        return {"trans_a": MatrixOperation(p["op0"]) == MatrixOperation.TRANSPOSE,
                "trans_b": MatrixOperation(p["op1"]) == MatrixOperation.TRANSPOSE,
                "alpha": float(p.get("alpha", 1.0)), "epilog": epilog, "after": left, "bias": bias_row,
                "storage": storage, "layer": ctx.layer.name, "plans": {}}

    def _plan(self, state: dict, a: Any, b: Any, out: Any) -> _PlannedGemm:
        """Plan the GEMM of these arrays' shapes and alignments (see plan_gemm)."""
        left, right, result = gemm_views(a, b, out, state["trans_a"], state["trans_b"])
        return plan_gemm(state, left, right, result, self.mode, self.rank,
                         self._count_key(state, a.shape, b.shape, out.shape))

    def _heuristic_count(self, ctx: TacticContext) -> int:
        """How many algorithms cuBLASLt's heuristic offers for the layer's GEMM at the context's shapes (planned
        once per problem, with scratch operands freed again)."""
        import cupy

        state = self._state(ctx)
        shapes = (ctx.inputs[0].shape, ctx.inputs[1].shape, ctx.outputs[0].shape)
        key = self._count_key(state, *shapes)
        if key not in HEURISTIC_COUNTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a missing rank is reported by supports, not warned
                planned = self._plan(state, *(cupy.empty(shape, state["storage"]) for shape in shapes))
            planned.matmul.free()
        return HEURISTIC_COUNTS[key]

    def _count_key(self, state: dict, *shapes: tuple[int, ...]) -> tuple:
        import cupy

        return (cupy.cuda.Device().id, self.mode, state["epilog"], state["trans_a"], state["trans_b"],
                state["alpha"] != 0, *shapes)

    # ------------------------------------------------------------------ run
    def run(self, state, inputs, outputs, workspace, xp) -> None:
        a, b, out = xp.ascontiguousarray(inputs[0]), xp.ascontiguousarray(inputs[1]), outputs[0]
        target = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        left, right, result = gemm_views(a, b, target, state["trans_a"], state["trans_b"])
        planned = state["plans"].get(plan_key(left, right, result)) or self._plan(state, a, b, target)
        enqueue_gemm(planned, left, right, result, result, workspace)
        if state["after"] is not None:
            apply_epilogue(state["after"], target, inputs, xp)
        if target is not out:
            xp.copyto(out, target)


# Heuristic algorithm counts per planned GEMM problem, so `supports` asks cuBLASLt once per problem.
HEURISTIC_COUNTS: dict[tuple, int] = {}


def plan_key(left: Any, right: Any, result: Any) -> tuple:
    """What a planned GEMM depends on: the views' shapes, strides, types and pointer alignments."""
    return tuple((x.shape, x.strides, str(x.dtype), alignment(x.data.ptr)) for x in (left, right, result))


def gemm_options(mode: str) -> dict:
    """nvmath Matmul options of a mode: in place (the result is the C operand, so D's layout is C's), IEEE FP32
    or TF32 compute, the workspace limit, our logger."""
    from nvmath.linalg import ComputeType

    compute = ComputeType.COMPUTE_32F_FAST_TF32 if mode == "tf32" else ComputeType.COMPUTE_32F
    return {"inplace": True, "compute_type": compute, "memory_limit": WORKSPACE_BYTES - 256, "logger": _LOG}


def plan_gemm(state: dict, left: Any, right: Any, result: Any, mode: str, rank: int, count_key: tuple) -> _PlannedGemm:
    """Plan the column-major GEMM `result = alpha * left @ right + beta * C` (C laid out as `result`; beta is
    state["beta"], 0 unless a residual is added) with state's epilogue, for these views' shapes, strides and
    alignments, and take the heuristic's algorithm of `rank`. A first run at new shapes does it, never a CUDA
    graph capture: the runtime runs new shapes and addresses once before capturing. Shared by the MatMul and the
    1x1-convolution tactics; `state` holds "plans" (the cache), "alpha", "epilog", "bias" and "layer"."""
    from nvmath.linalg.advanced import Matmul, MatmulEpilog

    key = plan_key(left, right, result)
    planned = state["plans"].get(key)
    if planned is not None:
        return planned
    matmul = Matmul(left, right, result, alpha=state["alpha"], beta=state.get("beta", 0.0),
                    options=gemm_options(mode))
    epilog = None if state["epilog"] is None else MatmulEpilog[state["epilog"]]
    inputs = {"bias": state["bias"]} if state["bias"] is not None else None
    algorithms = matmul.plan(preferences={"limit": HEURISTIC_LIMIT}, epilog=epilog, epilog_inputs=inputs)
    HEURISTIC_COUNTS[count_key] = len(algorithms)
    chosen = algorithm_rank(rank, len(algorithms), state["layer"])
    algorithm = algorithms[chosen]
    record = algorithm.as_numpy().copy()
    need = int(record["workspace_size"][0]) + 16  # nvmath's allowance for epilogues, kept
    matmul.release_operands()  # the descriptors stay; the (scratch) operands may go
    planned = _PlannedGemm(matmul, record, chosen, need, None,
                           f"cuBLASLt algorithm {algorithm.algorithm_id} (heuristic rank {chosen}, tile "
                           f"{algorithm.tile}, stages {algorithm.stages}, split-k {algorithm.split_k})")
    state["plans"][key] = planned
    _LOG.debug("layer '%s': %s", state["layer"], planned.description)
    return planned


def enqueue_gemm(planned: _PlannedGemm, left: Any, right: Any, result: Any, addend: Any, workspace: Any) -> None:
    """One cublasLtMatmul on the current stream: `result = alpha * left @ right + beta * addend`, then the planned
    epilogue. `addend` is laid out as `result` (it is `result` itself when beta is 0). Fixed descriptors, pointers
    and host scalars: what a CUDA graph captures."""
    import cupy
    from nvmath.bindings import cublasLt

    if workspace is None or workspace.nbytes < planned.workspace_bytes:
        if planned.own_workspace is None:  # a caller that gave less than workspace_bytes: first run, not captured
            planned.own_workspace = cupy.empty(planned.workspace_bytes, cupy.uint8)
        workspace = planned.own_workspace
    m, record = planned.matmul, planned.record
    cublasLt.matmul(m.handle, m.mm_desc, m.alpha.ctypes.data, left.data.ptr, m.a_layout_ptr, right.data.ptr,
                    m.b_layout_ptr, m.beta.ctypes.data, addend.data.ptr, m.c_layout_ptr, result.data.ptr,
                    m.d_layout_ptr, record.ctypes.data + record.dtype.fields["algo"][1], workspace.data.ptr,
                    workspace.nbytes, cupy.cuda.get_current_stream().ptr)


for _mode in MODES:
    for _rank in range(ALGORITHMS_PER_MODE):
        register_tactic(CublasLtMatmul(_mode, _rank))
