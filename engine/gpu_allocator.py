"""IGpuAllocator (TensorRT's names): the application's allocator for the device memory the engine allocates.

Set `builder.gpu_allocator` (the build's trial buffers) or `runtime.gpu_allocator` (an engine's weights, every
context's activation arena, workspace and staging buffers). On the GPU, allocations made inside
`allocation_scope` go through CuPy's allocator hook (`cupy.cuda.using_allocator`) to `allocate(size, alignment,
flags)`, which returns a device pointer (int); when CuPy frees that memory, `deallocate(pointer)` is called.
On the CPU it is never called: CPU engines hold NumPy arrays in host memory (documented, not an error).
"""
from __future__ import annotations

import contextlib
from typing import Any

# CuPy's allocations are 256-byte aligned; the hook asks the user's allocator for the same.
ALIGNMENT = 256


class IGpuAllocator:
    """Override `allocate` and `deallocate`."""

    def allocate(self, size: int, alignment: int, flags: int) -> int:
        """A device pointer to at least `size` bytes aligned to `alignment` (0 when it cannot)."""
        raise NotImplementedError

    def deallocate(self, memory: int) -> bool:
        """Free what `allocate` returned."""
        raise NotImplementedError


def checked_allocator(allocator: Any) -> IGpuAllocator | None:
    """The value of a `gpu_allocator` attribute: None or an IGpuAllocator (TypeError naming the type)."""
    if allocator is not None and not isinstance(allocator, IGpuAllocator):
        raise TypeError(f"gpu_allocator must be an engine.IGpuAllocator (or None), got {type(allocator).__name__}")
    return allocator


class _Allocation:
    """Owns one user allocation: CuPy keeps it alive while the memory is used and drops it when freed."""

    def __init__(self, allocator: IGpuAllocator, pointer: int):
        self.allocator, self.pointer = allocator, pointer

    def __del__(self) -> None:
        self.allocator.deallocate(self.pointer)


def allocation_scope(allocator: IGpuAllocator | None, device: str):
    """A context manager routing the engine's CuPy allocations to `allocator` (GPU only; else does nothing)."""
    if allocator is None or device != "gpu":
        return contextlib.nullcontext()
    import cupy

    outer = cupy.cuda.get_allocator()  # what the user's allocator itself allocates with (no recursion into hook)

    def hook(size: int):
        size = max(int(size), 1)
        with cupy.cuda.using_allocator(outer):
            pointer = int(allocator.allocate(size, ALIGNMENT, 0))
        if pointer == 0:
            raise MemoryError(f"gpu_allocator.allocate returned a null pointer for {size} bytes")
        owner = _Allocation(allocator, pointer)
        memory = cupy.cuda.memory.UnownedMemory(pointer, size, owner, cupy.cuda.Device().id)
        return cupy.cuda.memory.MemoryPointer(memory, 0)

    return cupy.cuda.using_allocator(hook)
