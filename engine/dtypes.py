"""Data types and their mapping to NumPy and ONNX.

TensorRT 8.6 names are kept (FLOAT, HALF, INT32, ...); DOUBLE and the wider integer types exist because
the CPU engine can run them, which widens ONNX coverage (shape arithmetic is INT64 in ONNX).
"""
from __future__ import annotations

from enum import Enum

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .errors import EngineError


class DataType(str, Enum):
    FLOAT = "FLOAT"
    HALF = "HALF"
    BF16 = "BF16"
    DOUBLE = "DOUBLE"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    BOOL = "BOOL"

    def __str__(self) -> str:
        return f"DataType.{self.value}"

    @property
    def itemsize(self) -> int:
        return np.dtype(nptype(self)).itemsize

    @property
    def is_floating(self) -> bool:
        """The one definition of "a float type" (FLOAT, HALF, BF16, DOUBLE) that op importers and tactics check."""
        return self in (DataType.FLOAT, DataType.HALF, DataType.BF16, DataType.DOUBLE)

    @property
    def is_reduced_float(self) -> bool:
        """HALF and BF16: 16-bit storage whose layers compute in float32 (as tensor cores accumulate)."""
        return self in REDUCED_FLOAT_TYPES


REDUCED_FLOAT_TYPES = frozenset({DataType.HALF, DataType.BF16})

# bfloat16 has no NumPy type of its own: ml_dtypes (a dependency of onnx) provides it. Its NumPy kind is "V", so
# code that asks "is this a float array?" must use `is_float_array`, not `dtype.kind == "f"`.
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# The float types the GPU tactics' kernels and cuBLAS calls read and write (float32 and float16 storage); DOUBLE
# layers on the GPU run the reference tactic.
GPU_KERNEL_FLOAT_TYPES = frozenset({DataType.FLOAT, DataType.HALF})

_TO_NUMPY = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.BF16: ml_dtypes.bfloat16,
    DataType.DOUBLE: np.float64,
    DataType.INT8: np.int8,
    DataType.INT16: np.int16,
    DataType.INT32: np.int32,
    DataType.INT64: np.int64,
    DataType.UINT8: np.uint8,
    DataType.UINT16: np.uint16,
    DataType.UINT32: np.uint32,
    DataType.UINT64: np.uint64,
    DataType.BOOL: np.bool_,
}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items()}

_FROM_ONNX = {
    TensorProto.FLOAT: DataType.FLOAT,
    TensorProto.FLOAT16: DataType.HALF,
    TensorProto.BFLOAT16: DataType.BF16,
    TensorProto.DOUBLE: DataType.DOUBLE,
    TensorProto.INT8: DataType.INT8,
    TensorProto.INT16: DataType.INT16,
    TensorProto.INT32: DataType.INT32,
    TensorProto.INT64: DataType.INT64,
    TensorProto.UINT8: DataType.UINT8,
    TensorProto.UINT16: DataType.UINT16,
    TensorProto.UINT32: DataType.UINT32,
    TensorProto.UINT64: DataType.UINT64,
    TensorProto.BOOL: DataType.BOOL,
}


def is_float_array(array) -> bool:
    """Whether an array holds floats, bfloat16 included (whose NumPy kind is "V")."""
    dtype = getattr(array, "dtype", None)
    return dtype is not None and (dtype.kind == "f" or dtype == BFLOAT16)


def nptype(dtype: DataType) -> type:
    """NumPy scalar type of a DataType."""
    return _TO_NUMPY[DataType(dtype)]


def from_numpy(dtype) -> DataType:
    """DataType of a NumPy dtype; raises EngineError for dtypes the engine cannot hold."""
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise EngineError(f"unsupported data type {dtype!r}") from None


def from_onnx(elem_type: int) -> DataType:
    """DataType of an ONNX TensorProto element type; raises EngineError for unsupported ones."""
    try:
        return _FROM_ONNX[elem_type]
    except KeyError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise EngineError(f"unsupported ONNX data type {name}") from None


def is_supported_onnx(elem_type: int) -> bool:
    return elem_type in _FROM_ONNX
