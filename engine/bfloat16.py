"""bfloat16 layers: every tactic runs them in float32, and each output is rounded to bfloat16 once.

No kernel reads bfloat16 directly. A layer that reads or writes BF16 tensors (a BF16-precision layer of a
BuilderFlag.BF16 build, or a layer of a model typed bfloat16) is shown to its tactics as a FLOAT layer
(`widened_info`), so every FP32 tactic — reference, CPU and GPU — can take it; its step (`widened_run`) widens
the bfloat16 inputs to float32, runs the tactic and its epilogue in float32 and rounds the outputs to bfloat16 when
storing them. That is what a GPU kernel with bfloat16 storage and float32 accumulation computes: one rounding per
layer output. Layers that read only shapes keep their bfloat16 tensors; Cast and Reformat convert directly (on the
CPU with NumPy's astype, on the GPU with `converting_run`).

Storage: on the CPU bfloat16 arrays are ml_dtypes.bfloat16 NumPy arrays. CuPy has no bfloat16 type, so on the GPU
they are uint16 arrays holding the bfloat16 bits (`storage_dtype`), converted by two CuPy elementwise kernels:
widening is a 16-bit shift, narrowing rounds to nearest even (NaN stays a quiet NaN), as CUDA's
__float2bfloat16_rn does. Host arrays cross as views (`to_device_array`, `from_device_array`): no value changes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dtypes import BFLOAT16, DataType, nptype
from .enums import LayerType
from .ir.epilogue import Epilogue, apply_epilogue
from .ops.base import TensorInfo

# Layers whose kernel converts dtypes or reads only shapes: they take bfloat16 tensors as they are.
KEEPS_BFLOAT16 = frozenset({LayerType.CAST, LayerType.REFORMAT, LayerType.SHAPE, LayerType.CONSTANT})
CONVERTING_LAYERS = frozenset({LayerType.CAST, LayerType.REFORMAT})
# CuPy arrays of BF16 tensors hold the bfloat16 bits
GPU_BFLOAT16_STORAGE = np.dtype(np.uint16)


def storage_dtype(dtype: DataType, device: str) -> np.dtype:
    """The array dtype of a tensor of `dtype` on `device` (BF16 on the GPU: uint16 bits)."""
    if dtype == DataType.BF16 and device == "gpu":
        return GPU_BFLOAT16_STORAGE
    return np.dtype(nptype(dtype))


def to_device_array(array: Any, device: str) -> Any:
    """A host array as `device` stores it: on the GPU bfloat16 viewed as its uint16 bits; else unchanged."""
    return array.view(np.uint16) if device == "gpu" and getattr(array, "dtype", None) == BFLOAT16 else array


def from_device_array(array: np.ndarray, dtype: DataType) -> np.ndarray:
    """A host copy of a GPU tensor of `dtype` with its real dtype (uint16 bits of a BF16 tensor as bfloat16)."""
    return array.view(BFLOAT16) if dtype == DataType.BF16 and array.dtype == GPU_BFLOAT16_STORAGE else array


def bfloat16_positions(layer_type: LayerType, input_dtypes: Sequence[DataType | None],
                       output_dtypes: Sequence[DataType]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input positions, output positions) holding BF16 tensors of a layer that runs widened; None when the layer
    runs on its own tensors (no BF16 tensor, or a layer in KEEPS_BFLOAT16)."""
    if layer_type in KEEPS_BFLOAT16:
        return None
    ins = tuple(p for p, d in enumerate(input_dtypes) if d == DataType.BF16)
    outs = tuple(p for p, d in enumerate(output_dtypes) if d == DataType.BF16)
    return (ins, outs) if ins or outs else None


def widened_info(info: TensorInfo | None) -> TensorInfo | None:
    """A BF16 tensor as its tactic sees it: FLOAT, with a known value widened to float32."""
    if info is None or info.dtype != DataType.BF16:
        return info
    value = None if info.value is None else np.asarray(info.value).astype(np.float32)
    return TensorInfo(info.shape, DataType.FLOAT, value)


def widened_run(run: Any, epilogue: Epilogue | None, positions: tuple[tuple[int, ...], tuple[int, ...]]) -> Any:
    """A step's run function for a widened layer: bfloat16 inputs to float32, the tactic and the epilogue in
    float32, outputs rounded to bfloat16. Takes over the epilogue, so the step must carry none."""
    in_positions, out_positions = positions

    def run_widened(state, inputs, outputs, workspace, xp) -> None:
        inputs = list(inputs)
        for p in in_positions:
            if inputs[p] is not None:
                inputs[p] = to_float32(inputs[p], xp)
        wide = list(outputs)
        for p in out_positions:  # None: a data-dependent output, which the tactic makes itself
            wide[p] = None if outputs[p] is None else xp.empty(outputs[p].shape, dtype=xp.float32)
        run(state, inputs, wide, workspace, xp)
        if epilogue is not None:
            apply_epilogue(epilogue, wide[0], inputs, xp)
        for p, array in enumerate(wide):
            if p not in out_positions:
                outputs[p] = array  # a data-dependent tactic's own arrays (else the same array)
            elif outputs[p] is None or outputs[p].shape != array.shape:  # sized by the data: stored here
                outputs[p] = xp.empty(array.shape, dtype=_bfloat16_storage(xp))
                store_rounded(array, outputs[p], xp)
            else:
                store_rounded(array, outputs[p], xp)

    return run_widened


def converting_run(from_bfloat16: bool, to_bfloat16: bool) -> Any:
    """The GPU run of a Cast/Reformat with a BF16 side (CuPy cannot astype to or from bfloat16): through
    float32, rounding to nearest even when the target is bfloat16; other targets convert as astype does."""

    def run_converting(state, inputs, outputs, workspace, xp) -> None:
        source = to_float32(inputs[0], xp) if from_bfloat16 else inputs[0]
        if to_bfloat16:
            store_rounded(source.astype(xp.float32, copy=False), outputs[0], xp)
        else:
            xp.copyto(outputs[0], source, casting="unsafe")

    return run_converting


def to_float32(array: Any, xp: Any) -> Any:
    """A float32 copy of a bfloat16 array (ml_dtypes on NumPy, uint16 bits on CuPy). A NumPy array on the GPU is a
    host operand (a Range bound, a Pad value the layer reads on the host): it is widened on the host, as it came."""
    if xp is np or isinstance(array, np.ndarray):
        return from_device_array(array, DataType.BF16).astype(np.float32)
    return _gpu_kernels()[0](array)


def _bfloat16_storage(xp: Any) -> np.dtype:
    return np.dtype(BFLOAT16) if xp is np else GPU_BFLOAT16_STORAGE


def store_rounded(source: Any, target: Any, xp: Any) -> None:
    """Store float32 `source` into bfloat16 `target`, rounding to nearest even."""
    if xp is np:
        np.copyto(target, source, casting="unsafe")
    else:
        _gpu_kernels()[1](source, target)


_KERNELS: list[Any] = []


def _gpu_kernels() -> list[Any]:
    """(widen, narrow) CuPy elementwise kernels on the uint16 bits, compiled once per process."""
    if not _KERNELS:
        import cupy

        widen = cupy.ElementwiseKernel(
            "uint16 bits", "float32 y", "y = __uint_as_float(((unsigned int)bits) << 16)", "polyx_bf16_to_f32")
        narrow = cupy.ElementwiseKernel(
            "float32 x", "uint16 bits",
            "unsigned int u = __float_as_uint(x);"
            "bits = (x != x) ? (unsigned short)((u >> 16) | 0x40u)"
            " : (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)",
            "polyx_f32_to_bf16_rn")
        _KERNELS.extend([widen, narrow])
    return _KERNELS
