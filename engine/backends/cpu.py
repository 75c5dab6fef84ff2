"""CPU backend: NumPy arrays in host memory; one arena per execution context; wall-clock timing."""
from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class CpuBackend:
    name = "cpu"
    xp = np
    supports_cuda_graphs = False

    @property
    def device_name(self) -> str:
        return f"{platform.machine()} CPU ({os.cpu_count()} cores)"

    @property
    def compute_capability(self) -> str:
        """What plans record as the device their tactics were chosen for (engine/compatibility.py)."""
        return "cpu"

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

    def current_stream(self):
        return None

    def time_runs(self, run: Callable[[], None], iterations: int) -> list[float]:
        """Milliseconds of each of `iterations` calls of `run` (already warmed up by the caller), wall clock."""
        samples = []
        for _ in range(iterations):
            with _WallTimer() as timer:
                run()
            samples.append(timer.elapsed_ms)
        return samples

    def wrap(self, buffer: Any, shape: tuple[int, ...] | None, dtype: np.dtype, what: str):
        """A user buffer as a NumPy array (anything NumPy can view without a copy)."""
        if isinstance(buffer, np.ndarray):
            return buffer
        if isinstance(buffer, (int, np.integer)):
            raise ValueError(f"{what}: raw pointers need a GPU engine; a CPU engine takes NumPy arrays")
        return np.asarray(buffer)

    def stage_input(self, staging: dict, key: int, host: Any, stream: Any) -> np.ndarray:
        return np.asarray(host, order="C")  # keeps 0-D arrays 0-D (ascontiguousarray does not)

    def stage_output(self, staging: dict, key: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype)  # a new array per call: execute() hands it to the caller

    def fetch_outputs(self, staging: dict, outputs: dict[int, Any], stream: Any) -> dict[int, np.ndarray]:
        return outputs


class _WallTimer:
    """Context manager measuring elapsed milliseconds."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed_ms = (time.perf_counter() - self._start) * 1e3
        return False
