"""The memory an output is written to when an IOutputAllocator provides it (engine/output_allocator.py).

The allocator is asked for memory once the output's size is known; what it gives (or the address set for the
output) is then viewed as the output's dtype and shape. Both steps name the output when they fail.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .dtypes import nptype
from .errors import ExecutionError
from .graph import TensorSpec
from .output_allocator import OUTPUT_ALIGNMENT, IOutputAllocator


def allocator_memory(allocator: IOutputAllocator, tensor: TensorSpec, current: Any, shape: tuple[int, ...]) -> Any:
    """Memory for `tensor` at `shape` from its output allocator (`current`: the memory it gave last time)."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(nptype(tensor.dtype)).itemsize
    try:
        memory = allocator.reallocate_output(tensor.name, current, nbytes, OUTPUT_ALIGNMENT)
    except Exception as exc:
        raise ExecutionError(f"output '{tensor.name}': the output allocator's reallocate_output raised "
                             f"{type(exc).__name__}: {exc}") from exc
    if memory is None:
        raise ExecutionError(f"output '{tensor.name}': the output allocator gave no memory for {nbytes} bytes "
                             f"(shape {list(shape)})")
    return memory


def output_view(backend: Any, tensor: TensorSpec, memory: Any, shape: tuple[int, ...]) -> Any:
    """The start of the memory given for `tensor` as an array of its dtype and `shape` (bytes reinterpreted, not
    converted); memory too small for this execution is an error naming the output."""
    dtype = np.dtype(nptype(tensor.dtype))
    count = int(np.prod(shape, dtype=np.int64))
    what = f"output '{tensor.name}'"
    try:
        array = backend.wrap(memory, (max(count * dtype.itemsize, 1),), np.dtype(np.uint8), what)
    except (TypeError, ValueError) as exc:
        raise ExecutionError(str(exc)) from None
    if not array.flags.c_contiguous:
        raise ExecutionError(f"{what}: the memory given is not contiguous")
    raw = array.reshape(-1).view(np.uint8)
    if raw.size < count * dtype.itemsize:
        raise ExecutionError(f"{what}: its shape is {list(shape)} in this execution ({count * dtype.itemsize} "
                             f"bytes), the memory given holds {raw.size} bytes; set an output allocator "
                             "(set_output_allocator) for outputs of data-dependent size")
    return raw[:count * dtype.itemsize].view(dtype).reshape(shape)
