"""CUDA kernels of backends/kernels/*.cu, compiled with NVRTC through cupy.RawModule once per process (CuPy also
keeps the compiled binary in its on-disk kernel cache, keyed by source and options)."""
from __future__ import annotations

import functools
import threading

import cupy

from .kernel_sources import kernel_source

_lock = threading.Lock()

GRID_YZ_LIMIT = 65535  # CUDA's limit on gridDim.y and gridDim.z; kernels with larger counts loop past it


@functools.cache
def _module(name: str) -> cupy.RawModule:
    return cupy.RawModule(code=kernel_source(name), options=("-std=c++14",))


def kernel(module: str, function: str) -> cupy.RawKernel:
    """A compiled kernel; compilation is serialized so threads building at once share one module."""
    with _lock:
        return _module(module).get_function(function)


def launch_1d(total: int, threads: int = 256) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) for a grid-stride loop over `total` elements."""
    return (max(1, min(-(-total // threads), 1 << 16)),), (threads,)


def plane_threads(pixels: int) -> int:
    """Threads per block along the pixels of one image plane: a multiple of 32, at most 256."""
    return min(256, -(-pixels // 32) * 32)


def block_size(length: int) -> int:
    """Threads of a row-per-block kernel: a power of two between 32 and 1024, about the row length."""
    size = 32
    while size < length and size < 1024:
        size *= 2
    return size
