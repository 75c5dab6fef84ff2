"""CPU backend: NumPy arrays in host memory; one arena per execution context; wall-clock timing."""
from __future__ import annotations

import contextlib
import os
import platform
import time

import numpy as np


class CpuBackend:
    name = "cpu"
    xp = np

    @property
    def device_name(self) -> str:
        return f"{platform.machine()} CPU ({os.cpu_count()} cores)"

    def allocate(self, nbytes: int):
        # 64-byte aligned so float views are SIMD-friendly.
        raw = np.empty(nbytes + 64, dtype=np.uint8)
        offset = (-raw.ctypes.data) % 64
        return raw[offset:offset + nbytes]

    def to_device(self, array):
        return np.asarray(array, order="C")  # keeps 0-D arrays 0-D (ascontiguousarray does not)

    def to_host(self, array):
        return np.asarray(array)

    def synchronize(self, stream=None) -> None:
        return None

    def stream_scope(self, stream=None):
        """CPU work is synchronous: streams are accepted and ignored."""
        return contextlib.nullcontext()

    def timer(self):
        return _WallTimer()


class _WallTimer:
    """Context manager measuring elapsed milliseconds."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed_ms = (time.perf_counter() - self._start) * 1e3
        return False
