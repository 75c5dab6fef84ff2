"""IOutputAllocator (TensorRT 8.5+): memory for outputs whose size is known only after running.

An output whose shape follows a data-dependent layer (NonZero, NMS) cannot be given a buffer of the right size
ahead. `ExecutionContext.set_output_allocator(name, allocator)` hands that choice to the caller: once the size is
known, the context calls `reallocate_output(name, current_memory, size, alignment)`, which returns memory of at
least `size` bytes (the current memory when it is big enough, a new buffer otherwise), writes the output there,
then calls `notify_shape(name, shape)`. On a CPU engine memory is a NumPy array, on a GPU engine a CuPy array, an
object with `__cuda_array_interface__`/`__dlpack__` or an int device pointer (what set_tensor_address takes).
"""
from __future__ import annotations

from typing import Any

import numpy as np

# The alignment the context asks for, as TensorRT's 256 bytes.
OUTPUT_ALIGNMENT = 256


class IOutputAllocator:
    """Subclass and override both methods (TensorRT names)."""

    def reallocate_output(self, tensor_name: str, memory: Any, size: int, alignment: int) -> Any:
        """Memory of at least `size` bytes for the output, or None when it cannot be had (the execution fails)."""
        raise NotImplementedError

    def notify_shape(self, tensor_name: str, shape: tuple[int, ...]) -> None:
        """The output's shape in this execution, called after its values were written."""
        raise NotImplementedError


class HostOutputAllocator(IOutputAllocator):
    """A ready-made allocator for CPU engines: keeps one growing byte buffer per output and the last shape, so
    `result(name)` is the output of the last execution."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def reallocate_output(self, tensor_name: str, memory: Any, size: int, alignment: int) -> Any:
        buffer = self.buffers.get(tensor_name)
        if buffer is None or buffer.nbytes < size:
            buffer = self.buffers[tensor_name] = np.empty(max(size, 1), dtype=np.uint8)
        return buffer

    def notify_shape(self, tensor_name: str, shape: tuple[int, ...]) -> None:
        self.shapes[tensor_name] = tuple(shape)

    def result(self, tensor_name: str, dtype: Any) -> np.ndarray:
        """The last execution's output as an array of `dtype` (a copy)."""
        shape = self.shapes[tensor_name]
        count = int(np.prod(shape, dtype=np.int64))
        return self.buffers[tensor_name].view(np.uint8)[:count * np.dtype(dtype).itemsize].view(dtype).reshape(
            shape).copy()
