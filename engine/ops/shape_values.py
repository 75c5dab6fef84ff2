"""Helpers for layers whose output shape comes from the *value* of a small int tensor (a "shape tensor").

Such values are NumPy arrays at build time (shape_inference.known_value) and host or device arrays at run time;
`host_ints` turns any of them into a Python list. `dims_from_value` gives the output dims a shape tensor
describes, or -1 dims of the right rank when its value is not known yet.
"""
from __future__ import annotations

from typing import Any

from ..errors import EngineError
from .base import TensorInfo


def host_ints(value: Any) -> list[int]:
    """A small int array (NumPy, CuPy, list or scalar) as a flat list of Python ints."""
    flat = value.reshape(-1).tolist() if hasattr(value, "reshape") else value
    if not isinstance(flat, list):
        flat = [flat]
    return [int(v) for v in flat]


def host_scalar(value: Any) -> Any:
    """A one-element array (NumPy or CuPy) as a Python number."""
    return value.reshape(-1)[0].item() if hasattr(value, "reshape") else value


def vector_length(info: TensorInfo, what: str) -> int:
    """The number of entries of a 0-D or 1-D tensor, or -1 when it is not known before run time."""
    if info.shape is None or len(info.shape) > 1:
        raise EngineError(f"{what} must be a 1-D tensor, got shape {info.shape}")
    return 1 if len(info.shape) == 0 else info.shape[0]


def dims_from_value(info: TensorInfo, what: str) -> list[int]:
    """Dims held by a shape tensor: its value when known, else -1 dims (its length must then be static)."""
    if info.value is not None:
        return host_ints(info.value)
    length = vector_length(info, what)
    if length < 0:
        raise EngineError(f"the rank of the output depends on the length of {what}, which is not known")
    return [-1] * length
